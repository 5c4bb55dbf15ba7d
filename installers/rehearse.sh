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
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIST_VERSION="0.33.0"   # the same pin as dist-workspace.toml
HOST="$(rustc -vV | sed -n 's/^host: //p')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clerk-rehearsal.XXXXXX")"
passed=0; failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@" >>"$WORK/log" 2>&1; then echo "PASS $name"; passed=$((passed+1));
  else echo "FAIL $name (log: $WORK/log)"; failed=$((failed+1)); fi
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
if [ ! -x "$DIST" ] || ! "$DIST" --version | grep -q "$DIST_VERSION"; then
  python3 -m venv "$ROOT/target/dist-venv" >/dev/null
  "$ROOT/target/dist-venv/bin/pip" install -q "astral-dev-toolchain-cargo-dist==$DIST_VERSION" >>"$WORK/log" 2>&1
fi
check "dist $DIST_VERSION is available" "$DIST" --version

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
git ls-files -z | (mkdir -p "$SRC2" && xargs -0 cp --parents -t "$SRC2")
git -C "$SRC2" init -q && git -C "$SRC2" add -A >/dev/null && git -C "$SRC2" -c user.name=r -c user.email=r@r commit -qm v2
sed -i "0,/^version = \"$V1\"/s//version = \"$V2\"/" "$SRC2/Cargo.toml"
(cd "$SRC2" && cargo update -w --offline >/dev/null 2>&1; git add -A; git -c user.name=r -c user.email=r@r commit -qm bump)
check "dist build v$V2" build "$SRC2" "$WORK/releases/v2"
echo "$V2" > "$WORK/releases/v2/VERSION"

# --- mock GitHub ------------------------------------------------------------
python3 installers/mock_github.py "$WORK/releases" >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/mock.out" 2>/dev/null && break; sleep 0.1; done
PORT="$(awk '/^PORT/ {print $2}' "$WORK/mock.out")"
API="http://127.0.0.1:$PORT"

# --- install v1 with the generated shell installer ---------------------------
export HOME="$WORK/home"; mkdir -p "$HOME"
unset XDG_CONFIG_HOME XDG_BIN_HOME XDG_DATA_HOME CARGO_HOME
BIN="$HOME/.local/bin/clerk-mcp-server"
check "shell installer installs v$V1" env CLERK_MCP_SERVER_DOWNLOAD_URL="$API/download/v1" \
  CLERK_MCP_SERVER_NO_MODIFY_PATH=1 sh "$WORK/releases/v1/clerk-mcp-server-installer.sh"
check "installed binary reports $V1" sh -c "[ \"\$('$BIN' --version)\" = 'clerk-mcp-server $V1' ]"
check "install receipt written" test -s "$HOME/.config/clerk-mcp-server/clerk-mcp-server-receipt.json"
check "installed binary runs check --help" "$BIN" check --help

U=(env CLERK_MCP_UPDATE_API_URL="$API")
check "self-update --check sees v$V2" sh -c "$(printf '%q ' "${U[@]}") '$BIN' self-update --check | grep -q 'newer version is available: $V2'"

# --- tampered artifact: refused, old binary intact ----------------------------
touch "$WORK/releases/tamper"
check "tampered v$V2 is refused by its checksum" sh -c "out=\$($(printf '%q ' "${U[@]}") '$BIN' self-update 2>&1); [ \$? -ne 0 ] && echo \"\$out\" | grep -qi 'checksum mismatch'"
check "after the refusal the binary is still $V1" sh -c "[ \"\$('$BIN' --version)\" = 'clerk-mcp-server $V1' ]"
rm -f "$WORK/releases/tamper"

# --- refusals for package-manager installs -------------------------------------
mkdir -p "$WORK/npm/node_modules/@clerk/mcp-server/bin"
cp "$BIN" "$WORK/npm/node_modules/@clerk/mcp-server/bin/"
check "npm-owned copy refuses and names npm" sh -c "$(printf '%q ' "${U[@]}") '$WORK/npm/node_modules/@clerk/mcp-server/bin/clerk-mcp-server' self-update 2>&1 | grep -q 'npm update -g @clerk/mcp-server'"
check "container copy refuses and names docker pull" sh -c "$(printf '%q ' "${U[@]}") CLERK_MCP_IN_CONTAINER=1 '$BIN' self-update 2>&1 | grep -q 'docker pull'"

# --- the npm package: its postinstall fetches the release archive -----------------
# Point the package at the mock release (the one edit a rehearsal needs), install it
# globally into a temporary prefix, and run the binary through the npm wrapper.
sed -i "s#https://github.com/clerk/mcp-server/releases/download/v$V1#$API/download/v1#" \
  "$WORK/releases/v1.npm/package.json"
npm_pack() { (cd "$WORK/releases/v1.npm" && npm pack --silent --pack-destination "$WORK" >/dev/null); }
check "npm package packs" npm_pack
check "npm package installs (postinstall downloads the archive)" \
  npm install -g --no-audit --no-fund --loglevel=error --prefix "$WORK/npm-global" "$WORK"/clerk-mcp-server-*.tgz
check "npx-style wrapper runs the native binary ($V1)" \
  sh -c "[ \"\$('$WORK/npm-global/bin/clerk-mcp-server' --version)\" = 'clerk-mcp-server $V1' ]"
check "the npm install's self-update refuses and names npm" sh -c \
  "$(printf '%q ' "${U[@]}") '$WORK/npm-global/bin/clerk-mcp-server' self-update 2>&1 | grep -q 'npm update -g'"

# --- the real update ----------------------------------------------------------
check "self-update installs v$V2" "${U[@]}" "$BIN" self-update
check "the binary now reports $V2" sh -c "[ \"\$('$BIN' --version)\" = 'clerk-mcp-server $V2' ]"
check "self-update again: up to date" sh -c "$(printf '%q ' "${U[@]}") '$BIN' self-update | grep -q 'up to date'"
