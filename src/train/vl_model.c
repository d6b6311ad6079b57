/* The trainer's VL part: the pre-training graph of a vlp_vl (any family, the objectives of
 * its config) behind the same model interface as CLIP, so both share one loop, optimiser,
 * checkpoint format and exact resume. */
#include "train_internal.h"

#include "core/internal.h"

#include <math.h>

static const char *vl_kind(const vlp_trainer *t) {
    switch (t->vl->cfg.family) {
    case VLP_VL_SINGLE: return "vl/single_stream";
    case VLP_VL_DUAL: return "vl/dual_stream";
    case VLP_VL_MOME: return "vl/mome";
    default: return "vl/captioning";
    }
}

static int vl_build(vlp_trainer *t) {
    int rc = vlp_vl_pretrain_graph(t->g, t->vl, NULL, t->micro, t->vl->cfg.max_text_len, &t->vp);
    t->loss = rc ? NULL : t->vp.loss;
    return rc;
}

static int vl_fill(vlp_trainer *t, const vlp_batch *b, int k) {
    const vlp_vl_config *c = &t->vl->cfg;
    int64_t px = 3LL * c->image_size * c->image_size, T = c->max_text_len, n = (int64_t)t->micro * T;
    const int32_t *ids = b->tokens + (int64_t)k * t->micro * T;
    for (int64_t i = 0; i < n; i++) t->mask_buf[i] = ids[i] != c->pad_id;
    /* masks depend only on (seed, step, micro-batch): a resumed run draws the same ones */
    uint64_t seed = vlp_mix64(t->cfg.seed ^ vlp_mix64((uint64_t)(t->step * t->cfg.accum_steps + k) + 1));
    return vlp_vl_pretrain_fill(t->vl, &t->vp, b->pixels + (int64_t)k * t->micro * px, ids, t->mask_buf, t->is_cont,
                                seed);
}

static float vl_after_step(vlp_trainer *t) {
    if (!t->vl->logit_scale) return 0.0f;
    float *ls = t->vl->logit_scale->data;
    if (*ls > t->cfg.max_logit_scale) *ls = t->cfg.max_logit_scale;
    if (*ls < 0) *ls = 0;
    return expf(*ls);
}

static int vl_save(const vlp_trainer *t, const char *dir) { return vlp_vl_save(t->vl, dir); }

static int vl_load_params(vlp_trainer *t, const char *dir, float *dst) {
    vlp_vl *src = vlp_vl_load(dir);
    if (!src) return VLP_ERR_IO;
    int rc = VLP_OK;
    if (src->cfg.family != t->vl->cfg.family) {
        vlp_set_error("%s: the checkpoint is a %s model, the run trains %s", dir, vlp_vl_family_name(src->cfg.family),
                      vlp_vl_family_name(t->vl->cfg.family));
        rc = VLP_ERR_ARG;
    }
    if (!rc) rc = vlp_train_same_params(t->params, src->params, dir);
    if (!rc) memcpy(dst, vlp_params_data(src->params), (size_t)vlp_params_numel(src->params) * sizeof(float));
    vlp_vl_free(src);
    return rc;
}

static void vl_free(vlp_trainer *t) {
    free(t->is_cont);
    free(t->mask_buf);
}

static int vl_parts(const vlp_trainer *t, const char **names, float *values) {
    const vlp_vl_pretrain *p = &t->vp;
    const vlp_tensor *l[5] = {p->loss_itc, p->loss_itm, p->loss_mlm, p->loss_mim, p->loss_lm};
    static const char *nm[5] = {"itc", "itm", "mlm", "mim", "lm"};
    int n = 0;
    for (int i = 0; i < 5; i++)
        if (l[i] && l[i]->data) {
            names[n] = nm[i];
            values[n++] = *(const float *)l[i]->data;
        }
    return n;
}

static const vlp_train_model_ops vl_ops = {vl_kind, vl_build, vl_fill, vl_after_step, vl_save, vl_load_params,
                                           vl_free, NULL, vl_parts};

vlp_trainer *vlp_trainer_new_vl(vlp_vl *m, const uint8_t *is_cont, const vlp_train_config *cfg) {
    if (!m) {
        vlp_set_error("vlp_trainer_new_vl: model is NULL");
        return NULL;
    }
    if (cfg && cfg->loss != VLP_ITC_CLIP) {
        vlp_set_error("vlp_trainer_new_vl: the VL objectives use InfoNCE for ITC; loss must be clip");
        return NULL;
    }
    if (m->cfg.momentum > 0) {
        vlp_set_error("vlp_trainer_new_vl: momentum distillation (momentum %g) is not supported by the trainer yet; "
                      "set momentum 0", (double)m->cfg.momentum);
        return NULL;
    }
    vlp_trainer *t = vlp_trainer_alloc(&vl_ops, m->params, cfg);
    if (!t) return NULL;
    t->vl = m;
    int V = m->cfg.vocab_size;
    t->mask_buf = malloc((size_t)t->micro * (size_t)m->cfg.max_text_len * sizeof(int32_t));
    if (is_cont && (t->is_cont = malloc((size_t)V))) memcpy(t->is_cont, is_cont, (size_t)V);
    if (!t->mask_buf || (is_cont && !t->is_cont)) {
        vlp_set_error("vlp_trainer_new_vl: out of memory");
        vlp_trainer_free(t);
        return NULL;
    }
    return vlp_trainer_finish(t);
}

vlp_vl *vlp_trainer_vl_model(vlp_trainer *t) { return t ? t->vl : NULL; }
