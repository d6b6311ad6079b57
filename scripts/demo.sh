#!/usr/bin/env bash
# The vlp demo: build the emoji benchmark (shared/datasets/emoji.md) from npm, pre-train the
# emoji-s CLIP (configs/emoji-s.json) for a few minutes, evaluate retrieval on the style and
# unseen splits and zero-shot category classification, then classify two unseen-style images;
# then pre-train the ALBEF-style fusion model (configs/emoji-albef-s.json) briefly, fine-tune it for
# VQA (configs/ft-albef-s-vqa.json), let it answer questions about unseen test images and write
# an HTML report of both runs (VL=0 stops after the CLIP part).
#   BUILD (build)    where vlp was built          DATA (data/emoji)   benchmark directory
#   RUN (runs/emoji-s-demo)  run directory        STEPS (150)         optimiser steps (600 = the full recipe)
#   MINUTES (8)      wall-clock cap on training (stops with a checkpoint; rerun with RESUME=1)
#   THREADS (all cores)  VL_STEPS (150) / FT_STEPS (150): fusion pre-training / VQA fine-tuning steps
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

[ "${VL:-1}" = 0 ] && exit 0
vl_steps="${VL_STEPS:-150}"
ft_steps="${FT_STEPS:-150}"
echo "== 6. the downstream task files (shared/datasets/emoji-tasks.md) -> $data/tasks"
[ -f "$data/tasks/summary.json" ] || "$vlp" data emoji-tasks --out "$data" >/dev/null
echo "   $(ls "$data/tasks"/*.jsonl | wc -l) task files"

echo "== 7. pre-train emoji-albef-s (ITC + ITM + MLM): $vl_steps steps (at most $minutes min) -> $run-albef"
rm -rf "$run-albef"
"$vlp" "${threads[@]}" train --config configs/emoji-albef-s.json --data "$data/train.tsv" --no-eval \
  --out "$run-albef" --steps "$vl_steps" --warmup $((vl_steps / 10 > 0 ? vl_steps / 10 : 1)) --save-every 50 \
  --max-minutes "$minutes"
pre="$run-albef/model"
[ -f "$pre/model.safetensors" ] || pre="$run-albef/checkpoints/$(cat "$run-albef/checkpoints/latest")"

echo "== 8. fine-tune it for VQA: $ft_steps steps -> $run-vqa"
rm -rf "$run-vqa"
"$vlp" "${threads[@]}" finetune --config configs/ft-albef-s-vqa.json --pretrained "$pre" \
  --train "$data/tasks/vqa-train.jsonl" --no-eval --steps "$ft_steps" --out "$run-vqa" --save-every 0
"$vlp" "${threads[@]}" eval --task vqa --model "$run-vqa/model" --data "$data/tasks/vqa-unseen.jsonl" \
  --out "$run-vqa/eval_vqa_unseen.json"

echo "== 9. questions about unseen test images (question -> answer, [true answer])"
/usr/bin/env python3 - "$data/tasks/vqa-unseen.jsonl" "$run-vqa/predictions_vqa_unseen.jsonl" <<'PY' ||
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
preds = [json.loads(l) for l in open(sys.argv[2])]
for r, p in list(zip(rows, preds))[::185][:6]:
    mark = "right" if p["answer"] == r["answer"] else "wrong"
    print(f"  {r['image'].split('/')[-1]:28s} {r['question']:45s} -> {p['answer']:20s} [{r['answer']}] {mark}")
PY
  paste -d' ' <(head -n 6 "$data/tasks/vqa-unseen.jsonl") <(head -n 6 "$run-vqa/predictions_vqa_unseen.jsonl")

echo "== 10. report"
"$vlp" report "$run-albef" "$run-vqa" --out "$run-report.html" --title "vlp demo: emoji-albef-s, VQA"
echo "open $run-report.html in a browser: training curves, the VQA metrics and a gallery of answers"
