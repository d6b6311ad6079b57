/* matmul (batched, transposes) and linear (x @ w^T + b). GEMM does the work. */
#include "../core/internal.h"
#include "gemm.h"

/* ---- linear ------------------------------------------------------------------------ */

vlp_tensor *vlp_linear(vlp_graph *g, vlp_tensor *x, vlp_tensor *w, vlp_tensor *bias) {
    vlp_tensor *srcs[2] = {x, w};
    if (!vlp_check_srcs(g, "vlp_linear", 2, srcs)) return NULL;
    char b1[96], b2[96], b3[96];
    if (x->dtype != VLP_F32 || w->dtype != VLP_F32 || (bias && bias->dtype != VLP_F32)) {
        vlp_graph_fail(g, "vlp_linear: x %s, w %s and bias must be f32", vlp_shape_str(x, b1, sizeof b1),
                       vlp_shape_str(w, b2, sizeof b2));
        return NULL;
    }
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1]) {
        vlp_graph_fail(g, "vlp_linear: x %s does not fit weight %s (want x [..., %lld], w [out, in])",
                       vlp_shape_str(x, b1, sizeof b1), vlp_shape_str(w, b2, sizeof b2),
                       (long long)(w->ndim == 2 ? w->shape[1] : -1));
        return NULL;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        vlp_graph_fail(g, "vlp_linear: bias %s does not fit weight %s (want [%lld])",
                       vlp_shape_str(bias, b3, sizeof b3), vlp_shape_str(w, b2, sizeof b2), (long long)w->shape[0]);
        return NULL;
    }
    if (!vlp_rows_uniform(x) || !vlp_is_contiguous(w)) {
        vlp_graph_fail(g, "vlp_linear: x %s must have uniformly strided rows and w must be contiguous",
                       vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    return vlp_new_node(g, OP_LINEAR, VLP_F32, x->ndim, shape, x, w, bias, NULL);
}

static void linear_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2], *res = t->src[3];
    int64_t M = vlp_rows(x), K = vlp_cols(x), N = w->shape[0];
    const vlp_gemm_packed *pk = ex->g->packed ? ex->g->packed[t->id] : NULL;
    /* the bias enters in the GEMM's store of the first K block (no separate pass over y) */
    if (res || t->ip[VLP_LINEAR_IP_ACT] || pk)
        vlp_gemm_fused(0, 1, (int)M, (int)N, (int)K, 1.0f, vlp_f(x), (int)vlp_ld(x), vlp_f(w), (int)K, pk,
                       b ? vlp_f(b) : NULL, res ? vlp_f(res) : NULL, (int)N, t->ip[VLP_LINEAR_IP_ACT], vlp_f(t),
                       (int)N);
    else
        vlp_gemm_bias(0, 1, (int)M, (int)N, (int)K, 1.0f, vlp_f(x), (int)vlp_ld(x), vlp_f(w), (int)K,
                      b ? vlp_f(b) : NULL, vlp_f(t), (int)N);
}

static void linear_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2];
    int64_t M = vlp_rows(x), K = vlp_cols(x), N = w->shape[0];
    const float *dy = t->grad;
    if (vlp_needs_grad(x)) /* dx += dy @ w */
        vlp_gemm(0, 0, (int)M, (int)K, (int)N, 1.0f, dy, (int)N, vlp_f(w), (int)K, 1.0f, x->grad, (int)vlp_ld(x));
    if (vlp_needs_grad(w)) /* dw += dy^T @ x */
        vlp_gemm(1, 0, (int)N, (int)K, (int)M, 1.0f, dy, (int)N, vlp_f(x), (int)vlp_ld(x), 1.0f, w->grad, (int)K);
    if (vlp_needs_grad(b)) vlp_colsum_accum(dy, M, N, N, b->grad, ex->nthreads);
}

const vlp_op_info vlp_op_linear = {"linear", linear_forward, linear_backward, NULL};

/* ---- matmul ------------------------------------------------------------------------ */
/* ip: [0] ta, [1] tb, [2] batch, [3] M, [4] N, [5] K, [6] b shared across batch */

vlp_tensor *vlp_matmul(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, int ta, int tb) {
    vlp_tensor *srcs[2] = {a, b};
    if (!vlp_check_srcs(g, "vlp_matmul", 2, srcs)) return NULL;
    char b1[96], b2[96];
    vlp_shape_str(a, b1, sizeof b1);
    vlp_shape_str(b, b2, sizeof b2);
    if (a->dtype != VLP_F32 || b->dtype != VLP_F32) {
        vlp_graph_fail(g, "vlp_matmul: a %s and b %s must be f32", b1, b2);
        return NULL;
    }
    if (a->ndim < 2 || b->ndim < 2) {
        vlp_graph_fail(g, "vlp_matmul: a %s and b %s need at least 2 dims", b1, b2);
        return NULL;
    }
    if (!vlp_is_contiguous(a) || !vlp_is_contiguous(b)) {
        vlp_graph_fail(g, "vlp_matmul: a %s and b %s must be contiguous", b1, b2);
        return NULL;
    }
    int64_t M = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    int64_t K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t Kb = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    int64_t N = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    int64_t batch = a->numel / (a->shape[a->ndim - 1] * a->shape[a->ndim - 2]);
    int64_t bbatch = b->numel / (b->shape[b->ndim - 1] * b->shape[b->ndim - 2]);
    if (K != Kb) {
        vlp_graph_fail(g, "vlp_matmul: inner dims differ: a %s%s has K=%lld, b %s%s has K=%lld", b1, ta ? "^T" : "",
                       (long long)K, b2, tb ? "^T" : "", (long long)Kb);
        return NULL;
    }
    int shared = b->ndim == 2;
    if (!shared) {
        int same = b->ndim == a->ndim;
        for (int i = 0; same && i < a->ndim - 2; i++) same = a->shape[i] == b->shape[i];
        if (!same || bbatch != batch) {
            vlp_graph_fail(g, "vlp_matmul: batch dims differ: a %s, b %s", b1, b2);
            return NULL;
        }
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    vlp_tensor *t = vlp_new_node(g, OP_MATMUL, VLP_F32, a->ndim, shape, a, b, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = ta;
    t->ip[1] = tb;
    t->ip[2] = (int32_t)batch;
    t->ip[3] = (int32_t)M;
    t->ip[4] = (int32_t)N;
    t->ip[5] = (int32_t)K;
    t->ip[6] = shared;
    return t;
}

static void matmul_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int ta = t->ip[0], tb = t->ip[1], batch = t->ip[2], M = t->ip[3], N = t->ip[4], K = t->ip[5];
    int shared = t->ip[6];
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (shared && !ta) { /* one GEMM over all rows */
        vlp_gemm(0, tb, batch * M, N, K, 1.0f, vlp_f(a), lda, vlp_f(b), ldb, 0.0f, vlp_f(t), N);
        return;
    }
    vlp_gemm_batched(ta, tb, batch, M, N, K, 1.0f, vlp_f(a), (long)M * K, lda, vlp_f(b), shared ? 0L : (long)K * N, ldb,
                     0.0f, vlp_f(t), (long)M * N, N);
}

static void matmul_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int ta = t->ip[0], tb = t->ip[1], batch = t->ip[2], M = t->ip[3], N = t->ip[4], K = t->ip[5];
    int shared = t->ip[6];
    int lda = ta ? M : K, ldb = tb ? K : N;
    const float *dy = t->grad;
    long sa = (long)M * K, sb = shared ? 0L : (long)K * N, sy = (long)M * N;
    if (vlp_needs_grad(a)) {
        if (!ta) /* dA [M,K] += dy [M,N] @ op(B)^T */
            vlp_gemm_batched(0, !tb, batch, M, K, N, 1.0f, dy, sy, N, vlp_f(b), sb, ldb, 1.0f, a->grad, sa, lda);
        else /* dA [K,M] += op(B) [K,N] @ dy^T */
            vlp_gemm_batched(tb, 1, batch, K, M, N, 1.0f, vlp_f(b), sb, ldb, dy, sy, N, 1.0f, a->grad, sa, lda);
    }
    if (vlp_needs_grad(b)) {
        if (shared && !ta) { /* the batch folds into the rows of one GEMM */
            if (!tb)
                vlp_gemm(1, 0, K, N, batch * M, 1.0f, vlp_f(a), lda, dy, N, 1.0f, b->grad, ldb);
            else
                vlp_gemm(1, 0, N, K, batch * M, 1.0f, dy, N, vlp_f(a), lda, 1.0f, b->grad, ldb);
        } else if (shared) { /* sequential over the batch: a fixed summation order */
            for (int i = 0; i < batch; i++) {
                const float *ai = vlp_f(a) + i * sa, *dyi = dy + i * sy;
                if (!tb)
                    vlp_gemm(!ta, 0, K, N, M, 1.0f, ai, lda, dyi, N, 1.0f, b->grad, ldb);
                else
                    vlp_gemm(1, ta, N, K, M, 1.0f, dyi, N, ai, lda, 1.0f, b->grad, ldb);
            }
        } else if (!tb) { /* dB [K,N] += op(A)^T @ dy */
            vlp_gemm_batched(!ta, 0, batch, K, N, M, 1.0f, vlp_f(a), sa, lda, dy, sy, N, 1.0f, b->grad, sb, ldb);
        } else { /* dB [N,K] += dy^T @ op(A) */
            vlp_gemm_batched(1, ta, batch, N, K, M, 1.0f, dy, sy, N, vlp_f(a), sa, lda, 1.0f, b->grad, sb, ldb);
        }
    }
}

const vlp_op_info vlp_op_matmul = {"matmul", matmul_forward, matmul_backward, NULL};
