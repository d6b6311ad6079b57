/* Retrieval with VL models: the ITC shortlist (unimodal features, cosine similarity) and,
 * optionally, ITM re-scoring of each query's top k (ALBEF / BLIP): the fusion encoder sees
 * only k pairs per query, on fusion inputs computed once per image and per text. Models with
 * an ITM head and no ITC heads (ViLT) rank every candidate by ITM: every text x image pair
 * goes through the fusion encoder once (vlp_vl_eval_itm_full). */
#include "vlp_train.h"

#include "core/internal.h"

#include <math.h>

typedef struct {
    const float *s;
    int64_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s[x->i] != y->s[y->i]) return x->s[x->i] > y->s[y->i] ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

typedef struct {
    float s;
    int r; /* first-stage position */
} rescored;

static int cmp_rescored(const void *a, const void *b) {
    const rescored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

int vlp_rerank(const float *itc, int64_t nq, int64_t nc, int k, vlp_rerank_score_fn score, void *ctx,
               int64_t *order) {
    if (!itc || !order || nq < 0 || nc <= 0 || (k > 1 && !score)) {
        vlp_set_error("vlp_rerank: bad arguments");
        return VLP_ERR_ARG;
    }
    if (k > nc) k = (int)nc;
    scored *tmp = malloc((size_t)nc * sizeof *tmp);
    rescored *rs = malloc((size_t)(k > 0 ? k : 1) * sizeof *rs);
    float *out = malloc((size_t)(k > 0 ? k : 1) * sizeof *out);
    int64_t *top = malloc((size_t)(k > 0 ? k : 1) * sizeof *top);
    int rc = tmp && rs && out && top ? VLP_OK : VLP_ERR_NOMEM;
    if (rc) vlp_set_error("vlp_rerank: out of memory");
    for (int64_t q = 0; !rc && q < nq; q++) {
        const float *row = itc + q * nc;
        int64_t *o = order + q * nc;
        for (int64_t c = 0; c < nc; c++) tmp[c] = (scored){row, c};
        qsort(tmp, (size_t)nc, sizeof *tmp, cmp_scored);
        for (int64_t c = 0; c < nc; c++) o[c] = tmp[c].i;
        if (k <= 1) continue;
        memcpy(top, o, (size_t)k * sizeof *top);
        if ((rc = score(ctx, q, top, k, out))) break;
        for (int r = 0; r < k; r++) rs[r] = (rescored){out[r], r};
        qsort(rs, (size_t)k, sizeof *rs, cmp_rescored);
        for (int r = 0; r < k; r++) o[r] = top[rs[r].r];
    }
    free(tmp);
    free(rs);
    free(out);
    free(top);
    return rc;
}

/* ---- over a dataset ------------------------------------------------------------------------ */

typedef struct {
    const vlp_vl *m;
    int IL, IW, T, W;       /* fusion inputs: image [IL, IW], text [T, W] */
    float *img_in, *txt_in; /* [ni, IL, IW], [nt, T, W] */
    int32_t *mask;          /* [nt, T] */
    vlp_graph *g;
    vlp_tensor *gi, *gt, *gm, *out;
    int rows;
    int t2i;    /* queries are texts */
    int logits; /* out: the ITM logits [rows, 2] instead of the probabilities */
} itm_ctx;

static int itm_build(itm_ctx *c, int R) {
    int64_t si[3] = {R, c->IL, c->IW}, st[3] = {R, c->T, c->W}, sm[2] = {R, c->T};
    c->g = vlp_graph_new();
    if (!c->g) return VLP_ERR_NOMEM;
    c->gi = vlp_input(c->g, "img", VLP_F32, 3, si);
    c->gt = vlp_input(c->g, "txt", VLP_F32, 3, st);
    c->gm = vlp_input(c->g, "mask", VLP_I32, 2, sm);
    vlp_tensor *f = vlp_vl_fuse(c->g, c->m, c->gi, c->gt, c->gm, NULL), *lg = vlp_vl_itm_logits(c->g, c->m, f);
    c->out = c->logits ? lg : vlp_softmax(c->g, lg);
    if (!c->out || vlp_graph_error(c->g)) {
        vlp_set_error("ITM scoring: %s", vlp_graph_error(c->g) ? vlp_graph_error(c->g) : "cannot build the graph");
        return VLP_ERR_ARG;
    }
    c->rows = R;
    int rc = vlp_graph_build(c->g, c->out, VLP_BUILD_INFERENCE);
    /* many forwards over the same weights: pack them once (a speed-up only; unpacked on failure) */
    if (!rc) vlp_graph_pack_weights(c->g);
    return rc;
}

/* Row r of the ITM graph gets the pair (image img, text txt). */
static void itm_fill(itm_ctx *c, int r, int64_t img, int64_t txt) {
    size_t isz = (size_t)c->IL * c->IW, tsz = (size_t)c->T * c->W;
    memcpy((float *)c->gi->data + r * isz, c->img_in + img * isz, isz * sizeof(float));
    memcpy((float *)c->gt->data + r * tsz, c->txt_in + txt * tsz, tsz * sizeof(float));
    memcpy((int32_t *)c->gm->data + (size_t)r * c->T, c->mask + txt * c->T, (size_t)c->T * sizeof(int32_t));
}

static int itm_score(void *ctx, int64_t q, const int64_t *cands, int k, float *out) {
    itm_ctx *c = ctx;
    for (int r = 0; r < c->rows; r++) {
        int64_t cand = cands[r < k ? r : 0];
        itm_fill(c, r, c->t2i ? cand : q, c->t2i ? q : cand);
    }
    int rc = vlp_graph_forward(c->g);
    if (rc) return rc;
    for (int r = 0; r < k; r++) out[r] = ((float *)c->out->data)[2 * r + 1];
    return VLP_OK;
}

static const vlp_dataset *sort_ds;
static int cmp_key(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int c = strcmp(vlp_dataset_key(sort_ds, x), vlp_dataset_key(sort_ds, y));
    return c ? c : (x > y) - (x < y);
}

/* Pairs sharing an image key count as one image: the first pair (in key order) holds it. */
typedef struct {
    int64_t n, ni;
    int64_t *txt_img;     /* [n] the image of each text */
    int64_t *first;       /* [ni] the pair holding image i */
    int64_t *img_of_pair; /* [n] the image a pair holds, or -1 */
} pair_groups;

static void pair_groups_free(pair_groups *pg) {
    free(pg->txt_img);
    free(pg->first);
    free(pg->img_of_pair);
}

static int group_pairs(const vlp_dataset *ds, pair_groups *pg) {
    int64_t n = vlp_dataset_size(ds);
    memset(pg, 0, sizeof *pg);
    pg->n = n;
    int64_t *ord = malloc((size_t)n * sizeof *ord);
    pg->txt_img = malloc((size_t)n * sizeof *pg->txt_img);
    pg->first = malloc((size_t)n * sizeof *pg->first);
    pg->img_of_pair = malloc((size_t)n * sizeof *pg->img_of_pair);
    if (!ord || !pg->txt_img || !pg->first || !pg->img_of_pair) {
        free(ord);
        pair_groups_free(pg);
        vlp_set_error("vlp_vl_eval_retrieval: out of memory for %lld pairs", (long long)n);
        return VLP_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) ord[i] = i, pg->img_of_pair[i] = -1;
    sort_ds = ds; /* qsort has no context argument */
    qsort(ord, (size_t)n, sizeof *ord, cmp_key);
    for (int64_t k = 0; k < n; k++) {
        if (k == 0 || strcmp(vlp_dataset_key(ds, ord[k]), vlp_dataset_key(ds, ord[k - 1]))) {
            pg->first[pg->ni] = ord[k];
            pg->img_of_pair[ord[k]] = pg->ni++;
        }
        pg->txt_img[ord[k]] = pg->ni - 1;
    }
    free(ord);
    return VLP_OK;
}

typedef struct {
    const vlp_vl_config *mc;
    const pair_groups *pg;
    vlp_graph *g;
    vlp_tensor *px, *ids, *mask, *oi, *ot, *fin_i, *fin_t;
    int32_t *mbuf;
    float *fi, *ft;
    itm_ctx *ic; /* NULL: no fusion inputs */
    int batch;
} encode_ctx;

/* One loader batch through the encoders; its rows' features into place (rows first, first+1, ...). */
static int encode_batch(void *ctx, const vlp_batch *bt, int64_t first) {
    encode_ctx *c = ctx;
    const vlp_vl_config *mc = c->mc;
    int S = mc->image_size, T = mc->max_text_len, E = mc->embed_dim, rc;
    for (int r = 0; r < c->batch; r++) { /* a short last batch repeats its first row */
        int s = r < bt->n ? r : 0;
        memcpy((float *)c->px->data + (size_t)r * 3 * S * S, bt->pixels + (size_t)s * 3 * S * S,
               (size_t)3 * S * S * sizeof(float));
        for (int k = 0; k < T; k++) {
            int32_t id = bt->tokens[(size_t)s * T + k];
            ((int32_t *)c->ids->data)[(size_t)r * T + k] = id;
            c->mbuf[(size_t)r * T + k] = id != mc->pad_id;
        }
    }
    if (c->mask->data) memcpy(c->mask->data, c->mbuf, (size_t)c->batch * T * sizeof *c->mbuf);
    if ((rc = vlp_graph_forward(c->g))) return rc;
    itm_ctx *ic = c->ic;
    size_t isz = ic ? (size_t)ic->IL * ic->IW : 0, tsz = ic ? (size_t)T * ic->W : 0;
    for (int r = 0; r < bt->n; r++) {
        int64_t p = first + r;
        if (c->fi) {
            memcpy(c->fi + p * E, (float *)c->oi->data + (size_t)r * E, (size_t)E * sizeof(float));
            memcpy(c->ft + p * E, (float *)c->ot->data + (size_t)r * E, (size_t)E * sizeof(float));
        }
        if (ic) {
            if (c->pg->img_of_pair[p] >= 0)
                memcpy(ic->img_in + c->pg->img_of_pair[p] * isz, (float *)c->fin_i->data + r * isz, isz * sizeof(float));
            memcpy(ic->txt_in + p * tsz, (float *)c->fin_t->data + r * tsz, tsz * sizeof(float));
            memcpy(ic->mask + p * T, c->mbuf + (size_t)r * T, (size_t)T * sizeof(int32_t));
        }
    }
    return VLP_OK;
}

/* One pass over the dataset: the L2-normalised ITC features fi / ft [n, E] when fi is not
 * NULL, and the fusion inputs of ic (img_in per image, txt_in and mask per text) when
 * ic->img_in is not NULL. */
static int encode_pairs(const vlp_vl *m, vlp_tokenize_fn tokenize, void *tctx, const vlp_dataset *ds, int batch,
                        const pair_groups *pg, float *fi, float *ft, itm_ctx *ic) {
    const vlp_vl_config *mc = &m->cfg;
    int S = mc->image_size, T = mc->max_text_len, emb = vlp_vl_fuses_embeddings(m);
    int fuse = ic && ic->img_in;
    int64_t n = pg->n;
    vlp_tensor *px = NULL, *ids = NULL, *mask = NULL, *oi = NULL, *ot = NULL, *fin_i = NULL, *fin_t = NULL,
               *out = NULL;
    vlp_loader *ld = NULL;
    int64_t sp[4] = {batch, 3, S, S}, st[2] = {batch, T};
    vlp_graph *g = vlp_graph_new();
    int rc = g ? VLP_OK : VLP_ERR_NOMEM;
    if (!rc) {
        px = vlp_input(g, "pixels", VLP_F32, 4, sp);
        ids = vlp_input(g, "ids", VLP_I32, 2, st);
        mask = vlp_input(g, "mask", VLP_I32, 2, st);
        vlp_tensor *ie = vlp_vl_embed_image(g, m, px, NULL, NULL), *te = vlp_vl_embed_text(g, m, ids);
        vlp_tensor *ienc = vlp_vl_encode_image(g, m, ie), *tenc = vlp_vl_encode_text(g, m, te, mask), *a = NULL,
                   *b = NULL;
        if (fuse) {
            fin_i = vlp_keep(emb ? ie : ienc);
            fin_t = vlp_keep(emb ? te : tenc);
            out = fin_t;
        }
        if (fi && vlp_vl_itc_features(g, m, ienc, tenc, &a, &b) == VLP_OK) {
            oi = vlp_keep(vlp_l2norm(g, a, 1e-12f));
            out = ot = vlp_l2norm(g, b, 1e-12f);
        }
        if (!out || vlp_graph_error(g)) {
            vlp_set_error("vlp_vl_eval_retrieval: %s", vlp_graph_error(g) ? vlp_graph_error(g) : "cannot build the graph");
            rc = VLP_ERR_ARG;
        } else rc = vlp_graph_build(g, out, VLP_BUILD_INFERENCE);
    }
    if (!rc) {
        vlp_loader_options lo = {.batch_size = batch, .image_size = S, .context_length = T, .shuffle = 0,
                                 .drop_last = 0, .tokenize = tokenize, .tokenize_ctx = tctx};
        if (!(ld = vlp_loader_new(ds, &lo))) rc = VLP_ERR_IO;
    }
    /* the attention mask, also kept here: a graph that never reads it (single-stream text
     * embeddings) leaves its input unallocated */
    int32_t *mbuf = malloc((size_t)batch * T * sizeof *mbuf);
    if (!rc && !mbuf) rc = VLP_ERR_NOMEM;
    encode_ctx ec = {mc, pg, g, px, ids, mask, oi, ot, fin_i, fin_t, mbuf, fi, ft, fuse ? ic : NULL, batch};
    if (!rc) rc = vlp_loader_each_in_order(ld, n, "vlp_vl_eval_retrieval", encode_batch, &ec);
    free(mbuf);
    vlp_loader_free(ld);
    vlp_graph_free(g);
    return rc;
}

/* The fusion-input shapes of m and their buffers for ni images and nt texts. */
static int itm_alloc(const vlp_vl *m, int64_t ni, int64_t nt, itm_ctx *ic) {
    const vlp_vl_config *mc = &m->cfg;
    int N = (mc->image_size / mc->patch_size) * (mc->image_size / mc->patch_size);
    ic->m = m;
    ic->IL = N + 1;
    ic->IW = mc->family == VLP_VL_DUAL || mc->family == VLP_VL_CAPTION ? mc->vision_width : mc->width;
    ic->T = mc->max_text_len;
    ic->W = mc->width;
    ic->img_in = malloc((size_t)ni * ic->IL * ic->IW * sizeof(float));
    ic->txt_in = malloc((size_t)nt * ic->T * ic->W * sizeof(float));
    ic->mask = malloc((size_t)nt * ic->T * sizeof(int32_t));
    return ic->img_in && ic->txt_in && ic->mask ? VLP_OK : VLP_ERR_NOMEM;
}

static void itm_free(itm_ctx *ic) {
    vlp_graph_free(ic->g);
    free(ic->img_in);
    free(ic->txt_in);
    free(ic->mask);
}

/* Rank scores (nc - position) of an order: a similarity matrix the metrics can read. */
static void order_scores(const int64_t *order, int64_t nq, int64_t nc, int t2i, float *sim) {
    for (int64_t q = 0; q < nq; q++)
        for (int64_t r = 0; r < nc; r++) {
            int64_t c = order[q * nc + r];
            float s = (float)(nc - r);
            if (t2i) sim[c * nq + q] = s; /* sim [ni, nt]: q is a text, c an image */
            else sim[q * nc + c] = s;
        }
}

int vlp_vl_eval_retrieval(const vlp_vl *m, vlp_tokenize_fn tokenize, void *tctx, const vlp_dataset *ds, int batch,
                          int rerank, vlp_retrieval_result *itc_out, vlp_retrieval_result *rr_out) {
    if (!m || !tokenize || !ds || !itc_out) {
        vlp_set_error("vlp_vl_eval_retrieval: NULL argument");
        return VLP_ERR_ARG;
    }
    const vlp_vl_config *mc = &m->cfg;
    if (mc->embed_dim <= 0 || !m->vis_proj) {
        if (m->itm_w && mc->family != VLP_VL_CAPTION)
            vlp_set_error("vlp_vl_eval_retrieval: the %s model has no ITC heads (embed_dim 0): rank every pair by "
                          "ITM instead (vlp_vl_eval_itm_full)", vlp_vl_family_name(mc->family));
        else
            vlp_set_error("vlp_vl_eval_retrieval: the %s model has no ITC heads (embed_dim 0): retrieval needs them",
                          vlp_vl_family_name(mc->family));
        return VLP_ERR_ARG;
    }
    int do_rr = rerank > 1 && rr_out;
    if (do_rr && (!m->itm_w || mc->family == VLP_VL_CAPTION)) {
        vlp_set_error("vlp_vl_eval_retrieval: --rerank needs an ITM head; this %s model has none",
                      vlp_vl_family_name(mc->family));
        return VLP_ERR_ARG;
    }
    int64_t n = vlp_dataset_size(ds);
    if (n <= 0) {
        vlp_set_error("vlp_vl_eval_retrieval: the dataset is empty");
        return VLP_ERR_ARG;
    }
    if (batch <= 0) batch = 64;
    if (batch > n) batch = (int)n;
    int E = mc->embed_dim;
    pair_groups pg;
    int rc = group_pairs(ds, &pg);
    if (rc) return rc;
    int64_t ni = pg.ni;
    itm_ctx ic = {0};
    float *fi = malloc((size_t)n * E * sizeof(float)), *ft = malloc((size_t)n * E * sizeof(float));
    float *sim = NULL, *simT = NULL, *sim2 = NULL;
    int64_t *order = NULL;
    if (!fi || !ft || (do_rr && itm_alloc(m, ni, n, &ic))) rc = VLP_ERR_NOMEM;
    if (!rc) rc = encode_pairs(m, tokenize, tctx, ds, batch, &pg, fi, ft, do_rr ? &ic : NULL);
    if (!rc && !(sim = malloc((size_t)ni * (size_t)n * sizeof *sim))) rc = VLP_ERR_NOMEM;
    if (!rc) {
        const int64_t *first = pg.first;
        VLP_PARFOR(vlp_get_threads(), ni * n > 4096, (int64_t i = 0; i < ni; i++), {
            const float *x = fi + first[i] * E;
            for (int64_t j = 0; j < n; j++) {
                const float *y = ft + j * E;
                float d = 0;
                for (int e = 0; e < E; e++) d += x[e] * y[e];
                sim[i * n + j] = d;
            }
        });
        rc = vlp_retrieval_metrics(sim, ni, n, pg.txt_img, itc_out);
    }
    if (!rc && do_rr) {
        simT = malloc((size_t)ni * (size_t)n * sizeof *simT);
        sim2 = malloc((size_t)ni * (size_t)n * sizeof *sim2);
        order = malloc((size_t)ni * (size_t)n * sizeof *order);
        if (!simT || !sim2 || !order) rc = VLP_ERR_NOMEM;
        int K = rerank > ni ? (int)ni : rerank;
        if (!rc) rc = itm_build(&ic, K > 1 ? K : 1);
        vlp_retrieval_result a, b;
        if (!rc) { /* text -> image: queries are texts */
            for (int64_t i = 0; i < ni; i++)
                for (int64_t j = 0; j < n; j++) simT[j * ni + i] = sim[i * n + j];
            ic.t2i = 1;
            rc = vlp_rerank(simT, n, ni, K, itm_score, &ic, order);
            if (!rc) order_scores(order, n, ni, 1, sim2);
            if (!rc) rc = vlp_retrieval_metrics(sim2, ni, n, pg.txt_img, &a);
        }
        vlp_graph_free(ic.g);
        ic.g = NULL;
        int K2 = rerank > n ? (int)n : rerank;
        if (!rc) rc = itm_build(&ic, K2);
        if (!rc) { /* image -> text */
            ic.t2i = 0;
            rc = vlp_rerank(sim, ni, n, K2, itm_score, &ic, order);
            if (!rc) order_scores(order, ni, n, 0, sim2);
            if (!rc) rc = vlp_retrieval_metrics(sim2, ni, n, pg.txt_img, &b);
        }
        if (!rc) {
            rr_out->t2i = a.t2i;
            rr_out->i2t = b.i2t;
        }
    }
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_vl_eval_retrieval: out of memory");
    itm_free(&ic);
    free(sim);
    free(simT);
    free(sim2);
    free(order);
    free(fi);
    free(ft);
    pair_groups_free(&pg);
    return rc;
}

/* ---- ITM over every pair (ViLT) ------------------------------------------------------------- */

int64_t vlp_vl_itm_full_pairs(const vlp_dataset *ds, int64_t *n_images) {
    if (!ds) return -1;
    pair_groups pg;
    if (group_pairs(ds, &pg)) return -1;
    int64_t ni = pg.ni, n = pg.n;
    pair_groups_free(&pg);
    if (n_images) *n_images = ni;
    return ni * n;
}

int vlp_vl_eval_itm_full(const vlp_vl *m, vlp_tokenize_fn tokenize, void *tctx, const vlp_dataset *ds,
                         const vlp_vl_itm_full_options *opt, vlp_retrieval_result *out, float **scores) {
    if (scores) *scores = NULL;
    if (!m || !tokenize || !ds || !out) {
        vlp_set_error("vlp_vl_eval_itm_full: NULL argument");
        return VLP_ERR_ARG;
    }
    const vlp_vl_config *mc = &m->cfg;
    if (!m->itm_w || mc->family == VLP_VL_CAPTION) {
        vlp_set_error("vlp_vl_eval_itm_full: needs an ITM head; this %s model has none",
                      vlp_vl_family_name(mc->family));
        return VLP_ERR_ARG;
    }
    int64_t n = vlp_dataset_size(ds);
    if (n <= 0) {
        vlp_set_error("vlp_vl_eval_itm_full: the dataset is empty");
        return VLP_ERR_ARG;
    }
    vlp_vl_itm_full_options o = {0};
    if (opt) o = *opt;
    int batch = o.batch > 0 ? o.batch : 64, ebatch = batch > n ? (int)n : batch;
    pair_groups pg;
    int rc = group_pairs(ds, &pg);
    if (rc) return rc;
    int64_t ni = pg.ni, total = ni * n;
    if (o.max_pairs > 0 && total > o.max_pairs) {
        vlp_set_error("vlp_vl_eval_itm_full: %lld texts x %lld images = %lld ITM passes (one fusion forward per "
                      "pair) is above the limit of %lld",
                      (long long)n, (long long)ni, (long long)total, (long long)o.max_pairs);
        pair_groups_free(&pg);
        return VLP_ERR_ARG;
    }
    itm_ctx ic = {.logits = 1};
    float *sim = malloc((size_t)total * sizeof *sim);
    if (!sim || itm_alloc(m, ni, n, &ic)) rc = VLP_ERR_NOMEM;
    if (!rc) rc = encode_pairs(m, tokenize, tctx, ds, ebatch, &pg, NULL, NULL, &ic);
    int R = total < batch ? (int)total : batch;
    if (!rc) rc = itm_build(&ic, R);
    if (!rc && o.on_progress) o.on_progress(o.progress_ctx, 0, total);
    /* pair p = i * n + j (image i, text j); R pairs per forward. The score is the ITM logit
     * margin log(p / (1 - p)): the order of the match probability p, without p rounding to
     * 1.0f (and tying) for confident pairs. */
    for (int64_t p0 = 0; !rc && p0 < total; p0 += R) {
        int rows = total - p0 < R ? (int)(total - p0) : R;
        for (int r = 0; r < R; r++) {
            int64_t p = p0 + (r < rows ? r : 0); /* a short last pass repeats its first pair */
            itm_fill(&ic, r, p / n, p % n);
        }
        if ((rc = vlp_graph_forward(ic.g))) break;
        const float *lg = ic.out->data;
        for (int r = 0; r < rows; r++) sim[p0 + r] = lg[2 * r + 1] - lg[2 * r];
        if (o.on_progress) o.on_progress(o.progress_ctx, p0 + rows, total);
    }
    if (!rc) rc = vlp_retrieval_metrics(sim, ni, n, pg.txt_img, out);
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_vl_eval_itm_full: out of memory for %lld texts x %lld images",
                                           (long long)n, (long long)ni);
    if (!rc && scores) {
        *scores = sim;
        sim = NULL;
    }
    itm_free(&ic);
    free(sim);
    pair_groups_free(&pg);
    return rc;
}
