#!/usr/bin/env bash
# make bench-recipes: the fusion and generative pre-training recipes of the emoji benchmark
# (configs/emoji-{albef,vlmo,vilt,cap}-s.json, 600 steps of batch 256 each), trained and scored by
# vlp, for the table in BENCHMARKS.md next to the emoji-s dual encoder (bench-train-full).
#   RECIPES ("albef vlmo vilt cap"), THREADS (2), STEPS (600), DATA (data/emoji),
#   TASKS (DATA/tasks: caption-{style,unseen}.jsonl for the captioning recipe), RERANK (16: ITM re-scores
#   the ITC top 16), SKIP_TRAIN=1 (score the models already in bench/out/recipes), SKIP_SCORE=1
#   (train only), SAVE_EVERY (0: checkpoint every N steps), RESUME=1 (continue each recipe from its
#   last checkpoint: long recipes in pieces), VILT_STYLE=0 (ViLT on unseen only: see below).
# Each recipe: wall time of `vlp train` (data loading included), retrieval on style and unseen by
# ITC and by ITM re-ranking (ViLT has no unimodal encoders: every pair by ITM, 36,481 fusion passes
# on unseen, ~1 min, and 2.96 M on style, ~75 min on 2 threads), captioning BLEU-4 / CIDEr-D (beam search) for cap,
# and how much its decoder uses the image (bench/caption_image_use.c: nats per caption token under
# the pair's own image and under another's).
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
steps="${STEPS:-600}"
data="${DATA:-data/emoji}"
tasks="${TASKS:-$data/tasks}"
rerank="${RERANK:-16}"
vlp="$build/vlp"
out=bench/out/recipes
mkdir -p "$out"
[ -f "$data/train.tsv" ] || "$vlp" data emoji --out "$data"

train() { # RECIPE: one leg of training; with RESUME=1 it continues from the run's last checkpoint
  # (SAVE_EVERY > 0 writes them), so a long recipe can run in pieces, even at different thread
  # counts (the losses do not depend on them). Each leg appends {wall_s, threads} to RECIPE.legs.jsonl;
  # RECIPE.time.json sums the legs.
  local t0=$SECONDS resume=() legs="$out/$1.legs.jsonl"
  if [ "${RESUME:-0}" = 1 ] && ls "$out/$1/checkpoints" 2>/dev/null | grep -q step; then
    resume=(--resume)
  else
    rm -f "$legs" "$out/$1.log"
  fi
  local rc=0
  VLP_PROGRESS=0 "$vlp" --threads "$threads" train --config "configs/emoji-$1-s.json" --data "$data/train.tsv" \
    --no-eval --steps "$steps" --out "$out/$1" --log-every 20 --save-every "${SAVE_EVERY:-0}" "${resume[@]}" \
    2>>"$out/$1.log" || rc=$?
  echo "{\"wall_s\": $((SECONDS - t0)), \"threads\": $threads}" >>"$legs" # an interrupted leg counts too
  if [ $rc != 0 ]; then
    echo "$1: stopped (exit $rc, see $out/$1.log); continue with RESUME=1" >&2
    return $rc
  fi
  /usr/bin/python3 - "$legs" "$steps" >"$out/$1.time.json" <<'PY'
import json, sys
legs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
th = sorted({l["threads"] for l in legs})
print(json.dumps({"wall_s": sum(l["wall_s"] for l in legs), "steps": int(sys.argv[2]),
                  "threads": th[0] if len(th) == 1 else th, "legs": len(legs)}))
PY
  echo "$1: trained in $((SECONDS - t0)) s" >&2
}

score() { # RECIPE
  local m="$out/$1/model"
  case "$1" in
  vilt)
    local splits=(--data "$data/unseen.tsv")
    [ "${VILT_STYLE:-1}" = 0 ] || splits=(--data "$data/style.tsv" "${splits[@]}")
    "$vlp" --threads "$threads" eval --model "$m" "${splits[@]}" --max-pairs 3000000 --json >"$out/$1.eval.json"
    ;;
  cap)
    "$vlp" --threads "$threads" eval --model "$m" --data "$data/style.tsv" --data "$data/unseen.tsv" \
      --json >"$out/$1.eval.json"
    [ -f "$tasks/caption-style.jsonl" ] || "$vlp" data emoji-tasks --out "$data" >/dev/null
    for s in style unseen; do
      "$vlp" --threads "$threads" eval --task caption --model "$m" --data "$tasks/caption-$s.jsonl" \
        --predictions "$out/$1.caption_$s.jsonl" --json >"$out/$1.caption_$s.json"
    done
    # how much the decoder reads the image: caption likelihood under its own image vs another's
    for s in train style unseen; do
      printf '{"split": "%s", "result": %s}\n' "$s" "$(OMP_NUM_THREADS=$threads "$build/bench/caption_image_use" "$m" "$data/$s.tsv" 300)"
    done >"$out/$1.image_use.jsonl"
    ;;
  *)
    "$vlp" --threads "$threads" eval --model "$m" --data "$data/style.tsv" --data "$data/unseen.tsv" \
      --rerank "$rerank" --json >"$out/$1.eval.json"
    ;;
  esac
}

for r in ${RECIPES:-albef vlmo vilt cap}; do
  [ "${SKIP_TRAIN:-0}" = 1 ] || train "$r"
  [ "${SKIP_SCORE:-0}" = 1 ] || score "$r"
done
[ "${SKIP_SCORE:-0}" = 1 ] || /usr/bin/python3 bench/summarize_recipes.py "$out" bench/out/train_full
