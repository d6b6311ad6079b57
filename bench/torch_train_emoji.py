#!/usr/bin/python3
"""PyTorch peer of `vlp train` for the emoji-s recipe (configs/emoji-s.json).

Same model, same initial weights, same batches, same optimiser, so the two step times
compare like for like (and the losses should agree to float32 round-off):

  * model: OpenAI CLIP ViT (pre-LN, QuickGELU, class-token pooling, ln_pre/ln_post) and causal
    text transformer pooled at the first end-of-text token (argmax of the ids), bias-free
    projections, learnable logit scale; the config is read from RUN/init/config.json (Hugging
    Face CLIPModel format) and the weights from RUN/init/model.safetensors, both written by
    `vlp train --dump-batches N --out RUN`;
  * data: RUN/batches/pixels_K.npy [B, 3, S, S] and tokens_K.npy [B, T], in order;
  * loss: symmetric InfoNCE on L2-normalised features, logits exp(logit_scale) * img @ txt^T;
  * AdamW(lr, betas (0.9, 0.98), eps 1e-6, weight decay 0.1) with decay only on the matrices
    (no decay on biases, norm gains, embeddings, logit scale), learning rate per step
    lr * (s + 1) / warmup during warm-up, then cosine to min_lr at `total`; the logit scale is
    clamped to [0, ln 100] after each step.

Prints one JSON line: median step time (forward + backward + optimiser, over the steps after
--warmup-steps), pairs/s, and the losses of every step.

    /usr/bin/python3 bench/torch_train_emoji.py RUN --steps 30 --warmup-steps 3 --threads 2
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    """Minimal reader (the safetensors package is not installed here): F32 tensors only."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}, only F32 is read")
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").copy().reshape(info["shape"]))
    return out


class Block(nn.Module):
    def __init__(self, d, heads, mlp, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.layer_norm1 = nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.layer_norm2 = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        B, T, D = x.shape
        H = self.heads
        a = self.layer_norm1(x)
        q = self.q_proj(a).view(B, T, H, D // H).transpose(1, 2)
        k = self.k_proj(a).view(B, T, H, D // H).transpose(1, 2)
        v = self.v_proj(a).view(B, T, H, D // H).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(D // H)
        if self.causal:
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.out_proj(o)
        m = self.fc1(self.layer_norm2(x))
        return x + self.fc2(m * torch.sigmoid(1.702 * m))


class CLIP(nn.Module):
    def __init__(self, c):
        super().__init__()
        vc, tc = c["vision_config"], c["text_config"]
        W, T, E = vc["hidden_size"], tc["hidden_size"], c["projection_dim"]
        self.patch = vc["patch_size"]
        n_pos = (vc["image_size"] // self.patch) ** 2 + 1
        self.patch_embedding = nn.Parameter(torch.empty(W, 3, self.patch, self.patch))
        self.class_embedding = nn.Parameter(torch.empty(W))
        self.vis_pos = nn.Parameter(torch.empty(n_pos, W))
        self.pre_layrnorm, self.post_layernorm = nn.LayerNorm(W), nn.LayerNorm(W)
        self.vis = nn.ModuleList(Block(W, vc["num_attention_heads"], vc["intermediate_size"], False)
                                 for _ in range(vc["num_hidden_layers"]))
        self.visual_projection = nn.Parameter(torch.empty(E, W))
        self.token_embedding = nn.Parameter(torch.empty(tc["vocab_size"], T))
        self.txt_pos = nn.Parameter(torch.empty(tc["max_position_embeddings"], T))
        self.txt = nn.ModuleList(Block(T, tc["num_attention_heads"], tc["intermediate_size"], True)
                                 for _ in range(tc["num_hidden_layers"]))
        self.final_layer_norm = nn.LayerNorm(T)
        self.text_projection = nn.Parameter(torch.empty(E, T))
        self.logit_scale = nn.Parameter(torch.empty(()))

    def load_hf(self, sd):
        """Copies a Hugging Face CLIPModel state dict into this module."""
        m = {"vision_model.embeddings.patch_embedding.weight": self.patch_embedding,
             "vision_model.embeddings.class_embedding": self.class_embedding,
             "vision_model.embeddings.position_embedding.weight": self.vis_pos,
             "vision_model.pre_layrnorm.weight": self.pre_layrnorm.weight,
             "vision_model.pre_layrnorm.bias": self.pre_layrnorm.bias,
             "vision_model.post_layernorm.weight": self.post_layernorm.weight,
             "vision_model.post_layernorm.bias": self.post_layernorm.bias,
             "visual_projection.weight": self.visual_projection,
             "text_model.embeddings.token_embedding.weight": self.token_embedding,
             "text_model.embeddings.position_embedding.weight": self.txt_pos,
             "text_model.final_layer_norm.weight": self.final_layer_norm.weight,
             "text_model.final_layer_norm.bias": self.final_layer_norm.bias,
             "text_projection.weight": self.text_projection, "logit_scale": self.logit_scale}
        for tower, blocks in (("vision", self.vis), ("text", self.txt)):
            for i, b in enumerate(blocks):
                p = f"{tower}_model.encoder.layers.{i}."
                for mod, name in ((b.layer_norm1, "layer_norm1"), (b.layer_norm2, "layer_norm2"),
                                  (b.q_proj, "self_attn.q_proj"), (b.k_proj, "self_attn.k_proj"),
                                  (b.v_proj, "self_attn.v_proj"), (b.out_proj, "self_attn.out_proj"),
                                  (b.fc1, "mlp.fc1"), (b.fc2, "mlp.fc2")):
                    m[p + name + ".weight"], m[p + name + ".bias"] = mod.weight, mod.bias
        with torch.no_grad():
            for k, p in m.items():
                p.copy_(sd[k].reshape(p.shape))
        self.hf_names = {k: (p, tuple(sd[k].shape)) for k, p in m.items()}
        # parameter groups as vlp: decay on the matrices only
        decay = {id(p) for k, p in m.items()
                 if k.endswith(".weight") and "norm" not in k and "layrnorm" not in k and "embedding" not in k}
        decay.add(id(self.patch_embedding))
        return decay

    def encode_image(self, x):
        B = x.shape[0]
        x = F.conv2d(x, self.patch_embedding, stride=self.patch).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(B, 1, -1), x], 1) + self.vis_pos
        x = self.pre_layrnorm(x)
        for b in self.vis:
            x = b(x)
        return self.post_layernorm(x[:, 0]) @ self.visual_projection.t()

    def encode_text(self, ids):
        x = self.token_embedding[ids] + self.txt_pos[: ids.shape[1]]
        for b in self.txt:
            x = b(x)
        x = x[torch.arange(ids.shape[0]), ids.argmax(-1)]
        return self.final_layer_norm(x) @ self.text_projection.t()


def save_safetensors(path, tensors):
    """Writes F32 tensors (name -> numpy array) as safetensors, atomically."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Batches:
    """The dumped batches, read one at a time: per-batch pixels/tokens files, or (--dump-compact)
    batches/index_K.npy into dataset_{pixels,tokens}.npy."""

    def __init__(self, run, n):
        d = os.path.join(run, "batches")
        self.d, self.n = d, n
        self.compact = os.path.exists(os.path.join(d, "dataset_pixels.npy"))
        if self.compact:
            self.px = np.load(os.path.join(d, "dataset_pixels.npy"), mmap_mode="r")
            self.tok = np.load(os.path.join(d, "dataset_tokens.npy"))
        last = os.path.join(d, f"{'index' if self.compact else 'pixels'}_{n - 1:04d}.npy")
        if not os.path.exists(last):
            raise SystemExit(f"{last} missing: dump at least {n} batches (vlp train --dump-batches {n})")

    def __getitem__(self, k):
        if self.compact:
            idx = np.load(os.path.join(self.d, f"index_{k:04d}.npy")).astype(np.int64)
            return torch.from_numpy(np.ascontiguousarray(self.px[idx])), torch.from_numpy(self.tok[idx].astype(np.int64))
        return (torch.from_numpy(np.load(os.path.join(self.d, f"pixels_{k:04d}.npy"))),
                torch.from_numpy(np.load(os.path.join(self.d, f"tokens_{k:04d}.npy")).astype(np.int64)))


def lr_at(step, warmup, total, base, min_lr):
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return min_lr
    p = (step - warmup) / max(total - warmup, 1)
    return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="directory written by vlp train --dump-batches")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up steps)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--schedule-warmup", type=int, default=60)
    ap.add_argument("--schedule-total", type=int, default=600)
    ap.add_argument("--save", help="write the trained model here (config.json + model.safetensors, "
                    "vlp's Hugging Face layout) so that vlp eval can score it")
    ap.add_argument("--log-every", type=int, default=1, help="progress line every N steps (stderr)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.run, "init", "config.json")))
    model = CLIP(cfg)
    decay = model.load_hf(load_safetensors(os.path.join(a.run, "init", "model.safetensors")))
    params = list(model.parameters())
    groups = [{"params": [p for p in params if id(p) in decay], "weight_decay": 0.1},
              {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.98), eps=1e-6)
    n = a.warmup_steps + a.steps
    batches = Batches(a.run, n)
    times, losses = [], []
    t_start = time.perf_counter()
    for s in range(n):
        px, ids = batches[s]
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(s, a.schedule_warmup, a.schedule_total, a.lr, 0.0)
        img = F.normalize(model.encode_image(px), dim=-1)
        txt = F.normalize(model.encode_text(ids), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        labels = torch.arange(px.shape[0])
        loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= a.warmup_steps:
            times.append(dt)
        if (s + 1) % a.log_every == 0 or s + 1 == n:
            el = time.perf_counter() - t_start
            print(f"torch step {s + 1}/{n} loss {losses[-1]:.6f} {dt:.3f} s/step, ETA {el / (s + 1) * (n - s - 1):.0f} s",
                  file=sys.stderr, flush=True)
    if a.save:
        os.makedirs(a.save, exist_ok=True)
        save_safetensors(os.path.join(a.save, "model.safetensors"),
                         {k: p.detach().numpy().reshape(shape) for k, (p, shape) in model.hf_names.items()})
        with open(os.path.join(a.run, "init", "config.json")) as f, open(os.path.join(a.save, "config.json"), "w") as g:
            g.write(f.read())
    med = statistics.median(times)
    B = px.shape[0]
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": a.threads, "batch": B,
                      "steps_timed": len(times), "median_step_s": round(med, 4), "min_step_s": round(min(times), 4),
                      "pairs_per_s": round(B / med, 1), "wall_s": round(time.perf_counter() - t_start, 1), "losses": [round(x, 6) for x in losses]}))


if __name__ == "__main__":
    main()
