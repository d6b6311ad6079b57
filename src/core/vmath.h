/* Vectorisable float maths for elementwise kernels. libm's expf/erff/tanhf are
 * calls the compiler cannot vectorise, and activations over millions of
 * elements per step spent most of their time there. These use only arithmetic,
 * comparisons and int<->float conversions, so gcc -O3 turns loops over them
 * into SIMD code. Accuracy: exp within 1e-7 relative; erf within 4e-7 absolute;
 * tanh within 2e-7 absolute (measured over [-90, 90] against double libm): below float32 resolution of the activations. */
#ifndef VLP_VMATH_H
#define VLP_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float vlp_exp(float x) {
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    float fn = __builtin_rintf(x * 1.44269504088896341f); /* n = round(x / ln 2) */
    int n = (int)fn;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f; /* x - n ln2 in two parts (Cephes) */
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    /* 2^n, split in two factors so n in [-127, 128] never overflows the exponent field */
    int n1 = n >> 1, n2 = n - n1;
    /* unsigned shifts: a NaN x gives a garbage n (p is NaN anyway) without UB */
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

static inline float vlp_sigmoid(float x) { return 1.0f / (1.0f + vlp_exp(-x)); }

/* tanh(x) = 1 - 2 / (exp(2x) + 1); near 0 the odd Taylor series keeps relative accuracy. */
static inline float vlp_tanh(float x) {
    float big = 1.0f - 2.0f / (vlp_exp(2.0f * x) + 1.0f);
    float x2 = x * x;
    float small = x * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
    return (x > -0.125f && x < 0.125f) ? small : big;
}

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is 1 to float precision): a rational fit
 * of degrees 5 / 5 in x^2 (bench/fit_erf.py; 1e-7 in double arithmetic, within 4e-7 absolute in
 * float). Ten FMAs and one division: a quarter of the cost of the erfc-times-exp form it
 * replaced, which made exact GELU a fifth of a ViLT training step. */
static inline float vlp_erf(float x) {
    float xc = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x; /* a NaN fails both tests and stays NaN */
    float t = xc * xc;
    float p = 2.0847385047984e-06f;
    p = p * t + 2.8501000082505404e-04f;
    p = p * t + 3.6924591922237607e-03f;
    p = p * t + 5.251300949445015e-02f;
    p = p * t + 1.8844699998674502e-01f;
    p = p * t + 1.128379065028624f;
    float q = 3.846657209655158e-05f;
    q = q * t + 1.1484927923803723e-03f;
    q = q * t + 1.4815373557454018e-02f;
    q = q * t + 1.1332197312236227e-01f;
    q = q * t + 5.003390859680834e-01f;
    q = q * t + 1.0f;
    float r = xc * p / q;
    r = r > 1.0f ? 1.0f : r;
    return r < -1.0f ? -1.0f : r;
}

/* Activation values (forward kernels and the GEMM epilogue use these same definitions, so a
 * fused epilogue is bit-identical to the separate op). */
static inline float vlp_gelu_f(float x) { return 0.5f * x * (1.0f + vlp_erf(x * 0.70710678118654752f)); }
static inline float vlp_gelu_tanh_f(float x) {
    float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + vlp_tanh(u));
}
static inline float vlp_quick_gelu_f(float x) { return x * vlp_sigmoid(1.702f * x); }

/* Row reductions with 16 running partial sums. Strict FP order forbids gcc from reordering a
 * plain `s += x[i]`, so that loop runs one dependent add per element (~4 cycles each): row
 * statistics of layernorm cost as much as the attention of a ViT. The 16 sums live in vector
 * registers; the order is fixed, so results do not depend on the run or the thread count. */
static inline float vlp_acc16_total(const float *acc, float tail) {
    float s8[8];
    for (int j = 0; j < 8; j++) s8[j] = acc[j] + acc[j + 8];
    float s4[4];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    return ((s4[0] + s4[2]) + (s4[1] + s4[3])) + tail;
}

static inline float vlp_rsum(const float *x, int64_t n) {
    float acc[16] = {0}, tail = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    for (; i < n; i++) tail += x[i];
    return vlp_acc16_total(acc, tail);
}

static inline float vlp_rdot(const float *a, const float *b, int64_t n) {
    float acc[16] = {0}, tail = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) tail += a[i] * b[i];
    return vlp_acc16_total(acc, tail);
}

/* sum of (x - mu)^2 */
static inline float vlp_rsqdev(const float *x, float mu, int64_t n) {
    float acc[16] = {0}, tail = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += (x[i + j] - mu) * (x[i + j] - mu);
    for (; i < n; i++) tail += (x[i] - mu) * (x[i] - mu);
    return vlp_acc16_total(acc, tail);
}

/* log(sum exp x), max-shifted: decoding scores (the log-normaliser of a 30k-word vocabulary, once
 * per row and step). vlp_exp and 16 partial sums, so it vectorises (libm's exp in double took a
 * fifth of answer ranking); within ~1e-6 relative. A -inf entry adds exp(-87.3) ~ 1e-38. */
static inline float vlp_logsumexp(const float *x, int64_t n) {
    float m16[16], mx = -INFINITY;
    int64_t i = 0;
    for (int j = 0; j < 16; j++) m16[j] = -INFINITY;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) m16[j] = x[i + j] > m16[j] ? x[i + j] : m16[j];
    for (int j = 0; j < 16; j++) mx = m16[j] > mx ? m16[j] : mx;
    for (int64_t k = i; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    float acc[16] = {0}, tail = 0;
    for (i = 0; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += vlp_exp(x[i + j] - mx);
    for (; i < n; i++) tail += vlp_exp(x[i] - mx);
    return logf(vlp_acc16_total(acc, tail)) + mx;
}

#endif
