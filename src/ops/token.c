/* Sequence helpers for encoders: prepend a learned token to every sequence (the
 * ViT class token) and find each sequence's pooling position (CLIP pools text at
 * the first end-of-text token, which has the largest BPE id: argmax; a text tower fed
 * by WordPiece pools at the first [SEP], whose id is not the largest: find_first). */
#include "../core/internal.h"

/* ---- prepend token: x [B, N, D], tok [D] -> [B, N + 1, D] ---------------------------- */

vlp_tensor *vlp_prepend_token(vlp_graph *g, vlp_tensor *x, vlp_tensor *tok) {
    vlp_tensor *srcs[2] = {x, tok};
    if (!vlp_check_srcs(g, "vlp_prepend_token", 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (x->dtype || tok->dtype || x->ndim != 3 || tok->numel != x->shape[2] || !vlp_is_contiguous(x) ||
        !vlp_is_contiguous(tok)) {
        vlp_graph_fail(g, "vlp_prepend_token: want x f32 [B, N, D] and token [D]; got %s and %s",
                       vlp_shape_str(x, b1, sizeof b1), vlp_shape_str(tok, b2, sizeof b2));
        return NULL;
    }
    int64_t shape[3] = {x->shape[0], x->shape[1] + 1, x->shape[2]};
    return vlp_new_node(g, OP_PREPEND_TOKEN, VLP_F32, 3, shape, x, tok, NULL, NULL);
}

static void prepend_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    int64_t B = t->shape[0], N = t->shape[1] - 1, D = t->shape[2];
    const float *x = vlp_f(t->src[0]), *tok = vlp_f(t->src[1]);
    for (int64_t b = 0; b < B; b++) {
        float *dst = vlp_f(t) + b * (N + 1) * D;
        memcpy(dst, tok, (size_t)D * sizeof(float));
        memcpy(dst + D, x + b * N * D, (size_t)(N * D) * sizeof(float));
    }
}

static void prepend_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0], *tok = t->src[1];
    int64_t B = t->shape[0], N = t->shape[1] - 1, D = t->shape[2];
    for (int64_t b = 0; b < B; b++) {
        const float *src = t->grad + b * (N + 1) * D;
        if (vlp_needs_grad(tok))
            for (int64_t i = 0; i < D; i++) tok->grad[i] += src[i];
        if (vlp_needs_grad(x))
            for (int64_t i = 0; i < N * D; i++) x->grad[b * N * D + i] += src[D + i];
    }
}

const vlp_op_info vlp_op_prepend_token = {"prepend_token", prepend_forward, prepend_backward, NULL};

/* ---- argmax over the last dim of i32 ids: [B, T] -> i32 [B] (first maximum) ---------- */

vlp_tensor *vlp_argmax(vlp_graph *g, vlp_tensor *ids) {
    if (!vlp_check_srcs(g, "vlp_argmax", 1, &ids)) return NULL;
    char b1[96];
    if (ids->dtype != VLP_I32 || ids->ndim != 2 || !vlp_is_contiguous(ids)) {
        vlp_graph_fail(g, "vlp_argmax: want i32 [B, T]; got %s", vlp_shape_str(ids, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[1] = {ids->shape[0]};
    return vlp_new_node(g, OP_ARGMAX, VLP_I32, 1, shape, ids, NULL, NULL, NULL);
}

static void argmax_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0];
    int64_t B = x->shape[0], T = x->shape[1];
    for (int64_t b = 0; b < B; b++) {
        const int32_t *r = vlp_i(x) + b * T;
        int32_t best = 0;
        for (int64_t j = 1; j < T; j++)
            if (r[j] > r[best]) best = (int32_t)j;
        vlp_i(t)[b] = best;
    }
}

const vlp_op_info vlp_op_argmax = {"argmax", argmax_forward, NULL, NULL};

/* ---- first position of a token: i32 [B, T] -> i32 [B] ---------------------------------- */

vlp_tensor *vlp_find_first(vlp_graph *g, vlp_tensor *ids, int32_t value) {
    if (!vlp_check_srcs(g, "vlp_find_first", 1, &ids)) return NULL;
    char b1[96];
    if (ids->dtype != VLP_I32 || ids->ndim != 2 || !vlp_is_contiguous(ids)) {
        vlp_graph_fail(g, "vlp_find_first: want i32 [B, T]; got %s", vlp_shape_str(ids, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[1] = {ids->shape[0]};
    vlp_tensor *t = vlp_new_node(g, OP_FIND_FIRST, VLP_I32, 1, shape, ids, NULL, NULL, NULL);
    if (t) t->ip[0] = value;
    return t;
}

static void find_first_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0];
    int64_t B = x->shape[0], T = x->shape[1];
    for (int64_t b = 0; b < B; b++) {
        const int32_t *r = vlp_i(x) + b * T;
        int64_t j = 0;
        while (j < T && r[j] != t->ip[0]) j++;
        vlp_i(t)[b] = (int32_t)(j < T ? j : T - 1); /* absent (a tokenizer always ends with it): the last */
    }
}

const vlp_op_info vlp_op_find_first = {"find_first", find_first_forward, NULL, NULL};
