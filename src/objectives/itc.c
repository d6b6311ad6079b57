/* Image-text contrastive objectives: the CLIP loss (symmetric InfoNCE over L2-normalised
 * features, the engine's vlp_infonce op) and the SigLIP pairwise sigmoid loss, an engine op
 * written here with its forward and backward kernels.
 *
 * SigLIP (Zhai et al. 2023): logits L = exp(log_scale) * a @ b^T + bias, labels z = +1 on the
 * diagonal and -1 elsewhere; loss = (1/N) sum_ij softplus(-z_ij L_ij) = -(1/N) sum log
 * sigmoid(z L) (big_vision normalises by the batch size, not N^2). */
#include "../core/internal.h"
#include "../ops/gemm.h"

#include <math.h>

/* aux: L [N, N] then G = d loss / d L [N, N] (built in backward). */
vlp_tensor *vlp_siglip(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, vlp_tensor *log_scale, vlp_tensor *bias) {
    vlp_tensor *srcs[4] = {a, b, log_scale, bias};
    if (!vlp_check_srcs(g, "vlp_siglip", 4, srcs)) return NULL;
    char b1[96], b2[96], b3[96], b4[96];
    if (a->dtype || b->dtype || a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] ||
        a->shape[1] != b->shape[1] || !vlp_is_contiguous(a) || !vlp_is_contiguous(b) || log_scale->numel != 1 ||
        log_scale->dtype || bias->numel != 1 || bias->dtype) {
        vlp_graph_fail(g, "vlp_siglip: want a, b f32 [N, E] of one shape and scalar log_scale and bias; got %s, %s, "
                          "%s, %s",
                       vlp_shape_str(a, b1, sizeof b1), vlp_shape_str(b, b2, sizeof b2),
                       vlp_shape_str(log_scale, b3, sizeof b3), vlp_shape_str(bias, b4, sizeof b4));
        return NULL;
    }
    vlp_tensor *t = vlp_new_node(g, OP_SIGLIP, VLP_F32, 0, NULL, a, b, log_scale, bias);
    if (!t) return NULL;
    int64_t N = a->shape[0];
    t->aux_bytes = (size_t)(2 * N * N + 2 * N + 1) * sizeof(float); /* + row sums in double */
    return t;
}

static inline double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

static void siglip_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1];
    int64_t N = a->shape[0], E = a->shape[1];
    float *L = t->aux;
    float s = expf(vlp_f(t->src[2])[0]), bias = vlp_f(t->src[3])[0];
    vlp_gemm(0, 1, (int)N, (int)N, (int)E, s, vlp_f(a), (int)E, vlp_f(b), (int)E, 0.0f, L, (int)N);
    /* per-row sums in double, added in row order: the same for any thread count */
    /* G's space is free until backward; an even float offset keeps the doubles aligned */
    double *rows = (double *)((float *)t->aux + N * N + (N * N & 1));
    VLP_PARFOR(ex->nthreads, N > 64, (int64_t i = 0; i < N; i++), {
        double r = 0;
        for (int64_t j = 0; j < N; j++) {
            float l = L[i * N + j] + bias;
            L[i * N + j] = l;
            r += softplus(i == j ? -(double)l : (double)l);
        }
        rows[i] = r;
    });
    double loss = 0;
    for (int64_t i = 0; i < N; i++) loss += rows[i];
    vlp_f(t)[0] = (float)(loss / (double)N);
}

static void siglip_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *a = t->src[0], *b = t->src[1], *ls = t->src[2], *bt = t->src[3];
    int64_t N = a->shape[0], E = a->shape[1];
    const float *L = t->aux;
    float *G = (float *)t->aux + N * N;
    float k = t->grad[0] / (float)N, s = expf(vlp_f(ls)[0]), bias = vlp_f(bt)[0];
    /* d softplus(-z l)/dl = -z sigmoid(-z l): positives (z = 1) -sigmoid(-l), negatives sigmoid(l) */
    VLP_PARFOR(ex->nthreads, N > 64, (int64_t i = 0; i < N; i++), {
        for (int64_t j = 0; j < N; j++) {
            float l = L[i * N + j];
            G[i * N + j] = i == j ? -k / (1.0f + expf(l)) : k / (1.0f + expf(-l));
        }
    });
    /* d/d bias = sum G; d/d log_scale = sum G * (L - bias), since L - bias is linear in exp(log_scale) */
    double dbias = 0, dls = 0;
    for (int64_t i = 0; i < N * N; i++) {
        dbias += G[i];
        dls += (double)G[i] * ((double)L[i] - bias);
    }
    if (vlp_needs_grad(bt)) bt->grad[0] += (float)dbias;
    if (vlp_needs_grad(ls)) ls->grad[0] += (float)dls;
    if (vlp_needs_grad(a)) /* da += s G b */
        vlp_gemm(0, 0, (int)N, (int)E, (int)N, s, G, (int)N, vlp_f(b), (int)E, 1.0f, a->grad, (int)E);
    if (vlp_needs_grad(b)) /* db += s G^T a */
        vlp_gemm(1, 0, (int)N, (int)E, (int)N, s, G, (int)N, vlp_f(a), (int)E, 1.0f, b->grad, (int)E);
}

const vlp_op_info vlp_op_siglip = {"siglip", siglip_forward, siglip_backward, NULL};

/* ---- the objective as used by the trainer ------------------------------------------------- */

vlp_tensor *vlp_itc_loss(vlp_graph *g, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *log_scale, vlp_tensor *bias,
                         int kind) {
    vlp_tensor *a = vlp_l2norm(g, img, 1e-12f), *b = vlp_l2norm(g, txt, 1e-12f);
    if (kind == VLP_ITC_SIGLIP) return vlp_siglip(g, a, b, log_scale, bias);
    if (kind != VLP_ITC_CLIP) {
        vlp_graph_fail(g, "vlp_itc_loss: unknown loss kind %d", kind);
        return NULL;
    }
    return vlp_infonce(g, a, b, log_scale);
}
