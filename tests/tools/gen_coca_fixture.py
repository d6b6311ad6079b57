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
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import (IGNORE, RefModel, Weights, additive_mask, bert_embedding_weights,  # noqa: E402
                       bert_layer_weights, f32, float64_leaves, i32, itc_loss, leaf_grads, lm_head_weights,
                       write_fixture)

OUT = "tests/fixtures/coca"
CFG = dict(image_size=16, patch_size=8, vision_width=24, vision_layers=1, vision_heads=2, vision_mlp=48,
           vocab_size=64, max_text_len=12, width=32, layers=3, heads=4, mlp=48, fusion_layers=1, embed_dim=16,
           ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2, act="gelu")


def make_weights(pre, gen):
    D, FF, L, V, E = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"]
    IW, frm = CFG["vision_width"], CFG["layers"] - CFG["fusion_layers"]
    w = Weights(gen)
    bert_embedding_weights(w, "text.embeddings.", V, CFG["max_text_len"], 2, D)
    for l in range(L):  # the top fusion_layers cross-attend to the image tokens
        bert_layer_weights(w, f"text.encoder.layer.{l}.", D, FF, cross_width=IW if l >= frm else None, pre=pre)
    if pre:
        w.layer_norm("text.LayerNorm", D)
    w.rnd("text_itc.token", D, std=0.5)
    w.layer_norm("text_itc.ln", D)
    w.linear("text_proj", E, D, bias=False)
    w.linear("vision_proj", E, IW, bias=False)
    w.const("logit_scale", 2.0)
    lm_head_weights(w, D, V)
    return w.w


def forward(pre, W, img, ids, mask):
    D, L, frm = CFG["width"], CFG["layers"], CFG["layers"] - CFG["fusion_layers"]
    B, T = ids.shape
    M = RefModel(W, CFG["heads"], CFG["ln_eps"])
    layer = lambda x, l, m, enc=None: M.bert_layer(x, f"text.encoder.layer.{l}.", m, pre, enc)
    e = "text.embeddings."
    x = M.bert_embed(ids, e)
    tok = M.ln(W["text_itc.token"], e + "LayerNorm")
    x = torch.cat([x, tok.expand(B, 1, D)], dim=1)
    m1 = additive_mask(torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1), causal=True)
    for l in range(frm):
        x = layer(x, l, m1)
    txt_feat = M.lin(M.ln(x[:, T], "text_itc.ln"), "text_proj", bias=False)
    img_feat = M.lin(img[:, 0], "vision_proj", bias=False)
    x = x[:, :T]
    m2 = additive_mask(mask, causal=True)
    for l in range(frm, L):
        x = layer(x, l, m2, img)
    if pre:
        x = M.ln(x, "text.LayerNorm")
    logits = M.lm_logits(x)
    # losses
    itc = itc_loss(img_feat, txt_feat, W["logit_scale"])
    labels = torch.where(mask[:, 1:] > 0, ids[:, 1:], torch.full_like(ids[:, 1:], IGNORE))
    labels = torch.cat([labels, torch.full((B, 1), IGNORE, dtype=labels.dtype)], dim=1)
    lm = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=IGNORE)
    return logits, img_feat, txt_feat, itc, lm


def main():
    gen = torch.Generator().manual_seed(20261130)
    B = 3
    N1 = (CFG["image_size"] // CFG["patch_size"]) ** 2 + 1
    # right-padded captions: bos ... eos, then pad (id 0, mask 0)
    ids = torch.tensor([[1, 17, 33, 5, 60, 9, 41, 12, 2],
                        [1, 8, 8, 51, 2, 0, 0, 0, 0],
                        [1, 63, 12, 27, 44, 2, 0, 0, 0]])
    mask = (ids != 0).long()
    for pre in (False, True):
        d = os.path.join(OUT, "pre" if pre else "post")
        w = make_weights(pre, gen)
        img = (0.8 * torch.randn(B, N1, CFG["vision_width"], generator=gen)).float()
        W = float64_leaves(w)
        img64 = img.double().requires_grad_(True)
        logits, fi, ft, itc, lm = forward(pre, W, img64, ids, mask)
        (itc + lm).backward()
        grads = leaf_grads(W, image=img64)
        cfg = dict(CFG, format="vlp-vl", family="captioning", objectives=["itc", "lm"], text_pre_ln=int(pre),
                   w_itc=1.0, w_lm=1.0)
        arrays = dict(image=img.numpy(), ids=i32(ids), mask=i32(mask), logits=f32(logits), img_feat=f32(fi),
                      txt_feat=f32(ft), losses=np.array([itc.item(), lm.item()], dtype=np.float32))
        write_fixture(d, w, cfg, arrays, grads)
        print(f"{d}: logits {tuple(logits.shape)}, itc {itc.item():.4f}, lm {lm.item():.4f}, "
              f"|grad token| {np.abs(grads['text_itc.token']).max():.3g}")


if __name__ == "__main__":
    main()
