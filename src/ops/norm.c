/* Row-wise normalisations over the last dim: layernorm, softmax, L2 normalise. */
#include "../core/internal.h"
#include "../core/vmath.h"

#include <math.h>

static vlp_tensor *rowwise(vlp_graph *g, int op, const char *fn, vlp_tensor *x) {
    if (!vlp_check_srcs(g, fn, 1, &x)) return NULL;
    char b1[96];
    if (x->dtype != VLP_F32 || x->ndim < 1 || !vlp_is_contiguous(x)) {
        vlp_graph_fail(g, "%s: x %s must be contiguous f32 with at least 1 dim", fn, vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    return vlp_new_node(g, op, VLP_F32, x->ndim, x->shape, x, NULL, NULL, NULL);
}

/* ---- layernorm ---------------------------------------------------------------------- */
/* aux: mean[rows], rstd[rows], then per-chunk partial sums for dw and db
 * (chunks of VLP_REDUCE_CHUNK rows summed in chunk order: deterministic). */

static int64_t ln_chunks(int64_t rows) { return (rows + VLP_REDUCE_CHUNK - 1) / VLP_REDUCE_CHUNK; }

vlp_tensor *vlp_layernorm(vlp_graph *g, vlp_tensor *x, vlp_tensor *w, vlp_tensor *b, float eps) {
    vlp_tensor *t = rowwise(g, OP_LAYERNORM, "vlp_layernorm", x);
    if (!t) return NULL;
    int64_t D = vlp_cols(x), rows = vlp_rows(x);
    char b1[96], b2[96];
    for (int i = 0; i < 2; i++) {
        vlp_tensor *p = i ? b : w;
        if (p && (p->dtype != VLP_F32 || p->numel != D)) {
            vlp_graph_fail(g, "vlp_layernorm: %s %s does not fit x %s (want [%lld])", i ? "bias" : "weight",
                           vlp_shape_str(p, b1, sizeof b1), vlp_shape_str(x, b2, sizeof b2), (long long)D);
            return NULL;
        }
    }
    if (!(eps > 0.0f)) {
        vlp_graph_fail(g, "vlp_layernorm: eps = %g, want > 0", (double)eps);
        return NULL;
    }
    t->src[1] = w;
    t->src[2] = b;
    if (vlp_needs_grad(w) || vlp_needs_grad(b)) t->flags |= VLP_FLAG_REQUIRES_GRAD;
    t->fp[0] = eps;
    t->aux_bytes = (size_t)(2 * rows + 2 * ln_chunks(rows) * D) * sizeof(float);
    return t;
}

static void layernorm_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    const float *w = t->src[1] ? vlp_f(t->src[1]) : NULL, *b = t->src[2] ? vlp_f(t->src[2]) : NULL;
    float *y = vlp_f(t), *mean = t->aux, eps = t->fp[0];
    int64_t D = vlp_cols(t), rows = vlp_rows(t);
    float *rstd = mean + rows;
    VLP_PARFOR(ex->nthreads, rows * D > 65536 /* tiny batches: one thread, no region */, (int64_t r = 0; r < rows; r++), {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float mu = vlp_rsum(xr, D) / (float)D;
        float rs = 1.0f / sqrtf(vlp_rsqdev(xr, mu, D) / (float)D + eps);
        mean[r] = mu;
        rstd[r] = rs;
        if (w && b)
            for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
        else
            for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - mu) * rs * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
    });
}

static void layernorm_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *xt = t->src[0], *wt = t->src[1], *bt = t->src[2];
    const float *x = vlp_f(xt), *dy = t->grad, *w = wt ? vlp_f(wt) : NULL;
    const float *mean = t->aux;
    int64_t D = vlp_cols(t), rows = vlp_rows(t), nch = ln_chunks(rows);
    const float *rstd = mean + rows;
    float *part = (float *)t->aux + 2 * rows; /* [nch][2][D] */
    int need_x = vlp_needs_grad(xt), need_p = vlp_needs_grad(wt) || vlp_needs_grad(bt);
    VLP_PARFOR(ex->nthreads, rows * D > 16384, (int64_t c = 0; c < nch; c++), {
        float *pw = part + c * 2 * D, *pb = pw + D;
        if (need_p) memset(pw, 0, (size_t)(2 * D) * sizeof(float));
        int64_t r1 = (c + 1) * VLP_REDUCE_CHUNK < rows ? (c + 1) * VLP_REDUCE_CHUNK : rows;
        for (int64_t r = c * VLP_REDUCE_CHUNK; r < r1; r++) {
            const float *xr = x + r * D, *dyr = dy + r * D;
            float mu = mean[r], rs = rstd[r];
            if (need_p)
                for (int64_t i = 0; i < D; i++) {
                    pw[i] += dyr[i] * (xr[i] - mu) * rs;
                    pb[i] += dyr[i];
                }
            if (need_x) {
                /* mean of dxhat and of dxhat * xhat, 16 partial sums each (see vlp_rsum) */
                float a1[16] = {0}, a2[16] = {0}, t1 = 0, t2 = 0;
                int64_t i = 0;
                for (; i + 16 <= D; i += 16)
                    for (int j = 0; j < 16; j++) {
                        float dh = dyr[i + j] * (w ? w[i + j] : 1.0f);
                        a1[j] += dh;
                        a2[j] += dh * (xr[i + j] - mu) * rs;
                    }
                for (; i < D; i++) {
                    float dh = dyr[i] * (w ? w[i] : 1.0f);
                    t1 += dh;
                    t2 += dh * (xr[i] - mu) * rs;
                }
                float s1 = vlp_acc16_total(a1, t1) / (float)D, s2 = vlp_acc16_total(a2, t2) / (float)D;
                float *dxr = xt->grad + r * D;
                for (int64_t i = 0; i < D; i++) {
                    float dh = dyr[i] * (w ? w[i] : 1.0f);
                    dxr[i] += rs * (dh - s1 - (xr[i] - mu) * rs * s2);
                }
            }
        }
    });
    if (!need_p) return;
    for (int64_t c = 0; c < nch; c++) {
        const float *pw = part + c * 2 * D, *pb = pw + D;
        if (vlp_needs_grad(wt))
            for (int64_t i = 0; i < D; i++) wt->grad[i] += pw[i];
        if (vlp_needs_grad(bt))
            for (int64_t i = 0; i < D; i++) bt->grad[i] += pb[i];
    }
}

const vlp_op_info vlp_op_layernorm = {"layernorm", layernorm_forward, layernorm_backward, NULL};

/* ---- softmax ---------------------------------------------------------------------- */

vlp_tensor *vlp_softmax(vlp_graph *g, vlp_tensor *x) { return rowwise(g, OP_SOFTMAX, "vlp_softmax", x); }

static void softmax_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    float *y = vlp_f(t);
    int64_t D = vlp_cols(t), rows = vlp_rows(t);
    VLP_PARFOR(ex->nthreads, rows * D > 16384, (int64_t r = 0; r < rows; r++), {
        const float *xr = x + r * D;
        float *yr = y + r * D, m = -INFINITY, s = 0;
        for (int64_t i = 0; i < D; i++) m = xr[i] > m ? xr[i] : m;
        for (int64_t i = 0; i < D; i++) yr[i] = vlp_exp(xr[i] - m); /* vectorised */
        s = vlp_rsum(yr, D);
        float inv = 1.0f / s;
        for (int64_t i = 0; i < D; i++) yr[i] *= inv;
    });
}

static void softmax_backward(vlp_tensor *t, vlp_exec *ex) {
    const float *y = vlp_f(t), *dy = t->grad;
    float *dx = t->src[0]->grad;
    int64_t D = vlp_cols(t), rows = vlp_rows(t);
    VLP_PARFOR(ex->nthreads, rows * D > 16384, (int64_t r = 0; r < rows; r++), {
        const float *yr = y + r * D, *dyr = dy + r * D;
        float dot = vlp_rdot(yr, dyr, D);
        for (int64_t i = 0; i < D; i++) dx[r * D + i] += yr[i] * (dyr[i] - dot);
    });
}

const vlp_op_info vlp_op_softmax = {"softmax", softmax_forward, softmax_backward, NULL};

/* ---- L2 normalise: y = x / max(||x||, eps), as torch.nn.functional.normalize ---------- */

vlp_tensor *vlp_l2norm(vlp_graph *g, vlp_tensor *x, float eps) {
    vlp_tensor *t = rowwise(g, OP_L2NORM, "vlp_l2norm", x);
    if (!t) return NULL;
    t->fp[0] = eps > 0 ? eps : 1e-12f;
    t->aux_bytes = (size_t)vlp_rows(x) * sizeof(float); /* the divisor per row */
    return t;
}

static void l2norm_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    float *y = vlp_f(t), *den = t->aux, eps = t->fp[0];
    int64_t D = vlp_cols(t), rows = vlp_rows(t);
    VLP_PARFOR(ex->nthreads, rows * D > 16384, (int64_t r = 0; r < rows; r++), {
        const float *xr = x + r * D;
        float n = sqrtf(vlp_rdot(xr, xr, D));
        den[r] = n > eps ? n : eps;
        for (int64_t i = 0; i < D; i++) y[r * D + i] = xr[i] / den[r];
    });
}

static void l2norm_backward(vlp_tensor *t, vlp_exec *ex) {
    const float *y = vlp_f(t), *dy = t->grad, *den = t->aux;
    float *dx = t->src[0]->grad, eps = t->fp[0];
    int64_t D = vlp_cols(t), rows = vlp_rows(t);
    VLP_PARFOR(ex->nthreads, rows * D > 16384, (int64_t r = 0; r < rows; r++), {
        const float *yr = y + r * D, *dyr = dy + r * D;
        if (den[r] > eps) {
            float dot = vlp_rdot(yr, dyr, D);
            for (int64_t i = 0; i < D; i++) dx[r * D + i] += (dyr[i] - yr[i] * dot) / den[r];
        } else { /* the divisor is the constant eps */
            for (int64_t i = 0; i < D; i++) dx[r * D + i] += dyr[i] / eps;
        }
    });
}

const vlp_op_info vlp_op_l2norm = {"l2norm", l2norm_forward, l2norm_backward, NULL};
