/* vlp SGEMM: GotoBLAS/BLIS-style blocked single-precision GEMM (row-major).
 *
 * Structure (per thread, on its own [m0,m1) x [n0,n1) region of C):
 *   for pc over K in blocks of kc            (kc depends only on K -> deterministic)
 *     for ic over M in chunks of mc          (only with several B blocks: up to VLP_APACK_BYTES)
 *       pack A[ic, pc] once (all micro-panels of the chunk, reused for every B block)
 *       for jc over N in blocks of nc        (B block sized for L2)
 *         pack B[pc, jc] into NR-wide panels (Bp, kc x nc, L2 resident)
 *         for ir over the MR-row micro-panels of the chunk (prefetching the next into L1;
 *                without a chunk: packed just before use, MR x kc, L1 resident)
 *           for jr over the NR panels of Bp: micro-kernel MR x NR (B streamed from L2)
 *
 * The micro-kernel keeps an MR x NR tile of C in registers (AVX-512: 14 rows x 2 zmm),
 * broadcasts A and loads B vectors: 28 FMAs per 16 loads per k, which Zen 4/5 (two 512-bit
 * FMA pipes) and Intel AVX-512 parts both sustain near peak with B streaming from L2.  Edges
 * use zero-padded packing plus masked C access, so nothing outside the user's matrices is
 * read or written; a last panel of <= 8 or <= 4 rows uses a kernel with that many rows.
 * A bias row (vlp_gemm_bias) is added in the store of the first K block.
 *
 * Determinism: every C element is computed as
 *     c = beta*c + alpha*sum_{k in block 0};  c = c + alpha*sum_{k in block 1}; ...
 * with each block sum accumulated sequentially in k by one FMA lane, whatever tile, panel
 * width, thread or thread count computes it.  Threads split only M and N.
 */
#include "gemm.h"
#include "../core/vmath.h"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef VLP_MR
#define VLP_MR 14 /* AVX-512 micro-kernel rows (register block is VLP_MR x 32) */
#endif
#ifndef VLP_KC_MAX
#define VLP_KC_MAX 512 /* K <= this: one K block */
#endif
#ifndef VLP_KC_TGT
#define VLP_KC_TGT 384 /* otherwise split K into ceil(K/VLP_KC_TGT) near-equal blocks */
#endif
#ifndef VLP_L2_BYTES
#define VLP_L2_BYTES (640 * 1024) /* packed B block budget: about half of a 1.25 MiB (Ice Lake-SP) L2 */
#endif

#ifndef VLP_PF_B
#define VLP_PF_B 8 /* B prefetch distance in k steps (0: none) */
#endif
#ifndef VLP_APACK_BYTES
#define VLP_APACK_BYTES (4 * 1024 * 1024) /* packed A chunk reused across B blocks (L2/L3) */
#endif

#ifndef VLP_DIRECT_A
#define VLP_DIRECT_A 0 /* measured slower (strided A reads), kept for experiments */
#endif

#define AVX512_FN __attribute__((target("avx512f")))
#define AVX2_FN __attribute__((target("avx2,fma")))

/* Ap: A micro-panel with element (i,k) at Ap[k*a_ks + i] (packed: a_ks == MR) */
/* pfa/npf: prefetch npf cache lines from pfa into L1 while computing (next A panel), or NULL/0.
 * bias (NULL: none): per-column values added in the same rounding as the product (beta must be 0),
 * i.e. c = fma(acc, alpha, bias), exactly what C = bias then beta = 1 gives. */
typedef void (*kern_fn)(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp, float *C, long ldc,
                        int mr, int nr, float alpha, float beta, const float *pfa, int npf, const float *bias);
typedef void (*packA_fn)(int transA, const float *A, long lda, long i0, int mr, long k0, int kc, float *Ap);
/* packs one NR(or NR/2)-wide panel of op(B) rows k0..k0+kc, columns j0..j0+nr, width w */
typedef void (*packB_fn)(int transB, const float *B, long ldb, long j0, int nr, int w, long k0, int kc,
                         float *Bp);

typedef struct {
    int mr, nr;    /* register block */
    kern_fn kfull; /* nr-wide panel */
    kern_fn khalf; /* nr/2-wide panel (used for a narrow last panel), may be NULL */
    kern_fn kfull8, khalf8, kfull4, khalf4; /* for a last panel of <= 8 / <= 4 rows, may be NULL */
    packA_fn packA;
    packB_fn packB;
    const char *name;
} kdesc;

/* ------------------------------------------------------------------------------------------ */
/* Thread-local packing buffer                                                                 */
/* ------------------------------------------------------------------------------------------ */

static _Thread_local float *tl_buf;
static _Thread_local size_t tl_cap; /* in floats */

/* A pthread key whose destructor frees the buffer when a thread exits (OpenMP may retire
 * pool threads when the team size shrinks), so no thread leaks its buffer. */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static int tl_key_ok;
static void tl_destroy(void *p) { free(p); }
static void tl_key_init(void) { tl_key_ok = pthread_key_create(&tl_key, tl_destroy) == 0; }

static float *get_buf(size_t nfloats) {
    if (nfloats > tl_cap) {
        pthread_once(&tl_once, tl_key_init);
        free(tl_buf);
        size_t cap = (nfloats + 4095) & ~(size_t)4095; /* multiple of 16 KiB */
        tl_buf = (float *)aligned_alloc(64, cap * sizeof(float));
        if (!tl_buf) abort();
        tl_cap = cap;
        if (tl_key_ok) pthread_setspecific(tl_key, tl_buf);
    }
    return tl_buf;
}

void vlp_gemm_free_buffers(void) {
    free(tl_buf);
    tl_buf = NULL;
    tl_cap = 0;
    if (tl_key_ok) pthread_setspecific(tl_key, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Portable packing (used by the generic kernel; also the fallback for huge leading dims)      */
/* ------------------------------------------------------------------------------------------ */

/* Ap[k*MR + i] = op(A)[i0+i, k0+k], rows >= mr zero.  MR passed via the template wrappers. */
static inline void packA_scalar_mr(int MR, int transA, const float *A, long lda, long i0, int mr, long k0,
                                   int kc, float *Ap) {
    if (!transA) {
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                const float *a = A + (i0 + i) * lda + k0;
                for (int k = 0; k < kc; k++) Ap[(long)k * MR + i] = a[k];
            } else {
                for (int k = 0; k < kc; k++) Ap[(long)k * MR + i] = 0.0f;
            }
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const float *a = A + (k0 + k) * lda + i0;
            float *ap = Ap + (long)k * MR;
            int i = 0;
            for (; i < mr; i++) ap[i] = a[i];
            for (; i < MR; i++) ap[i] = 0.0f;
        }
    }
}

/* Bp[k*w + j] = op(B)[k0+k, j0+j], columns >= nr zero. */
static void packB_scalar(int transB, const float *B, long ldb, long j0, int nr, int w, long k0, int kc,
                         float *Bp) {
    if (!transB) {
        for (int k = 0; k < kc; k++) {
            const float *b = B + (k0 + k) * ldb + j0;
            float *bp = Bp + (long)k * w;
            int j = 0;
            for (; j < nr; j++) bp[j] = b[j];
            for (; j < w; j++) bp[j] = 0.0f;
        }
    } else {
        for (int j = 0; j < w; j++) {
            if (j < nr) {
                const float *b = B + (j0 + j) * ldb + k0;
                for (int k = 0; k < kc; k++) Bp[(long)k * w + j] = b[k];
            } else {
                for (int k = 0; k < kc; k++) Bp[(long)k * w + j] = 0.0f;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Generic kernel (plain C; compiled for baseline x86-64 and for AVX2+FMA)                      */
/* ------------------------------------------------------------------------------------------ */

#define GMR 6
#define GNR 16

static void packA_g(int transA, const float *A, long lda, long i0, int mr, long k0, int kc, float *Ap) {
    packA_scalar_mr(GMR, transA, A, lda, i0, mr, k0, kc, Ap);
}

#define GENERIC_KERNEL_BODY                                                                            \
    float acc[GMR][GNR];                                                                               \
    for (int i = 0; i < GMR; i++)                                                                      \
        for (int j = 0; j < GNR; j++) acc[i][j] = 0.0f;                                                \
    for (long k = 0; k < kc; k++) {                                                                    \
        const float *a = Ap + k * GMR, *b = Bp + k * GNR;                                              \
        for (int i = 0; i < GMR; i++) {                                                                \
            const float ai = a[i];                                                                     \
            for (int j = 0; j < GNR; j++) acc[i][j] += ai * b[j];                                      \
        }                                                                                              \
    }                                                                                                  \
    for (int i = 0; i < mr; i++) {                                                                     \
        float *c = C + i * ldc;                                                                        \
        if (bias)                                                                                      \
            for (int j = 0; j < nr; j++) c[j] = bias[j] + alpha * acc[i][j];                           \
        else if (beta == 0.0f)                                                                         \
            for (int j = 0; j < nr; j++) c[j] = alpha * acc[i][j];                                     \
        else if (beta == 1.0f)                                                                         \
            for (int j = 0; j < nr; j++) c[j] = c[j] + alpha * acc[i][j];                              \
        else                                                                                           \
            for (int j = 0; j < nr; j++) c[j] = beta * c[j] + alpha * acc[i][j];                       \
    }

static void kern_generic(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp, float *C, long ldc,
                         int mr, int nr, float alpha, float beta, const float *pfa, int npf, const float *bias) {
    (void)a_ks, (void)pfa, (void)npf;
    GENERIC_KERNEL_BODY
}

AVX2_FN static void kern_generic_avx2(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp,
                                      float *C, long ldc, int mr, int nr, float alpha, float beta, const float *pfa,
                                      int npf, const float *bias) {
    (void)a_ks, (void)pfa, (void)npf;
    GENERIC_KERNEL_BODY
}

/* ------------------------------------------------------------------------------------------ */
/* AVX-512 packing and micro-kernel                                                             */
/* ------------------------------------------------------------------------------------------ */

#define MR512 VLP_MR
#define NR512 32

#if MR512 > 16 || MR512 < 1
#error "VLP_MR must be in 1..16"
#endif

static inline __mmask16 mask_n(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

/* transpose a 16x16 block held in r[0..15] (rows) in place -> r[j] = column j */
__attribute__((always_inline)) AVX512_FN static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int q = 0; q < 4; q++) {
        __m512 x0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44);
        __m512 x1 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44);
        __m512 x2 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xEE);
        __m512 x3 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xEE);
        t[q] = _mm512_shuffle_f32x4(x0, x1, 0x88);
        t[q + 4] = _mm512_shuffle_f32x4(x0, x1, 0xDD);
        t[q + 8] = _mm512_shuffle_f32x4(x2, x3, 0x88);
        t[q + 12] = _mm512_shuffle_f32x4(x2, x3, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Ap[k*MR + i] = op(A)[i0+i, k0+k] */
AVX512_FN static void packA_512(int transA, const float *A, long lda, long i0, int mr, long k0, int kc, float *Ap) {
    const __mmask16 sm = mask_n(MR512);
    if (transA) {
        const __mmask16 lm = mask_n(mr);
        const float *a = A + k0 * lda + i0;
        for (int k = 0; k < kc; k++, a += lda) {
            __m512 v = _mm512_maskz_loadu_ps(lm, a);
            _mm512_mask_storeu_ps(Ap + (long)k * MR512, sm, v);
        }
        return;
    }
    /* op(A) = A: transpose 16(k) x MR(rows) blocks in registers; rows >= mr are zero */
    const float *a = A + i0 * lda + k0;
    int k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < mr ? _mm512_loadu_ps(a + (long)i * lda + k) : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(Ap + (long)(k + q) * MR512, sm, r[q]);
    }
    if (k < kc) {
        const __mmask16 km = mask_n(kc - k);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < mr ? _mm512_maskz_loadu_ps(km, a + (long)i * lda + k) : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < kc - k; q++) _mm512_mask_storeu_ps(Ap + (long)(k + q) * MR512, sm, r[q]);
    }
}

/* Bp[k*w + j] = op(B)[k0+k, j0+j], w in {16, 32}, columns >= nr zero */
AVX512_FN static void packB_512(int transB, const float *B, long ldb, long j0, int nr, int w, long k0, int kc,
                                float *Bp) {
    if (!transB) {
        const float *b = B + k0 * ldb + j0;
        const __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
        if (w == 32) {
            for (int k = 0; k < kc; k++, b += ldb) {
                _mm512_store_ps(Bp + (long)k * 32, _mm512_maskz_loadu_ps(m0, b));
                _mm512_store_ps(Bp + (long)k * 32 + 16, _mm512_maskz_loadu_ps(m1, b + 16));
            }
        } else {
            for (int k = 0; k < kc; k++, b += ldb) _mm512_store_ps(Bp + (long)k * 16, _mm512_maskz_loadu_ps(m0, b));
        }
        return;
    }
    /* transB: stored [N,K]; column j of op(B) is row j0+j of B (contiguous in k) */
    for (int jb = 0; jb < w; jb += 16) {
        const int nrb = nr - jb; /* valid rows of this 16-block (may be <= 0) */
        const float *b = B + (j0 + jb) * ldb + k0;
        int k = 0;
        for (; k + 16 <= kc; k += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = i < nrb ? _mm512_loadu_ps(b + (long)i * ldb + k) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < 16; q++) _mm512_store_ps(Bp + (long)(k + q) * w + jb, r[q]);
        }
        if (k < kc) {
            const __mmask16 km = mask_n(kc - k);
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = i < nrb ? _mm512_maskz_loadu_ps(km, b + (long)i * ldb + k) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < kc - k; q++) _mm512_store_ps(Bp + (long)(k + q) * w + jb, r[q]);
        }
    }
}

/* Micro-kernel: C[mr x nr] (+)= alpha * Ap(MR x kc) * Bp(kc x 16*NV) */
#define K512_BODY(NV, MRV)                                                                                  \
    __m512 c[MRV][NV];                                                                               \
    _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) \
        c[i][v] = _mm512_setzero_ps();                                                                 \
    _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) if (i < mr) {                             \
        _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);                                        \
        if (NV > 1) _mm_prefetch((const char *)(C + i * ldc + 16), _MM_HINT_T0);                      \
    }                                                                                                  \
    _Pragma("GCC unroll 2") for (long k = 0; k < kc; k++) {                                            \
        __m512 b[NV];                                                                                  \
        if (VLP_PF_B) {                                                                                \
            _mm_prefetch((const char *)(Bp + 16 * NV * VLP_PF_B), _MM_HINT_T0);                        \
            if (NV > 1) _mm_prefetch((const char *)(Bp + 16 * NV * VLP_PF_B + 16), _MM_HINT_T0);      \
        }                                                                                              \
        if (k < npf) _mm_prefetch((const char *)(pfa + 16 * k), _MM_HINT_T0);                          \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) b[v] = _mm512_load_ps(Bp + 16 * v);       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) {                                     \
            const __m512 a = _mm512_set1_ps(Ap[i]);                                                    \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]); \
        }                                                                                              \
        Ap += a_ks;                                                                                    \
        Bp += 16 * NV;                                                                                 \
    }                                                                                                  \
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                               \
    __mmask16 m[NV];                                                                                   \
    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) m[v] = mask_n(nr - 16 * v);                   \
    if (bias) {                                                                                        \
        __m512 bv[NV];                                                                                 \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(m[v], bias + 16 * v); \
        _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) if (i < mr) {                         \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                       \
                _mm512_mask_storeu_ps(C + i * ldc + 16 * v, m[v], _mm512_fmadd_ps(c[i][v], va, bv[v]));\
        }                                                                                              \
    } else if (beta == 0.0f) {                                                                         \
        _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) if (i < mr) {                         \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                       \
                _mm512_mask_storeu_ps(C + i * ldc + 16 * v, m[v], _mm512_mul_ps(c[i][v], va));         \
        }                                                                                              \
    } else if (beta == 1.0f) {                                                                         \
        _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) if (i < mr) {                         \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                     \
                float *cp = C + i * ldc + 16 * v;                                                      \
                __m512 old = _mm512_maskz_loadu_ps(m[v], cp);                                          \
                _mm512_mask_storeu_ps(cp, m[v], _mm512_fmadd_ps(c[i][v], va, old));                    \
            }                                                                                          \
        }                                                                                              \
    } else {                                                                                           \
        _Pragma("GCC unroll 16") for (int i = 0; i < MRV; i++) if (i < mr) {                         \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                     \
                float *cp = C + i * ldc + 16 * v;                                                      \
                __m512 old = _mm512_maskz_loadu_ps(m[v], cp);                                          \
                _mm512_mask_storeu_ps(cp, m[v], _mm512_fmadd_ps(c[i][v], va, _mm512_mul_ps(old, vb))); \
            }                                                                                          \
        }                                                                                              \
    }

AVX512_FN static void kern512_w32(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp, float *C,
                                  long ldc, int mr, int nr, float alpha, float beta, const float *pfa, int npf,
                                  const float *bias) {
    K512_BODY(2, MR512)
}

AVX512_FN static void kern512_w16(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp, float *C,
                                  long ldc, int mr, int nr, float alpha, float beta, const float *pfa, int npf,
                                  const float *bias) {
    K512_BODY(1, MR512)
}

/* Row-remainder kernels: a last micro-panel of mr <= 4 or <= 8 rows computes only those rows
 * (same packed layout and the same per-element arithmetic, so results do not change). */
#define K512_SMALL(NAME, NV, MRV)                                                                          \
    AVX512_FN static void NAME(long kc, const float *restrict Ap, long a_ks, const float *restrict Bp, float *C, \
                               long ldc, int mr, int nr, float alpha, float beta, const float *pfa, int npf,    \
                               const float *bias) {                                                        \
        K512_BODY(NV, MRV)                                                                                 \
    }
#if MR512 > 8
K512_SMALL(kern512_w32_r8, 2, 8)
K512_SMALL(kern512_w16_r8, 1, 8)
#endif
#if MR512 > 4
K512_SMALL(kern512_w32_r4, 2, 4)
K512_SMALL(kern512_w16_r4, 1, 4)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Dispatch                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define STR2(x) #x
#define STR(x) STR2(x)

#if MR512 <= 8
#define kern512_w32_r8 NULL
#define kern512_w16_r8 NULL
#endif
#if MR512 <= 4
#define kern512_w32_r4 NULL
#define kern512_w16_r4 NULL
#endif
static const kdesc kd_avx512 = {MR512, NR512, kern512_w32, kern512_w16, kern512_w32_r8, kern512_w16_r8,
                                kern512_w32_r4, kern512_w16_r4, packA_512, packB_512,
                                "avx512 " STR(VLP_MR) "x32"};
static const kdesc kd_avx2 = {GMR, GNR, kern_generic_avx2, NULL, NULL, NULL, NULL, NULL, packA_g, packB_scalar, "generic-avx2 6x16"};
static const kdesc kd_generic = {GMR, GNR, kern_generic, NULL, NULL, NULL, NULL, NULL, packA_g, packB_scalar, "generic 6x16"};

static const kdesc *select_kernel(void) {
    static const kdesc *sel;
    const kdesc *k = __atomic_load_n(&sel, __ATOMIC_ACQUIRE);
    if (k) return k;
    __builtin_cpu_init();
    const char *force = getenv("VLP_GEMM_KERNEL"); /* "generic", "avx2" (testing) */
    if (force && !strcmp(force, "generic"))
        k = &kd_generic;
    else if (force && !strcmp(force, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = &kd_avx2;
    else if (__builtin_cpu_supports("avx512f"))
        k = &kd_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = &kd_avx2;
    else
        k = &kd_generic;
    __atomic_store_n(&sel, k, __ATOMIC_RELEASE);
    return k;
}

const char *vlp_gemm_kernel_name(void) { return select_kernel()->name; }

/* ------------------------------------------------------------------------------------------ */
/* Driver                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const kdesc *kd;
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A;
    long lda;
    const float *B;
    long ldb;
    float *C;
    long ldc;
    const float *bias; /* per-column bias added with the first K block (beta is 0), or NULL */
    const float *res;  /* epilogue residual [M,N] (row stride ldr), or NULL */
    long ldr;
    int act;           /* epilogue activation, VLP_GEMM_ACT_* */
    const vlp_gemm_packed *bpk; /* op(B) already packed, or NULL */
    int kcs;      /* K block size (depends only on K) */
    int direct_a; /* read full A micro-panels in place (transA, AVX-512 kernel) */
} gemm_args;

static int k_block(int K) {
    if (K <= VLP_KC_MAX) return K;
    int nb = (K + VLP_KC_TGT - 1) / VLP_KC_TGT;
    int kc = (K + nb - 1) / nb;
    return (kc + 7) & ~7;
}

/* Layout: for each K block (k_block(K) rows of op(B)), the NR-wide panels of all N columns in
 * order, each kc x NR (the last one kc x NR/2 when it is that narrow and the kernel has a half
 * variant), exactly as gemm_region packs them; a block of columns jc.. (jc a multiple of NR)
 * starts (jc / NR) * NR * kc floats into its K block. */
struct vlp_gemm_packed {
    const kdesc *kd;
    int transB, N, K, kcs;
    size_t *off; /* start of each K block */
    float *data;
    size_t bytes;
};

vlp_gemm_packed *vlp_gemm_pack_b(int transB, int N, int K, const float *B, int ldb) {
    if (N <= 0 || K <= 0) return NULL;
    vlp_gemm_packed *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    const kdesc *kd = select_kernel();
    const int NR = kd->nr, kcs = k_block(K), nkb = (K + kcs - 1) / kcs;
    *p = (vlp_gemm_packed){.kd = kd, .transB = transB, .N = N, .K = K, .kcs = kcs};
    p->off = malloc(sizeof *p->off * (size_t)nkb);
    size_t total = 0;
    for (int b = 0; b < nkb && p->off; b++) {
        const int kc = (b + 1) * kcs <= K ? kcs : K - b * kcs;
        p->off[b] = total;
        for (int j = 0; j < N; j += NR) {
            const int nr = N - j < NR ? N - j : NR;
            total += (size_t)((nr <= NR / 2 && kd->khalf) ? NR / 2 : NR) * kc;
        }
    }
    p->bytes = total * sizeof(float);
    if (!p->off || posix_memalign((void **)&p->data, 64, p->bytes ? p->bytes : 64)) {
        free(p->off);
        free(p);
        return NULL;
    }
    for (int b = 0; b < nkb; b++) {
        const int pc = b * kcs, kc = pc + kcs <= K ? kcs : K - pc;
        float *bp = p->data + p->off[b];
        for (int j = 0; j < N; j += NR) {
            const int nr = N - j < NR ? N - j : NR, w = (nr <= NR / 2 && kd->khalf) ? NR / 2 : NR;
            kd->packB(transB, B, ldb, j, nr, w, pc, kc, bp);
            bp += (size_t)w * kc;
        }
    }
    return p;
}

void vlp_gemm_packed_free(vlp_gemm_packed *p) {
    if (!p) return;
    free(p->off);
    free(p->data);
    free(p);
}

size_t vlp_gemm_packed_bytes(const vlp_gemm_packed *p) { return p ? p->bytes : 0; }

/* C := beta * C on a region (alpha == 0 or K == 0) */
static void scale_c(int M, int N, float beta, float *C, long ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

/* The fused epilogue on rows [i0, i0+mr) x columns [j0, j0+nc) of the finished C. */
static void epilogue(const gemm_args *g, int i0, int mr, int j0, int nc) {
    for (int r = 0; r < mr; r++) {
        float *c = g->C + (long)(i0 + r) * g->ldc + j0;
        if (g->res) {
            const float *x = g->res + (long)(i0 + r) * g->ldr + j0;
            for (int j = 0; j < nc; j++) c[j] += x[j];
        }
        switch (g->act) {
        case VLP_GEMM_ACT_QUICK_GELU:
            for (int j = 0; j < nc; j++) c[j] = vlp_quick_gelu_f(c[j]);
            break;
        case VLP_GEMM_ACT_GELU:
            for (int j = 0; j < nc; j++) c[j] = vlp_gelu_f(c[j]);
            break;
        case VLP_GEMM_ACT_GELU_TANH:
            for (int j = 0; j < nc; j++) c[j] = vlp_gelu_tanh_f(c[j]);
            break;
        }
    }
}

static void gemm_region(const gemm_args *g, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const kdesc *kd = g->kd;
    const int MR = kd->mr, NR = kd->nr;
    const int K = g->K, kcs = g->kcs;
    /* B block width: fits VLP_L2_BYTES, split region width evenly */
    int ncmax = (int)(VLP_L2_BYTES / (sizeof(float) * (size_t)kcs)) / NR * NR;
    if (ncmax < NR) ncmax = NR;
    const int nn = n1 - n0;
    const int nblk = (nn + ncmax - 1) / ncmax;
    int ncb = (nn + nblk - 1) / nblk;
    ncb = (ncb + NR - 1) / NR * NR;

    /* With several B blocks, A would be re-packed once per block: instead pack a chunk of
     * mcb rows of A (all its micro-panels, up to VLP_APACK_BYTES) once per K block and reuse
     * it for every B block, prefetching each next micro-panel into L1 during the current one.
     * With one B block, pack each micro-panel just before use (it stays hot in L1). */
    const size_t panel = (size_t)MR * kcs; /* floats per packed A micro-panel */
    const int prepack = nblk > 1;
    int mcb = m1 - m0;
    if (prepack) {
        int maxp = (int)(VLP_APACK_BYTES / (sizeof(float) * panel));
        if (maxp < 1) maxp = 1;
        const int np = (mcb + MR - 1) / MR, nchunk = (np + maxp - 1) / maxp;
        mcb = (np + nchunk - 1) / nchunk * MR;
    }
    const size_t apsz = prepack ? (size_t)((mcb + MR - 1) / MR) * panel : ((panel + 15) & ~(size_t)15);
    float *buf = get_buf(apsz + (size_t)ncb * kcs);
    float *Abuf = buf, *Bp = buf + apsz;

    for (int pc = 0; pc < K; pc += kcs) {
        const int kc = pc + kcs <= K ? kcs : K - pc;
        const float beta = pc == 0 ? g->beta : 1.0f;
        const int plines = (int)(((size_t)MR * kc * sizeof(float) + 63) / 64); /* cache lines per A panel */
        for (int ic = m0; ic < m1; ic += mcb) {
            const int ic1 = ic + mcb < m1 ? ic + mcb : m1;
            if (prepack)
                for (int i = ic; i < ic1; i += MR)
                    kd->packA(g->transA, g->A, g->lda, i, ic1 - i < MR ? ic1 - i : MR, pc, kc,
                              Abuf + (size_t)((i - ic) / MR) * MR * kc);
            for (int jc = n0; jc < n1; jc += ncb) {
                const int nc = jc + ncb <= n1 ? ncb : n1 - jc;
                /* pack B block into panels (or find it in the pre-packed B) */
                const float *Bblk = Bp;
                if (g->bpk) {
                    Bblk = g->bpk->data + g->bpk->off[pc / kcs] + (size_t)(jc / NR) * NR * kc;
                } else {
                    float *bp = Bp;
                    for (int j = 0; j < nc; j += NR) {
                        const int nr = nc - j < NR ? nc - j : NR;
                        const int w = (nr <= NR / 2 && kd->khalf) ? NR / 2 : NR;
                        kd->packB(g->transB, g->B, g->ldb, jc + j, nr, w, pc, kc, bp);
                        bp += (long)w * kc;
                    }
                }
                const int njr = (nc + NR - 1) / NR, lpc = (plines + njr - 1) / njr;
                for (int i = ic; i < ic1; i += MR) {
                    const int mr = ic1 - i < MR ? ic1 - i : MR;
                    const float *ap, *pf = NULL;
                    long aks = MR;
                    if (prepack) {
                        ap = Abuf + (size_t)((i - ic) / MR) * MR * kc;
                        if (i + MR < ic1) pf = ap + (size_t)MR * kc; /* next panel of this chunk */
                    } else if (g->direct_a && mr == MR) { /* op(A) = A^T: already k-major, use in place */
                        ap = g->A + (long)pc * g->lda + i;
                        aks = g->lda;
                    } else {
                        kd->packA(g->transA, g->A, g->lda, i, mr, pc, kc, Abuf);
                        ap = Abuf;
                    }
                    kern_fn kf = kd->kfull, kh = kd->khalf;
                    if (mr <= 4 && kd->kfull4)
                        kf = kd->kfull4, kh = kd->khalf4;
                    else if (mr <= 8 && kd->kfull8)
                        kf = kd->kfull8, kh = kd->khalf8;
                    const float *bp = Bblk;
                    float *crow = g->C + (long)i * g->ldc + jc;
                    for (int j = 0, jr = 0; j < nc; j += NR, jr++) {
                        const int nr = nc - j < NR ? nc - j : NR;
                        /* call jr prefetches its share of the next A panel */
                        const float *pfj = pf ? pf + (size_t)jr * lpc * 16 : NULL;
                        int npf = pf ? plines - jr * lpc : 0;
                        npf = npf < 0 ? 0 : npf > lpc ? lpc : npf;
                        const float *bj = g->bias && pc == 0 ? g->bias + jc + j : NULL;
                        if (nr <= NR / 2 && kd->khalf) {
                            kh(kc, ap, aks, bp, crow + j, g->ldc, mr, nr, g->alpha, beta, pfj, npf, bj);
                            bp += (long)(NR / 2) * kc;
                        } else {
                            kf(kc, ap, aks, bp, crow + j, g->ldc, mr, nr, g->alpha, beta, pfj, npf, bj);
                            bp += (long)NR * kc;
                        }
                    }
                    if ((g->res || g->act) && pc + kc == K) epilogue(g, i, mr, jc, nc);
                }
            }
        }
    }
}

/* Split [0,units) into parts; part p gets [lo,hi) */
static void split_units(int units, int parts, int p, int *lo, int *hi) {
    int base = units / parts, rem = units % parts;
    *lo = p * base + (p < rem ? p : rem);
    *hi = *lo + base + (p < rem ? 1 : 0);
}

static void setup_args(gemm_args *g, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    g->kd = select_kernel();
    g->transA = transA;
    g->transB = transB;
    g->M = M;
    g->N = N;
    g->K = K;
    g->alpha = alpha;
    g->beta = beta;
    g->A = A;
    g->lda = lda;
    g->B = B;
    g->ldb = ldb;
    g->C = C;
    g->ldc = ldc;
    g->bias = NULL;
    g->res = NULL;
    g->ldr = 0;
    g->act = VLP_GEMM_ACT_NONE;
    g->bpk = NULL;
    g->kcs = k_block(K);
    g->direct_a = VLP_DIRECT_A && transA && g->kd == &kd_avx512;
}

void vlp_gemm_st(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_args g;
    setup_args(&g, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    gemm_region(&g, 0, M, 0, N);
}

/* choose thread grid tm x tn (tm*tn == nt) for an M x N problem */
static void choose_grid(const kdesc *kd, int M, int N, int nt, int *tm_out, int *tn_out) {
    const int mu = (M + kd->mr - 1) / kd->mr, nu = (N + kd->nr - 1) / kd->nr;
    double best = 1e300;
    int btm = nt, btn = 1;
    for (int tm = 1; tm <= nt; tm++) {
        if (nt % tm) continue;
        const int tn = nt / tm;
        if (tm > mu || tn > nu) continue;
        double rows = (double)((mu + tm - 1) / tm) * kd->mr, cols = (double)((nu + tn - 1) / tn) * kd->nr;
        if (rows > M) rows = M;
        if (cols > N) cols = N;
        /* padded compute + packing (A once per row, B once per column, both per thread) */
        double cost = rows * cols + 16.0 * (rows + cols);
        if (cost < best) {
            best = cost;
            btm = tm;
            btn = tn;
        }
    }
    if (best == 1e300) { /* tiny in one dimension: use fewer threads along it */
        btm = nt < mu ? nt : mu;
        btn = 1;
    }
    *tm_out = btm;
    *tn_out = btn;
}

static void gemm_mt(const gemm_args *g, int nt) {
    int tm, tn;
    choose_grid(g->kd, g->M, g->N, nt, &tm, &tn);
    const int nparts = tm * tn;
    if (nparts <= 1) {
        gemm_region(g, 0, g->M, 0, g->N);
        return;
    }
    const int MR = g->kd->mr, NR = g->kd->nr;
    const int mu = (g->M + MR - 1) / MR, nu = (g->N + NR - 1) / NR;
#pragma omp parallel num_threads(nparts)
    {
        const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
        for (int p = tid; p < nparts; p += nth) {
            int a, b, c, d;
            split_units(mu, tm, p / tn, &a, &b);
            split_units(nu, tn, p % tn, &c, &d);
            int m0 = a * MR, m1 = b * MR, n0 = c * NR, n1 = d * NR;
            if (m1 > g->M) m1 = g->M;
            if (n1 > g->N) n1 = g->N;
            gemm_region(g, m0, m1, n0, n1);
        }
    }
}

static int threads_for(double M, double N, double K) {
    if (omp_in_parallel()) return 1;
    int nt = omp_get_max_threads();
    const double work = M * N * K;
    if (work < 1.5e6) return 1;
    /* at least ~1e6 MACs per thread */
    int lim = (int)(work / 1.0e6);
    if (lim < nt) nt = lim < 1 ? 1 : lim;
    return nt;
}

void vlp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_args g;
    setup_args(&g, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const int nt = threads_for(M, N, K);
    if (nt <= 1)
        gemm_region(&g, 0, M, 0, N);
    else
        gemm_mt(&g, nt);
}

void vlp_gemm_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, const float *bias, float *C, int ldc) {
    vlp_gemm_fused(transA, transB, M, N, K, alpha, A, lda, B, ldb, NULL, bias, NULL, 0, VLP_GEMM_ACT_NONE, C, ldc);
}

void vlp_gemm_fused(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, const vlp_gemm_packed *Bpk, const float *bias, const float *R,
                    int ldr, int act, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    gemm_args g;
    setup_args(&g, transA, transB, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
    if (Bpk && Bpk->kd == g.kd && Bpk->transB == transB && Bpk->N == N && Bpk->K == K && Bpk->kcs == g.kcs)
        g.bpk = Bpk;
    g.bias = bias;
    g.res = R;
    g.ldr = ldr;
    g.act = act;
    if (K <= 0 || alpha == 0.0f) {
        for (int i = 0; i < M; i++)
            if (bias)
                memcpy(C + (long)i * ldc, bias, (size_t)N * sizeof(float));
            else
                memset(C + (long)i * ldc, 0, (size_t)N * sizeof(float));
        epilogue(&g, 0, M, 0, N);
        return;
    }
    const int nt = threads_for(M, N, K);
    if (nt <= 1)
        gemm_region(&g, 0, M, 0, N);
    else
        gemm_mt(&g, nt);
}

void vlp_gemm_batched(int transA, int transB, int batch, int M, int N, int K, float alpha, const float *A,
                      long strideA, int lda, const float *B, long strideB, int ldb, float beta, float *C,
                      long strideC, int ldc) {
    if (batch <= 0 || M <= 0 || N <= 0) return;
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt <= 1 || batch == 1 || (batch < nt && (double)M * N * K >= 4.0e6)) {
        /* few large problems: parallelise inside each */
        for (int b = 0; b < batch; b++)
            vlp_gemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                     C + b * strideC, ldc);
        return;
    }
    const int use = batch < nt ? batch : nt;
#pragma omp parallel for schedule(dynamic, 1) num_threads(use)
    for (int b = 0; b < batch; b++)
        vlp_gemm_st(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                    C + b * strideC, ldc);
}
