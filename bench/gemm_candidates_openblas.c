/* OpenBLAS adapter for gemm_candidates (declared by hand: avoids cblas.h clashes with BLIS). */
enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
void openblas_set_num_threads(int n);
char *openblas_get_config(void);

const char *cand_openblas_info(void) { return openblas_get_config(); }
void cand_openblas_threads(int n) { openblas_set_num_threads(n); }
int cand_openblas_sgemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
    return 0;
}
