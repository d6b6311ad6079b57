#!/usr/bin/python3
"""Reference for vlp's optimiser: torch.optim.AdamW with two parameter groups
(weight decay on / off), torch.nn.utils.clip_grad_norm_, and open_clip's
warm-up + cosine schedule, over a few steps of given gradients.

Run: /usr/bin/python3 tests/tools/gen_optim_fixture.py tests/fixtures/optim
Writes float32 .npy files: w0, b0, s0 (initial values), gw, gb, gs ([steps, ...]
raw gradients), w, b, s ([steps, ...] values after each step), lr [steps],
norm [steps] (global norm before clipping).
"""
import math
import os
import sys

import numpy as np
import torch

STEPS, WARMUP, BASE_LR, CLIP = 8, 3, 1e-2, 1.0
BETAS, EPS, WD = (0.9, 0.98), 1e-6, 0.1


def lr_at(step):  # open_clip: _warmup_lr then cosine to 0
    if step < WARMUP:
        return BASE_LR * (step + 1) / WARMUP
    e, es = step - WARMUP, STEPS - WARMUP
    return 0.5 * (1 + math.cos(math.pi * e / es)) * BASE_LR


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((5, 7)).astype(np.float32)
    b0 = rng.standard_normal(7).astype(np.float32)
    s0 = np.array(math.log(1 / 0.07), dtype=np.float32)
    # gradients of growing size so clipping is inactive early and active later
    scale = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 0.3, 4.0], dtype=np.float32)
    gw = (rng.standard_normal((STEPS, 5, 7)) * scale[:, None, None] / 3).astype(np.float32)
    gb = (rng.standard_normal((STEPS, 7)) * scale[:, None] / 3).astype(np.float32)
    gs = (rng.standard_normal(STEPS) * scale / 3).astype(np.float32)

    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    b = torch.nn.Parameter(torch.from_numpy(b0.copy()))
    s = torch.nn.Parameter(torch.from_numpy(s0.copy()))
    opt = torch.optim.AdamW([{"params": [w], "weight_decay": WD},
                             {"params": [b, s], "weight_decay": 0.0}],
                            lr=BASE_LR, betas=BETAS, eps=EPS)
    W, Bv, S, LR, NORM = [], [], [], [], []
    for t in range(STEPS):
        lr = lr_at(t)
        for grp in opt.param_groups:
            grp["lr"] = lr
        w.grad = torch.from_numpy(gw[t].copy())
        b.grad = torch.from_numpy(gb[t].copy())
        s.grad = torch.tensor(float(gs[t]), dtype=torch.float32)
        norm = torch.nn.utils.clip_grad_norm_([w, b, s], CLIP)
        opt.step()
        W.append(w.detach().numpy().copy()); Bv.append(b.detach().numpy().copy())
        S.append(s.detach().numpy().copy()); LR.append(lr); NORM.append(float(norm))
    arrays = dict(w0=w0, b0=b0, s0=s0.reshape(1), gw=gw, gb=gb, gs=gs, w=np.stack(W), b=np.stack(Bv),
                  s=np.array(S, dtype=np.float32), lr=np.array(LR, dtype=np.float32),
                  norm=np.array(NORM, dtype=np.float32))
    for k, v in arrays.items():
        np.save(os.path.join(out, k + ".npy"), np.ascontiguousarray(v, dtype=np.float32))
    print("wrote", len(arrays), "arrays to", out, "norms", np.round(arrays["norm"], 3))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/optim")
