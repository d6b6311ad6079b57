/* Measures this machine's FP32 FMA peak: independent chains of vector FMAs
 * (enough of them to hide FMA latency), one chain set per thread.
 * Prints GFLOP/s for 1 thread and for all threads. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define CHAINS 12 /* independent accumulators: > FMA latency x ports */

__attribute__((target("avx512f"), noinline)) static float fma_run512(long iters) {
    __m512 a0 = _mm512_set1_ps((float)0 * 1e-3f);
    __m512 a1 = _mm512_set1_ps((float)1 * 1e-3f);
    __m512 a2 = _mm512_set1_ps((float)2 * 1e-3f);
    __m512 a3 = _mm512_set1_ps((float)3 * 1e-3f);
    __m512 a4 = _mm512_set1_ps((float)4 * 1e-3f);
    __m512 a5 = _mm512_set1_ps((float)5 * 1e-3f);
    __m512 a6 = _mm512_set1_ps((float)6 * 1e-3f);
    __m512 a7 = _mm512_set1_ps((float)7 * 1e-3f);
    __m512 a8 = _mm512_set1_ps((float)8 * 1e-3f);
    __m512 a9 = _mm512_set1_ps((float)9 * 1e-3f);
    __m512 a10 = _mm512_set1_ps((float)10 * 1e-3f);
    __m512 a11 = _mm512_set1_ps((float)11 * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
        a0 = _mm512_fmadd_ps(a0, a, b);
        a1 = _mm512_fmadd_ps(a1, a, b);
        a2 = _mm512_fmadd_ps(a2, a, b);
        a3 = _mm512_fmadd_ps(a3, a, b);
        a4 = _mm512_fmadd_ps(a4, a, b);
        a5 = _mm512_fmadd_ps(a5, a, b);
        a6 = _mm512_fmadd_ps(a6, a, b);
        a7 = _mm512_fmadd_ps(a7, a, b);
        a8 = _mm512_fmadd_ps(a8, a, b);
        a9 = _mm512_fmadd_ps(a9, a, b);
        a10 = _mm512_fmadd_ps(a10, a, b);
        a11 = _mm512_fmadd_ps(a11, a, b);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m512 s = a0;
    s = s + a1;
    s = s + a2;
    s = s + a3;
    s = s + a4;
    s = s + a5;
    s = s + a6;
    s = s + a7;
    s = s + a8;
    s = s + a9;
    s = s + a10;
    s = s + a11;
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float fma_run256(long iters) {
    __m256 a0 = _mm256_set1_ps((float)0 * 1e-3f);
    __m256 a1 = _mm256_set1_ps((float)1 * 1e-3f);
    __m256 a2 = _mm256_set1_ps((float)2 * 1e-3f);
    __m256 a3 = _mm256_set1_ps((float)3 * 1e-3f);
    __m256 a4 = _mm256_set1_ps((float)4 * 1e-3f);
    __m256 a5 = _mm256_set1_ps((float)5 * 1e-3f);
    __m256 a6 = _mm256_set1_ps((float)6 * 1e-3f);
    __m256 a7 = _mm256_set1_ps((float)7 * 1e-3f);
    __m256 a8 = _mm256_set1_ps((float)8 * 1e-3f);
    __m256 a9 = _mm256_set1_ps((float)9 * 1e-3f);
    __m256 a10 = _mm256_set1_ps((float)10 * 1e-3f);
    __m256 a11 = _mm256_set1_ps((float)11 * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
        a0 = _mm256_fmadd_ps(a0, a, b);
        a1 = _mm256_fmadd_ps(a1, a, b);
        a2 = _mm256_fmadd_ps(a2, a, b);
        a3 = _mm256_fmadd_ps(a3, a, b);
        a4 = _mm256_fmadd_ps(a4, a, b);
        a5 = _mm256_fmadd_ps(a5, a, b);
        a6 = _mm256_fmadd_ps(a6, a, b);
        a7 = _mm256_fmadd_ps(a7, a, b);
        a8 = _mm256_fmadd_ps(a8, a, b);
        a9 = _mm256_fmadd_ps(a9, a, b);
        a10 = _mm256_fmadd_ps(a10, a, b);
        a11 = _mm256_fmadd_ps(a11, a, b);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m256 s = a0;
    s = s + a1;
    s = s + a2;
    s = s + a3;
    s = s + a4;
    s = s + a5;
    s = s + a6;
    s = s + a7;
    s = s + a8;
    s = s + a9;
    s = s + a10;
    s = s + a11;
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

static double measure(int threads, int wide, long iters) {
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
        {
            float r = wide ? fma_run512(iters) : fma_run256(iters);
#pragma omp atomic
            sink += r;
        }
        double dt = omp_get_wtime() - t0;
        double flops = (double)threads * iters * CHAINS * (wide ? 16 : 8) * 2;
        if (flops / dt > best) best = flops / dt;
    }
    (void)sink;
    return best / 1e9;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 50000000L;
    int nt = omp_get_max_threads();
    int has512 = __builtin_cpu_supports("avx512f");
    double p1 = measure(1, has512, iters), pn = measure(nt, has512, iters);
    printf("fma_peak isa=%s threads=1 gflops=%.1f\n", has512 ? "avx512" : "avx2", p1);
    printf("fma_peak isa=%s threads=%d gflops=%.1f\n", has512 ? "avx512" : "avx2", nt, pn);
    return 0;
}
