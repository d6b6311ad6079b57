/* Captioning language modelling with teacher forcing: the decoder reads ids[0..T-1]
 * (bos first) and predicts ids[1..T]; padded positions are ignored. */
#include "vlp_vl.h"

#include "core/internal.h"

void vlp_lm_labels(const int32_t *ids, const int32_t *mask, int n, int T, int32_t *labels) {
    for (int r = 0; r < n; r++)
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)r * T + t;
            labels[i] = t + 1 < T && (!mask || mask[i + 1]) ? ids[i + 1] : -100;
        }
}

vlp_tensor *vlp_vl_lm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *ids, vlp_tensor *mask,
                           vlp_tensor *labels) {
    vlp_tensor *logits = vlp_vl_caption_logits(g, m, img, ids, mask);
    if (!logits) return NULL;
    int64_t s[2] = {logits->shape[0] * logits->shape[1], logits->shape[2]};
    return vlp_cross_entropy(g, vlp_reshape(g, logits, 2, s), labels, -100);
}
