/* Shape ops: no-copy views (reshape, column ranges) and copying slice/concat. */
#include "../core/internal.h"

/* A view shares its source's data and gradient (offset ip[0] elements), so it
 * needs no kernels: gradients written through it land in the source's buffer. */
const vlp_op_info vlp_op_view = {"view", NULL, NULL, NULL};

static vlp_tensor *make_view(vlp_graph *g, vlp_tensor *x, int ndim, const int64_t *shape, const int64_t *stride,
                             int64_t offset) {
    vlp_tensor *t = vlp_new_node(g, OP_VIEW, x->dtype, ndim, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->flags |= VLP_FLAG_VIEW | (x->flags & VLP_FLAG_REQUIRES_GRAD);
    memcpy(t->stride, stride, sizeof t->stride);
    t->ip[0] = (int32_t)offset;
    return t;
}

vlp_tensor *vlp_reshape(vlp_graph *g, vlp_tensor *x, int ndim, const int64_t *shape) {
    if (!vlp_check_srcs(g, "vlp_reshape", 1, &x)) return NULL;
    char b1[96];
    if (ndim < 1 || ndim > VLP_MAX_DIMS || !shape) {
        vlp_graph_fail(g, "vlp_reshape: bad target rank %d for x %s", ndim, vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    int64_t n = 1, stride[VLP_MAX_DIMS] = {0};
    for (int i = 0; i < ndim; i++) n *= shape[i] > 0 ? shape[i] : 0;
    if (n != x->numel || !vlp_is_contiguous(x)) {
        char want[96] = "[";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %lld" : "%lld", (long long)shape[i]);
        strncat(want, "]", sizeof want - strlen(want) - 1);
        vlp_graph_fail(g, "vlp_reshape: cannot view x %s as %s%s", vlp_shape_str(x, b1, sizeof b1), want,
                       n != x->numel ? " (element counts differ)" : " (x is not contiguous)");
        return NULL;
    }
    for (int i = ndim - 1, s = 1; i >= 0; s *= (int)shape[i], i--) stride[i] = s;
    return make_view(g, x, ndim, shape, stride, 0);
}

vlp_tensor *vlp_view_cols(vlp_graph *g, vlp_tensor *x, int64_t start, int64_t len) {
    if (!vlp_check_srcs(g, "vlp_view_cols", 1, &x)) return NULL;
    char b1[96];
    int64_t D = vlp_cols(x);
    if (x->ndim < 1 || start < 0 || len <= 0 || start + len > D || !vlp_rows_uniform(x)) {
        vlp_graph_fail(g, "vlp_view_cols: columns [%lld, %lld) do not fit x %s", (long long)start,
                       (long long)(start + len), vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    return make_view(g, x, x->ndim, shape, x->stride, start);
}

/* ---- slice / concat: x viewed as [outer, n, inner] along dim ---------------------- */

static void split_dims(const vlp_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++) *inner *= t->shape[i];
}

vlp_tensor *vlp_slice(vlp_graph *g, vlp_tensor *x, int dim, int64_t start, int64_t len) {
    if (!vlp_check_srcs(g, "vlp_slice", 1, &x)) return NULL;
    char b1[96];
    if (dim < 0) dim += x->ndim;
    if (dim < 0 || dim >= x->ndim || start < 0 || len <= 0 || start + len > x->shape[dim] || x->dtype ||
        !vlp_is_contiguous(x)) {
        vlp_graph_fail(g, "vlp_slice: [%lld, %lld) along dim %d does not fit contiguous f32 x %s", (long long)start,
                       (long long)(start + len), dim, vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    vlp_tensor *t = vlp_new_node(g, OP_SLICE, VLP_F32, x->ndim, shape, x, NULL, NULL, NULL);
    if (!t) return NULL;
    t->ip[0] = dim;
    t->ip[1] = (int32_t)start;
    return t;
}

static void slice_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0];
    int dim = t->ip[0];
    int64_t start = t->ip[1], outer, inner, n = x->shape[dim], len = t->shape[dim];
    split_dims(x, dim, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        memcpy(vlp_f(t) + o * len * inner, vlp_f(x) + (o * n + start) * inner, (size_t)(len * inner) * sizeof(float));
}

static void slice_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *x = t->src[0];
    int dim = t->ip[0];
    int64_t start = t->ip[1], outer, inner, n = x->shape[dim], len = t->shape[dim];
    split_dims(x, dim, &outer, &inner);
    for (int64_t o = 0; o < outer; o++) {
        float *dst = x->grad + (o * n + start) * inner;
        const float *src = t->grad + o * len * inner;
        for (int64_t i = 0; i < len * inner; i++) dst[i] += src[i];
    }
}

const vlp_op_info vlp_op_slice = {"slice", slice_forward, slice_backward, NULL};

vlp_tensor *vlp_concat(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, int dim) {
    vlp_tensor *srcs[2] = {a, b};
    if (!vlp_check_srcs(g, "vlp_concat", 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (dim < 0) dim += a->ndim;
    /* i32 joins too (attention masks of fused sequences); they carry no gradient */
    int ok = a->ndim == b->ndim && dim >= 0 && dim < a->ndim && a->dtype == b->dtype && vlp_is_contiguous(a) &&
             vlp_is_contiguous(b);
    for (int i = 0; ok && i < a->ndim; i++)
        if (i != dim && a->shape[i] != b->shape[i]) ok = 0;
    if (!ok) {
        vlp_graph_fail(g, "vlp_concat: cannot join %s and %s along dim %d", vlp_shape_str(a, b1, sizeof b1),
                       vlp_shape_str(b, b2, sizeof b2), dim);
        return NULL;
    }
    int64_t shape[VLP_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] += b->shape[dim];
    vlp_tensor *t = vlp_new_node(g, OP_CONCAT, a->dtype, a->ndim, shape, a, b, NULL, NULL);
    if (t) t->ip[0] = dim;
    return t;
}

static void concat_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int dim = t->ip[0];
    int64_t outer, inner, na = a->shape[dim], nb = b->shape[dim];
    split_dims(a, dim, &outer, &inner);
    for (int64_t o = 0; o < outer; o++) {
        float *dst = vlp_f(t) + o * (na + nb) * inner;
        memcpy(dst, vlp_f(a) + o * na * inner, (size_t)(na * inner) * sizeof(float));
        memcpy(dst + na * inner, vlp_f(b) + o * nb * inner, (size_t)(nb * inner) * sizeof(float));
    }
}

static void concat_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int dim = t->ip[0];
    int64_t outer, inner, na = a->shape[dim], nb = b->shape[dim];
    split_dims(a, dim, &outer, &inner);
    for (int64_t o = 0; o < outer; o++) {
        const float *src = t->grad + o * (na + nb) * inner;
        if (vlp_needs_grad(a))
            for (int64_t i = 0; i < na * inner; i++) a->grad[o * na * inner + i] += src[i];
        if (vlp_needs_grad(b))
            for (int64_t i = 0; i < nb * inner; i++) b->grad[o * nb * inner + i] += src[na * inner + i];
    }
}

const vlp_op_info vlp_op_concat = {"concat", concat_forward, concat_backward, NULL};
