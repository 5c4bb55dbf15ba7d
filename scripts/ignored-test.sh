#!/usr/bin/env bash
# Run one #[ignore]d test of tests/it by its exact name, and fail unless that test exists,
# ran and passed. `cargo test -- --ignored --exact NAME` alone passes with "0 passed" when
# NAME matches nothing (a renamed or deleted test).
#   scripts/ignored-test.sh auth::real_browser_chromium
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -eq 1 ] || { echo "usage: $0 module::test_name" >&2; exit 2; }
name=$1

list=$(cargo test --locked --test it -- --ignored --exact "$name" --list 2>&1) || {
  printf '%s\n' "$list"
  echo "FAIL: cannot list the tests in tests/it (above)"
  exit 1
}
if ! grep -qxF "$name: test" <<<"$list"; then
  printf '%s\n' "$list"
  echo "FAIL: tests/it has no #[ignore] test named $name (renamed? the list is above)"
  exit 1
fi

out=$(cargo test --locked --test it -- --ignored --exact "$name" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ]; then
  echo "FAIL: $name (cargo test exit status $rc)"
  exit 1
fi
if ! grep -qxF "test $name ... ok" <<<"$out" ||
  ! grep -qE '^test result: ok\. 1 passed; 0 failed;' <<<"$out"; then
  echo "FAIL: $name: want its line 'test $name ... ok' and 'test result: ok. 1 passed; 0 failed'"
  exit 1
fi
