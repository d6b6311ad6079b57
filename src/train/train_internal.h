/* Trainer internals shared by trainer.c and checkpoint.c. Not installed. */
#ifndef VLP_TRAIN_INTERNAL_H
#define VLP_TRAIN_INTERNAL_H

#include "vlp_train.h"

/* The model-specific part of the trainer: one table per model kind (CLIP in trainer.c, the VL
 * families in vl_model.c); the loop, optimiser, checkpoints and resume are shared. */
typedef struct {
    /* The kind stored in train_state's "loss" metadata and checked on load ("clip", "siglip",
     * "vl/<family>"). */
    const char *(*kind)(const vlp_trainer *t);
    /* Declares the inputs and the loss of one micro-batch on t->g (not yet built). */
    int (*build)(vlp_trainer *t);
    /* Fills the graph inputs from micro-batch k of b (micro pairs from row k * micro). */
    int (*fill)(vlp_trainer *t, const vlp_batch *b, int k);
    /* After the optimiser step (logit-scale clamp); returns the logit scale to report. */
    float (*after_step)(vlp_trainer *t);
    int (*save)(const vlp_trainer *t, const char *dir);
    /* Reads the parameters of the checkpoint model in dir into dst (vlp_params_numel floats),
     * failing when its config differs from the run's. */
    int (*load_params)(vlp_trainer *t, const char *dir, float *dst);
    void (*free)(vlp_trainer *t);
    /* Optional: called right before the optimiser step (fine-tuning keeps the parameters
     * there to apply per-layer learning rates in after_step). May be NULL. */
    void (*before_step)(vlp_trainer *t);
    /* Optional: the objectives' losses after a forward (names static), at most 8; returns the count. */
    int (*parts)(const vlp_trainer *t, const char **names, float *values);
} vlp_train_model_ops;

struct vlp_trainer {
    const vlp_train_model_ops *ops;
    vlp_params *params;       /* the trained model's parameters */
    vlp_clip *m;              /* CLIP (NULL for VL) */
    vlp_vl *vl;               /* VL (NULL for CLIP) */
    vlp_vl *teacher;          /* VL with momentum: the EMA teacher (owned) */
    vlp_vl_pretrain vp;       /* VL: the pre-training graph's tensors */
    uint8_t *is_cont;         /* VL: WordPiece "##" flags of the vocabulary (owned copy; may be NULL) */
    int32_t *mask_buf;        /* VL: attention mask of a micro-batch */
    vlp_train_config cfg;
    int micro;                /* pairs per micro-batch */
    vlp_params *xp;           /* SigLIP bias (NULL for CLIP) */
    vlp_tensor *bias;
    vlp_graph *g;
    vlp_tensor *pixels, *ids, *loss;
    vlp_adamw *opt, *opt_x;
    int64_t step;             /* optimiser steps done */
    int64_t epoch, batch;     /* data position of the next step */
    double log_sum;           /* losses since the last log line */
    int64_t log_n;
    void *ext;                /* model-kind state (fine-tuning: src/train/finetune.c) */
};

/* Shared by trainer.c and vl_model.c: allocates t, checks cfg, creates the AdamW state over
 * params and builds the graph with ops->build. */
vlp_trainer *vlp_trainer_alloc(const vlp_train_model_ops *ops, vlp_params *params, const vlp_train_config *cfg);
vlp_trainer *vlp_trainer_finish(vlp_trainer *t);
/* 0 when a and b declare the same tensors (names, sizes); else an error naming dir. */
int vlp_train_same_params(vlp_params *a, vlp_params *b, const char *dir);

/* Fault injection for tests: called between the stages of a checkpoint write ("model",
 * "state", "renamed"); a test may _exit() inside it to simulate a crash. */
extern void (*vlp_checkpoint_test_hook)(const char *stage);

/* VL momentum (vl_model.c): the teacher and the queues as extra checkpoint files, written into
 * the checkpoint's temporary directory, and read back from dir all-or-nothing (called after the
 * training state was read, before anything is committed). No-ops without a teacher. */
int vlp_vl_train_save_state(const vlp_trainer *t, const char *dir);
int vlp_vl_train_load_state(vlp_trainer *t, const char *dir);

/* Helpers of checkpoint.c used by the run loop. */
int vlp_fsync_path(const char *path, int is_dir);
int vlp_rmtree(const char *path); /* a directory with plain files, or a file */
int vlp_write_file_atomic(const char *path, const char *text);

#endif
