/* GFLOP/s of vlp_gemm on the shapes vlp's models use, as % of a given peak.
 * Shapes: ViT-B/32 (50 tokens x 32 images = 1600 rows; widths 768/2304/3072)
 * and a small ViT training step (65 tokens x 256 = 16640 rows; widths 128-512),
 * in the transposes training uses (NN forward of dx, NT forward, TN weight grads).
 *
 *   build/bench/gemm_shapes [--peak GFLOPS] [--threads N] [--reps 7]
 * Prints one JSON line per shape: gflops at the median sample and, since other jobs on a shared
 * machine mostly slow samples down, gflops_best (the fastest sample) as well. */
#include "vlp.h"
#include "gemm.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    double peak = 0;
    int reps = 7, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--peak")) peak = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    if (threads) vlp_set_threads(threads);
    else vlp_set_threads(0);
    struct {
        const char *what;
        int ta, tb, M, N, K;
    } shapes[] = {
        {"vitb32 qkv fwd (x W^T)", 0, 1, 1600, 2304, 768},
        {"vitb32 fc1 fwd (x W^T)", 0, 1, 1600, 3072, 768},
        {"vitb32 fc2 fwd (x W^T)", 0, 1, 1600, 768, 3072},
        {"vitb32 fc1 dx (dy W)", 0, 0, 1600, 768, 3072},
        {"vitb32 fc1 dW (dy^T x)", 1, 0, 3072, 768, 1600},
        {"small d128 qkv fwd", 0, 1, 16640, 384, 128},
        {"small d128 fc1 fwd", 0, 1, 16640, 512, 128},
        {"small d128 fc2 fwd", 0, 1, 16640, 128, 512},
        {"small d128 fc2 dx", 0, 0, 16640, 512, 128},
        {"small d128 fc1 dW", 1, 0, 512, 128, 16640},
        {"small d256 fc1 fwd", 0, 1, 16640, 1024, 256},
        {"small d256 fc1 dW", 1, 0, 1024, 256, 16640},
        {"d512 fc1 fwd", 0, 1, 16640, 2048, 512},
        {"d512 fc2 fwd", 0, 1, 16640, 512, 2048},
        {"d512 fc1 dW", 1, 0, 2048, 512, 16640},
    };
    int n = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < n; s++) {
        int ta = shapes[s].ta, tb = shapes[s].tb, M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
        float *A = aligned_alloc(64, na * 4), *B = aligned_alloc(64, nb * 4), *C = aligned_alloc(64, nc * 4);
        for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7) % 13) * 0.01f;
        for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 5) % 11) * 0.01f;
        int lda = ta ? M : K, ldb = tb ? K : N;
        double *t = calloc((size_t)reps, sizeof *t);
        /* warm-up: at least 0.3 s on the first shape (thread pool, clocks, page mapping settle;
         * the first shape measured ~2x slow without it), one call on the others */
        double tw = omp_get_wtime();
        do vlp_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        while (s == 0 && omp_get_wtime() - tw < 0.3);
        for (int r = 0; r < reps; r++) {
            double t0 = omp_get_wtime();
            vlp_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
            t[r] = omp_get_wtime() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double gf = 2.0 * M * N * K / t[reps / 2] / 1e9, gbest = 2.0 * M * N * K / t[0] / 1e9;
        printf("{\"shape\":\"%s\",\"op\":\"%s%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"threads\":%d,\"gflops\":%.1f,"
               "\"pct_peak\":%.1f,\"gflops_best\":%.1f,\"pct_peak_best\":%.1f,\"kernel\":\"%s\"}\n",
               shapes[s].what, ta ? "T" : "N", tb ? "T" : "N", M, N, K, vlp_get_threads(), gf,
               peak > 0 ? 100.0 * gf / peak : 0.0, gbest, peak > 0 ? 100.0 * gbest / peak : 0.0, vlp_gemm_kernel_name());
        fflush(stdout);
        free(t);
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
