/* Reductions to a scalar and losses: sum, mean, cross-entropy with an ignore
 * index, symmetric InfoNCE with a learnable temperature, MSE. Scalar sums use
 * fixed chunks and double accumulators so results do not depend on threads. */
#include "../core/internal.h"

#include <math.h>

/* Deterministic sum of EXPR(i) over [0, n): at most 256 chunks whose size
 * depends only on n, partials in double, summed in chunk order. */
#define CHUNKED_SUM(result, n, EXPR) /* uses a local int nthreads */                                                   \
    do {                                                                                                               \
        double part_[256];                                                                                             \
        int64_t n_ = (n), cs_ = (n_ + 255) / 256 > 4096 ? (n_ + 255) / 256 : 4096;                                     \
        int64_t nch_ = (n_ + cs_ - 1) / cs_;                                                                           \
        VLP_PARFOR(nthreads, n_ > 65536, (int64_t c_ = 0; c_ < nch_; c_++), {                                          \
            double s_ = 0;                                                                                             \
            int64_t e_ = (c_ + 1) * cs_ < n_ ? (c_ + 1) * cs_ : n_;                                                    \
            for (int64_t i = c_ * cs_; i < e_; i++) s_ += (EXPR);                                                      \
            part_[c_] = s_;                                                                                            \
        });                                                                                                            \
        double total_ = 0;                                                                                             \
        for (int64_t c_ = 0; c_ < nch_; c_++) total_ += part_[c_];                                                     \
        (result) = total_;                                                                                             \
    } while (0)

static vlp_tensor *to_scalar(vlp_graph *g, int op, const char *fn, vlp_tensor *x) {
    if (!vlp_check_srcs(g, fn, 1, &x)) return NULL;
    char b1[96];
    if (x->dtype || !vlp_is_contiguous(x)) {
        vlp_graph_fail(g, "%s: x %s must be contiguous f32", fn, vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    return vlp_new_node(g, op, VLP_F32, 0, NULL, x, NULL, NULL, NULL);
}

vlp_tensor *vlp_sum(vlp_graph *g, vlp_tensor *x) { return to_scalar(g, OP_SUM, "vlp_sum", x); }
vlp_tensor *vlp_mean(vlp_graph *g, vlp_tensor *x) { return to_scalar(g, OP_MEAN, "vlp_mean", x); }

static void sum_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    double s;
    int nthreads = ex->nthreads;
    CHUNKED_SUM(s, t->src[0]->numel, x[i]);
    vlp_f(t)[0] = (float)(t->op == OP_MEAN ? s / (double)t->src[0]->numel : s);
}

static void sum_backward(vlp_tensor *t, vlp_exec *ex) {
    int64_t n = t->src[0]->numel;
    float d = t->grad[0] / (t->op == OP_MEAN ? (float)n : 1.0f), *dx = t->src[0]->grad;
    VLP_PARFOR(ex->nthreads, n > 65536, (int64_t i = 0; i < n; i++), { dx[i] += d; });
}

const vlp_op_info vlp_op_sum = {"sum", sum_forward, sum_backward, NULL};
const vlp_op_info vlp_op_mean = {"mean", sum_forward, sum_backward, NULL};

/* ---- MSE ----------------------------------------------------------------------------- */

vlp_tensor *vlp_mse(vlp_graph *g, vlp_tensor *a, vlp_tensor *b) {
    vlp_tensor *srcs[2] = {a, b};
    if (!vlp_check_srcs(g, "vlp_mse", 2, srcs)) return NULL;
    char b1[96], b2[96];
    int same = a->ndim == b->ndim && !a->dtype && !b->dtype && vlp_is_contiguous(a) && vlp_is_contiguous(b);
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) {
        vlp_graph_fail(g, "vlp_mse: a %s and b %s must be contiguous f32 of one shape", vlp_shape_str(a, b1, sizeof b1),
                       vlp_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    return vlp_new_node(g, OP_MSE, VLP_F32, 0, NULL, a, b, NULL, NULL);
}

static void mse_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *a = vlp_f(t->src[0]), *b = vlp_f(t->src[1]);
    int64_t n = t->src[0]->numel;
    double s;
    int nthreads = ex->nthreads;
    CHUNKED_SUM(s, n, (double)(a[i] - b[i]) * (double)(a[i] - b[i]));
    vlp_f(t)[0] = (float)(s / (double)n);
}

static void mse_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *at = t->src[0], *bt = t->src[1];
    const float *a = vlp_f(at), *b = vlp_f(bt);
    int64_t n = at->numel;
    float k = 2.0f * t->grad[0] / (float)n;
    int ga = vlp_needs_grad(at), gb = vlp_needs_grad(bt);
    VLP_PARFOR(ex->nthreads, n > 65536, (int64_t i = 0; i < n; i++), {
        float d = k * (a[i] - b[i]);
        if (ga) at->grad[i] += d;
        if (gb) bt->grad[i] -= d;
    });
}

const vlp_op_info vlp_op_mse = {"mse", mse_forward, mse_backward, NULL};

/* ---- cross-entropy ---------------------------------------------------------------------- */
/* aux: logsumexp per row. fp[1] holds the count of counted rows after forward. */

vlp_tensor *vlp_cross_entropy(vlp_graph *g, vlp_tensor *logits, vlp_tensor *targets, int ignore_index) {
    vlp_tensor *srcs[2] = {logits, targets};
    if (!vlp_check_srcs(g, "vlp_cross_entropy", 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (logits->dtype || logits->ndim != 2 || !vlp_is_contiguous(logits) || targets->dtype != VLP_I32 ||
        targets->numel != logits->shape[0]) {
        vlp_graph_fail(g, "vlp_cross_entropy: want logits f32 [N, C] and targets i32 [N]; got %s and %s",
                       vlp_shape_str(logits, b1, sizeof b1), vlp_shape_str(targets, b2, sizeof b2));
        return NULL;
    }
    vlp_tensor *t = vlp_new_node(g, OP_CROSS_ENTROPY, VLP_F32, 0, NULL, logits, targets, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = ignore_index;
    t->aux_bytes = (size_t)logits->shape[0] * sizeof(float);
    return t;
}

static void ce_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *lt = t->src[0];
    const float *x = vlp_f(lt);
    const int32_t *tg = vlp_i(t->src[1]);
    int64_t N = lt->shape[0], C = lt->shape[1];
    int ign = t->ip[0];
    float *lse = t->aux;
    for (int64_t r = 0; r < N; r++)
        if (tg[r] != ign && (tg[r] < 0 || tg[r] >= C)) {
            vlp_exec_fail(ex, VLP_ERR_ARG, "vlp_cross_entropy: target %d of row %lld is outside 0..%lld", tg[r],
                          (long long)r, (long long)C - 1);
            return;
        }
    VLP_PARFOR(ex->nthreads, N * C > 32768, (int64_t r = 0; r < N; r++), {
        const float *xr = x + r * C;
        float m = -INFINITY;
        for (int64_t j = 0; j < C; j++) m = xr[j] > m ? xr[j] : m;
        double s = 0;
        for (int64_t j = 0; j < C; j++) s += exp((double)(xr[j] - m));
        lse[r] = m + (float)log(s);
    });
    double loss = 0;
    int64_t count = 0;
    for (int64_t r = 0; r < N; r++)
        if (tg[r] != ign) {
            loss += (double)lse[r] - (double)x[r * C + tg[r]];
            count++;
        }
    t->fp[1] = (float)count;
    vlp_f(t)[0] = count ? (float)(loss / (double)count) : 0.0f;
}

static void ce_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *lt = t->src[0];
    const float *x = vlp_f(lt), *lse = t->aux;
    const int32_t *tg = vlp_i(t->src[1]);
    int64_t N = lt->shape[0], C = lt->shape[1];
    int ign = t->ip[0];
    if (t->fp[1] == 0.0f) return;
    float k = t->grad[0] / t->fp[1];
    float *dx = lt->grad;
    VLP_PARFOR(ex->nthreads, N * C > 32768, (int64_t r = 0; r < N; r++), {
        if (tg[r] == ign) continue;
        for (int64_t j = 0; j < C; j++) dx[r * C + j] += k * expf(x[r * C + j] - lse[r]);
        dx[r * C + tg[r]] -= k;
    });
}

const vlp_op_info vlp_op_cross_entropy = {"cross_entropy", ce_forward, ce_backward, NULL};

/* ---- symmetric InfoNCE -------------------------------------------------------------------- */
/* aux: logits L [N, N] (exp(s) * a b^T), row lse [N], col lse [N], then G [N, N]
 * (d loss / d L) built in backward. */

#include "gemm.h"

vlp_tensor *vlp_infonce(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, vlp_tensor *log_scale) {
    vlp_tensor *srcs[3] = {a, b, log_scale};
    if (!vlp_check_srcs(g, "vlp_infonce", 3, srcs)) return NULL;
    char b1[96], b2[96], b3[96];
    if (a->dtype || b->dtype || a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] ||
        a->shape[1] != b->shape[1] || !vlp_is_contiguous(a) || !vlp_is_contiguous(b) || log_scale->numel != 1 ||
        log_scale->dtype) {
        vlp_graph_fail(g, "vlp_infonce: want a, b f32 [N, E] of one shape and a scalar log_scale; got %s, %s, %s",
                       vlp_shape_str(a, b1, sizeof b1), vlp_shape_str(b, b2, sizeof b2),
                       vlp_shape_str(log_scale, b3, sizeof b3));
        return NULL;
    }
    vlp_tensor *t = vlp_new_node(g, OP_INFONCE, VLP_F32, 0, NULL, a, b, log_scale, NULL);
    if (!t) return NULL;
    int64_t N = a->shape[0];
    t->aux_bytes = (size_t)(2 * N * N + 2 * N) * sizeof(float);
    return t;
}

static void infonce_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int64_t N = a->shape[0], E = a->shape[1];
    float *L = t->aux, *rl = L + N * N, *cl = rl + N;
    float s = expf(vlp_f(t->src[2])[0]);
    vlp_gemm(0, 1, (int)N, (int)N, (int)E, s, vlp_f(a), (int)E, vlp_f(b), (int)E, 0.0f, L, (int)N);
    VLP_PARFOR(ex->nthreads, N > 64, (int64_t i = 0; i < N; i++), {
        float mr = -INFINITY, mc = -INFINITY;
        for (int64_t j = 0; j < N; j++) {
            mr = L[i * N + j] > mr ? L[i * N + j] : mr;
            mc = L[j * N + i] > mc ? L[j * N + i] : mc;
        }
        double sr = 0, sc = 0;
        for (int64_t j = 0; j < N; j++) {
            sr += exp((double)(L[i * N + j] - mr));
            sc += exp((double)(L[j * N + i] - mc));
        }
        rl[i] = mr + (float)log(sr);
        cl[i] = mc + (float)log(sc);
    });
    double loss = 0;
    for (int64_t i = 0; i < N; i++) loss += 0.5 * ((double)rl[i] + (double)cl[i]) - (double)L[i * N + i];
    vlp_f(t)[0] = (float)(loss / (double)N);
}

static void infonce_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1], *ls = t->src[2];
    int64_t N = a->shape[0], E = a->shape[1];
    const float *L = t->aux, *rl = L + N * N, *cl = rl + N;
    float *G = (float *)t->aux + N * N + 2 * N;
    float k = t->grad[0] * 0.5f / (float)N, s = expf(vlp_f(ls)[0]);
    VLP_PARFOR(ex->nthreads, N > 64, (int64_t i = 0; i < N; i++), {
        for (int64_t j = 0; j < N; j++) {
            float l = L[i * N + j];
            G[i * N + j] = k * (expf(l - rl[i]) + expf(l - cl[j]) - (i == j ? 2.0f : 0.0f));
        }
    });
    double dls = 0; /* d loss / d log_scale = sum G * L, since L is linear in exp(log_scale) */
    for (int64_t i = 0; i < N * N; i++) dls += (double)G[i] * L[i];
    if (vlp_needs_grad(ls)) ls->grad[0] += (float)dls;
    if (vlp_needs_grad(a)) /* da += s G b */
        vlp_gemm(0, 0, (int)N, (int)E, (int)N, s, G, (int)N, vlp_f(b), (int)E, 1.0f, a->grad, (int)E);
    if (vlp_needs_grad(b)) /* db += s G^T a */
        vlp_gemm(1, 0, (int)N, (int)E, (int)N, s, G, (int)N, vlp_f(a), (int)E, 1.0f, b->grad, (int)E);
}

const vlp_op_info vlp_op_infonce = {"infonce", infonce_forward, infonce_backward, NULL};
