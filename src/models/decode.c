/* Caption generation with a key/value cache (include/vlp_vl.h).
 *
 * The decoder (CAPTION's causal BERT with cross-attention) runs outside the graph: per
 * step every row gets one new position, so each layer projects one token per row with
 * the engine's GEMM, appends its key/value to the cache and attends over the cached
 * positions; the image keys/values of each layer's cross-attention are projected once
 * per image (CoCa's unimodal lower layers have no cross-attention and skip it; its ITC token
 * after the text is never decoded: the text rows cannot see it). The arithmetic mirrors
 * vlp_bert_layer_forward (post-LN or pre-LN) and the LM head of fusion.c, so cached logits
 * equal a full forward.
 *
 * Search: greedy, beam search (score = sum log p / len^length_penalty; a hypothesis ends
 * at eos; an image is done once it has `beam` finished hypotheses, eos counted only when
 * among the top `beam` candidates, so beam 1 is greedy), nucleus sampling (seeded). */
#include "vlp_vl.h"

#include "core/internal.h"
#include "core/vmath.h"
#include "ops/gemm.h"

#include <math.h>

struct vlp_vl_kv {
    const vlp_vl *m;
    int rows, max_len, len, L, W, H, F, V, N, n_img;
    float *k, *v;   /* [L][rows][max_len][W] */
    float *xk, *xv; /* [L][n_img][N][W] */
    int *row_img;
    float *x, *n, *q, *kk, *vv, *att, *h, *ff, *p, *tmp;
};

void vlp_vl_kv_free(vlp_vl_kv *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->xk);
    free(kv->xv);
    free(kv->row_img);
    free(kv->x);
    free(kv->n);
    free(kv->q);
    free(kv->kk);
    free(kv->vv);
    free(kv->att);
    free(kv->h);
    free(kv->ff);
    free(kv->p);
    free(kv->tmp);
    free(kv);
}

vlp_vl_kv *vlp_vl_kv_new(const vlp_vl *m, int rows, int max_len) {
    if (!m || m->cfg.family != VLP_VL_CAPTION || !m->text) {
        vlp_set_error("vlp_vl_kv_new: needs a captioning model");
        return NULL;
    }
    if (rows <= 0 || max_len <= 0 || max_len > m->cfg.max_text_len) {
        vlp_set_error("vlp_vl_kv_new: rows %d and max_len %d (1..max_text_len %d)", rows, max_len,
                      m->cfg.max_text_len);
        return NULL;
    }
    vlp_vl_kv *kv = calloc(1, sizeof *kv);
    if (!kv) {
        vlp_set_error("out of memory");
        return NULL;
    }
    const vlp_bert_config *bc = &m->text->cfg;
    kv->m = m;
    kv->rows = rows;
    kv->max_len = max_len;
    kv->L = bc->num_hidden_layers;
    kv->W = bc->hidden_size;
    kv->H = bc->num_attention_heads;
    kv->F = bc->intermediate_size;
    kv->V = m->cfg.vocab_size;
    kv->N = vlp_vl_image_tokens(m);
    size_t cache = (size_t)kv->L * rows * max_len * kv->W, rw = (size_t)rows * kv->W;
    size_t pn = (size_t)(max_len > kv->N ? max_len : kv->N);
    kv->k = malloc(cache * sizeof(float));
    kv->v = malloc(cache * sizeof(float));
    kv->row_img = calloc((size_t)rows, sizeof(int));
    kv->x = malloc(rw * sizeof(float));
    kv->n = malloc(rw * sizeof(float));
    kv->q = malloc(rw * sizeof(float));
    kv->kk = malloc(rw * sizeof(float));
    kv->vv = malloc(rw * sizeof(float));
    kv->att = malloc(rw * sizeof(float));
    kv->h = malloc(rw * sizeof(float));
    kv->ff = malloc((size_t)rows * (kv->F > kv->V ? kv->F : kv->V) * sizeof(float));
    kv->p = malloc(pn * sizeof(float));
    kv->tmp = malloc((size_t)rows * max_len * kv->W * sizeof(float));
    if (!kv->k || !kv->v || !kv->row_img || !kv->x || !kv->n || !kv->q || !kv->kk || !kv->vv || !kv->att ||
        !kv->h || !kv->ff || !kv->p || !kv->tmp) {
        vlp_vl_kv_free(kv);
        vlp_set_error("vlp_vl_kv_new: out of memory for a cache of %d rows x %d positions", rows, max_len);
        return NULL;
    }
    return kv;
}

int vlp_vl_kv_len(const vlp_vl_kv *kv) { return kv ? kv->len : 0; }

/* y [M, out] = x [M, in] @ w^T + b (w [out, in], nn.Linear). A decoding step has few rows:
 * there a GEMM would spend its time packing the weights (the whole vocabulary matrix for the
 * logits), so up to 8 rows take dot products against the weight rows, read once. */
static void linear(const float *x, int M, int in, const vlp_tensor *w, const vlp_tensor *b, float *y) {
    int out = (int)w->shape[0];
    const float *W = vlp_f(w), *bias = b ? vlp_f(b) : NULL;
    if (M > 8) {
        vlp_gemm(0, 1, M, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
        if (bias)
            for (int r = 0; r < M; r++)
                for (int j = 0; j < out; j++) y[(int64_t)r * out + j] += bias[j];
        return;
    }
    VLP_PARFOR(vlp_get_threads(), (int64_t)out * in >= (1 << 18), (int j = 0; j < out; j++), {
        const float *wj = W + (int64_t)j * in;
        for (int r = 0; r < M; r++) {
            const float *xr = x + (int64_t)r * in;
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;
            int i = 0;
            for (; i + 8 <= in; i += 8) /* eight independent sums: vectorised */
                for (int k = 0; k < 8; k++) acc[k] += xr[i + k] * wj[i + k];
            for (; i < in; i++) tail += xr[i] * wj[i];
            float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
            y[(int64_t)r * out + j] = sum + (bias ? bias[j] : 0.0f);
        }
    });
}

static void layernorm(float *y, const float *x, int M, int D, const vlp_tensor *w, const vlp_tensor *b, float eps) {
    for (int r = 0; r < M; r++) {
        const float *xr = x + (int64_t)r * D;
        float *yr = y + (int64_t)r * D, mu = 0, var = 0;
        for (int i = 0; i < D; i++) mu += xr[i];
        mu /= (float)D;
        for (int i = 0; i < D; i++) var += (xr[i] - mu) * (xr[i] - mu);
        float rs = 1.0f / sqrtf(var / (float)D + eps);
        for (int i = 0; i < D; i++) yr[i] = (xr[i] - mu) * rs * vlp_f(w)[i] + vlp_f(b)[i];
    }
}

/* the engine's activations (core/vmath.h), one loop each so every one vectorises */
static void activation(float *x, int64_t n, int act) {
    if (act == VLP_ACT_GELU)
        for (int64_t i = 0; i < n; i++) x[i] = vlp_gelu_f(x[i]);
    else if (act == VLP_ACT_GELU_TANH)
        for (int64_t i = 0; i < n; i++) x[i] = vlp_gelu_tanh_f(x[i]);
    else
        for (int64_t i = 0; i < n; i++) x[i] = vlp_quick_gelu_f(x[i]);
}

int vlp_vl_kv_set_images(vlp_vl_kv *kv, const float *img, int n_img, const int *row_img) {
    if (!kv || !img || n_img <= 0) {
        vlp_set_error("vlp_vl_kv_set_images: bad arguments");
        return VLP_ERR_ARG;
    }
    for (int r = 0; r < kv->rows; r++) {
        int i = row_img ? row_img[r] : r;
        if (i < 0 || i >= n_img) {
            vlp_set_error("vlp_vl_kv_set_images: row %d reads image %d of %d", r, i, n_img);
            return VLP_ERR_ARG;
        }
        kv->row_img[r] = i;
    }
    if (n_img != kv->n_img) {
        free(kv->xk);
        free(kv->xv);
        size_t n = (size_t)kv->L * n_img * kv->N * kv->W;
        kv->xk = malloc(n * sizeof(float));
        kv->xv = malloc(n * sizeof(float));
        kv->n_img = kv->xk && kv->xv ? n_img : 0;
        if (!kv->n_img) {
            vlp_set_error("out of memory");
            return VLP_ERR_NOMEM;
        }
    }
    const vlp_bert *t = kv->m->text;
    int Wv = t->cfg.encoder_width ? t->cfg.encoder_width : kv->W;
    for (int l = 0; l < kv->L; l++) {
        const vlp_bert_layer *y = &t->layers[l];
        if (!y->xk_w) continue; /* a unimodal (CoCa) layer: no cross-attention, nothing to project */
        size_t off = (size_t)l * n_img * kv->N * kv->W;
        linear(img, n_img * kv->N, Wv, y->xk_w, y->xk_b, kv->xk + off);
        linear(img, n_img * kv->N, Wv, y->xv_w, y->xv_b, kv->xv + off);
    }
    kv->len = 0;
    return VLP_OK;
}

/* out[r] = softmax(q_r . K_r^T / sqrt(hd)) V_r per head; K_r, V_r: T rows of stride ld. */
static void attend(const float *q, const float *K, const float *Vv, int T, int W, int H, float *out, float *p) {
    int hd = W / H;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        float m = -INFINITY, s = 0;
        for (int j = 0; j < T; j++) {
            float d = 0;
            for (int i = 0; i < hd; i++) d += q[h * hd + i] * K[(int64_t)j * W + h * hd + i];
            p[j] = d * scale;
            m = p[j] > m ? p[j] : m;
        }
        for (int j = 0; j < T; j++) s += (p[j] = expf(p[j] - m));
        for (int i = 0; i < hd; i++) out[h * hd + i] = 0;
        for (int j = 0; j < T; j++) {
            float w = p[j] / s;
            for (int i = 0; i < hd; i++) out[h * hd + i] += w * Vv[(int64_t)j * W + h * hd + i];
        }
    }
}

int vlp_vl_kv_step(vlp_vl_kv *kv, const int32_t *tokens, float *logits) {
    if (!kv || !tokens || !kv->n_img) {
        vlp_set_error("vlp_vl_kv_step: bad arguments (or no images set)");
        return VLP_ERR_ARG;
    }
    if (kv->len >= kv->max_len) {
        vlp_set_error("vlp_vl_kv_step: the cache is full (%d positions)", kv->max_len);
        return VLP_ERR_STATE;
    }
    const vlp_vl *m = kv->m;
    const vlp_bert *t = m->text;
    const vlp_bert_config *bc = &t->cfg;
    int R = kv->rows, W = kv->W, pos = kv->len, Lm = kv->max_len, N = kv->N, V = kv->V;
    float eps = bc->layer_norm_eps, *x = kv->x, *n = kv->n, *h = kv->h;
    for (int r = 0; r < R; r++) {
        if (tokens[r] < 0 || tokens[r] >= V) {
            vlp_set_error("vlp_vl_kv_step: token %d of row %d is outside the vocabulary of %d", tokens[r], r, V);
            return VLP_ERR_ARG;
        }
        const float *we = vlp_f(t->word_emb) + (int64_t)tokens[r] * W, *te = vlp_f(t->type_emb),
                    *pe = vlp_f(t->pos_emb) + (int64_t)pos * W;
        for (int i = 0; i < W; i++) x[(int64_t)r * W + i] = we[i] + te[i] + pe[i];
    }
    layernorm(x, x, R, W, t->emb_ln_w, t->emb_ln_b, eps);
    for (int l = 0; l < kv->L; l++) {
        const vlp_bert_layer *y = &t->layers[l];
        /* self-attention over the cache */
        const float *src = x;
        if (bc->pre_ln) {
            layernorm(n, x, R, W, y->ao_ln_w, y->ao_ln_b, eps);
            src = n;
        }
        linear(src, R, W, y->q_w, y->q_b, kv->q);
        linear(src, R, W, y->k_w, y->k_b, kv->kk);
        linear(src, R, W, y->v_w, y->v_b, kv->vv);
        for (int r = 0; r < R; r++) {
            float *Kc = kv->k + (((size_t)l * R + r) * Lm) * W, *Vc = kv->v + (((size_t)l * R + r) * Lm) * W;
            memcpy(Kc + (size_t)pos * W, kv->kk + (size_t)r * W, (size_t)W * sizeof(float));
            memcpy(Vc + (size_t)pos * W, kv->vv + (size_t)r * W, (size_t)W * sizeof(float));
            attend(kv->q + (size_t)r * W, Kc, Vc, pos + 1, W, kv->H, kv->att + (size_t)r * W, kv->p);
        }
        linear(kv->att, R, W, y->ao_w, y->ao_b, h);
        for (int64_t i = 0; i < (int64_t)R * W; i++) x[i] += h[i];
        if (!bc->pre_ln) layernorm(x, x, R, W, y->ao_ln_w, y->ao_ln_b, eps);
        /* cross-attention to the image */
        if (y->xq_w) {
            src = x;
            if (bc->pre_ln) {
                layernorm(n, x, R, W, y->xo_ln_w, y->xo_ln_b, eps);
                src = n;
            }
            linear(src, R, W, y->xq_w, y->xq_b, kv->q);
            for (int r = 0; r < R; r++) {
                size_t off = ((size_t)l * kv->n_img + kv->row_img[r]) * N * W;
                attend(kv->q + (size_t)r * W, kv->xk + off, kv->xv + off, N, W, kv->H, kv->att + (size_t)r * W, kv->p);
            }
            linear(kv->att, R, W, y->xo_w, y->xo_b, h);
            for (int64_t i = 0; i < (int64_t)R * W; i++) x[i] += h[i];
            if (!bc->pre_ln) layernorm(x, x, R, W, y->xo_ln_w, y->xo_ln_b, eps);
        }
        /* MLP */
        src = x;
        if (bc->pre_ln) {
            layernorm(n, x, R, W, y->out_ln_w, y->out_ln_b, eps);
            src = n;
        }
        linear(src, R, W, y->inter_w, y->inter_b, kv->ff);
        activation(kv->ff, (int64_t)R * kv->F, bc->hidden_act);
        linear(kv->ff, R, kv->F, y->out_w, y->out_b, h);
        for (int64_t i = 0; i < (int64_t)R * W; i++) x[i] += h[i];
        if (!bc->pre_ln) layernorm(x, x, R, W, y->out_ln_w, y->out_ln_b, eps);
    }
    kv->len++;
    /* a prefix position whose prediction nobody reads: the vocabulary-wide head is most of a
     * step's cost (30,522 x width per row against a few width^2 for the layers), skip it */
    if (!logits) return VLP_OK;
    if (bc->pre_ln) layernorm(x, x, R, W, t->final_ln_w, t->final_ln_b, eps);
    /* LM head: dense, activation, LayerNorm, tied decoder */
    linear(x, R, W, m->head_w, m->head_b, h);
    activation(h, (int64_t)R * W, m->cfg.act);
    layernorm(h, h, R, W, m->head_ln_w, m->head_ln_b, m->cfg.ln_eps);
    linear(h, R, W, t->word_emb, m->head_bias, logits);
    return VLP_OK;
}

int vlp_vl_kv_reorder(vlp_vl_kv *kv, const int *parent) {
    if (!kv || !parent) {
        vlp_set_error("vlp_vl_kv_reorder: NULL argument");
        return VLP_ERR_ARG;
    }
    int R = kv->rows, W = kv->W, Lm = kv->max_len, len = kv->len;
    for (int r = 0; r < R; r++)
        if (parent[r] < 0 || parent[r] >= R) {
            vlp_set_error("vlp_vl_kv_reorder: parent %d of row %d is out of range", parent[r], r);
            return VLP_ERR_ARG;
        }
    size_t seq = (size_t)Lm * W, used = (size_t)len * W;
    for (int l = 0; l < kv->L; l++)
        for (int which = 0; which < 2; which++) {
            float *base = (which ? kv->v : kv->k) + (size_t)l * R * seq;
            for (int r = 0; r < R; r++) memcpy(kv->tmp + r * seq, base + (size_t)parent[r] * seq, used * sizeof(float));
            for (int r = 0; r < R; r++) memcpy(base + r * seq, kv->tmp + r * seq, used * sizeof(float));
        }
    int *img = (int *)kv->tmp;
    for (int r = 0; r < R; r++) img[r] = kv->row_img[parent[r]];
    memcpy(kv->row_img, img, (size_t)R * sizeof(int));
    return VLP_OK;
}

/* ---- search ---------------------------------------------------------------------------- */

void vlp_vl_gen_defaults(vlp_vl_gen_config *gc) {
    memset(gc, 0, sizeof *gc);
    gc->max_len = 20;
    gc->min_len = 1;
    gc->beam = 1;
    gc->length_penalty = 1.0f;
    gc->top_p = 0.9f;
    gc->temperature = 1.0f;
}

static void log_softmax(float *x, int n) {
    float ls = vlp_logsumexp(x, n);
    for (int i = 0; i < n; i++) x[i] -= ls;
}

typedef struct {
    float p;
    int id;
} prob_id;
static int by_prob_desc(const void *a, const void *b) {
    float x = ((const prob_id *)a)->p, y = ((const prob_id *)b)->p;
    if (x != y) return x < y ? 1 : -1;
    return ((const prob_id *)a)->id - ((const prob_id *)b)->id;
}

/* Inserts x into top[0..*n), kept sorted by by_prob_desc and at most m long. */
static void top_insert(prob_id *top, int *n, int m, prob_id x) {
    if (*n == m && by_prob_desc(&x, &top[m - 1]) >= 0) return; /* not better than the worst kept */
    int k = *n < m ? (*n)++ : m - 1;
    while (k > 0 && by_prob_desc(&x, &top[k - 1]) < 0) {
        top[k] = top[k - 1];
        k--;
    }
    top[k] = x;
}

/* Smallest set of most probable tokens whose mass reaches top_p, then one draw from it. */
static int nucleus(const float *logits, int V, float top_p, float temp, float u, prob_id *buf) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = logits[i] / temp > m ? logits[i] / temp : m;
    double s = 0;
    for (int i = 0; i < V; i++) {
        buf[i].p = expf(logits[i] / temp - m);
        buf[i].id = i;
        s += buf[i].p;
    }
    qsort(buf, (size_t)V, sizeof *buf, by_prob_desc);
    double keep = 0;
    int k = 0;
    while (k < V && (k == 0 || keep < top_p * s)) keep += buf[k++].p;
    double target = (double)u * keep, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += buf[i].p;
        if (target < acc) return buf[i].id;
    }
    return buf[k - 1].id;
}

/* P: prefix positions (bos and any conditioning tokens) that share the cache with the output. */
static int check_gen(const vlp_vl *m, const vlp_vl_gen_config *gc, int P) {
    if (!m || !gc || m->cfg.family != VLP_VL_CAPTION) {
        vlp_set_error("vlp_vl_generate: needs a captioning model and a config");
        return VLP_ERR_ARG;
    }
    if (P < 1 || P >= m->cfg.max_text_len) {
        vlp_set_error("vlp_vl_generate: prefix of %d tokens (1..%d)", P, m->cfg.max_text_len - 1);
        return VLP_ERR_ARG;
    }
    if (gc->max_len < 1 || gc->max_len + P > m->cfg.max_text_len || gc->min_len < 0 || gc->min_len > gc->max_len ||
        gc->beam < 1 || (gc->sample && (!(gc->top_p > 0 && gc->top_p <= 1) || !(gc->temperature > 0)))) {
        vlp_set_error("vlp_vl_generate: max_len %d (1..%d), min_len %d (0..max_len), beam %d (>= 1), top_p %g "
                      "(0, 1], temperature %g (> 0)",
                      gc->max_len, m->cfg.max_text_len - P, gc->min_len, gc->beam, (double)gc->top_p,
                      (double)gc->temperature);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* Steps every row through its image's prefix (prefix NULL: bos alone); logits then hold the
 * distribution of the first generated token. Row r belongs to image r / K. */
static int feed_prefix(vlp_vl_kv *kv, const vlp_vl *m, const int32_t *prefix, int P, int R, int K, int32_t *tok,
                       float *logits) {
    for (int p = 0; p < P; p++) {
        for (int r = 0; r < R; r++) tok[r] = prefix ? prefix[(int64_t)(r / K) * P + p] : m->cfg.bos_id;
        int rc = vlp_vl_kv_step(kv, tok, p + 1 < P ? NULL : logits);
        if (rc) return rc;
    }
    return VLP_OK;
}

/* Greedy or nucleus sampling: one row per image. */
static int generate_simple(const vlp_vl *m, const float *img, int n, const int32_t *prefix, int P,
                           const vlp_vl_gen_config *gc, int32_t *out, int *lens, float *logp) {
    const vlp_vl_config *c = &m->cfg;
    int V = c->vocab_size, T = gc->max_len, rc = VLP_OK;
    vlp_vl_kv *kv = vlp_vl_kv_new(m, n, P + T);
    float *logits = malloc((size_t)n * V * sizeof(float));
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    uint8_t *done = calloc((size_t)n, 1);
    prob_id *buf = gc->sample ? malloc((size_t)V * sizeof *buf) : NULL;
    if (!kv || !logits || !tok || !done || (gc->sample && !buf)) {
        if (kv) vlp_set_error("out of memory");
        rc = VLP_ERR_NOMEM;
        goto out;
    }
    for (int r = 0; r < n; r++) {
        lens[r] = 0;
        if (logp) logp[r] = 0;
        for (int t = 0; t < T; t++) out[(int64_t)r * T + t] = c->pad_id;
    }
    if ((rc = vlp_vl_kv_set_images(kv, img, n, NULL)) || (rc = feed_prefix(kv, m, prefix, P, n, 1, tok, logits)))
        goto out;
    for (int t = 0; t < T; t++) {
        int live = 0;
        for (int r = 0; r < n; r++) {
            if (done[r]) {
                tok[r] = c->pad_id;
                continue;
            }
            float *lg = logits + (int64_t)r * V;
            if (t < gc->min_len) lg[c->eos_id] = -INFINITY;
            int best = 0;
            if (gc->sample) {
                uint64_t key = vlp_mix64(gc->seed ^ vlp_mix64((uint64_t)r * 0x10001ull + 7));
                best = nucleus(lg, V, gc->top_p, gc->temperature, vlp_u01(key, (uint64_t)t), buf);
            } else {
                for (int i = 1; i < V; i++)
                    if (lg[i] > lg[best]) best = i;
            }
            if (logp) logp[r] += lg[best] - vlp_logsumexp(lg, V);
            out[(int64_t)r * T + t] = best;
            lens[r] = t + 1;
            tok[r] = best;
            if (best == c->eos_id) done[r] = 1;
            else live++;
        }
        if (!live || t + 1 == T) break;
        if ((rc = vlp_vl_kv_step(kv, tok, logits))) goto out;
    }
out:
    vlp_vl_kv_free(kv);
    free(logits);
    free(tok);
    free(done);
    free(buf);
    return rc;
}

typedef struct {
    float score; /* normalised */
    float raw;   /* sum log p */
    int len;
    int32_t *seq;
} hyp;

static int beam_search(const vlp_vl *m, const float *img, int n, const int32_t *prefix, int P,
                       const vlp_vl_gen_config *gc, int32_t *out, int *lens, float *logp) {
    const vlp_vl_config *c = &m->cfg;
    int V = c->vocab_size, T = gc->max_len, K = gc->beam, R = n * K, rc = VLP_OK;
    vlp_vl_kv *kv = vlp_vl_kv_new(m, R, P + T);
    float *logits = malloc((size_t)R * V * sizeof(float)), *score = malloc((size_t)R * sizeof(float)),
          *nscore = malloc((size_t)R * sizeof(float));
    int32_t *tok = malloc((size_t)R * sizeof(int32_t)), *seq = malloc((size_t)R * T * sizeof(int32_t)),
            *nseq = malloc((size_t)R * T * sizeof(int32_t)), *fseq = malloc((size_t)n * K * T * sizeof(int32_t));
    int *parent = malloc((size_t)R * sizeof(int)), *row_img = malloc((size_t)R * sizeof(int)),
        *nfin = calloc((size_t)n, sizeof(int));
    hyp *fin = calloc((size_t)n * K, sizeof *fin);
    prob_id *cand = malloc((size_t)2 * K * sizeof *cand); /* the best 2K continuations */
    if (!kv || !logits || !score || !nscore || !tok || !seq || !nseq || !fseq || !parent || !row_img || !nfin ||
        !fin || !cand) {
        if (kv) vlp_set_error("out of memory");
        rc = VLP_ERR_NOMEM;
        goto out;
    }
    for (int r = 0; r < R; r++) {
        row_img[r] = r / K;
        score[r] = r % K ? -INFINITY : 0.0f; /* one live beam at the start: no duplicates */
    }
    for (int i = 0; i < n * K; i++) fin[i].seq = fseq + (int64_t)i * T;
    if ((rc = vlp_vl_kv_set_images(kv, img, n, row_img)) || (rc = feed_prefix(kv, m, prefix, P, R, K, tok, logits)))
        goto out;
    for (int t = 0; t < T; t++) {
        int any_live = 0;
        for (int i = 0; i < n; i++) {
            if (nfin[i] >= K) { /* done: keep rows stable */
                for (int b = 0; b < K; b++) {
                    int r = i * K + b;
                    parent[r] = r;
                    nscore[r] = -INFINITY;
                    tok[r] = c->pad_id;
                    memcpy(nseq + (int64_t)r * T, seq + (int64_t)r * T, (size_t)T * sizeof(int32_t));
                }
                continue;
            }
            /* only the best 2K of the K x V continuations are ever used: keep those (in
             * by_prob_desc order, a total order, so exactly what sorting all would give)
             * instead of sorting ~K x 30k candidates per image and step */
            int nc = 0;
            for (int b = 0; b < K; b++) {
                int r = i * K + b;
                if (score[r] == -INFINITY) continue;
                float *lg = logits + (int64_t)r * V;
                if (t < gc->min_len) lg[c->eos_id] = -INFINITY;
                log_softmax(lg, V);
                for (int v = 0; v < V; v++) top_insert(cand, &nc, 2 * K, (prob_id){score[r] + lg[v], b * V + v});
            }
            int nb = 0;
            for (int k = 0; k < nc && nb < K && k < 2 * K; k++) {
                int b = cand[k].id / V, v = cand[k].id % V, r = i * K + b;
                if (cand[k].p == -INFINITY) break;
                if (v == c->eos_id) {
                    if (k >= K || nfin[i] >= K) continue; /* eos counts only among the top K */
                    hyp *h = &fin[(int64_t)i * K + nfin[i]++];
                    h->len = t + 1;
                    memcpy(h->seq, seq + (int64_t)r * T, (size_t)t * sizeof(int32_t));
                    h->seq[t] = v;
                    h->raw = cand[k].p;
                    h->score = cand[k].p / powf((float)h->len, gc->length_penalty);
                    continue;
                }
                int nr = i * K + nb++;
                parent[nr] = r;
                nscore[nr] = cand[k].p;
                tok[nr] = v;
                memcpy(nseq + (int64_t)nr * T, seq + (int64_t)r * T, (size_t)t * sizeof(int32_t));
                nseq[(int64_t)nr * T + t] = v;
            }
            for (; nb < K; nb++) { /* fewer live candidates than beams */
                int nr = i * K + nb;
                parent[nr] = i * K;
                nscore[nr] = -INFINITY;
                tok[nr] = c->pad_id;
            }
            if (nfin[i] < K) any_live = 1;
        }
        memcpy(score, nscore, (size_t)R * sizeof(float));
        memcpy(seq, nseq, (size_t)R * T * sizeof(int32_t));
        if (!any_live || t + 1 == T) break;
        if ((rc = vlp_vl_kv_reorder(kv, parent)) || (rc = vlp_vl_kv_step(kv, tok, logits))) goto out;
    }
    for (int i = 0; i < n; i++) {
        /* unfinished beams at max_len compete with the finished ones */
        int best_f = -1, best_b = -1;
        float bs = -INFINITY;
        for (int k = 0; k < nfin[i]; k++)
            if (best_f < 0 || fin[(int64_t)i * K + k].score > bs) bs = fin[(int64_t)i * K + k].score, best_f = k;
        if (nfin[i] < K)
            for (int b = 0; b < K; b++) {
                int r = i * K + b;
                if (score[r] == -INFINITY) continue;
                float s = score[r] / powf((float)T, gc->length_penalty);
                if (s > bs) bs = s, best_b = r, best_f = -1;
            }
        int32_t *o = out + (int64_t)i * T;
        for (int t = 0; t < T; t++) o[t] = c->pad_id;
        if (logp) logp[i] = -INFINITY;
        if (best_b >= 0) {
            memcpy(o, seq + (int64_t)best_b * T, (size_t)T * sizeof(int32_t));
            lens[i] = T;
            if (logp) logp[i] = score[best_b];
        } else if (best_f >= 0) {
            hyp *h = &fin[(int64_t)i * K + best_f];
            memcpy(o, h->seq, (size_t)h->len * sizeof(int32_t));
            lens[i] = h->len;
            if (logp) logp[i] = h->raw;
        } else {
            lens[i] = 0;
        }
    }
out:
    vlp_vl_kv_free(kv);
    free(logits);
    free(score);
    free(nscore);
    free(tok);
    free(seq);
    free(nseq);
    free(fseq);
    free(parent);
    free(row_img);
    free(nfin);
    free(fin);
    free(cand);
    return rc;
}

int vlp_vl_generate_prefix(const vlp_vl *m, const float *img, int n_img, const int32_t *prefix, int P,
                           const vlp_vl_gen_config *gc, int32_t *out, int *lens, float *logp) {
    int rc = check_gen(m, gc, P);
    if (rc) return rc;
    if (!img || n_img <= 0 || !out || !lens || (!prefix && P != 1)) {
        vlp_set_error("vlp_vl_generate: bad arguments");
        return VLP_ERR_ARG;
    }
    if (gc->sample || gc->beam == 1) return generate_simple(m, img, n_img, prefix, P, gc, out, lens, logp);
    return beam_search(m, img, n_img, prefix, P, gc, out, lens, logp);
}

int vlp_vl_generate(const vlp_vl *m, const float *img, int n_img, const vlp_vl_gen_config *gc, int32_t *out,
                    int *lens) {
    return vlp_vl_generate_prefix(m, img, n_img, NULL, 1, gc, out, lens, NULL);
}

int vlp_vl_beam_search(const vlp_vl *m, const float *img, int n, const vlp_vl_gen_config *gc, int32_t *out,
                       int *lens) {
    int rc = check_gen(m, gc, 1);
    if (rc) return rc;
    if (!img || n <= 0 || !out || !lens) {
        vlp_set_error("vlp_vl_beam_search: bad arguments");
        return VLP_ERR_ARG;
    }
    return beam_search(m, img, n, NULL, 1, gc, out, lens, NULL);
}

int vlp_vl_image_features(const vlp_vl *m, const float *pixels, int n, float *out) {
    if (!m || !pixels || n <= 0 || !out) {
        vlp_set_error("vlp_vl_image_features: bad arguments");
        return VLP_ERR_ARG;
    }
    int S = m->cfg.image_size;
    int64_t s[4] = {n, 3, S, S};
    vlp_graph *g = vlp_graph_new();
    if (!g) return VLP_ERR_NOMEM;
    vlp_tensor *px = vlp_input(g, "pixels", VLP_F32, 4, s);
    vlp_tensor *y = vlp_vl_encode_image(g, m, vlp_vl_embed_image(g, m, px, NULL, NULL));
    int rc = VLP_OK;
    if (!y || vlp_graph_error(g)) {
        vlp_set_error("%s", vlp_graph_error(g) ? vlp_graph_error(g) : "vlp_vl_image_features: cannot build");
        rc = VLP_ERR_ARG;
    } else if (!(rc = vlp_graph_build(g, y, VLP_BUILD_INFERENCE))) {
        memcpy(px->data, pixels, (size_t)px->numel * sizeof(float));
        if (!(rc = vlp_graph_forward(g))) memcpy(out, y->data, (size_t)y->numel * sizeof(float));
    }
    vlp_graph_free(g);
    return rc;
}
