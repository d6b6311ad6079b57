#!/usr/bin/env bash
# The vlp demo: build the emoji benchmark (shared/datasets/emoji.md) from npm, pre-train the
# emoji-s CLIP (configs/emoji-s.json) for a few minutes, evaluate retrieval on the style and
# unseen splits and zero-shot category classification, then classify two unseen-style images.
#   BUILD (build)    where vlp was built          DATA (data/emoji)   benchmark directory
#   RUN (runs/emoji-s-demo)  run directory        STEPS (150)         optimiser steps (600 = the full recipe)
#   MINUTES (8)      wall-clock cap on training (stops with a checkpoint; rerun with RESUME=1)
#   THREADS (all cores)
set -euo pipefail
build="${BUILD:-build}"
data="${DATA:-data/emoji}"
run="${RUN:-runs/emoji-s-demo}"
steps="${STEPS:-150}"
minutes="${MINUTES:-8}"
vlp="$build/vlp"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

echo "== 1. the emoji benchmark -> $data"
if [ -f "$data/train.tsv" ] && [ -f "$data/zeroshot.json" ]; then
  echo "already there"
else
  "$vlp" data emoji --out "$data"
fi
wc -l "$data/train.tsv" "$data/style.tsv" "$data/unseen.tsv" | sed 's/^/  /'

echo "== 2. pre-train emoji-s: $steps steps (at most $minutes min) -> $run"
warm=$((steps / 10 > 0 ? steps / 10 : 1))
args=(--config configs/emoji-s.json --data "$data/train.tsv" --no-eval --out "$run" --steps "$steps"
      --warmup "$warm" --save-every 50 --max-minutes "$minutes")
if [ "${RESUME:-0}" = 1 ]; then args+=(--resume); else rm -rf "$run"; fi
"$vlp" "${threads[@]}" train "${args[@]}"
model="$run/model"
if [ ! -f "$model/model.safetensors" ]; then # stopped by the time cap: use the last checkpoint
  model="$run/checkpoints/$(cat "$run/checkpoints/latest")"
  echo "(training stopped early: evaluating $model; RESUME=1 $0 continues it)"
fi

echo "== 3. evaluation: retrieval on style (seen concepts, unseen artist) and unseen, zero-shot categories"
"$vlp" "${threads[@]}" eval --model "$model" --data "$data/style.tsv" --data "$data/unseen.tsv" \
  --classes "$data/zeroshot.json"

echo "== 4. zero-shot classification of two twitter-style images"
sed -n '/"classes"/,/]/p' "$data/zeroshot.json" | sed -n 's/^ *"\(.*\)",\{0,1\}$/\1/p' > "$run/classes.txt"
img1=$(sed -n 's/.*"filepath": "\(images\/twitter\/1f436[^"]*\)".*/\1/p' "$data/zeroshot.json" | head -n1)
img2=$(sed -n 's/.*"filepath": "\(images\/twitter\/1f355[^"]*\)".*/\1/p' "$data/zeroshot.json" | head -n1)
imgs=()
for i in "$img1" "$img2"; do [ -n "$i" ] && imgs+=("$data/$i"); done
"$vlp" "${threads[@]}" classify --model "$model" --labels-file "$run/classes.txt" \
  --template "an emoji of {}" --template "a {} emoji" --top-k 3 "${imgs[@]}"

echo "== 5. curves"
"$vlp" plot "$run"
