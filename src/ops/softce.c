/* Cross-entropy against soft targets (distillation, e.g. ALBEF's momentum-teacher ITC):
 * loss = mean_n -sum_c t[n,c] * log_softmax(x[n])_c. The softmax is the saved state;
 * targets get a gradient too (-log_softmax / N) when they need one. */
#include "../core/internal.h"

#include <math.h>

vlp_tensor *vlp_soft_cross_entropy(vlp_graph *g, vlp_tensor *logits, vlp_tensor *targets) {
    vlp_tensor *srcs[2] = {logits, targets};
    if (!vlp_check_srcs(g, "vlp_soft_cross_entropy", 2, srcs)) return NULL;
    char b1[96], b2[96];
    if (logits->dtype || targets->dtype || logits->ndim != 2 || targets->ndim != 2 ||
        logits->shape[0] != targets->shape[0] || logits->shape[1] != targets->shape[1] ||
        !vlp_is_contiguous(logits) || !vlp_is_contiguous(targets)) {
        vlp_graph_fail(g, "vlp_soft_cross_entropy: logits %s and targets %s must be contiguous f32 [N, C] alike",
                       vlp_shape_str(logits, b1, sizeof b1), vlp_shape_str(targets, b2, sizeof b2));
        return NULL;
    }
    vlp_tensor *t = vlp_new_node(g, OP_SOFT_CE, VLP_F32, 0, NULL, logits, targets, NULL, NULL);
    if (t) t->aux_bytes = (size_t)logits->numel * sizeof(float);
    return t;
}

static void soft_ce_forward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    const float *x = vlp_f(t->src[0]), *tg = vlp_f(t->src[1]);
    int64_t N = t->src[0]->shape[0], C = t->src[0]->shape[1];
    float *P = t->aux;
    double loss = 0;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * C, *tr = tg + r * C;
        float m = -INFINITY;
        for (int64_t j = 0; j < C; j++) m = xr[j] > m ? xr[j] : m;
        double s = 0;
        for (int64_t j = 0; j < C; j++) s += exp((double)(xr[j] - m));
        double lse = log(s) + m;
        for (int64_t j = 0; j < C; j++) {
            P[r * C + j] = (float)exp((double)xr[j] - lse);
            loss -= (double)tr[j] * ((double)xr[j] - lse);
        }
    }
    vlp_f(t)[0] = (float)(loss / (double)N);
}

static void soft_ce_backward(vlp_tensor *t, vlp_exec *ex) {
    (void)ex;
    vlp_tensor *xt = t->src[0], *tt = t->src[1];
    const float *x = vlp_f(xt), *tg = vlp_f(tt), *P = t->aux;
    int64_t N = xt->shape[0], C = xt->shape[1];
    float k = t->grad[0] / (float)N;
    for (int64_t r = 0; r < N; r++) {
        const float *pr = P + r * C, *tr = tg + r * C;
        if (vlp_needs_grad(xt)) {
            float st = 0;
            for (int64_t j = 0; j < C; j++) st += tr[j];
            for (int64_t j = 0; j < C; j++) xt->grad[r * C + j] += k * (st * pr[j] - tr[j]);
        }
        if (vlp_needs_grad(tt))
            for (int64_t j = 0; j < C; j++) tt->grad[r * C + j] -= k * logf(pr[j] > 1e-30f ? pr[j] : 1e-30f);
    }
    (void)x;
}

const vlp_op_info vlp_op_soft_ce = {"soft_cross_entropy", soft_ce_forward, soft_ce_backward, NULL};
