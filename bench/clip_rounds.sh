#!/usr/bin/env bash
# make bench-clip: ViT-B/32 batch 1 / 32 in rounds of PyTorch, vlp, and vlp without fused epilogues
# and packed weights (VLP_FUSE=0 VLP_PACK=0), with the FMA peak before and after. ROUNDS (2).
cd "$(dirname "$0")/.."
[ -f bench/out/vitb32/model.safetensors ] || "${BUILD:-build}"/vlp init --preset ViT-B-32 bench/out/vitb32 >/dev/null
lscpu | grep "Model name"
OMP_NUM_THREADS=2 "${BUILD:-build}"/bench/fma_peak | tail -1
for r in $(seq "${ROUNDS:-2}"); do
  /usr/bin/python3 bench/torch_clip.py bench/out/vitb32 --threads 2 --reps 5 --dump bench/out/torch_clip_features.npy
  VLP_THREADS=2 "${BUILD:-build}"/bench/clip_bench bench/out/vitb32 --reps 5 --check bench/out/torch_clip_features.npy
  VLP_FUSE=0 VLP_PACK=0 VLP_THREADS=2 "${BUILD:-build}"/bench/clip_bench bench/out/vitb32 --reps 5
done
OMP_NUM_THREADS=2 "${BUILD:-build}"/bench/fma_peak | tail -1
