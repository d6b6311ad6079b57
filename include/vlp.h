/* vlp: vision-language pre-training in C.
 *
 * The engine is a static compute graph, ggml-style: a model is an ordinary C
 * function that calls the op constructors below to build the graph once for
 * fixed shapes; vlp_graph_build() plans every buffer into one arena; each step
 * then replays vlp_graph_forward() and vlp_graph_backward() with no heap
 * allocation. Reverse-mode autograd walks the recorded nodes backwards and
 * calls each op's backward kernel, so models and objectives never write a
 * backward pass by hand.
 *
 * Conventions: tensors are row-major; shapes are listed outermost first, as in
 * PyTorch. Linear weights are [out, in] (nn.Linear layout). Backward kernels
 * accumulate (+=) into the gradients of their inputs.
 *
 * Errors: op constructors return NULL on bad arguments and record a message on
 * the graph (vlp_graph_error); every later constructor on a failed graph also
 * returns NULL, so a model can be built in one go and checked once. Functions
 * returning int return 0 on success and a negative vlp_status otherwise, with
 * the message in vlp_last_error() (thread-local).
 */
#ifndef VLP_H
#define VLP_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* libvlp is built with hidden visibility; everything declared in the public
 * headers is exported. */
#pragma GCC visibility push(default)

#define VLP_VERSION "0.1.0"
#define VLP_MAX_DIMS 4
#define VLP_MAX_SRC 4

typedef enum {
    VLP_OK = 0,
    VLP_ERR_ARG = -1,     /* bad argument: NULL, wrong shape or dtype */
    VLP_ERR_NOMEM = -2,   /* allocation failed */
    VLP_ERR_STATE = -3,   /* call out of order (e.g. forward before build) */
    VLP_ERR_NUMERIC = -4, /* NaN or Inf in a loss or gradient */
    VLP_ERR_IO = -5,      /* file missing, unreadable or malformed */
} vlp_status;

typedef enum { VLP_F32 = 0, VLP_I32 = 1 } vlp_dtype;

/* Tensor flags. */
enum {
    VLP_FLAG_PARAM = 1 << 0,         /* owned by a vlp_params store */
    VLP_FLAG_INPUT = 1 << 1,         /* filled by the caller before each forward */
    VLP_FLAG_REQUIRES_GRAD = 1 << 2, /* a gradient buffer exists and is computed */
    VLP_FLAG_VIEW = 1 << 3,          /* shares data (and grad) with src[0] */
    VLP_FLAG_KEEP = 1 << 4,          /* output kept live in forward-only graphs */
    VLP_FLAG_NO_DECAY = 1 << 5,      /* parameter excluded from weight decay */
    VLP_FLAG_FROZEN = 1 << 6,        /* parameter that receives no gradient */
};

typedef struct vlp_tensor vlp_tensor;
struct vlp_tensor {
    vlp_dtype dtype;
    int ndim;
    int64_t shape[VLP_MAX_DIMS];
    int64_t stride[VLP_MAX_DIMS]; /* in elements; row-major contiguous unless a view */
    int64_t numel;
    void *data;  /* float* for F32, int32_t* for I32; valid after vlp_graph_build */
    float *grad; /* NULL unless VLP_FLAG_REQUIRES_GRAD */
    int flags;
    int op;      /* vlp internal op code; 0 for leaves (inputs, parameters) */
    int id;      /* position in the graph's node list, -1 for parameters */
    vlp_tensor *src[VLP_MAX_SRC];
    int32_t ip[8]; /* op integer parameters */
    float fp[4];   /* op float parameters */
    size_t aux_bytes;  /* per-node saved state for backward (norm stats, masks, probs) */
    void *aux;
    size_t off_data, off_grad, off_aux; /* arena offsets planned by vlp_graph_build */
    char name[64];
};

/* ---- errors, threads, version ------------------------------------------------ */
const char *vlp_last_error(void);
const char *vlp_version(void);
/* Threads used inside every heavy op. Default: $VLP_THREADS, else all cores. */
void vlp_set_threads(int n);
int vlp_get_threads(void);
/* Counts of heap allocations made by vlp itself (arena, stores, scratch);
 * lets tests prove a training step allocates nothing after the first. */
uint64_t vlp_alloc_count(void);

/* ---- parameters ---------------------------------------------------------------- */
/* A store of named parameter tensors backed by one flat data buffer and one flat
 * gradient buffer, so optimisers, clipping and checkpoints walk memory linearly.
 * Declare every tensor with vlp_params_add, then vlp_params_alloc once. */
typedef struct vlp_params vlp_params;
vlp_params *vlp_params_new(void);
void vlp_params_free(vlp_params *p);
vlp_tensor *vlp_params_add(vlp_params *p, const char *name, int ndim, const int64_t *shape, int flags);
int vlp_params_alloc(vlp_params *p); /* data zeroed */
int vlp_params_count(const vlp_params *p);
vlp_tensor *vlp_params_get(const vlp_params *p, int i);
vlp_tensor *vlp_params_find(const vlp_params *p, const char *name);
int64_t vlp_params_numel(const vlp_params *p);
float *vlp_params_data(const vlp_params *p); /* flat, vlp_params_numel floats */
float *vlp_params_grad(const vlp_params *p);
void vlp_params_zero_grad(vlp_params *p);
/* Deterministic initialisers (counter-based RNG: the result depends only on seed). */
void vlp_init_normal(vlp_tensor *t, float mean, float std, uint64_t seed);
void vlp_init_uniform(vlp_tensor *t, float lo, float hi, uint64_t seed);
void vlp_init_const(vlp_tensor *t, float value);

/* ---- graph ------------------------------------------------------------------------ */
typedef struct vlp_graph vlp_graph;
vlp_graph *vlp_graph_new(void);
void vlp_graph_free(vlp_graph *g);
const char *vlp_graph_error(const vlp_graph *g); /* NULL while the graph is healthy */

enum { VLP_BUILD_INFERENCE = 0, VLP_BUILD_TRAIN = 1 };
/* Plans and allocates every buffer. `out` is the loss (TRAIN; must be a scalar
 * unless a seed gradient is given to backward) or the output (INFERENCE, where
 * buffers are reused once dead; mark other tensors to read with vlp_keep). */
int vlp_graph_build(vlp_graph *g, vlp_tensor *out, int mode);
/* Inference graphs: packs the weight of every linear layer once into the GEMM's panel layout
 * (one more copy of those weights in memory) so that forwards skip re-packing them. The packed
 * copies are a snapshot: call again after changing the weights. */
int vlp_graph_pack_weights(vlp_graph *g);
int vlp_graph_forward(vlp_graph *g);
/* Backward from the built output. seed == NULL means d(out) = 1 (scalar out);
 * otherwise seed holds d(out), out->numel floats. Parameter gradients are
 * accumulated (call vlp_params_zero_grad between optimiser steps). */
int vlp_graph_backward(vlp_graph *g, const float *seed);
/* Training mode turns dropout on; the step number reseeds it. */
void vlp_graph_set_training(vlp_graph *g, int on, uint64_t step);
void vlp_graph_set_seed(vlp_graph *g, uint64_t seed);
size_t vlp_graph_arena_bytes(const vlp_graph *g);
/* Per-op-kind timing of forward and backward (also on with VLP_PROFILE=1);
 * vlp_graph_profile_print writes a table sorted by time and resets the counters. */
void vlp_graph_set_profile(vlp_graph *g, int on);
void vlp_graph_profile_print(vlp_graph *g, FILE *f);
int vlp_graph_node_count(const vlp_graph *g);
/* Nodes of op `name` ("linear", "add", "quick_gelu", ...) that a forward pass runs (after
 * vlp_graph_build; inference builds fold activations and residual adds into linear layers). */
int vlp_graph_op_count(const vlp_graph *g, const char *name);
vlp_tensor *vlp_graph_node(const vlp_graph *g, int i);
const char *vlp_op_name(int op);

/* ---- leaves ---------------------------------------------------------------------- */
vlp_tensor *vlp_input(vlp_graph *g, const char *name, vlp_dtype dtype, int ndim, const int64_t *shape);
/* An input whose gradient is wanted (gradient checks, input saliency). */
vlp_tensor *vlp_input_grad(vlp_graph *g, const char *name, int ndim, const int64_t *shape);
vlp_tensor *vlp_keep(vlp_tensor *t);
vlp_tensor *vlp_set_name(vlp_tensor *t, const char *name);

/* ---- ops (forward + backward each) ------------------------------------------------- */
/* y = op(a) @ op(b); a [..., M, K] (or [..., K, M] if ta), b [K, N] (or [N, K] if tb)
 * shared across the batch, or b with the same leading batch dims as a. */
vlp_tensor *vlp_matmul(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, int ta, int tb);
/* y = x @ w^T + bias; x [..., in], w [out, in], bias [out] or NULL. */
vlp_tensor *vlp_linear(vlp_graph *g, vlp_tensor *x, vlp_tensor *w, vlp_tensor *bias);
/* Elementwise; b broadcasts when its shape is a suffix of a's shape. */
vlp_tensor *vlp_add(vlp_graph *g, vlp_tensor *a, vlp_tensor *b);
vlp_tensor *vlp_mul(vlp_graph *g, vlp_tensor *a, vlp_tensor *b);
vlp_tensor *vlp_scale(vlp_graph *g, vlp_tensor *a, float s);
/* Normalises over the last dim; w, b [D] (either may be NULL). */
vlp_tensor *vlp_layernorm(vlp_graph *g, vlp_tensor *x, vlp_tensor *w, vlp_tensor *b, float eps);
vlp_tensor *vlp_softmax(vlp_graph *g, vlp_tensor *x); /* over the last dim */
vlp_tensor *vlp_gelu(vlp_graph *g, vlp_tensor *x);      /* exact, erf */
vlp_tensor *vlp_gelu_tanh(vlp_graph *g, vlp_tensor *x); /* tanh approximation */
vlp_tensor *vlp_quick_gelu(vlp_graph *g, vlp_tensor *x); /* x * sigmoid(1.702 x) */
enum { VLP_ACT_QUICK_GELU = 0, VLP_ACT_GELU = 1, VLP_ACT_GELU_TANH = 2 };
vlp_tensor *vlp_activation(vlp_graph *g, vlp_tensor *x, int act);
vlp_tensor *vlp_tanh_act(vlp_graph *g, vlp_tensor *x); /* tanh (BERT pooler) */

/* Multi-head scaled dot-product attention, fused (scores never leave the op's
 * saved state). q [B, Tq, D], k and v [B, Tk, D]; each may be a column view of a
 * fused projection (see vlp_view_cols). key_mask: I32 [B, Tk], 1 = attend,
 * 0 = padding; NULL for none. A mask [B, Tm] with Tm < Tk covers the first Tm keys
 * (the others are always attended). Output [B, Tq, D], heads concatenated. */
enum { VLP_ATTN_CAUSAL = 1 };
vlp_tensor *vlp_attention(vlp_graph *g, vlp_tensor *q, vlp_tensor *k, vlp_tensor *v,
                          int heads, int flags, vlp_tensor *key_mask);

/* ids I32 [...], table [V, D] -> [..., D]. Out-of-range ids are an error at forward.
 * An i32 table gives an i32 result (no gradient). */
vlp_tensor *vlp_embedding(vlp_graph *g, vlp_tensor *ids, vlp_tensor *table);
/* images [B, C, H, W], w [D, C, P, P], bias [D] or NULL -> [B, (H/P)*(W/P), D]
 * (conv with stride = kernel, patches in row-major grid order). */
vlp_tensor *vlp_patch_embed(vlp_graph *g, vlp_tensor *images, vlp_tensor *w, vlp_tensor *bias);
/* x [B, T, D], idx I32 [B] -> [B, D]: row idx[b] of sequence b. */
vlp_tensor *vlp_gather_rows(vlp_graph *g, vlp_tensor *x, vlp_tensor *idx);
/* x [B, N, D], tok [D] -> [B, N + 1, D]: tok first in every sequence (class token). */
vlp_tensor *vlp_prepend_token(vlp_graph *g, vlp_tensor *x, vlp_tensor *tok);
/* i32 [B, T] -> i32 [B]: position of the first maximum of each row (no gradient).
 * CLIP pools text at argmax(ids), the first end-of-text token. */
vlp_tensor *vlp_argmax(vlp_graph *g, vlp_tensor *ids);
/* i32 [B, T] -> i32 [B]: position of the first `value` in each row, T - 1 where a row lacks
 * it (no gradient; Hugging Face takes 0 there, but vlp's tokenizers always end a text with it).
 * A CLIP text tower fed by WordPiece pools at the first [SEP]. */
vlp_tensor *vlp_find_first(vlp_graph *g, vlp_tensor *ids, int32_t value);
/* scores f32 [B, B] (B >= 2) -> i32 [B]: for each row i, an index j != i drawn with
 * probability softmax(scores[i]) renormalised over j != i (ALBEF's hard negatives
 * for ITM). No gradient; the draw is a pure function of (graph seed, step, node). */
vlp_tensor *vlp_sample_negatives(vlp_graph *g, vlp_tensor *scores);
/* The same with probabilities ~ exp(exp(log_scale) * score): log_scale is a one-element tensor
 * (e.g. CLIP's logit scale = 1 / temperature), read at each forward; no gradient flows to it. */
vlp_tensor *vlp_sample_negatives_scaled(vlp_graph *g, vlp_tensor *scores, vlp_tensor *log_scale);
/* Copies [start, start+len) along dim. */
vlp_tensor *vlp_slice(vlp_graph *g, vlp_tensor *x, int dim, int64_t start, int64_t len);
vlp_tensor *vlp_concat(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, int dim); /* f32, or i32 (no gradient) */
/* No-copy views sharing data and gradient with x. */
vlp_tensor *vlp_reshape(vlp_graph *g, vlp_tensor *x, int ndim, const int64_t *shape);
vlp_tensor *vlp_view_cols(vlp_graph *g, vlp_tensor *x, int64_t start, int64_t len); /* last dim */
vlp_tensor *vlp_l2norm(vlp_graph *g, vlp_tensor *x, float eps); /* over the last dim */
vlp_tensor *vlp_sum(vlp_graph *g, vlp_tensor *x);  /* -> scalar */
vlp_tensor *vlp_mean(vlp_graph *g, vlp_tensor *x); /* -> scalar */
/* logits [N, C], targets I32 [N]; mean over targets != ignore_index. */
vlp_tensor *vlp_cross_entropy(vlp_graph *g, vlp_tensor *logits, vlp_tensor *targets, int ignore_index);
/* Symmetric InfoNCE (CLIP): a, b [N, E] (L2-normalise them first), log_scale a
 * scalar parameter (the logits are exp(log_scale) * a @ b^T); pairs on the
 * diagonal. Mean of the image->text and text->image cross-entropies. */
vlp_tensor *vlp_infonce(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, vlp_tensor *log_scale);
/* SigLIP pairwise sigmoid loss: a, b [N, E] (L2-normalised), scalar log_scale and bias;
 * logits exp(log_scale) * a @ b^T + bias, +1 labels on the diagonal, -1 elsewhere;
 * -(1/N) sum_ij log sigmoid(label * logit). (src/objectives/itc.c) */
vlp_tensor *vlp_siglip(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, vlp_tensor *log_scale, vlp_tensor *bias);
/* The image-text contrastive objective of training: L2-normalises both feature sets, then
 * VLP_ITC_CLIP (vlp_infonce; bias unused, may be NULL) or VLP_ITC_SIGLIP (vlp_siglip). */
enum { VLP_ITC_CLIP = 0, VLP_ITC_SIGLIP = 1 };
vlp_tensor *vlp_itc_loss(vlp_graph *g, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *log_scale, vlp_tensor *bias,
                         int kind);
/* Soft-target cross-entropy: logits, targets f32 [N, C]; mean over rows of
 * -sum_c targets * log_softmax(logits) (distillation from a teacher's probabilities). */
vlp_tensor *vlp_soft_cross_entropy(vlp_graph *g, vlp_tensor *logits, vlp_tensor *targets);
vlp_tensor *vlp_mse(vlp_graph *g, vlp_tensor *a, vlp_tensor *b); /* mean of squares */
/* Inverted dropout with probability p; identity unless the graph is training. */
vlp_tensor *vlp_dropout(vlp_graph *g, vlp_tensor *x, float p);

/* ---- optimiser and schedule -------------------------------------------------------- */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float clip_norm; /* global gradient-norm clip; <= 0 disables */
} vlp_adamw_config;
typedef struct vlp_adamw vlp_adamw;
vlp_adamw *vlp_adamw_new(vlp_params *p, const vlp_adamw_config *cfg);
void vlp_adamw_free(vlp_adamw *o);
/* One update at learning rate lr (from a schedule). grad_scale multiplies the
 * gradients first (1/accumulation_steps). Returns VLP_ERR_NUMERIC, leaving the
 * parameters untouched, if a gradient is NaN/Inf. *grad_norm gets the global
 * norm before clipping (may be NULL). */
int vlp_adamw_step(vlp_adamw *o, float lr, float grad_scale, float *grad_norm);
int64_t vlp_adamw_steps(const vlp_adamw *o);
/* Moment buffers, for checkpoints: each vlp_params_numel floats. */
float *vlp_adamw_m(vlp_adamw *o);
float *vlp_adamw_v(vlp_adamw *o);
void vlp_adamw_set_steps(vlp_adamw *o, int64_t t);
/* Global L2 norm of the gradients; clips in place to max_norm if > 0. */
float vlp_clip_grad_norm(vlp_params *p, float max_norm);
/* Linear warm-up from 0 over `warmup` steps, then cosine decay to min_lr at `total`. */
float vlp_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float base_lr, float min_lr);

/* ---- transformer blocks (src/nn) ---------------------------------------------------- */
typedef struct {
    int width, heads, layers;
    int mlp_dim;   /* hidden width of the MLP; 0 means 4 * width */
    int act;       /* VLP_ACT_* */
    float ln_eps;
    int causal;
} vlp_transformer_config;
typedef struct {
    vlp_tensor *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b;
    vlp_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vlp_block_params;
/* Declares the parameters of `layers` pre-LN blocks as "<prefix>.<l>.ln1.weight" etc.
 * (names of tests/fixtures/block2); blocks must hold cfg->layers entries. */
int vlp_transformer_declare(vlp_params *p, const char *prefix, const vlp_transformer_config *cfg,
                            vlp_block_params *blocks);
/* GPT-2/CLIP-style init: N(0, 0.02) weights (output projections scaled by depth), zero
 * biases, unit norm gains. */
void vlp_transformer_init(const vlp_transformer_config *cfg, vlp_block_params *blocks, uint64_t seed);
/* x [B, T, D] -> [B, T, D] through every block. If states is not NULL, states[l]
 * receives the output of block l (marked kept, so it can be read after forward). */
vlp_tensor *vlp_transformer_forward(vlp_graph *g, const vlp_transformer_config *cfg,
                                    const vlp_block_params *blocks, vlp_tensor *x, vlp_tensor *key_mask);
vlp_tensor *vlp_transformer_forward_states(vlp_graph *g, const vlp_transformer_config *cfg,
                                           const vlp_block_params *blocks, vlp_tensor *x, vlp_tensor *key_mask,
                                           vlp_tensor **states);

/* ---- files -------------------------------------------------------------------------- */
/* .npy (format 1.x/2.x, little-endian, C order) of float32 / int32 / int64
 * (int64 narrowed to int32 with a range check). *out is malloc'd; shape gets up
 * to VLP_MAX_DIMS dims. */
int vlp_npy_load(const char *path, vlp_dtype *dtype, int *ndim, int64_t *shape, void **out);
int vlp_npy_save(const char *path, vlp_dtype dtype, int ndim, const int64_t *shape, const void *data);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
