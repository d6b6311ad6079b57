#!/usr/bin/python3
"""Writes tests/fixtures/vlmo/: a tiny VLMo-style mixture-of-modality-experts model (vlp's mome
family), its outputs and the gradient of every parameter it uses, for tests/test_fusion_ref.c.

The reference is plain PyTorch written from the model's definition (include/vlp_vl.h), computed
in float64 from float32 weights; vlp is not imported. One stack of pre-LN layers with shared
self-attention (fused qkv) and FFN experts (LN, fc1, GELU, fc2, residual): ffn_l and ffn_v in
every layer, ffn_vl in the top `fusion_layers`; final LayerNorm. Given pixels and right-padded
texts:

  embeddings  image: patch embedding (conv, stride = patch) + class token + positions + type[1];
              text: LN(word + position + type[0])
  image enc.  every layer with the vision expert, no mask -> [B, N + 1, W]
  text enc.   every layer with the language expert, padded keys masked -> [B, T, W]
  fusion      [text; image] embeddings through every layer (padded text keys masked, image keys
              never): below the top layers text rows take ffn_l and image rows ffn_v, the top
              layers ffn_vl for all rows; the text rows are the fused output [B, T, W]
  ITC         vision_proj(image enc. row 0), text_proj(text enc. row 0); CLIP InfoNCE of the
              L2-normalised features at exp(logit_scale)
  ITM         ALBEF's 3B pairs on the embeddings: B positives, image neg_img[i] with text i,
              image i with text neg_txt[i] (and its mask); itm_head(tanh(pooler(fused row 0)));
              cross-entropy against B ones then 2B zeros (negatives fixed inputs here)
  MLM         masked text (mlm_ids) fused with the image; LM head dense, GELU, LN, tied word
              embeddings + bias on the labelled rows (mlm_rows of [B*T]; a padding row with
              label -100 is ignored); cross-entropy
  loss        itc + itm + mlm: every expert gets a gradient (ffn_v from the image encoder and
              the image rows of the lower fusion layers, ffn_l from the text encoder and the text
              rows, ffn_vl from the top fusion layers only); gradients of every tensor of
              model.safetensors and of the pixels.

Not in the files (unused by these objectives): vision.mask_token, mim_head.*.
Files: model.safetensors (vlp parameter names), config.json (vlp-vl, mome), pixels.npy, ids.npy,
mask.npy, mlm_ids.npy, mlm_rows.npy, mlm_labels.npy, neg_img.npy, neg_txt.npy, img_enc.npy,
txt_enc.npy, fused.npy (the MLM pass's text rows), itm_logits.npy [3B, 2], img_feat.npy,
txt_feat.npy, losses.npy [itc, itm, mlm], grads.safetensors (same names + "pixels").

Run from the repository root: /usr/bin/python3 tests/tools/gen_vlmo_fixture.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402

OUT = "tests/fixtures/vlmo"
CFG = dict(image_size=8, patch_size=4, vocab_size=32, max_text_len=10, width=24, layers=2, heads=4, mlp=32,
           fusion_layers=1, embed_dim=12, ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2,
           act="gelu")
# mome has no ViT: the image side runs at the stack's width (as the vlmo presets set it)
CFG.update(vision_width=CFG["width"], vision_layers=0, vision_heads=CFG["heads"], vision_mlp=CFG["mlp"])
F = torch.nn.functional
FFN_L, FFN_V, FFN_VL = "ffn_l", "ffn_v", "ffn_vl"


def make_weights(gen):
    D, FF, L, V, E, P = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"], CFG["patch_size"]
    N1 = (CFG["image_size"] // P) ** 2 + 1
    w = {}

    def rnd(name, *shape, std=0.2, mean=0.0):
        w[name] = (mean + std * torch.randn(*shape, generator=gen)).float()

    rnd("vision.patch_embed.weight", D, 3, P, P)
    rnd("vision.patch_embed.bias", D, std=0.1)
    rnd("vision.class_embedding", D, std=0.5)
    rnd("vision.pos_embed", N1, D, std=0.5)
    rnd("text.word_embeddings", V, D, std=0.5)
    rnd("text.pos_embed", CFG["max_text_len"], D, std=0.5)
    rnd("type_embed", 2, D, std=0.5)
    rnd("text.emb_ln.weight", D, mean=1.0, std=0.1)
    rnd("text.emb_ln.bias", D, std=0.1)
    for l in range(L):
        p = f"blocks.{l}."
        rnd(p + "ln1.weight", D, mean=1.0, std=0.1)
        rnd(p + "ln1.bias", D, std=0.1)
        rnd(p + "attn.qkv.weight", 3 * D, D)
        rnd(p + "attn.qkv.bias", 3 * D, std=0.1)
        rnd(p + "attn.out.weight", D, D)
        rnd(p + "attn.out.bias", D, std=0.1)
        experts = [FFN_L, FFN_V] + ([FFN_VL] if l >= L - CFG["fusion_layers"] else [])
        for e in experts:
            rnd(f"{p}{e}.ln.weight", D, mean=1.0, std=0.1)
            rnd(f"{p}{e}.ln.bias", D, std=0.1)
            rnd(f"{p}{e}.fc1.weight", FF, D)
            rnd(f"{p}{e}.fc1.bias", FF, std=0.1)
            rnd(f"{p}{e}.fc2.weight", D, FF)
            rnd(f"{p}{e}.fc2.bias", D, std=0.1)
    rnd("final_ln.weight", D, mean=1.0, std=0.1)
    rnd("final_ln.bias", D, std=0.1)
    rnd("pooler.weight", D, D)
    rnd("pooler.bias", D, std=0.1)
    rnd("itm_head.weight", 2, D, std=0.5)
    rnd("itm_head.bias", 2, std=0.1)
    rnd("lm_head.dense.weight", D, D)
    rnd("lm_head.dense.bias", D, std=0.1)
    rnd("lm_head.ln.weight", D, mean=1.0, std=0.1)
    rnd("lm_head.ln.bias", D, std=0.1)
    rnd("lm_head.bias", V, std=0.1)
    rnd("vision_proj.weight", E, D)
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

    def embed_image(self, px):
        W, P, D = self.W, CFG["patch_size"], CFG["width"]
        x = F.conv2d(px, W["vision.patch_embed.weight"], W["vision.patch_embed.bias"], stride=P)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([W["vision.class_embedding"].expand(px.shape[0], 1, D), x], dim=1)
        return x + W["vision.pos_embed"][None] + W["type_embed"][1]

    def embed_text(self, ids):
        W, T = self.W, ids.shape[1]
        x = W["text.word_embeddings"][ids] + W["text.pos_embed"][:T][None] + W["type_embed"][0]
        return self.ln(x, "text.emb_ln")

    def attention(self, x, l, keymask):
        """Shared pre-LN self-attention; keymask [B, Tm] covers the first Tm keys (the rest are
        always attended), None for no mask."""
        B, n, D = x.shape
        H = CFG["heads"]
        dh, p = D // H, f"blocks.{l}."
        qkv = self.lin(self.ln(x, p + "ln1"), p + "attn.qkv")
        split = lambda t: t.reshape(B, n, H, dh).transpose(1, 2)
        q, k, v = split(qkv[..., :D]), split(qkv[..., D:2 * D]), split(qkv[..., 2 * D:])
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if keymask is not None:
            full = torch.ones(B, n, dtype=torch.float64)
            full[:, :keymask.shape[1]] = keymask.double()
            s = s + (1.0 - full[:, None, None, :]) * torch.finfo(torch.float64).min
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, n, D)
        return x + self.lin(a, p + "attn.out")

    def ffn(self, x, l, e):
        p = f"blocks.{l}.{e}"
        return x + self.lin(gelu(self.lin(self.ln(x, p + ".ln"), p + ".fc1")), p + ".fc2")

    def encode(self, x, keymask, expert):
        for l in range(CFG["layers"]):
            x = self.ffn(self.attention(x, l, keymask), l, expert)
        return self.ln(x, "final_ln")

    def fuse(self, img, txt, mask):
        T, L = txt.shape[1], CFG["layers"]
        x = torch.cat([txt, img], dim=1)
        for l in range(L):
            x = self.attention(x, l, mask)
            if l >= L - CFG["fusion_layers"]:
                x = self.ffn(x, l, FFN_VL)
            else:  # expert routing by modality
                x = torch.cat([self.ffn(x[:, :T], l, FFN_L), self.ffn(x[:, T:], l, FFN_V)], dim=1)
        return self.ln(x, "final_ln")[:, :T]

    def itm_logits(self, fused):
        return self.lin(torch.tanh(self.lin(fused[:, 0], "pooler")), "itm_head")

    def lm_logits(self, h):
        h = self.ln(gelu(self.lin(h, "lm_head.dense")), "lm_head.ln")
        return h @ self.W["text.word_embeddings"].T + self.W["lm_head.bias"]


def itc_loss(fi, ft, log_scale):
    a, b = F.normalize(fi, dim=-1), F.normalize(ft, dim=-1)
    s = torch.exp(log_scale) * a @ b.T
    tgt = torch.arange(fi.shape[0])
    return 0.5 * (F.cross_entropy(s, tgt) + F.cross_entropy(s.T, tgt))


def main():
    gen = torch.Generator().manual_seed(20261202)
    B, S = 3, CFG["image_size"]
    ids = torch.tensor([[1, 11, 29, 6, 18, 2, 0, 0],
                        [1, 25, 7, 7, 13, 22, 9, 2],
                        [1, 30, 2, 0, 0, 0, 0, 0]])
    T = ids.shape[1]
    mask = (ids != 0).long()
    mlm_ids = ids.clone()
    picks = [(0, 1, 3), (0, 4, None), (1, 3, 3), (1, 5, 19), (1, 6, 3), (2, 1, 3)]
    rows, labels = [], []
    for b, t, new in picks:
        rows.append(b * T + t)
        labels.append(int(ids[b, t]))
        if new is not None:
            mlm_ids[b, t] = new
    rows.append(0)  # a padding row of the compacted form (vlp_mlm_compact): ignored
    labels.append(-100)
    rows, labels = torch.tensor(rows), torch.tensor(labels)
    neg_img = torch.tensor([1, 2, 0])  # the negative image of each text
    neg_txt = torch.tensor([2, 0, 1])  # the negative text of each image

    w = make_weights(gen)
    px = torch.randn(B, 3, S, S, generator=gen).float()
    W = {k: v.double().requires_grad_(True) for k, v in w.items()}
    px64 = px.double().requires_grad_(True)
    M = Model(W)
    ie, te = M.embed_image(px64), M.embed_text(ids)
    img = M.encode(ie, None, FFN_V)
    txt = M.encode(te, mask, FFN_L)
    fi = img[:, 0] @ W["vision_proj.weight"].T
    ft = txt[:, 0] @ W["text_proj.weight"].T
    itc = itc_loss(fi, ft, W["logit_scale"])
    imgs = torch.cat([ie, ie[neg_img], ie])
    txts = torch.cat([te, te, te[neg_txt]])
    masks = torch.cat([mask, mask, mask[neg_txt]])
    itm_lg = M.itm_logits(M.fuse(imgs, txts, masks))
    itm = F.cross_entropy(itm_lg, torch.tensor([1] * B + [0] * (2 * B)))
    fused = M.fuse(ie, M.embed_text(mlm_ids), mask)
    mlm = F.cross_entropy(M.lm_logits(fused.reshape(B * T, -1)[rows]), labels, ignore_index=-100)
    (itc + itm + mlm).backward()

    os.makedirs(OUT, exist_ok=True)
    grads = {k: v.grad.float().numpy() for k, v in W.items()}
    grads["pixels"] = px64.grad.float().numpy()
    save_safetensors(os.path.join(OUT, "model.safetensors"), {k: v.numpy() for k, v in w.items()})
    save_safetensors(os.path.join(OUT, "grads.safetensors"), grads)
    cfg = dict(CFG, format="vlp-vl", family="mome", objectives=["itc", "itm", "mlm"], w_itc=1.0, w_itm=1.0,
               w_mlm=1.0)
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
