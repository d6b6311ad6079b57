"""PyTorch building blocks shared by the fixture generators (gen_albef_fixture.py, gen_vlmo_fixture.py,
gen_coca_fixture.py, gen_bert_fixture.py): random parameters by vlp / Hugging Face name, the float64
reference layers (linear, LayerNorm, erf GELU, multi-head attention, BERT and pre-LN ViT blocks),
the ITC / ITM / MLM objectives and the writing of a fixture directory. vlp is not imported.

The fixtures are committed and the C tests compare against them, so every function here keeps the
exact order of random draws and of floating-point operations of the code it replaced: reordering
draws changes the weights, reordering ops (even the autograd graph) changes the last bits.
"""
import json
import math
import os

import numpy as np
import torch

from st_write import save_safetensors

F = torch.nn.functional
IGNORE = -100  # label of rows the cross-entropy skips (Hugging Face's convention)


# ---- parameters --------------------------------------------------------------------------------

class Weights:
    """float32 parameters drawn in call order from one torch.Generator; .w maps name -> tensor."""

    def __init__(self, gen):
        self.gen, self.w = gen, {}

    def rnd(self, name, *shape, std=0.2, mean=0.0):
        self.w[name] = (mean + std * torch.randn(*shape, generator=self.gen)).float()

    def const(self, name, value):
        self.w[name] = torch.tensor(value).float()

    def linear(self, name, dout, din, std=0.2, bias=True):
        """name.weight [dout, din] (and name.bias [dout], std 0.1)."""
        self.rnd(name + ".weight", dout, din, std=std)
        if bias:
            self.rnd(name + ".bias", dout, std=0.1)

    def layer_norm(self, name, dim):
        """name.weight near 1, name.bias near 0, so the LayerNorm's affine part is exercised."""
        self.rnd(name + ".weight", dim, mean=1.0, std=0.1)
        self.rnd(name + ".bias", dim, std=0.1)


def bert_embedding_weights(P, e, vocab, max_len, n_types, dim):
    """BERT embeddings at prefix e ("text.embeddings."): word, position, token type, LayerNorm."""
    P.rnd(e + "word_embeddings.weight", vocab, dim, std=0.5)
    P.rnd(e + "position_embeddings.weight", max_len, dim, std=0.5)
    P.rnd(e + "token_type_embeddings.weight", n_types, dim, std=0.5)
    P.layer_norm(e + "LayerNorm", dim)


def bert_layer_weights(P, p, dim, ffn, cross_width=None, pre=False):
    """One BERT layer at prefix p ("...encoder.layer.3."): self-attention, cross-attention to states
    of width cross_width when given, FFN. pre: RobertaPreLayerNorm's LayerNorm names."""
    blocks = [("attention.", dim)] + ([("crossattention.", cross_width)] if cross_width else [])
    for blk, kv_in in blocks:
        for n, din in (("query", dim), ("key", kv_in), ("value", kv_in)):
            P.linear(f"{p}{blk}self.{n}", dim, din)
        P.linear(f"{p}{blk}output.dense", dim, dim)
        P.layer_norm(f"{p}{blk}LayerNorm" if pre else f"{p}{blk}output.LayerNorm", dim)
    P.linear(f"{p}intermediate.dense", ffn, dim)
    P.linear(f"{p}output.dense", dim, ffn)
    P.layer_norm(f"{p}intermediate.LayerNorm" if pre else f"{p}output.LayerNorm", dim)


def patch_embedding_weights(P, width, patch, n_tokens):
    """vision.patch_embed (conv, 3 channels), class token and n_tokens positions (class included)."""
    P.rnd("vision.patch_embed.weight", width, 3, patch, patch)
    P.rnd("vision.patch_embed.bias", width, std=0.1)
    P.rnd("vision.class_embedding", width, std=0.5)
    P.rnd("vision.pos_embed", n_tokens, width, std=0.5)


def lm_head_weights(P, dim, vocab):
    """LM head: dense, LayerNorm and the output bias (the output weight is the word embedding)."""
    P.linear("lm_head.dense", dim, dim)
    P.layer_norm("lm_head.ln", dim)
    P.rnd("lm_head.bias", vocab, std=0.1)


def vl_head_weights(P, dim, vocab, embed_dim, vision_width):
    """pooler + itm_head, the LM head, the ITC projections (no bias) and logit_scale."""
    P.linear("pooler", dim, dim)
    P.linear("itm_head", 2, dim, std=0.5)
    lm_head_weights(P, dim, vocab)
    P.linear("vision_proj", embed_dim, vision_width, bias=False)
    P.linear("text_proj", embed_dim, dim, bias=False)
    P.const("logit_scale", 2.0)


def float64_leaves(w):
    """float64 copies of the float32 parameters that collect gradients."""
    return {k: v.double().requires_grad_(True) for k, v in w.items()}


# ---- layers ------------------------------------------------------------------------------------

def gelu(x):
    """erf GELU (BERT's, vlp's "gelu")."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def additive_mask(keymask, causal=False):
    """keymask [B, T] (1 = attend) -> [B, 1, 1|T, T] added to the scores: (1 - allowed) * finfo.min,
    as Hugging Face's get_extended_attention_mask; causal also hides later keys."""
    m = keymask[:, None, None, :].double()
    if causal:
        n = keymask.shape[1]
        m = m * torch.tril(torch.ones(n, n, dtype=torch.float64))[None, None]
    return (1.0 - m) * torch.finfo(torch.float64).min


def attention(q, k, v, heads, mask=None):
    """Scaled dot-product multi-head attention: q [B, Tq, D], k/v [B, Tk, D]; mask additive
    (additive_mask) or None."""
    B, Tq, D = q.shape
    dh = D // heads
    split = lambda t: t.reshape(B, t.shape[1], heads, dh).transpose(1, 2)
    s = split(q) @ split(k).transpose(-1, -2) / math.sqrt(dh)
    if mask is not None:
        s = s + mask
    return (torch.softmax(s, dim=-1) @ split(v)).transpose(1, 2).reshape(B, Tq, D)


class RefModel:
    """The reference layers over a dict W of parameters by name. heads: the text attention's head
    count; word_emb: the tied LM output weight."""

    def __init__(self, W, heads, eps, word_emb="text.embeddings.word_embeddings.weight"):
        self.W, self.heads, self.eps, self.word_emb = W, heads, eps, word_emb

    def lin(self, x, n, bias=True):
        return x @ self.W[n + ".weight"].T + (self.W[n + ".bias"] if bias else 0)

    def ln(self, x, n):
        return F.layer_norm(x, (x.shape[-1],), self.W[n + ".weight"], self.W[n + ".bias"], self.eps)

    def bert_embed(self, ids, e, types=0):
        """LN(word + token type + position) at prefix e."""
        T = ids.shape[1]
        x = self.W[e + "word_embeddings.weight"][ids] + self.W[e + "token_type_embeddings.weight"][types]
        return self.ln(x + self.W[e + "position_embeddings.weight"][:T][None], e + "LayerNorm")

    def bert_attention(self, x, kv, n, mask):
        """BERT's attention block at prefix n (separate query/key/value) with its output dense."""
        a = attention(self.lin(x, n + "self.query"), self.lin(kv, n + "self.key"), self.lin(kv, n + "self.value"),
                      self.heads, mask)
        return self.lin(a, n + "output.dense")

    def bert_layer(self, x, p, mask, pre=False, enc=None, enc_mask=None):
        """One BERT layer at prefix p: post-LN (BertLayer) or pre (RobertaPreLayerNorm); with enc,
        cross-attention to it (keys masked by enc_mask) after the self-attention."""
        if not pre:
            x = self.ln(self.bert_attention(x, x, p + "attention.", mask) + x, p + "attention.output.LayerNorm")
            if enc is not None:
                x = self.ln(self.bert_attention(x, enc, p + "crossattention.", enc_mask) + x,
                            p + "crossattention.output.LayerNorm")
            h = self.lin(gelu(self.lin(x, p + "intermediate.dense")), p + "output.dense")
            return self.ln(h + x, p + "output.LayerNorm")
        n = self.ln(x, p + "attention.LayerNorm")
        x = self.bert_attention(n, n, p + "attention.", mask) + x
        if enc is not None:
            c = self.ln(x, p + "crossattention.LayerNorm")
            x = self.bert_attention(c, enc, p + "crossattention.", enc_mask) + x
        h = self.lin(gelu(self.lin(self.ln(x, p + "intermediate.LayerNorm"), p + "intermediate.dense")),
                     p + "output.dense")
        return h + x

    def patch_tokens(self, px, patch):
        """Patch embedding (conv, stride = patch) + class token + positions -> [B, N + 1, width]."""
        W = self.W
        x = F.conv2d(px, W["vision.patch_embed.weight"], W["vision.patch_embed.bias"], stride=patch)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([W["vision.class_embedding"].expand(px.shape[0], 1, x.shape[-1]), x], dim=1)
        return x + W["vision.pos_embed"][None]

    def fused_self_attention(self, x, ln, p, heads, mask):
        """Pre-LN residual self-attention with a fused p.qkv projection and p.out."""
        D = x.shape[-1]
        qkv = self.lin(self.ln(x, ln), p + ".qkv")
        a = attention(qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:], heads, mask)
        return x + self.lin(a, p + ".out")

    def pre_ln_mlp(self, x, ln, fc1, fc2):
        """Pre-LN residual GELU MLP."""
        return x + self.lin(gelu(self.lin(self.ln(x, ln), fc1)), fc2)

    def itm_logits(self, fused):
        """itm_head(tanh(pooler(row 0))) -> [B, 2]."""
        return self.lin(torch.tanh(self.lin(fused[:, 0], "pooler")), "itm_head")

    def lm_logits(self, h):
        """LM head: dense, GELU, LayerNorm, tied word embeddings + lm_head.bias."""
        h = self.ln(gelu(self.lin(h, "lm_head.dense")), "lm_head.ln")
        return h @ self.W[self.word_emb].T + self.W["lm_head.bias"]


# ---- objectives --------------------------------------------------------------------------------

def itc_loss(fi, ft, log_scale):
    """CLIP InfoNCE of the L2-normalised features at exp(log_scale), both directions averaged."""
    a, b = F.normalize(fi, dim=-1), F.normalize(ft, dim=-1)
    s = torch.exp(log_scale) * a @ b.T
    tgt = torch.arange(fi.shape[0])
    return 0.5 * (F.cross_entropy(s, tgt) + F.cross_entropy(s.T, tgt))


def mlm_batch(ids, picks):
    """picks: (b, t, new token or None to leave it) -> masked ids, labelled rows of the flattened
    [B*T] states and their labels (the original tokens), plus one padding row of the compacted form
    (vlp_mlm_compact) with label IGNORE."""
    T = ids.shape[1]
    mlm_ids = ids.clone()
    rows, labels = [], []
    for b, t, new in picks:
        rows.append(b * T + t)
        labels.append(int(ids[b, t]))
        if new is not None:
            mlm_ids[b, t] = new
    rows.append(0)
    labels.append(IGNORE)
    return mlm_ids, torch.tensor(rows), torch.tensor(labels)


def itc_itm_mlm_fixture(out, cfg, seed, make_weights, model, ids, picks, neg_img, neg_txt):
    """Computes and writes a dual-objective VL fixture (files as gen_albef_fixture.py lists them).

    make_weights(gen) -> float32 parameters; model(W) -> a RefModel with encode(px, ids, mask) ->
    (image enc., text enc., image fusion input, text fusion input), text_in(ids, mask) -> the text
    fusion input, fuse(img, txt, mask) -> text rows. ITC on row 0 of the encodings; ITM on ALBEF's
    3B pairs (B positives, image neg_img[i] with text i, image i with text neg_txt[i] and its mask);
    MLM on the masked text (mlm_batch(ids, picks)) fused with the image. cfg: config.json."""
    gen = torch.Generator().manual_seed(seed)
    B, T = ids.shape
    S = cfg["image_size"]
    mask = (ids != 0).long()
    mlm_ids, rows, labels = mlm_batch(ids, picks)
    w = make_weights(gen)
    px = torch.randn(B, 3, S, S, generator=gen).float()
    W = float64_leaves(w)
    px64 = px.double().requires_grad_(True)
    M = model(W)
    img, txt, img_in, txt_in = M.encode(px64, ids, mask)
    fi = img[:, 0] @ W["vision_proj.weight"].T
    ft = txt[:, 0] @ W["text_proj.weight"].T
    itc = itc_loss(fi, ft, W["logit_scale"])
    imgs = torch.cat([img_in, img_in[neg_img], img_in])
    txts = torch.cat([txt_in, txt_in, txt_in[neg_txt]])
    masks = torch.cat([mask, mask, mask[neg_txt]])
    itm_lg = M.itm_logits(M.fuse(imgs, txts, masks))
    itm = F.cross_entropy(itm_lg, torch.tensor([1] * B + [0] * (2 * B)))
    fused = M.fuse(img_in, M.text_in(mlm_ids, mask), mask)
    mlm = F.cross_entropy(M.lm_logits(fused.reshape(B * T, -1)[rows]), labels, ignore_index=IGNORE)
    (itc + itm + mlm).backward()

    grads = leaf_grads(W, pixels=px64)
    arrays = dict(pixels=px.numpy(), ids=i32(ids), mask=i32(mask), mlm_ids=i32(mlm_ids), mlm_rows=i32(rows),
                  mlm_labels=i32(labels), neg_img=i32(neg_img), neg_txt=i32(neg_txt), img_enc=f32(img),
                  txt_enc=f32(txt), fused=f32(fused), itm_logits=f32(itm_lg), img_feat=f32(fi), txt_feat=f32(ft),
                  losses=np.array([itc.item(), itm.item(), mlm.item()], dtype=np.float32))
    write_fixture(out, w, cfg, arrays, grads)
    small = min(np.abs(g).max() for g in grads.values())
    print(f"{out}: itc {itc.item():.4f}, itm {itm.item():.4f}, mlm {mlm.item():.4f}, {len(grads)} gradients "
          f"(smallest max |g| {small:.3g}), {sum(v.numel() for v in w.values())} parameters")


# ---- output ------------------------------------------------------------------------------------

def i32(x):
    return x.numpy().astype(np.int32)


def f32(x):
    return x.detach().float().numpy()


def leaf_grads(W, **inputs):
    """float32 gradients of the parameters W, then of each named input tensor."""
    grads = {k: v.grad.float().numpy() for k, v in W.items()}
    for name, t in inputs.items():
        grads[name] = t.grad.float().numpy()
    return grads


def write_fixture(out, weights, cfg, arrays, grads=None):
    """out/: model.safetensors (the float32 weights), grads.safetensors when given, config.json
    (cfg, 2-space indent, trailing newline) and NAME.npy for each array."""
    os.makedirs(out, exist_ok=True)
    save_safetensors(os.path.join(out, "model.safetensors"), {k: v.numpy() for k, v in weights.items()})
    if grads is not None:
        save_safetensors(os.path.join(out, "grads.safetensors"), grads)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    for k, v in arrays.items():
        np.save(os.path.join(out, k + ".npy"), v)
