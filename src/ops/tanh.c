/* tanh as a graph op (the BERT pooler's activation). Backward recomputes tanh(x)
 * rather than reading the output, so it does not depend on the output buffer
 * staying live. */
#include "../core/internal.h"
#include "../core/vmath.h"

vlp_tensor *vlp_tanh_act(vlp_graph *g, vlp_tensor *x) {
    if (!vlp_check_srcs(g, "vlp_tanh_act", 1, &x)) return NULL;
    char b1[96];
    if (x->dtype != VLP_F32 || !vlp_is_contiguous(x)) {
        vlp_graph_fail(g, "vlp_tanh_act: x %s must be contiguous f32", vlp_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    return vlp_new_node(g, OP_TANH, VLP_F32, x->ndim, x->shape, x, NULL, NULL, NULL);
}

static void tanh_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]);
    float *y = vlp_f(t);
    int64_t n = t->numel;
    VLP_PARFOR(ex->nthreads, n > 8192, (int64_t i = 0; i < n; i++), { y[i] = vlp_tanh(x[i]); });
}

static void tanh_backward(vlp_tensor *t, vlp_exec *ex) {
    const float *x = vlp_f(t->src[0]), *dy = t->grad;
    float *dx = t->src[0]->grad;
    int64_t n = t->numel;
    VLP_PARFOR(ex->nthreads, n > 8192, (int64_t i = 0; i < n; i++), {
        float th = vlp_tanh(x[i]);
        dx[i] += dy[i] * (1.0f - th * th);
    });
}

const vlp_op_info vlp_op_tanh = {"tanh", tanh_forward, tanh_backward, NULL};
