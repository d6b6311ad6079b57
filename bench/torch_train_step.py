#!/usr/bin/python3
"""PyTorch peer for the vlp training-step benchmark.

A stack of --layers pre-LN transformer blocks (QuickGELU MLP, no attention mask) plus a
final LayerNorm, identical in maths to tests/tools/gen_block_fixture.py:

    per block: a = ln1(x); qkv = a @ Wqkv^T + b; per-head softmax(q k^T / sqrt(hd)) v;
               x = x + out(o); x = x + fc2(quickgelu(fc1(ln2(x))))
    y = ln_f(x); loss = mse(y, target); backward; AdamW step; zero_grad(set_to_none=True)

AdamW(lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1).

Run (Debian's PyTorch lives in the system python, NOT the pyenv one on PATH):

    /usr/bin/python3 bench/torch_train_step.py --width 128
    /usr/bin/python3 bench/torch_train_step.py --width 512 --steps 3

Prints ONE JSON line on stdout.  gflop_per_step is analytic: 3 x the forward matmul FLOPs
(qkv, out, fc1, fc2 projections and attention QK^T and PV), i.e. per layer
3 * (24*B*T*D^2 + 4*B*T^2*D) * 1e-9.  Element-wise work (LN, softmax, GELU, AdamW) is
not counted.
"""

import argparse
import ctypes
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.d, self.h, self.hd = d, h, d // h
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        H, hd = self.h, self.hd
        qkv = self.qkv(self.ln1(x))                                  # [B,T,3D]
        qkv = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)        # [3,B,H,T,hd]
        q = qkv[0].reshape(B * H, T, hd)
        k = qkv[1].reshape(B * H, T, hd)
        v = qkv[2].reshape(B * H, T, hd)
        s = torch.baddbmm(q.new_empty(B * H, T, T), q, k.transpose(1, 2),
                          beta=0.0, alpha=1.0 / math.sqrt(hd))       # [B*H,T,T]
        p = torch.softmax(s, dim=-1)
        o = torch.bmm(p, v).view(B, H, T, hd).transpose(1, 2).reshape(B, T, D)
        x = x + self.out(o)
        m = self.fc1(self.ln2(x))
        m = m * torch.sigmoid(1.702 * m)                             # QuickGELU
        return x + self.fc2(m)


class Stack(nn.Module):
    def __init__(self, d, h, layers):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d, h) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x)


def blas_info(threads):
    """Identify the BLAS actually mapped into the process (after a matmul has run)."""
    a = torch.randn(256, 256)
    (a @ a).sum().item()
    libs = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[-1].startswith("/"):
                p = parts[-1]
                low = p.lower()
                if ("blas" in low or "lapack" in low or "mkl" in low or "blis" in low) \
                        and p not in libs:
                    libs.append(p)
    info = {"libs": libs}
    cfg = [l for l in torch.__config__.show().splitlines() if "BLAS_INFO" in l]
    if cfg:
        info["torch_build"] = cfg[0].strip().split(",")[0]
    ob = sorted((p for p in libs if "openblas" in p.lower()), key=lambda p: "libopenblas" not in p)
    if ob:
        try:
            lib = ctypes.CDLL(ob[0])
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            # torch.set_num_threads does not reach OpenBLAS's own pthread pool
            lib.openblas_set_num_threads(ctypes.c_int(threads))
            info["openblas_config"] = lib.openblas_get_config().decode().strip()
            info["openblas_core"] = lib.openblas_get_corename().decode().strip()
            info["openblas_threads"] = int(lib.openblas_get_num_threads())
        except (OSError, AttributeError) as e:
            info["openblas_error"] = str(e)
        info["name"] = "openblas"
    elif any("mkl" in p.lower() for p in libs):
        info["name"] = "mkl"
    elif any("blis" in p.lower() for p in libs):
        info["name"] = "blis"
    elif any("blas" in p.lower() for p in libs):
        info["name"] = "reference-or-unknown"
    else:
        info["name"] = "unknown"
    # Debian's netlib reference BLAS lives in .../blas/libblas.so.3 (alternatives)
    ref = [p for p in libs if "/blas/" in p and "openblas" not in p.lower()]
    if ref or info["name"] in ("reference-or-unknown", "unknown"):
        info["reference_blas"] = True
        sys.stderr.write("WARNING: torch appears to use the reference (netlib) BLAS or an "
                         "unknown one: %s; timings will be far below OpenBLAS\n" % libs)
    return info


def gflop_per_step(B, T, D, layers):
    fwd = layers * (24.0 * B * T * D * D + 4.0 * B * T * T * D)
    return 3.0 * fwd * 1e-9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=0, help="default max(2, width/64)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=65)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-foreach", action="store_true",
                    help="use the per-parameter AdamW loop instead of foreach")
    args = ap.parse_args()
    heads = args.heads or max(2, args.width // 64)
    assert args.width % heads == 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    blas = blas_info(args.threads)

    B, T, D = args.batch, args.tokens, args.width
    model = Stack(D, heads, args.layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6,
                            weight_decay=0.1, foreach=not args.no_foreach)
    x = torch.randn(B, T, D)
    target = torch.randn(B, T, D)

    def step():
        y = model(x)
        loss = F.mse_loss(y, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    assert math.isfinite(loss.item())

    med = statistics.median(times)
    gf = gflop_per_step(B, T, D, args.layers)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "blas": blas,
        "threads": torch.get_num_threads(), "width": D, "heads": heads,
        "layers": args.layers, "batch": B, "tokens": T,
        "median_s": round(med, 5), "min_s": round(min(times), 5), "steps": args.steps,
        "gflop_per_step": round(gf, 3), "gflops_at_median": round(gf / med, 2),
        "adamw_foreach": not args.no_foreach,
    }))


if __name__ == "__main__":
    main()
