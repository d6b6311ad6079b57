#!/usr/bin/env bash
# make bench-train-full: the whole emoji-s recipe (configs/emoji-s.json, 600 steps of batch 256)
# in vlp and in PyTorch from the same initial weights on the same batches, plus vlp with a second
# seed (another initialisation and data order) to show run-to-run noise. Every model is scored
# by the same evaluator (vlp eval: retrieval on style and unseen, zero-shot categories), so the
# table compares training, not evaluation code. PyTorch takes ~35 min of the ~57.
#   THREADS (2), STEPS (600), SEED2 (1), DATA (data/emoji), SKIP_TORCH=1 (vlp only), ALBEF=0 (no
#   albef-s part: emoji-albef-s.json in vlp and in its PyTorch twin, see below), RERANK (16),
#   PARALLEL=1: PyTorch runs alongside the two vlp runs (e.g. THREADS=1 PARALLEL=1 on a busy
#   2-core machine; wall times then only say what that setting gave), WORDPIECE=0 (no
#   vlp_wordpiece_seed0: configs/emoji-s-wordpiece.json, the same recipe with its text tower fed
#   by WordPiece instead of CLIP BPE, seed 0)
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
steps="${STEPS:-600}"
seed2="${SEED2:-1}"
data="${DATA:-data/emoji}"
py=/usr/bin/python3
vlp="$build/vlp"
out=bench/out/train_full
cfg=configs/emoji-s.json

[ -f "$data/train.tsv" ] || "$vlp" data emoji --out "$data"
rm -rf "$out"
mkdir -p "$out"
common=(--data "$data/train.tsv" --no-eval --steps "$steps")
evaluate() { # NAME MODEL_DIR
  "$vlp" --threads "$threads" eval --model "$2" --data "$data/style.tsv" --data "$data/unseen.tsv" \
    --classes "$data/zeroshot.json" --json >"$out/$1.eval.json"
}
train_vlp() { # NAME SEED [CONFIG]
  local t0=$SECONDS
  VLP_PROGRESS=0 "$vlp" --threads "$threads" train --config "${3:-$cfg}" "${common[@]}" --seed "$2" --out "$out/$1" \
    --log-every 20 --save-every 0 2>"$out/$1.log"
  echo "{\"wall_s\": $((SECONDS - t0))}" >"$out/$1.time.json"
  evaluate "$1" "$out/$1/model"
  echo "$1: trained in $((SECONDS - t0)) s" >&2
}

run_torch() {
  echo "== PyTorch, seed 0 (same initial weights and batches as vlp seed 0; ~35 min on 2 threads)" >&2
  local t0=$SECONDS
  $py bench/torch_train_emoji.py "$out/dump" --steps "$steps" --warmup-steps 0 --threads "$threads" \
    --schedule-warmup $((steps < 60 ? steps : 60)) --schedule-total "$steps" --save "$out/torch_seed0" \
    --log-every 20 >"$out/torch_seed0.run.json" 2>"$out/torch_seed0.log"
  rm -rf "$out/dump/batches" # 0.5 GB
  evaluate torch_seed0 "$out/torch_seed0"
  echo "torch_seed0: trained in $((SECONDS - t0)) s" >&2
}
tpid=
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  # the order of the run's batches and each pair once (vlp train --dump-compact)
  "$vlp" --threads "$threads" train --config "$cfg" "${common[@]}" --seed 0 --out "$out/dump" --dump-batches "$steps" \
    --dump-compact >/dev/null
  if [ "${PARALLEL:-0}" = 1 ]; then
    run_torch &
    tpid=$!
  else
    run_torch
  fi
fi
echo "== vlp, seed 0" >&2
train_vlp vlp_seed0 0
echo "== vlp, seed $seed2" >&2
train_vlp "vlp_seed$seed2" "$seed2"
[ -z "$tpid" ] || wait "$tpid"
if [ "${WORDPIECE:-1}" != 0 ]; then
  echo "== vlp, seed 0, text fed by WordPiece" >&2
  train_vlp vlp_wordpiece_seed0 0 configs/emoji-s-wordpiece.json
fi

# ---- albef-s (ALBEF=0 skips): vlp seed 0 and its PyTorch twin (bench/torch_train_albef.py) from
# the same initial weights on the same batches; the twin draws its own MLM masks and ITM
# negatives (torch RNG), so the two agree within seed noise, not to round-off. Scored with ITC
# retrieval and ITM re-ranking of the top RERANK (16). PyTorch takes ~72 min of the ~95.
if [ "${ALBEF:-1}" != 0 ]; then
  acfg=configs/emoji-albef-s.json
  acommon=(--config "$acfg" --data "$data/train.tsv" --no-eval --steps "$steps" --seed 0)
  aeval() { # NAME MODEL_DIR
    "$vlp" --threads "$threads" eval --model "$2" --data "$data/style.tsv" --data "$data/unseen.tsv" \
      --rerank "${RERANK:-16}" --json >"$out/$1.eval.json"
  }
  echo "== albef-s, vlp seed 0" >&2
  t0=$SECONDS
  VLP_PROGRESS=0 "$vlp" --threads "$threads" train "${acommon[@]}" --out "$out/albef_vlp_seed0" --log-every 20 \
    --save-every 0 2>"$out/albef_vlp_seed0.log"
  echo "{\"wall_s\": $((SECONDS - t0))}" >"$out/albef_vlp_seed0.time.json"
  aeval albef_vlp_seed0 "$out/albef_vlp_seed0/model"
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    echo "== albef-s, PyTorch (same initial weights and batches; ~72 min on 2 threads)" >&2
    "$vlp" --threads "$threads" train "${acommon[@]}" --out "$out/albef_dump" --dump-batches "$steps" \
      --dump-compact >/dev/null
    t0=$SECONDS
    $py bench/torch_train_albef.py "$out/albef_dump" --config "$acfg" --steps "$steps" --warmup-steps 0 \
      --threads "$threads" --schedule-total "$steps" --save "$out/albef_torch_seed0" --log-every 20 \
      >"$out/albef_torch_seed0.run.json" 2>"$out/albef_torch_seed0.log"
    echo "{\"wall_s\": $((SECONDS - t0))}" >"$out/albef_torch_seed0.time.json"
    rm -rf "$out/albef_dump/batches"
    aeval albef_torch_seed0 "$out/albef_torch_seed0"
  fi
fi
$py bench/summarize_full.py "$out"
