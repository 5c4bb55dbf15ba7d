#!/usr/bin/env bash
# Baseline stand-in for clerk-mcp-server: runs mcp-remote with (a subset of) the same CLI as ours,
#   mcp-remote-proxy.sh [--transport auto|streamable-http|sse] [--allow-http]
#                       [--config-dir DIR] [--client-id ID] [--client-secret SECRET]
#                       [--client-metadata-url URL] [--scope "a b"] [--resource URL]
#                       [--authorize-param key=value]... [--callback-path /path]
#                       [--callback-port N] [--auth-timeout SECS] URL
# translating --transport to mcp-remote's http-first|http-only|sse-only, --config-dir to
# MCP_REMOTE_CONFIG_DIR, --client-id/--client-secret (or CLERK_MCP_CLIENT_SECRET) to
# --static-oauth-client-info JSON, --scope to --static-oauth-client-metadata {"scope":...},
# --callback-port to mcp-remote's positional port; the rest pass through. The callback host is
# 127.0.0.1, like ours. mcp-remote opens the browser with the `open` package, whose bundled
# xdg-open runs $BROWSER URL when there is no desktop (no DISPLAY). --no-browser is unsupported.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
strategy=http-first
extra=()
client_id=""
client_secret="${CLERK_MCP_CLIENT_SECRET:-}"
scope=""
port=()
need() { [ $# -ge 2 ] || { echo "mcp-remote-proxy.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 1 ]; do
  case "$1" in
    --transport|--transport=*)
      if [ "$1" = --transport ]; then need "$@"; shift; v="$1"; else v="${1#--transport=}"; fi
      case "$v" in
        auto) strategy=http-first ;;
        streamable-http) strategy=http-only ;;
        sse) strategy=sse-only ;;
        *) echo "mcp-remote-proxy.sh: unknown transport $v" >&2; exit 2 ;;
      esac ;;
    --allow-http) extra+=(--allow-http) ;;
    --config-dir) need "$@"; shift; export MCP_REMOTE_CONFIG_DIR="$1" ;;
    --client-id) need "$@"; shift; client_id="$1" ;;
    --client-secret) need "$@"; shift; client_secret="$1" ;;
    --scope) need "$@"; shift; scope="$1" ;;
    --callback-port) need "$@"; shift; port=("$1") ;;
    --client-metadata-url|--resource|--authorize-param|--callback-path|--auth-timeout)
      need "$@"; extra+=("$1" "$2"); shift ;;
    *) echo "mcp-remote-proxy.sh: unsupported option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -eq 1 ] || { echo "usage: mcp-remote-proxy.sh [options] URL (see the header)" >&2; exit 2; }
json() { node -e 'const o={};for(let i=1;i<process.argv.length;i+=2) if(process.argv[i+1]) o[process.argv[i]]=process.argv[i+1];process.stdout.write(JSON.stringify(o))' -- "$@"; }
if [ -n "$client_id" ]; then
  extra+=(--static-oauth-client-info "$(json client_id "$client_id" client_secret "$client_secret")")
fi
if [ -n "$scope" ]; then
  extra+=(--static-oauth-client-metadata "$(json scope "$scope")")
fi
# mcp-remote runs the browser before its callback server listens: let follow-browser.mjs retry.
export FOLLOW_BROWSER_CONNECT_RETRY_MS="${FOLLOW_BROWSER_CONNECT_RETRY_MS:-10000}"
# Keep mcp-remote's OAuth/config state out of $HOME.
export MCP_REMOTE_CONFIG_DIR="${MCP_REMOTE_CONFIG_DIR:-${TMPDIR:-/tmp}/clerk-interop-mcp-remote}"
exec node "$here/node_modules/mcp-remote/dist/proxy.js" "$1" ${port[@]+"${port[@]}"} --transport "$strategy" --host 127.0.0.1 ${extra[@]+"${extra[@]}"}
