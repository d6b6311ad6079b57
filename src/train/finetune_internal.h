/* Internals shared by finetune.c (heads, data, trainer kind) and finetune_lm.c (the captioning
 * family's lm head: its graph, data and decoding). */
#ifndef VLP_FINETUNE_INTERNAL_H
#define VLP_FINETUNE_INTERNAL_H

#include "vlp_finetune.h"

struct vlp_ft_data {
    const vlp_task_set *set;
    int64_t n, n_img, labelled;
    int S, T, per;           /* image size, text length, texts per example */
    uint8_t *img;            /* n_img x S x S x 3 RGB */
    int64_t *img_a, *img_b;  /* per example (img_b: nlvr right image) */
    int32_t *ids, *mask;     /* [n * per, T] */
    int *label;              /* per example; -1: none */
    float lut[3][256];       /* (v / 255 - mean) / std, as vlp_image_preprocess */
    /* lm head */
    vlp_tokenizer *tok;      /* borrowed: decodes and tokenises candidates */
    int32_t *lm;             /* [n, T] next-token targets (-100: none) */
    int32_t *pre;            /* [n, T] decoding prefix */
    int *pre_len;            /* [n] */
};

/* finetune_lm.c */
int vlp_ft_lm_graph_declare(vlp_graph *g, const vlp_ft_model *m, int batch, int train, vlp_ft_graph *o);
/* After the generic tokenisation: the lm inputs, targets and prefixes; label[i] 0 when example
 * i has a target token, else -1; labelled recounted. */
int vlp_ft_lm_prepare(const vlp_ft_model *m, vlp_ft_data *d, vlp_tokenizer *tok);
int vlp_ft_lm_fill(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *rows, int n, const vlp_ft_graph *g);
int vlp_ft_lm_predict(const vlp_ft_model *m, const vlp_ft_data *d, int batch, vlp_task_predictions **pred);

#endif
