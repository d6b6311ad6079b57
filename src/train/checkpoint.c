/* Training checkpoints: a directory with the model in the Hugging Face layout
 * (vlp_clip_save: model.safetensors + config.json, loadable by vlp_clip_load and by
 * transformers) and train_state.safetensors (AdamW moments per parameter, the SigLIP bias,
 * and step / data position / seed in the metadata); VL runs with momentum add
 * teacher.safetensors and queue.safetensors (src/train/vl_model.c).
 *
 * Atomicity: everything is written into "<dir>.tmp", each file fsync'd, the directory
 * fsync'd, then renamed to <dir> (a previous <dir> is first moved to "<dir>.old"), and the
 * parent fsync'd. A crash before the rename leaves only a stale .tmp, removed by the next
 * save; readers follow checkpoints/latest, which the run loop replaces after the rename. */
#include "train_internal.h"

#include "core/internal.h"
#include "vlp_safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

void (*vlp_checkpoint_test_hook)(const char *stage);

static void hook(const char *stage) {
    if (vlp_checkpoint_test_hook) vlp_checkpoint_test_hook(stage);
}

int vlp_fsync_path(const char *path, int is_dir) {
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0 || fsync(fd)) {
        vlp_set_error("%s: fsync failed: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return VLP_ERR_IO;
    }
    close(fd);
    return VLP_OK;
}

int vlp_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return errno == ENOENT ? VLP_OK : VLP_ERR_IO;
    if (!S_ISDIR(sb.st_mode)) return unlink(path) ? VLP_ERR_IO : VLP_OK;
    DIR *d = opendir(path);
    if (!d) return VLP_ERR_IO;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        vlp_rmtree(p);
    }
    closedir(d);
    return rmdir(path) ? VLP_ERR_IO : VLP_OK;
}

static void parent_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    char *s = strrchr(out, '/');
    if (s && s != out) *s = 0;
    else snprintf(out, cap, "%s", s ? "/" : ".");
}

int vlp_write_file_atomic(const char *path, const char *text) {
    char tmp[4400], dir[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    if (f) {
        bad |= fputs(text, f) < 0;
        bad |= fflush(f) != 0;
        bad |= fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
    }
    if (bad || rename(tmp, path)) {
        vlp_set_error("%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return VLP_ERR_IO;
    }
    parent_of(path, dir, sizeof dir);
    return vlp_fsync_path(dir, 1);
}

/* ---- train_state.safetensors -------------------------------------------------------------- */

static int add_moments(vlp_st_entry *e, int n, char (*names)[160], vlp_params *p, vlp_adamw *o) {
    float *m = vlp_adamw_m(o), *v = vlp_adamw_v(o);
    for (int i = 0; i < vlp_params_count(p); i++) {
        vlp_tensor *t = vlp_params_get(p, i);
        if (!t->grad) continue; /* frozen: no moments */
        for (int k = 0; k < 2; k++) {
            snprintf(names[n], sizeof names[n], "adamw.%s.%s", k ? "v" : "m", t->name);
            e[n].name = names[n];
            e[n].data = (k ? v : m) + t->off_data;
            e[n].ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++) e[n].shape[d] = t->shape[d];
            e[n].store_as = VLP_ST_F32;
            n++;
        }
    }
    return n;
}

static int write_state(vlp_trainer *t, const char *path, const char *const *extra) {
    int np = vlp_params_count(t->params) + vlp_params_count(t->xp);
    int cap = 2 * np + 2;
    vlp_st_entry *e = calloc((size_t)cap, sizeof *e);
    char(*names)[160] = calloc((size_t)cap, sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        vlp_set_error("%s: out of memory", path);
        return VLP_ERR_NOMEM;
    }
    int n = add_moments(e, 0, names, t->params, t->opt);
    if (t->xp) {
        n = add_moments(e, n, names, t->xp, t->opt_x);
        e[n].name = "logit_bias";
        e[n].data = t->bias->data;
        e[n].ndim = 0;
        e[n].store_as = VLP_ST_F32;
        n++;
    }
    char step[32], at[32], ep[32], bt[32], seed[32], ls[40], ln[32];
    snprintf(step, sizeof step, "%" PRId64, t->step);
    snprintf(at, sizeof at, "%" PRId64, vlp_adamw_steps(t->opt));
    snprintf(ep, sizeof ep, "%" PRId64, t->epoch);
    snprintf(bt, sizeof bt, "%" PRId64, t->batch);
    snprintf(seed, sizeof seed, "%" PRIu64, t->cfg.seed);
    snprintf(ls, sizeof ls, "%.17g", t->log_sum);
    snprintf(ln, sizeof ln, "%" PRId64, t->log_n);
    const char *meta[64] = {"format", "vlp-train-state", "producer", "vlp " VLP_VERSION, "step", step, "adamw_steps",
                            at, "epoch", ep, "batch", bt, "seed", seed, "loss",
                            t->ops->kind(t), "log_loss_sum", ls, "log_loss_count",
                            ln};
    int k = 20;
    for (int i = 0; extra && extra[i] && extra[i + 1] && k < 62; i += 2) {
        meta[k++] = extra[i];
        meta[k++] = extra[i + 1];
    }
    meta[k] = NULL;
    int rc = vlp_st_save(path, e, n, meta);
    free(e);
    free(names);
    return rc;
}

int vlp_trainer_save(vlp_trainer *t, const char *dir, const char *const *extra_meta) {
    if (!t || !dir) {
        vlp_set_error("vlp_trainer_save: NULL argument");
        return VLP_ERR_ARG;
    }
    char tmp[4200], old[4200], p[4400], parent[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    snprintf(old, sizeof old, "%s.old", dir);
    vlp_rmtree(tmp); /* left by a crashed save */
    int rc = t->ops->save(t, tmp); /* creates tmp; model.safetensors is fsync'd by vlp_st_save */
    if (rc) goto fail;
    snprintf(p, sizeof p, "%s/config.json", tmp);
    if ((rc = vlp_fsync_path(p, 0))) goto fail;
    hook("model");
    snprintf(p, sizeof p, "%s/train_state.safetensors", tmp);
    if ((rc = write_state(t, p, extra_meta))) goto fail;
    if ((rc = vlp_vl_train_save_state(t, tmp))) goto fail;
    hook("state");
    if ((rc = vlp_fsync_path(tmp, 1))) goto fail;
    struct stat sb;
    int had = stat(dir, &sb) == 0;
    vlp_rmtree(old);
    if (had && rename(dir, old)) {
        vlp_set_error("%s: cannot move the previous checkpoint aside: %s", dir, strerror(errno));
        rc = VLP_ERR_IO;
        goto fail;
    }
    if (rename(tmp, dir)) {
        vlp_set_error("%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
        if (had) rename(old, dir);
        rc = VLP_ERR_IO;
        goto fail;
    }
    hook("renamed");
    parent_of(dir, parent, sizeof parent);
    rc = vlp_fsync_path(parent, 1);
    vlp_rmtree(old);
    return rc;
fail:
    vlp_rmtree(tmp);
    return rc;
}

/* ---- loading -------------------------------------------------------------------------------- */

static int meta_i64(const vlp_safetensors *st, const char *key, int64_t *out, const char *path) {
    const char *v = vlp_st_metadata(st, key);
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno) {
        vlp_set_error("%s: metadata '%s' is %s", path, key, v ? "not an integer" : "missing");
        return VLP_ERR_IO;
    }
    *out = x;
    return VLP_OK;
}

static int read_moments(const vlp_safetensors *st, vlp_params *p, vlp_adamw *o, const char *path) {
    float *m = vlp_adamw_m(o), *v = vlp_adamw_v(o);
    for (int i = 0; i < vlp_params_count(p); i++) {
        vlp_tensor *t = vlp_params_get(p, i);
        if (!t->grad) continue;
        for (int k = 0; k < 2; k++) {
            char name[160];
            snprintf(name, sizeof name, "adamw.%s.%s", k ? "v" : "m", t->name);
            int idx = vlp_st_find(st, name);
            if (idx < 0) {
                vlp_set_error("%s: missing tensor '%s'", path, name);
                return VLP_ERR_IO;
            }
            int rc = vlp_st_read_f32(st, idx, (k ? v : m) + t->off_data, t->numel);
            if (rc) return rc;
        }
    }
    return VLP_OK;
}

int vlp_trainer_load(vlp_trainer *t, const char *dir) {
    if (!t || !dir) {
        vlp_set_error("vlp_trainer_load: NULL argument");
        return VLP_ERR_ARG;
    }
    char p[4400];
    vlp_params *a = t->params;
    int64_t np = vlp_params_numel(a);
    float *src = malloc((size_t)(np ? np : 1) * sizeof(float));
    if (!src) {
        vlp_set_error("%s: out of memory", dir);
        return VLP_ERR_NOMEM;
    }
    int rc = t->ops->load_params(t, dir, src);
    if (rc) {
        free(src);
        return rc;
    }
    snprintf(p, sizeof p, "%s/train_state.safetensors", dir);
    vlp_safetensors *st = vlp_st_open(p);
    if (!st) {
        free(src);
        return VLP_ERR_IO;
    }
    int64_t step, at, ep, bt, ln;
    const char *loss = vlp_st_metadata(st, "loss"), *fmt = vlp_st_metadata(st, "format"),
               *lsum = vlp_st_metadata(st, "log_loss_sum");
    const char *want = t->ops->kind(t);
    if (!fmt || strcmp(fmt, "vlp-train-state")) {
        vlp_set_error("%s: not a vlp training state (metadata format)", p);
        rc = VLP_ERR_IO;
    } else if (!loss || strcmp(loss, want)) {
        vlp_set_error("%s: the checkpoint was trained with loss '%s', the run uses '%s'", p, loss ? loss : "?", want);
        rc = VLP_ERR_ARG;
    }
    if (!rc) rc = meta_i64(st, "step", &step, p);
    if (!rc) rc = meta_i64(st, "adamw_steps", &at, p);
    if (!rc) rc = meta_i64(st, "epoch", &ep, p);
    if (!rc) rc = meta_i64(st, "batch", &bt, p);
    if (!rc) rc = meta_i64(st, "log_loss_count", &ln, p);
    if (!rc && (step < 0 || step > t->cfg.steps)) {
        vlp_set_error("%s: checkpoint step %lld is beyond the run's %lld steps", p, (long long)step,
                      (long long)t->cfg.steps);
        rc = VLP_ERR_ARG;
    }
    /* read everything before touching the trainer, so a bad file leaves it as it was */
    int64_t n = vlp_params_numel(a);
    float *m0 = malloc((size_t)(n ? n : 1) * sizeof(float)), *v0 = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!m0 || !v0) {
        vlp_set_error("out of memory");
        rc = VLP_ERR_NOMEM;
    }
    if (!rc) {
        memcpy(m0, vlp_adamw_m(t->opt), (size_t)n * sizeof(float));
        memcpy(v0, vlp_adamw_v(t->opt), (size_t)n * sizeof(float));
        rc = read_moments(st, a, t->opt, p);
        if (!rc && t->xp) {
            rc = read_moments(st, t->xp, t->opt_x, p);
            int bi = vlp_st_find(st, "logit_bias");
            if (!rc && bi < 0) {
                vlp_set_error("%s: missing tensor 'logit_bias'", p);
                rc = VLP_ERR_IO;
            }
            if (!rc) rc = vlp_st_read_f32(st, bi, t->bias->data, 1);
        }
        if (!rc) rc = vlp_vl_train_load_state(t, dir);
        if (rc) { /* restore the moments */
            memcpy(vlp_adamw_m(t->opt), m0, (size_t)n * sizeof(float));
            memcpy(vlp_adamw_v(t->opt), v0, (size_t)n * sizeof(float));
        }
    }
    if (!rc) {
        memcpy(vlp_params_data(a), src, (size_t)n * sizeof(float));
        vlp_adamw_set_steps(t->opt, at);
        if (t->opt_x) vlp_adamw_set_steps(t->opt_x, at);
        t->step = step;
        t->epoch = ep;
        t->batch = bt;
        t->log_sum = lsum ? strtod(lsum, NULL) : 0;
        t->log_n = ln;
    }
    free(m0);
    free(v0);
    vlp_st_close(st);
    free(src);
    return rc;
}
