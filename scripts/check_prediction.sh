#!/usr/bin/env bash
# Benchmark of `longseq report`'s predictions: sweep up to T_FIT (a report with --t-max), predict
# T_CHECK past the sweep (`recommend --json`), measure T_CHECK (`bench`), and print each mixer's
# predicted/measured time ratio. Timing: run it on an otherwise idle machine.
# Usage: scripts/check_prediction.sh [MIXERS] [T_FIT] [T_CHECK]
set -euo pipefail
cd "$(dirname "$0")/.."
MIXERS=${1:-exact,linformer,longformer,performer,reformer,mingru,lstm}
T_FIT=${2:-4096}
T_CHECK=${3:-16384}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
./build/longseq report --out "$OUT/report" --mixers "$MIXERS" --t-max "$T_FIT" --no-plot \
  --budget-minutes 3 >/dev/null
./build/longseq recommend --from "$OUT/report/report.json" --seq-len "$T_CHECK" --json \
  >"$OUT/predicted.json" 2>/dev/null || true
./build/longseq bench --mixers "$MIXERS" --seq-lens "$T_CHECK" --repeats 3 --json "$OUT/measured.json" \
  >/dev/null
/usr/bin/python3 - "$OUT/predicted.json" "$OUT/measured.json" "$T_FIT" "$T_CHECK" <<'PY'
import json, sys
pred = {r["mixer"]: r for r in json.load(open(sys.argv[1]))["ranking"]}
meas = {r["mixer"]: r for r in json.load(open(sys.argv[2]))["rows"] if not r["skipped"]}
print(f"# time at T={sys.argv[4]} predicted from a sweep to T={sys.argv[3]} vs measured (fwd+bwd)")
print(f"{'mixer':<11} {'predicted_ms':>13} {'measured_ms':>12} {'ratio':>6}  within 30%")
for m, r in meas.items():
    if m not in pred:
        print(f"{m:<11} {'-':>13} {r['median_ms']:12.1f}      -  (not swept far enough)")
        continue
    ratio = pred[m]["ms"] / r["median_ms"]
    print(f"{m:<11} {pred[m]['ms']:13.1f} {r['median_ms']:12.1f} {ratio:6.2f}  {'yes' if abs(ratio - 1) <= 0.3 else 'NO'}")
PY
