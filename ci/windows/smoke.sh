#!/usr/bin/env bash
# Smoke test of the Windows binary under Wine (headless: no X display is needed for a
# console program).
#
#   ci/windows/smoke.sh path/to/clerk-mcp-server.exe
#
# Needs Wine (64-bit) and the mingw C compiler (Debian: wine64, gcc-mingw-w64-x86-64).
# Builds ci/windows/bcryptprimitives.c into a DLL next to a copy of the .exe (Wine 8 has
# no bcryptprimitives.dll, whose ProcessPrng Rust's standard library calls), makes a fresh
# WINEPREFIX in a temp dir, sets up interop/python/.venv (as interop/python/run.sh does),
# and runs smoke.py, which starts interop/python/server.py on free loopback ports and
# drives the .exe. The last line is "windows-smoke: N passed, M failed"; exit 1 on any
# failure. Logs stay in $SMOKE_LOG_DIR (default: a temp dir, printed at the end).
# Env: WINE (the Wine loader; default wine64 or wine on PATH, else /usr/lib/wine/wine64).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYDIR="$ROOT/interop/python"
VENV="$PYDIR/.venv"
PY="$VENV/bin/python"

fail() { echo "FAIL $*"; echo "windows-smoke: 0 passed, 1 failed"; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 BIN_EXE" >&2; exit 2; }
EXE="$1"
[ -f "$EXE" ] || fail "no such file: $EXE"

WINE="${WINE:-}"
if [ -z "$WINE" ]; then
  for w in wine64 wine /usr/lib/wine/wine64; do
    if command -v "$w" >/dev/null; then WINE="$(command -v "$w")"; break; fi
  done
fi
[ -n "$WINE" ] || fail "Wine not found (Debian: apt-get install wine64)"
# wineserver of the same installation: to wait for and end this prefix's server.
WINESERVER=""
for s in "$(dirname "$WINE")/wineserver" "$(dirname "$WINE")/wineserver64" /usr/lib/wine/wineserver64 wineserver; do
  if command -v "$s" >/dev/null; then WINESERVER="$(command -v "$s")"; break; fi
done
[ -n "$WINESERVER" ] || fail "wineserver not found next to $WINE"
command -v x86_64-w64-mingw32-gcc >/dev/null || fail "x86_64-w64-mingw32-gcc not found (Debian: gcc-mingw-w64-x86-64)"

LOG_DIR="${SMOKE_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/clerk-windows-smoke.XXXXXX")}"
mkdir -p "$LOG_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clerk-wine.XXXXXX")"
export WINEPREFIX="$WORK/prefix"
# Quiet, but for the loader: a missing DLL is named on stderr.
export WINEDEBUG=-all,err+module
# No Mono/Gecko install prompts, no menu entries: nothing here has a display.
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  timeout 10 "$WINESERVER" -k >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the .exe and the shim, side by side ----------------------------------
mkdir -p "$WORK/bin"
cp "$EXE" "$WORK/bin/clerk-mcp-server.exe" || fail "cannot copy $EXE"
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Werror -o "$WORK/bin/bcryptprimitives.dll" \
  "$HERE/bcryptprimitives.c" -ladvapi32 || fail "building the bcryptprimitives shim"

# ---- a fresh prefix --------------------------------------------------------
t0=$SECONDS
if ! timeout -k 5 180 "$WINE" wineboot --init >"$LOG_DIR/wineboot.log" 2>&1 ||
   ! timeout -k 5 60 "$WINESERVER" -w; then
  tail -n 20 "$LOG_DIR/wineboot.log"
  fail "wineboot --init (log: $LOG_DIR/wineboot.log)"
fi
echo "# Wine $("$WINE" --version 2>/dev/null), prefix $WINEPREFIX made in $((SECONDS - t0)) s"

# ---- the server's venv (the same as interop/python/run.sh's) -----------------
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$PYDIR/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "# setting up $VENV" >&2
  if ! { [ -x "$PY" ] || python3 -m venv "$VENV"; } ||
     ! "$PY" -m pip install --disable-pip-version-check -q -r "$PYDIR/requirements.txt" >&2; then
    fail "venv setup"
  fi
  echo "$want" > "$stamp"
fi

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[ -n "$version" ] || fail "no version in Cargo.toml"

# ---- the checks -------------------------------------------------------------
timeout -k 5 400 "$PY" "$HERE/smoke.py" --python "$PY" --server "$PYDIR/server.py" \
  --version "$version" --log-dir "$LOG_DIR" -- "$WINE" "$WORK/bin/clerk-mcp-server.exe" \
  | tee "$LOG_DIR/smoke.out"
rc=${PIPESTATUS[0]}
if ! grep -qE '^windows-smoke: [0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/smoke.out"; then
  echo "FAIL smoke.py ended without a result line (exit $rc)"
  echo "windows-smoke: 0 passed, 1 failed"
  rc=1
fi
echo "# logs: $LOG_DIR"
exit "$rc"
