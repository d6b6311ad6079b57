/* Fusion and generative VL models (include/vlp_vl.h): every family builds with the
 * right shapes, pre-training losses fall on a tiny overfit task, ITM hard negatives are
 * never the positive, MLM / MIM masking statistics, KV-cached decoding equals the full
 * forward, beam 1 == greedy, checkpoints round-trip. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "vlp.h"
#include "vlp_vl.h"
#include "vlp_safetensors.h"
#include "test_ref.h"

static uint64_t rs = 0x1234567ull;
static uint32_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}
static float frnd(void) { return (float)rnd() / 65536.0f / 65536.0f * 2.0f - 1.0f; }

static const char *presets[] = {"vilt-tiny", "albef-tiny", "albef-coattn-tiny", "vlmo-tiny", "blip-tiny"};
#define NPRESETS 5

/* A fixed synthetic batch: B images, captions of varying length ending in eos, padded. */
static void make_batch(const vlp_vl_config *c, int B, int T, float *px, int32_t *ids, int32_t *mask) {
    int S = c->image_size;
    for (int64_t i = 0; i < (int64_t)B * 3 * S * S; i++) px[i] = frnd();
    for (int b = 0; b < B; b++) {
        int len = T - (b % 3); /* includes cls/bos and sep/eos */
        for (int t = 0; t < T; t++) {
            int32_t id = c->pad_id;
            if (t == 0) id = c->bos_id;
            else if (t == len - 1) id = c->eos_id;
            else if (t < len - 1) id = 4 + (int32_t)(rnd() % (uint32_t)(c->vocab_size - 4));
            ids[b * T + t] = id;
            mask[b * T + t] = t < len;
        }
    }
}

static vlp_tensor *in3(vlp_graph *g, const char *n, vlp_dtype dt, int nd, int64_t a, int64_t b, int64_t c,
                       int64_t d) {
    int64_t s[4] = {a, b, c, d};
    return vlp_input(g, n, dt, nd, s);
}

/* ---- shapes ------------------------------------------------------------------------------ */
static void test_shapes(void) {
    for (int f = 0; f < NPRESETS; f++) {
        vlp_vl_config c;
        CHECK(vlp_vl_preset(presets[f], &c) == 0, "preset %s: %s", presets[f], vlp_last_error());
        vlp_vl *m = vlp_vl_new(&c, 1);
        CHECK(m != NULL, "%s builds: %s", presets[f], vlp_last_error());
        if (!m) continue;
        CHECK(vlp_vl_param_count(m) > 0, "%s has parameters", presets[f]);
        int B = 2, T = 6, N1 = vlp_vl_image_tokens(m), IW = c.family == VLP_VL_DUAL || c.family == VLP_VL_CAPTION
                                                              ? c.vision_width
                                                              : c.width;
        vlp_graph *g = vlp_graph_new();
        vlp_tensor *px = in3(g, "px", VLP_F32, 4, B, 3, c.image_size, c.image_size);
        vlp_tensor *ids = in3(g, "ids", VLP_I32, 2, B, T, 0, 0), *mask = in3(g, "mask", VLP_I32, 2, B, T, 0, 0);
        vlp_tensor *ie = vlp_vl_embed_image(g, m, px, NULL, NULL), *te = vlp_vl_embed_text(g, m, ids);
        vlp_tensor *ienc = vlp_vl_encode_image(g, m, ie), *tenc = vlp_vl_encode_text(g, m, te, mask);
        CHECK(ie && ie->ndim == 3 && ie->shape[0] == B && ie->shape[1] == N1 && ie->shape[2] == IW,
              "%s image embedding [B, %d, %d]", presets[f], N1, IW);
        CHECK(ienc && ienc->shape[1] == N1 && ienc->shape[2] == IW, "%s image encoder shape", presets[f]);
        CHECK(tenc && tenc->shape[1] == T && tenc->shape[2] == c.width, "%s text encoder shape", presets[f]);
        vlp_tensor *out;
        if (c.family == VLP_VL_CAPTION) {
            out = vlp_vl_caption_logits(g, m, ienc, ids, mask);
            CHECK(out && out->shape[0] == B && out->shape[1] == T && out->shape[2] == c.vocab_size,
                  "%s caption logits [B, T, V]", presets[f]);
        } else {
            int emb = vlp_vl_fuses_embeddings(m);
            vlp_tensor *io = NULL, *fused = vlp_vl_fuse(g, m, emb ? ie : ienc, emb ? te : tenc, mask, &io);
            CHECK(fused && fused->shape[0] == B && fused->shape[1] == T && fused->shape[2] == c.width,
                  "%s fused text states [B, T, W]", presets[f]);
            CHECK(io && io->shape[1] == N1 && io->shape[2] == IW, "%s fused image states", presets[f]);
            vlp_tensor *itm = vlp_vl_itm_logits(g, m, fused), *mlm = vlp_vl_lm_logits(g, m, fused);
            CHECK(itm && itm->shape[0] == B && itm->shape[1] == 2, "%s ITM logits [B, 2]", presets[f]);
            CHECK(mlm && mlm->shape[2] == c.vocab_size, "%s MLM logits [B, T, V]", presets[f]);
            out = vlp_add(g, vlp_sum(g, itm), vlp_sum(g, mlm));
            if (c.embed_dim) {
                vlp_tensor *fi, *ft;
                CHECK(vlp_vl_itc_features(g, m, ienc, tenc, &fi, &ft) == 0 && fi->shape[1] == c.embed_dim &&
                          ft->shape[1] == c.embed_dim,
                      "%s ITC features", presets[f]);
            }
        }
        CHECK(!vlp_graph_error(g), "%s graph: %s", presets[f], vlp_graph_error(g));
        if (out && !vlp_graph_build(g, out, VLP_BUILD_INFERENCE)) {
            float *pxd = px->data;
            for (int64_t i = 0; i < px->numel; i++) pxd[i] = frnd();
            float *tmp = malloc((size_t)px->numel * sizeof(float));
            make_batch(&c, B, T, tmp, ids->data, mask->data);
            free(tmp);
            CHECK(vlp_graph_forward(g) == 0, "%s forward: %s", presets[f], vlp_last_error());
            int finite = 1;
            for (int64_t i = 0; i < out->numel; i++) finite &= isfinite(((float *)out->data)[i]);
            CHECK(finite, "%s output finite", presets[f]);
        }
        vlp_graph_free(g);
        vlp_vl_free(m);
    }
    /* bad configs are refused with a message */
    vlp_vl_config c;
    vlp_vl_preset("vilt-tiny", &c);
    c.w_itc = 1;
    CHECK(vlp_vl_new(&c, 1) == NULL && strstr(vlp_last_error(), "ITC"), "ITC on single-stream refused: %s",
          vlp_last_error());
    CHECK(strstr(vlp_last_error(), "'itc'") && strstr(vlp_last_error(), "single_stream"),
          "ITC on single-stream: the message names the objective and the family: %s", vlp_last_error());
    /* an objective the architecture cannot serve: the message names the objective and the family */
    static const struct {
        const char *preset, *obj, *family;
    } bad[] = {{"blip-tiny", "mlm", "captioning"},   {"blip-tiny", "itm", "captioning"},
               {"albef-tiny", "lm", "dual_stream"},  {"vlmo-tiny", "lm", "mome"},
               {"vilt-tiny", "lm", "single_stream"}, {"albef-coattn-tiny", "lm", "dual_stream"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        vlp_vl_preset(bad[k].preset, &c);
        float *w = !strcmp(bad[k].obj, "mlm") ? &c.w_mlm : !strcmp(bad[k].obj, "itm") ? &c.w_itm : &c.w_lm;
        *w = 1;
        CHECK(vlp_vl_config_validate(&c) != 0, "%s on %s accepted by validate", bad[k].obj, bad[k].preset);
        vlp_vl *bm = vlp_vl_new(&c, 1);
        char want[16];
        snprintf(want, sizeof want, "'%s'", bad[k].obj);
        CHECK(!bm && strstr(vlp_last_error(), want) && strstr(vlp_last_error(), bad[k].family),
              "%s on %s: refused naming objective %s and family %s: %s", bad[k].obj, bad[k].preset, want,
              bad[k].family, bm ? "(built)" : vlp_last_error());
        vlp_vl_free(bm);
    }
    CHECK(vlp_vl_preset("nope", &c) != 0 && strstr(vlp_last_error(), "nope"), "unknown preset named");
}

/* ---- attention with a mask shorter than the keys ------------------------------------------- */
static void test_short_mask(void) {
    int B = 2, Tq = 5, Tk = 7, D = 8, Tm = 4;
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *q = in3(g, "q", VLP_F32, 3, B, Tq, D, 0), *k = in3(g, "k", VLP_F32, 3, B, Tk, D, 0),
               *v = in3(g, "v", VLP_F32, 3, B, Tk, D, 0);
    vlp_tensor *ms = in3(g, "ms", VLP_I32, 2, B, Tm, 0, 0), *mf = in3(g, "mf", VLP_I32, 2, B, Tk, 0, 0);
    vlp_tensor *a = vlp_keep(vlp_attention(g, q, k, v, 2, 0, ms)), *b = vlp_attention(g, q, k, v, 2, 0, mf);
    vlp_tensor *sum = vlp_add(g, a, b);
    CHECK(sum && !vlp_graph_build(g, sum, VLP_BUILD_INFERENCE), "short-mask graph builds");
    for (int64_t i = 0; i < q->numel; i++) ((float *)q->data)[i] = frnd();
    for (int64_t i = 0; i < k->numel; i++) ((float *)k->data)[i] = frnd(), ((float *)v->data)[i] = frnd();
    for (int bb = 0; bb < B; bb++)
        for (int j = 0; j < Tk; j++) {
            int on = j >= Tm || j < 2 + bb;
            ((int32_t *)mf->data)[bb * Tk + j] = on;
            if (j < Tm) ((int32_t *)ms->data)[bb * Tm + j] = on;
        }
    vlp_graph_forward(g);
    double md = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        float s = ((float *)sum->data)[i], x = ((float *)a->data)[i];
        md = fmax(md, fabs((double)(2 * x - s)));
    }
    CHECK(md < 1e-6, "a [B, Tm] key mask equals the full mask with ones after Tm (max diff %g)", md);
    vlp_graph_free(g);
}

/* ---- ITM hard negatives ----------------------------------------------------------------- */
static void test_sampler(void) {
    int B = 5;
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *s = in3(g, "s", VLP_F32, 2, B, B, 0, 0);
    vlp_tensor *idx = vlp_sample_negatives(g, s);
    CHECK(idx && !vlp_graph_build(g, idx, VLP_BUILD_INFERENCE), "sampler builds");
    float *sd = s->data;
    /* the positive (diagonal) scores highest by far: it must still never be drawn */
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) sd[i * B + j] = i == j ? 50.0f : (float)j * 0.7f;
    int counts[5][5] = {{0}}, diag = 0, steps = 4000;
    for (int st = 0; st < steps; st++) {
        vlp_graph_set_training(g, 1, (uint64_t)st);
        vlp_graph_forward(g);
        for (int i = 0; i < B; i++) {
            int j = ((int32_t *)idx->data)[i];
            diag += j == i || j < 0 || j >= B;
            if (j >= 0 && j < B) counts[i][j]++;
        }
    }
    CHECK(diag == 0, "sampled negatives never the positive (%d bad)", diag);
    /* frequencies follow softmax over the off-diagonal scores (row 0: columns 1..4) */
    double z = 0, worst = 0;
    for (int j = 1; j < B; j++) z += exp(j * 0.7);
    for (int j = 1; j < B; j++) worst = fmax(worst, fabs(counts[0][j] / (double)steps - exp(j * 0.7) / z));
    CHECK(worst < 0.03, "negative frequencies match softmax(scores) (max error %.4f)", worst);
    vlp_graph_set_seed(g, 99);
    vlp_graph_set_training(g, 1, 0);
    vlp_graph_forward(g);
    int32_t first[5];
    memcpy(first, idx->data, sizeof first);
    vlp_graph_forward(g);
    CHECK(!memcmp(first, idx->data, sizeof first), "same seed and step, same negatives");
    vlp_graph_free(g);
    g = vlp_graph_new();
    s = in3(g, "s1", VLP_F32, 2, 1, 1, 0, 0);
    CHECK(vlp_sample_negatives(g, s) == NULL && strstr(vlp_graph_error(g), "B >= 2"), "a batch of 1 is refused");
    vlp_graph_free(g);
    /* with a log scale (ALBEF's 1 / temperature): frequencies follow softmax(exp(log_scale) * scores) */
    g = vlp_graph_new();
    s = in3(g, "s2", VLP_F32, 2, B, B, 0, 0);
    vlp_tensor *ls = in3(g, "log_scale", VLP_F32, 1, 1, 0, 0, 0);
    idx = vlp_sample_negatives_scaled(g, s, ls);
    CHECK(idx && !vlp_graph_build(g, idx, VLP_BUILD_INFERENCE), "scaled sampler builds");
    if (idx) {
        for (int i = 0; i < B; i++)
            for (int j = 0; j < B; j++) ((float *)s->data)[i * B + j] = i == j ? 50.0f : (float)j * 0.7f;
        ((float *)ls->data)[0] = logf(2.5f);
        memset(counts, 0, sizeof counts);
        for (int st = 0; st < steps; st++) {
            vlp_graph_set_training(g, 1, (uint64_t)st);
            vlp_graph_forward(g);
            counts[0][((int32_t *)idx->data)[0]]++;
        }
        z = 0, worst = 0;
        for (int j = 1; j < B; j++) z += exp(2.5 * j * 0.7);
        for (int j = 1; j < B; j++) worst = fmax(worst, fabs(counts[0][j] / (double)steps - exp(2.5 * j * 0.7) / z));
        CHECK(counts[0][0] == 0 && worst < 0.03, "scaled negative frequencies match softmax(2.5 scores) (max error %.4f)",
              worst);
    }
    vlp_graph_free(g);
    g = vlp_graph_new();
    s = in3(g, "s3", VLP_F32, 2, B, B, 0, 0);
    ls = in3(g, "bad_scale", VLP_F32, 1, 2, 0, 0, 0);
    CHECK(vlp_sample_negatives_scaled(g, s, ls) == NULL && strstr(vlp_graph_error(g), "one-element"),
          "a log scale of 2 elements is refused");
    vlp_graph_free(g);
}

/* ---- MLM / MIM masking ---------------------------------------------------------------------- */
static void test_mlm_mask(void) {
    vlp_vl_config c;
    vlp_vl_preset("albef-tiny", &c);
    c.vocab_size = 1000;
    int n = 3000, T = 24;
    int32_t *ids = malloc((size_t)n * T * 4), *mask = malloc((size_t)n * T * 4), *out = malloc((size_t)n * T * 4),
            *lab = malloc((size_t)n * T * 4);
    float *px = malloc((size_t)3 * 32 * 32 * 4 * n);
    make_batch(&c, n, T, px, ids, mask);
    int picked = vlp_mlm_mask(&c, ids, mask, n, T, NULL, 10, 7, out, lab);
    long maskable = 0, special_hit = 0, nmask = 0, nsame = 0, nrand = 0, bad_label = 0, rows_without = 0;
    for (int r = 0; r < n; r++) {
        int any = 0;
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)r * T + t;
            int special = ids[i] == c.pad_id || ids[i] == c.cls_id || ids[i] == c.sep_id || !mask[i];
            maskable += !special;
            if (lab[i] == -100) {
                bad_label += out[i] != ids[i];
                continue;
            }
            any = 1;
            special_hit += special;
            bad_label += lab[i] != ids[i];
            if (out[i] == c.mask_id) nmask++;
            else if (out[i] == ids[i]) nsame++;
            else nrand += out[i] >= 10 && out[i] < c.vocab_size;
        }
        rows_without += !any;
    }
    double frac = (double)picked / (double)maskable;
    CHECK(picked > 0 && fabs(frac - 0.15) < 0.01, "MLM picks 15%% of maskable tokens (%.4f)", frac);
    CHECK(special_hit == 0, "special and padded tokens never picked (%ld)", special_hit);
    CHECK(bad_label == 0, "labels hold the original ids, -100 and unchanged elsewhere (%ld bad)", bad_label);
    CHECK(rows_without == 0, "every row gets at least one masked token (%ld without)", rows_without);
    CHECK(fabs(nmask / (double)picked - 0.8) < 0.02 && fabs(nrand / (double)picked - 0.1) < 0.015 &&
              fabs(nsame / (double)picked - 0.1) < 0.015,
          "80/10/10: mask %.3f random %.3f same %.3f", nmask / (double)picked, nrand / (double)picked,
          nsame / (double)picked);
    /* whole-word: ids >= 500 are "##" continuations; a word is picked whole or not at all */
    uint8_t *cont = calloc(1000, 1);
    for (int i = 500; i < 1000; i++) cont[i] = 1;
    c.mlm_whole_word = 1;
    picked = vlp_mlm_mask(&c, ids, mask, n, T, cont, 10, 8, out, lab);
    long split = 0, words = 0;
    for (int r = 0; r < n; r++)
        for (int t = 2; t < T; t++) {
            int64_t i = (int64_t)r * T + t;
            int maskable_prev = mask[i - 1] && ids[i - 1] != c.cls_id && ids[i - 1] != c.sep_id && ids[i - 1];
            int maskable_here = mask[i] && ids[i] != c.sep_id && ids[i];
            if (maskable_here && maskable_prev && cont[ids[i]]) {
                words++;
                split += (lab[i] == -100) != (lab[i - 1] == -100);
            }
        }
    CHECK(picked > 0 && words > 1000 && split == 0, "whole-word masking keeps %ld continuations with their word (%ld split)",
          words, split);
    char vpath[] = "/tmp/vlp_fusion_vocabXXXXXX";
    int fd = mkstemp(vpath);
    FILE *vf = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (vf) {
        fputs("[PAD]\nhello\n##lo\nworld\n##s\n", vf);
        fclose(vf);
    }
    int nv = 0;
    uint8_t *wc = vlp_wordpiece_continuations(vpath, &nv);
    CHECK(wc && nv == 5 && !wc[0] && !wc[1] && wc[2] && !wc[3] && wc[4], "## continuations read from vocab.txt");
    free(wc);
    unlink(vpath);
    free(cont);
    free(ids);
    free(mask);
    free(out);
    free(lab);
    free(px);
}

static void test_mim_mask(void) {
    int B = 50, N = 49;
    uint8_t *mk = malloc((size_t)B * N);
    int k = vlp_mim_mask(B, N, 0.4f, 3, mk), exact = 1;
    long cover[49] = {0};
    for (int b = 0; b < B; b++) {
        int cnt = 0;
        for (int i = 0; i < N; i++) cnt += mk[b * N + i], cover[i] += mk[b * N + i];
        exact &= cnt == k;
    }
    CHECK(k == 20 && exact, "MIM masks exactly round(0.4 * 49) = %d patches per image", k);
    int spread = 1;
    for (int i = 0; i < N; i++) spread &= cover[i] > 0;
    CHECK(spread, "every patch position gets masked somewhere");
    free(mk);
    int S = 16, P = 8;
    float px[3 * 16 * 16], tg[4 * 3 * 64];
    for (int i = 0; i < 3 * S * S; i++) px[i] = frnd() * 3 + 1;
    vlp_mim_targets(px, 1, S, P, tg);
    double mu = 0, var = 0;
    for (int i = 0; i < 192; i++) mu += tg[192 + i];
    mu /= 192;
    for (int i = 0; i < 192; i++) var += (tg[192 + i] - mu) * (tg[192 + i] - mu);
    var /= 191;
    /* patch 1 (row 0, column 1), channel 2, row 3, column 5 of the patch */
    double m0 = 0, v0 = 0;
    float raw[192];
    int kk = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < P; y++)
            for (int x = 0; x < P; x++) raw[kk++] = px[(ch * S + y) * S + P + x];
    for (int i = 0; i < 192; i++) m0 += raw[i];
    m0 /= 192;
    for (int i = 0; i < 192; i++) v0 += (raw[i] - m0) * (raw[i] - m0);
    v0 /= 191;
    float want = (float)((raw[2 * 64 + 3 * 8 + 5] - m0) / sqrt(v0 + 1e-6));
    CHECK(fabs(mu) < 1e-5 && fabs(var - 1) < 1e-3 && fabs(tg[192 + 2 * 64 + 3 * 8 + 5] - want) < 1e-4,
          "MIM targets: per-patch normalised pixels in (channel, row, column) order");
}

/* ---- overfitting with every objective ------------------------------------------------------ */
static float train(vlp_vl *m, int B, int T, int steps, float lr, float *first, float *parts_first,
                   float *parts_last, int *neg_bad) {
    vlp_graph *g = vlp_graph_new();
    vlp_vl_pretrain p;
    if (vlp_vl_pretrain_graph(g, m, NULL, B, T, &p) || vlp_graph_build(g, p.loss, VLP_BUILD_TRAIN)) {
        printf("  pretrain graph: %s\n", vlp_last_error());
        vlp_graph_free(g);
        return NAN;
    }
    const vlp_vl_config *c = &m->cfg;
    float *px = malloc((size_t)B * 3 * c->image_size * c->image_size * sizeof(float));
    int32_t *ids = malloc((size_t)B * T * 4), *mask = malloc((size_t)B * T * 4);
    make_batch(c, B, T, px, ids, mask);
    vlp_adamw_config ac = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .clip_norm = 1.0f};
    vlp_adamw *opt = vlp_adamw_new(m->params, &ac);
    float last = NAN, tail = 0;
    int ntail = 0;
    vlp_tensor *parts[5] = {p.loss_itc, p.loss_itm, p.loss_mlm, p.loss_mim, p.loss_lm};
    for (int s = 0; s < steps; s++) {
        /* the same masks every step: a fixed task to overfit */
        vlp_vl_pretrain_fill(m, &p, px, ids, mask, NULL, 5);
        vlp_graph_set_training(g, 1, (uint64_t)s);
        vlp_params_zero_grad(m->params);
        if (vlp_graph_forward(g) || vlp_graph_backward(g, NULL)) {
            printf("  step %d: %s\n", s, vlp_last_error());
            break;
        }
        last = *(float *)p.loss->data;
        if (s == 0) {
            *first = last;
            for (int i = 0; i < 5; i++) parts_first[i] = parts[i] ? *(float *)parts[i]->data : 0;
        }
        if (s >= steps - 5) {
            tail += last;
            ntail++;
            for (int i = 0; i < 5; i++) parts_last[i] = parts[i] ? *(float *)parts[i]->data : 0;
        }
        if (p.neg_img)
            for (int i = 0; i < B; i++)
                *neg_bad += ((int32_t *)p.neg_img->data)[i] == i || ((int32_t *)p.neg_txt->data)[i] == i;
        vlp_adamw_step(opt, lr, 1.0f, NULL);
    }
    vlp_adamw_free(opt);
    free(px);
    free(ids);
    free(mask);
    vlp_graph_free(g);
    return ntail ? tail / ntail : last;
}

static void test_overfit(void) {
    static const char *onames[5] = {"itc", "itm", "mlm", "mim", "lm"};
    for (int f = 0; f < NPRESETS; f++) {
        vlp_vl_config c;
        vlp_vl_preset(presets[f], &c);
        c.w_mim = 0.5f; /* every family also trains MIM */
        vlp_vl *m = vlp_vl_new(&c, 3);
        if (!m) {
            CHECK(0, "%s: %s", presets[f], vlp_last_error());
            continue;
        }
        float first = NAN, pf[5] = {0}, pl[5] = {0};
        int neg_bad = 0;
        float end = train(m, 4, 8, 40, 2e-3f, &first, pf, pl, &neg_bad);
        printf("  %-18s loss %.4f -> %.4f  (", presets[f], first, end);
        for (int i = 0; i < 5; i++)
            if (pf[i] != 0) printf(" %s %.3f->%.3f", onames[i], pf[i], pl[i]);
        printf(" )\n");
        CHECK(isfinite(first) && isfinite(end) && end < 0.7f * first, "%s: loss falls on a fixed batch (%.4f -> %.4f)",
              presets[f], first, end);
        for (int i = 0; i < 5; i++)
            if (pf[i] != 0 && i >= 2) /* ITC / ITM sit at chance for a while first: checked by the total */
                CHECK(pl[i] < pf[i], "%s: %s loss falls (%.4f -> %.4f)", presets[f], onames[i], pf[i], pl[i]);
        CHECK(neg_bad == 0, "%s: ITM negatives never the positive while training (%d bad)", presets[f], neg_bad);
        vlp_vl_free(m);
    }
}

/* ALBEF options: EMA teacher, distillation, feature queue. */
static void test_momentum(void) {
    vlp_vl_config c;
    vlp_vl_preset("albef-tiny", &c);
    c.momentum = 0.9f;
    c.queue_size = 8;
    c.distill_alpha = 0.4f;
    vlp_vl *m = vlp_vl_new(&c, 9), *t = m ? vlp_vl_momentum_teacher(m) : NULL;
    CHECK(m && t, "model and teacher: %s", vlp_last_error());
    if (!m || !t) {
        vlp_vl_free(m);
        return;
    }
    int B = 4, T = 8, E = c.embed_dim;
    vlp_graph *g = vlp_graph_new();
    vlp_vl_pretrain p;
    CHECK(vlp_vl_pretrain_graph(g, m, NULL, B, T, &p) != 0 && strstr(vlp_last_error(), "teacher"),
          "momentum without a teacher is refused");
    int rc = vlp_vl_pretrain_graph(g, m, t, B, T, &p);
    rc = rc ? rc : vlp_graph_build(g, p.loss, VLP_BUILD_TRAIN);
    CHECK(!rc && p.img_queue && p.mom_img, "momentum graph: %s", vlp_last_error());
    if (rc) goto done;
    float *px = malloc((size_t)B * 3 * 32 * 32 * sizeof(float));
    int32_t ids[32], mask[32];
    make_batch(&c, B, T, px, ids, mask);
    vlp_adamw_config ac = {.lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .clip_norm = 1.0f};
    vlp_adamw *opt = vlp_adamw_new(m->params, &ac);
    int64_t n = vlp_params_numel(m->params);
    float *t0 = malloc((size_t)n * sizeof(float));
    float first = NAN, tail = 0, q0 = 0, feat0 = 0;
    int ema_ok = 1, queue_ok = 1, unit = 1;
    for (int s = 0; s < 40; s++) {
        vlp_vl_pretrain_fill(m, &p, px, ids, mask, NULL, 5);
        if (s == 0) /* the queue starts as random unit vectors */
            for (int r = 0; r < 8; r++) {
                double nn = 0;
                for (int k = 0; k < E; k++) nn += pow(((float *)p.txt_queue->data)[r * E + k], 2);
                unit &= fabs(nn - 1) < 1e-4;
            }
        vlp_graph_set_training(g, 1, (uint64_t)s);
        vlp_params_zero_grad(m->params);
        vlp_graph_forward(g);
        vlp_graph_backward(g, NULL);
        vlp_adamw_step(opt, 2e-3f, 1.0f, NULL);
        float l = *(float *)p.loss->data;
        if (s == 0) first = l;
        if (s >= 35) tail += l / 5;
        memcpy(t0, vlp_params_data(t->params), (size_t)n * sizeof(float));
        int pos = p.queue_pos;
        vlp_vl_pretrain_after_step(&p, t, m);
        /* teacher = 0.9 teacher + 0.1 model, exactly */
        for (int64_t i = 0; i < n; i += 97)
            ema_ok &= vlp_params_data(t->params)[i] == 0.9f * t0[i] + (1.0f - 0.9f) * vlp_params_data(m->params)[i];
        for (int b = 0; b < B; b++)
            queue_ok &= !memcmp((float *)p.img_queue->data + ((pos + b) % 8) * E, (float *)p.mom_img->data + b * E,
                                (size_t)E * sizeof(float));
        if (s == 0) q0 = ((float *)p.img_queue->data)[0], feat0 = ((float *)p.mom_img->data)[0];
    }
    CHECK(unit, "queue initialised with unit vectors");
    CHECK(ema_ok, "teacher moves by EMA after every step");
    CHECK(queue_ok && q0 == feat0 && p.queue_pos == (40 * B) % 8, "queue holds the latest teacher features");
    printf("  albef-tiny momentum+queue+distill: loss %.4f -> %.4f\n", first, tail);
    CHECK(isfinite(first) && tail < 0.7f * first, "loss falls with momentum, queue and distillation (%.4f -> %.4f)",
          first, tail);
    vlp_adamw_free(opt);
    free(px);
    free(t0);
done:
    vlp_graph_free(g);
    vlp_vl_free(t);
    vlp_vl_free(m);
    vlp_vl_preset("albef-tiny", &c);
    c.queue_size = 16;
    CHECK(vlp_vl_new(&c, 1) == NULL && strstr(vlp_last_error(), "momentum"), "a queue without momentum is refused");
}

/* ---- decoding ---------------------------------------------------------------------------- */
static void test_kv_cache(int pre_ln) {
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    c.text_pre_ln = pre_ln;
    vlp_vl *m = vlp_vl_new(&c, 11);
    if (!m) {
        CHECK(0, "blip-tiny: %s", vlp_last_error());
        return;
    }
    /* larger weights than the init so logits differ clearly between positions */
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        if (t->ndim >= 2) vlp_init_normal(t, 0, 0.15f, 100 + (uint64_t)i);
        else if (!strstr(t->name, "weight")) vlp_init_normal(t, 0, 0.05f, 300 + (uint64_t)i);
    }
    int B = 2, T = 7, N1 = vlp_vl_image_tokens(m), V = c.vocab_size, W = c.vision_width;
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *img = in3(g, "img", VLP_F32, 3, B, N1, W, 0), *ids = in3(g, "ids", VLP_I32, 2, B, T, 0, 0),
               *mask = in3(g, "mask", VLP_I32, 2, B, T, 0, 0);
    vlp_tensor *lg = vlp_vl_caption_logits(g, m, img, ids, mask);
    CHECK(lg && !vlp_graph_build(g, lg, VLP_BUILD_INFERENCE), "full decoder graph: %s", vlp_last_error());
    float *imgd = malloc((size_t)B * N1 * W * sizeof(float));
    for (int64_t i = 0; i < (int64_t)B * N1 * W; i++) imgd[i] = frnd();
    memcpy(img->data, imgd, (size_t)B * N1 * W * sizeof(float));
    for (int i = 0; i < B * T; i++) {
        ((int32_t *)ids->data)[i] = i % T == 0 ? c.bos_id : 3 + (int32_t)(rnd() % (uint32_t)(V - 3));
        ((int32_t *)mask->data)[i] = 1;
    }
    vlp_graph_forward(g);
    vlp_vl_kv *kv = vlp_vl_kv_new(m, B, T);
    CHECK(kv && !vlp_vl_kv_set_images(kv, imgd, B, NULL), "cache: %s", vlp_last_error());
    float *step = malloc((size_t)B * V * sizeof(float));
    double md = 0, mx = 0;
    for (int t = 0; kv && t < T; t++) {
        int32_t tok[2] = {((int32_t *)ids->data)[t], ((int32_t *)ids->data)[T + t]};
        vlp_vl_kv_step(kv, tok, step);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                double full = ((float *)lg->data)[((int64_t)b * T + t) * V + v];
                md = fmax(md, fabs(full - step[b * V + v]));
                mx = fmax(mx, fabs(full));
            }
    }
    CHECK(md < 1e-4 * fmax(1.0, mx), "%s: cached decoding equals the full forward at every position (max diff "
          "%.3g, logits up to %.3g)", pre_ln ? "pre-LN" : "post-LN", md, mx);
    int32_t tk[2] = {1, 1};
    CHECK(kv && vlp_vl_kv_step(kv, tk, step) == VLP_ERR_STATE, "a full cache refuses another step");
    /* steps without logits (prefix positions) leave the cache as steps with them: the last
     * position's logits are bit-identical */
    if (kv) {
        float *a = malloc((size_t)B * V * sizeof(float));
        vlp_vl_kv_set_images(kv, imgd, B, NULL);
        int ok = 1;
        for (int t = 0; t < T; t++) {
            int32_t tok[2] = {((int32_t *)ids->data)[t], ((int32_t *)ids->data)[T + t]};
            ok &= vlp_vl_kv_step(kv, tok, t + 1 < T ? NULL : a) == 0;
        }
        CHECK(ok && !memcmp(a, step, (size_t)B * V * sizeof(float)) && vlp_vl_kv_len(kv) == T,
              "%s: prefix steps without logits give the same last logits", pre_ln ? "pre-LN" : "post-LN");
        free(a);
    }
    /* reorder: row 0 takes row 1's history */
    if (kv) {
        vlp_vl_kv_set_images(kv, imgd, B, NULL);
        float *a = malloc((size_t)B * V * sizeof(float));
        for (int t = 0; t < 3; t++) {
            int32_t tok[2] = {((int32_t *)ids->data)[t], ((int32_t *)ids->data)[T + t]};
            vlp_vl_kv_step(kv, tok, step);
        }
        int parent[2] = {1, 1};
        vlp_vl_kv_reorder(kv, parent);
        int32_t tok[2] = {5, 5};
        vlp_vl_kv_step(kv, tok, a);
        CHECK(!memcmp(a, a + V, (size_t)V * sizeof(float)), "reordered rows share one history");
        free(a);
    }
    vlp_vl_kv_free(kv);
    free(step);
    free(imgd);
    vlp_graph_free(g);
    vlp_vl_free(m);
}

static void test_search(void) {
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    vlp_vl *m = vlp_vl_new(&c, 21);
    if (!m) return;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        if (t->ndim >= 2) vlp_init_normal(t, 0, 0.2f, 500 + (uint64_t)i);
    }
    int n = 3, N1 = vlp_vl_image_tokens(m), W = c.vision_width, L = 10;
    float *img = malloc((size_t)n * N1 * W * sizeof(float));
    for (int64_t i = 0; i < (int64_t)n * N1 * W; i++) img[i] = frnd();
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc);
    gc.max_len = L;
    gc.min_len = 2;
    int32_t greedy[30], beam1[30], beam3[30], samp[30], samp2[30], nuc0[30];
    int lg[3], lb[3], l3[3], ls[3], ls2[3], ln0[3];
    CHECK(vlp_vl_generate(m, img, n, &gc, greedy, lg) == 0, "greedy: %s", vlp_last_error());
    CHECK(vlp_vl_beam_search(m, img, n, &gc, beam1, lb) == 0, "beam 1: %s", vlp_last_error());
    int same = 1, minok = 1, eos_end = 1;
    for (int i = 0; i < n; i++) {
        same &= lg[i] == lb[i] && !memcmp(greedy + i * L, beam1 + i * L, (size_t)L * 4);
        minok &= lg[i] >= 2;
        for (int t = 0; t < lg[i] - 1; t++) eos_end &= greedy[i * L + t] != c.eos_id;
    }
    CHECK(same, "beam search with beam 1 equals greedy decoding");
    CHECK(minok && eos_end, "min_len respected, eos only at the end");
    gc.beam = 3;
    gc.length_penalty = 0.6f;
    CHECK(vlp_vl_generate(m, img, n, &gc, beam3, l3) == 0, "beam 3: %s", vlp_last_error());
    int valid = 1;
    for (int i = 0; i < n; i++) {
        valid &= l3[i] >= 2 && l3[i] <= L;
        for (int t = 0; t < l3[i]; t++) valid &= beam3[i * L + t] >= 0 && beam3[i * L + t] < c.vocab_size;
    }
    CHECK(valid, "beam 3 gives valid captions (lengths %d %d %d)", l3[0], l3[1], l3[2]);
    gc.beam = 1;
    gc.sample = 1;
    gc.top_p = 1e-6f; /* the nucleus is the single most likely token: greedy */
    vlp_vl_generate(m, img, n, &gc, nuc0, ln0);
    CHECK(!memcmp(nuc0, greedy, sizeof greedy) && !memcmp(ln0, lg, sizeof lg), "nucleus with top_p -> 0 is greedy");
    gc.top_p = 0.9f;
    gc.temperature = 1.5f;
    gc.seed = 4;
    vlp_vl_generate(m, img, n, &gc, samp, ls);
    vlp_vl_generate(m, img, n, &gc, samp2, ls2);
    CHECK(!memcmp(samp, samp2, sizeof samp), "sampling is reproducible from its seed");
    gc.max_len = c.max_text_len;
    CHECK(vlp_vl_generate(m, img, n, &gc, samp, ls) != 0, "max_len beyond the positions is refused");
    free(img);
    vlp_vl_free(m);
}

/* log p(seq[0..len) | image, prefix) by stepping the cache one token at a time, with the search's
 * min_len rule (eos impossible before min_len, the rest renormalised); -inf if seq breaks it. */
static double seq_logp(const vlp_vl *m, const float *img, const int32_t *pre, int P, const int32_t *seq, int len,
                       int min_len) {
    int V = m->cfg.vocab_size;
    vlp_vl_kv *kv = vlp_vl_kv_new(m, 1, P + len);
    float *lg = malloc((size_t)V * sizeof(float));
    double lp = 0;
    if (!kv || !lg || vlp_vl_kv_set_images(kv, img, 1, NULL)) lp = NAN;
    for (int p = 0; !isnan(lp) && p < P; p++)
        if (vlp_vl_kv_step(kv, pre + p, lg)) lp = NAN;
    for (int t = 0; !isnan(lp) && t < len; t++) {
        if (t < min_len) lg[m->cfg.eos_id] = -INFINITY;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++) z += exp((double)lg[v] - mx);
        lp += (double)lg[seq[t]] - mx - log(z);
        if (t + 1 < len && vlp_vl_kv_step(kv, seq + t, lg)) lp = NAN;
    }
    vlp_vl_kv_free(kv);
    free(lg);
    return lp;
}

/* Beam search over a 6-token vocabulary and 3 output tokens, with and without a conditioning
 * prefix: a beam as wide as the whole search space (6^3) returns the best sequence of an
 * exhaustive search (score = log p / len^length_penalty over every eos-ended or max-length
 * sequence), narrower beams never beat it, and the reported log-probability is the
 * sequence's. */
static void test_beam_exhaustive(void) {
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    c.vocab_size = 6; /* ids 0..3 are pad/bos/eos/mask: every one of them can be generated */
    vlp_vl *m = vlp_vl_new(&c, 33);
    CHECK(m, "beam test model: %s", vlp_last_error());
    if (!m) return;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        if (t->ndim >= 2) vlp_init_normal(t, 0, 0.3f, 900 + (uint64_t)i);
    }
    ((float *)m->head_bias->data)[c.eos_id] = 3.0f; /* some best sequences end early */
    enum { V = 6, L = 3, NI = 6, FULL = V * V * V };
    int N1 = vlp_vl_image_tokens(m), W = c.vision_width;
    float *img = malloc((size_t)NI * N1 * W * sizeof(float));
    for (int64_t i = 0; i < (int64_t)NI * N1 * W; i++) img[i] = frnd();
    int32_t prefixes[2][3] = {{1, 0, 0}, {1, 4, 5}}; /* with a prefix, image i continues {1, 5 - i % 2, 5} */
    int plen[2] = {1, 3};
    float lps[2] = {1.0f, 0.6f};
    for (int pv = 0; pv < 2; pv++) {
        int P = plen[pv];
        int32_t pre[NI * 3];
        for (int i = 0; i < NI; i++) { /* each image its own prefix: the search must read row i's */
            memcpy(pre + i * P, prefixes[pv], (size_t)P * sizeof(int32_t));
            if (P > 1) pre[i * P + 1] = 5 - i % 2;
        }
        vlp_vl_gen_config gc;
        vlp_vl_gen_defaults(&gc);
        gc.max_len = L;
        gc.min_len = 1;
        gc.length_penalty = lps[pv];
        /* exhaustive: every x in V^L yields its eos-ended prefix (or itself, with no eos) */
        double best[NI];
        int32_t bseq[NI][L];
        int blen[NI] = {0}, nseq = 0;
        for (int i = 0; i < NI; i++) {
            best[i] = -INFINITY;
            for (int code = 0; code < FULL; code++) {
                int32_t x[L] = {code % V, code / V % V, code / V / V};
                int len = L;
                for (int t = 0; t < L; t++)
                    if (x[t] == c.eos_id) {
                        len = t + 1;
                        break;
                    }
                int canonical = 1; /* count each sequence once: tokens after eos are 0 */
                for (int t = len; t < L; t++) canonical &= x[t] == 0;
                if (!canonical) continue;
                nseq += i == 0;
                double lp = seq_logp(m, img + (size_t)i * N1 * W, pre + i * P, P, x, len, gc.min_len);
                double sc = lp / pow(len, gc.length_penalty);
                if (sc > best[i]) best[i] = sc, blen[i] = len, memcpy(bseq[i], x, sizeof x);
            }
        }
        int ok_full = 1, ok_narrow = 1, ok_lp = 1;
        double worst_gap = 0;
        int beams[] = {1, 2, 3, 5, 8, FULL};
        for (int bi = 0; bi < (int)(sizeof beams / sizeof *beams); bi++) {
            gc.beam = beams[bi];
            int32_t out[NI * L];
            int lens[NI];
            float logp[NI];
            int rc = P == 1 && pv == 0 ? vlp_vl_generate_prefix(m, img, NI, NULL, 1, &gc, out, lens, logp)
                                       : vlp_vl_generate_prefix(m, img, NI, pre, P, &gc, out, lens, logp);
            if (rc) {
                ok_full = ok_narrow = ok_lp = 0;
                break;
            }
            for (int i = 0; i < NI; i++) {
                double lp = seq_logp(m, img + (size_t)i * N1 * W, pre + i * P, P, out + i * L, lens[i], gc.min_len);
                double sc = lp / pow(lens[i], gc.length_penalty);
                ok_lp &= fabs(lp - logp[i]) <= 1e-4 * fmax(1.0, fabs(lp));
                if (gc.beam == FULL)
                    ok_full &= lens[i] == blen[i] && !memcmp(out + i * L, bseq[i], (size_t)lens[i] * 4);
                else ok_narrow &= sc <= best[i] + 1e-5;
                worst_gap = fmax(worst_gap, best[i] - sc);
            }
        }
        CHECK(nseq == 1 + (V - 1) + (V - 1) * (V - 1) + (V - 1) * (V - 1) * (V - 1), /* eos after 0, 1, 2 tokens; none */
              "exhaustive search enumerated %d sequences", nseq);
        int n_fin = 0;
        for (int i = 0; i < NI; i++) n_fin += blen[i] < L;
        CHECK(worst_gap > 1e-3 && n_fin > 0 && n_fin < NI,
              "prefix %d: a case that can tell (narrow beams miss the best by up to %.3f; %d of %d bests end in eos)",
              P, worst_gap, n_fin, NI);
        CHECK(ok_full, "prefix %d, length penalty %.1f: a beam of %d (the whole space) finds the exhaustive best (%.4f)",
              P, (double)gc.length_penalty, FULL, best[0]);
        CHECK(ok_narrow, "prefix %d: beams 1..8 never beat the exhaustive best (largest shortfall %.4f)", P, worst_gap);
        CHECK(ok_lp, "prefix %d: the reported log-probability is the sequence's", P);
    }
    free(img);
    vlp_vl_free(m);
}

/* A captioning model trained on two images learns their captions; greedy decoding then
 * reproduces them (the whole path: image features, cache, search). */
static void test_caption_overfit(void) {
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    vlp_vl *m = vlp_vl_new(&c, 5);
    if (!m) return;
    int B = 2, T = 6, S = c.image_size;
    float *px = malloc((size_t)B * 3 * S * S * sizeof(float));
    int32_t ids[12] = {1, 10, 11, 12, 2, 0, 1, 20, 21, 2, 0, 0}, mask[12];
    for (int i = 0; i < 12; i++) mask[i] = i % T == 0 || ids[i] != 0;
    for (int64_t i = 0; i < (int64_t)B * 3 * S * S; i++) px[i] = frnd();
    vlp_graph *g = vlp_graph_new();
    vlp_vl_pretrain p;
    int rc = vlp_vl_pretrain_graph(g, m, NULL, B, T, &p);
    rc = rc ? rc : vlp_graph_build(g, p.loss, VLP_BUILD_TRAIN);
    CHECK(!rc, "caption graph: %s", vlp_last_error());
    vlp_adamw_config ac = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.0f,
                           .clip_norm = 1.0f};
    vlp_adamw *opt = vlp_adamw_new(m->params, &ac);
    float loss = NAN;
    for (int s = 0; !rc && s < 150; s++) {
        vlp_vl_pretrain_fill(m, &p, px, ids, mask, NULL, 1);
        vlp_params_zero_grad(m->params);
        vlp_graph_forward(g);
        vlp_graph_backward(g, NULL);
        loss = *(float *)p.loss->data;
        vlp_adamw_step(opt, 3e-3f, 1.0f, NULL);
    }
    vlp_adamw_free(opt);
    vlp_graph_free(g);
    int N1 = vlp_vl_image_tokens(m);
    float *img = malloc((size_t)B * N1 * c.vision_width * sizeof(float));
    CHECK(vlp_vl_image_features(m, px, B, img) == 0, "image features: %s", vlp_last_error());
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc);
    gc.max_len = 5;
    int32_t out[10], lens[2];
    vlp_vl_generate(m, img, B, &gc, out, lens);
    int ok = lens[0] == 4 && lens[1] == 3 && !memcmp(out, ids + 1, 4 * 4) && !memcmp(out + 5, ids + 7, 3 * 4);
    CHECK(ok, "greedy decoding reproduces the trained captions (lm loss %.4f; got %d %d %d %d / %d %d %d)", loss,
          out[0], out[1], out[2], out[3], out[5], out[6], out[7]);
    gc.beam = 2;
    vlp_vl_generate(m, img, B, &gc, out, lens);
    ok = lens[0] == 4 && lens[1] == 3 && !memcmp(out, ids + 1, 4 * 4) && !memcmp(out + 5, ids + 7, 3 * 4);
    CHECK(ok, "beam search reproduces them too");
    free(img);
    free(px);
    vlp_vl_free(m);
}

/* ---- checkpoints ------------------------------------------------------------------------- */
static void test_save_load(void) {
    char dir[] = "/tmp/vlp_fusion_ckptXXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    static const char *fam[] = {"single_stream", "dual_stream", "dual_stream", "mome", "captioning"};
    for (int f = 0; f < NPRESETS; f++) {
        vlp_vl_config c;
        vlp_vl_preset(presets[f], &c);
        c.w_mim = 0.25f;
        vlp_vl *m = vlp_vl_new(&c, 40 + f);
        char sub[256];
        snprintf(sub, sizeof sub, "%s/%s", dir, presets[f]);
        CHECK(m && vlp_vl_save(m, sub) == 0, "%s saves: %s", presets[f], vlp_last_error());
        vlp_vl *r = vlp_vl_load(sub);
        CHECK(r != NULL, "%s loads: %s", presets[f], vlp_last_error());
        if (m && r) {
            CHECK(vlp_params_numel(m->params) == vlp_params_numel(r->params) &&
                      !memcmp(vlp_params_data(m->params), vlp_params_data(r->params),
                              (size_t)vlp_params_numel(m->params) * sizeof(float)),
                  "%s: every weight round-trips", presets[f]);
            CHECK(!memcmp(&m->cfg, &r->cfg, sizeof m->cfg), "%s: the config round-trips", presets[f]);
        }
        char cj[300];
        snprintf(cj, sizeof cj, "%s/config.json", sub);
        json_t *root = json_load_file(cj, 0, NULL);
        json_t *fj = root ? json_object_get(root, "family") : NULL, *oj = root ? json_object_get(root, "objectives") : NULL;
        int has_mim = 0;
        for (size_t i = 0; oj && i < json_array_size(oj); i++)
            has_mim |= !strcmp(json_string_value(json_array_get(oj, i)), "mim");
        CHECK(fj && !strcmp(json_string_value(fj), fam[f]) && json_is_array(oj) && json_array_size(oj) >= 2 && has_mim,
              "%s: config.json names family and objectives", presets[f]);
        json_decref(root);
        vlp_vl_free(r);
        /* a broken checkpoint is an error naming the problem */
        if (f == 0 && m) {
            snprintf(cj, sizeof cj, "%s/config.json", sub);
            FILE *fp = fopen(cj, "w");
            fputs("{\"family\": \"single_stream\", \"width\": 48, \"bogus\": 1}", fp);
            fclose(fp);
            CHECK(vlp_vl_load(sub) == NULL && strstr(vlp_last_error(), "bogus"), "unknown config field named: %s",
                  vlp_last_error());
            fp = fopen(cj, "w");
            fputs("{\"family\": \"single_stream\", \"width\": 48, \"heads\": 2, \"layers\": 2, \"mlp\": 96, \"vocab_size\": "
                  "64, \"max_text_len\": 16, \"image_size\": 32, \"patch_size\": 8, \"pad_id\": 0, \"cls_id\": 1, \"sep_id\": "
                  "2, \"mask_id\": 3, \"bos_id\": 1, \"eos_id\": 2, \"w_itm\": 1}",
                  fp);
            fclose(fp);
            CHECK(vlp_vl_load(sub) == NULL && strstr(vlp_last_error(), "shape"), "shape mismatch named: %s",
                  vlp_last_error());
        }
        vlp_vl_free(m);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", sub);
        if (system(cmd)) {}
    }
    rmdir(dir);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
#define TIMED(call)                                            \
    do {                                                       \
        double t0_ = now();                                    \
        call;                                                  \
        printf("  %-28s %.2f s\n", #call, now() - t0_);       \
    } while (0)

/* AdamW groups (vlp_train.h): biases, norm gains, embedding tables and the logit scale skip
 * weight decay, matrices (and the 4-D patch embedding) decay. BERT's word / position /
 * token-type tables used to decay in ALBEF and BLIP while every other embedding did not. */
static void test_decay_groups(void) {
    const char *presets[] = {"albef-tiny", "albef-coattn-tiny", "vilt-tiny", "vlmo-tiny", "blip-tiny"};
    for (int k = 0; k < 5; k++) {
        vlp_vl_config c;
        CHECK(vlp_vl_preset(presets[k], &c) == 0, "%s: %s", presets[k], vlp_last_error());
        vlp_vl *m = vlp_vl_new(&c, 1);
        CHECK(m != NULL, "%s: %s", presets[k], vlp_last_error());
        int bad = 0;
        for (int i = 0; m && i < vlp_params_count(m->params); i++) {
            vlp_tensor *t = vlp_params_get(m->params, i);
            int nd = (t->flags & VLP_FLAG_NO_DECAY) != 0, want = t->ndim < 2 || (t->ndim == 2 && strstr(t->name, "embed"));
            if (nd != want && bad++ < 3)
                printf("  %s: %s (%d-D) %s weight decay\n", presets[k], t->name, t->ndim, nd ? "skips" : "gets");
        }
        CHECK(!bad, "%s: %d tensors in the wrong weight-decay group", presets[k], bad);
        vlp_vl_free(m);
    }
}

/* ---- CoCa: unimodal + multimodal decoder with ITC (captioning family, 0 < fusion_layers < layers) ---- */

/* blip-tiny with 3 decoder layers, the top one multimodal, ITC heads: the tests' CoCa */
static void coca_config(vlp_vl_config *c, int pre_ln) {
    vlp_vl_preset("blip-tiny", c);
    c->layers = 3;
    c->fusion_layers = 1;
    c->embed_dim = 16;
    c->w_itc = 1;
    c->text_pre_ln = pre_ln;
}

/* larger weights than the init so every path (and every position) matters */
static void coca_scramble(vlp_vl *m, uint64_t seed) {
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        if (t == m->logit_scale) continue;
        if (t->ndim >= 2 || t == m->itc_tok) vlp_init_normal(t, 0, 0.15f, seed + (uint64_t)i);
        else if (!strstr(t->name, "weight")) vlp_init_normal(t, 0, 0.05f, seed + 1000 + (uint64_t)i);
    }
}

static int has_param(const vlp_vl *m, const char *sub) {
    for (int i = 0; i < vlp_params_count(m->params); i++)
        if (strstr(vlp_params_get(m->params, i)->name, sub)) return 1;
    return 0;
}

/* Configs: fusion_layers 0 (or == layers) keeps the old every-layer decoder and its tensors,
 * ITC needs unimodal layers, a CoCa model round-trips through a checkpoint. */
static void test_coca_config(void) {
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    c.embed_dim = 16; /* ITC heads only exist with unimodal layers: an old checkpoint's tensors stay the same */
    vlp_vl *m = vlp_vl_new(&c, 1);
    CHECK(m && !has_param(m, "text_itc") && !has_param(m, "vision_proj") && m->text->layers[0].xq_w,
          "fusion_layers 0: every layer cross-attends, no ITC tensors");
    vlp_vl_free(m);
    c.fusion_layers = c.layers;
    m = vlp_vl_new(&c, 1);
    CHECK(m && !has_param(m, "text_itc") && m->text->layers[0].xq_w, "fusion_layers == layers: as fusion_layers 0");
    vlp_vl_free(m);
    c.w_itc = 1;
    CHECK(!vlp_vl_new(&c, 1) && strstr(vlp_last_error(), "fusion_layers"), "ITC without unimodal layers refused: %s",
          vlp_last_error());
    c.fusion_layers = 0;
    CHECK(!vlp_vl_new(&c, 1) && strstr(vlp_last_error(), "fusion_layers"), "ITC with fusion_layers 0 refused");
    c.fusion_layers = c.layers + 1;
    c.w_itc = 0;
    CHECK(!vlp_vl_new(&c, 1) && strstr(vlp_last_error(), "fusion_layers"), "fusion_layers over layers refused");
    coca_config(&c, 0);
    c.embed_dim = 0;
    CHECK(!vlp_vl_new(&c, 1) && strstr(vlp_last_error(), "embed_dim"), "captioning ITC without embed_dim refused");
    coca_config(&c, 0);
    m = vlp_vl_new(&c, 3);
    CHECK(m != NULL, "CoCa config: %s", vlp_last_error());
    if (!m) return;
    CHECK(!m->text->layers[0].xq_w && !m->text->layers[1].xq_w && m->text->layers[2].xq_w && m->itc_tok &&
              m->vis_proj && m->txt_proj && m->logit_scale,
          "layers 0-1 unimodal, layer 2 multimodal, ITC token and projections");
    char dir[] = "/tmp/vlp_coca_ckptXXXXXX";
    if (mkdtemp(dir)) {
        int rc = vlp_vl_save(m, dir);
        vlp_vl *l = rc ? NULL : vlp_vl_load(dir);
        CHECK(l && l->cfg.fusion_layers == 1 && l->cfg.w_itc == 1 && l->itc_tok &&
                  vlp_params_numel(l->params) == vlp_params_numel(m->params) &&
                  !memcmp(vlp_params_data(l->params), vlp_params_data(m->params),
                          (size_t)vlp_params_numel(m->params) * sizeof(float)),
              "CoCa checkpoint round trip: %s", l ? "ok" : vlp_last_error());
        vlp_vl_free(l);
        char p[200];
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/config.json", dir);
        unlink(p);
        rmdir(dir);
    }
    vlp_vl_free(m);
}

static void *coca_npy(const char *v, const char *name, vlp_dtype want, int64_t *shape) {
    char dir[256];
    snprintf(dir, sizeof dir, FIXTURE("coca") "/%s", v);
    return ref_npy(dir, name, want, shape, NULL);
}

/* PyTorch parity (tests/fixtures/coca, tests/tools/gen_coca_fixture.py): the unimodal layers
 * with the ITC token, the ITC features and loss, the multimodal layers and LM head, the LM
 * loss, and the gradient of itc + lm for every text-side tensor and the image tokens. Also the
 * LM-only full forward (vlp_vl_caption_logits) and the KV cache on the same weights. */
static void test_coca_fixture(const char *v) {
    char path[512];
    vlp_safetensors *st, *gs;
    snprintf(path, sizeof path, FIXTURE("coca") "/%s", v);
    vlp_vl *m = ref_open_vl(path, &st, &gs);
    vlp_vl_config c = {0};
    if (m) c = m->cfg;
    int64_t si[4], sd[4], s1[4];
    float *img = coca_npy(v, "image.npy", VLP_F32, si), *ref_lg = coca_npy(v, "logits.npy", VLP_F32, s1);
    float *ref_fi = coca_npy(v, "img_feat.npy", VLP_F32, s1), *ref_ft = coca_npy(v, "txt_feat.npy", VLP_F32, s1);
    float *ref_loss = coca_npy(v, "losses.npy", VLP_F32, s1);
    int32_t *idv = coca_npy(v, "ids.npy", VLP_I32, sd), *mv = coca_npy(v, "mask.npy", VLP_I32, s1);
    vlp_graph *g = NULL, *g2 = NULL;
    vlp_vl_kv *kv = NULL;
    float *step = NULL;
    if (!m || !st || !gs || !img || !ref_lg || !ref_fi || !ref_ft || !ref_loss || !idv || !mv) {
        CHECK(0, "coca fixture %s: %s", v, vlp_last_error());
        goto out;
    }
    /* every fixture tensor fills a model tensor of its shape; every text-side model tensor is there */
    int loaded = 0, missing = 0;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        int k = vlp_st_find(st, t->name);
        if (k < 0) {
            missing += !strncmp(t->name, "text", 4) || !strncmp(t->name, "lm_head", 7) || strstr(t->name, "proj") ||
                       t == m->logit_scale;
            continue;
        }
        loaded += vlp_st_read_f32(st, k, (float *)t->data, t->numel) == 0;
    }
    CHECK(loaded == vlp_st_count(st) && !missing, "%s: %d of %d fixture tensors loaded, %d text-side missing: %s", v,
          loaded, vlp_st_count(st), missing, vlp_last_error());
    int B = (int)sd[0], T = (int)sd[1], N1 = (int)si[1], IW = (int)si[2], V = c.vocab_size, E = c.embed_dim;
    g = vlp_graph_new();
    int64_t sim[3] = {B, N1, IW}, sid[2] = {B, T}, sl[1] = {(int64_t)B * T}, s2[2] = {(int64_t)B * T, V};
    vlp_tensor *gi = vlp_input_grad(g, "img", 3, sim), *ids = vlp_input(g, "ids", VLP_I32, 2, sid),
               *mask = vlp_input(g, "mask", VLP_I32, 2, sid), *lab = vlp_input(g, "labels", VLP_I32, 1, sl);
    vlp_tensor *tx = vlp_vl_encode_text(g, m, vlp_vl_embed_text(g, m, ids), mask), *fi = NULL, *ft = NULL;
    CHECK(tx && tx->shape[1] == T + 1 && tx->shape[2] == c.width, "%s: unimodal states [B, T + 1, W]", v);
    vlp_vl_itc_features(g, m, gi, tx, &fi, &ft);
    vlp_tensor *itc = vlp_keep(vlp_itc_loss(g, fi, ft, m->logit_scale, NULL, VLP_ITC_CLIP));
    vlp_tensor *lg = vlp_keep(vlp_vl_caption_decode(g, m, gi, tx, mask));
    vlp_tensor *lm = vlp_keep(vlp_cross_entropy(g, vlp_reshape(g, lg, 2, s2), lab, -100));
    vlp_keep(fi), vlp_keep(ft);
    vlp_tensor *loss = vlp_add(g, itc, lm);
    int rc = vlp_graph_error(g) || !loss ? -1 : vlp_graph_build(g, loss, VLP_BUILD_TRAIN);
    CHECK(rc == 0, "%s: graph: %s", v, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    if (rc) goto out;
    memcpy(gi->data, img, (size_t)gi->numel * sizeof(float));
    memcpy(ids->data, idv, (size_t)B * T * sizeof(int32_t));
    memcpy(mask->data, mv, (size_t)B * T * sizeof(int32_t));
    vlp_lm_labels(idv, mv, B, T, lab->data);
    vlp_params_zero_grad(m->params);
    CHECK(vlp_graph_forward(g) == 0 && vlp_graph_backward(g, NULL) == 0, "%s: forward/backward: %s", v,
          vlp_last_error());
    double e_lg = rel_err(lg->data, ref_lg, lg->numel, 1e-3), e_fi = rel_err(fi->data, ref_fi, (int64_t)B * E, 1e-3),
           e_ft = rel_err(ft->data, ref_ft, (int64_t)B * E, 1e-3);
    double e_itc = fabs(*(float *)itc->data - ref_loss[0]) / ref_loss[0],
           e_lm = fabs(*(float *)lm->data - ref_loss[1]) / ref_loss[1];
    CHECK(e_lg < 1e-4 && e_fi < 1e-4 && e_ft < 1e-4, "%s: logits %.2g, image feature %.2g, text feature %.2g", v,
          e_lg, e_fi, e_ft);
    CHECK(e_itc < 1e-4 && e_lm < 1e-4, "%s: itc %.6f (PyTorch %.6f), lm %.6f (PyTorch %.6f)", v,
          *(float *)itc->data, ref_loss[0], *(float *)lm->data, ref_loss[1]);
    /* gradients: every tensor of grads.safetensors */
    double worst = 0;
    int ng = 0;
    for (int k = 0; k < vlp_st_count(gs); k++) {
        const char *name = vlp_st_name(gs, k);
        vlp_tensor *t = !strcmp(name, "image") ? gi : vlp_params_find(m->params, name);
        if (!t || !t->grad || vlp_st_numel(gs, k) != t->numel) {
            CHECK(0, "%s: gradient of %s: no such tensor of that size", v, name);
            continue;
        }
        float *r = malloc((size_t)t->numel * sizeof(float));
        vlp_st_read_f32(gs, k, r, t->numel);
        double e = rel_err(t->grad, r, t->numel, 1e-4), floor = zero_grad_scale(gs, name, r, t->numel);
        if (floor > 0) e = rel_err(t->grad, r, t->numel, floor); /* a key bias: zero in exact arithmetic */
        CHECK(e < 1e-4, "%s: gradient of %s off by %.3g (relative to its largest entry%s)", v, name, e,
              floor > 0 ? ", zero here: to its weight's" : "");
        worst = fmax(worst, e);
        ng++;
        free(r);
    }
    printf("coca %s: PyTorch parity: logits %.1e, features %.1e/%.1e, itc %.1e, lm %.1e, %d gradients (worst "
           "%.1e)\n", v, e_lg, e_fi, e_ft, e_itc, e_lm, ng, worst);
    /* the LM-only full forward and the KV cache give the same logits */
    g2 = vlp_graph_new();
    vlp_tensor *gi2 = vlp_input(g2, "img", VLP_F32, 3, sim), *ids2 = vlp_input(g2, "ids", VLP_I32, 2, sid),
               *mask2 = vlp_input(g2, "mask", VLP_I32, 2, sid);
    vlp_tensor *lg2 = vlp_vl_caption_logits(g2, m, gi2, ids2, mask2);
    if (lg2 && !vlp_graph_build(g2, lg2, VLP_BUILD_INFERENCE)) {
        memcpy(gi2->data, img, (size_t)gi2->numel * sizeof(float));
        memcpy(ids2->data, idv, (size_t)B * T * sizeof(int32_t));
        memcpy(mask2->data, mv, (size_t)B * T * sizeof(int32_t));
        vlp_graph_forward(g2);
        double e2 = rel_err(lg2->data, ref_lg, lg2->numel, 1e-3);
        CHECK(e2 < 1e-4, "%s: vlp_vl_caption_logits (no ITC pass) %.2g off", v, e2);
    } else CHECK(0, "%s: caption_logits graph: %s", v, vlp_last_error());
    /* ITC features in an inference graph (retrieval's): buffers planned for reuse */
    vlp_graph *g3 = vlp_graph_new();
    vlp_tensor *gi3 = vlp_input(g3, "img", VLP_F32, 3, sim), *ids3 = vlp_input(g3, "ids", VLP_I32, 2, sid),
               *mask3 = vlp_input(g3, "mask", VLP_I32, 2, sid), *fi3 = NULL, *ft3 = NULL;
    vlp_vl_itc_features(g3, m, gi3, vlp_vl_encode_text(g3, m, vlp_vl_embed_text(g3, m, ids3), mask3), &fi3, &ft3);
    vlp_tensor *both = fi3 && ft3 ? vlp_concat(g3, fi3, ft3, 0) : NULL; /* [image; text] */
    if (both && !vlp_graph_build(g3, both, VLP_BUILD_INFERENCE)) {
        memcpy(gi3->data, img, (size_t)gi3->numel * sizeof(float));
        memcpy(ids3->data, idv, (size_t)B * T * sizeof(int32_t));
        memcpy(mask3->data, mv, (size_t)B * T * sizeof(int32_t));
        vlp_graph_forward(g3);
        double e3 = fmax(rel_err(both->data, ref_fi, (int64_t)B * E, 1e-3),
                         rel_err((float *)both->data + (int64_t)B * E, ref_ft, (int64_t)B * E, 1e-3));
        CHECK(e3 < 1e-4, "%s: ITC features in an inference graph %.2g off", v, e3);
    } else CHECK(0, "%s: inference ITC graph: %s", v, vlp_graph_error(g3) ? vlp_graph_error(g3) : vlp_last_error());
    vlp_graph_free(g3);
    kv = vlp_vl_kv_new(m, B, T);
    step = malloc((size_t)B * V * sizeof(float));
    CHECK(kv && !vlp_vl_kv_set_images(kv, img, B, NULL), "%s: cache: %s", v, vlp_last_error());
    double ekv = 0;
    for (int t = 0; kv && t < T; t++) {
        int32_t tok[8];
        for (int b = 0; b < B; b++) tok[b] = idv[b * T + t];
        vlp_vl_kv_step(kv, tok, step);
        for (int b = 0; b < B; b++)
            if (mv[b * T + t]) /* the cache has no padding: real positions only */
                ekv = fmax(ekv, rel_err(step + (int64_t)b * V, ref_lg + ((int64_t)b * T + t) * V, V, 1e-3));
    }
    CHECK(ekv < 1e-4, "%s: KV-cached decoding with unimodal layers %.2g off PyTorch", v, ekv);
out:
    vlp_vl_kv_free(kv);
    free(step);
    vlp_graph_free(g);
    vlp_graph_free(g2);
    vlp_st_close(st);
    vlp_st_close(gs);
    free(img), free(ref_lg), free(ref_fi), free(ref_ft), free(ref_loss), free(idv), free(mv);
    vlp_vl_free(m);
}

/* The whole pre-training graph (ViT, unimodal layers + ITC token, ITC, multimodal layers, LM)
 * against central differences, for a sample of entries of every new tensor and of each part;
 * its LM loss (continuing from the ITC pass) equals the LM-only graph's. */
static double coca_loss(vlp_graph *g, vlp_vl_pretrain *p) {
    vlp_graph_forward(g);
    return *(float *)p->loss->data;
}

static void test_coca_gradcheck(int pre_ln) {
    vlp_vl_config c;
    coca_config(&c, pre_ln);
    c.w_lm = 0.7f; /* distinct weights: a swapped pair would show */
    vlp_vl *m = vlp_vl_new(&c, 9);
    if (!m) {
        CHECK(0, "coca: %s", vlp_last_error());
        return;
    }
    coca_scramble(m, 700);
    int B = 3, T = 6, S = c.image_size;
    float *px = malloc((size_t)B * 3 * S * S * sizeof(float));
    int32_t ids[18], mask[18];
    make_batch(&c, B, T, px, ids, mask);
    vlp_graph *g = vlp_graph_new();
    vlp_vl_pretrain p;
    int rc = vlp_vl_pretrain_graph(g, m, NULL, B, T, &p);
    rc = rc ? rc : vlp_graph_build(g, p.loss, VLP_BUILD_TRAIN);
    CHECK(!rc && p.loss_itc && p.loss_lm, "coca pretrain graph: %s", vlp_last_error());
    if (rc) {
        vlp_graph_free(g);
        vlp_vl_free(m);
        free(px);
        return;
    }
    vlp_vl_pretrain_fill(m, &p, px, ids, mask, NULL, 1);
    vlp_params_zero_grad(m->params);
    vlp_graph_forward(g);
    vlp_graph_backward(g, NULL);
    float lm_pre = *(float *)p.loss_lm->data;
    /* the LM-only objective on the same batch: recomputes the unimodal layers without the token */
    vlp_graph *g2 = vlp_graph_new();
    int64_t sp[4] = {B, 3, S, S}, st[2] = {B, T}, sl[1] = {(int64_t)B * T};
    vlp_tensor *px2 = vlp_input(g2, "px", VLP_F32, 4, sp), *ids2 = vlp_input(g2, "ids", VLP_I32, 2, st),
               *m2 = vlp_input(g2, "mask", VLP_I32, 2, st), *lab = vlp_input(g2, "lab", VLP_I32, 1, sl);
    vlp_tensor *ie = vlp_vl_encode_image(g2, m, vlp_vl_embed_image(g2, m, px2, NULL, NULL));
    vlp_tensor *lm2 = vlp_vl_lm_loss(g2, m, ie, ids2, m2, lab);
    if (lm2 && !vlp_graph_build(g2, lm2, VLP_BUILD_INFERENCE)) {
        memcpy(px2->data, px, (size_t)px2->numel * sizeof(float));
        memcpy(ids2->data, ids, sizeof ids), memcpy(m2->data, mask, sizeof mask);
        vlp_lm_labels(ids, mask, B, T, lab->data);
        vlp_graph_forward(g2);
        float lm_only = *(float *)lm2->data;
        CHECK(fabs(lm_only - lm_pre) <= 1e-5 * fabs(lm_only), "LM loss with the ITC pass %.7f vs LM-only %.7f",
              lm_pre, lm_only);
    } else CHECK(0, "LM-only graph: %s", vlp_last_error());
    vlp_graph_free(g2);
    vlp_tensor *vit0 = vlp_params_find(m->params, "vision.blocks.0.attn.qkv.weight");
    if (!vit0) /* the ViT's own naming: any matrix of its first block */
        for (int i = 0; i < vlp_params_count(m->params) && !vit0; i++) {
            vlp_tensor *t = vlp_params_get(m->params, i);
            if (!strncmp(t->name, "vision.blocks.0", 15) && t->ndim == 2) vit0 = t;
        }
    const vlp_bert *tx = m->text;
    vlp_tensor *check[] = {m->itc_tok,          m->itc_ln_w,          m->itc_ln_b,          m->txt_proj,
                           m->vis_proj,         m->logit_scale,       tx->word_emb,         tx->pos_emb,
                           tx->emb_ln_w,        tx->layers[0].q_w,    tx->layers[0].v_b,    tx->layers[1].ao_ln_w,
                           tx->layers[1].out_w, tx->layers[2].q_w,    tx->layers[2].xk_w,   tx->layers[2].xv_b,
                           tx->layers[2].inter_w, m->head_w,          m->head_bias,         m->vit_ln_w,
                           m->vis_cls,          m->patch_w,           vit0};
    double worst = 0;
    for (size_t k = 0; k < sizeof check / sizeof check[0]; k++) {
        vlp_tensor *t = check[k];
        if (!t || !t->grad) {
            CHECK(0, "gradcheck tensor %zu missing or without gradient", k);
            continue;
        }
        float *x = t->data, *gr = t->grad;
        double num_max = 0, diff_max = 0;
        for (int64_t j = 0; j < t->numel && j < 12; j++) {
            int64_t i = (j * 7919) % t->numel;
            float keep = x[i];
            const double hh = 1e-2; /* float32 loss: smaller steps drown in roundoff */
            x[i] = keep + (float)hh;
            double lp = coca_loss(g, &p);
            x[i] = keep - (float)hh;
            double lmn = coca_loss(g, &p);
            x[i] = keep;
            double num = (lp - lmn) / (2 * hh);
            num_max = fmax(num_max, fabs(num));
            diff_max = fmax(diff_max, fabs(num - gr[i]));
        }
        /* wiring errors show as O(1); float32 differences leave ~1e-2 */
        double e = diff_max / fmax(num_max, 1e-2);
        CHECK(e <= 3e-2, "coca %s grad %s: err %.3g (numeric up to %.3g)", pre_ln ? "pre-LN" : "post-LN", t->name, e,
              num_max);
        worst = fmax(worst, e);
    }
    printf("coca gradcheck %s: itc %.4f lm %.4f, worst relative error %.2e over %zu tensors\n",
           pre_ln ? "pre-LN " : "post-LN", *(float *)p.loss_itc->data, lm_pre, worst, sizeof check / sizeof check[0]);
    vlp_graph_free(g);
    vlp_vl_free(m);
    free(px);
}

/* Decoding a CoCa model: the KV cache equals the full forward at every position; greedy
 * decoding equals greedy by full recompute (the whole prefix through vlp_vl_caption_logits
 * each step); beam 1 and nucleus with top_p -> 0 equal greedy; beam 3 gives valid captions. */
static void test_coca_decode(int pre_ln) {
    vlp_vl_config c;
    coca_config(&c, pre_ln);
    vlp_vl *m = vlp_vl_new(&c, 13);
    if (!m) {
        CHECK(0, "coca: %s", vlp_last_error());
        return;
    }
    coca_scramble(m, 900);
    int n = 3, N1 = vlp_vl_image_tokens(m), W = c.vision_width, V = c.vocab_size, L = 9;
    float *img = malloc((size_t)n * N1 * W * sizeof(float));
    for (int64_t i = 0; i < (int64_t)n * N1 * W; i++) img[i] = frnd();
    /* greedy by full recompute: positions 0..t hold bos + the tokens so far (causal: later ones never matter) */
    vlp_graph *g = vlp_graph_new();
    int64_t si[3] = {n, N1, W}, st[2] = {n, L + 1};
    vlp_tensor *gi = vlp_input(g, "img", VLP_F32, 3, si), *ids = vlp_input(g, "ids", VLP_I32, 2, st),
               *mask = vlp_input(g, "mask", VLP_I32, 2, st);
    vlp_tensor *lg = vlp_vl_caption_logits(g, m, gi, ids, mask);
    int rc = !lg || vlp_graph_build(g, lg, VLP_BUILD_INFERENCE);
    CHECK(!rc, "full decoder graph: %s", vlp_last_error());
    int32_t full[27], flen[3], done[3] = {0, 0, 0};
    if (!rc) {
        memcpy(gi->data, img, (size_t)gi->numel * sizeof(float));
        int32_t *id = ids->data, *mk = mask->data;
        for (int i = 0; i < n * (L + 1); i++) id[i] = i % (L + 1) ? c.pad_id : c.bos_id, mk[i] = 1;
        for (int r = 0; r < n; r++) flen[r] = 0;
        for (int t = 0; t < L; t++) {
            vlp_graph_forward(g);
            for (int r = 0; r < n; r++) {
                if (done[r]) continue;
                const float *row = (float *)lg->data + ((int64_t)r * (L + 1) + t) * V;
                int best = -1; /* the first maximum; no eos before min_len (1) */
                for (int v = 0; v < V; v++)
                    if (!(t < 1 && v == c.eos_id) && (best < 0 || row[v] > row[best])) best = v;
                full[r * L + t] = best;
                flen[r] = t + 1;
                id[r * (L + 1) + t + 1] = best;
                done[r] = best == c.eos_id;
            }
        }
    }
    vlp_graph_free(g);
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc);
    gc.max_len = L;
    gc.min_len = 1;
    int32_t greedy[27], beam1[27], nuc[27], beam3[27];
    int lg_[3], lb[3], ln_[3], l3[3];
    CHECK(vlp_vl_generate(m, img, n, &gc, greedy, lg_) == 0, "coca greedy: %s", vlp_last_error());
    int same = !rc;
    for (int r = 0; r < n && same; r++) same = lg_[r] == flen[r] && !memcmp(greedy + r * L, full + r * L, (size_t)flen[r] * 4);
    CHECK(same, "%s: cached greedy decoding equals greedy by full recompute (lengths %d %d %d vs %d %d %d)",
          pre_ln ? "pre-LN" : "post-LN", lg_[0], lg_[1], lg_[2], flen[0], flen[1], flen[2]);
    CHECK(vlp_vl_beam_search(m, img, n, &gc, beam1, lb) == 0 && !memcmp(beam1, greedy, sizeof greedy) &&
              !memcmp(lb, lg_, sizeof lb),
          "coca: beam 1 equals greedy");
    gc.sample = 1;
    gc.top_p = 1e-6f;
    CHECK(vlp_vl_generate(m, img, n, &gc, nuc, ln_) == 0 && !memcmp(nuc, greedy, sizeof greedy),
          "coca: nucleus with top_p -> 0 equals greedy");
    gc.sample = 0;
    gc.beam = 3;
    int valid = vlp_vl_generate(m, img, n, &gc, beam3, l3) == 0;
    for (int r = 0; r < n && valid; r++) valid = l3[r] >= 1 && l3[r] <= L;
    CHECK(valid, "coca: beam 3 gives captions: %s", vlp_last_error());
    free(img);
    vlp_vl_free(m);
}

int main(void) {
    vlp_set_threads(1); /* tiny shapes: threads would only wait on each other */
    TIMED(test_shapes());
    TIMED(test_decay_groups());
    TIMED(test_short_mask());
    TIMED(test_sampler());
    TIMED(test_mlm_mask());
    TIMED(test_mim_mask());
    TIMED(test_kv_cache(0));
    TIMED(test_kv_cache(1));
    TIMED(test_search());
    TIMED(test_beam_exhaustive());
    TIMED(test_save_load());
    TIMED(test_overfit());
    TIMED(test_caption_overfit());
    TIMED(test_momentum());
    TIMED(test_coca_config());
    TIMED(test_coca_fixture("post"));
    TIMED(test_coca_fixture("pre"));
    TIMED(test_coca_gradcheck(0));
    TIMED(test_coca_gradcheck(1));
    TIMED(test_coca_decode(0));
    TIMED(test_coca_decode(1));
    return test_finish();
}
