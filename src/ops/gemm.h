/* vlp SGEMM: blocked (GotoBLAS/BLIS-style) single-precision matrix multiply.
 *
 * All matrices are row-major.
 *   C[M,N] = alpha * op(A) @ op(B) + beta * C
 *   op(A) is [M,K]: A stored [M,K] (lda >= K) or, if transA, stored [K,M] (lda >= M).
 *   op(B) is [K,N]: B stored [K,N] (ldb >= N) or, if transB, stored [N,K] (ldb >= K).
 *   ldc >= N.  beta == 0 means C is not read (it may hold NaN/garbage).
 *
 * Results are bit-identical for any thread count (work is split over M/N tiles only;
 * the K summation order depends only on K).  Packing buffers are thread-local and grown
 * once, so steady-state calls perform no heap allocation.
 */
#ifndef VLP_OPS_GEMM_H
#define VLP_OPS_GEMM_H

#ifdef __cplusplus
extern "C" {
#endif

/* Multi-threaded (OpenMP, omp_get_max_threads()); runs single-threaded when called
 * from inside an active OpenMP parallel region or when the problem is small. */
void vlp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* C = alpha * op(A) @ op(B) + bias (bias[N] added to every row; NULL: none; C is not read).
 * Bit-identical to filling C with the bias rows and calling vlp_gemm with beta = 1, without the
 * extra pass over C.  Threads as vlp_gemm. */
void vlp_gemm_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, const float *bias, float *C, int ldc);

/* Single-threaded; safe to call concurrently from many threads (e.g. one per attention head). */
void vlp_gemm_st(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

/* batch independent GEMMs: matrix b uses A + b*strideA, B + b*strideB, C + b*strideC.
 * Parallel over the batch (and inside each GEMM when batch is smaller than the thread count). */
void vlp_gemm_batched(int transA, int transB, int batch, int M, int N, int K, float alpha,
                      const float *A, long strideA, int lda, const float *B, long strideB, int ldb,
                      float beta, float *C, long strideC, int ldc);

/* Name of the micro-kernel selected at runtime, e.g. "avx512 14x32" or "generic 6x16". */
const char *vlp_gemm_kernel_name(void);

/* Frees the calling thread's packing buffers (they are re-grown on the next call). */
void vlp_gemm_free_buffers(void);

#ifdef __cplusplus
}
#endif

#endif /* VLP_OPS_GEMM_H */
