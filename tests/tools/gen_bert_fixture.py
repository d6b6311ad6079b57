#!/usr/bin/python3
"""Writes tests/fixtures/bert_model/: tiny random BERTs and their outputs, for test_bert.c.

The reference is plain PyTorch written to match Hugging Face's BertModel math term for term
(transformers is not needed): embeddings = LN(word + token_type + position), post-LN layers
(LN(x + dense(attn))), erf GELU, additive key-padding mask, [CLS] pooler dense + tanh; the pre-LN
variant follows RobertaPreLayerNormModel (LN before attention / MLP, final LayerNorm); the cross
variant adds cross-attention layers (BertLayer with add_cross_attention) and causal
self-attention (is_decoder). Computed in float64 from float32 weights.

Variants (each a directory with model.safetensors, config.json, inputs and outputs as .npy):
  post   post-LN BERT with pooler
  pre    pre-LN with final LayerNorm and pooler
  cross  post-LN, causal self-attention, cross-attention in layers >= 1 over encoder states
         of width 24 with their own padding mask, no pooler

Run from the repository root: /usr/bin/python3 tests/tools/gen_bert_fixture.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import (RefModel, Weights, additive_mask, bert_embedding_weights, bert_layer_weights, f32,  # noqa: E402
                       i32, write_fixture)

OUT = "tests/fixtures/bert_model"
BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12)


def cross_layer(cfg, l):
    cross_from = cfg.get("cross_attention_from", -1)
    return cross_from >= 0 and l >= cross_from


def make_weights(cfg, gen):
    D, FF, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    E, pre = cfg.get("encoder_width", D), cfg.get("pre_ln", False)
    w = Weights(gen)
    bert_embedding_weights(w, "embeddings.", cfg["vocab_size"], cfg["max_position_embeddings"],
                           cfg["type_vocab_size"], D)
    for l in range(L):
        bert_layer_weights(w, f"encoder.layer.{l}.", D, FF, cross_width=E if cross_layer(cfg, l) else None, pre=pre)
    if pre:
        w.layer_norm("LayerNorm", D)
    if cfg.get("pooler", True):
        w.linear("pooler.dense", D, D)
    return w.w


def forward(cfg, w, ids, types, mask, enc=None, enc_mask=None):
    W = {k: v.double() for k, v in w.items()}
    M = RefModel(W, cfg["num_attention_heads"], cfg["layer_norm_eps"])
    pre = cfg.get("pre_ln", False)
    x = M.bert_embed(ids, "embeddings.", types)
    sm = additive_mask(mask, cfg.get("is_decoder", False))
    em = additive_mask(enc_mask) if enc is not None else None
    enc = enc.double() if enc is not None else None
    for l in range(cfg["num_hidden_layers"]):
        x = M.bert_layer(x, f"encoder.layer.{l}.", sm, pre, enc if cross_layer(cfg, l) else None, em)
    if pre:
        x = M.ln(x, "LayerNorm")
    pooled = torch.tanh(M.lin(x[:, 0], "pooler.dense")) if cfg.get("pooler", True) else None
    return x, pooled


def main():
    gen = torch.Generator().manual_seed(20261129)
    # Three sequences of length 9, right-padded (id 0, mask 0), mixed token types.
    ids = torch.tensor([[2, 17, 33, 5, 60, 3, 9, 41, 3],
                        [2, 8, 8, 51, 3, 0, 0, 0, 0],
                        [2, 63, 12, 3, 27, 44, 3, 0, 0]])
    types = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1],
                          [0, 0, 0, 0, 0, 0, 0, 0, 0],
                          [0, 0, 0, 0, 1, 1, 1, 0, 0]])
    mask = (torch.arange(9)[None] < torch.tensor([9, 5, 7])[:, None]).long()
    enc = (0.7 * torch.randn(3, 5, 24, generator=gen)).float()
    enc_mask = (torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]).long()
    variants = {
        "post": dict(BASE),
        "pre": dict(BASE, pre_ln=True),
        "cross": dict(BASE, pooler=False, is_decoder=True, add_cross_attention=True, cross_attention_from=1,
                      encoder_width=24),
    }
    for name, cfg in variants.items():
        d = os.path.join(OUT, name)
        w = make_weights(cfg, gen)
        cross = cfg.get("add_cross_attention", False)
        hidden, pooled = forward(cfg, w, ids, types, mask, enc if cross else None, enc_mask if cross else None)
        jc = dict(cfg, architectures=["BertModel"], model_type="bert", hidden_act="gelu",
                  position_embedding_type="absolute")
        arrays = dict(input_ids=i32(ids), token_type_ids=i32(types), attention_mask=i32(mask),
                      last_hidden_state=f32(hidden))
        if pooled is not None:
            arrays["pooler_output"] = f32(pooled)
        if cross:
            arrays.update(encoder_hidden_states=enc.numpy(), encoder_attention_mask=i32(enc_mask))
        write_fixture(d, w, jc, arrays)
        print(f"{d}: hidden {tuple(hidden.shape)} |max| {hidden.abs().max():.3f}"
              + (f", pooled {tuple(pooled.shape)}" if pooled is not None else ""))


if __name__ == "__main__":
    main()
