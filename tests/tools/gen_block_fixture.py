#!/usr/bin/python3
"""Generate reference fixtures for a 2-block pre-LN transformer (forward + backward).

Run (Debian's PyTorch lives in the system python, NOT the pyenv one on PATH):

    /usr/bin/python3 tests/tools/gen_block_fixture.py tests/fixtures/block2

Writes one subdirectory per case (quickgelu, gelu_causal_pad, gelu_tanh) containing:

    x.npy         float32 [B,T,D]  input
    dy.npy        float32 [B,T,D]  upstream gradient; the loss is L = sum(y * dy)
    key_mask.npy  int32   [B,T]    1 = real token, 0 = padding (all ones if unused)
    y.npy         float32 [B,T,D]  output of the final LayerNorm
    grad_x.npy    float32 [B,T,D]  dL/dx
    param.<name>.npy / grad.<name>.npy   every parameter and its gradient (float32)
    meta.json     {"B","T","D","H","layers","act","causal","key_padding","ln_eps","seed", ...}

Parameter names (PyTorch nn.Linear layout: weight is [out, in]); D = width, H = heads,
hd = D/H, F = 4*D:

    blocks.{l}.ln1.weight [D]          blocks.{l}.ln1.bias [D]
    blocks.{l}.attn.qkv.weight [3D,D]  blocks.{l}.attn.qkv.bias [3D]
        rows 0..D-1 = q, D..2D-1 = k, 2D..3D-1 = v; head h uses h*hd..(h+1)*hd-1 of each
    blocks.{l}.attn.out.weight [D,D]   blocks.{l}.attn.out.bias [D]
    blocks.{l}.ln2.weight [D]          blocks.{l}.ln2.bias [D]
    blocks.{l}.mlp.fc1.weight [F,D]    blocks.{l}.mlp.fc1.bias [F]
    blocks.{l}.mlp.fc2.weight [D,F]    blocks.{l}.mlp.fc2.bias [D]
    ln_f.weight [D]                    ln_f.bias [D]

Forward for x [B,T,D], per block:
    a = ln1(x); qkv = a @ Wqkv^T + bqkv; split q,k,v into H heads of hd
    s = q k^T / sqrt(hd)   (+ -inf where key j > query i if causal,
                            + -inf where key_mask[b, j] == 0 if key_padding)
    p = softmax(s, over keys); o = p @ v; concat heads
    x = x + o @ Wout^T + bout
    m = ln2(x); x = x + fc2(act(fc1(m)))
then y = ln_f(x).  LayerNorm: biased variance, eps 1e-5.
Note: padded positions are masked only as KEYS; they are still computed as queries
(and receive gradient through dy), exactly like every other position.

act: "quickgelu"  x * sigmoid(1.702 x)
     "gelu"       0.5 x (1 + erf(x / sqrt(2)))              (exact)
     "gelu_tanh"  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

All random values are drawn in float32 with numpy's PCG64 generator (seeded per case,
version-stable), then cast to float64; the reference forward/backward runs in float64
with torch autograd and results are saved as float32 (.npy format 1.0, little-endian,
C order).  The script is deterministic.  As an informational self-check it recomputes
everything in float32 and prints the max relative difference to the float64 results
(max|a32 - a64| / max|a64| per tensor, worst over all tensors).
"""

import json
import math
import os
import sys

import numpy as np
import torch

LN_EPS = 1e-5

CASES = [
    # name,            act,         causal, key_padding, B, T, D,  H, seed, valid lengths
    ("quickgelu",       "quickgelu", False,  False,       2, 7, 32, 4, 1001, None),
    ("gelu_causal_pad", "gelu",      True,   True,        3, 9, 24, 3, 1002, [9, 6, 9]),
    ("gelu_tanh",       "gelu_tanh", False,  True,        2, 5, 16, 2, 1003, [5, 3]),
]
LAYERS = 2


def param_shapes(D, layers):
    F = 4 * D
    out = []
    for l in range(layers):
        p = "blocks.%d." % l
        out += [
            (p + "ln1.weight", (D,)), (p + "ln1.bias", (D,)),
            (p + "attn.qkv.weight", (3 * D, D)), (p + "attn.qkv.bias", (3 * D,)),
            (p + "attn.out.weight", (D, D)), (p + "attn.out.bias", (D,)),
            (p + "ln2.weight", (D,)), (p + "ln2.bias", (D,)),
            (p + "mlp.fc1.weight", (F, D)), (p + "mlp.fc1.bias", (F,)),
            (p + "mlp.fc2.weight", (D, F)), (p + "mlp.fc2.bias", (D,)),
        ]
    out += [("ln_f.weight", (D,)), ("ln_f.bias", (D,))]
    return out


def init_params(rng, D, layers):
    params = {}
    for name, shape in param_shapes(D, layers):
        z = rng.standard_normal(shape, dtype=np.float32)
        if name.endswith(".bias"):
            v = np.float32(0.1) * z
        elif ".ln" in name or name.startswith("ln_f"):
            v = np.float32(1.0) + np.float32(0.1) * z
        else:
            fan_in = shape[1]
            std = min(0.1, max(0.02, 0.6 / math.sqrt(fan_in)))
            v = np.float32(std) * z
        params[name] = np.ascontiguousarray(v, dtype=np.float32)
    return params


def act_fn(name, x):
    if name == "quickgelu":
        return x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    raise ValueError(name)


def layer_norm(x, w, b):
    mu = x.mean(dim=-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=-1, keepdim=True)  # biased
    return xc / torch.sqrt(var + LN_EPS) * w + b


def linear(x, w, b):
    return x @ w.t() + b


def forward(x, P, meta, key_mask):
    B, T, D, H = meta["B"], meta["T"], meta["D"], meta["H"]
    hd = D // H
    # additive mask [B, 1, T(query), T(key)], True = masked
    masked = torch.zeros(B, 1, T, T, dtype=torch.bool)
    if meta["causal"]:
        masked |= torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)[None, None]
    if meta["key_padding"]:
        masked |= (key_mask == 0)[:, None, None, :]
    for l in range(meta["layers"]):
        p = "blocks.%d." % l
        a = layer_norm(x, P[p + "ln1.weight"], P[p + "ln1.bias"])
        qkv = linear(a, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"])
        q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
        q = q.reshape(B, T, H, hd).permute(0, 2, 1, 3)
        k = k.reshape(B, T, H, hd).permute(0, 2, 1, 3)
        v = v.reshape(B, T, H, hd).permute(0, 2, 1, 3)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(masked, float("-inf"))
        pr = torch.softmax(s, dim=-1)
        o = (pr @ v).permute(0, 2, 1, 3).reshape(B, T, D)
        x = x + linear(o, P[p + "attn.out.weight"], P[p + "attn.out.bias"])
        m = layer_norm(x, P[p + "ln2.weight"], P[p + "ln2.bias"])
        hmid = act_fn(meta["act"], linear(m, P[p + "mlp.fc1.weight"], P[p + "mlp.fc1.bias"]))
        x = x + linear(hmid, P[p + "mlp.fc2.weight"], P[p + "mlp.fc2.bias"])
    return layer_norm(x, P["ln_f.weight"], P["ln_f.bias"])


def run(x_np, dy_np, params_np, meta, key_mask_np, dtype):
    x = torch.tensor(x_np).to(dtype).requires_grad_(True)
    P = {n: torch.tensor(v).to(dtype).requires_grad_(True) for n, v in params_np.items()}
    km = torch.tensor(key_mask_np)
    y = forward(x, P, meta, km)
    loss = (y * torch.tensor(dy_np).to(dtype)).sum()
    loss.backward()
    out = {"y": y.detach().double().numpy(), "grad_x": x.grad.double().numpy()}
    for n, t in P.items():
        out["grad." + n] = t.grad.double().numpy()
    return out


def save_npy(path, arr, dtype):
    a = np.ascontiguousarray(arr).astype(np.dtype(dtype).newbyteorder("<"), copy=False)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=(1, 0), allow_pickle=False)


def gen_case(root, case):
    name, act, causal, kpad, B, T, D, H, seed, lengths = case
    assert D % H == 0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D), dtype=np.float32)
    dy = rng.standard_normal((B, T, D), dtype=np.float32)
    params = init_params(rng, D, LAYERS)
    key_mask = np.ones((B, T), dtype=np.int32)
    if kpad:
        for b, n in enumerate(lengths):
            assert n >= 1
            key_mask[b, n:] = 0
    meta = {"B": B, "T": T, "D": D, "H": H, "layers": LAYERS, "act": act,
            "causal": causal, "key_padding": kpad, "ln_eps": LN_EPS, "seed": seed}

    ref = run(x, dy, params, meta, key_mask, torch.float64)
    chk = run(x, dy, params, meta, key_mask, torch.float32)

    worst, worst_name = 0.0, ""
    for k in ref:
        den = float(np.max(np.abs(ref[k])))
        rel = float(np.max(np.abs(chk[k] - ref[k]))) / (den if den > 0 else 1.0)
        if rel > worst:
            worst, worst_name = rel, k
    assert all(np.all(np.isfinite(v)) for v in ref.values())

    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        if old.endswith(".npy") or old == "meta.json":
            os.remove(os.path.join(d, old))
    save_npy(os.path.join(d, "x.npy"), x, np.float32)
    save_npy(os.path.join(d, "dy.npy"), dy, np.float32)
    save_npy(os.path.join(d, "key_mask.npy"), key_mask, np.int32)
    for k, v in ref.items():
        save_npy(os.path.join(d, k + ".npy"), v, np.float32)
    for n, v in params.items():
        save_npy(os.path.join(d, "param." + n + ".npy"), v, np.float32)
    meta_out = dict(meta)
    meta_out["param_names"] = [n for n, _ in param_shapes(D, LAYERS)]
    meta_out["loss"] = "sum(y * dy)"
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta_out, f, indent=1)
        f.write("\n")
    print("%-16s B=%d T=%d D=%d H=%d act=%-9s causal=%d key_padding=%d  "
          "fp32-vs-fp64 max rel diff = %.3e (%s)  |y|max=%.3f"
          % (name, B, T, D, H, act, causal, kpad, worst, worst_name,
             float(np.max(np.abs(ref["y"])))))


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: /usr/bin/python3 %s OUTDIR\n" % sys.argv[0])
        return 2
    torch.set_num_threads(1)  # deterministic reductions
    for case in CASES:
        gen_case(sys.argv[1], case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
