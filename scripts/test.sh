#!/usr/bin/env bash
# The test command from README.md: unit and integration tests (the real binary against
# in-process mock servers), plus the rustls-only dependency check.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependency tree, every target: rustls only (no OpenSSL, no native-tls), pure-Rust D-Bus"
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for crate in openssl-sys native-tls libdbus-sys; do
  # A crate outside the graph: `cargo tree -i` exits non-zero with exactly this line on
  # stderr. Any other failure (a bad lockfile, a fetch it cannot make) is not an answer.
  absent="error: package ID specification \`$crate\` did not match any packages"
  if tree=$(cargo tree --locked -e normal --target all -i "$crate" 2>"$err"); then
    # Listed in Cargo.lock as an optional dependency's, but built for no target.
    if [ -z "$tree" ] && [ "$(head -n 1 "$err")" = "warning: nothing to print." ]; then
      echo "ok: no $crate (in Cargo.lock, built for no target)"
      continue
    fi
    echo "FAIL: $crate is in the dependency tree:"
    printf '%s\n' "$tree"
    exit 1
  elif [ -n "$tree" ] || [ "$(cat "$err")" != "$absent" ]; then
    echo "FAIL: cargo tree -i $crate failed, so whether $crate is a dependency is unknown:"
    cat "$err"
    exit 1
  fi
  echo "ok: no $crate"
done

echo "== cargo test"
cargo test --locked --all-targets
