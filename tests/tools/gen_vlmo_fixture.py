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
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import (RefModel, Weights, additive_mask, itc_itm_mlm_fixture, patch_embedding_weights,  # noqa: E402
                       vl_head_weights)

OUT = "tests/fixtures/vlmo"
CFG = dict(image_size=8, patch_size=4, vocab_size=32, max_text_len=10, width=24, layers=2, heads=4, mlp=32,
           fusion_layers=1, embed_dim=12, ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2,
           act="gelu")
# mome has no ViT: the image side runs at the stack's width (as the vlmo presets set it)
CFG.update(vision_width=CFG["width"], vision_layers=0, vision_heads=CFG["heads"], vision_mlp=CFG["mlp"])
FFN_L, FFN_V, FFN_VL = "ffn_l", "ffn_v", "ffn_vl"


def make_weights(gen):
    D, FF, L, V, E, P = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"], CFG["patch_size"]
    w = Weights(gen)
    patch_embedding_weights(w, D, P, (CFG["image_size"] // P) ** 2 + 1)
    w.rnd("text.word_embeddings", V, D, std=0.5)
    w.rnd("text.pos_embed", CFG["max_text_len"], D, std=0.5)
    w.rnd("type_embed", 2, D, std=0.5)
    w.layer_norm("text.emb_ln", D)
    for l in range(L):
        p = f"blocks.{l}."
        w.layer_norm(p + "ln1", D)
        w.linear(p + "attn.qkv", 3 * D, D)
        w.linear(p + "attn.out", D, D)
        experts = [FFN_L, FFN_V] + ([FFN_VL] if l >= L - CFG["fusion_layers"] else [])
        for e in experts:
            w.layer_norm(f"{p}{e}.ln", D)
            w.linear(f"{p}{e}.fc1", FF, D)
            w.linear(f"{p}{e}.fc2", D, FF)
    w.layer_norm("final_ln", D)
    vl_head_weights(w, D, V, E, D)
    return w.w


class Model(RefModel):
    def __init__(self, W):
        super().__init__(W, CFG["heads"], CFG["ln_eps"], word_emb="text.word_embeddings")

    def embed_image(self, px):
        return self.patch_tokens(px, CFG["patch_size"]) + self.W["type_embed"][1]

    def embed_text(self, ids):
        W, T = self.W, ids.shape[1]
        x = W["text.word_embeddings"][ids] + W["text.pos_embed"][:T][None] + W["type_embed"][0]
        return self.ln(x, "text.emb_ln")

    def attention(self, x, l, keymask):
        """Shared pre-LN self-attention; keymask [B, Tm] covers the first Tm keys (the rest are
        always attended), None for no mask."""
        mask = None
        if keymask is not None:
            full = torch.ones(x.shape[0], x.shape[1], dtype=torch.float64)
            full[:, :keymask.shape[1]] = keymask.double()
            mask = additive_mask(full)
        p = f"blocks.{l}."
        return self.fused_self_attention(x, p + "ln1", p + "attn", CFG["heads"], mask)

    def ffn(self, x, l, e):
        p = f"blocks.{l}.{e}"
        return self.pre_ln_mlp(x, p + ".ln", p + ".fc1", p + ".fc2")

    def encode_with(self, x, keymask, expert):
        """Every layer with one modality expert (the unimodal encoders)."""
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

    # the interface of itc_itm_mlm_fixture: VLMo fuses the embeddings
    def encode(self, px, ids, mask):
        ie, te = self.embed_image(px), self.embed_text(ids)
        return self.encode_with(ie, None, FFN_V), self.encode_with(te, mask, FFN_L), ie, te

    def text_in(self, ids, mask):
        return self.embed_text(ids)


def main():
    ids = torch.tensor([[1, 11, 29, 6, 18, 2, 0, 0],
                        [1, 25, 7, 7, 13, 22, 9, 2],
                        [1, 30, 2, 0, 0, 0, 0, 0]])
    picks = [(0, 1, 3), (0, 4, None), (1, 3, 3), (1, 5, 19), (1, 6, 3), (2, 1, 3)]
    neg_img = torch.tensor([1, 2, 0])  # the negative image of each text
    neg_txt = torch.tensor([2, 0, 1])  # the negative text of each image
    cfg = dict(CFG, format="vlp-vl", family="mome", objectives=["itc", "itm", "mlm"], w_itc=1.0, w_itm=1.0,
               w_mlm=1.0)
    itc_itm_mlm_fixture(OUT, cfg, 20261202, make_weights, Model, ids, picks, neg_img, neg_txt)


if __name__ == "__main__":
    main()
