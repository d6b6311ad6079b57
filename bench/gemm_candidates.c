/* Times SGEMM candidates on the shapes vlp needs: vlp_gemm (src/ops/gemm.c), OpenBLAS, BLIS,
 * oneDNN and libxsmm, with 1 and 2 threads; median GFLOP/s of >= 7 timed samples after warm-up,
 * and % of the measured FMA peak (bench/fma_peak.c).
 *
 * Build (from the repository root):
 *   gcc -O3 -fopenmp -std=c11 -Isrc/ops -I/usr/include/x86_64-linux-gnu \
 *       bench/gemm_candidates.c bench/gemm_candidates_openblas.c bench/gemm_candidates_blis.c \
 *       bench/gemm_candidates_dnnl.c bench/gemm_candidates_xsmm.c src/ops/gemm.c \
 *       -o build/gemm_candidates -lopenblas -lblis -ldnnl -lxsmmext -lxsmm -lm -ldl -lpthread
 * Run:  ./build/gemm_candidates [--peak1 GF] [--peak2 GF] [--only LIB[,LIB]] [--samples N] [--filter SUBSTR]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"

typedef int (*gemm_fn)(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc);

/* adapters (bench/gemm_candidates_*.c) */
const char *cand_openblas_info(void);
void cand_openblas_threads(int n);
int cand_openblas_sgemm(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
const char *cand_blis_info(void);
void cand_blis_threads(int n);
int cand_blis_sgemm(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
const char *cand_dnnl_info(void);
int cand_dnnl_sgemm(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
const char *cand_xsmm_info(void);
void cand_xsmm_init(void);
int cand_xsmm_sgemm_st(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
int cand_xsmm_sgemm_omp(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);

static int vlp_mt(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc) {
    vlp_gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}
static int xsmm_any(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc) {
    /* JIT kernels are for small problems; larger ones go through the OpenMP driver */
    if (omp_get_max_threads() == 1 && (double)M * N * K <= 64.0 * 64 * 256)
        return cand_xsmm_sgemm_st(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return cand_xsmm_sgemm_omp(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void set_threads(int n) {
    omp_set_num_threads(n);
    cand_openblas_threads(n);
    cand_blis_threads(n);
}

typedef struct {
    const char *name;
    gemm_fn fn;
} cand_t;
static const cand_t cands[] = {
    {"vlp", vlp_mt}, {"openblas", cand_openblas_sgemm}, {"blis", cand_blis_sgemm}, {"onednn", cand_dnnl_sgemm},
    {"libxsmm", xsmm_any},
};
#define NCAND ((int)(sizeof cands / sizeof cands[0]))

typedef struct {
    const char *tag;
    int tA, tB, M, N, K;
    int st_only; /* attention-sized: single-threaded only */
} shape_t;

static const shape_t shapes[] = {
    /* ViT-B/32, batch 32: 50 tokens x 32 = 1600 rows */
    {"vitb fc1 fwd", 0, 1, 1600, 3072, 768, 0},
    {"vitb fc1 NN", 0, 0, 1600, 3072, 768, 0},
    {"vitb fc1 dW", 1, 0, 3072, 768, 1600, 0},
    {"vitb fc2 fwd", 0, 1, 1600, 768, 3072, 0},
    {"vitb fc2 dX", 0, 0, 1600, 3072, 768, 0},
    {"vitb qkv fwd", 0, 1, 1600, 2304, 768, 0},
    {"vitb attn-out dW", 1, 0, 768, 768, 1600, 0},
    /* small ViT training: 65 tokens x 256 images = 16640 rows, width 128..512 */
    {"small 128->128", 0, 0, 16640, 128, 128, 0},
    {"small 128->256", 0, 0, 16640, 256, 128, 0},
    {"small 128->512", 0, 0, 16640, 512, 128, 0},
    {"small 512->128", 0, 0, 16640, 128, 512, 0},
    {"small 256->256 NT", 0, 1, 16640, 256, 256, 0},
    {"small 128->512 NT", 0, 1, 16640, 512, 128, 0},
    {"small dW 128x128", 1, 0, 128, 128, 16640, 0},
    {"small dW 512x128", 1, 0, 512, 128, 16640, 0},
    {"small dW 128x512", 1, 0, 128, 512, 16640, 0},
    {"small dW 256x256", 1, 0, 256, 256, 16640, 0},
    /* attention per head (single-threaded) */
    {"attn QK^T 65", 0, 1, 65, 65, 64, 1},
    {"attn PV 65", 0, 0, 65, 64, 65, 1},
    {"attn QK^T 50", 0, 1, 50, 50, 64, 1},
    {"attn PV 50", 0, 0, 50, 64, 50, 1},
    {"attn dP=dO V^T 65", 0, 1, 65, 65, 64, 1},
    {"attn dV=P^T dO 65", 1, 0, 65, 64, 65, 1},
};
#define NSHAPE ((int)(sizeof shapes / sizeof shapes[0]))

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* median GFLOP/s, or -1 when the candidate can't run the shape; *maxdiff: vs reference */
static double time_one(const cand_t *c, const shape_t *s, const float *A, const float *B, float *C, const float *ref,
                       int samples, double *maxrel) {
    const int lda = s->tA ? s->M : s->K, ldb = s->tB ? s->K : s->N, ldc = s->N;
    const double flop = 2.0 * s->M * s->N * s->K;
    if (c->fn(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc)) return -1;
    /* correctness vs vlp's result */
    if (ref) {
        double md = 0;
        for (long i = 0; i < (long)s->M * s->N; i++) {
            double d = fabs((double)C[i] - ref[i]) / (1.0 + fabs(ref[i]));
            if (!(d <= md)) md = d;
        }
        *maxrel = md;
    }
    double t0 = now();
    c->fn(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    double t1 = now() - t0;
    int reps = (int)(3e-3 / (t1 > 1e-9 ? t1 : 1e-9)); /* >= ~3 ms per sample */
    if (reps < 1) reps = 1;
    if (reps > 20000) reps = 20000;
    for (int r = 0; r < reps; r++) c->fn(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    double g[64];
    if (samples > 64) samples = 64;
    for (int smp = 0; smp < samples; smp++) {
        t0 = now();
        for (int r = 0; r < reps; r++) c->fn(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        g[smp] = flop * reps / (now() - t0) * 1e-9;
    }
    qsort(g, samples, sizeof(double), cmp_d);
    return g[samples / 2];
}

int main(int argc, char **argv) {
    double peak[3] = {0, 167.0, 298.0}; /* bench/fma_peak.c on the dev machine */
    const char *only = NULL, *filter = NULL;
    int samples = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--peak1") && i + 1 < argc)
            peak[1] = atof(argv[++i]);
        else if (!strcmp(argv[i], "--peak2") && i + 1 < argc)
            peak[2] = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--peak1 GF] [--peak2 GF] [--only vlp,openblas,...] [--filter SUBSTR] [--samples N]\n", argv[0]);
            return 2;
        }
    }
    if (samples < 7) samples = 7;
    cand_xsmm_init();
    printf("vlp kernel: %s | OpenBLAS %s | BLIS %s | oneDNN %s | libxsmm %s\n", vlp_gemm_kernel_name(),
           cand_openblas_info(), cand_blis_info(), cand_dnnl_info(), cand_xsmm_info());
    printf("peak: 1 thread %.0f GFLOP/s, 2 threads %.0f GFLOP/s; median of %d samples; beta=0\n\n", peak[1], peak[2],
           samples);

    printf("| shape | op | M | N | K | thr |");
    for (int c = 0; c < NCAND; c++)
        if (!only || strstr(only, cands[c].name)) printf(" %s |", cands[c].name);
    printf("\n|---|---|---|---|---|---|");
    for (int c = 0; c < NCAND; c++)
        if (!only || strstr(only, cands[c].name)) printf("---|");
    printf("\n");
    fflush(stdout);

    for (int si = 0; si < NSHAPE; si++) {
        const shape_t *s = &shapes[si];
        if (filter && !strstr(s->tag, filter)) continue;
        const size_t nA = (size_t)s->M * s->K, nB = (size_t)s->K * s->N, nC = (size_t)s->M * s->N;
        float *A = aligned_alloc(64, (nA * 4 + 63) / 64 * 64), *B = aligned_alloc(64, (nB * 4 + 63) / 64 * 64);
        float *C = aligned_alloc(64, (nC * 4 + 63) / 64 * 64), *ref = malloc(nC * 4);
        srand(si + 1);
        for (size_t i = 0; i < nA; i++) A[i] = rand() / (float)RAND_MAX - 0.5f;
        for (size_t i = 0; i < nB; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
        vlp_gemm_st(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, s->tA ? s->M : s->K, B, s->tB ? s->K : s->N, 0.0f, ref,
                    s->N);
        for (int thr = 1; thr <= 2; thr++) {
            if (thr == 2 && s->st_only) continue;
            set_threads(thr);
            printf("| %s | %s%s | %d | %d | %d | %d |", s->tag, s->tA ? "T" : "N", s->tB ? "T" : "N", s->M, s->N,
                   s->K, thr);
            for (int c = 0; c < NCAND; c++) {
                if (only && !strstr(only, cands[c].name)) continue;
                sleep_ms(30); /* let other libraries' spinning worker threads go idle */
                double md = 0;
                double gf = time_one(&cands[c], s, A, B, C, ref, samples, &md);
                if (gf < 0)
                    printf(" n/a |");
                else
                    printf(" %.0f (%.0f%%)%s |", gf, 100.0 * gf / peak[thr], md > 1e-3 ? " WRONG" : "");
                fflush(stdout);
            }
            printf("\n");
        }
        free(A);
        free(B);
        free(C);
        free(ref);
    }
    return 0;
}
