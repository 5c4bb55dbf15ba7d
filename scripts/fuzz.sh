#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time (default 15 s each; FUZZ_SECONDS to change)
# on the nightly toolchain, from the committed seeds in fuzz/corpus. Any crash fails, and
# its input is left in fuzz/artifacts/<target>/ to be committed as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-15}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
targets=(sse line_framer jsonrpc www_authenticate header_file)
build_log="$(mktemp)"
if ! cargo +nightly fuzz build -O >"$build_log" 2>&1; then
  tail -30 "$build_log"; echo "0 passed, 1 failed"; exit 1
fi
passed=0
for t in "${targets[@]}"; do
  # Work on a scratch copy of the corpus so the committed seeds stay small.
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/"
  if out="$(cargo +nightly fuzz run -O "$t" "$work" -- -max_total_time="$seconds" 2>&1)"; then
    echo "ok   $t: $(echo "$out" | grep -Eo 'Done [0-9]+ runs' | tail -1)"
    passed=$((passed + 1))
  else
    echo "FAIL $t"; echo "$out" | tail -30
    rm -rf "$work"
    echo "$passed passed, 1 failed"
    exit 1
  fi
  rm -rf "$work"
done
echo "$passed passed, 0 failed"
