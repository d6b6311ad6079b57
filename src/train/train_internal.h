/* Trainer internals shared by trainer.c and checkpoint.c. Not installed. */
#ifndef VLP_TRAIN_INTERNAL_H
#define VLP_TRAIN_INTERNAL_H

#include "vlp_train.h"

struct vlp_trainer {
    vlp_clip *m;
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
};

/* Fault injection for tests: called between the stages of a checkpoint write ("model",
 * "state", "renamed"); a test may _exit() inside it to simulate a crash. */
extern void (*vlp_checkpoint_test_hook)(const char *stage);

/* Helpers of checkpoint.c used by the run loop. */
int vlp_fsync_path(const char *path, int is_dir);
int vlp_rmtree(const char *path); /* a directory with plain files, or a file */
int vlp_write_file_atomic(const char *path, const char *text);

#endif
