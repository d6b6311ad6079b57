#!/usr/bin/env bash
# make bench-train: one training step of emoji-s (configs/emoji-s.json: batch 256, image 64, two
# 4-layer width-128 towers, AdamW) in vlp and in PyTorch, on the same batches from the same
# initial weights. vlp dumps its first WARM+STEPS loader batches and its initial model
# (vlp train --dump-batches), trains on the same batches (the loader order is a function of the
# seed), and bench/torch_train_emoji.py replays them. Reports the median step time over STEPS
# steps after WARM untimed ones, pairs/s, the ratio, and how far the two loss curves differ.
#   THREADS (2), STEPS (30), WARM (3), DATA (data/emoji: built with vlp data emoji if missing)
set -euo pipefail
build="${1:-build}"
threads="${THREADS:-2}"
steps="${STEPS:-30}"
warm="${WARM:-3}"
data="${DATA:-data/emoji}"
py=/usr/bin/python3 # Debian's python, where python3-torch lives
vlp="$build/vlp"
out=bench/out/train_emoji
n=$((steps + warm))

[ -f "$data/train.tsv" ] || "$vlp" data emoji --out "$data"
rm -rf "$out"
mkdir -p "$out"
common=(--config configs/emoji-s.json --data "$data/train.tsv" --no-eval)
"$vlp" --threads "$threads" train "${common[@]}" --out "$out" --dump-batches "$n" >/dev/null
# the schedule of the full 600-step run, stopped after n steps
VLP_PROGRESS=0 "$vlp" --threads "$threads" train "${common[@]}" --out "$out/vlp" --log-every 1 \
  --save-every 0 --stop-after "$n" >/dev/null 2>"$out/vlp.log"
t=$($py bench/torch_train_emoji.py "$out" --steps "$steps" --warmup-steps "$warm" --threads "$threads" \
  2>"$out/torch.log")
echo "$t" > "$out/torch.json"
$py - "$out/vlp/metrics.jsonl" "$t" "$warm" "$threads" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss_last"' in l]
t, warm, threads = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
vt = [r["step_s"] for r in rows if r["step"] > warm]
vl = [r["loss_last"] for r in rows]
vmed, B = statistics.median(vt), t["batch"]
tl = t["losses"][: len(vl)]
diff = max(abs(a - b) for a, b in zip(vl, tl))
print(f"# emoji-s training step, batch {B}, {threads} threads, median of {len(vt)} steps after {warm}")
print()
print("| impl | s/step | pairs/s |")
print("|---|---:|---:|")
print(f"| vlp | {vmed:.3f} | {B / vmed:.0f} |")
print(f"| PyTorch {t['torch']} | {t['median_step_s']:.3f} | {t['pairs_per_s']:.0f} |")
print()
print(f"vlp / PyTorch speed: {t['median_step_s'] / vmed:.2f}x; losses agree within {diff:.2e} over {len(vl)} steps "
      f"(first {vl[0]:.5f} vs {tl[0]:.5f}, last {vl[-1]:.5f} vs {tl[-1]:.5f})")
print(json.dumps({"bench": "train_emoji", "threads": threads, "batch": B, "vlp_median_s": round(vmed, 4),
                  "torch_median_s": t["median_step_s"], "speedup": round(t["median_step_s"] / vmed, 3),
                  "max_loss_diff": diff}))
PY
