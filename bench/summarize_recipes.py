#!/usr/bin/env python3
"""Markdown tables of bench/recipes.sh's results (make bench-recipes).

usage: summarize_recipes.py RECIPES_DIR [TRAIN_FULL_DIR]
RECIPES_DIR holds NAME.eval.json (vlp eval --json), NAME.time.json and, for captioning models,
NAME.caption_{style,unseen}.json; TRAIN_FULL_DIR (bench-train-full) adds the emoji-s dual
encoder's row when its vlp_seed0 files are there. Recall in %, R@1/R@5/R@10."""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def split_name(path):
    return os.path.basename(path).rsplit(".", 1)[0]


def recalls(d):
    return "/".join(f"{100 * d[k]:.1f}" for k in ("r1", "r5", "r10"))


def retrieval_cells(ev, key=None):
    """{split: (t2i, i2t)} from an eval JSON; key 'rerank' or 'itm_full' picks that block."""
    out = {}
    for r in (ev or {}).get("retrieval", []):
        blk = r.get(key) if key else r
        if blk and "text_to_image" in blk:
            out[split_name(r["data"])] = (recalls(blk["text_to_image"]), recalls(blk["image_to_text"]))
    return out


def main():
    rdir = sys.argv[1]
    fdir = sys.argv[2] if len(sys.argv) > 2 else None
    rows = []
    if fdir and load(os.path.join(fdir, "vlp_seed0.eval.json")):
        t = load(os.path.join(fdir, "vlp_seed0.time.json")) or {}
        rows.append(("emoji-s (CLIP)", "dual encoder", "ITC", t.get("wall_s"), t.get("threads", 2),
                     load(os.path.join(fdir, "vlp_seed0.eval.json"))))
    names = sorted({f.split(".")[0] for f in os.listdir(rdir) if f.endswith(".eval.json")},
                   key=lambda n: ["albef", "vlmo", "vilt", "cap"].index(n) if n in ["albef", "vlmo", "vilt", "cap"] else 9)
    for n in names:
        ev = load(os.path.join(rdir, f"{n}.eval.json"))
        t = load(os.path.join(rdir, f"{n}.time.json")) or {}
        cfg = load(f"configs/emoji-{n}-s.json") or {}
        objs = "+".join(k.upper() for k, v in cfg.get("objectives", {}).items() if v)
        rows.append((f"emoji-{n}-s", cfg.get("family", "?"), objs, t.get("wall_s"), t.get("threads"), ev))

    print("| recipe | family | objectives | train wall | style t->i | style i->t | unseen t->i | unseen i->t |")
    print("|---|---|---|---:|---|---|---|---|")
    for name, fam, objs, wall, th, ev in rows:
        itc = retrieval_cells(ev)
        full = retrieval_cells(ev, "itm_full")
        cells = []
        for s in ("style", "unseen"):
            c = itc.get(s) or full.get(s)
            tag = " (ITM)" if s not in itc and s in full else ""
            cells += [c[0] + tag, c[1] + tag] if c else ["-", "-"]
        th = "+".join(map(str, th)) if isinstance(th, list) else th  # a run resumed at other thread counts
        w = f"{wall / 60:.1f} min ({th} thr)" if wall else "-"
        print(f"| {name} | {fam} | {objs} | {w} | " + " | ".join(cells) + " |")

    rr = [(name, retrieval_cells(ev), retrieval_cells(ev, "rerank"), ev) for name, _, _, _, _, ev in rows]
    rr = [x for x in rr if x[2]]
    if rr:
        k = next(r["rerank"]["k"] for r in rr[0][3]["retrieval"] if "rerank" in r)
        print(f"\nITC alone vs ITM re-ranking of the ITC top {k} (R@1/R@5/R@10, %):\n")
        print("| recipe | split | t->i ITC | t->i ITM rerank | i->t ITC | i->t ITM rerank |")
        print("|---|---|---|---|---|---|")
        for name, itc, rer, _ in rr:
            for s in ("style", "unseen"):
                if s in itc and s in rer:
                    print(f"| {name} | {s} | {itc[s][0]} | {rer[s][0]} | {itc[s][1]} | {rer[s][1]} |")

    caps = [(n, s, load(os.path.join(rdir, f"{n}.caption_{s}.json"))) for n in names for s in ("style", "unseen")]
    caps = [c for c in caps if c[2]]
    if caps:
        print("\nCaptioning (beam search), metrics of ../shared/datasets/emoji-tasks.md:\n")
        print("| recipe | split | BLEU-4 | CIDEr-D | captions |")
        print("|---|---|---:|---:|---:|")
        for n, s, c in caps:
            m = c.get("metrics", c)
            print(f"| emoji-{n}-s | {s} | {m.get('bleu4', float('nan')):.4f} | {m.get('cider_d', float('nan')):.4f} "
                  f"| {c.get('examples', c.get('n', '-'))} |")

    for n in names:
        try:
            with open(os.path.join(rdir, f"{n}.image_use.jsonl")) as f:
                use = [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError):
            continue
        print(f"\nDoes emoji-{n}-s's decoder read the image? Caption log-likelihood under the pair's own image and "
              "under another pair's (bench/caption_image_use.c, 300 pairs spread over each file):\n")
        print("| split | nats/token, own image | nats/token, other image | gap | own image more likely |")
        print("|---|---:|---:|---:|---:|")
        for u in use:
            r = u["result"]
            print(f"| {u['split']} | {r['own_nats_per_token']:.3f} | {r['other_nats_per_token']:.3f} | "
                  f"{r['gap']:.3f} | {100 * r['own_better_share']:.1f}% |")


if __name__ == "__main__":
    main()
