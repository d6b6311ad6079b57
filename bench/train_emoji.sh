#!/usr/bin/env bash
# make bench-train: one training step of emoji-s (configs/emoji-s.json: batch 256, image 64, two
# 4-layer width-128 towers, AdamW) in vlp and in PyTorch, on the same batches from the same
# initial weights. vlp dumps its first WARM+STEPS loader batches and its initial model
# (vlp train --dump-batches), trains on the same batches (the loader order is a function of the
# seed), and bench/torch_train_emoji.py replays them. Reports the median step time over STEPS
# steps after WARM untimed ones, pairs/s, the ratio, and how far the two loss curves differ.
#   THREADS (2), STEPS (30), WARM (3), DATA (data/emoji: built with vlp data emoji if missing)
# Then the same for albef-s (configs/emoji-albef-s.json: ITC + ITM + MLM) against
# bench/torch_train_albef.py, after checking the twin's step-0 losses and gradients against vlp's
# with vlp's own MLM masks and ITM negatives (--check); ALBEF=0 skips this part.
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

# ---- albef-s --------------------------------------------------------------------------------------
[ "${ALBEF:-1}" = 0 ] && exit 0
acfg=configs/emoji-albef-s.json
aout=bench/out/train_albef
rm -rf "$aout"
mkdir -p "$aout"
acommon=(--config "$acfg" --data "$data/train.tsv" --no-eval)
# the batches, the initial model and RUN/probe (vlp's step-0 losses, draws and gradients)
"$vlp" --threads "$threads" train "${acommon[@]}" --out "$aout" --dump-batches "$n" >/dev/null
if ! $py bench/torch_train_albef.py "$aout" --check --threads "$threads" >"$aout/check.json" 2>/dev/null; then
  echo "albef-s: the PyTorch twin's step-0 losses/gradients differ from vlp's: $(cat "$aout/check.json")" >&2
  exit 1
fi
VLP_PROGRESS=0 "$vlp" --threads "$threads" train "${acommon[@]}" --out "$aout/vlp" --log-every 1 \
  --save-every 0 --stop-after "$n" >/dev/null 2>"$aout/vlp.log"
t=$($py bench/torch_train_albef.py "$aout" --config "$acfg" --steps "$steps" --warmup-steps "$warm" \
  --threads "$threads" 2>"$aout/torch.log")
echo "$t" > "$aout/torch.json"
echo
$py - "$aout/vlp/metrics.jsonl" "$t" "$warm" "$threads" "$aout/check.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss_last"' in l]
t, warm, threads = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ck = json.load(open(sys.argv[5]))
vt = [r["step_s"] for r in rows if r["step"] > warm]
vl = [r["loss_last"] for r in rows]
vmed, B = statistics.median(vt), t["batch"]
tl = t["losses"][: len(vl)]
diff = max(abs(a - b) for a, b in zip(vl, tl))
print(f"# emoji-albef-s training step (ITC + ITM + MLM), batch {B}, {threads} threads, median of {len(vt)} steps "
      f"after {warm}")
print()
print("| impl | s/step | pairs/s |")
print("|---|---:|---:|")
print(f"| vlp | {vmed:.3f} | {B / vmed:.0f} |")
print(f"| PyTorch {t['torch']} | {t['median_step_s']:.3f} | {t['pairs_per_s']:.0f} |")
print()
print(f"vlp / PyTorch speed: {t['median_step_s'] / vmed:.2f}x. Step 0 with vlp's MLM masks and ITM negatives: "
      f"ITC {ck['itc']['vlp']:.6f} vs {ck['itc']['torch']:.6f}, total {ck['loss']['vlp']:.6f} vs "
      f"{ck['loss']['torch']:.6f}, gradients within {ck['grad_max_rel_diff']:.1e} (relative). Loss curves with "
      f"each side's own draws differ by at most {diff:.3f} over {len(vl)} steps (first {vl[0]:.4f} vs {tl[0]:.4f}, "
      f"last {vl[-1]:.4f} vs {tl[-1]:.4f})")
print(json.dumps({"bench": "train_albef", "threads": threads, "batch": B, "vlp_median_s": round(vmed, 4),
                  "torch_median_s": t["median_step_s"], "speedup": round(t["median_step_s"] / vmed, 3),
                  "step0_itc_diff": ck["itc"]["abs_diff"], "step0_loss_diff": ck["loss"]["abs_diff"],
                  "step0_grad_rel_diff": ck["grad_max_rel_diff"], "max_loss_diff": diff}))
PY
