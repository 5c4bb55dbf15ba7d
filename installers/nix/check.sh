#!/usr/bin/env bash
# Offline checks of /flake.nix, with the stand-in for nixpkgs in installers/nix/stand-in
# (nixpkgs itself cannot be fetched here). What this proves and what it cannot:
# installers/nix/README.md.
#
#   installers/nix/check.sh                  # flake show, flake check, nix run, skip list
#   installers/nix/check.sh --sandbox-tests  # also: cargo test in an imitation of the
#                                            # build sandbox, with the flake's checkFlags
#
# Needs target/release/clerk-mcp-server (built with `cargo build --release --locked` if
# missing; CLERK_BIN=/path overrides). Installs Debian's nix-bin if nix is missing. Runs
# Nix single-user as root against /nix/store, with a throwaway config (NIX_CONF_DIR in a
# temporary directory; /etc is not changed), on a temporary copy of the repository's
# files (tracked, plus untracked ones that are not ignored), never on the work tree.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SANDBOX_TESTS=0
for a in "$@"; do
  case "$a" in
    --sandbox-tests) SANDBOX_TESTS=1 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0
ok() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$*"; }
bad() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$*"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf 'skip  %s\n' "$*"; }
finish() {
  # Keep the logs; drop the copies and build products (the test build is gigabytes).
  rm -rf "$TMP/repo" "$TMP/src" "$TMP/target" "$TMP/cache"
  echo "($((SECONDS - START)) s; logs in $LOGS)"
  if [ "$SKIPPED" -gt 0 ]; then
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  else
    echo "$PASSED passed, $FAILED failed"
  fi
  [ "$FAILED" -eq 0 ]
  exit $?
}

TMP=$(mktemp -d /tmp/clerk-nix-check.XXXXXX)
LOGS=$TMP/logs
mkdir -p "$LOGS"

# --- nix ----------------------------------------------------------------------------
if ! command -v nix >/dev/null; then
  echo "installing Debian's nix-bin ..."
  if ! { timeout 300 apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nix-bin; } >"$LOGS/apt.log" 2>&1; then
    bad "install nix-bin (see $LOGS/apt.log)"
    finish
  fi
fi
nix --version

# Throwaway configuration: flakes on, no sandbox (the stand-in's builders are the
# host's /bin/sh), no build users, no substituters, no global registry download.
mkdir -p "$TMP/conf" "$TMP/cache"
echo '{"flakes":[],"version":2}' >"$TMP/registry.json"
cat >"$TMP/conf/nix.conf" <<EOF
experimental-features = nix-command flakes
sandbox = false
build-users-group =
substituters =
flake-registry = $TMP/registry.json
warn-dirty = false
EOF
export NIX_CONF_DIR=$TMP/conf
export XDG_CACHE_HOME=$TMP/cache
unset NIX_REMOTE

# --- the repository copy and the prebuilt binary ---------------------------------------
REPO=$TMP/repo
mkdir -p "$REPO"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
  tar --null -T - -cf - 2>/dev/null) | tar -C "$REPO" -xf -
# A git flake sees only files git knows, as in the real repository. This index is the
# copy's own; the work tree's is not touched.
(cd "$REPO" && git init -q && git add -A) || { bad "copy the repository"; finish; }

BIN=${CLERK_BIN:-$ROOT/target/release/clerk-mcp-server}
if [ ! -x "$BIN" ]; then
  echo "building $BIN (cargo build --release --locked) ..."
  if ! (cd "$ROOT" && timeout 1800 cargo build --release --locked) >"$LOGS/cargo-build.log" 2>&1; then
    bad "cargo build --release (see $LOGS/cargo-build.log)"
    finish
  fi
fi
STANDIN=$REPO/installers/nix/stand-in
mkdir -p "$STANDIN/prebuilt"
cp "$BIN" "$STANDIN/prebuilt/clerk-mcp-server"

SYSTEM=$(nix eval --impure --raw --expr builtins.currentSystem 2>/dev/null || echo x86_64-linux)
FLAGS=(--no-write-lock-file --override-input nixpkgs "path:$STANDIN")
WANT_VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
cd "$REPO" || { bad "cd $REPO"; finish; }

# --- 1. nix flake show --------------------------------------------------------------------
if timeout 120 nix flake show --json "${FLAGS[@]}" >"$LOGS/show.json" 2>"$LOGS/show.log" &&
  python3 - "$LOGS/show.json" "$SYSTEM" <<'EOF'; then
import json, sys
show, system = json.load(open(sys.argv[1])), sys.argv[2]
need = [("packages", "default"), ("packages", "clerk-mcp-server"), ("apps", "default"),
        ("devShells", "default"), ("checks", "package"), ("checks", "clippy"),
        ("checks", "rustfmt")]
missing = [f"{o}.{system}.{n}" for o, n in need if n not in show.get(o, {}).get(system, {})]
if "formatter" not in show or system not in show["formatter"]:
    missing.append(f"formatter.{system}")
for m in missing:
    print("missing:", m, file=sys.stderr)
sys.exit(1 if missing else 0)
EOF
  ok "nix flake show: packages, apps, devShells, checks and formatter for $SYSTEM (all 4 systems evaluate)"
else
  bad "nix flake show (see $LOGS/show.log)"
fi

# --- 2. nix flake check -------------------------------------------------------------------
if timeout 300 nix flake check -L "${FLAGS[@]}" >"$LOGS/check.log" 2>&1; then
  ok "nix flake check: every output evaluates on every system; checks.$SYSTEM.* built (stand-in)"
else
  bad "nix flake check (see $LOGS/check.log)"
fi

# --- 3. nix run . -- --version -------------------------------------------------------------
GOT=$(timeout 120 nix run "${FLAGS[@]}" . -- --version 2>"$LOGS/run.log")
if [ "$GOT" = "clerk-mcp-server $WANT_VERSION" ]; then
  ok "nix run . -- --version: '$GOT' (Cargo.toml: $WANT_VERSION)"
else
  bad "nix run . -- --version: got '$GOT', want 'clerk-mcp-server $WANT_VERSION' (see $LOGS/run.log)"
fi

# --- 4. the skip list names real tests -------------------------------------------------------
# checkFlags as the flake hands them to buildRustPackage; a renamed test would leave a
# --skip that matches nothing (silently) and the real test unskipped.
if timeout 60 nix eval --json "${FLAGS[@]}" ".#packages.$SYSTEM.default.checkFlags" \
  >"$LOGS/checkFlags.json" 2>"$LOGS/checkFlags.log"; then
  stale=$(python3 - "$LOGS/checkFlags.json" "$REPO/tests/it" <<'EOF'
import json, os, re, sys
flags, it = json.load(open(sys.argv[1])), sys.argv[2]
for f in flags:
    name = f.removeprefix("--skip=")
    mod, _, fn = name.rpartition("::")
    path = os.path.join(it, mod.replace("::", "/") + ".rs")
    src = open(path).read() if os.path.exists(path) else ""
    if not re.search(r"\bfn\s+" + re.escape(fn) + r"\s*\(", src):
        print(name)
EOF
  )
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LOGS/checkFlags.json")
  if [ -z "$stale" ]; then
    ok "checkFlags: $n --skip entries, each an existing test in tests/it"
  else
    bad "checkFlags: no such test for: $(tr '\n' ' ' <<<"$stale")"
  fi
else
  bad "nix eval checkFlags (see $LOGS/checkFlags.log)"
fi

# --- 5. (optional) cargo test in an imitation of the build sandbox ---------------------------
# Linux only: a network namespace with loopback only, an empty /etc/resolv.conf, no curl,
# a HOME that does not exist; the source is the flake's own `src` (its fileset), and the
# test flags are the flake's checkFlags. Debug profile to save time (the real build
# tests the release profile).
# Every step is checked: a setup step that failed silently would run the tests somewhere
# else than claimed (without the flake's checkFlags, without the curl check input, with
# an empty filter), and a run of zero tests is not a pass. The imitation checks itself
# before the tests start (lines "imitation: ..." in the log).
# The script the tests run under: set up the imitation, check it holds, exec the command.
imitation_script() {
  cat <<EOF
#!/bin/bash
set -e
ip link set lo up
mount --bind /dev/null /etc/resolv.conf
for c in /usr/bin/curl /usr/local/bin/curl /bin/curl; do
  if [ -e "\$c" ]; then mount --bind "$TMP/no-curl" "\$c"; fi
done
# Like the sandbox's /homeless-shelter: a HOME that does not exist (here in \$TMP, so
# nothing is left outside it if a test creates it anyway; that is reported).
TMPDIR=\$(mktemp -d "$TMP/build.XXXX")
export HOME="$TMP/homeless-shelter" TMPDIR
export PATH="$TMP/check-inputs:\$PATH"
# The imitation holds, or the run proves nothing of what it claims.
fail() { echo "imitation: \$*" >&2; exit 90; }
[ -z "\$(ip -o link show | awk -F': ' '\$2 != "lo"')" ] || fail "a network interface other than lo"
[ ! -s /etc/resolv.conf ] || fail "/etc/resolv.conf is not empty"
[ "\$(command -v curl)" = "$TMP/check-inputs/curl" ] || fail "curl on PATH is not the check input"
if /usr/bin/curl --version >/dev/null 2>&1; then fail "/usr/bin/curl runs"; fi
[ ! -e "\$HOME" ] || fail "HOME exists"
exec "\$@"
EOF
}
sandbox_tests() {
  local src flags tally n p f i s
  src=$(timeout 60 nix eval --raw "${FLAGS[@]}" ".#packages.$SYSTEM.default.src" 2>>"$LOGS/sandbox.log")
  if [ -z "$src" ] || ! command -v unshare >/dev/null || ! command -v ip >/dev/null ||
    ! command -v curl >/dev/null; then
    bad "sandbox tests: need the flake's src, unshare, ip and curl (see $LOGS/sandbox.log)"
    return
  fi
  if ! flags=$(python3 -c 'import json,sys; [print(f) for f in json.load(open(sys.argv[1]))]' \
    "$LOGS/checkFlags.json" 2>>"$LOGS/sandbox.log"); then
    bad "sandbox tests: cannot read the flake's checkFlags (see $LOGS/sandbox.log)"
    return
  fi
  CHECKFLAGS=()
  [ -z "$flags" ] || mapfile -t CHECKFLAGS <<<"$flags"
  export CARGO_TARGET_DIR=$TMP/target
  export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  if ! { cp -r "$src" "$TMP/src" && chmod -R u+w "$TMP/src" &&
    printf '#!/bin/sh\necho "sh: curl: not found" >&2\nexit 127\n' >"$TMP/no-curl" &&
    chmod +x "$TMP/no-curl" &&
    # Like nativeCheckInputs = [ pkgs.curl ]: curl on PATH, outside /usr/bin.
    mkdir -p "$TMP/check-inputs" && cp "$(command -v curl)" "$TMP/check-inputs/curl" &&
    imitation_script >"$TMP/in-sandbox.sh" && chmod +x "$TMP/in-sandbox.sh"; } 2>>"$LOGS/sandbox.log"; then
    bad "sandbox tests: setting up the imitation failed (see $LOGS/sandbox.log)"
    return
  fi
  if ! (cd "$TMP/src" && timeout 1800 nice cargo test --locked --no-run) >"$LOGS/sandbox-build.log" 2>&1; then
    bad "sandbox tests: cargo test --no-run on the flake's src (see $LOGS/sandbox-build.log)"
  elif ! (cd "$TMP/src" && timeout 900 unshare -n -m --propagation private "$TMP/in-sandbox.sh" \
    cargo test --locked --offline -- --test-threads=2 "${CHECKFLAGS[@]}") >"$LOGS/sandbox-test.log" 2>&1; then
    if grep -q '^imitation: ' "$LOGS/sandbox-test.log"; then
      bad "sandbox tests: the imitation does not hold: $(sed -n 's/^imitation: //p' "$LOGS/sandbox-test.log")"
    else
      bad "sandbox tests: $(grep -E '^test .* FAILED$' "$LOGS/sandbox-test.log" | awk '{print $2}' | tr '\n' ' ')(see $LOGS/sandbox-test.log)"
    fi
  elif [ -e "$TMP/homeless-shelter" ]; then
    bad "sandbox tests: passed, but something created HOME (the sandbox has none)"
  else
    # "test result: ok. P passed; F failed; I ignored; M measured; S filtered out"
    tally=$(awk '/^test result/ {n++; p+=$4; f+=$6; i+=$8; s+=$12}
      END {print n+0, p+0, f+0, i+0, s+0}' "$LOGS/sandbox-test.log")
    read -r n p f i s <<<"$tally"
    if [ "$n" -eq 0 ] || [ "$p" -eq 0 ]; then
      bad "sandbox tests: cargo test exited 0 but no test passed ($n test binaries reported; see $LOGS/sandbox-test.log)"
    else
      ok "sandbox tests: $p passed, $f failed, $i ignored, $s skipped by checkFlags (loopback only, no DNS, no curl)"
    fi
  fi
}
if [ "$SANDBOX_TESTS" = 1 ]; then
  sandbox_tests
else
  skip "sandbox tests (run with --sandbox-tests: builds the tests, several minutes)"
fi

finish
