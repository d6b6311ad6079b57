/* libxsmm adapter for gemm_candidates (libxsmm is column-major: row-major C = op(A) op(B) is
 * column-major C^T = op(B)^T op(A)^T, i.e. swap the operands).
 *  - single-threaded: JIT kernel from libxsmm_smmdispatch (skipped when it cannot be generated)
 *  - multi-threaded:  libxsmm_sgemm_omp (libxsmmext, OpenMP) */
#include <libxsmm.h>

const char *cand_xsmm_info(void) { return LIBXSMM_VERSION; }
void cand_xsmm_init(void) { libxsmm_init(); }

int cand_xsmm_sgemm_st(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc) {
    const libxsmm_blasint m = N, n = M, k = K, la = ldb, lb = lda, lc = ldc;
    const int flags = (tB ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) | (tA ? LIBXSMM_GEMM_FLAG_TRANS_B : 0);
    const int prefetch = LIBXSMM_PREFETCH_NONE;
    libxsmm_smmfunction f = libxsmm_smmdispatch(m, n, k, &la, &lb, &lc, &alpha, &beta, &flags, &prefetch);
    if (!f) return -1;
    f(B, A, C);
    return 0;
}

int cand_xsmm_sgemm_omp(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
    const libxsmm_blasint m = N, n = M, k = K, la = ldb, lb = lda, lc = ldc;
    const char ta = tB ? 'T' : 'N', tb = tA ? 'T' : 'N';
    libxsmm_sgemm_omp(&ta, &tb, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
    return 0;
}
