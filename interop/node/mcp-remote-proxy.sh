#!/usr/bin/env bash
# Baseline stand-in for clerk-mcp-server: runs mcp-remote with the same CLI as ours,
#   mcp-remote-proxy.sh [--transport auto|streamable-http|sse] [--allow-http] URL
# translating --transport to mcp-remote's http-first|http-only|sse-only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
strategy=http-first
extra=()
while [ $# -gt 1 ]; do
  case "$1" in
    --transport|--transport=*)
      if [ "$1" = --transport ]; then shift; v="$1"; else v="${1#--transport=}"; fi
      case "$v" in
        auto) strategy=http-first ;;
        streamable-http) strategy=http-only ;;
        sse) strategy=sse-only ;;
        *) echo "mcp-remote-proxy.sh: unknown transport $v" >&2; exit 2 ;;
      esac ;;
    --allow-http) extra+=(--allow-http) ;;
    *) echo "mcp-remote-proxy.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -eq 1 ] || { echo "usage: mcp-remote-proxy.sh [--transport auto|streamable-http|sse] [--allow-http] URL" >&2; exit 2; }
# Keep mcp-remote's OAuth/config state out of $HOME.
export MCP_REMOTE_CONFIG_DIR="${MCP_REMOTE_CONFIG_DIR:-${TMPDIR:-/tmp}/clerk-interop-mcp-remote}"
exec node "$here/node_modules/mcp-remote/dist/proxy.js" "$1" --transport "$strategy" ${extra[@]+"${extra[@]}"}
