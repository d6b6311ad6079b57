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

#include <stddef.h>

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

/* A fused linear layer (inference graphs): C = alpha * op(A) @ op(B) + bias, then C += R (R is
 * [M,N] with row stride ldr; NULL: none), then C = act(C). The residual and activation are
 * applied to each row strip right after its last K block, while it is still in cache, instead
 * of in separate passes over C; bit-identical to the separate add and activation ops. */
enum { VLP_GEMM_ACT_NONE = 0, VLP_GEMM_ACT_QUICK_GELU, VLP_GEMM_ACT_GELU, VLP_GEMM_ACT_GELU_TANH };
/* op(B) packed once into the micro-kernel's panel layout, for a B that stays fixed over many
 * calls (inference weights): each call otherwise re-packs B, once per block of A rows. */
typedef struct vlp_gemm_packed vlp_gemm_packed;
vlp_gemm_packed *vlp_gemm_pack_b(int transB, int N, int K, const float *B, int ldb); /* NULL: no memory */
void vlp_gemm_packed_free(vlp_gemm_packed *p);
size_t vlp_gemm_packed_bytes(const vlp_gemm_packed *p);
/* Bpk: B packed by vlp_gemm_pack_b with the same transB, N and K, or NULL. B must still be valid:
 * a pack that does not match (another kernel or shape) is ignored and B is read instead. */
void vlp_gemm_fused(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, const vlp_gemm_packed *Bpk, const float *bias, const float *R,
                    int ldr, int act, float *C, int ldc);

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
