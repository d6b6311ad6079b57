/* CLIP preprocessing with Pillow 9.4's integer arithmetic (see
 * tests/fixtures/clip/README.md, "images/"): resize the shorter side to n
 * (bicubic a = -0.5, separable, 22-bit fixed point, uint8 between the passes;
 * nearest neighbour for P and 1; premultiplied alpha for RGBA and LA), centre crop
 * with round-half-even offsets, convert to RGB, normalise in float32.
 *
 * Only the pixels inside the crop are computed: every output pixel of Pillow's
 * resampler depends only on its own tap weights, so resizing the full image and
 * cropping gives the same bytes as resampling just the crop window. */
#include "internal.h"
#include "vlp_image.h"

#include <math.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define PRECISION_BITS 22

static inline uint8_t muldiv255(unsigned x, unsigned y) {
    unsigned t = x * y + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Pillow's bicubic_filter (a = -0.5), same expression order. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Tap bounds and 22-bit weights for output indices [o0, o0 + n) of a resize from
 * in_size to out_size (Pillow's precompute_coeffs + normalize_coeffs_8bpc).
 * bounds[2i] = first source index, bounds[2i+1] = tap count; k has ksize per index. */
typedef struct {
    int ksize, in_size;
    int *bounds;
    int32_t *k;
    int32_t *k8; /* AVX2 horizontal pass: weights of output pairs, each broadcast x4 */
} coeffs;

static int coeffs_make(coeffs *c, int in_size, int out_size, int o0, int n) {
    double scale = (double)(float)in_size / out_size; /* Pillow: (double)(in1 - in0) / outSize, box in float */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->in_size = in_size;
    c->bounds = (int *)malloc(sizeof(int) * 2 * (size_t)n);
    c->k = (int32_t *)malloc(sizeof(int32_t) * (size_t)ksize * (size_t)n);
    double *w = (double *)malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->k || !w) {
        free(c->bounds);
        free(c->k);
        free(w);
        c->bounds = NULL;
        c->k = NULL;
        c->k8 = NULL;
        return VLP_ERR_NOMEM;
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the buffer safe */
        for (int x = 0; x < xmax; x++) {
            double v = bicubic((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = c->k + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++) k[x] = 0;
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    free(w);
    c->k8 = NULL;
    return 0;
}

static int coeffs_make_pairs(coeffs *c, int n) {
    int pairs = n / 2, ks = c->ksize;
    if (!pairs) return 0;
    c->k8 = (int32_t *)malloc(sizeof(int32_t) * (size_t)pairs * ks * 8);
    if (!c->k8) return VLP_ERR_NOMEM;
    for (int p = 0; p < pairs; p++)
        for (int x = 0; x < ks; x++)
            for (int l = 0; l < 8; l++) c->k8[((size_t)p * ks + x) * 8 + l] = c->k[(size_t)(2 * p + l / 4) * ks + x];
    return 0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
    free(c->k8);
}

/* Horizontal pass of one row: out[n*C] from the source row (C interleaved channels). */
static void hpass_row(const uint8_t *src, int C, const coeffs *hc, int n, uint8_t *out) {
    const int ks = hc->ksize;
    int i = 0;
#if defined(__AVX2__)
    /* two outputs per step in one 256-bit register: lanes 0-3 output i, 4-7 output i+1,
     * weights pre-interleaved in hc->k8 ([pair][tap][k_i x4, k_i+1 x4]) */
    if (C >= 3 && hc->k8) {
        for (; i + 1 < n; i += 2) {
            const uint8_t *p0 = src + (size_t)hc->bounds[2 * i] * C, *p1 = src + (size_t)hc->bounds[2 * i + 2] * C;
            const int32_t *k8 = hc->k8 + (size_t)(i / 2) * ks * 8;
            __m256i acc = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
            for (int x = 0; x < ks; x++) {
                int32_t a, b;
                memcpy(&a, p0 + (size_t)C * x, 4);
                memcpy(&b, p1 + (size_t)C * x, 4);
                __m256i v = _mm256_cvtepu8_epi32(_mm_unpacklo_epi32(_mm_cvtsi32_si128(a), _mm_cvtsi32_si128(b)));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_loadu_si256((const __m256i *)(k8 + 8 * x))));
            }
            int32_t s[8];
            _mm256_storeu_si256((__m256i *)s, acc);
            for (int ch = 0; ch < C; ch++) {
                out[C * i + ch] = clip8(s[ch]);
                out[C * (i + 1) + ch] = clip8(s[4 + ch]);
            }
        }
    }
#endif
    for (; i < n; i++) {
        const int xmin = hc->bounds[2 * i], cnt = hc->bounds[2 * i + 1];
        const int32_t *k = hc->k + (size_t)i * ks;
        const uint8_t *p = src + (size_t)xmin * C;
#if defined(__AVX2__)
        /* Pixels as int32 lanes, one tap per step: the same integer sums in another order.
         * The row is padded (see hpass_rows) and weights past cnt are 0, so every output
         * runs all ks taps: no data-dependent loop exit. */
        if (C >= 3) {
            (void)cnt;
            __m128i acc = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
            for (int x = 0; x < ks; x++) {
                int32_t px;
                memcpy(&px, p + (size_t)C * x, 4);
                __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
                acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[x])));
            }
            int32_t s[4];
            _mm_storeu_si128((__m128i *)s, acc);
            for (int ch = 0; ch < C; ch++) out[C * i + ch] = clip8(s[ch]);
            continue;
        }
#endif
        if (C == 3) {
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < cnt; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            out[3 * i] = clip8(s0);
            out[3 * i + 1] = clip8(s1);
            out[3 * i + 2] = clip8(s2);
        } else if (C == 1) {
            int32_t s0 = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < cnt; x++) s0 += p[x] * k[x];
            out[i] = clip8(s0);
        } else {
            int32_t s[4];
            for (int ch = 0; ch < C; ch++) s[ch] = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < cnt; x++)
                for (int ch = 0; ch < C; ch++) s[ch] += p[C * x + ch] * k[x];
            for (int ch = 0; ch < C; ch++) out[C * i + ch] = clip8(s[ch]);
        }
    }
}

/* Python's round((d) / 2) for d >= 0: half to even. */
static int round_half_even_div2(int d) {
    int h = d / 2;
    if ((d & 1) && (h & 1)) h++;
    return h;
}

#define MAX_RESIZED (1 << 26)

/* torchvision: short -> n, long -> int(n * long / short). 0, or -1 when the long side
 * would exceed MAX_RESIZED (extreme aspect ratios). */
static int resized_size(int w, int h, int n, int *ow, int *oh) {
    double l = w <= h ? (double)((int64_t)n * h) / (double)w : (double)((int64_t)n * w) / (double)h;
    if (l > MAX_RESIZED) return -1;
    if (w <= h) {
        *ow = n;
        *oh = (int)l;
    } else {
        *oh = n;
        *ow = (int)l;
    }
    return 0;
}

/* Resampled and cropped pixels of img (own mode, premultiplied for RGBA/LA as Pillow
 * does) into dst[n*n*C]. */
static int resize_crop_pixels(const vlp_image *img, int n, uint8_t *dst) {
    const int w = img->width, h = img->height, C = img->channels;
    int ow, oh;
    if (resized_size(w, h, n, &ow, &oh)) {
        vlp_set_error("cannot resize a %dx%d image to %d on the shorter side: the longer side would exceed %d pixels",
                      w, h, n, MAX_RESIZED);
        return VLP_ERR_ARG;
    }
    const int left = round_half_even_div2(ow - n), top = round_half_even_div2(oh - n);
    const size_t sstride = (size_t)w * C;

    if (ow == w && oh == h) { /* Pillow returns a copy: nothing resampled */
        for (int y = 0; y < n; y++)
            memcpy(dst + (size_t)y * n * C, img->pixels + (size_t)(top + y) * sstride + (size_t)left * C, (size_t)n * C);
        return 0;
    }

    if (img->mode == VLP_IMG_P || img->mode == VLP_IMG_1) {
        /* Pillow's ImagingScaleAffine: source coordinate accumulated in double */
        int *xt = (int *)malloc(sizeof(int) * (size_t)n); /* source column of crop columns */
        if (!xt) goto nomem;
        double ax = (double)(float)w / ow, ay = (double)(float)h / oh;
        double xo = 0.0 + ax * 0.5;
        for (int x = 0; x < left + n; x++) {
            int xi = xo < 0.0 ? -1 : (int)xo;
            if (x >= left) xt[x - left] = xi < 0 ? 0 : xi >= w ? w - 1 : xi;
            xo += ax;
        }
        double yo = 0.0 + ay * 0.5;
        for (int y = 0; y < top + n; y++) {
            if (y >= top) {
                int yi = yo < 0.0 ? -1 : (int)yo;
                if (yi < 0) yi = 0;
                if (yi >= h) yi = h - 1;
                const uint8_t *srow = img->pixels + (size_t)yi * sstride;
                uint8_t *drow = dst + (size_t)(y - top) * n;
                for (int x = 0; x < n; x++) drow[x] = srow[xt[x]];
            }
            yo += ay;
        }
        free(xt);
        return 0;
    }

    const int need_h = ow != w, need_v = oh != h;
    const int premul = img->mode == VLP_IMG_RGBA || img->mode == VLP_IMG_LA;
    int rc = VLP_ERR_NOMEM;
    coeffs hc = {0}, vc = {0};
    uint8_t *pre = NULL, *tmp = NULL;
    const uint8_t *src = img->pixels;

    /* source rows the vertical pass reads */
    int y_first, y_last;
    if (need_v) {
        if (coeffs_make(&vc, h, oh, top, n)) goto done;
        y_first = vc.bounds[0];
        y_last = vc.bounds[2 * (n - 1)] + vc.bounds[2 * (n - 1) + 1];
    } else {
        y_first = top;
        y_last = top + n;
    }
    if (need_h && coeffs_make(&hc, w, ow, left, n)) goto done;
    if (need_h && C >= 3 && coeffs_make_pairs(&hc, n)) goto done;

    if (premul) { /* RGBA -> RGBa, LA -> La on the rows used */
        pre = (uint8_t *)malloc(sstride * (size_t)(y_last - y_first));
        if (!pre) goto done;
        for (int y = y_first; y < y_last; y++) {
            const uint8_t *s = img->pixels + (size_t)y * sstride;
            uint8_t *d = pre + (size_t)(y - y_first) * sstride;
            for (int x = 0; x < w; x++, s += C, d += C) {
                unsigned a = s[C - 1];
                for (int ch = 0; ch < C - 1; ch++) d[ch] = muldiv255(s[ch], a);
                d[C - 1] = (uint8_t)a;
            }
        }
        src = pre - (size_t)y_first * sstride; /* index by absolute row */
    }

    /* horizontal pass -> rows [y_first, y_last) of n*C bytes (or a view into src) */
    const uint8_t *hrows;
    size_t hstride;
    if (need_h) {
        tmp = (uint8_t *)malloc((size_t)n * C * (size_t)(y_last - y_first));
        if (!tmp) goto done;
        /* each row copied into a buffer with ksize + 1 zero pixels of slack (see hpass_row) */
        uint8_t *padded = (uint8_t *)calloc(sstride + (size_t)(hc.ksize + 1) * C, 1);
        if (!padded) goto done;
        for (int y = y_first; y < y_last; y++) {
            memcpy(padded, src + (size_t)y * sstride, sstride);
            hpass_row(padded, C, &hc, n, tmp + (size_t)(y - y_first) * n * C);
        }
        free(padded);
        hrows = tmp;
        hstride = (size_t)n * C;
    } else {
        hrows = src + (size_t)y_first * sstride + (size_t)left * C;
        hstride = sstride;
    }

    if (need_v) {
        const int rowlen = n * C, ks = vc.ksize;
        int32_t *acc = (int32_t *)malloc(sizeof(int32_t) * (size_t)rowlen);
        if (!acc) goto done;
        for (int i = 0; i < n; i++) {
            const int ymin = vc.bounds[2 * i] - y_first, cnt = vc.bounds[2 * i + 1];
            const int32_t *k = vc.k + (size_t)i * ks;
            for (int j = 0; j < rowlen; j++) acc[j] = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < cnt; t++) {
                const uint8_t *r = hrows + (size_t)(ymin + t) * hstride;
                const int32_t kt = k[t];
                for (int j = 0; j < rowlen; j++) acc[j] += r[j] * kt;
            }
            uint8_t *d = dst + (size_t)i * rowlen;
            for (int j = 0; j < rowlen; j++) d[j] = clip8(acc[j]);
        }
        free(acc);
    } else {
        for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * n * C, hrows + (size_t)i * hstride, (size_t)n * C);
    }

    if (premul) { /* RGBa -> RGBA (rgba2rgbA), La -> LA (lA2la) */
        uint8_t *d = dst;
        for (size_t p = 0; p < (size_t)n * n; p++, d += C) {
            unsigned a = d[C - 1];
            if (img->mode == VLP_IMG_RGBA) {
                if (a != 0 && a != 255)
                    for (int ch = 0; ch < 3; ch++) {
                        unsigned v = 255u * d[ch] / a;
                        d[ch] = (uint8_t)(v > 255 ? 255 : v);
                    }
            } else {
                unsigned v = a ? 255u * d[0] / a : 0;
                d[0] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    rc = 0;
done:
    coeffs_free(&hc);
    coeffs_free(&vc);
    free(pre);
    free(tmp);
    if (rc) vlp_set_error("out of memory resizing a %dx%d image to %dx%d", w, h, ow, oh);
    return rc;
nomem:
    vlp_set_error("out of memory resizing a %dx%d image to %dx%d", w, h, ow, oh);
    return VLP_ERR_NOMEM;
}

static int check_image(const vlp_image *img, const char *fn) {
    if (!img || !img->pixels) {
        vlp_set_error("%s: image is NULL or has no pixels", fn);
        return VLP_ERR_ARG;
    }
    if (img->width <= 0 || img->height <= 0) {
        vlp_set_error("%s: image has an empty size (%dx%d)", fn, img->width, img->height);
        return VLP_ERR_ARG;
    }
    int want = img->mode == VLP_IMG_LA ? 2 : img->mode == VLP_IMG_RGB ? 3 : (img->mode == VLP_IMG_RGBA || img->mode == VLP_IMG_CMYK) ? 4 : 1;
    if (img->mode < VLP_IMG_L || img->mode > VLP_IMG_CMYK || img->channels != want) {
        vlp_set_error("%s: image mode %d with %d channels is not valid", fn, (int)img->mode, img->channels);
        return VLP_ERR_ARG;
    }
    return 0;
}

int vlp_image_resize_crop(const vlp_image *img, int size, vlp_image *out) {
    if (out) memset(out, 0, sizeof *out);
    int rc = check_image(img, "vlp_image_resize_crop");
    if (rc) return rc;
    if (!out || size <= 0 || size > 65536) {
        vlp_set_error("vlp_image_resize_crop: %s", !out ? "out is NULL" : "size must be in 1..65536");
        return VLP_ERR_ARG;
    }
    *out = *img;
    out->width = out->height = size;
    out->pixels = (uint8_t *)malloc((size_t)size * size * img->channels);
    if (!out->pixels) {
        vlp_set_error("vlp_image_resize_crop: out of memory");
        return VLP_ERR_NOMEM;
    }
    rc = resize_crop_pixels(img, size, out->pixels);
    if (rc) {
        free(out->pixels);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* Pillow's cmyk2rgb */
static inline uint8_t cmyk_ch(unsigned c, unsigned nk) {
    int v = (int)nk - (int)muldiv255(c, nk);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static inline uint8_t over_white(unsigned c, unsigned a) { return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u); }

/* Converts n pixels of mode img->mode (palette from img) to RGB. */
static void pixels_to_rgb(const vlp_image *img, const uint8_t *s, size_t n, int white, uint8_t *d) {
    switch (img->mode) {
    case VLP_IMG_L:
    case VLP_IMG_1:
        for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
        break;
    case VLP_IMG_LA:
        for (size_t i = 0; i < n; i++) {
            uint8_t v = white ? over_white(s[2 * i], s[2 * i + 1]) : s[2 * i];
            d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = v;
        }
        break;
    case VLP_IMG_RGB: memcpy(d, s, n * 3); break;
    case VLP_IMG_RGBA:
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) d[3 * i + c] = white ? over_white(s[4 * i + c], s[4 * i + 3]) : s[4 * i + c];
        break;
    case VLP_IMG_P:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = img->palette + 3 * s[i];
            unsigned a = img->palette_alpha[s[i]];
            for (int c = 0; c < 3; c++) d[3 * i + c] = white ? over_white(p[c], a) : p[c];
        }
        break;
    case VLP_IMG_CMYK:
        for (size_t i = 0; i < n; i++) {
            unsigned nk = 255u - s[4 * i + 3];
            for (int c = 0; c < 3; c++) d[3 * i + c] = cmyk_ch(s[4 * i + c], nk);
        }
        break;
    }
}

int vlp_image_to_rgb(const vlp_image *img, int composite_white, uint8_t *out) {
    int rc = check_image(img, "vlp_image_to_rgb");
    if (rc) return rc;
    if (!out) {
        vlp_set_error("vlp_image_to_rgb: out is NULL");
        return VLP_ERR_ARG;
    }
    pixels_to_rgb(img, img->pixels, (size_t)img->width * img->height, composite_white, out);
    return 0;
}

int vlp_image_to_rgba(const vlp_image *img, uint8_t *out) {
    int rc = check_image(img, "vlp_image_to_rgba");
    if (rc) return rc;
    if (!out) {
        vlp_set_error("vlp_image_to_rgba: out is NULL");
        return VLP_ERR_ARG;
    }
    size_t n = (size_t)img->width * img->height;
    const uint8_t *s = img->pixels;
    for (size_t i = 0; i < n; i++) {
        uint8_t *d = out + 4 * i;
        switch (img->mode) {
        case VLP_IMG_LA: d[0] = d[1] = d[2] = s[2 * i]; d[3] = s[2 * i + 1]; break;
        case VLP_IMG_RGBA: memcpy(d, s + 4 * i, 4); break;
        case VLP_IMG_P: memcpy(d, img->palette + 3 * s[i], 3); d[3] = img->palette_alpha[s[i]]; break;
        default: pixels_to_rgb(img, s + i * img->channels, 1, 0, d); d[3] = 255; break;
        }
    }
    return 0;
}

vlp_preprocess_config vlp_preprocess_clip(int size) {
    vlp_preprocess_config c = {size, {0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}, 0};
    return c;
}

int vlp_image_preprocess(const vlp_image *img, const vlp_preprocess_config *cfg, float *out) {
    int rc = check_image(img, "vlp_image_preprocess");
    if (rc) return rc;
    if (!cfg || !out) {
        vlp_set_error("vlp_image_preprocess: %s is NULL", cfg ? "out" : "cfg");
        return VLP_ERR_ARG;
    }
    const int n = cfg->size;
    if (n <= 0 || n > 65536) {
        vlp_set_error("vlp_image_preprocess: size %d must be in 1..65536", n);
        return VLP_ERR_ARG;
    }
    for (int c = 0; c < 3; c++)
        if (!(cfg->std[c] != 0.0f) || !isfinite(cfg->std[c]) || !isfinite(cfg->mean[c])) {
            vlp_set_error("vlp_image_preprocess: std[%d] = %g must be finite and non-zero (mean %g)", c, cfg->std[c],
                          cfg->mean[c]);
            return VLP_ERR_ARG;
        }
    const size_t np = (size_t)n * n;
    uint8_t *crop = (uint8_t *)malloc(np * img->channels + np * 3);
    if (!crop) {
        vlp_set_error("vlp_image_preprocess: out of memory for a %dx%d crop", n, n);
        return VLP_ERR_NOMEM;
    }
    uint8_t *rgb = crop + np * img->channels;
    if ((rc = resize_crop_pixels(img, n, crop))) {
        free(crop);
        return rc;
    }
    pixels_to_rgb(img, crop, np, cfg->composite_white, rgb);
    /* ToTensor (v / 255 in float32) then Normalize ((x - mean) / std in float32), tabulated */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - cfg->mean[c]) / cfg->std[c];
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * np;
        const float *l = lut[c];
        for (size_t i = 0; i < np; i++) o[i] = l[rgb[3 * i + c]];
    }
    free(crop);
    return 0;
}
