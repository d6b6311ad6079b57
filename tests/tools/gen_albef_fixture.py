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
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import (RefModel, Weights, additive_mask, bert_embedding_weights, bert_layer_weights,  # noqa: E402
                       itc_itm_mlm_fixture, patch_embedding_weights, vl_head_weights)

OUT = "tests/fixtures/albef"
CFG = dict(image_size=8, patch_size=4, vision_width=16, vision_layers=1, vision_heads=2, vision_mlp=32,
           vocab_size=32, max_text_len=10, width=24, layers=2, heads=4, mlp=32, fusion_layers=1, embed_dim=12,
           ln_eps=1e-6, pad_id=0, cls_id=1, sep_id=2, mask_id=3, bos_id=1, eos_id=2, act="gelu")


def make_weights(gen):
    D, FF, L, V, E = CFG["width"], CFG["mlp"], CFG["layers"], CFG["vocab_size"], CFG["embed_dim"]
    IW, IF, P = CFG["vision_width"], CFG["vision_mlp"], CFG["patch_size"]
    frm = L - CFG["fusion_layers"]
    w = Weights(gen)
    patch_embedding_weights(w, IW, P, (CFG["image_size"] // P) ** 2 + 1)
    for l in range(CFG["vision_layers"]):
        p = f"vision.blocks.{l}."
        w.layer_norm(p + "ln1", IW)
        w.layer_norm(p + "ln2", IW)
        w.linear(p + "attn.qkv", 3 * IW, IW)
        w.linear(p + "attn.out", IW, IW)
        w.linear(p + "mlp.fc1", IF, IW)
        w.linear(p + "mlp.fc2", IW, IF)
    w.layer_norm("vision.ln", IW)
    bert_embedding_weights(w, "text.embeddings.", V, CFG["max_text_len"], 2, D)
    for l in range(L):  # the top fusion_layers cross-attend to the image tokens
        bert_layer_weights(w, f"text.encoder.layer.{l}.", D, FF, cross_width=IW if l >= frm else None)
    vl_head_weights(w, D, V, E, IW)
    return w.w


class Model(RefModel):
    def __init__(self, W):
        super().__init__(W, CFG["heads"], CFG["ln_eps"])

    def vit(self, px):
        x = self.patch_tokens(px, CFG["patch_size"])
        for l in range(CFG["vision_layers"]):
            p = f"vision.blocks.{l}."
            x = self.fused_self_attention(x, p + "ln1", p + "attn", CFG["vision_heads"], None)
            x = self.pre_ln_mlp(x, p + "ln2", p + "mlp.fc1", p + "mlp.fc2")
        return self.ln(x, "vision.ln")

    def encode_text(self, ids, mask):
        """Text-only layers 0 .. L-F-1 (NOT causal, padded keys masked)."""
        x, m = self.bert_embed(ids, "text.embeddings."), additive_mask(mask)
        for l in range(CFG["layers"] - CFG["fusion_layers"]):
            x = self.bert_layer(x, f"text.encoder.layer.{l}.", m)
        return x

    def fuse(self, img, txt, mask):
        """Layers L-F .. L-1 on the text states, cross-attending to every image token."""
        x, m = txt, additive_mask(mask)
        for l in range(CFG["layers"] - CFG["fusion_layers"], CFG["layers"]):
            x = self.bert_layer(x, f"text.encoder.layer.{l}.", m, enc=img)
        return x

    # the interface of itc_itm_mlm_fixture: ALBEF fuses the unimodal encodings
    def encode(self, px, ids, mask):
        img = self.vit(px)
        txt = self.encode_text(ids, mask)
        return img, txt, img, txt

    def text_in(self, ids, mask):
        return self.encode_text(ids, mask)


def main():
    ids = torch.tensor([[1, 17, 9, 25, 5, 30, 12, 2],
                        [1, 8, 8, 21, 2, 0, 0, 0],
                        [1, 31, 12, 27, 14, 2, 0, 0]])
    # MLM: [MASK] (3) at four positions, a random token at one, one left unchanged; labels the originals
    picks = [(0, 2, 3), (0, 5, 7), (1, 3, 3), (2, 1, None), (2, 4, 3)]
    neg_img = torch.tensor([2, 0, 1])  # the negative image of each text
    neg_txt = torch.tensor([1, 2, 0])  # the negative text of each image
    cfg = dict(CFG, format="vlp-vl", family="dual_stream", objectives=["itc", "itm", "mlm"], text_pre_ln=0,
               co_attention=0, w_itc=1.0, w_itm=1.0, w_mlm=1.0)
    itc_itm_mlm_fixture(OUT, cfg, 20261201, make_weights, Model, ids, picks, neg_img, neg_txt)


if __name__ == "__main__":
    main()
