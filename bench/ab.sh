#!/bin/sh
# A/B run of two clerk-mcp-server builds, kept as bench/results/ab-NAME.json.
#
#   bench/ab.sh NAME OLD_BINARY NEW_BINARY [more proxy-bench options]
#   bench/ab.sh self BINARY BINARY          # the same binary twice: the run's noise
#
# Runs `cargo bench --bench proxy -- --quick --no-mcp-remote --bin old=OLD --bin new=NEW`
# with --out in a temporary directory (so bench/results/latest.json and ratios.svg are
# left alone), then copies that run's latest.json to bench/results/ab-NAME.json.
# Extra options go to the bench after those (a later --rounds, say).
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 NAME OLD_BINARY NEW_BINARY [proxy bench options]" >&2
    exit 2
fi
name=$1 old=$2 new=$3
shift 3
case $name in
    *[!A-Za-z0-9._-]* | '') echo "$0: NAME: letters, digits, '.', '_', '-'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
cargo bench --bench proxy -- --quick --no-mcp-remote \
    --bin "old=$old" --bin "new=$new" --out "$tmp" "$@"
cp "$tmp/latest.json" "bench/results/ab-$name.json"
echo "wrote bench/results/ab-$name.json"
