/* BLIS adapter for gemm_candidates: typed API with general strides (row-major, any transpose). */
#include <blis.h>

const char *cand_blis_info(void) { return bli_info_get_version_str(); }
void cand_blis_threads(int n) { bli_thread_set_num_threads(n); }
int cand_blis_sgemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc) {
    /* describe op(A), op(B) directly through strides */
    inc_t rsa = tA ? 1 : lda, csa = tA ? lda : 1;
    inc_t rsb = tB ? 1 : ldb, csb = tB ? ldb : 1;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (float *)A, rsa, csa, (float *)B, rsb, csb,
              &beta, C, ldc, 1);
    return 0;
}
