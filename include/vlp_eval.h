/* vlp_eval.h: downstream task files, their metrics, and the HTML results report.
 *
 * Task files are JSON Lines in the format of shared/datasets/emoji-tasks.md (any file of that
 * format works, so users can bring their own tasks):
 *   caption  {"image": P, "caption": S}
 *   vqa      {"image": P, "question": S, "answer": S, "type": T}
 *   nlvr     {"left": P, "right": P, "statement": S, "label": true|false}
 *   ground2/ground3 {"image": P, "grid": g, "cells": [P x g*g], "query": S, "label": t}
 *   mc       {"image": P, "question": S, "choices": [S, ...], "label": t}
 * Image paths are relative to the JSONL file (absolute paths are kept). Extra fields are ignored.
 *
 * Bad rows (malformed JSON, a missing or mistyped field, a label out of range, an image that
 * cannot be opened when check_images is set, a row identical to an earlier one) are counted by
 * reason, described as "FILE:LINE: problem" and skipped; with strict set the first one is an
 * error. Empty lines are ignored. vlp_task_check_images (and vlp_ft_data_new_ex) drop rows whose
 * images cannot be decoded the same way, as "FILE:LINE: image PATH: reason".
 *
 * Predictions are JSON Lines too, one row per example in the data file's order:
 * {"answer": S} (vqa), {"caption": S} (caption), {"label": L} (nlvr: true/false or 0/1;
 * ground, mc: the cell or choice index); other fields are ignored. A prediction file may have
 * one row per kept example or one row per non-empty data line (skipped rows included). A row
 * {"skipped": true, ...} (as vlp eval writes for a skipped data row) predicts nothing: its
 * example, if the data keeps it, is left out of the metrics (counted in n_skipped).
 *
 * Metrics follow the spec: answers compare after lowercasing and trimming whitespace; VQA
 * accuracy per type, "overall" = the mean over the types present, with the majority baseline
 * per type from a train file (most frequent train answer of the type, ties to the earliest);
 * accuracy with chance for nlvr (plus the part's majority label), ground (1/K) and mc
 * (1/choices); captioning exact match, corpus BLEU-4 and CIDEr-D (COCO caption definitions,
 * one reference per image, tokens = lowercase, non-alphanumerics to spaces, split).
 *
 * Errors: functions return NULL or a negative vlp_status with the message in vlp_last_error().
 */
#ifndef VLP_EVAL_H
#define VLP_EVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef enum {
    VLP_TASK_CAPTION = 0,
    VLP_TASK_VQA,
    VLP_TASK_NLVR,
    VLP_TASK_GROUND2,
    VLP_TASK_GROUND3,
    VLP_TASK_MC,
    VLP_TASK_COUNT
} vlp_task_kind;

const char *vlp_task_name(vlp_task_kind k); /* "caption", "vqa", ... */
/* 0 and *out set, or VLP_ERR_ARG with a message listing the task names. */
int vlp_task_from_name(const char *name, vlp_task_kind *out);

typedef struct {
    int64_t line;     /* 1-based line in the file */
    int64_t row;      /* 0-based index among the file's non-empty lines */
    char *image;      /* caption, vqa, ground, mc: the image; nlvr: the left image */
    char *image2;     /* nlvr: the right image; NULL otherwise */
    char *text;       /* vqa, mc: question; nlvr: statement; ground: query; caption: NULL */
    char *answer;     /* caption: the caption; vqa: the answer; NULL otherwise */
    char *type;       /* vqa: the question type; NULL otherwise */
    int label;        /* nlvr 0/1, ground: the cell, mc: the choice; -1 for caption and vqa */
    int grid;         /* ground: g (the canvas has g x g cells) */
    int n_cells;      /* ground: g*g cell image paths */
    char **cells;
    int n_choices;    /* mc: the choices */
    char **choices;
} vlp_task_example;

typedef enum {
    VLP_TASK_BAD_JSON = 0, /* not a JSON object */
    VLP_TASK_BAD_FIELD,    /* a field missing or of the wrong type */
    VLP_TASK_BAD_RANGE,    /* label, grid or list length out of range */
    VLP_TASK_BAD_IMAGE,    /* an image file cannot be opened (check_images) */
    VLP_TASK_BAD_DUPLICATE,/* the same row as an earlier one */
    VLP_TASK_BAD_COUNT
} vlp_task_bad_reason;

/* One skipped row: where, why, and its "FILE:LINE: problem" message. */
typedef struct {
    int64_t line, row;        /* 1-based line; 0-based index among the non-empty lines */
    vlp_task_bad_reason reason;
    char *message;
} vlp_task_bad_row;

typedef struct {
    int strict;       /* 1: the first bad row is an error (VLP_ERR_IO) */
    int check_images; /* 1: rows whose image files cannot be opened are bad */
} vlp_task_read_options;

#define VLP_TASK_MAX_MESSAGES 50

typedef struct {
    vlp_task_kind kind;
    char *path;               /* as given */
    int64_t n;                /* examples kept */
    vlp_task_example *ex;
    int64_t n_rows;           /* non-empty lines */
    int64_t n_bad;            /* rows skipped */
    int64_t bad[VLP_TASK_BAD_COUNT];
    int n_messages;           /* the first VLP_TASK_MAX_MESSAGES problems, "FILE:LINE: ..." */
    char *messages[VLP_TASK_MAX_MESSAGES];
    vlp_task_bad_row *bad_rows; /* all n_bad skipped rows, in file order */
} vlp_task_set;

/* opt may be NULL (lenient, no image checks). */
vlp_task_set *vlp_task_read(const char *path, vlp_task_kind kind, const vlp_task_read_options *opt);
/* The same from memory: name is used in messages, base_dir resolves relative image paths. */
vlp_task_set *vlp_task_read_mem(const char *data, size_t size, const char *name, const char *base_dir,
                                vlp_task_kind kind, const vlp_task_read_options *opt);
void vlp_task_set_free(vlp_task_set *s);
/* Drops the examples i with why[i] != NULL ("problem", e.g. "image P: cannot open"): counted
 * under reason, described as "FILE:LINE: problem" (messages, bad_rows), the others kept in
 * order. strict: nothing is dropped and the first such example (in file order) is the error
 * (VLP_ERR_IO). Returns the number dropped or a negative status. */
int vlp_task_drop(vlp_task_set *s, const char *const *why, vlp_task_bad_reason reason, int strict);
/* Decodes every distinct image the examples read (caption, vqa, mc: "image"; nlvr: "left" and
 * "right"; ground: the canvas "image", which evaluation crops into cells) once, and drops the
 * rows with one that cannot be decoded as VLP_TASK_BAD_IMAGE, "FILE:LINE: image PATH: reason"
 * (vlp_task_drop; strict: the first is the error). Returns the number dropped or a negative status. */
int vlp_task_check_images(vlp_task_set *s, int strict);

typedef struct {
    vlp_task_kind kind;
    int64_t n;
    char **text;  /* vqa: answer, caption: caption */
    int *label;   /* nlvr, ground, mc */
    unsigned char *skipped; /* NULL, or n flags: 1 for a {"skipped": true} row (text "", label -1) */
} vlp_task_predictions;

/* Malformed rows or missing fields are errors naming the file and line. */
vlp_task_predictions *vlp_task_predictions_read(const char *path, vlp_task_kind kind);
void vlp_task_predictions_free(vlp_task_predictions *p);

typedef struct {
    char *type;             /* question type */
    int64_t n;              /* examples of this type in the part */
    double accuracy;
    char *majority_answer;  /* most frequent train answer of the type; NULL: no train data */
    double majority;        /* accuracy of always answering majority_answer */
} vlp_vqa_type_metrics;

typedef struct {
    vlp_task_kind kind;
    int64_t n;               /* examples scored */
    double accuracy;         /* vqa: overall (mean over types); caption: exact match */
    double chance;           /* nlvr, ground, mc; NaN otherwise */
    double majority;         /* nlvr: majority label of the part; vqa: mean of the type
                                baselines (NaN without train data); NaN otherwise */
    int majority_label;      /* nlvr: the more frequent label (ties: 1) */
    int n_types;             /* vqa, in order of first appearance in the part */
    vlp_vqa_type_metrics *types;
    double bleu4, bleu_precision[4], brevity_penalty; /* caption */
    int64_t cand_len, ref_len;                        /* caption: total tokens */
    double cider_d;                                   /* caption */
    unsigned char *correct;  /* n flags: 1 where the prediction is right (caption: exact) */
    int64_t n_skipped;       /* examples left out: their prediction row is {"skipped": true} */
} vlp_task_metrics;

/* Scores predictions against a task set. train (vqa only, may be NULL) gives the majority
 * baselines. Examples whose prediction is a skipped row are left out (n and correct[] cover
 * the scored ones). Returns 0 or a negative status (row counts that do not match, kinds differ). */
int vlp_task_score(const vlp_task_set *data, const vlp_task_predictions *pred,
                   const vlp_task_set *train, vlp_task_metrics *out);
void vlp_task_metrics_free(vlp_task_metrics *m);
/* The metrics as a JSON object (malloc'd string) for eval_<task>_<split>.json. */
char *vlp_task_metrics_json(const vlp_task_metrics *m);

/* ---- metric building blocks ---------------------------------------------------------- */
/* Lowercase and trim whitespace into a new malloc'd string (NULL on allocation failure). */
char *vlp_answer_normalize(const char *s);
/* The spec's caption tokens: lowercase, every non-alphanumeric character to a space, split.
 * *tokens (malloc'd array of malloc'd strings) gets n tokens; returns n or a negative status. */
int vlp_caption_tokenize(const char *s, char ***tokens);
void vlp_caption_tokens_free(char **tokens, int n);

typedef struct {
    double bleu4, precision[4], brevity_penalty;
    int64_t cand_len, ref_len;
} vlp_bleu_result;
/* Corpus BLEU-4 with one reference per candidate. */
int vlp_bleu4(int64_t n, const char *const *cands, const char *const *refs, vlp_bleu_result *out);
/* Corpus CIDEr-D (x10 scale, sigma 6, document frequencies from the n references);
 * per_example (may be NULL) gets each example's score. */
int vlp_cider_d(int64_t n, const char *const *cands, const char *const *refs, double *score,
                double *per_example);

/* ---- the HTML report ------------------------------------------------------------------- */
/* A run directory holds (all optional):
 *   metrics.jsonl     training log, one JSON object per line; "step" and numeric fields,
 *                     every field whose name contains "loss" is drawn as a curve vs step
 *                     (a string "split" field, when present, prefixes the series name);
 *   eval_<task>_<split>.json   {"task": T, "split": S, "data": DATA.jsonl, "n": N,
 *                     "predictions": "predictions_<task>_<split>.jsonl", "metrics": {...}};
 *                     relative paths are relative to the run directory;
 *   predictions_<task>_<split>.jsonl   the predictions (format above) for the gallery. */
typedef struct {
    int gallery;        /* examples per (run, task, split) in the gallery; 0: 8 */
    const char *title;  /* NULL: "vlp results" */
} vlp_report_options;

/* Writes one self-contained HTML page (inline CSS and SVG, images as data: URIs). */
int vlp_report_write(const char *const *run_dirs, int n_runs, const char *out_path,
                     const vlp_report_options *opt);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
