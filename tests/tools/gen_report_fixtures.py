#!/usr/bin/env python3
"""Writes tests/fixtures/report/: a few 64x64 RGB PNG "items", two 128x128 grounding canvases,
small task files in the format of shared/datasets/emoji-tasks.md, and two hand-made run
directories (training logs and predictions) for tests/test_report.sh.

    python3 tests/tools/gen_report_fixtures.py

Standard library only. The eval_<task>_style.json files of the runs are written by
`vlp score --out` in the test itself; run_a also holds one hand-made eval file of a task that
has no gallery (retrieval) to check that such tables render too."""
import json
import math
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "report")

# Saturated colours that appear nowhere in the page's CSS: the test looks for them in the
# screenshot to check that the embedded images are drawn.
ITEMS = [
    ("red circle", "a shape", (230, 25, 75)),
    ("blue square", "a shape", (0, 130, 200)),
    ("green triangle", "a shape", (60, 180, 75)),
    ("orange diamond", "a shape", (245, 130, 48)),
    ("purple ring", "a symbol", (145, 30, 180)),
    ("teal cross", "a symbol", (70, 240, 240)),
    ("magenta stripes", "a symbol", (240, 50, 230)),
    ("olive dots", "a symbol", (128, 128, 0)),
]


def png(path, w, h, pix):
    raw = b"".join(b"\x00" + bytes(c for p in pix[y * w:(y + 1) * w] for c in p) for y in range(h))

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def inside(k, x, y):
    cx, cy = x - 31.5, y - 31.5
    if k == 0:
        return cx * cx + cy * cy < 24 * 24
    if k == 1:
        return abs(cx) < 22 and abs(cy) < 22
    if k == 2:
        return cy < 22 and cy > -24 and abs(cx) < (cy + 24) * 0.55
    if k == 3:
        return abs(cx) + abs(cy) < 26
    if k == 4:
        return 14 * 14 < cx * cx + cy * cy < 25 * 25
    if k == 5:
        return (abs(cx) < 8 and abs(cy) < 26) or (abs(cy) < 8 and abs(cx) < 26)
    if k == 6:
        return (x // 8) % 2 == 0 and 6 <= y < 58
    return (x % 16 - 8) ** 2 + (y % 16 - 8) ** 2 < 20


def item_pixels(k):
    col = ITEMS[k][2]
    return [col if inside(k, x, y) else (255, 255, 255) for y in range(64) for x in range(64)]


def main():
    img = os.path.join(ROOT, "images")
    tasks = os.path.join(ROOT, "tasks")
    os.makedirs(img, exist_ok=True)
    os.makedirs(tasks, exist_ok=True)
    pix = [item_pixels(k) for k in range(len(ITEMS))]
    for k in range(len(ITEMS)):
        png(os.path.join(img, f"item{k}.png"), 64, 64, pix[k])
    # ground2 canvases: members drawn row-major in cells, as the spec composes them
    canvases = [[0, 1, 2, 3], [4, 5, 6, 7]]
    for c, members in enumerate(canvases):
        out = []
        for y in range(128):
            for x in range(128):
                cell = (y // 64) * 2 + x // 64
                out.append(pix[members[cell]][(y % 64) * 64 + x % 64])
        png(os.path.join(img, f"canvas{c}.png"), 128, 128, out)

    def write(name, rows):
        with open(os.path.join(tasks, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    P = lambda k: f"../images/item{k}.png"
    write("caption-style.jsonl", [{"image": P(k), "caption": ITEMS[k][0]} for k in range(6)])
    vqa_train = []
    for k in range(len(ITEMS)):
        vqa_train.append({"image": P(k), "question": "what category is this emoji?", "answer": ITEMS[k][1],
                          "type": "category"})
        vqa_train.append({"image": P(k), "question": "what is this?", "answer": ITEMS[k][0], "type": "identify"})
    write("vqa-train.jsonl", vqa_train)
    vqa = []
    for k in (0, 4, 5, 1):
        vqa.append({"image": P(k), "question": "what category is this emoji?", "answer": ITEMS[k][1],
                    "type": "category"})
        vqa.append({"image": P(k), "question": "what is this?", "answer": ITEMS[k][0], "type": "identify"})
    write("vqa-style.jsonl", vqa)
    write("nlvr-style.jsonl", [
        {"left": P(0), "right": P(1), "statement": "both images show a shape.", "label": True},
        {"left": P(0), "right": P(4), "statement": "both images show a shape.", "label": False},
        {"left": P(4), "right": P(5), "statement": "exactly one image shows a symbol.", "label": False},
        {"left": P(2), "right": P(6), "statement": "exactly one image shows a shape.", "label": True},
    ])
    write("ground2-style.jsonl", [
        {"image": "../images/canvas0.png", "grid": 2, "cells": [P(k) for k in canvases[0]],
         "query": ITEMS[2][0], "label": 2},
        {"image": "../images/canvas1.png", "grid": 2, "cells": [P(k) for k in canvases[1]],
         "query": ITEMS[5][0], "label": 1},
    ])
    mc = []
    for k in (0, 3, 5, 6):
        t = k % 4
        others = [ITEMS[(k + j) % len(ITEMS)][0] for j in (1, 2, 3)]
        choices = others[:t] + [ITEMS[k][0]] + others[t:]
        mc.append({"image": P(k), "question": "which description fits this emoji?", "choices": choices, "label": t})
    write("mc-style.jsonl", mc)

    # two runs: training logs and predictions
    def run(name, scale, preds):
        d = os.path.join(ROOT, "runs", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for s in range(10, 410, 10):
                f.write(json.dumps({"step": s, "loss": round(0.4 + scale * math.exp(-s / 120), 6),
                                    "loss_last": 9.9, "lr": 1e-4, "pairs_per_s": 100.0}) + "\n")
                if s % 100 == 0:
                    f.write(json.dumps({"step": s, "eval_s": 0.1,
                                        "val_loss": round(0.6 + scale * math.exp(-s / 150), 6)}) + "\n")
        for task, rows in preds.items():
            with open(os.path.join(d, f"predictions_{task}_style.jsonl"), "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")

    # run_a: vqa 7/8 (category 4/4, identify 3/4), nlvr 3/4, ground2 1/2, mc 3/4, captions 4/6 exact
    run("run_a", 3.0, {
        "vqa": [{"answer": a} for a in ["a shape", "red circle", "a symbol", "purple ring", "a symbol",
                                         "teal cross", "a shape", "blue circle"]],
        "nlvr": [{"label": True}, {"label": False}, {"label": True}, {"label": True}],
        "ground2": [{"label": 2}, {"label": 3}],
        "mc": [{"label": 0}, {"label": 3}, {"label": 1}, {"label": 0}],
        "caption": [{"caption": c} for c in ["red circle", "blue square", "green circle", "orange diamond",
                                             "purple ring", "teal"]],
    })
    # run_b: weaker
    run("run_b", 4.0, {
        "vqa": [{"answer": a} for a in ["a shape", "olive dots", "a shape", "purple ring", "a shape",
                                         "red circle", "a shape", "blue square"]],
        "nlvr": [{"label": True}, {"label": True}, {"label": True}, {"label": True}],
        "ground2": [{"label": 0}, {"label": 1}],
        "mc": [{"label": 0}, {"label": 0}, {"label": 0}, {"label": 0}],
        "caption": [{"caption": c} for c in ["red", "blue square", "green", "orange", "purple ring", "teal cross"]],
    })
    with open(os.path.join(ROOT, "runs", "run_a", "eval_retrieval_val.json"), "w") as f:
        json.dump({"task": "retrieval", "split": "val", "n": 64,
                   "metrics": {"i2t_r1": 0.421875, "t2i_r1": 0.40625, "i2t_r5": 0.8125}}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
