#!/usr/bin/python3
"""Table of bench/train_full.sh: the full emoji-s recipe in vlp (two seeds) and PyTorch, each scored
by vlp eval. Usage: bench/summarize_full.py bench/out/train_full"""
import glob
import json
import os
import sys

out = sys.argv[1]


def final_loss(name):
    """Mean loss over the last 20 logged steps, from vlp's metrics.jsonl or the PyTorch run."""
    m = os.path.join(out, name, "metrics.jsonl")
    if os.path.exists(m):
        rows = [json.loads(l) for l in open(m)]
        last = [r["loss"] for r in rows if "loss" in r and "step" in r][-1:]
        return last[0] if last else float("nan")
    r = json.load(open(os.path.join(out, name + ".run.json")))
    return r["losses"][-1]


def wall(name):
    for f in (name + ".time.json", name + ".run.json"):
        p = os.path.join(out, f)
        if os.path.exists(p):
            return json.load(open(p))["wall_s"]
    return float("nan")


def pct(x):
    return f"{100 * x:.1f}"


allnames = sorted(os.path.basename(p)[: -len(".eval.json")] for p in glob.glob(os.path.join(out, "*.eval.json")))
names = [n for n in allnames if not n.startswith("albef_")]
albef = [n for n in allnames if n.startswith("albef_")]
names.sort(key=lambda n: (not n.startswith("vlp_seed0"), n.startswith("vlp"), n))
print("# emoji-s full recipe (600 steps, batch 256), scored by vlp eval; R@1/R@5/R@10 in %")
print()
print("| run | train wall (min) | loss (last log) | style t->i | style i->t | unseen t->i | unseen i->t | zero-shot top-1 |")
print("|---|---:|---:|---|---|---|---|---:|")
rows = {}
for n in names:
    e = json.load(open(os.path.join(out, n + ".eval.json")))
    cells = []
    for r in e["retrieval"]:
        for d in ("text_to_image", "image_to_text"):
            cells.append("/".join(pct(r[d][k]) for k in ("r1", "r5", "r10")))
    zs = e["zeroshot"]["top1"]
    rows[n] = {"wall_s": wall(n), "loss": final_loss(n), "eval": e}
    print(f"| {n} | {wall(n) / 60:.1f} | {final_loss(n):.3f} | " + " | ".join(cells) + f" | {pct(zs)} |")
print()
print(f"zero-shot chance: {pct(json.load(open(os.path.join(out, names[0] + '.eval.json')))['zeroshot']['chance'])}%")

if albef:
    albef.sort(key=lambda n: "torch" in n)
    print()
    print("# emoji-albef-s full recipe (600 steps, batch 256), scored by vlp eval: ITC retrieval, then ITM")
    print("# re-ranking of the ITC top k; R@1/R@5/R@10 in %")
    print()
    print("| run | train wall (min) | loss (last step) | split | t->i ITC | t->i ITM rerank | i->t ITC | i->t ITM rerank |")
    print("|---|---:|---:|---|---|---|---|---|")
    for n in albef:
        e = json.load(open(os.path.join(out, n + ".eval.json")))
        for r in e["retrieval"]:
            rr = r.get("rerank", {})
            c = lambda blk, d: "/".join(pct(blk[d][k]) for k in ("r1", "r5", "r10")) if d in blk else "-"
            split = os.path.basename(r["data"]).rsplit(".", 1)[0]
            print(f"| {n} | {wall(n) / 60:.1f} | {final_loss(n):.3f} | {split} | {c(r, 'text_to_image')} | "
                  f"{c(rr, 'text_to_image')} | {c(r, 'image_to_text')} | {c(rr, 'image_to_text')} |")
