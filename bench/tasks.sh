#!/usr/bin/env bash
# make bench-tasks: the downstream results matrix (BENCHMARKS.md): the emoji-s dual encoder zero-shot
# on every task plus its linear probe on category VQA, and each fusion recipe fine-tuned on each
# task (configs/ft-albef-s-TASK.json: the same head, budget and optimiser for every family), all
# scored by vlp eval on style and unseen, with the chance / majority baselines of vlp score.
#   CLIP (bench/out/train_full/vlp_seed0/model), PRE (bench/out/recipes: FAMILY/model from
#   make bench-recipes), FAMILIES ("albef vlmo vilt"), TASKS ("vqa nlvr mc ground2 ground3"),
#   FT_STEPS (the configs' 300), THREADS (2), DATA (data/emoji), SKIP_FT=1 (score existing runs),
#   CAP=0 (no captioning-family rows: configs/ft-cap-s-{vqa,caption}.json on PRE/cap/model).
# Fusion families also get zero-shot multiple choice (their pre-trained ITM head, no fine-tuning),
# and those with ITC heads (albef, vlmo, cap) every task zero-shot by the dual encoder's protocols
# on those heads (vlp eval --protocol itc: rows "zero-shot, ITC heads").
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

score() { # NAME MODEL TASK RUN_DIR [EVAL OPTIONS...]: the matrix cell (NAME.TASK.SPLIT.json) and, in
  # RUN_DIR, eval_TASK_SPLIT.json with its predictions for the report's gallery
  local name=$1 model=$2 task=$3 dir=$4
  shift 4
  mkdir -p "$dir"
  for s in style unseen; do
    "$vlp" --threads "$threads" eval --task "$task" --model "$model" --data "$data/tasks/$task-$s.jsonl" "$@" \
      --out "$dir/eval_${task}_$s.json" --json >"$out/$name.$task.$s.json"
  done
}

finetune() { # RUN CONFIG PRETRAINED TASK: fine-tune unless SKIP_FT=1, with its wall time
  [ "${SKIP_FT:-0}" != 1 ] || return 0
  rm -rf "$1"
  local t0=$SECONDS
  VLP_PROGRESS=0 "$vlp" --threads "$threads" finetune --config "$2" --pretrained "$3" \
    --train "$data/tasks/$4-train.jsonl" --no-eval --save-every 0 ${FT_STEPS:+--steps "$FT_STEPS"} --out "$1" 2>"$1.log"
  echo "{\"wall_s\": $((SECONDS - t0))}" >"$1.time.json"
}

zero_shot_itc() { # FAMILY: every task zero-shot on the pre-trained model's ITC heads, if it has them
  grep -q '"embed_dim": *[1-9]' "$pre/$1/model/config.json" || return 0
  for t in $tasks; do score "zsitc-$1" "$pre/$1/model" "$t" "$out/zsitc-$1" --protocol itc; done
}

if [ -f "$clip/config.json" ]; then
  for t in $tasks; do score clip "$clip" "$t" "$out/clip"; done
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
  # zero-shot multiple choice: the pre-trained ITM head scores each (image, choice)
  case " $tasks " in *" mc "*) score "zs-$f" "$pre/$f/model" mc "$out/zs-$f" ||
    echo "bench-tasks: no zero-shot mc for $f (see above)" >&2 ;; esac
  zero_shot_itc "$f"
  for t in $tasks; do
    finetune "$out/ft-$f-$t" "configs/ft-albef-s-$t.json" "$pre/$f/model" "$t"
    score "ft-$f" "$out/ft-$f-$t/model" "$t" "$out/ft-$f-$t"
  done
done
# the captioning family (emoji-cap-s): VQA answered by its decoder (generated, and the train answers
# ranked by likelihood, BLIP) and captioning fine-tuned; the pre-trained captions come from bench-recipes
if [ "${CAP:-1}" = 1 ] && [ -f "$pre/cap/model/config.json" ]; then
  zero_shot_itc cap
  for t in vqa caption; do
    run="$out/ft-cap-$t"
    finetune "$run" "configs/ft-cap-s-$t.json" "$pre/cap/model" "$t"
    if [ $t = vqa ]; then # both protocols; the rank results in a run dir of their own for the report
      score ft-cap-generate "$run/model" vqa "$run" --protocol generate
      score ft-cap-rank "$run/model" vqa "$run-rank" --protocol rank
    else
      score ft-cap "$run/model" caption "$run"
    fi
  done
elif [ "${CAP:-1}" = 1 ]; then
  echo "bench-tasks: no pre-trained cap at $pre/cap/model (make bench-recipes first): skipped" >&2
fi
# one HTML page over every run of the matrix: metric tables, fine-tuning curves, a gallery of examples
runs=()
for d in "$out"/clip "$out"/zs-* "$out"/zsitc-* "$out"/ft-*; do [ -d "$d" ] && runs+=("$d"); done
[ ${#runs[@]} = 0 ] || "$vlp" report "${runs[@]}" --out "$out/report.html" --title "vlp downstream matrix (make bench-tasks)" \
  --gallery 6 >&2 || echo "bench-tasks: vlp report failed (see above); the tables follow" >&2
/usr/bin/python3 bench/summarize_tasks.py "$out" "$pre"
