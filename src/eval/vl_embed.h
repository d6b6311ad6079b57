/* A VL model's ITC heads used as a dual encoder (vl_embed.c). Not installed. */
#ifndef VLP_VL_EMBED_H
#define VLP_VL_EMBED_H

#include "vlp_vl.h"

typedef struct vl_itc_runner vl_itc_runner;
/* NULL (error set) if m has no ITC heads. tok: the model's tokenizer (kept, not owned). */
vl_itc_runner *vl_itc_runner_new(const vlp_vl *m, vlp_tokenizer *tok, int batch);
void vl_itc_runner_free(vl_itc_runner *r);
/* n preprocessed images [n, 3, S, S] / n texts -> L2-normalised ITC features [n, embed_dim]. */
int vl_itc_embed_pixels(vl_itc_runner *r, const float *px, int n, float *out);
int vl_itc_embed_texts(vl_itc_runner *r, const char *const *texts, int n, float *out);
/* exp(logit_scale): the ITC temperature's inverse. */
float vl_itc_scale(const vl_itc_runner *r);

#endif
