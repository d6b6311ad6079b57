/* oneDNN adapter for gemm_candidates: dnnl_sgemm is row-major, OpenMP-threaded. */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>

const char *cand_dnnl_info(void) {
    static char buf[64];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}
int cand_dnnl_sgemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc) {
    return dnnl_sgemm(tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == dnnl_success ? 0 : -1;
}
