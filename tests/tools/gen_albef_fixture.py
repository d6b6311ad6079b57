#!/usr/bin/python3
"""Writes tests/fixtures/albef/: a tiny ALBEF-style dual-stream model (vlp's dual_stream family:
ViT + post-LN BERT text encoder whose top `fusion_layers` layers cross-attend to the image
tokens), its outputs and the gradient of every parameter it uses, for tests/test_fusion_ref.c.

The reference is plain PyTorch written from the model's definition (include/vlp_vl.h), computed
in float64 from float32 weights; vlp is not imported. Given pixels and right-padded texts:

  image  ViT: patch embedding (conv, stride = patch) + class token + positions, pre-LN blocks
         (fused qkv, GELU MLP), final LayerNorm -> image tokens [B, N + 1, IW]
  text   BERT embeddings LN(word + type[0] + position); layers 0 .. L-F-1: post-LN, self-attention
         only, NOT causal, padded keys masked -> text states [B, T, W]
  fusion layers L-F .. L-1 on the text states: post-LN self-attention (padded keys masked), then
         cross-attention to every image token, then the FFN
  ITC    image feature = vision_proj(image token 0), text feature = text_proj(text state 0);
         CLIP InfoNCE of the L2-normalised features at exp(logit_scale)
  ITM    ALBEF's 3B pairs: B positives, then image neg_img[i] with text i, then image i with
         text neg_txt[i] (and that text's mask); head = itm_head(tanh(pooler(fused row 0)));
         cross-entropy against B ones then 2B zeros (the negatives are fixed inputs here)
  MLM    the masked text (mlm_ids) through the text layers and the fusion with the image tokens;
         LM head dense, GELU, LN, tied word embeddings + bias on the labelled rows (mlm_rows of
         the flattened [B*T] states; a padding row with label -100 is ignored); cross-entropy
  loss   itc + itm + mlm; gradients of every tensor of model.safetensors and of the pixels.

Not in the files (unused by these objectives): vision.mask_token, mim_head.*.
Files: model.safetensors (vlp parameter names), config.json (vlp-vl, dual_stream), pixels.npy,
ids.npy, mask.npy, mlm_ids.npy, mlm_rows.npy, mlm_labels.npy, neg_img.npy, neg_txt.npy,
img_enc.npy, txt_enc.npy, fused.npy (the MLM pass's fusion output), itm_logits.npy [3B, 2],
img_feat.npy, txt_feat.npy, losses.npy [itc, itm, mlm], grads.safetensors (same names + "pixels").

Run from the repository root: /usr/bin/python3 tests/tools/gen_albef_fixture.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402

OUT = "tests/fixtures/albef"
CFG = dict(image_size=8, patch_size=4, vision_width=16, vision_layers=1, vision_heads=2, vision_mlp=32,
           vocab_size=32, max_text_len=10, width=24, layers=2, heads=4, mlp=32, fusion_layers=1, embed_dim=12,
           ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2, act="gelu")
F = torch.nn.functional


def make_weights(gen):
    D, FF, L, V, E = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"]
    IW, IF, P = CFG["vision_width"], CFG["vision_mlp"], CFG["patch_size"]
    N1 = (CFG["image_size"] // P) ** 2 + 1
    frm = L - CFG["fusion_layers"]
    w = {}

    def rnd(name, *shape, std=0.2, mean=0.0):
        w[name] = (mean + std * torch.randn(*shape, generator=gen)).float()

    rnd("vision.patch_embed.weight", IW, 3, P, P)
    rnd("vision.patch_embed.bias", IW, std=0.1)
    rnd("vision.class_embedding", IW, std=0.5)
    rnd("vision.pos_embed", N1, IW, std=0.5)
    for l in range(CFG["vision_layers"]):
        p = f"vision.blocks.{l}."
        for ln in ("ln1", "ln2"):
            rnd(p + ln + ".weight", IW, mean=1.0, std=0.1)
            rnd(p + ln + ".bias", IW, std=0.1)
        rnd(p + "attn.qkv.weight", 3 * IW, IW)
        rnd(p + "attn.qkv.bias", 3 * IW, std=0.1)
        rnd(p + "attn.out.weight", IW, IW)
        rnd(p + "attn.out.bias", IW, std=0.1)
        rnd(p + "mlp.fc1.weight", IF, IW)
        rnd(p + "mlp.fc1.bias", IF, std=0.1)
        rnd(p + "mlp.fc2.weight", IW, IF)
        rnd(p + "mlp.fc2.bias", IW, std=0.1)
    rnd("vision.ln.weight", IW, mean=1.0, std=0.1)
    rnd("vision.ln.bias", IW, std=0.1)
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
            rnd(f"{p}{blk}output.LayerNorm.weight", D, mean=1.0, std=0.1)
            rnd(f"{p}{blk}output.LayerNorm.bias", D, std=0.1)
        rnd(f"{p}intermediate.dense.weight", FF, D)
        rnd(f"{p}intermediate.dense.bias", FF, std=0.1)
        rnd(f"{p}output.dense.weight", D, FF)
        rnd(f"{p}output.dense.bias", D, std=0.1)
        rnd(f"{p}output.LayerNorm.weight", D, mean=1.0, std=0.1)
        rnd(f"{p}output.LayerNorm.bias", D, std=0.1)
    rnd("pooler.weight", D, D)
    rnd("pooler.bias", D, std=0.1)
    rnd("itm_head.weight", 2, D, std=0.5)
    rnd("itm_head.bias", 2, std=0.1)
    rnd("lm_head.dense.weight", D, D)
    rnd("lm_head.dense.bias", D, std=0.1)
    rnd("lm_head.ln.weight", D, mean=1.0, std=0.1)
    rnd("lm_head.ln.bias", D, std=0.1)
    rnd("lm_head.bias", V, std=0.1)
    rnd("vision_proj.weight", E, IW)
    rnd("text_proj.weight", E, D)
    w["logit_scale"] = torch.tensor(2.0).float()
    return w


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class Model:
    def __init__(self, W):
        self.W = W

    def lin(self, x, n, bias=True):
        return x @ self.W[n + ".weight"].T + (self.W[n + ".bias"] if bias else 0)

    def ln(self, x, n):
        return F.layer_norm(x, (x.shape[-1],), self.W[n + ".weight"], self.W[n + ".bias"], CFG["ln_eps"])

    @staticmethod
    def mha(q, k, v, heads, keymask):
        """q [B, Tq, D], k/v [B, Tk, D]; keymask [B, Tk] (1 = attend) or None."""
        B, Tq, D = q.shape
        dh = D // heads
        split = lambda x: x.reshape(B, x.shape[1], heads, dh).transpose(1, 2)
        s = split(q) @ split(k).transpose(-1, -2) / math.sqrt(dh)
        if keymask is not None:
            s = s + (1.0 - keymask[:, None, None, :].double()) * torch.finfo(torch.float64).min
        return (torch.softmax(s, dim=-1) @ split(v)).transpose(1, 2).reshape(B, Tq, D)

    def vit(self, px):
        W, P, IW = self.W, CFG["patch_size"], CFG["vision_width"]
        B = px.shape[0]
        x = F.conv2d(px, W["vision.patch_embed.weight"], W["vision.patch_embed.bias"], stride=P)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([W["vision.class_embedding"].expand(B, 1, IW), x], dim=1) + W["vision.pos_embed"][None]
        for l in range(CFG["vision_layers"]):
            p = f"vision.blocks.{l}."
            qkv = self.lin(self.ln(x, p + "ln1"), p + "attn.qkv")
            a = self.mha(qkv[..., :IW], qkv[..., IW:2 * IW], qkv[..., 2 * IW:], CFG["vision_heads"], None)
            x = x + self.lin(a, p + "attn.out")
            x = x + self.lin(gelu(self.lin(self.ln(x, p + "ln2"), p + "mlp.fc1")), p + "mlp.fc2")
        return self.ln(x, "vision.ln")

    def embed_text(self, ids):
        e, T = "text.embeddings.", ids.shape[1]
        x = self.W[e + "word_embeddings.weight"][ids] + self.W[e + "token_type_embeddings.weight"][0]
        return self.ln(x + self.W[e + "position_embeddings.weight"][:T][None], e + "LayerNorm")

    def attn_block(self, x, kv, n, keymask):
        H = CFG["heads"]
        a = self.mha(self.lin(x, n + "self.query"), self.lin(kv, n + "self.key"), self.lin(kv, n + "self.value"), H,
                     keymask)
        return self.ln(self.lin(a, n + "output.dense") + x, n + "output.LayerNorm")

    def bert_layer(self, x, l, mask, img):
        p = f"text.encoder.layer.{l}."
        x = self.attn_block(x, x, p + "attention.", mask)
        if img is not None:
            x = self.attn_block(x, img, p + "crossattention.", None)
        h = self.lin(gelu(self.lin(x, p + "intermediate.dense")), p + "output.dense")
        return self.ln(h + x, p + "output.LayerNorm")

    def encode_text(self, ids, mask):
        x = self.embed_text(ids)
        for l in range(CFG["layers"] - CFG["fusion_layers"]):
            x = self.bert_layer(x, l, mask, None)
        return x

    def fuse(self, img, txt, mask):
        x = txt
        for l in range(CFG["layers"] - CFG["fusion_layers"], CFG["layers"]):
            x = self.bert_layer(x, l, mask, img)
        return x

    def itm_logits(self, fused):
        return self.lin(torch.tanh(self.lin(fused[:, 0], "pooler")), "itm_head")

    def lm_logits(self, h):
        h = self.ln(gelu(self.lin(h, "lm_head.dense")), "lm_head.ln")
        return h @ self.W["text.embeddings.word_embeddings.weight"].T + self.W["lm_head.bias"]


def itc_loss(fi, ft, log_scale):
    a, b = F.normalize(fi, dim=-1), F.normalize(ft, dim=-1)
    s = torch.exp(log_scale) * a @ b.T
    tgt = torch.arange(fi.shape[0])
    return 0.5 * (F.cross_entropy(s, tgt) + F.cross_entropy(s.T, tgt))


def main():
    gen = torch.Generator().manual_seed(20261201)
    B, S = 3, CFG["image_size"]
    ids = torch.tensor([[1, 17, 9, 25, 5, 30, 12, 2],
                        [1, 8, 8, 21, 2, 0, 0, 0],
                        [1, 31, 12, 27, 14, 2, 0, 0]])
    T = ids.shape[1]
    mask = (ids != 0).long()
    # MLM: [MASK] (3) at four positions, a random token at one, one left unchanged; labels the originals
    mlm_ids = ids.clone()
    picks = [(0, 2, 3), (0, 5, 7), (1, 3, 3), (2, 1, None), (2, 4, 3)]
    rows, labels = [], []
    for b, t, new in picks:
        rows.append(b * T + t)
        labels.append(int(ids[b, t]))
        if new is not None:
            mlm_ids[b, t] = new
    rows.append(0)  # a padding row of the compacted form (vlp_mlm_compact): ignored
    labels.append(-100)
    rows, labels = torch.tensor(rows), torch.tensor(labels)
    neg_img = torch.tensor([2, 0, 1])  # the negative image of each text
    neg_txt = torch.tensor([1, 2, 0])  # the negative text of each image

    w = make_weights(gen)
    px = torch.randn(B, 3, S, S, generator=gen).float()
    W = {k: v.double().requires_grad_(True) for k, v in w.items()}
    px64 = px.double().requires_grad_(True)
    M = Model(W)
    img = M.vit(px64)
    txt = M.encode_text(ids, mask)
    fi = img[:, 0] @ W["vision_proj.weight"].T
    ft = txt[:, 0] @ W["text_proj.weight"].T
    itc = itc_loss(fi, ft, W["logit_scale"])
    imgs = torch.cat([img, img[neg_img], img])
    txts = torch.cat([txt, txt, txt[neg_txt]])
    masks = torch.cat([mask, mask, mask[neg_txt]])
    itm_lg = M.itm_logits(M.fuse(imgs, txts, masks))
    itm = F.cross_entropy(itm_lg, torch.tensor([1] * B + [0] * (2 * B)))
    fused = M.fuse(img, M.encode_text(mlm_ids, mask), mask)
    mlm = F.cross_entropy(M.lm_logits(fused.reshape(B * T, -1)[rows]), labels, ignore_index=-100)
    (itc + itm + mlm).backward()

    os.makedirs(OUT, exist_ok=True)
    grads = {k: v.grad.float().numpy() for k, v in W.items()}
    grads["pixels"] = px64.grad.float().numpy()
    save_safetensors(os.path.join(OUT, "model.safetensors"), {k: v.numpy() for k, v in w.items()})
    save_safetensors(os.path.join(OUT, "grads.safetensors"), grads)
    cfg = dict(CFG, format="vlp-vl", family="dual_stream", objectives=["itc", "itm", "mlm"], text_pre_ln=0,
               co_attention=0, w_itc=1.0, w_itm=1.0, w_mlm=1.0)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    i32 = lambda x: x.numpy().astype(np.int32)
    f32 = lambda x: x.detach().float().numpy()
    arrays = dict(pixels=px.numpy(), ids=i32(ids), mask=i32(mask), mlm_ids=i32(mlm_ids), mlm_rows=i32(rows),
                  mlm_labels=i32(labels), neg_img=i32(neg_img), neg_txt=i32(neg_txt), img_enc=f32(img),
                  txt_enc=f32(txt), fused=f32(fused), itm_logits=f32(itm_lg), img_feat=f32(fi), txt_feat=f32(ft),
                  losses=np.array([itc.item(), itm.item(), mlm.item()], dtype=np.float32))
    for k, v in arrays.items():
        np.save(os.path.join(OUT, k + ".npy"), v)
    small = min(np.abs(g).max() for g in grads.values())
    print(f"{OUT}: itc {itc.item():.4f}, itm {itm.item():.4f}, mlm {mlm.item():.4f}, {len(grads)} gradients "
          f"(smallest max |g| {small:.3g}), {sum(v.numel() for v in w.values())} parameters")


if __name__ == "__main__":
    main()
