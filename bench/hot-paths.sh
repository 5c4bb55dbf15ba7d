#!/usr/bin/env bash
# The criterion micro-benchmarks (`cargo bench --bench hot_paths`), kept as files:
#
#   bench/results/hot_paths.log   the run's stdout (criterion's lines, the SSE linearity check)
#   bench/results/hot_paths.json  per benchmark: criterion's time estimate (ns per
#                                 iteration: the slope where criterion has one, else the
#                                 mean, as criterion prints it), its 95% interval, the
#                                 bytes per iteration and the resulting GiB/s
#
# Criterion's own files go to a temporary CRITERION_HOME, so no earlier run is mixed in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
CRITERION_HOME="$tmp" cargo bench --bench hot_paths | tee "$tmp/stdout"
cp "$tmp/stdout" bench/results/hot_paths.log
python3 - "$tmp" bench/results/hot_paths.json <<'PY'
import json, os, sys, time
home, out = sys.argv[1], sys.argv[2]
rows = []
for dirpath, _dirs, files in os.walk(home):
    if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        b = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        e = json.load(f)
    typical = e.get("slope") or e["mean"]
    tp = b.get("throughput") or {}
    nbytes = tp.get("Bytes") or tp.get("BytesDecimal")
    ns = typical["point_estimate"]
    rows.append({
        "id": b["full_id"],
        "time_ns": ns,
        "time_ns_95": [typical["confidence_interval"]["lower_bound"],
                       typical["confidence_interval"]["upper_bound"]],
        "estimate": "slope" if e.get("slope") else "mean",
        "median_ns": e["median"]["point_estimate"],
        "bytes_per_iter": nbytes,
        "gib_per_s": nbytes / ns * 1e9 / 2**30 if nbytes and ns else None,
    })
rows.sort(key=lambda r: r["id"])
linearity = [l.strip() for l in open(os.path.join(home, "stdout")) if l.startswith("sse linearity")]
doc = {"unix_time": int(time.time()), "benchmarks": rows, "sse_linearity": linearity}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print(f"wrote {out} ({len(rows)} benchmarks)")
PY
