/* Lookups into tables and images: token embedding, patch embedding (conv with
 * stride = kernel), and row gather (e.g. the end-of-text position). */
#include "../core/internal.h"
#include "gemm.h"

#include <omp.h>

/* ---- embedding ---------------------------------------------------------------------- */

vlp_tensor *vlp_embedding(vlp_graph *g, vlp_tensor *ids, vlp_tensor *table) {
    vlp_tensor *srcs[2] = {ids, table};
    if (!vlp_check_srcs(g, "vlp_embedding", 2, srcs)) return NULL;
    char b1[96], b2[96];
    /* an i32 table (no gradient) gathers masks alongside features, e.g. for ITM negatives */
    if (ids->dtype != VLP_I32 || table->ndim != 2 || ids->ndim >= VLP_MAX_DIMS ||
        !vlp_is_contiguous(ids) || !vlp_is_contiguous(table)) {
        vlp_graph_fail(g,
                       "vlp_embedding: want ids i32 [...] (at most %d dims) and table [V, D]; got ids %s, table %s",
                       VLP_MAX_DIMS - 1, vlp_shape_str(ids, b1, sizeof b1), vlp_shape_str(table, b2, sizeof b2));
        return NULL;
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof shape);
    shape[ids->ndim] = table->shape[1];
    return vlp_new_node(g, OP_EMBEDDING, table->dtype, ids->ndim + 1, shape, ids, table, NULL, NULL);
}

static void embedding_forward(vlp_tensor *t, vlp_exec *ex) {
    const int32_t *ids = vlp_i(t->src[0]);
    const float *tab = vlp_f(t->src[1]);
    int64_t n = t->src[0]->numel, V = t->src[1]->shape[0], D = t->src[1]->shape[1];
    float *y = vlp_f(t);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            vlp_exec_fail(ex, VLP_ERR_ARG, "vlp_embedding: id %d at position %lld is outside the table of %lld rows",
                          ids[i], (long long)i, (long long)V);
            return;
        }
    VLP_PARFOR(ex->nthreads, n * D > 32768, (int64_t i = 0; i < n; i++),
               { memcpy(y + i * D, tab + (int64_t)ids[i] * D, (size_t)D * sizeof(float)); });
}

static void embedding_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *tab = t->src[1];
    if (!vlp_needs_grad(tab)) return;
    const int32_t *ids = vlp_i(t->src[0]);
    int64_t n = t->src[0]->numel, D = tab->shape[1];
    const float *dy = t->grad;
    /* Scatter-add split over column blocks: repeated ids never race, and each
     * element is summed in token order whatever the thread count. */
    const int64_t CB = 32;
    int64_t nblk = (D + CB - 1) / CB;
    VLP_PARFOR(ex->nthreads, n * D > 32768, (int64_t blk = 0; blk < nblk; blk++), {
        int64_t c0 = blk * CB, c1 = c0 + CB < D ? c0 + CB : D;
        for (int64_t i = 0; i < n; i++) {
            float *dst = tab->grad + (int64_t)ids[i] * D;
            const float *src = dy + i * D;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    });
}

const vlp_op_info vlp_op_embedding = {"embedding", embedding_forward, embedding_backward, NULL};

/* ---- patch embedding ------------------------------------------------------------------ */
/* im2col into the saved state (patch rows [B*Np, C*P*P], ordered c, py, px as the
 * flattened conv weight), then one GEMM. ip: [0] B, [1] C, [2] H, [3] W, [4] P, [5] D */

vlp_tensor *vlp_patch_embed(vlp_graph *g, vlp_tensor *images, vlp_tensor *w, vlp_tensor *bias) {
    vlp_tensor *srcs[2] = {images, w};
    if (!vlp_check_srcs(g, "vlp_patch_embed", 2, srcs)) return NULL;
    char b1[96], b2[96], b3[96];
    vlp_shape_str(images, b1, sizeof b1);
    vlp_shape_str(w, b2, sizeof b2);
    if (images->dtype || w->dtype || images->ndim != 4 || w->ndim != 4 || !vlp_is_contiguous(images) ||
        !vlp_is_contiguous(w)) {
        vlp_graph_fail(g, "vlp_patch_embed: want images f32 [B, C, H, W] and weight f32 [D, C, P, P]; got %s and %s",
                       b1, b2);
        return NULL;
    }
    int64_t B = images->shape[0], C = images->shape[1], H = images->shape[2], W = images->shape[3];
    int64_t D = w->shape[0], P = w->shape[2];
    if (w->shape[1] != C || w->shape[3] != P) {
        vlp_graph_fail(g, "vlp_patch_embed: weight %s does not fit images %s (want [D, %lld, P, P])", b2, b1,
                       (long long)C);
        return NULL;
    }
    if (H % P || W % P) {
        vlp_graph_fail(g, "vlp_patch_embed: image size %lldx%lld is not a multiple of the patch size %lld",
                       (long long)H, (long long)W, (long long)P);
        return NULL;
    }
    if (bias && (bias->dtype || bias->numel != D)) {
        vlp_graph_fail(g, "vlp_patch_embed: bias %s does not fit %lld channels", vlp_shape_str(bias, b3, sizeof b3),
                       (long long)D);
        return NULL;
    }
    int64_t Np = (H / P) * (W / P);
    int64_t shape[3] = {B, Np, D};
    vlp_tensor *t = vlp_new_node(g, OP_PATCH_EMBED, VLP_F32, 3, shape, images, w, bias, NULL);
    if (!t) return NULL;
    int64_t dims[6] = {B, C, H, W, P, D};
    for (int i = 0; i < 6; i++) t->ip[i] = (int32_t)dims[i];
    t->aux_bytes = (size_t)(B * Np * C * P * P) * sizeof(float);
    return t;
}

static size_t patch_scratch(const vlp_tensor *t, int nthreads) {
    (void)nthreads;
    if (!vlp_needs_grad(t->src[0])) return 0;
    int64_t C = t->ip[1], H = t->ip[2], W = t->ip[3], P = t->ip[4];
    return (size_t)((H / P) * (W / P) * C * P * P) * sizeof(float); /* d(patch rows) of one image */
}

static void patch_embed_forward(vlp_tensor *t, vlp_exec *ex) {
    int64_t B = t->ip[0], C = t->ip[1], H = t->ip[2], W = t->ip[3], P = t->ip[4], D = t->ip[5];
    int64_t gw = W / P, Np = (H / P) * gw, K = C * P * P;
    const float *img = vlp_f(t->src[0]);
    float *cols = t->aux, *y = vlp_f(t);
    VLP_PARFOR(ex->nthreads, 1, (int64_t r = 0; r < B * Np; r++), {
        int64_t b = r / Np, p = r % Np, py = p / gw, px = p % gw;
        float *dst = cols + r * K;
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < P; i++)
                memcpy(dst + (c * P + i) * P, img + ((b * C + c) * H + py * P + i) * W + px * P,
                       (size_t)P * sizeof(float));
    });
    float beta = 0.0f;
    if (t->src[2]) {
        const float *bb = vlp_f(t->src[2]);
        for (int64_t r = 0; r < B * Np; r++) memcpy(y + r * D, bb, (size_t)D * sizeof(float));
        beta = 1.0f;
    }
    vlp_gemm(0, 1, (int)(B * Np), (int)D, (int)K, 1.0f, cols, (int)K, vlp_f(t->src[1]), (int)K, beta, y, (int)D);
}

static void patch_embed_backward(vlp_tensor *t, vlp_exec *ex) {
    int64_t B = t->ip[0], C = t->ip[1], H = t->ip[2], W = t->ip[3], P = t->ip[4], D = t->ip[5];
    int64_t gw = W / P, Np = (H / P) * gw, K = C * P * P;
    vlp_tensor *im = t->src[0], *w = t->src[1], *b = t->src[2];
    const float *dy = t->grad, *cols = t->aux;
    if (vlp_needs_grad(w))
        vlp_gemm(1, 0, (int)D, (int)K, (int)(B * Np), 1.0f, dy, (int)D, cols, (int)K, 1.0f, w->grad, (int)K);
    if (vlp_needs_grad(b)) vlp_colsum_accum(dy, B * Np, D, D, b->grad, ex->nthreads);
    if (!vlp_needs_grad(im)) return;
    VLP_PARFOR(ex->nthreads, 1, (int64_t bi = 0; bi < B; bi++), {
        float *dcols = vlp_scratch(ex, omp_get_thread_num());
        vlp_gemm_st(0, 0, (int)Np, (int)K, (int)D, 1.0f, dy + bi * Np * D, (int)D, vlp_f(w), (int)K, 0.0f, dcols,
                    (int)K);
        for (int64_t p = 0; p < Np; p++) {
            int64_t py = p / gw, px = p % gw;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < P; i++) {
                    float *dst = im->grad + ((bi * C + c) * H + py * P + i) * W + px * P;
                    const float *src = dcols + p * K + (c * P + i) * P;
                    for (int64_t j = 0; j < P; j++) dst[j] += src[j];
                }
        }
    });
}

const vlp_op_info vlp_op_patch_embed = {"patch_embed", patch_embed_forward, patch_embed_backward, patch_scratch};

/* ---- gather rows ---------------------------------------------------------------------- */

vlp_tensor *vlp_gather_rows(vlp_graph *g, vlp_tensor *x, vlp_tensor *idx) {
    vlp_tensor *srcs[2] = {x, idx};
    if (!vlp_check_srcs(g, "vlp_gather_rows", 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (x->dtype || x->ndim != 3 || !vlp_is_contiguous(x) || idx->dtype != VLP_I32 || idx->ndim != 1 ||
        idx->shape[0] != x->shape[0]) {
        vlp_graph_fail(g, "vlp_gather_rows: want x f32 [B, T, D] and idx i32 [B]; got x %s, idx %s",
                       vlp_shape_str(x, b1, sizeof b1), vlp_shape_str(idx, b2, sizeof b2));
        return NULL;
    }
    int64_t shape[2] = {x->shape[0], x->shape[2]};
    return vlp_new_node(g, OP_GATHER_ROWS, VLP_F32, 2, shape, x, idx, NULL, NULL);
}

static void gather_rows_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *x = t->src[0];
    const int32_t *idx = vlp_i(t->src[1]);
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    for (int64_t b = 0; b < B; b++) {
        if (idx[b] < 0 || idx[b] >= T) {
            vlp_exec_fail(ex, VLP_ERR_ARG, "vlp_gather_rows: index %d of sequence %lld is outside 0..%lld", idx[b],
                          (long long)b, (long long)T - 1);
            return;
        }
        memcpy(vlp_f(t) + b * D, vlp_f(x) + (b * T + idx[b]) * D, (size_t)D * sizeof(float));
    }
}

static void gather_rows_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0];
    const int32_t *idx = vlp_i(t->src[1]);
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    for (int64_t b = 0; b < B; b++) {
        float *dst = x->grad + (b * T + idx[b]) * D;
        const float *src = t->grad + b * D;
        for (int64_t c = 0; c < D; c++) dst[c] += src[c];
    }
}

const vlp_op_info vlp_op_gather_rows = {"gather_rows", gather_rows_forward, gather_rows_backward, NULL};
