/* Sampling ops (no gradient). sample_negatives draws, per row of a [B, B] score
 * matrix, one column other than the diagonal with probability proportional to
 * exp(score * scale), scale = exp(log_scale) (1 without one): ALBEF's hard negatives for image-text matching, drawn inside the
 * forward pass so they follow the current similarities. */
#include "../core/internal.h"

#include <math.h>

vlp_tensor *vlp_sample_negatives_scaled(vlp_graph *g, vlp_tensor *scores, vlp_tensor *log_scale) {
    if (!vlp_check_srcs(g, "vlp_sample_negatives", 1, &scores)) return NULL;
    char b1[96];
    if (scores->dtype != VLP_F32 || scores->ndim != 2 || scores->shape[0] != scores->shape[1] ||
        scores->shape[0] < 2 || !vlp_is_contiguous(scores)) {
        vlp_graph_fail(g, "vlp_sample_negatives: want contiguous f32 [B, B] scores with B >= 2; got %s",
                       vlp_shape_str(scores, b1, sizeof b1));
        return NULL;
    }
    if (log_scale && (log_scale->dtype != VLP_F32 || log_scale->numel != 1)) {
        vlp_graph_fail(g, "vlp_sample_negatives: want a one-element f32 log scale; got %s",
                       vlp_shape_str(log_scale, b1, sizeof b1));
        return NULL;
    }
    int64_t shape[1] = {scores->shape[0]};
    return vlp_new_node(g, OP_SAMPLE_NEGATIVES, VLP_I32, 1, shape, scores, log_scale, NULL, NULL);
}

vlp_tensor *vlp_sample_negatives(vlp_graph *g, vlp_tensor *scores) { return vlp_sample_negatives_scaled(g, scores, NULL); }

static void sample_negatives_forward(vlp_tensor *t, vlp_exec *ex) {
    const float *s = vlp_f(t->src[0]);
    int64_t B = t->src[0]->shape[0];
    /* the scores' temperature, read when the op runs (it is trained); no gradient flows */
    const double f = t->src[1] ? exp((double)vlp_f(t->src[1])[0]) : 1.0;
    uint64_t key = vlp_mix64(ex->seed ^ vlp_mix64(ex->step * 0x100000001b3ull + (uint64_t)t->id + 0x5A3Bull));
    for (int64_t i = 0; i < B; i++) {
        const float *r = s + i * B;
        float m = -INFINITY;
        for (int64_t j = 0; j < B; j++)
            if (j != i && r[j] > m) m = r[j];
        double tot = 0;
        for (int64_t j = 0; j < B; j++)
            if (j != i && isfinite(r[j])) tot += exp(f * (double)(r[j] - m));
        int64_t pick = -1;
        if (tot > 0 && isfinite(tot)) {
            double u = (double)vlp_u01(key, (uint64_t)i) * tot, acc = 0;
            for (int64_t j = 0; j < B && pick < 0; j++) {
                if (j == i || !isfinite(r[j])) continue;
                acc += exp(f * (double)(r[j] - m));
                if (u < acc) pick = j;
            }
            /* rounding at the top end: the last eligible column */
            for (int64_t j = B - 1; pick < 0 && j >= 0; j--)
                if (j != i && isfinite(r[j])) pick = j;
        }
        if (pick < 0) /* no finite score: uniform over the others */
            pick = (i + 1 + (int64_t)(vlp_u01(key, (uint64_t)(B + i)) * (float)(B - 1))) % B;
        if (pick == i) pick = (i + 1) % B;
        vlp_i(t)[i] = (int32_t)pick;
    }
}

const vlp_op_info vlp_op_sample_negatives = {"sample_negatives", sample_negatives_forward, NULL, NULL};
