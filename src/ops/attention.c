/* Fused multi-head scaled dot-product attention.
 *
 * One task per (batch, head): S = Q K^T * scale, masks, softmax, O = P V, all
 * with single-threaded GEMMs on the strided head slices, so q/k/v can be column
 * views of one fused qkv projection and nothing is transposed or copied. The
 * probabilities P are the saved state for backward ([B, H, Tq, Tk] floats); in
 * inference graphs that buffer is reused as workspace.
 *
 * A query whose keys are all masked gets zero output (PyTorch gives NaN). */
#include "../core/internal.h"
#include "../core/vmath.h"
#include "gemm.h"

#include <math.h>
#include <omp.h>

/* ip: [0] heads, [1] causal, [2] B, [3] Tq, [4] Tk, [5] D, [6] key_mask length */

vlp_tensor *vlp_attention(vlp_graph *g, vlp_tensor *q, vlp_tensor *k, vlp_tensor *v, int heads, int flags,
                          vlp_tensor *key_mask) {
    vlp_tensor *srcs[3] = {q, k, v};
    if (!vlp_check_srcs(g, "vlp_attention", 3, srcs)) return NULL;
    char b1[96], b2[96], b3[96], b4[96];
    vlp_shape_str(q, b1, sizeof b1);
    vlp_shape_str(k, b2, sizeof b2);
    vlp_shape_str(v, b3, sizeof b3);
    if (q->dtype || k->dtype || v->dtype || q->ndim != 3 || k->ndim != 3 || v->ndim != 3) {
        vlp_graph_fail(g, "vlp_attention: q %s, k %s, v %s must be f32 [B, T, D]", b1, b2, b3);
        return NULL;
    }
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], D = q->shape[2];
    if (k->shape[0] != B || v->shape[0] != B || v->shape[1] != Tk || k->shape[2] != D || v->shape[2] != D) {
        vlp_graph_fail(g, "vlp_attention: shapes do not fit: q %s, k %s, v %s (want k, v [B, Tk, D])", b1, b2, b3);
        return NULL;
    }
    if (heads <= 0 || D % heads) {
        vlp_graph_fail(g, "vlp_attention: width %lld is not divisible by %d heads", (long long)D, heads);
        return NULL;
    }
    if (!vlp_rows_uniform(q) || !vlp_rows_uniform(k) || !vlp_rows_uniform(v)) {
        vlp_graph_fail(g, "vlp_attention: q %s, k %s, v %s need a contiguous last dim and uniform row stride", b1, b2,
                       b3);
        return NULL;
    }
    if ((flags & VLP_ATTN_CAUSAL) && Tq != Tk) {
        vlp_graph_fail(g, "vlp_attention: causal mask needs Tq == Tk (got %lld, %lld)", (long long)Tq, (long long)Tk);
        return NULL;
    }
    /* a mask shorter than Tk covers the first keys only; the rest are always attended
     * (single-stream fusion: padded text first, then image tokens that are never padded) */
    if (key_mask && (key_mask->dtype != VLP_I32 || key_mask->ndim != 2 || key_mask->shape[0] != B ||
                     key_mask->shape[1] > Tk || !vlp_is_contiguous(key_mask))) {
        vlp_graph_fail(g, "vlp_attention: key_mask %s must be i32 [%lld, <= %lld]",
                       vlp_shape_str(key_mask, b4, sizeof b4), (long long)B, (long long)Tk);
        return NULL;
    }
    int64_t shape[3] = {B, Tq, D};
    vlp_tensor *t = vlp_new_node(g, OP_ATTENTION, VLP_F32, 3, shape, q, k, v, key_mask);
    if (!t) return NULL;
    t->ip[0] = heads;
    t->ip[1] = (flags & VLP_ATTN_CAUSAL) != 0;
    t->ip[2] = (int32_t)B;
    t->ip[3] = (int32_t)Tq;
    t->ip[4] = (int32_t)Tk;
    t->ip[5] = (int32_t)D;
    t->ip[6] = key_mask ? (int32_t)key_mask->shape[1] : 0;
    t->aux_bytes = (size_t)(B * heads * Tq * Tk) * sizeof(float);
    return t;
}

static size_t attention_scratch(const vlp_tensor *t, int nthreads) {
    (void)nthreads;
    return (size_t)t->ip[3] * (size_t)t->ip[4] * sizeof(float); /* dP of one head */
}

static void attention_forward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2], *km = t->src[3];
    int H = t->ip[0], causal = t->ip[1], B = t->ip[2], Tq = t->ip[3], Tk = t->ip[4], D = t->ip[5];
    int hd = D / H;
    int64_t ldq = vlp_ld(q), ldk = vlp_ld(k), ldv = vlp_ld(v);
    float scale = 1.0f / sqrtf((float)hd);
    float *P = t->aux, *O = vlp_f(t);
    VLP_PARFOR_DYNAMIC(ex->nthreads, 1, (int bh = 0; bh < B * H; bh++), {
        int b = bh / H, h = bh % H;
        const float *Q = vlp_f(q) + (int64_t)b * Tq * ldq + h * hd;
        const float *K = vlp_f(k) + (int64_t)b * Tk * ldk + h * hd;
        const float *V = vlp_f(v) + (int64_t)b * Tk * ldv + h * hd;
        int Tm = t->ip[6];
        const int32_t *mask = km ? vlp_i(km) + (int64_t)b * Tm : NULL;
        float *Pb = P + (int64_t)bh * Tq * Tk;
        vlp_gemm_st(0, 1, Tq, Tk, hd, scale, Q, (int)ldq, K, (int)ldk, 0.0f, Pb, Tk);
        for (int i = 0; i < Tq; i++) {
            float *row = Pb + (int64_t)i * Tk, m = -INFINITY;
            int jmax = causal ? i + 1 : Tk;
            for (int j = 0; j < Tk; j++) {
                if (j >= jmax || (mask && j < Tm && !mask[j])) row[j] = -INFINITY;
                m = row[j] > m ? row[j] : m;
            }
            if (m == -INFINITY) { /* nothing to attend to */
                memset(row, 0, (size_t)Tk * sizeof(float));
                continue;
            }
            for (int j = 0; j < Tk; j++) row[j] = vlp_exp(row[j] - m); /* vectorised */
            float inv = 1.0f / vlp_rsum(row, Tk);
            for (int j = 0; j < Tk; j++) row[j] *= inv;
        }
        vlp_gemm_st(0, 0, Tq, hd, Tk, 1.0f, Pb, Tk, V, (int)ldv, 0.0f, O + (int64_t)b * Tq * D + h * hd, D);
    });
}

static void attention_backward(vlp_tensor *t, vlp_exec *ex) {
    vlp_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    int H = t->ip[0], B = t->ip[2], Tq = t->ip[3], Tk = t->ip[4], D = t->ip[5];
    int hd = D / H;
    int64_t ldq = vlp_ld(q), ldk = vlp_ld(k), ldv = vlp_ld(v);
    float scale = 1.0f / sqrtf((float)hd);
    const float *P = t->aux, *dO = t->grad;
    int gq = vlp_needs_grad(q), gk = vlp_needs_grad(k), gv = vlp_needs_grad(v);
    /* Heads of one batch element write disjoint columns, batch elements disjoint
     * rows, so tasks never touch the same gradient element (even when q, k and v
     * are views of one tensor). */
    VLP_PARFOR_DYNAMIC(ex->nthreads, 1, (int bh = 0; bh < B * H; bh++), {
        int b = bh / H, h = bh % H;
        float *dS = vlp_scratch(ex, omp_get_thread_num());
        const float *Q = vlp_f(q) + (int64_t)b * Tq * ldq + h * hd;
        const float *K = vlp_f(k) + (int64_t)b * Tk * ldk + h * hd;
        const float *V = vlp_f(v) + (int64_t)b * Tk * ldv + h * hd;
        const float *Pb = P + (int64_t)bh * Tq * Tk;
        const float *dOb = dO + (int64_t)b * Tq * D + h * hd;
        if (gv) /* dV += P^T dO */
            vlp_gemm_st(1, 0, Tk, hd, Tq, 1.0f, Pb, Tk, dOb, D, 1.0f, v->grad + (int64_t)b * Tk * ldv + h * hd,
                        (int)ldv);
        if (!gq && !gk) continue;
        /* dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale */
        vlp_gemm_st(0, 1, Tq, Tk, hd, 1.0f, dOb, D, V, (int)ldv, 0.0f, dS, Tk);
        for (int i = 0; i < Tq; i++) {
            const float *pr = Pb + (int64_t)i * Tk;
            float *dr = dS + (int64_t)i * Tk, dot = 0;
            for (int j = 0; j < Tk; j++) dot += pr[j] * dr[j];
            for (int j = 0; j < Tk; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
        }
        if (gq) /* dQ += dS K */
            vlp_gemm_st(0, 0, Tq, hd, Tk, 1.0f, dS, Tk, K, (int)ldk, 1.0f, q->grad + (int64_t)b * Tq * ldq + h * hd,
                        (int)ldq);
        if (gk) /* dK += dS^T Q */
            vlp_gemm_st(1, 0, Tk, hd, Tq, 1.0f, dS, Tk, Q, (int)ldq, 1.0f, k->grad + (int64_t)b * Tk * ldk + h * hd,
                        (int)ldk);
    });
}

const vlp_op_info vlp_op_attention = {"attention", attention_forward, attention_backward, attention_scratch};
