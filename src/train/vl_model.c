/* The trainer's VL part: the pre-training graph of a vlp_vl (any family, the objectives of
 * its config) behind the same model interface as CLIP, so both share one loop, optimiser,
 * checkpoint format and exact resume. With momentum (ALBEF) the trainer owns the EMA teacher,
 * whose branch runs inside the same graph (frozen tensors, no gradients); after every
 * optimiser step the queues take the step's teacher features and the teacher moves towards
 * the model; checkpoints carry both, so a resumed run stays bit-identical. */
#include "train_internal.h"

#include "core/internal.h"
#include "vlp_safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <unistd.h>

static const char *vl_kind(const vlp_trainer *t) {
    switch (t->vl->cfg.family) {
    case VLP_VL_SINGLE: return "vl/single_stream";
    case VLP_VL_DUAL: return "vl/dual_stream";
    case VLP_VL_MOME: return "vl/mome";
    default: return "vl/captioning";
    }
}

static int vl_build(vlp_trainer *t) {
    int rc = vlp_vl_pretrain_graph(t->g, t->vl, t->teacher, t->micro, t->vl->cfg.max_text_len, &t->vp);
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
    float scale = 0.0f;
    if (t->vl->logit_scale) {
        float *ls = t->vl->logit_scale->data;
        if (*ls > t->cfg.max_logit_scale) *ls = t->cfg.max_logit_scale;
        if (*ls < 0) *ls = 0;
        scale = expf(*ls);
    }
    /* momentum: this step's teacher features into the queue, then the teacher's EMA towards the
     * updated (and clamped) model; ALBEF updates at the start of the next forward: the same order */
    if (t->teacher) vlp_vl_pretrain_after_step(&t->vp, t->teacher, t->vl);
    return scale;
}

/* ---- momentum state in checkpoints: teacher.safetensors (the teacher's parameters, vlp's
 * names: vlp_vl_load reads it with the checkpoint's config.json) and queue.safetensors (both
 * queues [K, E] and the next row, "queue_pos" metadata; -1 = not drawn yet). ---- */

int vlp_vl_train_save_state(const vlp_trainer *t, const char *dir) {
    if (!t->teacher) return VLP_OK;
    const vlp_vl_pretrain *p = &t->vp;
    int n = vlp_params_count(t->teacher->params);
    vlp_st_entry *e = calloc((size_t)n, sizeof *e);
    if (!e) {
        vlp_set_error("%s: out of memory", dir);
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        vlp_tensor *x = vlp_params_get(t->teacher->params, i);
        e[i].name = x->name;
        e[i].data = x->data;
        e[i].ndim = x->ndim;
        for (int k = 0; k < x->ndim; k++) e[i].shape[k] = x->shape[k];
        e[i].store_as = VLP_ST_F32;
    }
    char path[4400], step[32], pos[32];
    snprintf(path, sizeof path, "%s/teacher.safetensors", dir);
    snprintf(step, sizeof step, "%" PRId64, t->step);
    const char *meta[] = {"format", "pt", "producer", "vlp " VLP_VERSION, "role", "momentum teacher", "step", step,
                          NULL};
    int rc = vlp_st_save(path, e, n, meta); /* fsync'd; the checkpoint directory is renamed into place */
    free(e);
    if (rc || !p->img_queue) return rc;
    vlp_st_entry q[2];
    memset(q, 0, sizeof q);
    for (int k = 0; k < 2; k++) {
        vlp_tensor *x = k ? p->txt_queue : p->img_queue;
        q[k].name = k ? "text" : "image";
        q[k].data = x->data;
        q[k].ndim = 2;
        q[k].shape[0] = x->shape[0];
        q[k].shape[1] = x->shape[1];
        q[k].store_as = VLP_ST_F32;
    }
    snprintf(pos, sizeof pos, "%d", p->queue_pos);
    snprintf(path, sizeof path, "%s/queue.safetensors", dir);
    const char *qmeta[] = {"format", "vlp-momentum-queue", "queue_pos", pos, "step", step, NULL};
    return vlp_st_save(path, q, 2, qmeta);
}

/* Reads the teacher and the queue into scratch first; commits only when both are whole. */
int vlp_vl_train_load_state(vlp_trainer *t, const char *dir) {
    if (!t->teacher) return VLP_OK;
    vlp_vl_pretrain *p = &t->vp;
    vlp_params *tp = t->teacher->params;
    int64_t n = vlp_params_numel(tp), KE = p->img_queue ? p->img_queue->numel : 0;
    char path[4400], qpath[4400];
    snprintf(path, sizeof path, "%s/teacher.safetensors", dir);
    snprintf(qpath, sizeof qpath, "%s/queue.safetensors", dir);
    if (access(path, F_OK) || (KE && access(qpath, F_OK))) {
        vlp_set_error("%s: missing: the run trains with momentum %g (a teacher%s), but the checkpoint has no "
                      "momentum state", access(path, F_OK) ? path : qpath, (double)t->vl->cfg.momentum,
                      KE ? " and a queue" : "");
        return VLP_ERR_IO;
    }
    float *tw = malloc((size_t)(n ? n : 1) * sizeof(float)), *qw = malloc((size_t)(2 * KE + 1) * sizeof(float));
    vlp_safetensors *st = tw && qw ? vlp_st_open(path) : NULL;
    int rc = tw && qw ? (st ? VLP_OK : VLP_ERR_IO) : VLP_ERR_NOMEM;
    if (rc == VLP_ERR_NOMEM) vlp_set_error("%s: out of memory", path);
    for (int i = 0; !rc && i < vlp_params_count(tp); i++) {
        vlp_tensor *x = vlp_params_get(tp, i);
        int idx = vlp_st_find(st, x->name);
        if (idx < 0 || vlp_st_numel(st, idx) != x->numel) {
            vlp_set_error("%s: tensor '%s' is %s", path, x->name, idx < 0 ? "missing" : "not the model's size");
            rc = VLP_ERR_IO;
        } else {
            rc = vlp_st_read_f32(st, idx, tw + x->off_data, x->numel);
        }
    }
    vlp_st_close(st);
    int64_t pos = -1;
    if (!rc && KE) {
        vlp_safetensors *qs = vlp_st_open(qpath);
        if (!qs) rc = VLP_ERR_IO;
        for (int k = 0; !rc && k < 2; k++) {
            const char *nm = k ? "text" : "image";
            int idx = vlp_st_find(qs, nm);
            if (idx < 0 || vlp_st_numel(qs, idx) != KE) {
                vlp_set_error("%s: queue '%s' is %s (the run's queue is %lld x %lld)", qpath, nm,
                              idx < 0 ? "missing" : "of another size", (long long)p->img_queue->shape[0],
                              (long long)p->img_queue->shape[1]);
                rc = VLP_ERR_IO;
            } else {
                rc = vlp_st_read_f32(qs, idx, qw + k * KE, KE);
            }
        }
        const char *v = qs && !rc ? vlp_st_metadata(qs, "queue_pos") : NULL;
        char *end = NULL;
        if (!rc) pos = v ? strtoll(v, &end, 10) : -2;
        if (!rc && (!v || !*v || *end || pos < -1 || pos >= p->img_queue->shape[0])) {
            vlp_set_error("%s: metadata 'queue_pos' is missing or out of range", qpath);
            rc = VLP_ERR_IO;
        }
        vlp_st_close(qs);
    }
    if (!rc) {
        memcpy(vlp_params_data(tp), tw, (size_t)n * sizeof(float));
        if (KE) {
            memcpy(p->img_queue->data, qw, (size_t)KE * sizeof(float));
            memcpy(p->txt_queue->data, qw + KE, (size_t)KE * sizeof(float));
            p->queue_pos = (int)pos;
        }
    }
    free(tw);
    free(qw);
    return rc;
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
    vlp_vl_free(t->teacher);
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
    if (m->cfg.momentum > 0 && cfg && cfg->accum_steps > 1) {
        /* the queue takes one micro-batch per optimiser step; ALBEF enqueues every forward */
        vlp_set_error("vlp_trainer_new_vl: momentum (%g) with gradient accumulation (accum_steps %d) is not "
                      "supported; use accum_steps 1", (double)m->cfg.momentum, cfg->accum_steps);
        return NULL;
    }
    vlp_trainer *t = vlp_trainer_alloc(&vl_ops, m->params, cfg);
    if (!t) return NULL;
    t->vl = m;
    if (m->cfg.momentum > 0 && !(t->teacher = vlp_vl_momentum_teacher(m))) {
        vlp_trainer_free(t);
        return NULL;
    }
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
