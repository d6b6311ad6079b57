/* Training augmentation: torchvision's RandomResizedCrop (open_clip's train transform:
 * scale (0.9, 1), ratio (3/4, 4/3), bicubic), then convert to RGB and normalise. The
 * crop box is drawn as torchvision's get_params does (10 tries, then a centre crop with
 * the ratio clamped). The crop is taken in the image's own mode and converted to RGB
 * before resizing; the resize is Pillow-style antialiased bicubic (a = -0.5) computed in
 * float, so it is close to, not bit-equal with, Pillow's 8-bit fixed-point result. */
#include "data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t data_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *rng, double lo, double hi) {
    return lo + (hi - lo) * (double)(data_splitmix64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n) (n >= 1), without modulo bias. */
static int64_t below(uint64_t *rng, int64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n, x;
    do x = data_splitmix64(rng);
    while (x >= lim);
    return (int64_t)(x % (uint64_t)n);
}

static double cubic(double x) {
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

typedef struct {
    int *first, *count, ksize;
    float *w;
} taps;

static int taps_make(taps *t, int in, int out) {
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale, support = 2 * fs;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc(sizeof(int) * (size_t)out);
    t->count = malloc(sizeof(int) * (size_t)out);
    t->w = malloc(sizeof(float) * (size_t)out * (size_t)t->ksize);
    if (!t->first || !t->count || !t->w) return VLP_ERR_NOMEM;
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int x0 = (int)(center - support + 0.5), x1 = (int)(center + support + 0.5);
        if (x0 < 0) x0 = 0;
        if (x1 > in) x1 = in;
        int n = x1 - x0;
        if (n > t->ksize) n = t->ksize;
        double sum = 0, ww[64 + 1];
        double *wd = t->ksize <= 64 ? ww : malloc(sizeof(double) * (size_t)t->ksize);
        if (!wd) return VLP_ERR_NOMEM;
        for (int k = 0; k < n; k++) sum += wd[k] = cubic((k + x0 - center + 0.5) / fs);
        for (int k = 0; k < n; k++) t->w[(size_t)i * t->ksize + k] = (float)(sum != 0 ? wd[k] / sum : 0);
        if (wd != ww) free(wd);
        t->first[i] = x0;
        t->count[i] = n;
    }
    return 0;
}

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

static float clamp255(float v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

int data_random_resized_crop(const vlp_image *img, const vlp_preprocess_config *cfg, float scale_min,
                             uint64_t *rng, float *out) {
    const int W = img->width, H = img->height, S = cfg->size;
    if (W <= 0 || H <= 0 || !img->pixels || S <= 0) {
        vlp_set_error("random resized crop: empty image or size");
        return VLP_ERR_ARG;
    }
    /* torchvision RandomResizedCrop.get_params */
    double area = (double)W * H, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    int cw = 0, ch = 0, cx = 0, cy = 0, found = 0;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        double target = area * uniform(rng, scale_min, 1.0), ar = exp(uniform(rng, lr0, lr1));
        int w = (int)lround(sqrt(target * ar)), h = (int)lround(sqrt(target / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            cy = (int)below(rng, H - h + 1);
            cx = (int)below(rng, W - w + 1);
            cw = w;
            ch = h;
            found = 1;
        }
    }
    if (!found) {
        double in_ratio = (double)W / H;
        if (in_ratio < 3.0 / 4.0) {
            cw = W;
            ch = (int)lround(cw / (3.0 / 4.0));
        } else if (in_ratio > 4.0 / 3.0) {
            ch = H;
            cw = (int)lround(ch * (4.0 / 3.0));
        } else {
            cw = W;
            ch = H;
        }
        if (cw > W) cw = W;
        if (ch > H) ch = H;
        if (cw < 1) cw = 1;
        if (ch < 1) ch = 1;
        cy = (H - ch) / 2;
        cx = (W - cw) / 2;
    }
    /* crop in the image's mode, then convert to RGB (palette, CMYK, alpha as CLIP does) */
    vlp_image crop = *img;
    crop.width = cw;
    crop.height = ch;
    crop.pixels = malloc((size_t)cw * ch * img->channels);
    uint8_t *rgb = malloc((size_t)cw * ch * 3);
    float *mid = malloc(sizeof(float) * (size_t)ch * S * 3);
    taps tx = {0}, ty = {0};
    int rc = VLP_ERR_NOMEM;
    if (!crop.pixels || !rgb || !mid || taps_make(&tx, cw, S) || taps_make(&ty, ch, S)) {
        vlp_set_error("random resized crop: out of memory");
        goto done;
    }
    for (int y = 0; y < ch; y++)
        memcpy(crop.pixels + (size_t)y * cw * img->channels,
               img->pixels + ((size_t)(cy + y) * W + cx) * img->channels, (size_t)cw * img->channels);
    if ((rc = vlp_image_to_rgb(&crop, cfg->composite_white, rgb))) goto done;
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < S; x++) {
            const float *w = tx.w + (size_t)x * tx.ksize;
            const uint8_t *src = rgb + ((size_t)y * cw + tx.first[x]) * 3;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < tx.count[x]; k++) {
                r += w[k] * src[3 * k];
                g += w[k] * src[3 * k + 1];
                b += w[k] * src[3 * k + 2];
            }
            float *m = mid + ((size_t)y * S + x) * 3;
            m[0] = clamp255(r);
            m[1] = clamp255(g);
            m[2] = clamp255(b);
        }
    const size_t plane = (size_t)S * S;
    for (int y = 0; y < S; y++) {
        const float *w = ty.w + (size_t)y * ty.ksize;
        for (int x = 0; x < S; x++) {
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < ty.count[y]; k++) {
                const float *m = mid + ((size_t)(ty.first[y] + k) * S + x) * 3;
                acc[0] += w[k] * m[0];
                acc[1] += w[k] * m[1];
                acc[2] += w[k] * m[2];
            }
            for (int c = 0; c < 3; c++)
                out[c * plane + (size_t)y * S + x] = (clamp255(acc[c]) / 255.0f - cfg->mean[c]) / cfg->std[c];
        }
    }
    rc = 0;
done:
    taps_free(&tx);
    taps_free(&ty);
    free(crop.pixels);
    free(rgb);
    free(mid);
    return rc;
}
