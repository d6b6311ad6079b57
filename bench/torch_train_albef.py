#!/usr/bin/python3
"""PyTorch twin of `vlp train` for the ALBEF recipe (configs/emoji-albef-s.json, "dual_stream").

Same model, same initial weights, same batches, same optimiser as vlp, so the two step times
compare like for like:

  * model (src/models/fusion.c, src/nn/bert.c): a pre-LN ViT (patch conv + class token +
    positions, blocks of LN -> fused qkv attention -> out, LN -> fc1 -> GELU(erf) -> fc2, a final
    LayerNorm) and a post-LN BERT text encoder (word + token-type 0 + position embeddings, LN)
    whose first `layers - fusion_layers` layers are self-attention only and whose last
    `fusion_layers` add cross-attention (queries from the text, keys/values from all image
    tokens) between self-attention and the MLP; LayerNorm eps and widths from RUN/init/config.json;
  * ITC: bias-free projections of the first token of each encoder, L2-normalised, logits
    exp(logit_scale) * img @ txt^T, symmetric cross-entropy; logit_scale clamped to [0, ln 100]
    after each step;
  * ITM: for each image one negative text and for each text one negative image, drawn from the
    softmax (diagonal excluded) of the cosine similarities of the normalised ITC features (as
    vlp: no temperature); B positive + 2B negative pairs fused; head: itm_head(tanh(pooler([CLS])));
  * MLM: 15% of the tokens that are not [PAD]/[CLS]/[SEP] (at least one per caption), 80% [MASK],
    10% a random id >= 999, 10% unchanged; the masked caption goes through all text layers with
    cross-attention to the image; head dense -> GELU -> LayerNorm -> word embeddings^T + bias
    (tied), on every position, cross-entropy over the picked ones;
  * momentum distillation (config momentum > 0, ALBEF): an EMA copy of the model (teacher) gives
    the ITC positives; queue_size earlier teacher features (both modalities, a ring; random unit
    vectors at first) are extra negatives; ITC then uses temperature 0.07 and soft targets
    (1 - a) one-hot + a softmax(teacher sims / 0.07) (a = distill_alpha); MLM becomes
    (1 - a) CE + a softCE(teacher's softmax), the teacher fusing its own image states with the
    same masked caption. After each optimiser step the step's teacher features enter the queue,
    then teacher = m * teacher + (1 - m) * model over every tensor;
  * loss = w_itc ITC + w_itm ITM + w_mlm MLM (weights from the config);
  * AdamW as vlp (decay on every tensor not listed in RUN/no_decay.txt, which vlp writes), learning
    rate lr * (s + 1) / warmup during warm-up, then cosine to min_lr at the run's total steps.

MLM masks and ITM negatives are random draws: the twin draws its own (torch RNG, --seed).
`--check` verifies the architecture on the deterministic parts instead: with vlp's draws for the
first batch (RUN/probe/, written by `vlp train --dump-batches`) it computes the step-0 losses and
every parameter gradient and compares them with vlp's. Momentum runs: the probe also holds vlp's
initial queue and its draws for the next steps (dump 3 batches); the check then replays those
steps (AdamW at vlp's rates, queue push, teacher EMA) and compares every step's losses and, after
the last, the parameters, the teacher and the queues with RUN/probe/after/.

Data: RUN/batches (pixels/tokens per batch, or --dump-compact's index + dataset arrays), in order;
the attention mask is ids != [PAD], as vlp's trainer.

Prints one JSON line: median step time (forward + backward + optimiser, masks and negatives
included, over the steps after --warmup-steps), pairs/s, and the losses of every step.

    vlp train --config configs/emoji-albef-s.json --no-eval --out RUN --dump-batches 33
    /usr/bin/python3 bench/torch_train_albef.py RUN --check
    vlp train --config configs/emoji-albef-md-s.json --batch-size 16 --warmup 1 --out RUN2 --dump-batches 3
    /usr/bin/python3 bench/torch_train_albef.py RUN2 --check --config configs/emoji-albef-md-s.json
    /usr/bin/python3 bench/torch_train_albef.py RUN --steps 30 --warmup-steps 3 --threads 2
"""

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_emoji import Batches, load_safetensors, lr_at, save_safetensors  # noqa: E402


def attention(q, k, v, heads, key_mask):
    """q [B, T, D], k/v [B, S, D]; key_mask bool [B, S] (True = real) or None."""
    B, T, D = q.shape
    S, h = k.shape[1], D // heads
    q = q.view(B, T, heads, h).transpose(1, 2)
    k = k.view(B, S, heads, h).transpose(1, 2)
    v = v.view(B, S, heads, h).transpose(1, 2)
    s = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(h))
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)


class VitBlock(nn.Module):
    def __init__(self, d, heads, mlp, eps):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def names(self, p):
        return {p + "ln1": self.ln1, p + "ln2": self.ln2, p + "attn.qkv": self.qkv, p + "attn.out": self.out,
                p + "mlp.fc1": self.fc1, p + "mlp.fc2": self.fc2}

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, -1)
        x = x + self.out(attention(q, k, v, self.heads, None))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class BertLayer(nn.Module):
    """Post-LN BERT layer, optionally with cross-attention to encoder states of width enc_w."""

    def __init__(self, d, heads, mlp, eps, enc_w):
        super().__init__()
        self.heads, self.cross = heads, enc_w > 0
        self.q, self.k, self.v, self.ao = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.ao_ln = nn.LayerNorm(d, eps=eps)
        if self.cross:
            self.xq, self.xk, self.xv = nn.Linear(d, d), nn.Linear(enc_w, d), nn.Linear(enc_w, d)
            self.xo, self.xo_ln = nn.Linear(d, d), nn.LayerNorm(d, eps=eps)
        self.inter, self.out, self.out_ln = nn.Linear(d, mlp), nn.Linear(mlp, d), nn.LayerNorm(d, eps=eps)

    def names(self, p):
        m = {p + "attention.self.query": self.q, p + "attention.self.key": self.k, p + "attention.self.value": self.v,
             p + "attention.output.dense": self.ao, p + "attention.output.LayerNorm": self.ao_ln,
             p + "intermediate.dense": self.inter, p + "output.dense": self.out, p + "output.LayerNorm": self.out_ln}
        if self.cross:
            m.update({p + "crossattention.self.query": self.xq, p + "crossattention.self.key": self.xk,
                      p + "crossattention.self.value": self.xv, p + "crossattention.output.dense": self.xo,
                      p + "crossattention.output.LayerNorm": self.xo_ln})
        return m

    def forward(self, x, mask, enc=None):
        x = self.ao_ln(x + self.ao(attention(self.q(x), self.k(x), self.v(x), self.heads, mask)))
        if self.cross:
            x = self.xo_ln(x + self.xo(attention(self.xq(x), self.xk(enc), self.xv(enc), self.heads, None)))
        return self.out_ln(x + self.out(F.gelu(self.inter(x))))


class ALBEF(nn.Module):
    def __init__(self, c):
        super().__init__()
        if c["family"] != "dual_stream" or c.get("co_attention") or c.get("text_pre_ln") or c["act"] != "gelu":
            raise SystemExit("torch_train_albef: only dual_stream, post-LN text, no co-attention, act gelu")
        if c.get("w_mim", 0) > 0 or c.get("mlm_whole_word"):
            raise SystemExit("torch_train_albef: MIM and whole-word MLM are not in the twin")
        self.c = c
        eps, IW, W, P = c["ln_eps"], c["vision_width"], c["width"], c["patch_size"]
        N = (c["image_size"] // P) ** 2
        self.P, self.heads, self.vheads = P, c["heads"], c["vision_heads"]
        self.fusion_from = c["layers"] - c["fusion_layers"]
        self.patch_w = nn.Parameter(torch.empty(IW, 3, P, P))
        self.patch_b = nn.Parameter(torch.empty(IW))
        self.vis_cls = nn.Parameter(torch.empty(IW))
        self.vis_pos = nn.Parameter(torch.empty(N + 1, IW))
        self.mask_token = nn.Parameter(torch.empty(IW))  # MIM only: kept for the checkpoint
        self.vit = nn.ModuleList(VitBlock(IW, c["vision_heads"], c["vision_mlp"], eps) for _ in range(c["vision_layers"]))
        self.vit_ln = nn.LayerNorm(IW, eps=eps)
        V, T = c["vocab_size"], c["max_text_len"]
        self.word_emb = nn.Parameter(torch.empty(V, W))
        self.pos_emb = nn.Parameter(torch.empty(T, W))
        self.type_emb = nn.Parameter(torch.empty(2, W))
        self.emb_ln = nn.LayerNorm(W, eps=eps)
        self.text = nn.ModuleList(BertLayer(W, c["heads"], c["mlp"], eps, IW if l >= self.fusion_from else 0)
                                  for l in range(c["layers"]))
        self.pooler, self.itm_head = nn.Linear(W, W), nn.Linear(W, 2)
        self.head_dense, self.head_ln = nn.Linear(W, W), nn.LayerNorm(W, eps=eps)
        self.head_bias = nn.Parameter(torch.empty(V))
        self.mim_head = nn.Linear(IW, 3 * P * P)  # MIM only: kept for the checkpoint
        E = c["embed_dim"]
        self.vis_proj = nn.Parameter(torch.empty(E, IW))
        self.txt_proj = nn.Parameter(torch.empty(E, W))
        self.logit_scale = nn.Parameter(torch.empty(()))
        self.unused = [self.mask_token, self.mim_head.weight, self.mim_head.bias]
        self.mo = c.get("momentum", 0.0)
        object.__setattr__(self, "teacher", None)  # not a submodule: its tensors are not trained

    # ---- momentum distillation ------------------------------------------------------------------
    def momentum_init(self, queue_img=None, queue_txt=None):
        """The teacher: a frozen copy of the model now; the queues: vlp's (--check) or random unit rows."""
        c = self.c
        t = copy.deepcopy(self)
        for p in t.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "teacher", t)
        self.alpha, K, E = c.get("distill_alpha", 0.0), c.get("queue_size", 0), c["embed_dim"]
        if K and queue_img is None:
            queue_img, queue_txt = F.normalize(torch.randn(K, E), dim=1), F.normalize(torch.randn(K, E), dim=1)
        self.queue_img, self.queue_txt = (queue_img.clone(), queue_txt.clone()) if K else (None, None)
        self.queue_pos = 0

    @torch.no_grad()
    def momentum_after_step(self):
        """vlp_vl_pretrain_after_step: the step's teacher features into the ring, then the EMA
        (in float32 as vlp: m * t + (1 - m) * s, each product rounded)."""
        fim, ftm = self.last_mom
        if self.queue_img is not None:
            K, B = self.queue_img.shape[0], fim.shape[0]
            rows = (self.queue_pos + torch.arange(B)) % K
            self.queue_img[rows], self.queue_txt[rows] = fim, ftm
            self.queue_pos = (self.queue_pos + B) % K
        mo = float(np.float32(self.mo))
        om = float(np.float32(1.0) - np.float32(self.mo))
        for k, p in self.names.items():
            tp = self.teacher.names[k]
            tp.copy_(tp * mo + p * om)

    def vlp_names(self):
        """vlp's tensor name -> parameter."""
        m = {"vision.patch_embed.weight": self.patch_w, "vision.patch_embed.bias": self.patch_b,
             "vision.class_embedding": self.vis_cls, "vision.pos_embed": self.vis_pos,
             "vision.mask_token": self.mask_token, "text.embeddings.word_embeddings.weight": self.word_emb,
             "text.embeddings.position_embeddings.weight": self.pos_emb,
             "text.embeddings.token_type_embeddings.weight": self.type_emb, "lm_head.bias": self.head_bias,
             "vision_proj.weight": self.vis_proj, "text_proj.weight": self.txt_proj, "logit_scale": self.logit_scale}
        mods = {"vision.ln": self.vit_ln, "text.embeddings.LayerNorm": self.emb_ln, "pooler": self.pooler,
                "itm_head": self.itm_head, "lm_head.dense": self.head_dense, "lm_head.ln": self.head_ln,
                "mim_head": self.mim_head}
        for i, b in enumerate(self.vit):
            mods.update(b.names(f"vision.blocks.{i}."))
        for i, b in enumerate(self.text):
            mods.update(b.names(f"text.encoder.layer.{i}."))
        for k, mod in mods.items():
            m[k + ".weight"], m[k + ".bias"] = mod.weight, mod.bias
        return m

    def load_vlp(self, sd):
        m = self.vlp_names()
        missing = sorted(set(sd) ^ set(m))
        if missing:
            raise SystemExit(f"torch_train_albef: names differ from vlp's checkpoint: {missing[:5]}")
        with torch.no_grad():
            for k, p in m.items():
                if tuple(sd[k].shape) != tuple(p.shape):
                    raise SystemExit(f"torch_train_albef: {k}: vlp {tuple(sd[k].shape)}, twin {tuple(p.shape)}")
                p.copy_(sd[k])
        self.names = m

    # ---- encoders -----------------------------------------------------------------------
    def encode_image(self, px):
        B = px.shape[0]
        x = F.conv2d(px, self.patch_w, self.patch_b, stride=self.P).flatten(2).transpose(1, 2)
        x = torch.cat([self.vis_cls.expand(B, 1, -1), x], 1) + self.vis_pos
        for b in self.vit:
            x = b(x)
        return self.vit_ln(x)

    def embed_text(self, ids):
        return self.emb_ln(self.word_emb[ids] + self.type_emb[0] + self.pos_emb[: ids.shape[1]])

    def encode_text(self, x, mask):
        for b in self.text[: self.fusion_from]:
            x = b(x, mask)
        return x

    def fuse(self, txt, mask, img):
        for b in self.text[self.fusion_from:]:
            x = txt = b(txt, mask, img)
        return x

    # ---- the pre-training loss ----------------------------------------------------------------
    def losses(self, px, ids, mlm_ids, mlm_labels, negatives):
        """negatives(scores i2t, scores t2i, scale) -> (neg_img per text, neg_txt per image)."""
        c = self.c
        mask = ids != c["pad_id"]
        img = self.encode_image(px)
        txt = self.encode_text(self.embed_text(ids), mask)
        fi = F.normalize(img[:, 0] @ self.vis_proj.t(), dim=-1, eps=1e-12)
        ft = F.normalize(txt[:, 0] @ self.txt_proj.t(), dim=-1, eps=1e-12)
        B = ids.shape[0]
        out = {}
        T = self.teacher
        if c["w_itc"] > 0 and T is not None:  # ALBEF: momentum teacher, queue, soft targets, temperature 0.07
            inv_t = float(np.float32(1.0) / np.float32(0.07))
            with torch.no_grad():
                img_m = T.encode_image(px)
                txt_m = T.encode_text(T.embed_text(ids), mask)
                fim = F.normalize(img_m[:, 0] @ T.vis_proj.t(), dim=-1, eps=1e-12)
                ftm = F.normalize(txt_m[:, 0] @ T.txt_proj.t(), dim=-1, eps=1e-12)
                all_i = fim if self.queue_img is None else torch.cat([fim, self.queue_img])
                all_t = ftm if self.queue_txt is None else torch.cat([ftm, self.queue_txt])
                one = torch.zeros(B, all_t.shape[0])
                one[torch.arange(B), torch.arange(B)] = 1
                a = self.alpha
                tg_i2t = a * ((fim @ all_t.t()) * inv_t).softmax(1) + (1 - a) * one
                tg_t2i = a * ((ftm @ all_i.t()) * inv_t).softmax(1) + (1 - a) * one
            self.last_mom = (fim, ftm)
            l1 = -(F.log_softmax((fi @ all_t.t()) * inv_t, 1) * tg_i2t).sum(1).mean()
            l2 = -(F.log_softmax((ft @ all_i.t()) * inv_t, 1) * tg_t2i).sum(1).mean()
            out["itc"] = 0.5 * (l1 + l2)
        elif c["w_itc"] > 0:
            logits = self.logit_scale.exp() * fi @ ft.t()
            lab = torch.arange(B)
            out["itc"] = 0.5 * (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab))
        if c["w_itm"] > 0:
            with torch.no_grad():
                s = fi @ ft.t()
                if c.get("itm_exclude_same_text", 0):  # vlp_vl_pretrain_fill: duplicate captions are not negatives
                    same = (ids[:, None, :] == ids[None, :, :]).all(-1) & ~torch.eye(B, dtype=torch.bool)
                    same &= ~same.sum(1, keepdim=True).eq(B - 1)  # every other text the same: the old draw
                    s = s + same.float() * -1e4
                neg_img, neg_txt = negatives(s, s.t(), self.logit_scale.exp())
            imgs = torch.cat([img, img[neg_img], img])
            txts = torch.cat([txt, txt, txt[neg_txt]])
            masks = torch.cat([mask, mask, mask[neg_txt]])
            fused = self.fuse(txts, masks, imgs)
            logits = self.itm_head(torch.tanh(self.pooler(fused[:, 0])))
            labels = torch.cat([torch.ones(B, dtype=torch.long), torch.zeros(2 * B, dtype=torch.long)])
            out["itm"] = F.cross_entropy(logits, labels)
        if c["w_mlm"] > 0:
            mt = self.encode_text(self.embed_text(mlm_ids), mask)
            fused = self.fuse(mt, mask, img)
            # the vocabulary-wide head on the labelled positions only, as vlp does
            sel = mlm_labels.view(-1) != -100
            h = self.head_ln(F.gelu(self.head_dense(fused.reshape(-1, fused.shape[-1])[sel])))
            logits = h @ self.word_emb.t() + self.head_bias
            out["mlm"] = F.cross_entropy(logits, mlm_labels.view(-1)[sel])
            if T is not None and self.alpha > 0:  # ALBEF distils MLM from the teacher too
                with torch.no_grad():
                    fm = T.fuse(T.encode_text(T.embed_text(mlm_ids), mask), mask, img_m)
                    hm = T.head_ln(F.gelu(T.head_dense(fm.reshape(-1, fm.shape[-1])[sel])))
                    q = (hm @ T.word_emb.t() + T.head_bias).softmax(-1)
                soft = -(q * F.log_softmax(logits, -1)).sum(1).mean()
                out["mlm"] = (1 - self.alpha) * out["mlm"] + self.alpha * soft
        out["loss"] = sum(c["w_" + k] * v for k, v in out.items())
        return out


def sample_negatives(s, st, scale):
    """vlp_sample_negatives_scaled: per row, a column other than the diagonal, p ~ exp(scale * score)."""
    def draw(x):
        w = (scale * x).masked_fill(torch.eye(x.shape[0], dtype=torch.bool), float("-inf")).softmax(-1)
        return torch.multinomial(w, 1).squeeze(1)
    return draw(st), draw(s)  # an image per text, a text per image


def mlm_mask(ids, c):
    """vlp_mlm_mask (token level): 15% of the maskable tokens, at least one per row that has any."""
    V, mask_id = c["vocab_size"], c["mask_id"]
    special = {c[k] for k in ("pad_id", "cls_id", "sep_id", "bos_id", "eos_id")}
    ok = torch.ones_like(ids, dtype=torch.bool)
    for s in special:
        ok &= ids != s
    pick = (torch.rand(ids.shape) < c["mlm_prob"]) & ok
    none = ~pick.any(1) & ok.any(1)
    if none.any():  # one random maskable token in rows that got none
        r = torch.rand(ids.shape).masked_fill(~ok, -1.0).argmax(1)
        pick[none.nonzero().squeeze(1), r[none]] = True
    labels = torch.where(pick, ids, torch.full_like(ids, -100))
    u = torch.rand(ids.shape)
    mx = max(special | {mask_id})
    first = 999 if V >= 30000 and mx < 999 else mx + 1
    out = torch.where(pick & (u < 0.8), torch.full_like(ids, mask_id), ids)
    rnd = pick & (u >= 0.8) & (u < 0.9)
    return torch.where(rnd, torch.randint(first, V, ids.shape), out), labels


def read_npy_i64(path):
    return torch.from_numpy(np.load(path).astype(np.int64))


def make_optimizer(model, run, config):
    """AdamW as vlp: the run config's settings, no decay on RUN/no_decay.txt's tensors."""
    rc = json.load(open(config))
    opt_c = rc.get("optimizer", {})
    no_decay = {l.strip() for l in open(os.path.join(run, "no_decay.txt")) if l.strip()}
    decay = [p for k, p in model.names.items() if k not in no_decay]
    nodecay = [p for k, p in model.names.items() if k in no_decay]
    return torch.optim.AdamW([{"params": decay, "weight_decay": opt_c.get("weight_decay", 0.1)},
                              {"params": nodecay, "weight_decay": 0.0}],
                             lr=opt_c.get("lr", 5e-4), betas=tuple(opt_c.get("betas", (0.9, 0.98))),
                             eps=opt_c.get("eps", 1e-6)), rc


def optimiser_step(model, opt, lr):
    """One step as vlp's trainer: every tensor steps (zero gradient where unused), then the clamp."""
    for p in model.names.values():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    if model.teacher is not None:
        model.momentum_after_step()


def rel(a, b):
    return (a - b).double().norm().item() / max(b.double().norm().item(), 1e-30)


def check_steps(model, run, batches, config):
    """Momentum runs: vlp's further probe steps (RUN/probe/steps.json) replayed with its draws."""
    pdir = os.path.join(run, "probe")
    ref = json.load(open(os.path.join(pdir, "steps.json")))
    steps = ref["steps"]
    c = model.c
    opt, _ = make_optimizer(model, run, config)
    res = {"steps": len(steps), "step_losses": []}
    worst = 0.0
    for s, st in enumerate(steps):
        if s > 0:  # step 0's forward and backward ran in check()
            px, ids = batches[s]
            mlm_ids = read_npy_i64(os.path.join(pdir, f"mlm_ids_{s}.npy")) if c["w_mlm"] > 0 else None
            mlm_lab = read_npy_i64(os.path.join(pdir, f"mlm_labels_{s}.npy")) if c["w_mlm"] > 0 else None
            negs = (read_npy_i64(os.path.join(pdir, f"neg_img_{s}.npy")),
                    read_npy_i64(os.path.join(pdir, f"neg_txt_{s}.npy"))) if c["w_itm"] > 0 else None
            opt.zero_grad(set_to_none=True)
            out = model.losses(px, ids, mlm_ids, mlm_lab, lambda a, b, sc: negs)
            out["loss"].backward()
            row = {"step": s}
            for k in ("itc", "itm", "mlm", "loss"):
                if k in out:
                    d = abs(st[k] - out[k].item()) / max(abs(st[k]), 1e-6)
                    row[k] = {"vlp": st[k], "torch": round(out[k].item(), 7), "rel_diff": d}
                    worst = max(worst, d)
            res["step_losses"].append(row)
        optimiser_step(model, opt, st["lr"])
    after = os.path.join(pdir, "after")
    pm, pt = load_safetensors(os.path.join(after, "model.safetensors")), \
        load_safetensors(os.path.join(after, "teacher", "model.safetensors"))
    # |twin - vlp| against how far vlp's steps moved each tensor (|vlp - init|)
    for key, names, ref_sd in (("params", model.names, pm), ("teacher", model.teacher.names, pt)):
        d2 = m2 = 0.0
        per = []
        for k, p in names.items():
            v, i0, x = ref_sd[k].reshape(p.shape), model.init_params[k], p.detach()
            if k.endswith("attn.qkv.bias"):  # the ViT's fused bias: leave out its key third (see below)
                n = x.shape[0] // 3
                v, i0, x = (torch.cat([t[:n], t[2 * n:]]) for t in (v, i0, x))
            d, mv = (x - v).double().norm().item(), (v - i0).double().norm().item()
            d2, m2 = d2 + d * d, m2 + mv * mv
            per.append((d / max(mv, 1e-30), k, d, mv))
        per.sort(reverse=True)
        res[key + "_rel_diff"] = math.sqrt(d2 / max(m2, 1e-60))  # over all tensors together
        # per tensor, leaving out the key biases: their exact gradient is zero (softmax ignores a
        # shift), so AdamW moves them by normalised round-off, different on each side
        r, k = next((r, k) for r, k, d, mv in per if not k.endswith("key.bias"))
        res[key + "_max_rel_diff"], res[key + "_worst_tensor"] = r, k
    if model.queue_img is not None:
        qi = torch.from_numpy(np.load(os.path.join(after, "queue_img.npy")))
        qt = torch.from_numpy(np.load(os.path.join(after, "queue_txt.npy")))
        res["queue_max_abs_diff"] = max((model.queue_img - qi).abs().max().item(),
                                        (model.queue_txt - qt).abs().max().item())
        res["queue_pos"] = {"vlp": ref["queue_pos"], "torch": model.queue_pos}
        if ref["queue_pos"] != model.queue_pos:
            worst = float("inf")
    res["steps_max_rel_diff"] = max(worst, res["params_rel_diff"], res["teacher_rel_diff"],
                                    res["params_max_rel_diff"], res["teacher_max_rel_diff"],
                                    res.get("queue_max_abs_diff", 0.0))
    return res


def check(model, run, batches, config):
    """Step-0 losses and gradients with vlp's draws (RUN/probe) against vlp's."""
    pdir = os.path.join(run, "probe")
    ref = json.load(open(os.path.join(pdir, "losses.json")))
    px, ids = batches[0]
    c = model.c
    mlm_ids = read_npy_i64(os.path.join(pdir, "mlm_ids.npy")) if c["w_mlm"] > 0 else None
    mlm_lab = read_npy_i64(os.path.join(pdir, "mlm_labels.npy")) if c["w_mlm"] > 0 else None
    negs = (read_npy_i64(os.path.join(pdir, "neg_img.npy")), read_npy_i64(os.path.join(pdir, "neg_txt.npy"))) \
        if c["w_itm"] > 0 else None
    if model.mo > 0:  # vlp's initial queue (random unit vectors drawn from its seed)
        q = [torch.from_numpy(np.load(os.path.join(pdir, f"queue_{k}_init.npy")))
             if os.path.exists(os.path.join(pdir, f"queue_{k}_init.npy")) else None for k in ("img", "txt")]
        model.momentum_init(*q)
        model.init_params = {k: p.detach().clone() for k, p in model.names.items()}
    model.zero_grad(set_to_none=True)
    out = model.losses(px, ids, mlm_ids, mlm_lab, lambda s, st, scale: negs)
    out["loss"].backward()
    res = {"check": "albef step 0, vlp's MLM masks and ITM negatives"}
    for k in ("itc", "itm", "mlm", "loss"):
        if k in out:
            res[k] = {"vlp": ref[k], "torch": round(out[k].item(), 7), "abs_diff": abs(ref[k] - out[k].item())}
    g = load_safetensors(os.path.join(pdir, "grads.safetensors"))
    d2 = n2 = 0.0
    per = []
    for k, p in model.names.items():
        tg = p.grad if p.grad is not None else torch.zeros_like(p)
        d, n = (tg - g[k].reshape(tg.shape)).double().norm().item(), g[k].double().norm().item()
        d2, n2 = d2 + d * d, n2 + n * n
        per.append((d, n, k))
    # per tensor: |twin - vlp| / |vlp|, over tensors whose gradient is not zero in exact arithmetic
    # (the key biases' is: softmax ignores a constant shift; both sides hold round-off there)
    floor = 1e-6 * math.sqrt(n2)
    rel, name = max((d / n, k) for d, n, k in per if n > floor)
    res["grad_rel_diff"] = math.sqrt(d2 / n2)  # over all parameters together
    res["grad_max_rel_diff"] = rel
    res["grad_worst_tensor"] = name
    if model.mo > 0 and os.path.exists(os.path.join(pdir, "steps.json")):
        res["after_steps"] = check_steps(model, run, batches, config)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="directory written by vlp train --dump-batches (ALBEF config)")
    ap.add_argument("--config", default="configs/emoji-albef-s.json",
                    help="run config for the optimiser and schedule (default configs/emoji-albef-s.json)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up steps)")
    ap.add_argument("--schedule-total", type=int,
                    help="length of the learning-rate schedule (default: the config's steps, as vlp train --steps)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="torch RNG seed for MLM masks and ITM negatives")
    ap.add_argument("--check", action="store_true",
                    help="compare step-0 losses and gradients with vlp's (RUN/probe) and exit (1 if they differ)")
    ap.add_argument("--tol", type=float, default=1e-4, help="--check: largest relative loss / gradient difference")
    ap.add_argument("--save", help="write the trained model here (config.json + model.safetensors, vlp's "
                    "names and layout) so that vlp eval can score it")
    ap.add_argument("--log-every", type=int, default=1, help="progress line every N steps (stderr)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = json.load(open(os.path.join(a.run, "init", "config.json")))
    model = ALBEF(cfg)
    model.load_vlp(load_safetensors(os.path.join(a.run, "init", "model.safetensors")))
    if a.check:
        nb = len(json.load(open(os.path.join(a.run, "probe", "steps.json")))["steps"]) \
            if cfg.get("momentum", 0) > 0 and os.path.exists(os.path.join(a.run, "probe", "steps.json")) else 1
        res = check(model, a.run, Batches(a.run, nb), a.config)
        print(json.dumps(res))
        rel = max([v["abs_diff"] / max(abs(v["vlp"]), 1e-6) for k, v in res.items() if isinstance(v, dict)
                   and "abs_diff" in v] + [res["grad_max_rel_diff"]] +
                  ([res["after_steps"]["steps_max_rel_diff"]] if "after_steps" in res else []))
        more = f", then {nb - 1} more steps, parameters, teacher and queues" if "after_steps" in res else ""
        print(f"step-0 check{more}: losses and gradients agree to {rel:.2e} (relative; tolerance {a.tol:g})",
              file=sys.stderr)
        sys.exit(0 if rel <= a.tol else 1)
    opt, rc = make_optimizer(model, a.run, a.config)
    opt_c, sch = rc.get("optimizer", {}), rc.get("schedule", {})
    lr, total = opt_c.get("lr", 5e-4), a.schedule_total or rc.get("steps", 600)
    warm, min_lr = min(sch.get("warmup", 60), total), sch.get("min_lr", 0.0)  # vlp clamps the warm-up too
    if model.mo > 0:
        model.momentum_init()
    n = a.warmup_steps + a.steps
    batches = Batches(a.run, n)
    times, losses, parts = [], [], {"itc": [], "itm": [], "mlm": []}
    t_start = time.perf_counter()
    for s in range(n):
        px, ids = batches[s]
        t0 = time.perf_counter()
        mlm_ids, mlm_lab = mlm_mask(ids, cfg) if cfg["w_mlm"] > 0 else (None, None)
        out = model.losses(px, ids, mlm_ids, mlm_lab, sample_negatives)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        # vlp steps unused tensors with zero gradients (weight decay still applies); momentum: EMA + queue
        optimiser_step(model, opt, lr_at(s, warm, total, lr, min_lr))
        dt = time.perf_counter() - t0
        losses.append(out["loss"].item())
        for k in parts:
            if k in out:
                parts[k].append(round(out[k].item(), 6))
        if s >= a.warmup_steps:
            times.append(dt)
        if (s + 1) % a.log_every == 0 or s + 1 == n:
            el = time.perf_counter() - t_start
            print(f"torch step {s + 1}/{n} loss {losses[-1]:.6f} " +
                  " ".join(f"{k} {v[-1]:.4f}" for k, v in parts.items() if v) +
                  f" {dt:.3f} s/step, ETA {el / (s + 1) * (n - s - 1):.0f} s", file=sys.stderr, flush=True)
    if a.save:
        os.makedirs(a.save, exist_ok=True)
        save_safetensors(os.path.join(a.save, "model.safetensors"),
                         {k: p.detach().numpy() for k, p in model.names.items()})
        with open(os.path.join(a.run, "init", "config.json")) as f, open(os.path.join(a.save, "config.json"), "w") as g:
            g.write(f.read())
    med = statistics.median(times) if times else float("nan")
    B = px.shape[0]
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": a.threads, "batch": B,
                      "steps_timed": len(times), "median_step_s": round(med, 4),
                      "min_step_s": round(min(times), 4) if times else None, "pairs_per_s": round(B / med, 1),
                      "wall_s": round(time.perf_counter() - t_start, 1), "losses": [round(x, 6) for x in losses],
                      **{"losses_" + k: v for k, v in parts.items() if v}}))


if __name__ == "__main__":
    main()
