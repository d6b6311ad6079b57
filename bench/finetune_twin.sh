#!/usr/bin/env bash
# make bench-finetune: the albef-s fine-tuning (configs/ft-albef-s-{vqa,nlvr}.json) in vlp and in
# its PyTorch twin (bench/torch_finetune_albef.py), same pre-trained weights, same head
# initialisation, same batches. Per task: vlp finetune --dump-batches writes the initial model
# (backbone + fresh head), the examples of the first steps in order and a step-0 probe; the twin
# checks its step-0 loss, scores and gradients against the probe (--check, relative 1e-4), then
# both train WARM + STEPS steps on those batches; prints the median s/step, examples/s, the ratio.
#   PRE     the pre-trained albef-s model (default bench/out/recipes/albef/model, from make bench-recipes)
#   THREADS (2), STEPS (30), WARM (3), DATA (data/emoji: the task files, vlp data emoji-tasks)
#   TASKS   ("vqa nlvr")
#   FULL=1  instead: the configs' whole runs (300 steps) in both, each scored by vlp eval on the
#           style and unseen splits, accuracies side by side (the twin's model saved with --save)
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
steps="${STEPS:-30}"
warm="${WARM:-3}"
data="${DATA:-data/emoji}"
pre="${PRE:-bench/out/recipes/albef/model}"
tasks="${TASKS:-vqa nlvr}"
full="${FULL:-0}"
py=/usr/bin/python3 # Debian's python, where python3-torch lives
vlp="$build/vlp"
out=bench/out/finetune_twin

if [ ! -f "$pre/config.json" ]; then
  echo "bench-finetune: no pre-trained albef-s model at $pre (make bench-recipes, or PRE=DIR from" >&2
  echo "  vlp train --config configs/emoji-albef-s.json)" >&2
  exit 1
fi
[ -f "$data/tasks/vqa-train.jsonl" ] || "$vlp" data emoji-tasks --out "$data"
mkdir -p "$out"

for task in $tasks; do
  cfg=configs/ft-albef-s-$task.json
  run=$out/$task
  rm -rf "$run"
  common=(--config "$cfg" --pretrained "$pre" --train "$data/tasks/$task-train.jsonl" --no-eval --save-every 0)
  if [ "$full" = 1 ]; then
    n=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" "$cfg")
    tw=0
    ts=$n
  else
    n=$((steps + warm))
    tw=$warm
    ts=$steps
  fi
  "$vlp" --threads "$threads" finetune "${common[@]}" --out "$run" --dump-batches "$n" >/dev/null
  if ! $py bench/torch_finetune_albef.py "$run" --check --threads "$threads" >"$run/check.json" 2>/dev/null; then
    echo "$task: the PyTorch twin's step-0 loss/gradients differ from vlp's: $(cat "$run/check.json")" >&2
    exit 1
  fi
  # vlp: the config's schedule, stopped after n steps (FULL: the whole run)
  stop=(--stop-after "$n")
  [ "$full" = 1 ] && stop=()
  VLP_PROGRESS=0 "$vlp" --threads "$threads" finetune "${common[@]}" --out "$run/vlp" --log-every 1 \
    "${stop[@]}" >/dev/null 2>"$run/vlp.log"
  save=()
  [ "$full" = 1 ] && save=(--save "$run/torch_model")
  t=$($py bench/torch_finetune_albef.py "$run" --steps "$ts" --warmup-steps "$tw" --threads "$threads" \
    "${save[@]}" 2>"$run/torch.log")
  echo "$t" > "$run/torch.json"
  scores=()
  if [ "$full" = 1 ]; then
    for split in style unseen; do
      f=$data/tasks/$task-$split.jsonl
      for impl in vlp torch; do
        m=$run/vlp/model
        [ "$impl" = torch ] && m=$run/torch_model
        "$vlp" --threads "$threads" eval --task "$task" --model "$m" --data "$f" --out "$run/eval_${impl}_$split.json" \
          >"$run/eval_${impl}_$split.txt" 2>&1
      done
      scores+=("$split")
    done
  fi
  echo
  $py - "$run" "$task" "$warm" "$threads" "$full" "${scores[@]}" <<'PY'
import json, os, statistics, sys
run, task, warm, threads, full = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
splits = sys.argv[6:]
rows = [json.loads(l) for l in open(os.path.join(run, "vlp", "metrics.jsonl")) if '"loss_last"' in l]
t, ck = json.load(open(os.path.join(run, "torch.json"))), json.load(open(os.path.join(run, "check.json")))
skip = 0 if full else warm
vt = [r["step_s"] for r in rows if r["step"] > skip]
vl = [r["loss_last"] for r in rows]
vmed, B = statistics.median(vt), t["batch"]
tl = t["losses"][: len(vl)]
diff = max(abs(a - b) for a, b in zip(vl, tl))
print(f"# albef-s fine-tuning on {task}, batch {B}, {threads} threads, median of {len(vt)} steps after {skip}")
print()
print("| impl | s/step | examples/s |")
print("|---|---:|---:|")
print(f"| vlp | {vmed:.3f} | {B / vmed:.0f} |")
print(f"| PyTorch {t['torch']} | {t['median_step_s']:.3f} | {t['examples_per_s']:.0f} |")
print()
print(f"vlp / PyTorch speed: {t['median_step_s'] / vmed:.2f}x. Step 0: loss {ck['loss']['vlp']:.6f} vs "
      f"{ck['loss']['torch']:.6f}, scores within {ck['scores_rel_diff']:.1e}, gradients within "
      f"{ck['grad_max_rel_diff']:.1e} (relative). Loss curves differ by at most {diff:.4f} over {len(vl)} steps "
      f"(first {vl[0]:.4f} vs {tl[0]:.4f}, last {vl[-1]:.4f} vs {tl[-1]:.4f})")
res = {"bench": "finetune_twin", "task": task, "threads": threads, "batch": B, "vlp_median_s": round(vmed, 4),
       "torch_median_s": t["median_step_s"], "speedup": round(t["median_step_s"] / vmed, 3),
       "step0_loss_rel_diff": ck["loss"]["rel_diff"], "step0_grad_rel_diff": ck["grad_max_rel_diff"],
       "max_loss_diff": diff}
if splits:
    print()
    print("| split | vlp accuracy | PyTorch accuracy |")
    print("|---|---:|---:|")
    for s in splits:
        acc = {}
        for impl in ("vlp", "torch"):
            m = json.load(open(os.path.join(run, f"eval_{impl}_{s}.json")))["metrics"]
            acc[impl] = m["overall"] if "overall" in m else m["accuracy"]  # vqa: mean over question types
        print(f"| {s} | {100 * acc['vlp']:.2f}% | {100 * acc['torch']:.2f}% |")
        res[f"{s}_accuracy"] = acc
print(json.dumps(res))
PY
done
