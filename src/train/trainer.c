/* The CLIP trainer: one static training graph (image tower, text tower, contrastive loss)
 * built for the micro-batch, replayed every step; AdamW with parameter groups (no decay on
 * VLP_FLAG_NO_DECAY tensors), warm-up + cosine schedule, global-norm clipping over every
 * trained tensor, gradient accumulation, logit-scale clamp. vlp_train_run wraps the steps
 * with logging (metrics.jsonl), evaluation, checkpoints and exact resume. */
#include "train_internal.h"

#include "core/internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vlp_train_config_default(vlp_train_config *c) {
    memset(c, 0, sizeof *c);
    c->batch_size = 256;
    c->accum_steps = 1;
    c->lr = 5e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.98f;
    c->eps = 1e-6f;
    c->weight_decay = 0.1f;
    c->loss = VLP_ITC_CLIP;
    c->max_logit_scale = logf(100.0f);
    c->siglip_scale_init = logf(10.0f);
    c->siglip_bias_init = -10.0f;
}

int vlp_train_config_validate(const vlp_train_config *c) {
    const char *bad = NULL;
    if (!c) bad = "config is NULL";
    else if (c->batch_size < 2) bad = "batch_size must be at least 2 (a contrastive batch needs negatives)";
    else if (c->accum_steps < 1 || c->batch_size % c->accum_steps) bad = "accum_steps must divide batch_size";
    else if (c->batch_size / c->accum_steps < 2) bad = "micro-batches (batch_size / accum_steps) need 2 pairs";
    else if (c->steps < 1) bad = "steps must be positive";
    else if (c->warmup < 0 || c->warmup > c->steps) bad = "warmup must be in 0..steps";
    else if (!(c->lr >= 0) || !(c->min_lr >= 0) || !isfinite(c->lr)) bad = "lr and min_lr must be >= 0";
    else if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1)) bad = "betas must be in [0, 1)";
    else if (!(c->eps > 0) || !(c->weight_decay >= 0)) bad = "eps must be > 0 and weight_decay >= 0";
    else if (c->loss != VLP_ITC_CLIP && c->loss != VLP_ITC_SIGLIP) bad = "loss must be clip or siglip";
    else if (!(c->max_logit_scale > 0) || !isfinite(c->max_logit_scale)) bad = "max_logit_scale must be > 0";
    else if (isnan(c->clip_norm)) bad = "clip_norm is NaN";
    if (bad) {
        vlp_set_error("training config: %s", bad);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

void vlp_trainer_free(vlp_trainer *t) {
    if (!t) return;
    const char *prof = getenv("VLP_PROFILE");
    if (t->g && t->step && prof && *prof && *prof != '0') vlp_graph_profile_print(t->g, stderr);
    if (t->ops && t->ops->free) t->ops->free(t);
    vlp_graph_free(t->g);
    vlp_adamw_free(t->opt);
    vlp_adamw_free(t->opt_x);
    vlp_params_free(t->xp);
    free(t);
}

vlp_trainer *vlp_trainer_alloc(const vlp_train_model_ops *ops, vlp_params *params, const vlp_train_config *cfg) {
    if (vlp_train_config_validate(cfg)) return NULL;
    vlp_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        vlp_set_error("vlp_trainer_new: out of memory");
        return NULL;
    }
    t->ops = ops;
    t->params = params;
    t->cfg = *cfg;
    t->micro = cfg->batch_size / cfg->accum_steps;
    return t;
}

static vlp_adamw_config adamw_config(const vlp_train_config *cfg) {
    vlp_adamw_config oc = {.lr = cfg->lr, .beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps,
                           .weight_decay = cfg->weight_decay, .clip_norm = 0 /* clipped here, over both stores */};
    return oc;
}

vlp_trainer *vlp_trainer_finish(vlp_trainer *t) {
    if (!t) return NULL;
    vlp_adamw_config oc = adamw_config(&t->cfg);
    if (t->xp && !(t->opt_x = vlp_adamw_new(t->xp, &oc))) goto fail;
    if (!(t->opt = vlp_adamw_new(t->params, &oc))) goto fail;
    if (!(t->g = vlp_graph_new())) goto fail;
    if (t->ops->build(t)) {
        const char *ge = vlp_graph_error(t->g);
        if (ge) vlp_set_error("vlp_trainer_new: building the training graph: %s", ge);
        goto fail;
    }
    if (!t->loss || vlp_graph_build(t->g, t->loss, VLP_BUILD_TRAIN)) {
        const char *ge = vlp_graph_error(t->g);
        if (ge) vlp_set_error("vlp_trainer_new: building the training graph: %s", ge);
        goto fail;
    }
    vlp_graph_set_seed(t->g, t->cfg.seed);
    return t;
fail:
    vlp_trainer_free(t);
    return NULL;
}

/* ---- CLIP: the model-specific part ------------------------------------------------------ */

static const char *clip_kind(const vlp_trainer *t) { return t->cfg.loss == VLP_ITC_SIGLIP ? "siglip" : "clip"; }

static int clip_build(vlp_trainer *t) {
    const vlp_clip_config *c = &t->m->cfg;
    int64_t sp[4] = {t->micro, 3, c->image_size, c->image_size}, si[2] = {t->micro, c->context_length};
    t->pixels = vlp_input(t->g, "pixels", VLP_F32, 4, sp);
    t->ids = vlp_input(t->g, "ids", VLP_I32, 2, si);
    vlp_tensor *img = vlp_clip_encode_image(t->g, t->m, t->pixels, NULL);
    vlp_tensor *txt = vlp_clip_encode_text(t->g, t->m, t->ids, NULL);
    t->loss = vlp_itc_loss(t->g, img, txt, t->m->logit_scale, t->bias, t->cfg.loss);
    return t->loss ? VLP_OK : VLP_ERR_ARG;
}

static int clip_fill(vlp_trainer *t, const vlp_batch *b, int k) {
    const vlp_clip_config *mc = &t->m->cfg;
    int64_t px = 3LL * mc->image_size * mc->image_size, tk = mc->context_length;
    memcpy(t->pixels->data, b->pixels + (int64_t)k * t->micro * px, (size_t)(t->micro * px) * sizeof(float));
    memcpy(t->ids->data, b->tokens + (int64_t)k * t->micro * tk, (size_t)(t->micro * tk) * sizeof(int32_t));
    return VLP_OK;
}

static float clip_after_step(vlp_trainer *t) {
    float *ls = t->m->logit_scale->data; /* open_clip clamps to [0, ln 100] after the step */
    if (*ls > t->cfg.max_logit_scale) *ls = t->cfg.max_logit_scale;
    if (*ls < 0) *ls = 0;
    return expf(*ls);
}

static int clip_save(const vlp_trainer *t, const char *dir) { return vlp_clip_save(t->m, dir); }

static int clip_load_params(vlp_trainer *t, const char *dir, float *dst) {
    vlp_clip *src = vlp_clip_load(dir);
    if (!src) return VLP_ERR_IO;
    int rc = vlp_train_same_params(t->params, src->params, dir);
    if (!rc) memcpy(dst, vlp_params_data(src->params), (size_t)vlp_params_numel(src->params) * sizeof(float));
    vlp_clip_free(src);
    return rc;
}

static const vlp_train_model_ops clip_ops = {clip_kind, clip_build, clip_fill, clip_after_step, clip_save,
                                             clip_load_params, NULL, NULL, NULL};

int vlp_train_same_params(vlp_params *a, vlp_params *b, const char *dir) {
    int rc = VLP_OK;
    if (vlp_params_count(a) != vlp_params_count(b) || vlp_params_numel(a) != vlp_params_numel(b)) rc = VLP_ERR_ARG;
    for (int i = 0; !rc && i < vlp_params_count(a); i++) {
        vlp_tensor *x = vlp_params_get(a, i), *y = vlp_params_get(b, i);
        if (strcmp(x->name, y->name) || x->numel != y->numel || x->ndim != y->ndim) rc = VLP_ERR_ARG;
    }
    if (rc) vlp_set_error("%s: the checkpoint's model config differs from the run's", dir);
    return rc;
}

vlp_trainer *vlp_trainer_new(vlp_clip *m, const vlp_train_config *cfg) {
    if (!m) {
        vlp_set_error("vlp_trainer_new: model is NULL");
        return NULL;
    }
    vlp_trainer *t = vlp_trainer_alloc(&clip_ops, m->params, cfg);
    if (!t) return NULL;
    t->m = m;
    if (cfg->loss == VLP_ITC_SIGLIP) {
        t->xp = vlp_params_new();
        if (!t->xp || !(t->bias = vlp_params_add(t->xp, "logit_bias", 0, NULL, VLP_FLAG_NO_DECAY)) ||
            vlp_params_alloc(t->xp)) {
            vlp_trainer_free(t);
            return NULL;
        }
        vlp_init_const(t->bias, cfg->siglip_bias_init);
        vlp_init_const(m->logit_scale, cfg->siglip_scale_init);
    }
    return vlp_trainer_finish(t);
}

int64_t vlp_trainer_step_count(const vlp_trainer *t) { return t ? t->step : 0; }
const vlp_train_config *vlp_trainer_config(const vlp_trainer *t) { return t ? &t->cfg : NULL; }
vlp_clip *vlp_trainer_model(vlp_trainer *t) { return t ? t->m : NULL; }
void vlp_trainer_position(const vlp_trainer *t, int64_t *epoch, int64_t *batch) {
    if (epoch) *epoch = t ? t->epoch : 0;
    if (batch) *batch = t ? t->batch : 0;
}
void vlp_trainer_take_log_loss(vlp_trainer *t, double *sum, int64_t *count) {
    if (sum) *sum = t->log_sum;
    if (count) *count = t->log_n;
    t->log_sum = 0;
    t->log_n = 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void scale_grads(vlp_params *p, float k) {
    if (!p) return;
    float *g = vlp_params_grad(p);
    int64_t n = vlp_params_numel(p);
    VLP_PARFOR(vlp_get_threads(), n > 65536, (int64_t i = 0; i < n; i++), { g[i] *= k; });
}

int vlp_trainer_step(vlp_trainer *t, vlp_batch_source *src, vlp_train_stats *st) {
    if (!t || !src || !src->next) {
        vlp_set_error("vlp_trainer_step: NULL argument");
        return VLP_ERR_ARG;
    }
    const vlp_train_config *c = &t->cfg;
    double t0 = now_s();
    vlp_batch b;
    memset(&b, 0, sizeof b);
    int rc = src->next(src->ctx, &b);
    double t1 = now_s();
    if (rc) return rc;
    if (b.n != c->batch_size || !b.pixels || !b.tokens) {
        vlp_set_error("training step %lld: the data source gave a batch of %d pairs, the trainer needs %d "
                      "(use drop_last)", (long long)t->step + 1, b.n, c->batch_size);
        return VLP_ERR_ARG;
    }
    vlp_params_zero_grad(t->params);
    vlp_params_zero_grad(t->xp);
    float seed = 1.0f / (float)c->accum_steps; /* backward seed: gradients of the mean loss */
    double loss = 0, parts[8] = {0};
    const char *pnames[8];
    float pv[8];
    int np = 0;
    for (int k = 0; k < c->accum_steps; k++) {
        if ((rc = t->ops->fill(t, &b, k))) return rc;
        vlp_graph_set_training(t->g, 1, (uint64_t)(t->step * c->accum_steps + k));
        rc = vlp_graph_forward(t->g);
        float l = *(float *)t->loss->data;
        if (rc == VLP_ERR_NUMERIC) l = NAN; /* the graph checks its loss too */
        else if (rc) return rc;
        if (!isfinite(l)) {
            vlp_set_error("training diverged: loss is %s at step %lld (micro-batch %d); stopping. Try a lower --lr "
                          "or gradient clipping", isnan(l) ? "NaN" : "Inf", (long long)t->step + 1, k);
            return VLP_ERR_NUMERIC;
        }
        loss += l;
        if (t->ops->parts) {
            np = t->ops->parts(t, pnames, pv);
            for (int i = 0; i < np; i++) parts[i] += pv[i];
        }
        if ((rc = vlp_graph_backward(t->g, &seed))) return rc;
    }
    loss /= c->accum_steps;
    /* global norm over both stores, then one clip factor for all */
    double n1 = vlp_clip_grad_norm(t->params, 0), n2 = t->xp ? vlp_clip_grad_norm(t->xp, 0) : 0;
    float norm = (float)sqrt(n1 * n1 + n2 * n2);
    if (!isfinite(norm)) {
        vlp_set_error("training diverged: gradient norm is %s at step %lld; stopping", isnan(norm) ? "NaN" : "Inf",
                      (long long)t->step + 1);
        return VLP_ERR_NUMERIC;
    }
    if (c->clip_norm > 0 && norm > c->clip_norm) {
        float k = c->clip_norm / (norm + 1e-6f); /* torch.nn.utils.clip_grad_norm_ */
        scale_grads(t->params, k);
        scale_grads(t->xp, k);
    }
    float lr = vlp_lr_warmup_cosine(t->step, c->warmup, c->steps, c->lr, c->min_lr);
    if (t->ops->before_step) t->ops->before_step(t);
    if ((rc = vlp_adamw_step(t->opt, lr, 1.0f, NULL))) return rc;
    if (t->opt_x && (rc = vlp_adamw_step(t->opt_x, lr, 1.0f, NULL))) return rc;
    float scale = t->ops->after_step(t);
    t->step++;
    t->epoch = b.epoch;
    t->batch = b.batch + 1;
    if (src->batches_per_epoch > 0 && t->batch >= src->batches_per_epoch) t->epoch++, t->batch = 0;
    t->log_sum += loss;
    t->log_n++;
    if (st) {
        st->n_parts = np;
        for (int i = 0; i < np; i++) {
            st->part_name[i] = pnames[i];
            st->part_loss[i] = (float)(parts[i] / c->accum_steps);
        }
        st->step = t->step;
        st->loss = (float)loss;
        st->lr = lr;
        st->grad_norm = norm;
        st->logit_scale = scale;
        st->logit_bias = t->bias ? *(float *)t->bias->data : 0.0f;
        st->epoch = t->epoch;
        st->batch = t->batch;
        st->data_wait_s = t1 - t0;
        st->compute_s = now_s() - t1;
    }
    return VLP_OK;
}

/* ---- the run loop --------------------------------------------------------------------------- */

int vlp_train_latest_checkpoint(const char *run_dir, char *out, size_t cap) {
    char p[4200], name[256];
    snprintf(p, sizeof p, "%s/checkpoints/latest", run_dir);
    FILE *f = fopen(p, "r");
    if (!f) {
        vlp_set_error("%s: no checkpoint to resume from (%s)", run_dir, strerror(errno));
        return VLP_ERR_IO;
    }
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(name, "\r\n") : 0;
    name[n] = 0;
    if (!n || strchr(name, '/')) {
        vlp_set_error("%s: malformed checkpoint pointer", p);
        return VLP_ERR_IO;
    }
    if ((size_t)snprintf(out, cap, "%s/checkpoints/%s", run_dir, name) >= cap) {
        vlp_set_error("%s: path too long", run_dir);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

static int mkdir_p(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) break;
            *s = '/';
        }
    if (mkdir(p, 0777) && errno != EEXIST) {
        vlp_set_error("%s: cannot create directory: %s", dir, strerror(errno));
        return VLP_ERR_IO;
    }
    return VLP_OK;
}

/* Keeps the lines of metrics.jsonl up to `step` (what a resumed run will write again). */
static int truncate_metrics(const char *path, int64_t step) {
    FILE *f = fopen(path, "r");
    if (!f) return VLP_OK;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        vlp_set_error("%s: cannot write: %s", tmp, strerror(errno));
        return VLP_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *s = j ? json_object_get(j, "step") : NULL;
        if (s && json_is_integer(s) && json_integer_value(s) <= step) fputs(line, o);
        json_decref(j);
    }
    free(line);
    fclose(f);
    int bad = fflush(o) != 0 || fsync(fileno(o)) != 0;
    bad |= fclose(o) != 0;
    if (bad || rename(tmp, path)) {
        vlp_set_error("%s: cannot rewrite: %s", path, strerror(errno));
        unlink(tmp);
        return VLP_ERR_IO;
    }
    return VLP_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#include <dirent.h>
/* Removes all but the newest `keep` step_* checkpoints (never `current`). */
static void prune_checkpoints(const char *ckdir, int keep, const char *current) {
    DIR *d = opendir(ckdir);
    if (!d) return;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (!strncmp(e->d_name, "step_", 5) && !strchr(e->d_name, '.')) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        if (names[i] && i < n - keep && strcmp(names[i], current)) {
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", ckdir, names[i]);
            vlp_rmtree(p);
        }
        free(names[i]);
    }
}

static int save_checkpoint(vlp_trainer *t, const char *run_dir, const vlp_run_options *o) {
    char ck[4200], dir[4400], name[64], latest[4400];
    snprintf(ck, sizeof ck, "%s/checkpoints", run_dir);
    snprintf(name, sizeof name, "step_%08lld", (long long)t->step);
    snprintf(dir, sizeof dir, "%s/%s", ck, name);
    int rc = vlp_trainer_save(t, dir, o->meta);
    if (rc) return rc;
    snprintf(latest, sizeof latest, "%s/latest", ck);
    char text[80];
    snprintf(text, sizeof text, "%s\n", name);
    if ((rc = vlp_write_file_atomic(latest, text))) return rc;
    prune_checkpoints(ck, o->keep_checkpoints > 0 ? o->keep_checkpoints : 2, name);
    return VLP_OK;
}

int vlp_train_run(vlp_trainer *t, vlp_batch_source *src, const vlp_run_options *o) {
    if (!t || !src || !o || !o->run_dir) {
        vlp_set_error("vlp_train_run: NULL argument");
        return VLP_ERR_ARG;
    }
    const char *rd = o->run_dir;
    char path[4200], ck[4400];
    int rc;
    if ((rc = mkdir_p(rd))) return rc;
    snprintf(path, sizeof path, "%s/checkpoints", rd);
    if ((rc = mkdir_p(path))) return rc;
    snprintf(path, sizeof path, "%s/metrics.jsonl", rd);
    if (o->resume) {
        if ((rc = vlp_train_latest_checkpoint(rd, ck, sizeof ck)) || (rc = vlp_trainer_load(t, ck))) return rc;
        if (!src->seek) {
            vlp_set_error("vlp_train_run: the data source cannot seek, so it cannot resume");
            return VLP_ERR_ARG;
        }
        if ((rc = src->seek(src->ctx, t->epoch, t->batch))) return rc;
        if ((rc = truncate_metrics(path, t->step))) return rc;
    } else {
        char lp[4400];
        snprintf(lp, sizeof lp, "%s/checkpoints/latest", rd);
        if (access(lp, F_OK) == 0) {
            vlp_set_error("%s already holds a run with checkpoints: resume it (--resume) or choose another "
                          "directory", rd);
            return VLP_ERR_ARG;
        }
        unlink(path);
    }
    FILE *mf = fopen(path, "a");
    if (!mf) {
        vlp_set_error("%s: cannot open for appending: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    const vlp_train_config *c = &t->cfg;
    int log_every = o->log_every > 0 ? o->log_every : 10;
    double t_start = now_s(), win_t = t_start, win_wait = 0;
    int64_t win_pairs = 0;
    double pps = 0, wait_frac = 0;
    rc = VLP_OK;
    while (t->step < c->steps) {
        vlp_train_stats st;
        rc = vlp_trainer_step(t, src, &st);
        int diverged = rc == VLP_ERR_NUMERIC;
        if (rc && !diverged) break;
        if (!diverged) {
            win_wait += st.data_wait_s;
            win_pairs += c->batch_size;
        }
        int64_t s = diverged ? t->step + 1 : t->step;
        int last = s == c->steps;
        if (diverged || s % log_every == 0 || last) {
            double now = now_s(), el = now - win_t;
            pps = el > 0 ? (double)win_pairs / el : 0;
            wait_frac = el > 0 ? win_wait / el : 0;
            double sum;
            int64_t n;
            vlp_trainer_take_log_loss(t, &sum, &n);
            int64_t bpe = src->batches_per_epoch;
            json_t *j = json_object();
            json_object_set_new(j, "step", json_integer(s));
            if (bpe > 0) json_object_set_new(j, "epoch", json_real((double)t->epoch + (double)t->batch / bpe));
            if (diverged) {
                json_object_set_new(j, "error", json_string(vlp_last_error()));
            } else {
                json_object_set_new(j, "loss", json_real(n ? sum / (double)n : 0));
                json_object_set_new(j, "loss_last", json_real(st.loss));
                json_object_set_new(j, "lr", json_real(st.lr));
                json_object_set_new(j, "grad_norm", json_real(st.grad_norm));
                json_object_set_new(j, "step_s", json_real(st.compute_s)); /* the last step, data wait excluded */
                json_object_set_new(j, "logit_scale", json_real(st.logit_scale));
                if (c->loss == VLP_ITC_SIGLIP) json_object_set_new(j, "logit_bias", json_real(st.logit_bias));
                for (int i = 0; i < st.n_parts; i++) { /* the last step's, per objective */
                    char key[32];
                    snprintf(key, sizeof key, "loss_%s", st.part_name[i]);
                    json_object_set_new(j, key, json_real(st.part_loss[i]));
                }
            }
            json_object_set_new(j, "pairs_per_s", json_real(pps));
            json_object_set_new(j, "data_wait", json_real(wait_frac));
            json_object_set_new(j, "time_s", json_real(now - t_start));
            char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
            json_decref(j);
            if (line) fprintf(mf, "%s\n", line);
            free(line);
            fflush(mf);
            win_t = now;
            win_wait = 0;
            win_pairs = 0;
        }
        if (diverged) break;
        if (o->on_step && o->on_step(o->ctx, &st, pps, wait_frac)) {
            rc = save_checkpoint(t, rd, o);
            break;
        }
        if (o->on_eval && ((o->eval_every > 0 && s % o->eval_every == 0) || last)) {
            char buf[8192] = "";
            double te = now_s();
            if ((rc = o->on_eval(o->ctx, t, s, buf, sizeof buf))) break;
            json_error_t je;
            json_t *ev = json_loads(buf, 0, &je), *j = json_object();
            json_object_set_new(j, "step", json_integer(s));
            json_object_set_new(j, "eval_s", json_real(now_s() - te));
            if (json_is_object(ev)) json_object_update(j, ev);
            char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
            if (line) fprintf(mf, "%s\n", line);
            free(line);
            json_decref(j);
            json_decref(ev);
            fflush(mf);
            win_t += now_s() - te; /* evaluation time is not training throughput */
        }
        if ((o->save_every > 0 && s % o->save_every == 0) || last)
            if ((rc = save_checkpoint(t, rd, o))) break;
    }
    fclose(mf);
    if (!rc && o->save_final && t->step == c->steps) {
        snprintf(path, sizeof path, "%s/model", rd);
        rc = t->ops->save(t, path);
    }
    return rc;
}
