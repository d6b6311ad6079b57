#!/usr/bin/env python3
"""Independent reference of the emoji benchmark rules (shared/datasets/emoji.md and
emoji-tasks.md), written from the specs to cross-check `vlp data emoji` and
`vlp data emoji-tasks`. It reads only emoji.json (no images) and writes the split TSVs and
the task JSONL files with the same paths and JSON formatting vlp uses, so the outputs can
be compared byte for byte:

  python3 tests/tools/emoji_reference.py EMOJI_JSON OUTDIR
  diff OUTDIR/train.tsv VLPDIR/train.tsv; diff -r OUTDIR/tasks VLPDIR/tasks (JSONL only)

Paths: images/<vendor>/<image> (TSVs, relative to the dataset dir), ../images/... in the
JSONL files, grounding canvases ground{g}-{part}/{vendor}-{i:05d}.png.
"""
import json
import os
import sys

TRAIN_VENDORS = ["apple", "google", "facebook"]
TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark", "1F3FF": "dark"}
CATS = [("Smileys & Emotion", "a smiley or emotion"), ("People & Body", "a person or body part"),
        ("Animals & Nature", "an animal or plant"), ("Food & Drink", "food or drink"),
        ("Travel & Places", "a place or vehicle"), ("Activities", "an activity"), ("Objects", "an object"),
        ("Symbols", "a symbol"), ("Flags", "a flag")]
CAT_INDEX = {c: k for k, (c, _) in enumerate(CATS)}


def held(e):
    return e["sort_order"] % 10 == 7


def caption(e, key=None):
    c = e["name"].lower()
    if key:
        c += ", " + " and ".join(TONES[m] + " skin tone" for m in key.split("-"))
    return c


def img(vendor, image, prefix=""):
    return prefix + "images/%s/%s" % (vendor, image)


def splits(d):
    train = []
    for v in TRAIN_VENDORS:
        for e in d:
            if held(e):
                continue
            if e.get("has_img_" + v):
                train.append((img(v, e["image"]), caption(e)))
            for key, s in e.get("skin_variations", {}).items():
                if s.get("has_img_" + v):
                    train.append((img(v, s["image"]), caption(e, key)))
    style = [(img("twitter", e["image"]), caption(e)) for e in d if not held(e) and e.get("has_img_twitter")]
    unseen = [(img("twitter", e["image"]), caption(e)) for e in d if held(e) and e.get("has_img_twitter")]
    return {"train": train, "style": style, "unseen": unseen}


def groups(d, part):
    vendors = TRAIN_VENDORS if part == "train" else ["twitter"]
    want_held = part == "unseen"
    out = []
    for v in vendors:
        items = []  # (kind, entry, key)
        for e in d:
            if held(e) != want_held or e["category"] == "Component":
                continue
            if e.get("has_img_" + v):
                items.append(("base", e, None))
            sv = e.get("skin_variations", {})
            for key in sorted(k for k in sv if "-" not in k):
                if sv[key].get("has_img_" + v):
                    items.append(("tone", e, key))
        out.append((v, items))
    return out


def tasks(d, part, sp):
    rows = {t: [] for t in ["caption", "vqa", "nlvr", "ground2", "ground3", "mc"]}
    rows["caption"] = [{"image": "../" + p, "caption": c} for p, c in sp[part]]
    for v, items in groups(d, part):
        base = [e for kind, e, _ in items if kind == "base"]
        N = len(base)
        P = lambda e: "../" + img(v, e["image"])
        cat = lambda e: e["category"]
        k = lambda e: CAT_INDEX[e["category"]]
        bi = 0
        for kind, e, key in items:
            if kind == "tone":
                s = e["skin_variations"][key]
                rows["vqa"].append({"image": "../" + img(v, s["image"]), "question": "what skin tone is shown?",
                                    "answer": TONES[key], "type": "skintone"})
                continue
            i = bi
            bi += 1
            rows["vqa"].append({"image": P(e), "question": "what category is this emoji?",
                                "answer": cat(e).lower(), "type": "category"})
            rows["vqa"].append({"image": P(e), "question": "what subcategory is this emoji?",
                                "answer": e["subcategory"], "type": "subcategory"})
            rows["vqa"].append({"image": P(e), "question": "is this %s?" % CATS[k(e)][1], "answer": "yes", "type": "yesno"})
            rows["vqa"].append({"image": P(e), "question": "is this %s?" % CATS[(k(e) + 1 + i % 8) % 9][1],
                                "answer": "no", "type": "yesno"})
            rows["vqa"].append({"image": P(e), "question": "what is this?", "answer": caption(e), "type": "identify"})
        for i, x in enumerate(base):
            if N >= 2:
                a = next((j % N for j in range(i + 1, i + N) if cat(base[j % N]) == cat(x)), (i + 1) % N)
                b = (i + N // 2) % N
                ph = CATS[k(x)][1]
                for r in (a, b):
                    y = base[r]
                    rows["nlvr"].append({"left": P(x), "right": P(y), "statement": "both images show %s." % ph,
                                         "label": cat(y) == cat(x)})
                    rows["nlvr"].append({"left": P(x), "right": P(y), "statement": "exactly one image shows %s." % ph,
                                         "label": cat(y) != cat(x)})
                    rows["nlvr"].append({"left": P(x), "right": P(y),
                                         "statement": "the two images show the same kind of thing.",
                                         "label": y["subcategory"] == x["subcategory"]})
            for g in (2, 3):
                K = g * g
                if N < K:
                    continue
                m = [(i + (j * N) // K) % N for j in range(K)]
                t = i % K
                cells = [None] * K
                for j in range(K):
                    cells[(j + t) % K] = P(base[m[j]])
                rows["ground%d" % g].append({"image": "ground%d-%s/%s-%05d.png" % (g, part, v, i), "grid": g,
                                             "cells": cells, "query": caption(x), "label": t})
            if N >= 4:
                chosen = []
                for test in (lambda y: y["subcategory"] == x["subcategory"], lambda y: cat(y) == cat(x), lambda y: True):
                    for j in range(i + 1, i + N):
                        if len(chosen) == 3:
                            break
                        y = base[j % N]
                        if y is x or any(y is c for c in chosen) or not test(y):
                            continue
                        if caption(y) == caption(x) or any(caption(y) == caption(c) for c in chosen):
                            continue
                        chosen.append(y)
                t = i % 4
                choices, di = [], 0
                for pos in range(4):
                    if pos == t:
                        choices.append(caption(x))
                    else:
                        choices.append(caption(chosen[di]))
                        di += 1
                rows["mc"].append({"image": P(x), "question": "which description fits this emoji?",
                                   "choices": choices, "label": t})
    return rows


def main():
    d = json.load(open(sys.argv[1], encoding="utf-8"))
    out = sys.argv[2]
    os.makedirs(os.path.join(out, "tasks"), exist_ok=True)
    sp = splits(d)
    for name, pairs in sp.items():
        with open(os.path.join(out, name + ".tsv"), "w", encoding="utf-8") as f:
            f.write("filepath\ttitle\n")
            for p, c in pairs:
                f.write("%s\t%s\n" % (p, c))
        print("split %-7s %6d" % (name, len(pairs)))
    for part in ("train", "style", "unseen"):
        for t, rows in tasks(d, part, sp).items():
            with open(os.path.join(out, "tasks", "%s-%s.jsonl" % (t, part)), "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print("task %-8s %-7s %6d" % (t, part, len(rows)))


if __name__ == "__main__":
    main()
