#!/usr/bin/env bash
# make bench: every number in BENCHMARKS.md, measured in one run on this machine.
# FMA peak, GEMM GFLOP/s per shape (% of peak), and the training step of a
# 4-block transformer (width 128 and 512, 256 x 65 tokens) against the same
# model in PyTorch with the same thread count; CLIP ViT-B/32 inference against
# PyTorch; tokenizer and image decode + preprocess throughput. Step counts:
# CLIP_REPS (5), TOK_REPS (20), IMG_SECS (2). Raw JSON lines go to
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
  $py bench/summarize.py gemm
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
  $py bench/summarize.py train "$v" "$t" "$peak"
done
echo

# ---- CLIP ViT-B/32 inference: vlp vs PyTorch, same model file, same threads -------------
# The model is a random init (vlp init --preset ViT-B-32), written once to bench/out/vitb32.
# PyTorch runs first and dumps its features of the shared deterministic inputs; clip_bench
# checks against them, so both sides are known to compute the same function.
clip_reps="${CLIP_REPS:-5}"
model="$out/vitb32"
if [ ! -f "$model/model.safetensors" ]; then
  "$build/vlp" init --preset ViT-B-32 "$model" > /dev/null
fi
echo "## CLIP ViT-B/32 inference (random init via vlp init --preset ViT-B-32, $threads threads, median of $clip_reps)"
echo
t=$($py bench/torch_clip.py "$model" --threads "$threads" --reps "$clip_reps" --dump "$out/torch_clip_features.npy")
v=$(VLP_THREADS="$threads" "$build/bench/clip_bench" "$model" --reps "$clip_reps" --check "$out/torch_clip_features.npy")
echo "$v" >> "$res"; echo "$t" >> "$res"
$py bench/summarize.py clip "$v" "$t" "$peak"
echo

# ---- tokenizer and image input pipeline ----------------------------------------------------
echo "## CLIP BPE tokenizer (1 thread, the $(wc -l < tests/fixtures/clip/tokenizer.jsonl) fixture texts)"
echo
tok=$("$build/bench/tokenizer_bench" "${TOK_REPS:-20}")
echo "$tok" >> "$res"
$py bench/summarize.py tokenizer "$tok"
echo

echo "## Image decode + CLIP preprocessing to 224 (1 thread)"
echo
img=$("$build/bench/image_bench" "${IMG_SECS:-2}")
echo "$img" >> "$res"
$py bench/summarize.py image "$img" "$v"
echo
echo "PyTorch: $($py -c 'import torch; print(torch.__version__)') with $(grep -o '"openblas_config": *"[^"]*"' "$res" | head -n1 | cut -d'"' -f4)"
echo "raw results: $res"
