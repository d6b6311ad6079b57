/* Tests for src/ops/gemm.c against a naive double-precision reference.
 * Build: gcc -O2 -fopenmp -std=c11 -Isrc/ops tests/test_gemm.c src/ops/gemm.c -lm
 * Prints one line per failing check and finishes with "N passed, N failed". */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "vmath.h"

static int n_pass, n_fail;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int rng_int(int lo, int hi) { return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1)); }
static float rng_f(void) { return (float)((rng_u64() >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0); }

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = rng_f();
}

enum { API_MT, API_ST, API_BATCHED };
static const char *api_name[] = {"vlp_gemm", "vlp_gemm_st", "vlp_gemm_batched"};

typedef struct {
    int tA, tB, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} shape_t;

/* one GEMM problem (batch of `batch` matrices, only used for API_BATCHED) */
static void check_case(int api, const shape_t *s, int batch, int nan_c) {
    const int tA = s->tA, tB = s->tB, M = s->M, N = s->N, K = s->K, lda = s->lda, ldb = s->ldb, ldc = s->ldc;
    const long rowsA = tA ? K : M, rowsB = tB ? N : K;
    const long sA = rowsA * lda + 3, sB = rowsB * ldb + 5, sC = (long)M * ldc + 7; /* batch strides */
    if (api != API_BATCHED) batch = 1;
    /* exact-size allocations so ASan catches any out-of-bounds access */
    const size_t nA = (size_t)((batch - 1) * sA + (rowsA - 1) * lda + (tA ? M : K));
    const size_t nB = (size_t)((batch - 1) * sB + (rowsB - 1) * ldb + (tB ? K : N));
    const size_t nC = (size_t)((batch - 1) * sC + (long)(M - 1) * ldc + N);
    float *A = malloc((nA ? nA : 1) * sizeof(float));
    float *B = malloc((nB ? nB : 1) * sizeof(float));
    float *C = malloc(nC * sizeof(float));
    float *C0 = malloc(nC * sizeof(float));
    fill(A, nA);
    fill(B, nB);
    if (nan_c) {
        for (size_t i = 0; i < nC; i++) C0[i] = NAN;
    } else {
        fill(C0, nC);
    }
    memcpy(C, C0, nC * sizeof(float));

    if (api == API_MT)
        vlp_gemm(tA, tB, M, N, K, s->alpha, A, lda, B, ldb, s->beta, C, ldc);
    else if (api == API_ST)
        vlp_gemm_st(tA, tB, M, N, K, s->alpha, A, lda, B, ldb, s->beta, C, ldc);
    else
        vlp_gemm_batched(tA, tB, batch, M, N, K, s->alpha, A, sA, lda, B, sB, ldb, s->beta, C, sC, ldc);

    int bad = 0;
    double worst = 0;
    int wi = -1, wj = -1, wb = -1;
    for (int b = 0; b < batch && bad < 1; b++) {
        const float *Ab = A + b * sA, *Bb = B + b * sB;
        const float *Cb0 = C0 + b * sC, *Cb = C + b * sC;
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                double acc = 0, mag = 0;
                for (int k = 0; k < K; k++) {
                    double a = tA ? Ab[(long)k * lda + i] : Ab[(long)i * lda + k];
                    double bb = tB ? Bb[(long)j * ldb + k] : Bb[(long)k * ldb + j];
                    acc += a * bb;
                    mag += fabs(a * bb);
                }
                double ref = s->alpha * acc;
                double refmag = fabs(s->alpha) * mag;
                if (s->beta != 0.0f) {
                    ref += (double)s->beta * Cb0[(long)i * ldc + j];
                    refmag += fabs((double)s->beta * Cb0[(long)i * ldc + j]);
                }
                const double got = Cb[(long)i * ldc + j];
                const double err = fabs(got - ref);
                const double tol = 1e-5 * refmag + 1e-6;
                if (!(err <= tol)) { /* also catches NaN */
                    if (!bad || err > worst || isnan(got)) {
                        worst = err;
                        wi = i;
                        wj = j;
                        wb = b;
                    }
                    bad++;
                }
            }
            /* padding between rows (ldc > N) must be untouched */
            if (i + 1 < M)
                for (int j = N; j < ldc; j++) {
                    const long o = (long)i * ldc + j;
                    const float x = Cb0[o], y = Cb[o];
                    if (!(x == y || (isnan(x) && isnan(y)))) bad++;
                }
        }
    }
    if (bad) {
        printf("FAIL %s tA=%d tB=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g batch=%d nanC=%d: "
               "%d bad, worst |err|=%g at b=%d i=%d j=%d\n",
               api_name[api], tA, tB, M, N, K, lda, ldb, ldc, s->alpha, s->beta, batch, nan_c, bad, worst, wb,
               wi, wj);
        n_fail++;
    } else {
        n_pass++;
    }
    free(A);
    free(B);
    free(C);
    free(C0);
}

/* 1-thread vs 2-thread (and vs st / batched) bit-identity */
static void check_determinism(int tA, int tB, int M, int N, int K, float beta) {
    const int lda = tA ? M : K, ldb = tB ? K : N, ldc = N;
    const size_t nA = (size_t)M * K, nB = (size_t)K * N, nC = (size_t)M * N;
    float *A = malloc(nA * sizeof(float)), *B = malloc(nB * sizeof(float));
    float *C0 = malloc(nC * sizeof(float)), *C1 = malloc(nC * sizeof(float)), *C2 = malloc(nC * sizeof(float));
    float *C3 = malloc(nC * sizeof(float)), *C4 = malloc(nC * sizeof(float));
    fill(A, nA);
    fill(B, nB);
    fill(C0, nC);
    memcpy(C1, C0, nC * sizeof(float));
    memcpy(C2, C0, nC * sizeof(float));
    memcpy(C3, C0, nC * sizeof(float));
    memcpy(C4, C0, nC * sizeof(float));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    vlp_gemm(tA, tB, M, N, K, 0.75f, A, lda, B, ldb, beta, C1, ldc);
    omp_set_num_threads(2);
    vlp_gemm(tA, tB, M, N, K, 0.75f, A, lda, B, ldb, beta, C2, ldc);
    omp_set_num_threads(3);
    vlp_gemm(tA, tB, M, N, K, 0.75f, A, lda, B, ldb, beta, C3, ldc);
    omp_set_num_threads(saved);
    vlp_gemm_st(tA, tB, M, N, K, 0.75f, A, lda, B, ldb, beta, C4, ldc);
    const int d12 = memcmp(C1, C2, nC * sizeof(float)) != 0;
    const int d13 = memcmp(C1, C3, nC * sizeof(float)) != 0;
    const int d14 = memcmp(C1, C4, nC * sizeof(float)) != 0;
    if (d12 || d13 || d14) {
        printf("FAIL determinism tA=%d tB=%d M=%d N=%d K=%d beta=%g: 1thr!=2thr:%d 1thr!=3thr:%d 1thr!=st:%d\n", tA,
               tB, M, N, K, beta, d12, d13, d14);
        n_fail++;
    } else {
        n_pass++;
    }
    free(A);
    free(B);
    free(C0);
    free(C1);
    free(C2);
    free(C3);
    free(C4);
}

/* vlp_gemm_bias == (C = bias rows; vlp_gemm with beta = 1), bit for bit, on 1 and 2 threads */
static void check_bias(int tA, int tB, int M, int N, int K) {
    const int lda = tA ? M : K, ldb = tB ? K : N, ldc = N + 3;
    const size_t nA = (size_t)M * K + 1, nB = (size_t)K * N + 1, nC = (size_t)M * ldc;
    float *A = malloc(nA * sizeof(float)), *B = malloc(nB * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
    float *C1 = malloc(nC * sizeof(float)), *C2 = malloc(nC * sizeof(float)), *C3 = malloc(nC * sizeof(float));
    fill(A, nA);
    fill(B, nB);
    fill(bias, (size_t)N);
    fill(C1, nC);
    memcpy(C2, C1, nC * sizeof(float));
    memcpy(C3, C1, nC * sizeof(float));
    for (int i = 0; i < M; i++) memcpy(C1 + (size_t)i * ldc, bias, (size_t)N * sizeof(float));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    vlp_gemm(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, ldc);
    vlp_gemm_bias(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, bias, C2, ldc);
    omp_set_num_threads(2);
    vlp_gemm_bias(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, bias, C3, ldc);
    omp_set_num_threads(saved);
    const int d2 = memcmp(C1, C2, nC * sizeof(float)) != 0, d3 = memcmp(C1, C3, nC * sizeof(float)) != 0;
    if (d2 || d3) {
        printf("FAIL gemm_bias tA=%d tB=%d M=%d N=%d K=%d: 1thr differs %d, 2thr differs %d\n", tA, tB, M, N, K, d2, d3);
        n_fail++;
    } else {
        n_pass++;
    }
    free(A), free(B), free(bias), free(C1), free(C2), free(C3);
}

/* vlp_gemm_fused (optionally with B packed once) == vlp_gemm_bias, then + R, then act, bit for
 * bit, on 1 and 2 threads: the inference graph relies on this to fold those ops into the GEMM. */
static void check_fused(int tB, int M, int N, int K, int act, int use_res, int use_pack) {
    const int lda = K, ldb = tB ? K : N, ldc = N + 5, ldr = N + 2;
    const size_t nA = (size_t)M * K + 1, nB = (size_t)K * N + 1, nC = (size_t)M * ldc, nR = (size_t)M * ldr;
    float *A = malloc(nA * sizeof(float)), *B = malloc(nB * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
    float *R = malloc(nR * sizeof(float)), *C1 = malloc(nC * sizeof(float)), *C2 = malloc(nC * sizeof(float)),
          *C3 = malloc(nC * sizeof(float));
    fill(A, nA);
    fill(B, nB);
    fill(bias, (size_t)N);
    fill(R, nR);
    for (size_t i = 0; i < nA; i++) A[i] *= 3.0f; /* activations see values beyond [-1, 1] */
    fill(C1, nC);
    memcpy(C2, C1, nC * sizeof(float));
    memcpy(C3, C1, nC * sizeof(float));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    vlp_gemm_bias(0, tB, M, N, K, 1.0f, A, lda, B, ldb, bias, C1, ldc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C1 + (size_t)i * ldc + j;
            if (use_res) *c += R[(size_t)i * ldr + j];
            *c = act == VLP_GEMM_ACT_QUICK_GELU ? vlp_quick_gelu_f(*c)
                 : act == VLP_GEMM_ACT_GELU     ? vlp_gelu_f(*c)
                 : act == VLP_GEMM_ACT_GELU_TANH ? vlp_gelu_tanh_f(*c)
                                                 : *c;
        }
    vlp_gemm_packed *pk = use_pack ? vlp_gemm_pack_b(tB, N, K, B, ldb) : NULL;
    /* with a matching pack the GEMM reads the pack only (a NULL B would crash otherwise) */
    const float *Barg = pk ? NULL : B;
    vlp_gemm_fused(0, tB, M, N, K, 1.0f, A, lda, Barg, ldb, pk, bias, use_res ? R : NULL, ldr, act, C2, ldc);
    omp_set_num_threads(2);
    vlp_gemm_fused(0, tB, M, N, K, 1.0f, A, lda, Barg, ldb, pk, bias, use_res ? R : NULL, ldr, act, C3, ldc);
    omp_set_num_threads(saved);
    const int d2 = memcmp(C1, C2, nC * sizeof(float)) != 0, d3 = memcmp(C1, C3, nC * sizeof(float)) != 0;
    if (d2 || d3 || (use_pack && !pk)) {
        printf("FAIL gemm_fused tB=%d M=%d N=%d K=%d act=%d res=%d pack=%d: 1thr differs %d, 2thr differs %d\n", tB, M,
               N, K, act, use_res, use_pack, d2, d3);
        n_fail++;
    } else {
        n_pass++;
    }
    vlp_gemm_packed_free(pk);
    free(A), free(B), free(bias), free(R), free(C1), free(C2), free(C3);
}

/* A tall GEMM whose packed A is split into chunks must equal the same rows computed in
 * separate calls small enough for one chunk (every element is summed the same way). */
static void check_row_split(int tA, int tB, int M, int N, int K) {
    const int lda = tA ? M : K, ldb = tB ? K : N;
    const size_t nA = (size_t)M * K, nB = (size_t)K * N, nC = (size_t)M * N;
    float *A = malloc(nA * sizeof(float)), *B = malloc(nB * sizeof(float));
    float *C1 = malloc(nC * sizeof(float)), *C2 = malloc(nC * sizeof(float));
    fill(A, nA);
    fill(B, nB);
    vlp_gemm_st(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C1, N); /* one region: several A chunks */
    for (int r0 = 0; r0 < M; r0 += 700) {
        const int rows = M - r0 < 700 ? M - r0 : 700;
        vlp_gemm_st(tA, tB, rows, N, K, 1.0f, tA ? A + r0 : A + (size_t)r0 * lda, lda, B, ldb, 0.0f,
                    C2 + (size_t)r0 * N, N);
    }
    if (memcmp(C1, C2, nC * sizeof(float))) {
        printf("FAIL row split tA=%d tB=%d M=%d N=%d K=%d\n", tA, tB, M, N, K);
        n_fail++;
    } else {
        n_pass++;
    }
    free(A), free(B), free(C1), free(C2);
}

/* vlp_gemm called from inside a parallel region must work (runs single-threaded) */
static void check_in_parallel(void) {
    const int M = 70, N = 90, K = 130, T = 4;
    float *A = malloc(sizeof(float) * M * K * T), *B = malloc(sizeof(float) * K * N * T);
    float *C = malloc(sizeof(float) * M * N * T), *R = malloc(sizeof(float) * M * N * T);
    fill(A, (size_t)M * K * T);
    fill(B, (size_t)K * N * T);
    for (int t = 0; t < T; t++)
        vlp_gemm_st(0, 0, M, N, K, 1.0f, A + t * M * K, K, B + t * K * N, N, 0.0f, R + t * M * N, N);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < T; t++) vlp_gemm(0, 0, M, N, K, 1.0f, A + t * M * K, K, B + t * K * N, N, 0.0f, C + t * M * N, N);
    if (memcmp(C, R, sizeof(float) * M * N * T)) {
        printf("FAIL vlp_gemm inside omp parallel region differs from vlp_gemm_st\n");
        n_fail++;
    } else {
        n_pass++;
    }
    free(A);
    free(B);
    free(C);
    free(R);
}

static shape_t make_shape(int tA, int tB, int M, int N, int K, int pad, float alpha, float beta) {
    shape_t s;
    s.tA = tA;
    s.tB = tB;
    s.M = M;
    s.N = N;
    s.K = K;
    s.lda = (tA ? M : K) + (pad ? rng_int(1, 9) : 0);
    s.ldb = (tB ? K : N) + (pad ? rng_int(1, 9) : 0);
    s.ldc = N + (pad ? rng_int(1, 9) : 0);
    s.alpha = alpha;
    s.beta = beta;
    return s;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    printf("kernel: %s, max threads %d\n", vlp_gemm_kernel_name(), omp_get_max_threads());
    if (omp_get_max_threads() < 2) omp_set_num_threads(2);

    static const float alphas[] = {1.0f, -0.5f, 2.0f};
    static const float betas[] = {0.0f, 1.0f, 0.5f, -1.25f};

    /* 1. small exhaustive-ish edge sizes around the register blocks */
    static const int edge[] = {1, 2, 7, 13, 14, 15, 16, 17, 31, 32, 33, 47, 64, 65};
    const int ne = (int)(sizeof edge / sizeof edge[0]);
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++)
            for (int a = 0; a < ne; a += quick ? 3 : 1)
                for (int b = 0; b < ne; b += quick ? 3 : 1) {
                    const int K = edge[(a * 5 + b * 3) % ne];
                    shape_t s = make_shape(tA, tB, edge[a], edge[b], K, (a + b) & 1, alphas[(a + b) % 3], betas[(a * 3 + b) % 4]);
                    check_case((a + b) % 2 ? API_ST : API_MT, &s, 1, s.beta == 0.0f);
                }

    /* 2. random shapes 1..300, all transposes, alpha/beta variants, padded leading dims */
    const int nrand = quick ? 40 : 240;
    for (int r = 0; r < nrand; r++) {
        const int tA = r & 1, tB = (r >> 1) & 1;
        const int M = rng_int(1, 300), N = rng_int(1, 300), K = rng_int(1, 300);
        shape_t s = make_shape(tA, tB, M, N, K, rng_int(0, 1), alphas[rng_int(0, 2)], betas[rng_int(0, 3)]);
        const int api = r % 3;
        check_case(api, &s, api == API_BATCHED ? rng_int(1, 5) : 1, s.beta == 0.0f && rng_int(0, 1));
    }

    /* 3. special cases: K == 0, alpha == 0, beta == 0 with NaN C */
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            shape_t s = make_shape(tA, tB, 37, 41, 0, 1, 1.0f, 0.0f);
            s.lda = s.ldb = 1;
            check_case(API_MT, &s, 1, 1);
            s.beta = 0.5f;
            check_case(API_ST, &s, 1, 0);
            s = make_shape(tA, tB, 37, 41, 19, 1, 0.0f, 0.0f);
            check_case(API_MT, &s, 1, 1);
            s = make_shape(tA, tB, 37, 41, 19, 1, 0.0f, 2.0f);
            check_case(API_BATCHED, &s, 3, 0);
        }

    /* 4. a few large ones (K > one K block, N > one B block, multi-threaded partitions) */
    {
        struct { int tA, tB, M, N, K; } big[] = {
            {0, 0, 333, 1100, 777}, {0, 1, 257, 700, 1030}, {1, 0, 128, 96, 5000}, {1, 1, 301, 515, 513},
            {0, 0, 2100, 64, 129},  {1, 0, 190, 130, 2049},
        };
        const int nb = quick ? 2 : (int)(sizeof big / sizeof big[0]);
        for (int i = 0; i < nb; i++) {
            shape_t s = make_shape(big[i].tA, big[i].tB, big[i].M, big[i].N, big[i].K, i & 1, i % 2 ? 1.0f : -0.7f, i % 3 ? 0.0f : 1.0f);
            check_case(API_MT, &s, 1, s.beta == 0.0f);
        }
        shape_t s = make_shape(0, 1, 65, 65, 64, 0, 0.125f, 0.0f);
        check_case(API_BATCHED, &s, 12, 1);
        s = make_shape(0, 0, 65, 64, 65, 1, 1.0f, 1.0f);
        check_case(API_BATCHED, &s, 12, 0);
        s = make_shape(1, 0, 200, 300, 400, 0, 1.0f, 0.0f);
        check_case(API_BATCHED, &s, 2, 1); /* batch < threads: parallel inside */
    }

    /* 4b. fused epilogues and pre-packed B: register-block tails, several K and B blocks */
    {
        struct { int M, N, K; } f[] = {{1, 1, 1},    {7, 17, 5},     {50, 768, 768}, {65, 8, 1030},
                                       {333, 1100, 777}, {14, 40, 3},  {130, 47, 64},  {1600, 96, 200}};
        const int nf = (int)(sizeof f / sizeof f[0]);
        for (int i = 0; i < nf; i += quick ? 2 : 1)
            for (int act = VLP_GEMM_ACT_NONE; act <= VLP_GEMM_ACT_GELU_TANH; act++)
                check_fused((i + act) % 3 != 0, f[i].M, f[i].N, f[i].K, act, (i + act) & 1, (i + act) % 4 != 3);
    }

    /* 5. determinism: bit-identical across thread counts */
    {
        struct { int tA, tB, M, N, K; } d[] = {
            {0, 0, 1600, 300, 768}, {0, 1, 1000, 129, 515}, {1, 0, 128, 128, 4100}, {0, 0, 4000, 128, 128},
            {1, 1, 333, 333, 333},  {0, 0, 61, 2000, 200},  {1, 0, 512, 130, 3000},
        };
        const int nd = quick ? 3 : (int)(sizeof d / sizeof d[0]);
        for (int i = 0; i < nd; i++) check_determinism(d[i].tA, d[i].tB, d[i].M, d[i].N, d[i].K, i & 1 ? 1.0f : 0.0f);
    }

    /* 6. bias epilogue (linear layers) and chunked A packing */
    {
        struct { int tA, tB, M, N, K; } d[] = {
            {0, 1, 50, 2304, 768}, {0, 1, 77, 45, 13}, {0, 0, 300, 1000, 700}, {1, 0, 33, 17, 1}, {0, 1, 1, 900, 520},
        };
        for (int i = 0; i < (int)(sizeof d / sizeof d[0]); i++) check_bias(d[i].tA, d[i].tB, d[i].M, d[i].N, d[i].K);
        check_row_split(0, 1, 3100, 500, 1030);
        if (!quick) check_row_split(1, 0, 3100, 450, 1030);
    }

    check_in_parallel();

    /* free the packing buffers of every pool thread (keeps LeakSanitizer quiet) */
    omp_set_num_threads(4);
#pragma omp parallel
    vlp_gemm_free_buffers();
    vlp_gemm_free_buffers();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
