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
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402

OUT = "tests/fixtures/bert_model"
BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12)


def make_weights(cfg, gen):
    D, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    E = cfg.get("encoder_width", D)
    pre, cross_from = cfg.get("pre_ln", False), cfg.get("cross_attention_from", -1)
    w = {}

    def rnd(name, *shape, std=0.2, mean=0.0):
        w[name] = (mean + std * torch.randn(*shape, generator=gen)).float()

    rnd("embeddings.word_embeddings.weight", cfg["vocab_size"], D, std=0.5)
    rnd("embeddings.position_embeddings.weight", cfg["max_position_embeddings"], D, std=0.5)
    rnd("embeddings.token_type_embeddings.weight", cfg["type_vocab_size"], D, std=0.5)
    rnd("embeddings.LayerNorm.weight", D, mean=1.0, std=0.1)
    rnd("embeddings.LayerNorm.bias", D, std=0.1)
    for l in range(L):
        p = f"encoder.layer.{l}."
        blocks = [("attention.", D)] + ([("crossattention.", E)] if cross_from >= 0 and l >= cross_from else [])
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
        rnd("LayerNorm.weight", D, mean=1.0, std=0.1)
        rnd("LayerNorm.bias", D, std=0.1)
    if cfg.get("pooler", True):
        rnd("pooler.dense.weight", D, D)
        rnd("pooler.dense.bias", D, std=0.1)
    return w


def forward(cfg, w, ids, types, mask, enc=None, enc_mask=None):
    W = {k: v.double() for k, v in w.items()}
    D, H, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    dh = D // H
    pre, cross_from = cfg.get("pre_ln", False), cfg.get("cross_attention_from", -1)
    B, T = ids.shape
    lin = lambda x, n: x @ W[n + ".weight"].T + W[n + ".bias"]
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (D,), W[n + ".weight"], W[n + ".bias"], eps)

    def ext(m, causal):  # HF get_extended_attention_mask: (1 - mask) * finfo.min, added to scores
        m = m[:, None, None, :].double()
        if causal:
            Tq = m.shape[-1]
            m = m * torch.tril(torch.ones(Tq, Tq, dtype=torch.float64))[None, None]
        return (1.0 - m) * torch.finfo(torch.float64).min

    def attn(x, kv, n, m):
        heads = lambda t: t.view(B, -1, H, dh).transpose(1, 2)
        q, k, v = heads(lin(x, n + "self.query")), heads(lin(kv, n + "self.key")), heads(lin(kv, n + "self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + m
        ctx = torch.softmax(s, dim=-1) @ v
        return lin(ctx.transpose(1, 2).reshape(B, -1, D), n + "output.dense")

    gelu = lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.token_type_embeddings.weight"][types]
    x = ln(x + W["embeddings.position_embeddings.weight"][:T][None], "embeddings.LayerNorm")
    sm = ext(mask, cfg.get("is_decoder", False))
    em = ext(enc_mask, False) if enc is not None else None
    enc = enc.double() if enc is not None else None
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        cross = cross_from >= 0 and l >= cross_from
        if not pre:
            x = ln(attn(x, x, p + "attention.", sm) + x, p + "attention.output.LayerNorm")
            if cross:
                x = ln(attn(x, enc, p + "crossattention.", em) + x, p + "crossattention.output.LayerNorm")
            h = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
            x = ln(h + x, p + "output.LayerNorm")
        else:
            n = ln(x, p + "attention.LayerNorm")
            x = attn(n, n, p + "attention.", sm) + x
            if cross:
                x = attn(ln(x, p + "crossattention.LayerNorm"), enc, p + "crossattention.", em) + x
            h = lin(gelu(lin(ln(x, p + "intermediate.LayerNorm"), p + "intermediate.dense")), p + "output.dense")
            x = h + x
    if pre:
        x = ln(x, "LayerNorm")
    pooled = torch.tanh(lin(x[:, 0], "pooler.dense")) if cfg.get("pooler", True) else None
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
        os.makedirs(d, exist_ok=True)
        w = make_weights(cfg, gen)
        cross = cfg.get("add_cross_attention", False)
        hidden, pooled = forward(cfg, w, ids, types, mask, enc if cross else None, enc_mask if cross else None)
        save_safetensors(os.path.join(d, "model.safetensors"), {k: v.numpy() for k, v in w.items()})
        jc = dict(cfg, architectures=["BertModel"], model_type="bert", hidden_act="gelu",
                  position_embedding_type="absolute")
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(jc, f, indent=2)
            f.write("\n")
        np.save(os.path.join(d, "input_ids.npy"), ids.numpy().astype(np.int32))
        np.save(os.path.join(d, "token_type_ids.npy"), types.numpy().astype(np.int32))
        np.save(os.path.join(d, "attention_mask.npy"), mask.numpy().astype(np.int32))
        np.save(os.path.join(d, "last_hidden_state.npy"), hidden.float().numpy())
        if pooled is not None:
            np.save(os.path.join(d, "pooler_output.npy"), pooled.float().numpy())
        if cross:
            np.save(os.path.join(d, "encoder_hidden_states.npy"), enc.numpy())
            np.save(os.path.join(d, "encoder_attention_mask.npy"), enc_mask.numpy().astype(np.int32))
        print(f"{d}: hidden {tuple(hidden.shape)} |max| {hidden.abs().max():.3f}"
              + (f", pooled {tuple(pooled.shape)}" if pooled is not None else ""))


if __name__ == "__main__":
    main()
