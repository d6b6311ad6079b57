#!/usr/bin/python3
"""PyTorch twin of `vlp finetune` for an ALBEF-style ("dual_stream") model on vqa and nlvr.

Same model, same initial weights (the pre-trained backbone plus vlp's freshly initialised head),
same batches, same optimiser as vlp, so the step times compare like for like:

  * backbone: bench/torch_train_albef.py's ALBEF (ViT, BERT text layers, cross-attention fusion
    layers, pooler = tanh(Linear(fused [CLS]))), loaded from RUN/init with vlp's names;
  * heads (src/train/finetune.c, "ft.*"): vqa answer_mlp = pooled -> Linear(W, 2W) -> LayerNorm ->
    GELU -> Linear(2W, answers); nlvr pair_mlp = the pooled (left image, statement) and (right
    image, statement) rows concatenated -> Linear(2W, 2W) -> LayerNorm -> GELU -> Linear(2W, 2);
    mean cross-entropy;
  * AdamW as vlp's trainer: only the tensors RUN/params.tsv marks trainable (vlp freezes the
    ITC projections, logit scale, MLM / MIM heads and the ITM head), weight decay where it says
    decay, lr scaled per tensor (layer decay), global gradient-norm clipping, warm-up + cosine
    (RUN/train.json: the run's settings after vlp's flags).

Data: RUN/batches (vlp finetune --dump-batches N): the order of the first N steps and the
examples they use (RGB images, token ids, attention masks, labels, and vlp's channel lookup table,
so the inputs are bit-identical to vlp's).

    vlp finetune --config configs/ft-albef-s-vqa.json --pretrained PRE --out RUN --dump-batches 33
    /usr/bin/python3 bench/torch_finetune_albef.py RUN --check
    /usr/bin/python3 bench/torch_finetune_albef.py RUN --steps 30 --warmup-steps 3 --threads 2
    /usr/bin/python3 bench/torch_finetune_albef.py RUN --steps 300 --warmup-steps 0 --save OUT
    vlp eval --task vqa --model OUT --data data/emoji/tasks/vqa-style.jsonl

The timed mode prints one JSON line: median step time (forward + backward + clipping + optimiser,
the batch's gather included), examples/s, and every step's loss.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_albef import ALBEF  # noqa: E402
from torch_train_emoji import load_safetensors, lr_at, save_safetensors  # noqa: E402


class FineTune(nn.Module):
    """The backbone plus vlp's task head."""

    def __init__(self, cfg):
        super().__init__()
        ft = cfg.get("finetune") or {}
        self.task, self.head = ft.get("task"), ft.get("head")
        if (self.task, self.head) not in (("vqa", "answer_mlp"), ("nlvr", "pair_mlp")):
            raise SystemExit(f"torch_finetune_albef: only vqa (answer_mlp) and nlvr (pair_mlp), not "
                             f"{self.task} ({self.head})")
        if cfg.get("dropout", 0) > 0:
            raise SystemExit("torch_finetune_albef: dropout is not in the twin")
        if ft.get("freeze"):
            pass  # frozen tensors come from RUN/params.tsv
        bb = {k: v for k, v in cfg.items() if k != "finetune"}
        self.bb = ALBEF(bb)
        W, C = cfg["width"], ft["classes"]
        inp = 2 * W if self.head == "pair_mlp" else W
        self.fc1, self.ln, self.fc2 = nn.Linear(inp, 2 * W), nn.LayerNorm(2 * W, eps=cfg["ln_eps"]), nn.Linear(2 * W, C)

    def load_vlp(self, sd):
        head = {"ft.fc1": self.fc1, "ft.ln": self.ln, "ft.fc2": self.fc2}
        hn = {}
        for k, mod in head.items():
            hn[k + ".weight"], hn[k + ".bias"] = mod.weight, mod.bias
        missing = sorted(set(hn) - set(sd))
        if missing:
            raise SystemExit(f"torch_finetune_albef: head tensors missing from vlp's checkpoint: {missing}")
        self.bb.load_vlp({k: v for k, v in sd.items() if k not in hn})
        with torch.no_grad():
            for k, p in hn.items():
                if tuple(sd[k].shape) != tuple(p.shape):
                    raise SystemExit(f"torch_finetune_albef: {k}: vlp {tuple(sd[k].shape)}, twin {tuple(p.shape)}")
                p.copy_(sd[k])
        self.names = dict(self.bb.names)
        self.names.update(hn)

    def scores(self, px, ids, mask):
        """px [R, 3, S, S], ids / mask [R, T] (R = B, or 2B for nlvr: left rows, then right rows)."""
        bb, m = self.bb, mask != 0
        img = bb.encode_image(px)
        fused = bb.fuse(bb.encode_text(bb.embed_text(ids), m), m, img)
        p = torch.tanh(bb.pooler(fused[:, 0]))
        if self.head == "pair_mlp":
            B = p.shape[0] // 2
            p = torch.cat([p[:B], p[B:]], 1)
        return self.fc2(F.gelu(self.ln(self.fc1(p))))


class Examples:
    """RUN/batches: the order of the first N steps and the inputs of the examples they use."""

    def __init__(self, run, pair):
        d = os.path.join(run, "batches")
        ld = lambda n: np.load(os.path.join(d, n + ".npy"))  # noqa: E731
        self.order, rows = ld("order").astype(np.int64), ld("rows").astype(np.int64)
        self.pos = np.searchsorted(rows, self.order)  # order -> row of the arrays below
        lut, img = ld("lut"), ld("images")  # f32 [3, 256], u8 [K, S, S, 3]
        # vlp's graph input: pixel (c, y, x) = lut[c][rgb[y, x, c]] (the same float32 values)
        self.px = torch.from_numpy(np.ascontiguousarray(np.stack([lut[c][img[..., c]] for c in range(3)], 1)))
        self.ia = torch.from_numpy(ld("img_a").astype(np.int64))
        self.ib = torch.from_numpy(ld("img_b").astype(np.int64)) if pair else None
        self.ids = torch.from_numpy(ld("ids").astype(np.int64))
        self.mask = torch.from_numpy(ld("mask").astype(np.int64))
        self.labels = torch.from_numpy(ld("labels").astype(np.int64))
        self.n = self.order.shape[0]

    def __getitem__(self, s):
        i = torch.from_numpy(self.pos[s])
        px, ids, mask = self.px[self.ia[i]], self.ids[i], self.mask[i]
        if self.ib is not None:  # nlvr: the right images after the left ones, same statements
            px, ids, mask = torch.cat([px, self.px[self.ib[i]]]), torch.cat([ids, ids]), torch.cat([mask, mask])
        return px, ids, mask, self.labels[i]


def read_params(run):
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(run, "params.tsv"))][1:]
    return {r[0]: (r[1] == "1", r[2] == "1", float(r[3])) for r in rows if r}


def make_optimizer(model, run, tc):
    """AdamW groups by (decay, lr scale) over vlp's trainable tensors; the rest frozen."""
    groups = {}
    for k, (train, decay, scale) in read_params(run).items():
        p = model.names[k]
        p.requires_grad_(train)
        if train:
            groups.setdefault((decay, scale), []).append(p)
    pg = [{"params": ps, "weight_decay": tc["weight_decay"] if d else 0.0, "scale": s} for (d, s), ps in groups.items()]
    opt = torch.optim.AdamW(pg, lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]), eps=tc["eps"])
    return opt, [p for ps in groups.values() for p in ps]


def rel(a, b):
    return (a - b).double().norm().item() / max(b.double().norm().item(), 1e-30)


def check(model, run, ex, tol):
    """Step 0 (the first batch from the initial weights) against RUN/probe."""
    pdir = os.path.join(run, "probe")
    ref = json.load(open(os.path.join(pdir, "losses.json")))
    make_optimizer(model, run, json.load(open(os.path.join(run, "train.json"))))  # sets requires_grad
    px, ids, mask, lab = ex[0]
    s = model.scores(px, ids, mask)
    loss = F.cross_entropy(s, lab, ignore_index=-1)
    loss.backward()
    res = {"check": f"{model.task} step 0", "loss": {"vlp": ref["loss"], "torch": round(loss.item(), 7),
                                                    "rel_diff": abs(ref["loss"] - loss.item()) / max(abs(ref["loss"]), 1e-6)}}
    res["scores_rel_diff"] = rel(s.detach(), torch.from_numpy(np.load(os.path.join(pdir, "scores.npy"))))
    g = load_safetensors(os.path.join(pdir, "grads.safetensors"))
    trainable = {k for k, p in model.names.items() if p.requires_grad}
    if set(g) != trainable:
        raise SystemExit(f"torch_finetune_albef: vlp's gradients and the twin's trainable tensors differ: "
                         f"{sorted(set(g) ^ trainable)[:5]}")
    d2 = n2 = 0.0
    per = []
    for k in sorted(trainable):
        p = model.names[k]
        tg = p.grad if p.grad is not None else torch.zeros_like(p)
        d, n = (tg - g[k].reshape(tg.shape)).double().norm().item(), g[k].double().norm().item()
        d2, n2 = d2 + d * d, n2 + n * n
        per.append((d, n, k))
    # per tensor over those whose exact gradient is not zero: the key biases' is (softmax ignores a
    # constant shift), so both sides hold round-off there
    floor = 1e-6 * math.sqrt(n2)
    r, name = max((d / n, k) for d, n, k in per if n > floor and not k.endswith("key.bias"))
    res.update({"grad_rel_diff": math.sqrt(d2 / n2), "grad_max_rel_diff": r, "grad_worst_tensor": name,
                "tensors": len(per)})
    worst = max(res["loss"]["rel_diff"], res["scores_rel_diff"], res["grad_rel_diff"], r)
    res["ok"] = worst <= tol
    return res, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="directory written by vlp finetune --dump-batches N")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up steps)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true",
                    help="compare step-0 loss, scores and gradients with RUN/probe and exit (1 if they differ)")
    ap.add_argument("--tol", type=float, default=1e-4, help="--check: largest relative difference")
    ap.add_argument("--save", help="write the fine-tuned model here (config.json + model.safetensors in vlp's "
                    "layout, the init's vocab.txt) for vlp eval --task TASK --model SAVE")
    ap.add_argument("--log-every", type=int, default=10, help="progress line every N steps (stderr)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.run, "init", "config.json")))
    model = FineTune(cfg)
    model.load_vlp(load_safetensors(os.path.join(a.run, "init", "model.safetensors")))
    ex = Examples(a.run, model.head == "pair_mlp")
    if a.check:
        res, worst = check(model, a.run, ex, a.tol)
        print(json.dumps(res))
        print(f"{model.task} step-0 check: loss, scores and gradients agree to {worst:.2e} (relative; tolerance "
              f"{a.tol:g})", file=sys.stderr)
        sys.exit(0 if res["ok"] else 1)
    tc = json.load(open(os.path.join(a.run, "train.json")))
    opt, trainable = make_optimizer(model, a.run, tc)
    n = a.warmup_steps + a.steps
    if n > ex.n:
        raise SystemExit(f"torch_finetune_albef: {n} steps asked, {a.run} holds {ex.n} (dump more with "
                         f"--dump-batches)")
    total, warm = tc["steps"], min(tc["warmup"], tc["steps"])
    times, losses = [], []
    t_start = time.perf_counter()
    for s in range(n):
        t0 = time.perf_counter()
        px, ids, mask, lab = ex[s]
        loss = F.cross_entropy(model.scores(px, ids, mask), lab, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(trainable, tc["clip_norm"])
        lr = lr_at(s, warm, total, tc["lr"], tc["min_lr"])
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= a.warmup_steps:
            times.append(dt)
        if (s + 1) % a.log_every == 0 or s + 1 == n:
            el = time.perf_counter() - t_start
            print(f"torch step {s + 1}/{n} loss {losses[-1]:.6f} {dt:.3f} s/step, ETA "
                  f"{el / (s + 1) * (n - s - 1):.0f} s", file=sys.stderr, flush=True)
    if a.save:
        os.makedirs(a.save, exist_ok=True)
        save_safetensors(os.path.join(a.save, "model.safetensors"),
                         {k: p.detach().numpy() for k, p in model.names.items()})
        for f in ("config.json", "vocab.txt"):  # config.json carries "finetune" (task, head, answers)
            if os.path.exists(os.path.join(a.run, "init", f)):
                shutil.copyfile(os.path.join(a.run, "init", f), os.path.join(a.save, f))
    med = statistics.median(times) if times else float("nan")
    B = lab.shape[0]
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "task": model.task, "threads": a.threads,
                      "batch": B, "steps_timed": len(times), "median_step_s": round(med, 4),
                      "min_step_s": round(min(times), 4) if times else None,
                      "examples_per_s": round(B / med, 1) if times else None,
                      "wall_s": round(time.perf_counter() - t_start, 1), "losses": [round(x, 6) for x in losses]}))


if __name__ == "__main__":
    main()
