#!/usr/bin/env bash
# The test command from README.md: unit and integration tests (the real binary against
# in-process mock servers), plus the rustls-only dependency check.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependency tree: rustls only (no OpenSSL, no native-tls)"
for crate in openssl-sys native-tls; do
  if cargo tree --locked -e normal -i "$crate" >/dev/null 2>&1; then
    echo "FAIL: $crate is in the dependency tree:"
    cargo tree --locked -e normal -i "$crate"
    exit 1
  fi
  echo "ok: no $crate"
done

echo "== cargo test"
cargo test --locked --all-targets
