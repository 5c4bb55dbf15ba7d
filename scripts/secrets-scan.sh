#!/usr/bin/env bash
# Run the integration suite with every proxy logging at trace level to a file, then search
# those logs for every token, client secret, header value, authorization code and session
# id the tests use. Any hit is a leak: the scan fails.
set -uo pipefail
cd "$(dirname "$0")/.."
dir="$(mktemp -d "${TMPDIR:-/tmp}/clerk-trace.XXXXXX")"
CLERK_MCP_TEST_TRACE_DIR="$dir" cargo test --locked --test it -q >"$dir/test-output.txt" 2>&1
status=$?
files=$(ls "$dir"/proxy-*.log 2>/dev/null | wc -l)
bytes=$(cat "$dir"/proxy-*.log 2>/dev/null | wc -c)
echo "trace logs: $files files, $bytes bytes"
if [ "$status" -ne 0 ] || [ "$files" -lt 20 ]; then
  echo "FAIL: the test suite did not run cleanly with trace logging (see $dir/test-output.txt)"
  # CI keeps only this output, so show which tests failed and why.
  grep -E -A40 '^failures:$' "$dir/test-output.txt" | head -150 || tail -60 "$dir/test-output.txt"
  exit 1
fi
# A positive control: the logs hold what the proxy does log.
if ! grep -q "session initialized" "$dir"/proxy-*.log; then
  echo "FAIL: the trace logs lack the expected entries; is logging to file working?"
  exit 1
fi
# Secrets the tests hand out (tests/it): header values, client secrets, the mock
# authorization server's access and refresh tokens and codes, session ids.
patterns=(
  'tok-SECRET-123' 'team-SECRET-456' 's3cr3t-value' 'tok-123'
  '\bat-[0-9]+\b' '\brt-[0-9]+\b' '\bcode-[0-9]+\b' '\bdev-[0-9]+\b'
  '\bsession-[0-9]+\b' '\blegacy-[0-9]+\b'
)
leaks=0
for p in "${patterns[@]}"; do
  if grep -E -l -- "$p" "$dir"/proxy-*.log >/dev/null 2>&1; then
    echo "LEAK: /$p/ found in:"; grep -E -n -- "$p" "$dir"/proxy-*.log | head -5
    leaks=$((leaks + 1))
  fi
done
if [ "$leaks" -eq 0 ]; then
  echo "secrets scan: ${#patterns[@]} patterns, none found"
  rm -rf "$dir"
  exit 0
fi
echo "secrets scan: $leaks of ${#patterns[@]} patterns found (logs kept in $dir)"
exit 1
