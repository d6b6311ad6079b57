/* vlp_train.h: pre-training (the trainer, its checkpoints) of CLIP (contrastive) and of the
 * VL families of vlp_vl.h (their weighted objectives, one shared loop), and the evaluations
 * used during and after training (image-text retrieval, ITM re-ranking, zero-shot
 * classification).
 *
 * Training: a vlp_trainer owns the training graph of one CLIP model for a fixed batch, the
 * AdamW state and the step counter. Each vlp_trainer_step takes one batch from a batch
 * source (a vlp_loader, or anything with the same calls: tests use in-memory data), runs
 * forward and backward over accum_steps micro-batches, clips the global gradient norm,
 * steps AdamW at the warm-up + cosine learning rate, and clamps the logit scale to
 * [0, max_logit_scale]. vlp_train_run adds the run directory around it: metrics.jsonl,
 * checkpoints, periodic evaluation, exact resume.
 *
 * Run directory:
 *   RUN_DIR/metrics.jsonl         one JSON object per log interval or evaluation
 *   RUN_DIR/checkpoints/step_NNNNNNNN/{model.safetensors, config.json, train_state.safetensors}
 *   RUN_DIR/checkpoints/latest    the name of the newest complete checkpoint
 *   RUN_DIR/model/                the final model (Hugging Face CLIPModel layout)
 * A checkpoint directory is written under a temporary name, every file fsync'd, then renamed,
 * and only then is `latest` replaced (write, fsync, rename): a crash at any point leaves the
 * previous checkpoint and pointer intact. model.safetensors + config.json load with
 * vlp_clip_load; train_state.safetensors holds the AdamW moments ("adamw.m.<param>",
 * "adamw.v.<param>"), the SigLIP bias, and in its metadata the step, the data position
 * (epoch, batch), the seed and the loss.
 *
 * Resume restores parameters, moments, step and data position exactly, so a resumed run
 * produces the same losses as an uninterrupted one, bit for bit (same thread count not
 * needed: every kernel is deterministic across thread counts).
 *
 * Errors: NULL or a negative vlp_status with the message in vlp_last_error().
 */
#ifndef VLP_TRAIN_H
#define VLP_TRAIN_H

#include "vlp.h"
#include "vlp_clip.h"
#include "vlp_data.h"
#include "vlp_vl.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- batch sources ---------------------------------------------------------------------- */
/* next fills a batch (buffers valid until the next call); seek positions the source so the
 * next batch is (epoch, batch) (NULL: the source cannot resume); take_wait_seconds (may be
 * NULL) returns the time next spent waiting for data since its last call. */
typedef struct {
    void *ctx;
    int (*next)(void *ctx, vlp_batch *out);
    int (*seek)(void *ctx, int64_t epoch, int64_t batch);
    double (*take_wait_seconds)(void *ctx);
    int64_t batches_per_epoch;
} vlp_batch_source;
/* A source over a vlp_loader (borrowed). */
void vlp_batch_source_from_loader(vlp_batch_source *s, vlp_loader *ld);

/* ---- trainer -------------------------------------------------------------------------------- */
typedef struct {
    int batch_size;        /* pairs per optimiser step (the loader's batch size) */
    int accum_steps;       /* micro-batches per step (divides batch_size); the contrastive loss
                              is computed within each micro-batch, gradients are averaged */
    int64_t steps;         /* optimiser steps in the run */
    int64_t warmup;        /* linear warm-up steps, then cosine decay to min_lr at `steps` */
    float lr, min_lr;
    float beta1, beta2, eps, weight_decay; /* decay skips VLP_FLAG_NO_DECAY parameters: biases,
                                              norm gains, embeddings, logit scale and bias */
    float clip_norm;       /* global gradient-norm clip; <= 0: off */
    int loss;              /* VLP_ITC_CLIP or VLP_ITC_SIGLIP */
    float max_logit_scale; /* clamp of the log logit scale after each step (ln 100) */
    float siglip_scale_init, siglip_bias_init; /* SigLIP: log scale ln 10 and bias -10 */
    uint64_t seed;         /* dropout; the data order is the source's */
} vlp_train_config;
/* The CLIP recipe: batch 256, lr 5e-4, betas (0.9, 0.98), eps 1e-6, wd 0.1, min_lr 0,
 * no clipping, InfoNCE, max_logit_scale ln 100, 1 accumulation step. steps and warmup 0. */
void vlp_train_config_default(vlp_train_config *c);
int vlp_train_config_validate(const vlp_train_config *c);

typedef struct {
    int64_t step;            /* optimiser steps done (after this one) */
    float loss;              /* mean over the micro-batches of this step */
    float lr, grad_norm;     /* grad_norm before clipping */
    float logit_scale;       /* exp(log scale) after the step */
    float logit_bias;        /* SigLIP bias (0 for CLIP) */
    int64_t epoch, batch;    /* data position of the next step */
    double data_wait_s, compute_s;
    /* VL runs: each objective's unweighted loss, mean over the micro-batches ("itc", "itm",
     * "mlm", "mim", "lm"; n_parts 0 for CLIP) */
    int n_parts;
    const char *part_name[8];
    float part_loss[8];
} vlp_train_stats;

typedef struct vlp_trainer vlp_trainer;
/* model is borrowed and trained in place; it must outlive the trainer. Builds the graph. */
vlp_trainer *vlp_trainer_new(vlp_clip *model, const vlp_train_config *cfg);
void vlp_trainer_free(vlp_trainer *t);
/* One optimiser step. A NaN or Inf loss or gradient is VLP_ERR_NUMERIC with the step in the
 * message; the parameters are then left as they were before the step. */
int vlp_trainer_step(vlp_trainer *t, vlp_batch_source *src, vlp_train_stats *st);
/* The same trainer over a VL model (include/vlp_vl.h, any family): each micro-batch runs the
 * model's pre-training graph (vlp_vl_pretrain_graph: the objectives with weight > 0) on the
 * batch's pixels and WordPiece ids (context = the model's max_text_len; the attention mask is
 * ids != pad_id); MLM / MIM masks and ITM negatives are drawn from (seed, step, micro-batch),
 * so resume stays exact. is_cont (may be NULL; vocab_size entries, copied) marks "##"
 * continuations for whole-word masking. cfg->loss must be VLP_ITC_CLIP; the logit scale, if
 * the model has one, is clamped like CLIP's. Momentum distillation (cfg.momentum > 0) is not
 * supported by the trainer yet (an error). Checkpoints hold vlp_vl_save's model files;
 * train_state records "vl/<family>" as its loss, so a checkpoint of another family or of a
 * CLIP model is refused. */
vlp_trainer *vlp_trainer_new_vl(vlp_vl *model, const uint8_t *is_cont, const vlp_train_config *cfg);
vlp_vl *vlp_trainer_vl_model(vlp_trainer *t); /* NULL for a CLIP trainer (vlp_trainer_model: NULL for VL) */
int64_t vlp_trainer_step_count(const vlp_trainer *t);
const vlp_train_config *vlp_trainer_config(const vlp_trainer *t);
vlp_clip *vlp_trainer_model(vlp_trainer *t);
/* Where the data source stands (the next batch to read). */
void vlp_trainer_position(const vlp_trainer *t, int64_t *epoch, int64_t *batch);
/* Losses since the last log line (sum, count): part of the state so resumed logs match. */
void vlp_trainer_take_log_loss(vlp_trainer *t, double *sum, int64_t *count);

/* Checkpoint directory `dir` (created atomically, replacing one of that name). extra_meta:
 * key, value, ..., NULL (may be NULL) is stored in train_state's metadata. */
int vlp_trainer_save(vlp_trainer *t, const char *dir, const char *const *extra_meta);
/* Restores parameters, moments, step and data position from a checkpoint directory written by
 * vlp_trainer_save for the same model config and loss. Does not seek a source. */
int vlp_trainer_load(vlp_trainer *t, const char *dir);

/* ---- a whole run ------------------------------------------------------------------------ */
typedef struct {
    const char *run_dir;   /* created if missing */
    int log_every;         /* metrics.jsonl line every N steps (0: 10) */
    int save_every;        /* checkpoint every N steps (0: only at the end) */
    int eval_every;        /* eval callback every N steps (0: only at the end, if any) */
    int keep_checkpoints;  /* newest N kept (0: 2) */
    int resume;            /* 1: continue from RUN_DIR/checkpoints/latest (error if none) */
    int save_final;        /* 1: write RUN_DIR/model at the end */
    /* Called after every step (progress lines). May be NULL. Non-zero stops the run (saved). */
    int (*on_step)(void *ctx, const vlp_train_stats *st, double pairs_per_s, double data_wait_frac);
    /* Evaluation: writes a JSON object (e.g. {"style/t2i_r1": 0.12}) into buf; its fields are
     * added to the metrics line of that step. May be NULL. Non-zero: the run fails. */
    int (*on_eval)(void *ctx, vlp_trainer *t, int64_t step, char *buf, size_t cap);
    void *ctx;
    const char *const *meta; /* extra checkpoint metadata (key, value, ..., NULL) */
} vlp_run_options;
/* Trains until cfg->steps. Returns 0, VLP_ERR_NUMERIC on NaN/Inf (after writing the log line
 * of that step; no checkpoint of the diverged state), or another error. */
int vlp_train_run(vlp_trainer *t, vlp_batch_source *src, const vlp_run_options *o);
/* The newest checkpoint directory of a run ("RUN_DIR/checkpoints/step_..."), into out. */
int vlp_train_latest_checkpoint(const char *run_dir, char *out, size_t cap);

/* ---- evaluation ----------------------------------------------------------------------------- */
typedef struct {
    double r1, r5, r10;      /* fraction of queries with the match in the top 1, 5, 10 */
    double mean_rank, median_rank; /* 1-based rank of the (best) match */
    int64_t queries, candidates;
} vlp_recall;
typedef struct {
    vlp_recall i2t, t2i;
} vlp_retrieval_result;
/* sim [ni, nt]: similarity of image i and text j (row-major). txt_img[j] (0..ni-1) is the image
 * of text j; NULL means text j belongs to image j (ni == nt). An image's rank is that of its best
 * matching text. Ties count in the query's favour (rank = 1 + the number of strictly better
 * candidates). */
int vlp_retrieval_metrics(const float *sim, int64_t ni, int64_t nt, const int64_t *txt_img,
                          vlp_retrieval_result *out);
/* Re-ranking: for each of nq queries, order[q * nc ..] gets its nc candidates sorted by the
 * first-stage scores itc [nq, nc] (descending; ties by index), then the top k (clipped to nc)
 * re-sorted by score(ctx, q, cands, k, out): out[r] scores cands[r] (higher is better; ties
 * keep the first-stage order). k <= 1 never calls score: the order is the first stage's. */
typedef int (*vlp_rerank_score_fn)(void *ctx, int64_t query, const int64_t *cands, int k, float *out);
int vlp_rerank(const float *itc, int64_t nq, int64_t nc, int k, vlp_rerank_score_fn score, void *ctx,
               int64_t *order);
/* Retrieval with a VL model that has ITC heads (embed_dim > 0): pairs sharing an image key
 * count as one image, as vlp_eval_retrieval. tokenize (thread-safe; e.g. WordPiece [CLS] text
 * [SEP] of max_text_len ids, padded with pad_id) gives the ids. itc gets the ITC retrieval;
 * with rerank > 1 and reranked non-NULL, the top `rerank` candidates of every query (text ->
 * image and image -> text) are re-scored by the ITM probability (ALBEF / BLIP) and reranked
 * gets the metrics of the new order (the model needs an ITM head: w_itm > 0 when built). */
int vlp_vl_eval_retrieval(const vlp_vl *m, vlp_tokenize_fn tokenize, void *tokenize_ctx, const vlp_dataset *ds,
                          int batch, int rerank, vlp_retrieval_result *itc, vlp_retrieval_result *reranked);
/* ITM-only retrieval (ViLT's protocol) for a model with an ITM head, with or without ITC
 * heads: every text x image pair (images as above) goes through the fusion encoder once and
 * each query ranks all its candidates by the ITM match probability p (scored as its logit
 * log(p / (1 - p)): the same order, without p rounding to 1 for confident pairs). Cost:
 * texts x images fusion forwards, `batch` pairs per forward. */
typedef struct {
    int batch;         /* pairs per encoding batch and per ITM forward; 0: 64 */
    int64_t max_pairs; /* more pairs than this: VLP_ERR_ARG before any work; 0: no limit */
    /* pairs scored so far (may be NULL): first (0, total), then after every forward */
    void (*on_progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} vlp_vl_itm_full_options;
/* texts x images of ds (*n_images, may be NULL, gets the images); -1 on error. */
int64_t vlp_vl_itm_full_pairs(const vlp_dataset *ds, int64_t *n_images);
/* opt may be NULL. scores (may be NULL) gets a malloc'd [images, texts] matrix of the scores. */
int vlp_vl_eval_itm_full(const vlp_vl *m, vlp_tokenize_fn tokenize, void *tokenize_ctx, const vlp_dataset *ds,
                         const vlp_vl_itm_full_options *opt, vlp_retrieval_result *out, float **scores);
/* Zero-shot classifier weights: txt [C * T, E] holds the text features of class c with
 * template t at row c * T + t; each is L2-normalised, averaged over templates per class and
 * renormalised into w [C, E]. */
void vlp_zeroshot_weights(const float *txt, int C, int T, int E, float *w);
typedef struct {
    double top1, top5;       /* accuracy over labelled images */
    int64_t n;               /* images with a label (label >= 0) */
    int classes;
} vlp_zeroshot_result;
/* img [n, E] image features (normalised inside), w [C, E]; labels[i] in 0..C-1, or < 0 to skip.
 * pred (may be NULL) gets the top-1 class of every image. */
int vlp_zeroshot_eval(const float *img, int64_t n, const float *w, int C, int E, const int *labels, int *pred,
                      vlp_zeroshot_result *out);
/* Writes "{}"-style prompt: the first "{...}" in tmpl (e.g. "{}" or "{category}") replaced by
 * name. Returns the length, or < 0 if it does not fit. */
int vlp_format_prompt(const char *tmpl, const char *name, char *out, size_t cap);

/* Features of every pair of a dataset (in dataset order), with CLIP preprocessing and the
 * CLIP BPE (context length of the model). img, txt: malloc'd [n, embed_dim], L2-normalised. */
int vlp_embed_dataset(const vlp_clip *m, const vlp_dataset *ds, int batch, int workers, float **img, float **txt,
                      int64_t *n);
/* Retrieval over a dataset: pairs sharing an image key count as one image with several texts. */
int vlp_eval_retrieval(const vlp_clip *m, const vlp_dataset *ds, int batch, vlp_retrieval_result *out);
/* Zero-shot classification from a JSON file (what `vlp data emoji` writes as zeroshot.json):
 * {"classes": [names], "templates": ["an emoji of {}", ...], "images": [{"filepath": P,
 * "label": class index}, ...]} with paths relative to the file. An image that cannot be
 * decoded is an error naming it. */
int vlp_eval_zeroshot_file(const vlp_clip *m, const char *json_path, int batch, vlp_zeroshot_result *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
