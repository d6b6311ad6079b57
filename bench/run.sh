#!/usr/bin/env bash
# make bench: every number in BENCHMARKS.md, measured in one run on this machine.
# FMA peak, GEMM GFLOP/s per shape (% of peak), and the training step of a
# 4-block transformer (width 128 and 512, 256 x 65 tokens) against the same
# model in PyTorch with the same thread count. Raw JSON lines go to
# bench/out/results.jsonl; the summary is printed as markdown.
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
out=bench/out
mkdir -p "$out"
res="$out/results.jsonl"
: > "$res"
py=/usr/bin/python3   # Debian's python, where python3-torch lives

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
echo "# vlp benchmarks ($(date -u +%Y-%m-%d), $cpu, $threads threads)"
echo

peak_line=$(OMP_NUM_THREADS="$threads" "$build/bench/fma_peak" | tail -n1)
peak=$(echo "$peak_line" | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
peak1=$(OMP_NUM_THREADS="$threads" "$build/bench/fma_peak" | head -n1 | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
echo "{\"bench\":\"fma_peak\",\"threads\":$threads,\"gflops\":$peak,\"gflops_1thread\":$peak1,\"cpu\":\"$cpu\"}" >> "$res"
echo "FP32 FMA peak (measured): $peak GFLOP/s on $threads threads ($peak1 on 1)"
echo

echo "## GEMM (vlp_gemm, $threads threads, median of 7)"
echo
echo "| shape | op | M x N x K | GFLOP/s | % of peak |"
echo "|---|---|---|---:|---:|"
VLP_THREADS="$threads" "$build/bench/gemm_shapes" --peak "$peak" --threads "$threads" | tee -a "$res" |
  $py -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print(f"| {r[\"shape\"]} | {r[\"op\"]} | {r[\"M\"]} x {r[\"N\"]} x {r[\"K\"]} | {r[\"gflops\"]:.0f} | {r[\"pct_peak\"]:.0f}% |")'
echo

echo "## Training step: 4 pre-LN blocks, batch 256 x 65 tokens, fwd + bwd + AdamW ($threads threads)"
echo
echo "| width | vlp s/step | PyTorch s/step | speed-up | vlp GFLOP/s | vlp % of peak |"
echo "|---:|---:|---:|---:|---:|---:|"
for spec in "128 10 3" "512 3 1"; do
  set -- $spec
  w=$1; steps=$2; warm=$3
  v=$(VLP_THREADS="$threads" "$build/bench/train_step" --width "$w" --steps "$steps" --warmup "$warm" --threads "$threads")
  t=$($py bench/torch_train_step.py --width "$w" --steps "$steps" --warmup "$warm" --threads "$threads")
  echo "$v" >> "$res"; echo "$t" >> "$res"
  $py -c '
import json, sys
v, t, peak = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
g = v["gflop_per_step"] / v["median_s"]
print(f"| {v[\"width\"]} | {v[\"median_s\"]:.3f} | {t[\"median_s\"]:.3f} | {t[\"median_s\"]/v[\"median_s\"]:.2f}x | {g:.0f} | {100*g/peak:.0f}% |")' "$v" "$t" "$peak"
done
echo
echo "PyTorch: $($py -c 'import torch; print(torch.__version__)') with $(grep -o '"blas": *"[^"]*"' "$res" | head -n1 | cut -d'"' -f4)"
echo "raw results: $res"
