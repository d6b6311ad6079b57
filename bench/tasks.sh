#!/usr/bin/env bash
# make bench-tasks: the downstream results matrix (BENCHMARKS.md): the emoji-s dual encoder zero-shot
# on every task plus its linear probe on category VQA, and each fusion recipe fine-tuned on each
# task (configs/ft-albef-s-TASK.json: the same head, budget and optimiser for every family), all
# scored by vlp eval on style and unseen, with the chance / majority baselines of vlp score.
#   CLIP (bench/out/train_full/vlp_seed0/model), PRE (bench/out/recipes: FAMILY/model from
#   make bench-recipes), FAMILIES ("albef vlmo vilt"), TASKS ("vqa nlvr mc ground2 ground3"),
#   FT_STEPS (the configs' 300), THREADS (2), DATA (data/emoji), SKIP_FT=1 (score existing runs).
# Missing pre-trained models are skipped with a note, so a partial matrix still comes out.
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
data="${DATA:-data/emoji}"
clip="${CLIP:-bench/out/train_full/vlp_seed0/model}"
pre="${PRE:-bench/out/recipes}"
vlp="$build/vlp"
out=bench/out/tasks
mkdir -p "$out"
[ -f "$data/tasks/summary.json" ] || "$vlp" data emoji-tasks --out "$data" >/dev/null
tasks="${TASKS:-vqa nlvr mc ground2 ground3}"

score() { # NAME MODEL TASK
  for s in style unseen; do
    "$vlp" --threads "$threads" eval --task "$3" --model "$2" --data "$data/tasks/$3-$s.jsonl" --json \
      >"$out/$1.$3.$s.json"
  done
}

if [ -f "$clip/config.json" ]; then
  for t in $tasks; do score clip "$clip" "$t"; done
  for s in style unseen; do
    "$vlp" --threads "$threads" probe --model "$clip" --train "$data/tasks/vqa-train.jsonl" \
      --data "$data/tasks/vqa-$s.jsonl" --type category --json >"$out/clip_probe.vqa.$s.json"
  done
else
  echo "bench-tasks: no dual encoder at $clip (make bench-train-full first): its rows are skipped" >&2
fi

for f in ${FAMILIES:-albef vlmo vilt}; do
  if [ ! -f "$pre/$f/model/config.json" ]; then
    echo "bench-tasks: no pre-trained $f at $pre/$f/model (make bench-recipes first): skipped" >&2
    continue
  fi
  for t in $tasks; do
    run="$out/ft-$f-$t"
    if [ "${SKIP_FT:-0}" != 1 ]; then
      rm -rf "$run"
      t0=$SECONDS
      VLP_PROGRESS=0 "$vlp" --threads "$threads" finetune --config "configs/ft-albef-s-$t.json" \
        --pretrained "$pre/$f/model" --train "$data/tasks/$t-train.jsonl" --no-eval --save-every 0 \
        ${FT_STEPS:+--steps "$FT_STEPS"} --out "$run" 2>"$run.log"
      echo "{\"wall_s\": $((SECONDS - t0))}" >"$run.time.json"
    fi
    score "ft-$f" "$run/model" "$t"
  done
done
/usr/bin/python3 bench/summarize_tasks.py "$out"
