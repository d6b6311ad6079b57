#!/usr/bin/env python3
"""The downstream results matrix of bench/tasks.sh (make bench-tasks) as markdown.

usage: summarize_tasks.py TASKS_DIR [RECIPES_DIR]
TASKS_DIR holds NAME.TASK.SPLIT.json (vlp eval --task ... --json) and NAME_probe.vqa.SPLIT.json
(vlp probe --json); RECIPES_DIR (bench/out/recipes) adds captioning BLEU-4 / CIDEr-D of the cap
recipe. Cells are accuracy in % (vqa: the mean over its question types, as vlp score)."""
import glob
import json
import os
import sys

TASKS = ["vqa", "nlvr", "mc", "ground2", "ground3"]
SPLITS = ["style", "unseen"]
LABELS = {"clip": "emoji-s dual encoder, zero-shot", "clip_probe": "emoji-s dual encoder, linear probe (category VQA)"}


def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def acc(d):
    m = d.get("metrics", d)
    return m.get("overall", m.get("accuracy"))


def baseline(d):
    m = d.get("metrics", d)
    if "overall_majority" in m:
        return f"majority {100 * m['overall_majority']:.1f}"
    parts = []
    if "chance" in m:
        parts.append(f"chance {100 * m['chance']:.1f}")
    if "majority" in m:
        parts.append(f"majority {100 * m['majority']:.1f}")
    return ", ".join(parts)


def main():
    tdir = sys.argv[1]
    rdir = sys.argv[2] if len(sys.argv) > 2 else "bench/out/recipes"
    res = {}
    for p in glob.glob(os.path.join(tdir, "*.json")):
        parts = os.path.basename(p)[:-5].split(".")
        if len(parts) == 3 and parts[1] in TASKS and parts[2] in SPLITS:
            d = load(p)
            if d:
                res[tuple(parts)] = d
    names = sorted({k[0] for k in res}, key=lambda n: (not n.startswith("clip"), n))
    cols = [(t, s) for t in TASKS for s in SPLITS]
    print("| model | " + " | ".join(f"{t} {s}" for t, s in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for n in names:
        cells = []
        for t, s in cols:
            d = res.get((n, t, s))
            cells.append(f"{100 * acc(d):.1f}" if d and acc(d) is not None else "-")
        label = LABELS.get(n, n.replace("ft-", "emoji-") + "-s fine-tuned" if n.startswith("ft-") else n)
        print(f"| {label} | " + " | ".join(cells) + " |")
    base = []
    for t, s in cols:
        d = next((res[k] for k in res if k[1] == t and k[2] == s and not k[0].endswith("_probe")), None)
        base.append(baseline(d) if d else "-")
    print("| baseline | " + " | ".join(base) + " |")
    caps = [(s, load(os.path.join(rdir, f"cap.caption_{s}.json"))) for s in SPLITS]
    caps = [(s, c) for s, c in caps if c]
    if caps:
        print("\nCaptioning, emoji-cap-s after pre-training (beam search):\n")
        print("| split | BLEU-4 | CIDEr-D |")
        print("|---|---:|---:|")
        for s, c in caps:
            m = c.get("metrics", c)
            print(f"| {s} | {m.get('bleu4', float('nan')):.4f} | {m.get('cider_d', float('nan')):.4f} |")


if __name__ == "__main__":
    main()
