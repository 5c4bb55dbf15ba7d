#!/usr/bin/env bash
# End-to-end rehearsal of a release, on loopback only:
#   1. build the host target's artifacts with `dist build` (the pinned cargo-dist), twice:
#      the current version (v1) and a bumped one (v2);
#   2. serve them with a mock GitHub releases API (installers/mock_github.py);
#   3. run the generated shell installer into a temporary HOME;
#   4. check the installed binary and its install receipt;
#   5. `self-update --check`, then a tampered v2 (must be refused, v1 intact), then the real
#      v2 (must install), and the package-manager / container refusals.
# Prints one line per check and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$PWD"
DIST_VERSION="0.33.0"   # the same pin as dist-workspace.toml
HOST="$(rustc -vV | sed -n 's/^host: //p')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clerk-rehearsal.XXXXXX")"
passed=0; failed=0
check() { # name, command...
  local name="$1" start; shift
  start=$(($(wc -c 2>/dev/null <"$WORK/log" || echo 0) + 1))
  if "$@" >>"$WORK/log" 2>&1; then echo "PASS $name"; passed=$((passed+1));
  else echo "FAIL $name (log: $WORK/log), ending:"; failed=$((failed+1))
    tail -c "+$start" "$WORK/log" | tail -n 4 | sed 's/^/    /'; fi
}
# A command's exit status and its output, both checked. Not `cmd | grep -q`: under sh -c
# the pipeline's status is grep's alone, so a crash that printed the words passed (and
# with pipefail, grep -q exiting at the first match can kill cmd with SIGPIPE instead).
#   check "name" expect 0 'regex' cmd...     cmd exits 0 and its output matches
#   check "name" expect fail 'regex' cmd...  cmd exits non-zero and its output matches
# Output is stdout and stderr together; regex is grep -E, searched line by line.
expect() { # 0|fail, regex, command...
  local want="$1" regex="$2" out rc; shift 2
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out"
  case "$want" in
    0) [ "$rc" -eq 0 ] || { echo "exit status $rc, want 0: $*"; return 1; } ;;
    fail) [ "$rc" -ne 0 ] || { echo "exit status 0, want a failure: $*"; return 1; } ;;
    *) echo "expect: the status is 0 or fail, not $want"; return 2 ;;
  esac
  grep -qE -- "$regex" <<<"$out" || { echo "no line matches /$regex/: $*"; return 1; }
}
# The binary at $1 runs and prints exactly "clerk-mcp-server $2".
reports_version() { # binary, version
  local out rc
  out=$("$1" --version 2>&1); rc=$?
  printf '%s\n' "$out"
  if [ "$rc" -ne 0 ] || [ "$out" != "clerk-mcp-server $2" ]; then
    echo "exit status $rc, want 0 and exactly 'clerk-mcp-server $2': $1"; return 1
  fi
}
finish() {
  [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "${KEEP:-0}" != 1 ] && rm -rf "$WORK"
  [ "$failed" -eq 0 ]
}
trap 'finish; exit $?' EXIT

# --- dist, pinned ---------------------------------------------------------
DIST="$ROOT/target/dist-venv/bin/dist"
DIST_RE="(^| )${DIST_VERSION//./\\.}\$"
if [ ! -x "$DIST" ] || ! expect 0 "$DIST_RE" "$DIST" --version >/dev/null; then
  python3 -m venv "$ROOT/target/dist-venv" >/dev/null
  "$ROOT/target/dist-venv/bin/pip" install -q "astral-dev-toolchain-cargo-dist==$DIST_VERSION" >>"$WORK/log" 2>&1
fi
check "dist $DIST_VERSION is available" expect 0 "$DIST_RE" "$DIST" --version

# --- artifacts: v1 (this tree) and v2 (a bumped copy) ----------------------
V1="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
V2="${V1%.*}.$(( ${V1##*.} + 1 ))"
build() { # source-dir out-dir
  # dist writes to <workspace>/target/distrib (compiling into the shared CARGO_TARGET_DIR);
  # start it empty so stale archives are never mistaken for new ones.
  rm -rf "$1/target/distrib"
  (cd "$1" && CARGO_TARGET_DIR="$ROOT/target" "$DIST" build --artifacts=local --target "$HOST" \
     && CARGO_TARGET_DIR="$ROOT/target" "$DIST" build --artifacts=global) >>"$WORK/log" 2>&1 || return 1
  mkdir -p "$2" && cp "$1"/target/distrib/*.tar.xz "$1"/target/distrib/*.sha256 \
    "$1"/target/distrib/*-installer.sh "$2"/ \
    && cp -r "$1"/target/distrib/clerk-mcp-server-npm-package "$2.npm"
}
mkdir -p "$WORK/releases"
check "dist build v$V1" build "$ROOT" "$WORK/releases/v1"
echo "$V1" > "$WORK/releases/v1/VERSION"
SRC2="$WORK/src-v2"
copy_bumped() { # a git copy of the tree at v$V2, its lockfile updated
  local g=(git -C "$SRC2" -c user.name=r -c user.email=r@r)
  mkdir -p "$SRC2" && git ls-files -z | xargs -0 cp --parents -t "$SRC2" \
    && "${g[@]}" init -q && "${g[@]}" add -A && "${g[@]}" commit -qm v2 \
    && sed -i "0,/^version = \"$V1\"/s//version = \"$V2\"/" "$SRC2/Cargo.toml" \
    && grep -qx "version = \"$V2\"" "$SRC2/Cargo.toml" \
    && (cd "$SRC2" && cargo update -w --offline) \
    && "${g[@]}" add -A && "${g[@]}" commit -qm bump
}
check "source copy bumped to v$V2" copy_bumped
check "dist build v$V2" build "$SRC2" "$WORK/releases/v2"
echo "$V2" > "$WORK/releases/v2/VERSION"

# --- mock GitHub ------------------------------------------------------------
python3 installers/mock_github.py "$WORK/releases" >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/mock.out" 2>/dev/null && break; sleep 0.1; done
PORT="$(awk '/^PORT/ {print $2}' "$WORK/mock.out")"
API="http://127.0.0.1:$PORT"
check "mock GitHub listens (log: $WORK/mock.err)" test -n "$PORT"

# --- install v1 with the generated shell installer ---------------------------
export HOME="$WORK/home"; mkdir -p "$HOME"
unset XDG_CONFIG_HOME XDG_BIN_HOME XDG_DATA_HOME CARGO_HOME
BIN="$HOME/.local/bin/clerk-mcp-server"
check "shell installer installs v$V1" env CLERK_MCP_SERVER_DOWNLOAD_URL="$API/download/v1" \
  CLERK_MCP_SERVER_NO_MODIFY_PATH=1 sh "$WORK/releases/v1/clerk-mcp-server-installer.sh"
check "installed binary reports $V1" reports_version "$BIN" "$V1"
check "install receipt written" test -s "$HOME/.config/clerk-mcp-server/clerk-mcp-server-receipt.json"
check "installed binary runs check --help" "$BIN" check --help

U=(env CLERK_MCP_UPDATE_API_URL="$API")
check "self-update --check sees v$V2" expect 0 "newer version is available: ${V2//./\\.} " \
  "${U[@]}" "$BIN" self-update --check

# --- tampered artifact: refused, old binary intact ----------------------------
touch "$WORK/releases/tamper"
check "tampered v$V2 is refused by its checksum" expect fail '[Cc]hecksum [Mm]ismatch' \
  "${U[@]}" "$BIN" self-update
check "after the refusal the binary is still $V1" reports_version "$BIN" "$V1"
rm -f "$WORK/releases/tamper"

# --- refusals for package-manager installs -------------------------------------
mkdir -p "$WORK/npm/node_modules/@clerk/mcp-server/bin"
cp "$BIN" "$WORK/npm/node_modules/@clerk/mcp-server/bin/"
check "npm-owned copy refuses and names npm" expect fail 'npm update -g @clerk/mcp-server' \
  "${U[@]}" "$WORK/npm/node_modules/@clerk/mcp-server/bin/clerk-mcp-server" self-update
check "container copy refuses and names docker pull" expect fail 'docker pull' \
  "${U[@]}" CLERK_MCP_IN_CONTAINER=1 "$BIN" self-update

# --- the npm package: its postinstall fetches the release archive -----------------
# Point the package at the mock release (the one edit a rehearsal needs), install it
# globally into a temporary prefix, and run the binary through the npm wrapper.
sed -i "s#https://github.com/clerk/mcp-server/releases/download/v$V1#$API/download/v1#" \
  "$WORK/releases/v1.npm/package.json"
check "npm package downloads from the mock release" \
  grep -qF "$API/download/v1" "$WORK/releases/v1.npm/package.json"
npm_pack() { (cd "$WORK/releases/v1.npm" && npm pack --silent --pack-destination "$WORK" >/dev/null); }
check "npm package packs" npm_pack
check "npm package installs (postinstall downloads the archive)" \
  npm install -g --no-audit --no-fund --loglevel=error --prefix "$WORK/npm-global" "$WORK"/clerk-mcp-server-*.tgz
check "npx-style wrapper runs the native binary ($V1)" \
  reports_version "$WORK/npm-global/bin/clerk-mcp-server" "$V1"
check "the npm install's self-update refuses and names npm" expect fail 'npm update -g' \
  "${U[@]}" "$WORK/npm-global/bin/clerk-mcp-server" self-update

# --- the real update ----------------------------------------------------------
check "self-update installs v$V2" "${U[@]}" "$BIN" self-update
check "the binary now reports $V2" reports_version "$BIN" "$V2"
check "self-update again: up to date" expect 0 'is up to date\.$' "${U[@]}" "$BIN" self-update
