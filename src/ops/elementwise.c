/* Elementwise ops: add, mul (b broadcast as a shape suffix of a), scale,
 * activations (GELU erf/tanh, QuickGELU) and dropout. */
#include "../core/internal.h"
#include "../core/vmath.h"

#include <math.h>

/* add/mul/scale are one memory pass: below ~512 KiB a parallel region costs more than it saves,
 * and on a busy machine every region also waits for the slower thread (batch-1 inference runs
 * ~10 such ops per layer on 50 x 768 rows). */
#define VLP_PAR_STREAM 131072

static int suffix_broadcast(const vlp_tensor *a, const vlp_tensor *b) {
    if (b->ndim > a->ndim) return 0;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i]) return 0;
    return 1;
}

static vlp_tensor *binary(vlp_graph *g, int op, const char *fn, vlp_tensor *a, vlp_tensor *b) {
    vlp_tensor *srcs[2] = {a, b};
    if (!vlp_check_srcs(g, fn, 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (a->dtype != VLP_F32 || b->dtype != VLP_F32) {
        vlp_graph_fail(g, "%s: a %s and b %s must be f32", fn, vlp_shape_str(a, b1, sizeof b1),
                       vlp_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    if (!suffix_broadcast(a, b)) {
        vlp_graph_fail(g, "%s: shapes %s and %s do not broadcast (b must equal a or a suffix of a's shape)", fn,
                       vlp_shape_str(a, b1, sizeof b1), vlp_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    if (!vlp_is_contiguous(a) || !vlp_is_contiguous(b)) {
        vlp_graph_fail(g, "%s: a %s and b %s must be contiguous", fn, vlp_shape_str(a, b1, sizeof b1),
                       vlp_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    return vlp_new_node(g, op, VLP_F32, a->ndim, a->shape, a, b, NULL, NULL);
}

vlp_tensor *vlp_add(vlp_graph *g, vlp_tensor *a, vlp_tensor *b) { return binary(g, OP_ADD, "vlp_add", a, b); }
vlp_tensor *vlp_mul(vlp_graph *g, vlp_tensor *a, vlp_tensor *b) { return binary(g, OP_MUL, "vlp_mul", a, b); }

static void add_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *a = vlp_f(t->src[0]), *b = vlp_f(t->src[1]);
    float *y = vlp_f(t);
    int64_t n = t->numel, nb = t->src[1]->numel, rows = n / nb;
    VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t r = 0; r < rows; r++), {
        for (int64_t i = 0; i < nb; i++) y[r * nb + i] = a[r * nb + i] + b[i];
    });
}

static void add_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1];
    const float *dy = t->grad;
    int64_t n = t->numel, nb = b->numel;
    if (vlp_needs_grad(a)) {
        float *da = a->grad;
        VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t i = 0; i < n; i++), { da[i] += dy[i]; });
    }
    if (vlp_needs_grad(b)) vlp_colsum_accum(dy, n / nb, nb, nb, b->grad, ex->nthreads);
}

static void mul_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *a = vlp_f(t->src[0]), *b = vlp_f(t->src[1]);
    float *y = vlp_f(t);
    int64_t n = t->numel, nb = t->src[1]->numel, rows = n / nb;
    VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t r = 0; r < rows; r++), {
        for (int64_t i = 0; i < nb; i++) y[r * nb + i] = a[r * nb + i] * b[i];
    });
}

static void mul_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1];
    const float *dy = t->grad, *av = vlp_f(a), *bv = vlp_f(b);
    int64_t n = t->numel, nb = b->numel, rows = n / nb;
    if (vlp_needs_grad(a)) {
        float *da = a->grad;
        VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t r = 0; r < rows; r++), {
            for (int64_t i = 0; i < nb; i++) da[r * nb + i] += dy[r * nb + i] * bv[i];
        });
    }
    if (vlp_needs_grad(b)) {
        /* db[i] = sum_r dy[r,i] * a[r,i]: split over column blocks (deterministic). */
        const int64_t CB = 64;
        int64_t nblk = (nb + CB - 1) / CB;
        float *db = b->grad;
        VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t blk = 0; blk < nblk; blk++), {
            int64_t c0 = blk * CB, c1 = c0 + CB < nb ? c0 + CB : nb;
            float acc[64] = {0};
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = c0; c < c1; c++) acc[c - c0] += dy[r * nb + c] * av[r * nb + c];
            for (int64_t c = c0; c < c1; c++) db[c] += acc[c - c0];
        });
    }
}

const vlp_op_info vlp_op_add = {"add", add_forward, add_backward, NULL};
const vlp_op_info vlp_op_mul = {"mul", mul_forward, mul_backward, NULL};

/* ---- unary ----------------------------------------------------------------------- */

static vlp_tensor *unary(vlp_graph *g, int op, const char *fn, vlp_tensor *x) {
    if (!vlp_check_srcs(g, fn, 1, &x)) return NULL;
    char b1[96];
    if (x->dtype != VLP_F32 || !vlp_is_contiguous(x)) {
        vlp_graph_fail(g, "%s: x %s must be contiguous f32", fn, vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    return vlp_new_node(g, op, VLP_F32, x->ndim, x->shape, x, NULL, NULL, NULL);
}

vlp_tensor *vlp_scale(vlp_graph *g, vlp_tensor *a, float s) {
    vlp_tensor *t = unary(g, OP_SCALE, "vlp_scale", a);
    if (t) t->fp[0] = s;
    return t;
}

static void scale_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    float *y = vlp_f(t), s = t->fp[0];
    int64_t n = t->numel;
    VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t i = 0; i < n; i++), { y[i] = x[i] * s; });
}

static void scale_backward(vlp_tensor *t, vlp_exec *ex) {
    float *dx = t->src[0]->grad, s = t->fp[0];
    const float *dy = t->grad;
    int64_t n = t->numel;
    VLP_PARFOR(ex->nthreads, (n) > VLP_PAR_STREAM, (int64_t i = 0; i < n; i++), { dx[i] += dy[i] * s; });
}

const vlp_op_info vlp_op_scale = {"scale", scale_forward, scale_backward, NULL};

/* Activations: values in core/vmath.h (the GEMM epilogue applies the same ones); derivatives here. */
static inline float gelu_d(float x) {
    return 0.5f * (1.0f + vlp_erf(x * 0.70710678118654752f)) + x * 0.39894228040143268f * vlp_exp(-0.5f * x * x);
}
static inline float gelu_tanh_d(float x) {
    float u = 0.79788456080286536f * (x + 0.044715f * x * x * x), th = vlp_tanh(u);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
}
static inline float quick_gelu_d(float x) {
    float s = vlp_sigmoid(1.702f * x);
    return s + 1.702f * x * s * (1.0f - s);
}

#define ACTIVATION(NAME, F, D)                                                                                         \
    static void NAME##_forward(vlp_tensor *t, vlp_exec *ex) {                                                          \
        const float *x = vlp_f(t->src[0]);                                                                             \
        float *y = vlp_f(t);                                                                                           \
        int64_t n = t->numel;                                                                                          \
        VLP_PARFOR(ex->nthreads, n > 8192, (int64_t i = 0; i < n; i++), { y[i] = F(x[i]); });                          \
    }                                                                                                                  \
    static void NAME##_backward(vlp_tensor *t, vlp_exec *ex) {                                                         \
        const float *x = vlp_f(t->src[0]), *dy = t->grad;                                                              \
        float *dx = t->src[0]->grad;                                                                                   \
        int64_t n = t->numel;                                                                                          \
        VLP_PARFOR(ex->nthreads, n > 8192, (int64_t i = 0; i < n; i++), { dx[i] += dy[i] * D(x[i]); });                \
    }                                                                                                                  \
    const vlp_op_info vlp_op_##NAME = {#NAME, NAME##_forward, NAME##_backward, NULL};

ACTIVATION(gelu, vlp_gelu_f, gelu_d)
ACTIVATION(gelu_tanh, vlp_gelu_tanh_f, gelu_tanh_d)
ACTIVATION(quick_gelu, vlp_quick_gelu_f, quick_gelu_d)

vlp_tensor *vlp_gelu(vlp_graph *g, vlp_tensor *x) { return unary(g, OP_GELU, "vlp_gelu", x); }
vlp_tensor *vlp_gelu_tanh(vlp_graph *g, vlp_tensor *x) { return unary(g, OP_GELU_TANH, "vlp_gelu_tanh", x); }
vlp_tensor *vlp_quick_gelu(vlp_graph *g, vlp_tensor *x) { return unary(g, OP_QUICK_GELU, "vlp_quick_gelu", x); }

vlp_tensor *vlp_activation(vlp_graph *g, vlp_tensor *x, int act) {
    switch (act) {
    case VLP_ACT_QUICK_GELU: return vlp_quick_gelu(g, x);
    case VLP_ACT_GELU: return vlp_gelu(g, x);
    case VLP_ACT_GELU_TANH: return vlp_gelu_tanh(g, x);
    }
    vlp_graph_fail(g, "vlp_activation: unknown activation %d", act);
    return NULL;
}

/* ---- dropout ------------------------------------------------------------------------ */
/* The mask is a pure function of (graph seed, step, node id, element index), so
 * backward regenerates it instead of storing it, and it does not depend on the
 * thread count. */

vlp_tensor *vlp_dropout(vlp_graph *g, vlp_tensor *x, float p) {
    if (!(p >= 0.0f && p < 1.0f)) {
        vlp_graph_fail(g, "vlp_dropout: p = %g, want 0 <= p < 1", (double)p);
        return NULL;
    }
    vlp_tensor *t = unary(g, OP_DROPOUT, "vlp_dropout", x);
    if (t) t->fp[0] = p;
    return t;
}

static inline uint64_t dropout_key(const vlp_tensor *t, const vlp_exec *ex) {
    return vlp_mix64(ex->seed ^ vlp_mix64(ex->step * 0x100000001b3ull + (uint64_t)t->id));
}

static void dropout_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    float *y = vlp_f(t), p = t->fp[0];
    int64_t n = t->numel;
    if (!ex->training || p == 0.0f) {
        memcpy(y, x, (size_t)n * sizeof(float));
        return;
    }
    uint64_t key = dropout_key(t, ex);
    float keep = 1.0f / (1.0f - p);
    VLP_PARFOR(ex->nthreads, (n) > 32768, (int64_t i = 0; i < n; i++),
               { y[i] = vlp_u01(key, (uint64_t)i) >= p ? x[i] * keep : 0.0f; });
}

static void dropout_backward(vlp_tensor *t, vlp_exec *ex) {
    const float *dy = t->grad;
    float *dx = t->src[0]->grad, p = t->fp[0];
    int64_t n = t->numel;
    if (!ex->training || p == 0.0f) {
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
        return;
    }
    uint64_t key = dropout_key(t, ex);
    float keep = 1.0f / (1.0f - p);
    VLP_PARFOR(ex->nthreads, (n) > 32768, (int64_t i = 0; i < n; i++), {
        if (vlp_u01(key, (uint64_t)i) >= p) dx[i] += dy[i] * keep;
    });
}

const vlp_op_info vlp_op_dropout = {"dropout", dropout_forward, dropout_backward, NULL};
