/* vlp_downstream.h: zero-shot downstream tasks with a CLIP dual encoder (no training).
 *
 * The task files and the scorer are those of vlp_eval.h; this module only produces predictions:
 *   mc       each (image, choice) scored by the ITC logit exp(t) * cos(image, choice); softmax over
 *            the choices; the best one (first on ties).
 *   ground   the canvas is cut into its g x g cells (cell c spans columns [W*(c mod g)/g,
 *            W*(c mod g + 1)/g) and rows likewise), each cell embedded as an image and scored
 *            against the query; softmax over the cells; the best one.
 *   vqa      a classifier per question type over the distinct answers of that type in the train
 *            set (prompts "an emoji of {answer}" for category and subcategory, "{answer} skin tone"
 *            for skintone, the answer itself otherwise). yesno questions of the form "is this X?"
 *            are answered "yes" iff X is the image's best match among all the X of the yes/no
 *            questions (train and data). Answers never seen in train cannot be produced.
 *   nlvr     a rule on the phrases P of the statements "both images show P." and "exactly one
 *            image shows P.": each image is labelled with its best-matching phrase; "both" is true
 *            iff both images are labelled P, "exactly one" iff one is; "the two images show the
 *            same kind of thing." is true iff both images get the same label. Any other statement
 *            is outside what a dual encoder can judge: predicted false and counted (unsupported).
 *   caption  not supported (a dual encoder does not generate): VLP_ERR_ARG.
 * Images and texts that occur several times are embedded once.
 */
#ifndef VLP_DOWNSTREAM_H
#define VLP_DOWNSTREAM_H

#include "vlp_clip.h"
#include "vlp_eval.h"
#include "vlp_vl.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct {
    int batch; /* images or texts per forward pass; 0: 64 */
    /* called after each stage (may be NULL): stage name, items done, items in the stage */
    void (*on_progress)(void *ctx, const char *stage, int64_t done, int64_t total);
    void *progress_ctx;
} vlp_clip_task_options;

typedef struct {
    vlp_task_predictions *pred; /* one row per example of the set, in its order */
    float *confidence;          /* n: softmax probability of the pick (mc, ground, vqa); NaN for nlvr */
    int64_t *probs_off;         /* mc, ground: row i's probabilities are probs[probs_off[i] .. probs_off[i+1]) */
    float *probs;
    int64_t n_unsupported;      /* nlvr: statements outside the rule (predicted false) */
    const char *method;         /* one line describing the zero-shot rule (static string) */
} vlp_clip_task_result;

/* Predicts every example of data. train: vqa only (required there; the candidate answers);
 * ignored otherwise. opt may be NULL. Unreadable images are errors naming the file. */
int vlp_clip_task_predict(const vlp_clip *m, const vlp_task_set *data, const vlp_task_set *train,
                          const vlp_clip_task_options *opt, vlp_clip_task_result *out);
/* The same protocols with a VL model's ITC heads as the dual encoder (ALBEF, VLMo, CoCa-style
 * captioning models with embed_dim > 0): images and texts embedded apart, each by its ITC
 * feature; tok is the model's tokenizer. An error names the family when it has no ITC heads. */
int vlp_vl_task_predict(const vlp_vl *m, vlp_tokenizer *tok, const vlp_task_set *data, const vlp_task_set *train,
                        const vlp_clip_task_options *opt, vlp_clip_task_result *out);
void vlp_clip_task_result_free(vlp_clip_task_result *r);
/* Writes the predictions as JSON Lines in the scorer's format ({"answer": S} or {"label": L}) plus
 * "confidence" and, for mc and ground, "probs"; atomically (temporary file, then rename). */
int vlp_clip_task_write_predictions(const vlp_clip_task_result *r, const char *path);
/* The same with data (the set r predicts; may be NULL: as above): one row per non-empty data
 * line, each row the data file skipped written {"skipped": true, "error": "FILE:LINE: problem"}. */
int vlp_clip_task_write_predictions_rows(const vlp_clip_task_result *r, const vlp_task_set *data, const char *path);
/* One such skipped row as JSON text (malloc'd, no newline; NULL when out of memory). */
char *vlp_task_skipped_row_json(const vlp_task_bad_row *b);

/* Linear probe: multinomial logistic regression on fixed features (full-batch gradient descent
 * with L2 weight decay, deterministic). x [n, d], labels in 0..classes-1. w gets [classes, d+1]
 * (the last column is the bias). */
int vlp_logreg_train(const float *x, const int *labels, int64_t n, int d, int classes, int epochs, float lr,
                     float weight_decay, float *w);
/* pred[i] = argmax_c w_c . [x_i, 1] (first on ties). */
void vlp_logreg_predict(const float *w, const float *x, int64_t n, int d, int classes, int *pred);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
