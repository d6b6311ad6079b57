/* Masked image modelling: a fixed number of patches per image is replaced by the mask
 * token at the input, and a linear head regresses the per-patch normalised pixels of
 * the masked patches (MAE's norm_pix_loss target). */
#include "vlp_vl.h"

#include "core/internal.h"

#include <math.h>

int vlp_mim_mask(int B, int N, float ratio, uint64_t seed, uint8_t *mask) {
    if (B < 0 || N <= 0 || !mask || !(ratio > 0 && ratio < 1)) {
        vlp_set_error("vlp_mim_mask: bad arguments (N %d, ratio %g)", N, (double)ratio);
        return VLP_ERR_ARG;
    }
    int k = (int)lroundf(ratio * (float)N);
    if (k < 1) k = 1;
    if (k > N) k = N;
    int *perm = malloc((size_t)N * sizeof *perm);
    if (!perm) {
        vlp_set_error("out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int b = 0; b < B; b++) {
        uint64_t key = vlp_mix64(seed ^ vlp_mix64(0x4D494Dull + (uint64_t)b));
        for (int i = 0; i < N; i++) perm[i] = i;
        for (int i = 0; i < k; i++) { /* partial Fisher-Yates: the first k are the sample */
            int j = i + (int)(vlp_u01(key, (uint64_t)i) * (float)(N - i));
            if (j >= N) j = N - 1;
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        memset(mask + (int64_t)b * N, 0, (size_t)N);
        for (int i = 0; i < k; i++) mask[(int64_t)b * N + perm[i]] = 1;
    }
    free(perm);
    return k;
}

void vlp_mim_targets(const float *px, int B, int S, int P, float *out) {
    int G = S / P, D = 3 * P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *o = out + ((int64_t)b * G * G + gy * G + gx) * D;
                int k = 0;
                for (int ch = 0; ch < 3; ch++)
                    for (int y = 0; y < P; y++)
                        for (int x = 0; x < P; x++)
                            o[k++] = px[(((int64_t)b * 3 + ch) * S + gy * P + y) * S + gx * P + x];
                double mean = 0, var = 0;
                for (int i = 0; i < D; i++) mean += o[i];
                mean /= D;
                for (int i = 0; i < D; i++) var += (o[i] - mean) * (o[i] - mean);
                var /= D > 1 ? D - 1 : 1; /* unbiased, as torch.var */
                float inv = (float)(1.0 / sqrt(var + 1e-6));
                for (int i = 0; i < D; i++) o[i] = (float)(o[i] - mean) * inv;
            }
}

vlp_tensor *vlp_vl_mim_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *patches, vlp_tensor *target, vlp_tensor *sel,
                            int masked_per_image) {
    if (!m || !patches || !target || !sel || masked_per_image <= 0) {
        vlp_graph_fail(g, "vlp_vl_mim_loss: NULL argument or no masked patches");
        return NULL;
    }
    vlp_tensor *pred = vlp_linear(g, patches, m->mim_w, m->mim_b);
    /* mse over every element, rescaled to the mean over the masked patches only */
    vlp_tensor *l = vlp_mse(g, vlp_mul(g, pred, sel), target);
    return vlp_scale(g, l, (float)patches->shape[1] / (float)masked_per_image);
}
