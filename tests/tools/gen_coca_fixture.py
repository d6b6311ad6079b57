#!/usr/bin/python3
"""Writes tests/fixtures/coca/: a tiny CoCa-style captioning decoder (vlp's captioning family with
0 < fusion_layers < layers and ITC heads), its outputs and gradients, for test_fusion.c.

The reference is plain PyTorch written from the model's definition (include/vlp_vl.h), computed in
float64 from float32 weights; vlp is not imported. Given image tokens (the ViT's output, an input
here: the ViT is checked elsewhere) and right-padded captions:

  text  = BERT embeddings LN(word + type[0] + position); ITC token = LN_emb(text_itc.token),
          appended after the T text rows (behind the padding)
  unimodal layers 0 .. L-F-1 on [text; token]: causal self-attention, padded keys masked
  ITC   text feature = text_proj(LN_itc(row T)); image feature = vision_proj(image token 0);
        loss = CLIP InfoNCE of the L2-normalised features at exp(logit_scale)
  multimodal layers L-F .. L-1 on rows 0 .. T-1 (the token dropped), cross-attention to every
        image token; pre-LN: final LayerNorm; LM head dense, GELU, LN, tied word embeddings
  LM    loss = mean cross-entropy of next tokens where the next position is real
  loss  = itc + lm; gradients of every tensor below and of the image tokens.

Variants: post (post-LN BERT layers, as BERT) and pre (pre-LN, RobertaPreLayerNorm layout).
Each directory: model.safetensors (vlp parameter names; the text side only), config.json (vlp-vl,
captioning), image.npy, ids.npy, mask.npy, logits.npy, img_feat.npy, txt_feat.npy, losses.npy
[itc, lm], grads.safetensors (same names + "image").

Run from the repository root: /usr/bin/python3 tests/tools/gen_coca_fixture.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402

OUT = "tests/fixtures/coca"
CFG = dict(image_size=16, patch_size=8, vision_width=24, vision_layers=1, vision_heads=2, vision_mlp=48,
           vocab_size=64, max_text_len=12, width=32, layers=3, heads=4, mlp=48, fusion_layers=1, embed_dim=16,
           ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2, act="gelu")


def make_weights(pre, gen):
    D, F, L, V, E = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"]
    IW, frm = CFG["vision_width"], CFG["layers"] - CFG["fusion_layers"]
    w = {}

    def rnd(name, *shape, std=0.2, mean=0.0):
        w[name] = (mean + std * torch.randn(*shape, generator=gen)).float()

    t = "text."
    rnd(t + "embeddings.word_embeddings.weight", V, D, std=0.5)
    rnd(t + "embeddings.position_embeddings.weight", CFG["max_text_len"], D, std=0.5)
    rnd(t + "embeddings.token_type_embeddings.weight", 2, D, std=0.5)
    rnd(t + "embeddings.LayerNorm.weight", D, mean=1.0, std=0.1)
    rnd(t + "embeddings.LayerNorm.bias", D, std=0.1)
    for l in range(L):
        p = f"{t}encoder.layer.{l}."
        blocks = [("attention.", D)] + ([("crossattention.", IW)] if l >= frm else [])
        for blk, kv_in in blocks:
            for n, din in (("query", D), ("key", kv_in), ("value", kv_in)):
                rnd(f"{p}{blk}self.{n}.weight", D, din)
                rnd(f"{p}{blk}self.{n}.bias", D, std=0.1)
            rnd(f"{p}{blk}output.dense.weight", D, D)
            rnd(f"{p}{blk}output.dense.bias", D, std=0.1)
            ln = f"{p}{blk}LayerNorm" if pre else f"{p}{blk}output.LayerNorm"
            rnd(f"{ln}.weight", D, mean=1.0, std=0.1)
            rnd(f"{ln}.bias", D, std=0.1)
        rnd(f"{p}intermediate.dense.weight", F, D)
        rnd(f"{p}intermediate.dense.bias", F, std=0.1)
        rnd(f"{p}output.dense.weight", D, F)
        rnd(f"{p}output.dense.bias", D, std=0.1)
        ln = f"{p}intermediate.LayerNorm" if pre else f"{p}output.LayerNorm"
        rnd(f"{ln}.weight", D, mean=1.0, std=0.1)
        rnd(f"{ln}.bias", D, std=0.1)
    if pre:
        rnd(t + "LayerNorm.weight", D, mean=1.0, std=0.1)
        rnd(t + "LayerNorm.bias", D, std=0.1)
    rnd("text_itc.token", D, std=0.5)
    rnd("text_itc.ln.weight", D, mean=1.0, std=0.1)
    rnd("text_itc.ln.bias", D, std=0.1)
    rnd("text_proj.weight", E, D)
    rnd("vision_proj.weight", E, IW)
    w["logit_scale"] = torch.tensor(2.0).float()
    rnd("lm_head.dense.weight", D, D)
    rnd("lm_head.dense.bias", D, std=0.1)
    rnd("lm_head.ln.weight", D, mean=1.0, std=0.1)
    rnd("lm_head.ln.bias", D, std=0.1)
    rnd("lm_head.bias", V, std=0.1)
    return w


def forward(pre, W, img, ids, mask):
    D, H, eps, L = CFG["width"], CFG["heads"], CFG["ln_eps"], CFG["layers"]
    frm, dh = CFG["layers"] - CFG["fusion_layers"], D // H
    B, T = ids.shape
    lin = lambda x, n, bias=True: x @ W[n + ".weight"].T + (W[n + ".bias"] if bias else 0)
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (D,), W[n + ".weight"], W[n + ".bias"], eps)
    gelu = lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    neg = torch.finfo(torch.float64).min

    def self_mask(keymask):  # causal + padded keys, additive
        n = keymask.shape[1]
        allowed = keymask[:, None, None, :].double() * torch.tril(torch.ones(n, n, dtype=torch.float64))[None, None]
        return (1.0 - allowed) * neg

    def attn(x, kv, n, m):
        heads = lambda t: t.reshape(B, -1, H, dh).transpose(1, 2)
        q, k, v = heads(lin(x, n + "self.query")), heads(lin(kv, n + "self.key")), heads(lin(kv, n + "self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + m
        return lin((torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, -1, D), n + "output.dense")

    def layer(x, l, m, cross):
        p = f"text.encoder.layer.{l}."
        if not pre:
            x = ln(attn(x, x, p + "attention.", m) + x, p + "attention.output.LayerNorm")
            if cross:
                x = ln(attn(x, img, p + "crossattention.", 0.0) + x, p + "crossattention.output.LayerNorm")
            h = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
            return ln(h + x, p + "output.LayerNorm")
        n = ln(x, p + "attention.LayerNorm")
        x = attn(n, n, p + "attention.", m) + x
        if cross:
            x = attn(ln(x, p + "crossattention.LayerNorm"), img, p + "crossattention.", 0.0) + x
        return lin(gelu(lin(ln(x, p + "intermediate.LayerNorm"), p + "intermediate.dense")), p + "output.dense") + x

    e = "text.embeddings."
    x = W[e + "word_embeddings.weight"][ids] + W[e + "token_type_embeddings.weight"][0]
    x = ln(x + W[e + "position_embeddings.weight"][:T][None], e + "LayerNorm")
    tok = ln(W["text_itc.token"], e + "LayerNorm")
    x = torch.cat([x, tok.expand(B, 1, D)], dim=1)
    m1 = self_mask(torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1))
    for l in range(frm):
        x = layer(x, l, m1, False)
    txt_feat = lin(ln(x[:, T], "text_itc.ln"), "text_proj", bias=False)
    img_feat = lin(img[:, 0], "vision_proj", bias=False)
    x = x[:, :T]
    m2 = self_mask(mask)
    for l in range(frm, L):
        x = layer(x, l, m2, True)
    if pre:
        x = ln(x, "text.LayerNorm")
    h = ln(gelu(lin(x, "lm_head.dense")), "lm_head.ln")
    logits = h @ W[e + "word_embeddings.weight"].T + W["lm_head.bias"]
    # losses
    a = torch.nn.functional.normalize(img_feat, dim=-1)
    b = torch.nn.functional.normalize(txt_feat, dim=-1)
    s = torch.exp(W["logit_scale"]) * a @ b.T
    tgt = torch.arange(B)
    itc = 0.5 * (torch.nn.functional.cross_entropy(s, tgt) + torch.nn.functional.cross_entropy(s.T, tgt))
    labels = torch.where(mask[:, 1:] > 0, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    labels = torch.cat([labels, torch.full((B, 1), -100, dtype=labels.dtype)], dim=1)
    lm = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=-100)
    return logits, img_feat, txt_feat, itc, lm


def main():
    gen = torch.Generator().manual_seed(20261130)
    B, T = 3, 9
    N1 = (CFG["image_size"] // CFG["patch_size"]) ** 2 + 1
    # right-padded captions: bos ... eos, then pad (id 0, mask 0)
    ids = torch.tensor([[1, 17, 33, 5, 60, 9, 41, 12, 2],
                        [1, 8, 8, 51, 2, 0, 0, 0, 0],
                        [1, 63, 12, 27, 44, 2, 0, 0, 0]])
    mask = (ids != 0).long()
    for pre in (False, True):
        d = os.path.join(OUT, "pre" if pre else "post")
        os.makedirs(d, exist_ok=True)
        w = make_weights(pre, gen)
        img = (0.8 * torch.randn(B, N1, CFG["vision_width"], generator=gen)).float()
        W = {k: v.double().requires_grad_(True) for k, v in w.items()}
        img64 = img.double().requires_grad_(True)
        logits, fi, ft, itc, lm = forward(pre, W, img64, ids, mask)
        (itc + lm).backward()
        grads = {k: v.grad.float().numpy() for k, v in W.items()}
        grads["image"] = img64.grad.float().numpy()
        save_safetensors(os.path.join(d, "model.safetensors"), {k: v.numpy() for k, v in w.items()})
        save_safetensors(os.path.join(d, "grads.safetensors"), grads)
        cfg = dict(CFG, format="vlp-vl", family="captioning", objectives=["itc", "lm"], text_pre_ln=int(pre),
                   w_itc=1.0, w_lm=1.0)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        np.save(os.path.join(d, "image.npy"), img.numpy())
        np.save(os.path.join(d, "ids.npy"), ids.numpy().astype(np.int32))
        np.save(os.path.join(d, "mask.npy"), mask.numpy().astype(np.int32))
        np.save(os.path.join(d, "logits.npy"), logits.detach().float().numpy())
        np.save(os.path.join(d, "img_feat.npy"), fi.detach().float().numpy())
        np.save(os.path.join(d, "txt_feat.npy"), ft.detach().float().numpy())
        np.save(os.path.join(d, "losses.npy"), np.array([itc.item(), lm.item()], dtype=np.float32))
        print(f"{d}: logits {tuple(logits.shape)}, itc {itc.item():.4f}, lm {lm.item():.4f}, "
              f"|grad token| {np.abs(grads['text_itc.token']).max():.3g}")


if __name__ == "__main__":
    main()
