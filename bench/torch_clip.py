#!/usr/bin/python3
"""PyTorch peer for the CLIP inference benchmark.

Loads a vlp/Hugging Face CLIP checkpoint directory (model.safetensors + config.json,
e.g. from `vlp init --preset ViT-B-32 DIR`) with a small safetensors reader (no
`safetensors` package needed) into OpenAI's CLIP architecture written in plain torch
(nn.MultiheadAttention blocks, QuickGELU, as clip/model.py), then times:
  image embedding at batch 1 (latency) and batch 32 (throughput), text at batch 32.
Prints one JSON line. --dump FILE.npy saves the image features of the deterministic
test input so the vlp side can check both run the same model.

  /usr/bin/python3 bench/torch_clip.py DIR [--threads 2] [--reps 5]
"""
import argparse
import json
import math
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn as nn


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}[e["dtype"]]
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt).reshape(e["shape"]).copy())
    return out


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, w, h, mlp, causal_len=0):
        super().__init__()
        self.attn = nn.MultiheadAttention(w, h)
        self.ln_1 = nn.LayerNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, mlp), QuickGELU(), nn.Linear(mlp, w))
        self.ln_2 = nn.LayerNorm(w)
        self.mask = None
        if causal_len:
            self.mask = torch.full((causal_len, causal_len), float("-inf")).triu_(1)

    def forward(self, x):  # x [T, B, W] as OpenAI's
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class CLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, t = cfg["vision_config"], cfg["text_config"]
        self.vw, self.p, self.img = v["hidden_size"], v["patch_size"], v["image_size"]
        grid = self.img // self.p
        self.conv1 = nn.Conv2d(3, self.vw, self.p, self.p, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(self.vw))
        self.vpos = nn.Parameter(torch.zeros(grid * grid + 1, self.vw))
        self.ln_pre, self.ln_post = nn.LayerNorm(self.vw), nn.LayerNorm(self.vw)
        self.vblocks = nn.Sequential(*[Block(self.vw, v["num_attention_heads"], v["intermediate_size"])
                                       for _ in range(v["num_hidden_layers"])])
        E = cfg["projection_dim"]
        self.vproj = nn.Parameter(torch.zeros(self.vw, E))
        tw, ctx = t["hidden_size"], t["max_position_embeddings"]
        self.tok = nn.Embedding(t["vocab_size"], tw)
        self.tpos = nn.Parameter(torch.zeros(ctx, tw))
        self.tblocks = nn.Sequential(*[Block(tw, t["num_attention_heads"], t["intermediate_size"], ctx)
                                       for _ in range(t["num_hidden_layers"])])
        self.ln_final = nn.LayerNorm(tw)
        self.tproj = nn.Parameter(torch.zeros(tw, E))

    def load_hf(self, sd):
        g = lambda k: sd[k]
        with torch.no_grad():
            self.conv1.weight.copy_(g("vision_model.embeddings.patch_embedding.weight"))
            self.class_embedding.copy_(g("vision_model.embeddings.class_embedding"))
            self.vpos.copy_(g("vision_model.embeddings.position_embedding.weight"))
            for ln, k in ((self.ln_pre, "vision_model.pre_layrnorm"), (self.ln_post, "vision_model.post_layernorm"),
                          (self.ln_final, "text_model.final_layer_norm")):
                ln.weight.copy_(g(k + ".weight")), ln.bias.copy_(g(k + ".bias"))
            self.vproj.copy_(g("visual_projection.weight").t())
            self.tok.weight.copy_(g("text_model.embeddings.token_embedding.weight"))
            self.tpos.copy_(g("text_model.embeddings.position_embedding.weight"))
            self.tproj.copy_(g("text_projection.weight").t())
            for blocks, pre in ((self.vblocks, "vision_model"), (self.tblocks, "text_model")):
                for i, b in enumerate(blocks):
                    p = f"{pre}.encoder.layers.{i}."
                    b.attn.in_proj_weight.copy_(torch.cat([g(p + f"self_attn.{q}_proj.weight") for q in "qkv"]))
                    b.attn.in_proj_bias.copy_(torch.cat([g(p + f"self_attn.{q}_proj.bias") for q in "qkv"]))
                    b.attn.out_proj.weight.copy_(g(p + "self_attn.out_proj.weight"))
                    b.attn.out_proj.bias.copy_(g(p + "self_attn.out_proj.bias"))
                    for ln, k in ((b.ln_1, "layer_norm1"), (b.ln_2, "layer_norm2")):
                        ln.weight.copy_(g(p + k + ".weight")), ln.bias.copy_(g(p + k + ".bias"))
                    b.mlp[0].weight.copy_(g(p + "mlp.fc1.weight")), b.mlp[0].bias.copy_(g(p + "mlp.fc1.bias"))
                    b.mlp[2].weight.copy_(g(p + "mlp.fc2.weight")), b.mlp[2].bias.copy_(g(p + "mlp.fc2.bias"))

    def encode_image(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.vpos)
        x = self.vblocks(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.vproj

    def encode_text(self, ids):
        x = self.tok(ids) + self.tpos
        x = self.tblocks(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x[torch.arange(x.shape[0]), ids.argmax(-1)])
        return x @ self.tproj


def test_pixels(n, s):  # deterministic input shared with bench/clip_bench.c
    i = np.arange(n * 3 * s * s, dtype=np.float64)
    return torch.from_numpy(np.sin(i * 0.001).astype(np.float32).reshape(n, 3, s, s))


def test_ids(n, ctx):
    ids = np.zeros((n, ctx), dtype=np.int64)
    for r in range(n):
        L = 5 + (r * 7) % 20
        ids[r, 0] = 49406
        ids[r, 1:L] = (np.arange(1, L) * 97 + r * 31) % 49000 + 1
        ids[r, L] = 49407
    return torch.from_numpy(ids)


def time_it(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dump")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        import ctypes
        for lib in ("libopenblas.so.0", "libblas.so.3"):
            try:
                ctypes.CDLL(lib).openblas_set_num_threads(a.threads)
                break
            except (OSError, AttributeError):
                pass
    except Exception:
        pass
    cfg = json.load(open(a.model + "/config.json"))
    m = CLIP(cfg).eval()
    m.load_hf(read_safetensors(a.model + "/model.safetensors"))
    S, ctx = m.img, cfg["text_config"]["max_position_embeddings"]
    x1, x32, t32 = test_pixels(1, S), test_pixels(32, S), test_ids(32, ctx)
    with torch.no_grad():
        if a.dump:
            np.save(a.dump, m.encode_image(test_pixels(4, S)).numpy())
            np.save(a.dump.replace(".npy", "_text.npy"), m.encode_text(test_ids(4, ctx)).numpy())
        b1 = time_it(lambda: m.encode_image(x1), a.reps * 4)
        b32 = time_it(lambda: m.encode_image(x32), a.reps)
        tx = time_it(lambda: m.encode_text(t32), a.reps)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "image_b1_ms": round(b1 * 1e3, 2), "image_b32_per_s": round(32 / b32, 2),
                      "text_b32_per_s": round(32 / tx, 2)}))


if __name__ == "__main__":
    main()
