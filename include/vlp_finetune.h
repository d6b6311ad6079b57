/* vlp_finetune.h: fine-tuning a pre-trained fusion model (include/vlp_vl.h) on a downstream
 * task (include/vlp_eval.h task files), and predicting with the result.
 *
 * A fine-tuned model is the pre-trained backbone plus a task head, in one parameter store
 * (the backbone's tensors are re-pointed into it), so the trainer of vlp_train.h (one loop,
 * AdamW, warm-up + cosine, atomic checkpoints, exact resume) trains both. Heads:
 *   vqa   "answer_mlp": pooled fused [CLS] -> Linear(W, 2W) -> LayerNorm -> GELU ->
 *         Linear(2W, A) over the A distinct (normalised) answers of the train file;
 *         cross-entropy (ViLT's VQA classifier). Text: the question.
 *   mc    "itm": each (image, choice) through the fusion and the pre-trained ITM head; the
 *         score is the ITM log-odds (logit 1 - logit 0); softmax over the choices,
 *         cross-entropy. Text: the choice (the question is not used: VCR-style rows here
 *         share one question). Every row needs the model's number of choices.
 *   nlvr  "pair_mlp": two fused passes (left image + statement, right image + statement),
 *         pooled, concatenated -> Linear(2W, 2W) -> LayerNorm -> GELU -> Linear(2W, 2).
 *   ground2 / ground3  "cell": the canvas (g x g cells) at g times the pre-trained image size,
 *         position embeddings resized bicubically from the pre-trained grid (vlp_ft_resize_image);
 *         score of cell c = <q, k_c> / sqrt(W) with q = Linear(fused [CLS]) and k_c = the mean of
 *         Linear(image token) over the patches of cell c (the fused image tokens of single_stream
 *         and mome; the ViT tokens of dual_stream, which reach the query through q); softmax
 *         over the cells.
 *   caption / vqa  "lm" (captioning family only): the pre-trained decoder and its LM head, teacher
 *         forced. caption: input [CLS] caption [SEP], loss on every next token (the pre-training
 *         LM objective). vqa (generative, BLIP): input [CLS] question [SEP] answer [SEP], the
 *         loss only on the tokens after the question (the answer and its closing [SEP]).
 *         No new tensors; `classes` is the vocabulary size and there is no answer list.
 * answer_mlp, itm, pair_mlp and cell need a fusion family (single_stream, dual_stream, mome),
 * lm the captioning family; other pairs are errors naming both.
 * Head tensors are named "ft.*"; parameters the task does not use (ITC projections, MLM and
 * MIM heads, the ITM head outside mc) are frozen, so weight decay leaves them unchanged.
 *
 * Checkpoint: dir/model.safetensors (backbone + head) and dir/config.json = the backbone's
 * VL config plus "finetune": {"task", "head", "classes", "answers" (vqa)}; vlp_vl_load reads
 * such a directory as the plain backbone.
 *
 * Errors: NULL or a negative vlp_status with the message in vlp_last_error(). */
#ifndef VLP_FINETUNE_H
#define VLP_FINETUNE_H

#include "vlp_eval.h"
#include "vlp_text.h"
#include "vlp_train.h"
#include "vlp_vl.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

enum { VLP_FT_HEAD_ANSWER_MLP = 0, VLP_FT_HEAD_ITM, VLP_FT_HEAD_PAIR_MLP, VLP_FT_HEAD_CELL, VLP_FT_HEAD_LM,
       VLP_FT_HEAD_COUNT };
const char *vlp_ft_head_name(int head); /* "answer_mlp", "itm", "pair_mlp", "cell", "lm" */
/* The head of a task ("" or NULL head: the task's default for the family: lm for a captioning
 * model), or VLP_ERR_ARG with a message naming the task, the head and the family when they do
 * not fit (family: VLP_VL_*). */
int vlp_ft_pick_head(vlp_task_kind task, const char *head, int family, int *out);

/* Parts that can be frozen (names in messages and configs): "vision" (patch / position
 * embeddings, the ViT or the vision experts and the co-attention image stream), "text"
 * (text embeddings, the text-only layers of dual_stream, the language experts), "embeddings"
 * (every embedding table and the embedding LayerNorm). */
enum { VLP_FT_FREEZE_VISION = 1, VLP_FT_FREEZE_TEXT = 2, VLP_FT_FREEZE_EMBEDDINGS = 4 };
/* Parses one part name into *bits (ORed); VLP_ERR_ARG naming the known parts. */
int vlp_ft_freeze_parse(const char *name, int *bits);

typedef struct {
    vlp_vl *vl;          /* the backbone (owned); its tensors live in params */
    vlp_params *params;  /* backbone + head, one store */
    vlp_task_kind task;
    int head;            /* VLP_FT_HEAD_* */
    int classes;         /* vqa: answers; mc: choices; nlvr: 2; ground: g * g cells */
    char **answers;      /* vqa: `classes` normalised answers, in order of first appearance */
    int freeze;          /* VLP_FT_FREEZE_* bits */
    vlp_tensor *fc1_w, *fc1_b, *ln_w, *ln_b, *fc2_w, *fc2_b; /* answer_mlp, pair_mlp */
    vlp_tensor *q_w, *q_b, *k_w, *k_b;                       /* cell */
} vlp_ft_model;

/* A fine-tuning model from a pre-trained backbone (taken over, also on failure). classes:
 * vqa the answer count (answers[classes] required), mc the choices per row, ground g * g (the
 * backbone already at the canvas size: vlp_ft_resize_image), nlvr ignored.
 * The head is initialised N(0, 0.02) / zeros / LayerNorm ones from seed. */
vlp_ft_model *vlp_ft_new(vlp_vl *backbone, vlp_task_kind task, int head, int classes, const char *const *answers,
                         int freeze, uint64_t seed);
void vlp_ft_free(vlp_ft_model *m);
int vlp_ft_save(const vlp_ft_model *m, const char *dir);
/* A fine-tuned checkpoint directory (or its model.safetensors). */
vlp_ft_model *vlp_ft_load(const char *path);
/* 1 when path (a directory or its model.safetensors) has a config.json with "finetune". */
int vlp_ft_is_finetuned(const char *path);

/* Position embeddings of a gin x gin patch grid resized to gout x gout: src [gin*gin, dim] ->
 * dst [gout*gout, dim], row-major grid order; bicubic (a = -0.75, align_corners = False, edge
 * clamped), as torch.nn.functional.interpolate(mode="bicubic") and ViT fine-tuning do it. */
int vlp_pos_embed_resize(const float *src, int gin, int gout, int dim, float *dst);
/* A copy of a backbone at image_size (a multiple of its patch size): every tensor copied, the
 * patch-grid rows of the image position embedding resized with vlp_pos_embed_resize (the class
 * token's row kept). */
vlp_vl *vlp_ft_resize_image(const vlp_vl *m, int image_size);

/* ---- graph -------------------------------------------------------------------------------- */
typedef struct {
    int batch;     /* examples */
    int rows;      /* fused rows: batch (vqa), batch * classes (mc), 2 * batch (nlvr) */
    vlp_tensor *pixels, *ids, *mask; /* inputs [rows, 3, S, S], i32 [rows, T] x 2 */
    vlp_tensor *labels;              /* i32 [batch] (train only); lm: [batch * T], -100 = no target */
    vlp_tensor *cells;               /* cell: [patches, classes] averaging matrix (filled by fill) */
    vlp_tensor *scores;              /* [batch, classes]: logits of the classes (kept); lm: NULL
                                        (it trains only: vlp_ft_lm_* below predict) */
    vlp_tensor *loss;                /* train only: mean cross-entropy */
} vlp_ft_graph;
/* Declares the inputs, the scores and, with train, the loss (labels < 0 are ignored). The
 * caller builds g (VLP_BUILD_TRAIN on loss, or VLP_BUILD_INFERENCE on scores). */
int vlp_ft_graph_declare(vlp_graph *g, const vlp_ft_model *m, int batch, int train, vlp_ft_graph *out);

/* ---- data --------------------------------------------------------------------------------- */
/* A task set ready for the model: texts tokenised (WordPiece [CLS] text [SEP], max_text_len;
 * lm: see the head, plus the prefix [CLS] question [SEP] / [CLS] the answers decode from),
 * each distinct image decoded once (RGB bytes at the model's image size), labels resolved
 * (vqa: the answer's index, -1 when not in the model's answers; a row whose choice count
 * differs from the model's is an error naming its file and line; lm: an example is labelled when
 * some target token fits in max_text_len). The set and tok are borrowed (lm decodes with tok). */
typedef struct vlp_ft_data vlp_ft_data;
vlp_ft_data *vlp_ft_data_new(const vlp_ft_model *m, const vlp_task_set *set, vlp_tokenizer *tok);
/* The same, but an image that cannot be decoded drops its rows from set (counted and described
 * as the reader's bad rows: vlp_task_drop, "FILE:LINE: image PATH: reason") instead of failing;
 * opt->strict (opt may be NULL): the first such row is the error, as in vlp_ft_data_new. The
 * decoding is the data's own (each distinct image once). */
vlp_ft_data *vlp_ft_data_new_ex(const vlp_ft_model *m, vlp_task_set *set, vlp_tokenizer *tok,
                                const vlp_task_read_options *opt);
void vlp_ft_data_free(vlp_ft_data *d);
int64_t vlp_ft_data_size(const vlp_ft_data *d);
/* Examples with a usable label (vqa: answer known to the model). */
int64_t vlp_ft_data_labelled(const vlp_ft_data *d);
/* Fills g's inputs with examples rows[0..n) (n <= g->batch; the rest repeat the last one,
 * with label -1). A label outside 0..classes-1 is an error naming the row. */
int vlp_ft_data_fill(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *rows, int n, const vlp_ft_graph *g);
/* The answer vocabulary of a vqa train set: distinct normalised answers in order of first
 * appearance (malloc'd array of malloc'd strings, *n of them). */
int vlp_ft_answers(const vlp_task_set *train, char ***answers, int *n);

/* ---- prediction --------------------------------------------------------------------------- */
/* Predicts every example of d in order: pred (kind of the set; vqa answers, labels
 * otherwise), probs [n, classes] (softmax of the scores; may be NULL). */
int vlp_ft_predict(const vlp_ft_model *m, const vlp_ft_data *d, int batch, vlp_task_predictions **pred,
                   float **probs);
/* (lm head: vlp_ft_lm_generate, greedy, up to 20 tokens; *probs NULL.) */
/* lm head: decodes from each example's prefix ([CLS] for caption, [CLS] question [SEP] for vqa)
 * with the key/value cache, greedy (gc->beam 1) or beam search (score sum log p / len^length_penalty),
 * at most gc->max_len tokens (clipped to max_text_len - prefix) and at least gc->min_len; texts
 * decoded with the data's tokenizer (special tokens dropped). conf (may be NULL): [n] the
 * probability of the decoded sequence, exp(sum log p). Examples sharing a prefix length decode
 * together, `batch` at a time (results do not depend on batch). */
int vlp_ft_lm_generate(const vlp_ft_model *m, const vlp_ft_data *d, const vlp_vl_gen_config *gc, int batch,
                       vlp_task_predictions **pred, float **conf);
/* Generated answers are decoded text, and WordPiece decoding puts spaces around punctuation
 * ("medium - light", as BERT's own decode does), while answers compare as exact strings: each
 * prediction whose WordPiece ids equal those of a train answer becomes that answer's text
 * ("medium-light"); the others (answers never seen in train) stay as decoded. Returns the number
 * of predictions changed, or a negative vlp_status. */
int vlp_ft_lm_canonical_answers(vlp_tokenizer *tok, const vlp_task_set *train, vlp_task_predictions *pred);
/* lm head, vqa: ranks, per example, the candidate answers of its question type (every distinct
 * normalised answer of that type in train, in order of first appearance) by the decoder's
 * log-likelihood of "answer [SEP]" after [CLS] question [SEP] (sum of the token log-probs; BLIP's
 * closed-set ranking); the best one (first on ties). k > 0 (BLIP's k = 128): when a type has more
 * than k candidates, only the k whose first token is most likely after the question are scored in
 * full (one decoder step instead of a pass per candidate: 1,827 identify answers would cost
 * seconds per question); k <= 0: all. Candidates are scored `batch` rows at a time through the
 * key/value cache. An example whose type has no train answer is predicted "" . conf (may be
 * NULL): [n] the softmax over the scored candidates' log-likelihoods of the pick. */
int vlp_ft_lm_rank(const vlp_ft_model *m, const vlp_ft_data *d, const vlp_task_set *train, int batch, int k,
                   vlp_task_predictions **pred, float **conf);
/* lm head: the log-likelihood of each of n texts as the continuation of example ex's prefix
 * (tokens of the text, then [SEP]; the text truncated to fit max_text_len); logp [n]. */
int vlp_ft_lm_score(const vlp_ft_model *m, const vlp_ft_data *d, int64_t ex, const char *const *texts, int n,
                    int batch, double *logp);
/* The prefix of example ex (ids, *len tokens; borrowed, valid while d lives). */
const int32_t *vlp_ft_lm_prefix(const vlp_ft_data *d, int64_t ex, int *len);

/* Accuracy of the predictions on the labelled examples (vqa: answers known or not, as the
 * scorer counts them: exact normalised match). */
double vlp_ft_accuracy(const vlp_ft_data *d, const vlp_task_predictions *pred);

/* ---- training ----------------------------------------------------------------------------- */
/* A trainer (vlp_train.h: vlp_trainer_step, vlp_train_run, checkpoints, resume) over the task
 * examples of `train` (borrowed; must outlive the trainer), batches of cfg->batch_size
 * examples drawn by a per-epoch shuffle of (seed, epoch) of the labelled examples.
 * lr_decay in (0, 1]: layer-wise learning-rate decay (BEiT): the head and top-level norms at
 * lr, the top layer of each stack at lr * d, layer i of n at lr * d^(n - i), embeddings at
 * lr * d^(n + 1). The batch source for it: vlp_ft_batch_source. */
vlp_trainer *vlp_trainer_new_ft(vlp_ft_model *m, const vlp_ft_data *train, const vlp_train_config *cfg,
                                float lr_decay);
vlp_ft_model *vlp_trainer_ft_model(vlp_trainer *t);
/* The learning-rate multiplier of parameter i of m->params under lr_decay (as above). */
float vlp_ft_lr_scale(const vlp_ft_model *m, int i, float lr_decay);
/* A batch source of shuffled example indices (batch.index; pixels/tokens are not filled:
 * the trainer's fill reads the examples). Free with vlp_ft_batch_source_free. */
int vlp_ft_batch_source(vlp_batch_source *s, const vlp_ft_data *d, int batch, uint64_t seed);
void vlp_ft_batch_source_free(vlp_batch_source *s);

/* For a re-implementation (bench/torch_finetune_albef.py): writes into dir
 *   init/           m as it starts (vlp_ft_save: backbone + freshly initialised head)
 *   train.json      cfg and lr_decay (the optimiser, schedule and clipping the run uses)
 *   params.tsv      per parameter of m->params: name, trainable, decay, lr scale (lr_decay)
 *   batches/        order.npy (i32 [n, batch]: the example indices into the task set of the
 *                   run's first n steps, as vlp_ft_batch_source gives them with cfg->seed), and
 *                   the examples they use: rows.npy (i32 [U], sorted), images.npy (u8 [K, S, S, 3]
 *                   RGB), img_a.npy / img_b.npy (i32 [U]: their image; img_b nlvr's right one),
 *                   ids.npy / mask.npy (i32 [U, T]), labels.npy (i32 [U]), lut.npy (f32 [3, 256]:
 *                   channel value -> normalised input, as the graph's input)
 *   probe/          one forward + backward of the first batch from m's weights: losses.json
 *                   ("loss"), scores.npy ([batch, classes]) and grads.safetensors (the gradient
 *                   of every trainable parameter, vlp's names)
 * m's weights are left as they were. Tasks vqa and nlvr (answer_mlp, pair_mlp); cfg->accum_steps 1. */
int vlp_ft_dump_batches(vlp_ft_model *m, const vlp_ft_data *d, const vlp_train_config *cfg, float lr_decay, int n,
                        const char *dir);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
