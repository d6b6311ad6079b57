/* Engine internals shared by src/core and src/ops. Not installed. */
#ifndef VLP_INTERNAL_H
#define VLP_INTERNAL_H

#include "vlp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VLP_ALIGN 64

/* Op codes. Order is free; the table in graph.c maps each to its kernels. */
enum {
    OP_NONE = 0,
    OP_VIEW,
    OP_MATMUL,
    OP_LINEAR,
    OP_ADD,
    OP_MUL,
    OP_SCALE,
    OP_LAYERNORM,
    OP_SOFTMAX,
    OP_GELU,
    OP_GELU_TANH,
    OP_QUICK_GELU,
    OP_ATTENTION,
    OP_EMBEDDING,
    OP_PATCH_EMBED,
    OP_GATHER_ROWS,
    OP_SLICE,
    OP_CONCAT,
    OP_L2NORM,
    OP_SUM,
    OP_MEAN,
    OP_CROSS_ENTROPY,
    OP_INFONCE,
    OP_MSE,
    OP_DROPOUT,
    OP_PREPEND_TOKEN,
    OP_ARGMAX,
    OP_FIND_FIRST,
    OP_TANH,
    OP_SIGLIP, /* src/objectives/itc.c */
    OP_SAMPLE_NEGATIVES, /* src/ops/sample.c */
    OP_SOFT_CE,          /* src/ops/softce.c */
    OP_COUNT
};

/* Inference graphs fuse a linear layer with the activation or residual add that alone reads it
 * (vlp_graph_build): the linear node's ip[VLP_LINEAR_IP_ACT] holds a VLP_GEMM_ACT_* code and
 * src[3] the residual; the absorbed node becomes a view of the linear node. */
#define VLP_LINEAR_IP_ACT 6

typedef struct vlp_exec vlp_exec; /* per-call context handed to kernels */
struct vlp_exec {
    vlp_graph *g;
    int nthreads;
    char *scratch;          /* nthreads * scratch_per_thread bytes */
    size_t scratch_per_thread;
    int training;
    uint64_t seed, step;
    int status;             /* kernels set non-zero (and msg) on a runtime error */
    char msg[512];
};

typedef void (*vlp_kernel_fn)(vlp_tensor *t, vlp_exec *ex);

typedef struct {
    const char *name;
    vlp_kernel_fn forward;
    vlp_kernel_fn backward; /* NULL: op has no gradient (e.g. views are handled by sharing) */
    /* bytes of per-thread scratch needed by forward/backward (NULL = none) */
    size_t (*scratch)(const vlp_tensor *t, int nthreads);
} vlp_op_info;

extern const vlp_op_info *const vlp_ops[OP_COUNT];
extern const vlp_op_info vlp_op_leaf, vlp_op_view, vlp_op_matmul, vlp_op_linear, vlp_op_add, vlp_op_mul,
    vlp_op_scale, vlp_op_layernorm, vlp_op_softmax, vlp_op_gelu, vlp_op_gelu_tanh, vlp_op_quick_gelu,
    vlp_op_attention, vlp_op_embedding, vlp_op_patch_embed, vlp_op_gather_rows, vlp_op_slice, vlp_op_concat,
    vlp_op_l2norm, vlp_op_sum, vlp_op_mean, vlp_op_cross_entropy, vlp_op_infonce, vlp_op_mse, vlp_op_dropout,
    vlp_op_prepend_token, vlp_op_argmax, vlp_op_find_first, vlp_op_siglip, vlp_op_sample_negatives, vlp_op_soft_ce;
extern const vlp_op_info vlp_op_tanh;

/* Per-thread scratch of the current kernel call. */
static inline void *vlp_scratch(vlp_exec *ex, int tid) { return ex->scratch + (size_t)tid * ex->scratch_per_thread; }
/* Runtime error from inside a kernel (e.g. an id out of range). */
void vlp_exec_fail(vlp_exec *ex, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True if all dims but the last collapse into rows of a uniform stride and the last dim is contiguous. */
int vlp_rows_uniform(const vlp_tensor *t);
/* out[c] += sum_r x[r*ld + c], deterministic for any thread count. */
void vlp_colsum_accum(const float *x, int64_t rows, int64_t cols, int64_t ld, float *out, int nthreads);

struct vlp_graph {
    vlp_tensor **nodes; /* every tensor created on the graph, in creation order */
    int n_nodes, cap_nodes;
    char err[512];
    int failed;
    int built, mode;
    vlp_tensor *out;
    char *arena;
    size_t arena_bytes;
    size_t scratch_per_thread;
    char *scratch; /* nthreads * scratch_per_thread bytes inside the arena */
    int nthreads;
    int training;
    uint64_t seed, step;
    int profile;                      /* time every kernel (VLP_PROFILE=1 or vlp_graph_set_profile) */
    double prof_s[OP_COUNT][2];       /* seconds per op kind: forward, backward */
    int64_t prof_n[OP_COUNT][2];
    char *grad_zero_begin; /* activation gradients live in one range, zeroed per backward */
    void **packed;         /* per node: its weight packed for the GEMM (vlp_graph_pack_weights) */
    size_t grad_zero_bytes;
};

/* Error helpers. */
void vlp_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vlp_graph_fail(vlp_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "[2, 3, 4]" into buf. */
const char *vlp_shape_str(const vlp_tensor *t, char *buf, size_t n);

/* Counted allocation (vlp_alloc_count). */
void *vlp_malloc(size_t n);
void *vlp_aligned_alloc(size_t n);
void *vlp_calloc(size_t n, size_t m);
void vlp_free(void *p);

/* Node creation for op constructors: checks the graph is healthy and the
 * sources are non-NULL, creates a contiguous F32 node of the given shape. */
vlp_tensor *vlp_new_node(vlp_graph *g, int op, vlp_dtype dtype, int ndim, const int64_t *shape,
                         vlp_tensor *s0, vlp_tensor *s1, vlp_tensor *s2, vlp_tensor *s3);
int vlp_check_srcs(vlp_graph *g, const char *fn, int n, vlp_tensor *const *srcs);
int vlp_is_contiguous(const vlp_tensor *t);
/* Row count (product of all dims but the last) and last-dim length. */
static inline int64_t vlp_rows(const vlp_tensor *t) { return t->numel / (t->ndim ? t->shape[t->ndim - 1] : 1); }
static inline int64_t vlp_cols(const vlp_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
/* Row stride of a 2-D-viewed tensor (last dim contiguous). */
static inline int64_t vlp_ld(const vlp_tensor *t) { return t->ndim >= 2 ? t->stride[t->ndim - 2] : vlp_cols(t); }
static inline float *vlp_f(const vlp_tensor *t) { return (float *)t->data; }
static inline int32_t *vlp_i(const vlp_tensor *t) { return (int32_t *)t->data; }
static inline int vlp_needs_grad(const vlp_tensor *t) { return t && (t->flags & VLP_FLAG_REQUIRES_GRAD); }

/* Parallel loops. A region is entered only with more than one thread and
 * enough work: libgomp allocates a fresh team for every one-thread region, which
 * would break the rule that a training step after the first allocates nothing.
 * Usage: VLP_PARFOR(nthreads, cond, (int64_t i = 0; i < n; i++), { body });
 * (vlp_nt_ is named in the pragma, so it must be a variable, not the argument.) */
#define VLP_PARFOR_(SCHED, NT, COND, HDR, ...)                   \
    do {                                                         \
        int vlp_nt_ = (NT);                                      \
        if (vlp_nt_ > 1 && (COND)) {                             \
            _Pragma(SCHED) for HDR __VA_ARGS__                   \
        } else {                                                 \
            for HDR __VA_ARGS__                                  \
        }                                                        \
    } while (0)
#define VLP_PARFOR(NT, COND, HDR, ...) \
    VLP_PARFOR_("omp parallel for num_threads(vlp_nt_) schedule(static)", NT, COND, HDR, __VA_ARGS__)
#define VLP_PARFOR_DYNAMIC(NT, COND, HDR, ...) \
    VLP_PARFOR_("omp parallel for num_threads(vlp_nt_) schedule(dynamic, 1)", NT, COND, HDR, __VA_ARGS__)

/* Fixed-size chunking for reductions: results do not depend on thread count. */
#define VLP_REDUCE_CHUNK 256

/* Counter-based RNG (splitmix64): value depends only on (key, counter). */
static inline uint64_t vlp_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static inline float vlp_u01(uint64_t key, uint64_t ctr) {
    return (float)(vlp_mix64(key ^ vlp_mix64(ctr)) >> 40) * (1.0f / 16777216.0f);
}

#endif
