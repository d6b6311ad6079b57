/* The op table: op code -> name and kernels. Each op's kernels live in the file
 * of its family (linalg.c, elementwise.c, ...). */
#include "../core/internal.h"

const vlp_op_info vlp_op_leaf = {"leaf", NULL, NULL, NULL};

const vlp_op_info *const vlp_ops[OP_COUNT] = {
    [OP_NONE] = &vlp_op_leaf,
    [OP_VIEW] = &vlp_op_view,
    [OP_MATMUL] = &vlp_op_matmul,
    [OP_LINEAR] = &vlp_op_linear,
    [OP_ADD] = &vlp_op_add,
    [OP_MUL] = &vlp_op_mul,
    [OP_SCALE] = &vlp_op_scale,
    [OP_LAYERNORM] = &vlp_op_layernorm,
    [OP_SOFTMAX] = &vlp_op_softmax,
    [OP_GELU] = &vlp_op_gelu,
    [OP_GELU_TANH] = &vlp_op_gelu_tanh,
    [OP_QUICK_GELU] = &vlp_op_quick_gelu,
    [OP_ATTENTION] = &vlp_op_attention,
    [OP_EMBEDDING] = &vlp_op_embedding,
    [OP_PATCH_EMBED] = &vlp_op_patch_embed,
    [OP_GATHER_ROWS] = &vlp_op_gather_rows,
    [OP_SLICE] = &vlp_op_slice,
    [OP_CONCAT] = &vlp_op_concat,
    [OP_L2NORM] = &vlp_op_l2norm,
    [OP_SUM] = &vlp_op_sum,
    [OP_MEAN] = &vlp_op_mean,
    [OP_CROSS_ENTROPY] = &vlp_op_cross_entropy,
    [OP_INFONCE] = &vlp_op_infonce,
    [OP_MSE] = &vlp_op_mse,
    [OP_DROPOUT] = &vlp_op_dropout,
    [OP_PREPEND_TOKEN] = &vlp_op_prepend_token,
    [OP_ARGMAX] = &vlp_op_argmax,
    [OP_FIND_FIRST] = &vlp_op_find_first,
    [OP_SAMPLE_NEGATIVES] = &vlp_op_sample_negatives,
    [OP_SOFT_CE] = &vlp_op_soft_ce,
    [OP_SIGLIP] = &vlp_op_siglip,
    [OP_TANH] = &vlp_op_tanh,
};

/* Column sums, split over column blocks so every output element is summed by
 * one thread in row order: bit-identical for any thread count. */
void vlp_colsum_accum(const float *x, int64_t rows, int64_t cols, int64_t ld, float *out, int nthreads) {
    const int64_t CB = 64;
    int64_t nblk = (cols + CB - 1) / CB;
    VLP_PARFOR(nthreads, rows * cols > 32768, (int64_t blk = 0; blk < nblk; blk++), {
        int64_t c0 = blk * CB, c1 = c0 + CB < cols ? c0 + CB : cols;
        float acc[64];
        for (int64_t c = c0; c < c1; c++) acc[c - c0] = 0;
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * ld;
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += xr[c];
        }
        for (int64_t c = c0; c < c1; c++) out[c] += acc[c - c0];
    });
}
