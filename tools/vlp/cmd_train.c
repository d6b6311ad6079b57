/* vlp train: contrastive pre-training of a CLIP model from a run config (JSON) and flags. */
#include "cli.h"
#include "vlp_data.h"
#include "vlp_safetensors.h"
#include "vlp_text.h"
#include "vlp_train.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void help(void) {
    printf("usage: vlp train [--config RUN.json] [options]\n"
           "Contrastive image-text pre-training (CLIP InfoNCE, or SigLIP) of a CLIP model, or, with a\n"
           "\"family\" in RUN.json, pre-training of a fusion / generative VL model (single_stream (vilt),\n"
           "dual_stream (albef), mome (vlmo), captioning (blip)) with the weighted objectives of its\n"
           "\"objectives\" ({\"itc\": 1, \"itm\": 1, \"mlm\": 1, \"mim\": 0, \"lm\": 0}), WordPiece text\n"
           "(\"vocab\": a vocab.txt; default bert-base-uncased). See configs/emoji-albef-s.json.\n"
           "Either kind of model takes either tokenizer by \"tokenizer\" in its model config: a CLIP model\n"
           "CLIP BPE by default or \"wordpiece\" (pooled at [SEP]; configs/emoji-s-wordpiece.json), a VL\n"
           "model WordPiece by default or \"clip_bpe\"; the model keeps its vocabulary file.\n\n"
           "options (each overrides the field of RUN.json named after it):\n"
           "  --config FILE      run config (see configs/emoji-s.json)\n"
           "  --model M          model: a preset (ViT-B-32, tiny, ...), a config file (vlp flat, HF or open_clip)\n"
           "  --init DIR         start from the weights of a saved model instead of a fresh init\n"
           "  --data SPEC        training pairs: a .tsv/.csv, a folder, or tar shards \"dir/{000..009}.tar\"\n"
           "  --val SPEC         retrieval evaluation set (repeatable); --zeroshot FILE.json zero-shot set;\n"
           "                     --no-eval drops those of the config\n"
           "  --out RUN_DIR      run directory (metrics.jsonl, checkpoints/, model/); default runs/NAME\n"
           "  --resume           continue RUN_DIR from its latest checkpoint (same losses as uninterrupted)\n"
           "  --steps N | --epochs N   length of the run; --batch-size N; --accum N (micro-batches per step)\n"
           "  --lr X  --min-lr X  --warmup N  --wd X  --beta1 X  --beta2 X  --eps X  --clip-norm X\n"
           "  --loss clip|siglip --seed N --workers N --log-every N --eval-every N --save-every N --keep N\n"
           "  --print-config     print the run as resolved from RUN.json and the flags (JSON: model, objectives,\n"
           "                     batch, steps, seed, optimiser, schedule, data) and exit; reads no data\n"
           "  --strict           an unreadable image or caption stops the run (default: replaced by another\n"
           "                     pair, counted, and named in a warning)\n"
           "  --stop-after N     stop (with a checkpoint) after step N of the schedule; --max-minutes X likewise\n"
           "  --dump-batches N   write the first N batches as RUN_DIR/batches/{pixels,tokens}_K.npy and the\n"
           "                     initial model as RUN_DIR/init/, then exit (for bench/torch_train_emoji.py); VL\n"
           "                     runs also write RUN_DIR/no_decay.txt and RUN_DIR/probe/ (step-0 losses, MLM\n"
           "                     inputs, ITM negatives, gradients; momentum runs: up to 3 steps, then the\n"
           "                     model, teacher and queues; for bench/torch_train_albef.py --check)\n"
           "  --dump-compact     with --dump-batches: batches/index_K.npy (dataset indices) and each pair once\n"
           "                     in batches/dataset_{pixels,tokens}.npy, for full-length runs (no --rrc)\n"
           "Progress on stderr: step, loss, pairs/s, data-wait %%, ETA. Ctrl-C stops after the current step\n"
           "with a checkpoint (resume with --resume). A NaN/Inf loss stops the run with an error (exit 1).\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

/* The run, resolved from the config file and the flags. */
typedef struct {
    vlp_clip_config model;
    char model_desc[512];
    char init[4096];
    char data[4096], out[4096], zeroshot[4096], csv_img[128], csv_cap[128];
    char val[8][4096];
    int nval;
    vlp_train_config tc;
    int64_t epochs;
    int workers, log_every, eval_every, save_every, keep, resume, rrc, dump, dump_compact, strict, print_config;
    int64_t stop_after;
    double max_minutes;
    /* VL runs ("family" in the config) */
    int vl;
    vlp_vl_config vlc;
    char vocab[4096];
} run_cfg;

static int fail_usage(const char *msg, const char *what) {
    fprintf(stderr, "vlp train: %s%s%s\n", msg, what ? " " : "", what ? what : "");
    return CLI_USAGE;
}

/* model: a preset name or a config path (string), or an inline vlp flat config (object). */
static int load_model_cfg(json_t *v, run_cfg *r, const char *where) {
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        snprintf(r->model_desc, sizeof r->model_desc, "%s", s);
        if (!vlp_clip_preset(s, &r->model)) return 0;
        if (!vlp_clip_config_load(s, &r->model)) return 0;
        fprintf(stderr, "vlp train: %s: model '%s' is neither a preset nor a readable config: %s\n", where, s,
                vlp_last_error());
        return -1;
    }
    if (!json_is_object(v)) {
        fprintf(stderr, "vlp train: %s: 'model' must be a preset name, a config path or an object\n", where);
        return -1;
    }
    /* vlp_clip_config_load reads files: hand it the inline object through a temporary file */
    char tmp[] = "/tmp/vlp_model_cfg_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0 || json_dumpfd(v, fd, 0)) {
        fprintf(stderr, "vlp train: cannot write a temporary file: %s\n", strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        return -1;
    }
    close(fd);
    int rc = vlp_clip_config_load(tmp, &r->model);
    unlink(tmp);
    if (rc) {
        const char *e = vlp_last_error(), *colon = strstr(e, ": ");
        fprintf(stderr, "vlp train: %s: model: %s\n", where, colon ? colon + 2 : e);
        return -1;
    }
    snprintf(r->model_desc, sizeof r->model_desc, "inline config");
    return 0;
}

/* VL: "family" + "model" (an object of vlp_vl_config fields) + "objectives" weights. */
static int load_vl_cfg(json_t *root, run_cfg *r, const char *where) {
    static const struct {
        const char *alias, *name;
    } fam[] = {{"single_stream", "single_stream"}, {"vilt", "single_stream"}, {"dual_stream", "dual_stream"},
               {"albef", "dual_stream"}, {"mome", "mome"}, {"vlmo", "mome"}, {"captioning", "captioning"},
               {"caption", "captioning"}, {"blip", "captioning"}};
    const char *f = json_string_value(json_object_get(root, "family")), *name = NULL;
    for (size_t i = 0; f && i < sizeof fam / sizeof fam[0]; i++)
        if (!strcmp(f, fam[i].alias)) name = fam[i].name;
    if (!name) {
        fprintf(stderr, "vlp train: %s: 'family' must be single_stream (vilt), dual_stream (albef), mome (vlmo) or "
                        "captioning (blip)\n", where);
        return -1;
    }
    json_t *mo = json_object_get(root, "model");
    if (!json_is_object(mo)) {
        fprintf(stderr, "vlp train: %s: a VL run needs 'model' as an object of VL config fields\n", where);
        return -1;
    }
    json_t *copy = json_deep_copy(mo);
    json_object_set_new(copy, "family", json_string(name));
    json_t *ob = json_object_get(root, "objectives");
    if (ob) { /* weights go into the model config (w_itc, ...), where the config check sees them */
        if (!json_is_object(ob)) {
            fprintf(stderr, "vlp train: %s: 'objectives' must be an object of weights\n", where);
            json_decref(copy);
            return -1;
        }
        static const char *objs[] = {"itc", "itm", "mlm", "mim", "lm"};
        for (int i = 0; i < 5; i++) {
            char k[8];
            snprintf(k, sizeof k, "w_%s", objs[i]);
            json_object_set_new(copy, k, json_real(0));
        }
        const char *key;
        json_t *v;
        json_object_foreach(ob, key, v) {
            int ok = 0;
            for (int i = 0; i < 5; i++) ok |= !strcmp(key, objs[i]);
            if (!ok || !json_is_number(v) || json_number_value(v) < 0) {
                fprintf(stderr, "vlp train: %s: objectives.%s: %s\n", where, key,
                        ok ? "must be a weight >= 0" : "unknown objective (itc, itm, mlm, mim, lm)");
                json_decref(copy);
                return -1;
            }
            char k[64];
            snprintf(k, sizeof k, "w_%s", key);
            json_object_set_new(copy, k, json_real(json_number_value(v)));
        }
    }
    char tmp[] = "/tmp/vlp_vl_cfg_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0 || json_dumpfd(copy, fd, 0)) {
        fprintf(stderr, "vlp train: cannot write a temporary file: %s\n", strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        json_decref(copy);
        return -1;
    }
    close(fd);
    json_decref(copy);
    int rc = vlp_vl_config_load(tmp, &r->vlc);
    unlink(tmp);
    if (rc) {
        const char *e = vlp_last_error(), *colon = strstr(e, ": ");
        fprintf(stderr, "vlp train: %s: model: %s\n", where, colon ? colon + 2 : e);
        return -1;
    }
    r->vl = 1;
    snprintf(r->model_desc, sizeof r->model_desc, "%s", name);
    return 0;
}

#define get_num(o, k, out, where) cli_json_num("train", o, k, out, where)
#define get_str(o, k, out, cap, where) cli_json_str("train", o, k, out, cap, where)
#define check_keys(o, known, where) cli_json_check_keys("train", o, known, where)

static int read_config(const char *path, run_cfg *r) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        fprintf(stderr, "vlp train: %s: %s (line %d)\n", path, root ? "must be a JSON object" : je.text, je.line);
        json_decref(root);
        return -1;
    }
    static const char *known[] = {"name", "description", "model", "init", "data", "batch_size", "steps", "epochs",
                                  "accum_steps", "optimizer", "schedule", "clip_grad_norm", "loss", "seed",
                                  "log_every", "eval_every", "save_every", "keep_checkpoints", "out", "family",
                                  "objectives", "vocab", NULL};
    static const char *kdata[] = {"train", "val", "zeroshot", "workers", "csv_img_key", "csv_caption_key",
                                  "random_resized_crop", NULL};
    int rc = check_keys(root, known, path);
    json_t *v;
    if (!rc && json_object_get(root, "family")) rc = load_vl_cfg(root, r, path);
    else if (!rc && (v = json_object_get(root, "objectives"))) {
        /* a CLIP run is a dual encoder: its only objective is the contrastive loss ("loss") */
        char names[160] = "";
        const char *key;
        json_t *w;
        if (json_is_object(v))
            json_object_foreach(v, key, w) {
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : " (", key);
            }
        if (names[0]) strncat(names, ")", sizeof names - strlen(names) - 1);
        fprintf(stderr, "vlp train: %s: 'objectives'%s needs a VL 'family' (single_stream, dual_stream, mome or "
                        "captioning): without one this is a CLIP dual encoder, trained by the contrastive 'loss' "
                        "(clip or siglip) alone\n", path, names);
        rc = -1;
    } else if (!rc && (v = json_object_get(root, "model"))) rc = load_model_cfg(v, r, path);
    if (!rc) rc = get_str(root, "vocab", r->vocab, sizeof r->vocab, path);
    if (!rc) rc = get_str(root, "init", r->init, sizeof r->init, path);
    if (!rc) rc = get_str(root, "out", r->out, sizeof r->out, path);
    if (!rc && !r->out[0] && json_is_string(json_object_get(root, "name")))
        snprintf(r->out, sizeof r->out, "runs/%s", json_string_value(json_object_get(root, "name")));
    json_t *d = json_object_get(root, "data");
    if (!rc && d) {
        if (!json_is_object(d)) {
            fprintf(stderr, "vlp train: %s: 'data' must be an object\n", path);
            rc = -1;
        }
        if (!rc) rc = check_keys(d, kdata, path);
        if (!rc) rc = get_str(d, "train", r->data, sizeof r->data, path);
        if (!rc) rc = get_str(d, "zeroshot", r->zeroshot, sizeof r->zeroshot, path);
        if (!rc) rc = get_str(d, "csv_img_key", r->csv_img, sizeof r->csv_img, path);
        if (!rc) rc = get_str(d, "csv_caption_key", r->csv_cap, sizeof r->csv_cap, path);
        double w = r->workers;
        if (!rc) rc = get_num(d, "workers", &w, path);
        r->workers = (int)w;
        json_t *rr = json_object_get(d, "random_resized_crop");
        if (rr) r->rrc = json_is_true(rr);
        json_t *val = json_object_get(d, "val");
        if (!rc && val) {
            if (json_is_string(val)) val = json_pack("[O]", val);
            else json_incref(val);
            size_t i;
            json_t *e;
            json_array_foreach(val, i, e) {
                if (!json_is_string(e) || r->nval == 8) {
                    fprintf(stderr, "vlp train: %s: data.val must be up to 8 strings\n", path);
                    rc = -1;
                    break;
                }
                snprintf(r->val[r->nval++], sizeof r->val[0], "%s", json_string_value(e));
            }
            json_decref(val);
        }
    }
    double x;
    vlp_train_config *t = &r->tc;
#define NUM(obj, key, field, type)                                 \
    if (!rc) {                                                     \
        x = (double)t->field;                                      \
        rc = get_num(obj, key, &x, path);                          \
        t->field = (type)x;                                        \
    }
    NUM(root, "batch_size", batch_size, int)
    NUM(root, "steps", steps, int64_t)
    NUM(root, "accum_steps", accum_steps, int)
    NUM(root, "clip_grad_norm", clip_norm, float)
    NUM(root, "seed", seed, uint64_t)
    if (!rc) rc = cli_json_optimizer("train", root, path, t);
#undef NUM
    if (!rc) {
        x = (double)r->epochs;
        rc = get_num(root, "epochs", &x, path);
        r->epochs = (int64_t)x;
    }
    struct {
        const char *k;
        int *f;
    } ints[] = {{"log_every", &r->log_every}, {"eval_every", &r->eval_every}, {"save_every", &r->save_every},
                {"keep_checkpoints", &r->keep}};
    for (int i = 0; i < 4 && !rc; i++) {
        x = *ints[i].f;
        rc = get_num(root, ints[i].k, &x, path);
        *ints[i].f = (int)x;
    }
    json_t *l = json_object_get(root, "loss");
    if (!rc && l) {
        const char *ls = json_string_value(l);
        if (ls && !strcmp(ls, "clip")) t->loss = VLP_ITC_CLIP;
        else if (ls && !strcmp(ls, "siglip")) t->loss = VLP_ITC_SIGLIP;
        else {
            fprintf(stderr, "vlp train: %s: loss must be \"clip\" or \"siglip\"\n", path);
            rc = -1;
        }
    }
    json_decref(root);
    return rc;
}

/* ---- progress, evaluation ----------------------------------------------------------------- */

typedef struct {
    run_cfg *r;
    double t0, last_draw;
    int tty;
    int64_t first_step;
    int stopped;
    vlp_dataset *val[8];
    int nval;
    vlp_tokenizer *tok; /* VL runs */
    vlp_loader *ld;
    int64_t skipped;    /* bad pairs already warned about */
} run_ctx;

/* The loader's tokenize callbacks: a CLIP model's text (BPE zero padded, or WordPiece [CLS] text
 * [SEP] [PAD]...); a VL model's [CLS] text [SEP] [PAD]... by either tokenizer. */
static int clip_tokenize(void *ctx, const char *text, int T, int32_t *ids) { return vlp_clip_tokenize(ctx, text, T, ids); }

static int wp_tokenize(void *ctx, const char *text, int T, int32_t *ids) {
    int n = vlp_tokenizer_encode_pair(ctx, text, NULL, T, ids, NULL, NULL);
    return n < 0 ? n : 0;
}

static int on_step(void *ctx, const vlp_train_stats *st, double pps, double wait) {
    run_ctx *c = ctx;
    double now = cli_now(), el = now - c->t0;
    int64_t sk = c->ld ? vlp_loader_skipped(c->ld) : 0;
    if (sk > c->skipped) { /* the loader replaced unreadable pairs (fatal with --strict) */
        fprintf(stderr, "%svlp train: warning: step %lld: %lld unreadable pair%s replaced (%lld in all; last: %s)\n",
                c->tty ? "\n" : "", (long long)st->step, (long long)(sk - c->skipped), sk - c->skipped == 1 ? "" : "s",
                (long long)sk, vlp_loader_last_skip_error(c->ld));
        c->skipped = sk;
    }
    int64_t total = c->r->tc.steps, done = st->step - c->first_step;
    double eta = done > 0 ? el / (double)done * (double)(total - st->step) : 0;
    int last = st->step == total;
    if (c->tty ? (now - c->last_draw >= 0.5 || last) : (st->step % c->r->log_every == 0 || last)) {
        c->last_draw = now;
        char parts[160] = "";
        for (int i = 0, o = 0; i < st->n_parts && o < (int)sizeof parts; i++)
            o += snprintf(parts + o, sizeof parts - (size_t)o, "%s%s %.3f", i ? " " : " (", st->part_name[i],
                          st->part_loss[i]);
        if (st->n_parts) strncat(parts, ")", sizeof parts - strlen(parts) - 1);
        fprintf(stderr, "%sstep %lld/%lld  loss %.4f%s  lr %.2e  %.0f pairs/s  data-wait %.0f%%  ETA %02d:%02d%s",
                c->tty ? "\r" : "", (long long)st->step, (long long)total, st->loss, parts, st->lr, pps, 100 * wait,
                (int)(eta / 60), (int)fmod(eta, 60), c->tty && !last ? "   " : "\n");
        fflush(stderr);
    }
    if ((c->r->stop_after && st->step >= c->r->stop_after) ||
        (c->r->max_minutes > 0 && el >= 60 * c->r->max_minutes && !last)) {
        fprintf(stderr, "%svlp train: stopping at step %lld of %lld (%s); continue with --resume\n",
                c->tty ? "\n" : "", (long long)st->step, (long long)total,
                c->r->stop_after && st->step >= c->r->stop_after ? "--stop-after" : "--max-minutes");
        c->stopped = 1;
        return 1;
    }
    if (cli_interrupted()) {
        fprintf(stderr, "%svlp train: interrupted at step %lld; saving a checkpoint (continue with --resume)\n",
                c->tty ? "\n" : "", (long long)st->step);
        return 1;
    }
    return 0;
}

static const char *base_name(const char *spec, char *buf, size_t cap) {
    const char *s = strrchr(spec, '/');
    snprintf(buf, cap, "%s", s ? s + 1 : spec);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

static int on_eval(void *ctx, vlp_trainer *t, int64_t step, char *buf, size_t cap) {
    run_ctx *c = ctx;
    json_t *o = json_object();
    int rc = 0;
    if (c->tty) fprintf(stderr, "\n");
    for (int i = 0; i < c->nval && !rc; i++) {
        vlp_retrieval_result res;
        char name[256], key[300];
        base_name(c->r->val[i], name, sizeof name);
        if (vlp_trainer_vl_model(t) ? (rc = vlp_vl_eval_retrieval(vlp_trainer_vl_model(t), wp_tokenize, c->tok,
                                                                  c->val[i], 256, 0, &res, NULL))
                                    : (rc = vlp_eval_retrieval(vlp_trainer_model(t), c->val[i], 256, &res))) {
            fprintf(stderr, "vlp train: evaluation on %s: %s\n", c->r->val[i], vlp_last_error());
            break;
        }
#define PUT(field, val)                                        \
    snprintf(key, sizeof key, "%s/%s", name, field);           \
    json_object_set_new(o, key, json_real(val));
        PUT("t2i_r1", res.t2i.r1)
        PUT("t2i_r5", res.t2i.r5)
        PUT("t2i_r10", res.t2i.r10)
        PUT("i2t_r1", res.i2t.r1)
        PUT("i2t_r5", res.i2t.r5)
        PUT("i2t_r10", res.i2t.r10)
        PUT("t2i_mean_rank", res.t2i.mean_rank)
        PUT("i2t_mean_rank", res.i2t.mean_rank)
#undef PUT
        fprintf(stderr, "  eval step %lld %s (%lld pairs): t2i R@1/5/10 %.1f/%.1f/%.1f  i2t %.1f/%.1f/%.1f\n",
                (long long)step, name, (long long)res.t2i.queries, 100 * res.t2i.r1, 100 * res.t2i.r5,
                100 * res.t2i.r10, 100 * res.i2t.r1, 100 * res.i2t.r5, 100 * res.i2t.r10);
    }
    if (!rc && c->r->zeroshot[0] && vlp_trainer_model(t)) {
        vlp_zeroshot_result z;
        if ((rc = vlp_eval_zeroshot_file(vlp_trainer_model(t), c->r->zeroshot, 256, &z))) {
            fprintf(stderr, "vlp train: zero-shot evaluation: %s\n", vlp_last_error());
        } else {
            json_object_set_new(o, "zeroshot/top1", json_real(z.top1));
            json_object_set_new(o, "zeroshot/top5", json_real(z.top5));
            fprintf(stderr, "  eval step %lld zero-shot (%lld images, %d classes): top-1 %.1f%%\n", (long long)step,
                    (long long)z.n, z.classes, 100 * z.top1);
        }
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (s) snprintf(buf, cap, "%s", s);
    free(s);
    json_decref(o);
    return rc;
}

/* ---- --dump-batches --------------------------------------------------------------------------- */

/* VL runs: one forward + backward of the pre-training graph on the first batch from the initial
 * weights (the trainer's mask rule, ids != [PAD]), so that a re-implementation can check its
 * architecture on the parts that are deterministic once the random draws are fixed. RUN/probe/
 * gets losses.json (total and each objective), the MLM inputs the graph drew (mlm_ids.npy,
 * mlm_labels.npy [B, T]), the ITM negatives (neg_img.npy: an image per text, neg_txt.npy: a text
 * per image) and every parameter gradient (grads.safetensors, vlp's names). */
#define PROBE_STEPS 3 /* momentum runs: optimiser steps the probe replays */

static int save_queue(const char *dir, const char *tag, const vlp_vl_pretrain *pt) {
    char p[4400];
    int64_t s[2] = {pt->img_queue->shape[0], pt->img_queue->shape[1]};
    snprintf(p, sizeof p, "%s/queue_img%s.npy", dir, tag);
    int rc = vlp_npy_save(p, VLP_F32, 2, s, pt->img_queue->data);
    snprintf(p, sizeof p, "%s/queue_txt%s.npy", dir, tag);
    return rc ? rc : vlp_npy_save(p, VLP_F32, 2, s, pt->txt_queue->data);
}

/* Momentum runs: the probe goes on for nb steps (the first already forward + backward in g) as
 * the trainer does them: AdamW at the scheduled rate, the logit-scale clamp, the queue push and
 * the teacher's EMA; steps 1.. write their draws (mlm_ids_K.npy, mlm_labels_K.npy, neg_img_K.npy,
 * neg_txt_K.npy), steps.json the losses and rate of every step, and after/ the model, the teacher
 * (after/teacher/) and the queues after the last step (after/queue_{img,txt}.npy, queue_pos). */
static int probe_steps(run_cfg *r, vlp_vl *m, vlp_vl *teacher, vlp_graph *g, vlp_vl_pretrain *pt, const uint8_t *cont,
                       const vlp_batch *bs, int nb) {
    const vlp_vl_config *c = &m->cfg;
    int B = bs[0].n, T = c->max_text_len;
    vlp_adamw_config oc = {.lr = r->tc.lr, .beta1 = r->tc.beta1, .beta2 = r->tc.beta2, .eps = r->tc.eps,
                           .weight_decay = r->tc.weight_decay, .clip_norm = 0};
    vlp_adamw *opt = vlp_adamw_new(m->params, &oc);
    int32_t *mask = malloc((size_t)B * T * sizeof *mask);
    json_t *steps = json_array();
    int rc = opt && mask ? VLP_OK : VLP_ERR_NOMEM;
    char p[4400];
    for (int s = 0; s < nb && !rc; s++) {
        if (s > 0) {
            for (int64_t i = 0; i < (int64_t)B * T; i++) mask[i] = bs[s].tokens[i] != c->pad_id;
            rc = vlp_vl_pretrain_fill(m, pt, bs[s].pixels, bs[s].tokens, mask, cont, r->tc.seed + (uint64_t)s);
            if (!rc) {
                vlp_graph_set_training(g, 1, (uint64_t)s);
                vlp_params_zero_grad(m->params);
                rc = vlp_graph_forward(g);
            }
            if (!rc) rc = vlp_graph_backward(g, NULL);
            int64_t sbt[2] = {B, T}, sb[1] = {B};
            struct { const char *name; vlp_tensor *t; int nd; int64_t *sh; } out[4] = {
                {"mlm_ids", pt->mlm_ids, 2, sbt}, {"mlm_labels", pt->mlm_labels, 2, sbt},
                {"neg_img", pt->neg_img, 1, sb}, {"neg_txt", pt->neg_txt, 1, sb}};
            for (int k = 0; k < 4 && !rc; k++) {
                if (!out[k].t) continue;
                snprintf(p, sizeof p, "%s/probe/%s_%d.npy", r->out, out[k].name, s);
                rc = vlp_npy_save(p, VLP_I32, out[k].nd, out[k].sh, out[k].t->data);
            }
        }
        if (rc) break;
        float lr = vlp_lr_warmup_cosine(s, r->tc.warmup, r->tc.steps, r->tc.lr, r->tc.min_lr);
        json_t *o = json_object();
        vlp_tensor *ls[4] = {pt->loss, pt->loss_itc, pt->loss_itm, pt->loss_mlm};
        const char *names[4] = {"loss", "itc", "itm", "mlm"};
        for (int i = 0; i < 4; i++)
            if (ls[i]) json_object_set_new(o, names[i], json_real(*(float *)ls[i]->data));
        json_object_set_new(o, "lr", json_real(lr));
        json_array_append_new(steps, o);
        rc = vlp_adamw_step(opt, lr, 1.0f, NULL);
        if (!rc && m->logit_scale) { /* the trainer's clamp */
            float *x = m->logit_scale->data;
            *x = *x > r->tc.max_logit_scale ? r->tc.max_logit_scale : *x < 0 ? 0 : *x;
        }
        if (!rc) rc = vlp_vl_pretrain_after_step(pt, teacher, m);
    }
    snprintf(p, sizeof p, "%s/probe/after", r->out);
    if (!rc) rc = vlp_vl_save(m, p);
    snprintf(p, sizeof p, "%s/probe/after/teacher", r->out);
    if (!rc) rc = vlp_vl_save(teacher, p);
    snprintf(p, sizeof p, "%s/probe/after", r->out);
    if (!rc && pt->img_queue) rc = save_queue(p, "", pt);
    if (!rc) {
        json_t *o = json_object();
        json_object_set_new(o, "steps", steps);
        steps = NULL;
        json_object_set_new(o, "queue_pos", json_integer(pt->queue_pos));
        json_object_set_new(o, "momentum", json_real(c->momentum));
        snprintf(p, sizeof p, "%s/probe/steps.json", r->out);
        rc = json_dump_file(o, p, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) ? VLP_ERR_IO : 0;
        json_decref(o);
    }
    json_decref(steps);
    vlp_adamw_free(opt);
    free(mask);
    return rc;
}

static int dump_vl_probe(run_cfg *r, vlp_vl *m, const uint8_t *cont, const vlp_batch *b, int nb) {
    const vlp_vl_config *c = &m->cfg;
    int B = b->n, T = c->max_text_len, n = vlp_params_count(m->params);
    char p[4400];
    snprintf(p, sizeof p, "%s/probe", r->out);
    if (mkdir(p, 0777) && errno != EEXIST) {
        fprintf(stderr, "vlp train: %s: %s\n", p, strerror(errno));
        return CLI_FAIL;
    }
    int32_t *mask = malloc((size_t)B * T * sizeof *mask);
    vlp_st_entry *e = calloc((size_t)n, sizeof *e);
    vlp_graph *g = vlp_graph_new();
    vlp_vl_pretrain pt;
    vlp_vl *teacher = c->momentum > 0 ? vlp_vl_momentum_teacher(m) : NULL;
    int rc = mask && e && g && (teacher || !(c->momentum > 0)) ? vlp_vl_pretrain_graph(g, m, teacher, B, T, &pt)
                                                               : VLP_ERR_NOMEM;
    char why[4500] = ""; /* errors found here; the library's go to vlp_last_error() */
    if (rc == VLP_ERR_NOMEM && (!mask || !e || !g)) snprintf(why, sizeof why, "out of memory");
    for (int64_t i = 0; !rc && i < (int64_t)B * T; i++) mask[i] = b->tokens[i] != c->pad_id;
    if (!rc) rc = vlp_graph_build(g, pt.loss, VLP_BUILD_TRAIN);
    if (!rc) rc = vlp_vl_pretrain_fill(m, &pt, b->pixels, b->tokens, mask, cont, r->tc.seed);
    snprintf(p, sizeof p, "%s/probe", r->out);
    if (!rc && pt.img_queue) rc = save_queue(p, "_init", &pt); /* the random unit vectors it starts with */
    if (!rc) {
        vlp_graph_set_training(g, 1, 0);
        vlp_params_zero_grad(m->params);
        rc = vlp_graph_forward(g);
    }
    if (!rc) rc = vlp_graph_backward(g, NULL);
    int64_t sbt[2] = {B, T}, sb[1] = {B};
    if (!rc && pt.mlm_ids) {
        snprintf(p, sizeof p, "%s/probe/mlm_ids.npy", r->out);
        rc = vlp_npy_save(p, VLP_I32, 2, sbt, pt.mlm_ids->data);
        snprintf(p, sizeof p, "%s/probe/mlm_labels.npy", r->out);
        if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, sbt, pt.mlm_labels->data);
    }
    if (!rc && pt.neg_img) {
        snprintf(p, sizeof p, "%s/probe/neg_img.npy", r->out);
        rc = vlp_npy_save(p, VLP_I32, 1, sb, pt.neg_img->data);
        snprintf(p, sizeof p, "%s/probe/neg_txt.npy", r->out);
        if (!rc) rc = vlp_npy_save(p, VLP_I32, 1, sb, pt.neg_txt->data);
    }
    for (int i = 0; !rc && i < n; i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        e[i].name = t->name;
        e[i].data = t->grad;
        e[i].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) e[i].shape[k] = t->shape[k];
        e[i].store_as = VLP_ST_F32;
        if (!t->grad) {
            snprintf(why, sizeof why, "parameter %s has no gradient", t->name);
            rc = VLP_ERR_ARG;
        }
    }
    snprintf(p, sizeof p, "%s/probe/grads.safetensors", r->out);
    if (!rc) rc = vlp_st_save(p, e, n, NULL);
    if (!rc) {
        json_t *o = json_object();
        vlp_tensor *ls[6] = {pt.loss, pt.loss_itc, pt.loss_itm, pt.loss_mlm, pt.loss_mim, pt.loss_lm};
        const char *names[6] = {"loss", "itc", "itm", "mlm", "mim", "lm"};
        for (int i = 0; i < 6; i++)
            if (ls[i]) json_object_set_new(o, names[i], json_real(*(float *)ls[i]->data));
        json_object_set_new(o, "batch", json_integer(B));
        json_object_set_new(o, "text_len", json_integer(T));
        snprintf(p, sizeof p, "%s/probe/losses.json", r->out);
        rc = json_dump_file(o, p, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) ? VLP_ERR_IO : 0;
        if (rc) snprintf(why, sizeof why, "%s: cannot write", p);
        json_decref(o);
    }
    /* the AdamW groups: parameters without weight decay, one name a line */
    snprintf(p, sizeof p, "%s/no_decay.txt", r->out);
    FILE *f = rc ? NULL : fopen(p, "w");
    if (!rc && !f) {
        snprintf(why, sizeof why, "%s: %s", p, strerror(errno));
        rc = VLP_ERR_IO;
    }
    for (int i = 0; f && i < n; i++)
        if (vlp_params_get(m->params, i)->flags & VLP_FLAG_NO_DECAY) fprintf(f, "%s\n", vlp_params_get(m->params, i)->name);
    if (f && fclose(f)) {
        snprintf(why, sizeof why, "%s: %s", p, strerror(errno));
        rc = VLP_ERR_IO;
    }
    if (!rc && teacher) rc = probe_steps(r, m, teacher, g, &pt, cont, b, nb);
    vlp_graph_free(g);
    vlp_vl_free(teacher);
    vlp_params_zero_grad(m->params);
    free(mask);
    free(e);
    if (rc) {
        fprintf(stderr, "vlp train: --dump-batches probe: %s\n", why[0] ? why : vlp_last_error());
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* The probe's batches, copied (the loader reuses its buffers). */
typedef struct {
    vlp_batch b[PROBE_STEPS];
    int n;
} probe_set;

static int probe_keep(probe_set *ps, const vlp_batch *b, int64_t npx, int T) {
    vlp_batch *d = &ps->b[ps->n];
    *d = *b;
    d->pixels = malloc((size_t)(b->n * npx) * sizeof(float));
    d->tokens = malloc((size_t)b->n * (size_t)T * sizeof(int32_t));
    d->index = NULL;
    ps->n++;
    if (!d->pixels || !d->tokens) {
        fprintf(stderr, "vlp train: out of memory for the probe's batches\n");
        return -2; /* reported */
    }
    memcpy((float *)d->pixels, b->pixels, (size_t)(b->n * npx) * sizeof(float));
    memcpy((int32_t *)d->tokens, b->tokens, (size_t)b->n * (size_t)T * sizeof(int32_t));
    return VLP_OK;
}

static void probe_set_free(probe_set *ps) {
    for (int i = 0; i < ps->n; i++) free((void *)ps->b[i].pixels), free((void *)ps->b[i].tokens);
    ps->n = 0;
}

/* CLIP runs pass m, VL runs vm (and the WordPiece continuation table for whole-word MLM). */
static int dump_batches(run_cfg *r, vlp_clip *m, vlp_vl *vm, const uint8_t *cont, vlp_dataset *ds,
                        vlp_loader *ld, const vlp_loader_options *lo) {
    char p[4400];
    snprintf(p, sizeof p, "%s/batches", r->out);
    mkdir(r->out, 0777);
    if (mkdir(p, 0777) && errno != EEXIST) {
        fprintf(stderr, "vlp train: %s: %s\n", p, strerror(errno));
        return CLI_FAIL;
    }
    snprintf(p, sizeof p, "%s/init", r->out);
    if (vm ? vlp_vl_save(vm, p) : vlp_clip_save(m, p)) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    struct {
        int image_size, context_length;
    } cfg = {vm ? vm->cfg.image_size : m->cfg.image_size, vm ? vm->cfg.max_text_len : m->cfg.context_length},
      *c = &cfg;
    /* Compact: a 600-step run of batch 256 would be 7.5 GB of per-batch pixels (and 150k image
     * decodes); without random crops a pair always preprocesses the same, so store each pair
     * once (one unshuffled pass) plus the order (an index-only loader with the run's options). */
    int64_t npx = 3LL * c->image_size * c->image_size, nds = vlp_dataset_size(ds);
    int rc = 0;
    if (r->dump_compact) {
        if (r->rrc) {
            fprintf(stderr, "vlp train: --dump-compact needs fixed preprocessing (no random resized crop)\n");
            return CLI_USAGE;
        }
        vlp_loader_options o = *lo;
        o.index_only = 1;
        vlp_loader *order = vlp_loader_new(ds, &o);
        int32_t *idx = malloc((size_t)o.batch_size * sizeof *idx);
        for (int k = 0; k < r->dump && order && idx && !rc; k++) {
            vlp_batch b;
            if ((rc = vlp_loader_next(order, &b))) break;
            for (int i = 0; i < b.n; i++) idx[i] = (int32_t)b.index[i];
            int64_t sh[1] = {b.n};
            snprintf(p, sizeof p, "%s/batches/index_%04d.npy", r->out, k);
            rc = vlp_npy_save(p, VLP_I32, 1, sh, idx);
        }
        if (!order || !idx) rc = -1;
        free(idx);
        vlp_loader_free(order);
        /* every pair once, in dataset order */
        o = *lo;
        o.shuffle = 0;
        o.drop_last = 0;
        o.batch_size = 256;
        vlp_loader *all = rc ? NULL : vlp_loader_new(ds, &o);
        float *dpx = all ? calloc((size_t)(nds * npx), sizeof *dpx) : NULL;
        int32_t *dtok = dpx ? calloc((size_t)(nds * c->context_length), sizeof *dtok) : NULL;
        if (!rc && !dtok) rc = -1;
        for (int64_t k = 0, nb = all ? vlp_loader_batches_per_epoch(all) : 0; k < nb && !rc; k++) {
            vlp_batch b;
            if ((rc = vlp_loader_next(all, &b))) break;
            for (int i = 0; i < b.n; i++) {
                memcpy(dpx + b.index[i] * npx, b.pixels + i * npx, (size_t)npx * sizeof *dpx);
                memcpy(dtok + b.index[i] * c->context_length, b.tokens + (int64_t)i * c->context_length,
                       (size_t)c->context_length * sizeof *dtok);
            }
        }
        if (!rc && vlp_loader_skipped(all) > 0) { /* the order loader cannot know the stand-ins */
            fprintf(stderr, "vlp train: --dump-compact: %lld unreadable pair%s (%s); fix or drop them first\n",
                    (long long)vlp_loader_skipped(all), vlp_loader_skipped(all) == 1 ? "" : "s",
                    vlp_loader_last_skip_error(all));
            rc = -2;
        }
        if (!rc) {
            int64_t sp[4] = {nds, 3, c->image_size, c->image_size}, st[2] = {nds, c->context_length};
            snprintf(p, sizeof p, "%s/batches/dataset_pixels.npy", r->out);
            rc = vlp_npy_save(p, VLP_F32, 4, sp, dpx);
            snprintf(p, sizeof p, "%s/batches/dataset_tokens.npy", r->out);
            if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, st, dtok);
        }
        free(dpx);
        free(dtok);
        vlp_loader_free(all);
    }
    /* the VL probe runs on the run's first batch (momentum runs: the first PROBE_STEPS) */
    probe_set ps = {.n = 0};
    int nprobe = !vm ? 0 : vm->cfg.momentum > 0 ? (r->dump < PROBE_STEPS ? r->dump : PROBE_STEPS) : 1;
    if (!rc && vm && r->dump_compact) {
        for (int k = 0; k < nprobe && !rc; k++) {
            vlp_batch b;
            if (!(rc = vlp_loader_next(ld, &b))) rc = probe_keep(&ps, &b, npx, c->context_length);
        }
        int bad = !rc && dump_vl_probe(r, vm, cont, ps.b, ps.n);
        probe_set_free(&ps);
        if (bad) return CLI_FAIL;
    }
    for (int k = 0; k < r->dump && !rc && !r->dump_compact; k++) {
        vlp_batch b;
        if ((rc = vlp_loader_next(ld, &b))) break;
        int64_t sp[4] = {b.n, 3, c->image_size, c->image_size}, st[2] = {b.n, c->context_length};
        snprintf(p, sizeof p, "%s/batches/pixels_%04d.npy", r->out, k);
        rc = vlp_npy_save(p, VLP_F32, 4, sp, b.pixels);
        snprintf(p, sizeof p, "%s/batches/tokens_%04d.npy", r->out, k);
        if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, st, b.tokens);
        if (!rc && k < nprobe) rc = probe_keep(&ps, &b, npx, c->context_length);
        if (!rc && k == nprobe - 1 && dump_vl_probe(r, vm, cont, ps.b, ps.n)) {
            probe_set_free(&ps);
            return CLI_FAIL;
        }
    }
    probe_set_free(&ps);
    if (rc) {
        if (rc != -2)
            fprintf(stderr, "vlp train: %s\n", rc == -1 ? "out of memory for --dump-compact" : vlp_last_error());
        return CLI_FAIL;
    }
    printf("wrote %d batches of %d pairs to %s/batches and the initial model to %s/init\n", r->dump,
           r->tc.batch_size, r->out, r->out);
    return CLI_OK;
}

/* The run's loader (seeded shuffle, full batches, unreadable pairs replaced unless --strict);
 * NULL, with the error printed, when it cannot give one full batch. */
static vlp_loader *open_loader(run_cfg *r, vlp_dataset *ds, int image_size, int context_length,
                               vlp_tokenize_fn tokenize, void *tokenize_ctx, vlp_loader_options *lo) {
    *lo = (vlp_loader_options){.batch_size = r->tc.batch_size, .image_size = image_size,
                               .context_length = context_length, .seed = r->tc.seed, .shuffle = 1,
                               .drop_last = 1, .workers = r->workers, .random_resized_crop = r->rrc,
                               .replace_bad_images = !r->strict, .tokenize = tokenize,
                               .tokenize_ctx = tokenize_ctx};
    vlp_loader *ld = vlp_loader_new(ds, lo);
    if (!ld) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        return NULL;
    }
    if (vlp_loader_batches_per_epoch(ld) <= 0) {
        fprintf(stderr, "vlp train: %s has %lld pairs, fewer than one batch of %d\n", r->data,
                (long long)vlp_dataset_size(ds), r->tc.batch_size);
        vlp_loader_free(ld);
        return NULL;
    }
    return ld;
}

/* steps from --epochs, warm-up no longer than the run. */
static int run_length(run_cfg *r, vlp_loader *ld) {
    if (r->epochs) r->tc.steps = r->epochs * vlp_loader_batches_per_epoch(ld);
    if (r->tc.steps <= 0) {
        fprintf(stderr, "vlp train: the run needs a length: --steps N or --epochs N\n");
        return CLI_USAGE;
    }
    if (r->tc.warmup > r->tc.steps) r->tc.warmup = r->tc.steps;
    return CLI_OK;
}

/* ---- VL runs ------------------------------------------------------------------------------ */

/* The run loop around a built trainer (CLIP or VL): progress, Ctrl-C, eval, exit status. */
static int run_trainer(run_cfg *r, run_ctx *ctx, vlp_trainer *t, vlp_loader *ld) {
    vlp_batch_source src;
    vlp_batch_source_from_loader(&src, ld);
    ctx->ld = ld;
    char steps_s[32];
    snprintf(steps_s, sizeof steps_s, "%lld", (long long)r->tc.steps);
    const char *meta[] = {"data", r->data, "total_steps", steps_s, NULL};
    vlp_run_options o = {.run_dir = r->out, .log_every = r->log_every, .save_every = r->save_every,
                         .eval_every = r->eval_every, .keep_checkpoints = r->keep, .resume = r->resume,
                         .save_final = 1, .on_step = on_step, .on_eval = (ctx->nval || r->zeroshot[0]) ? on_eval : NULL,
                         .ctx = ctx, .meta = meta};
    ctx->tty = cli_progress_redraw();
    ctx->t0 = cli_now();
    if (r->resume) {
        char ck[4400];
        if (vlp_train_latest_checkpoint(r->out, ck, sizeof ck)) {
            fprintf(stderr, "vlp train: %s\n", vlp_last_error());
            return CLI_FAIL;
        }
        fprintf(stderr, "vlp train: resuming from %s\n", ck);
        const char *s = strrchr(ck, '_');
        ctx->first_step = s ? atoll(s + 1) : 0;
    }
    cli_sigint_catch();
    int trc = vlp_train_run(t, &src, &o);
    cli_sigint_restore();
    if (trc) {
        fprintf(stderr, "%svlp train: %s\n", ctx->tty ? "\n" : "", vlp_last_error());
        return CLI_FAIL;
    }
    if (cli_interrupted() && vlp_trainer_step_count(t) < r->tc.steps) return CLI_FAIL; /* Ctrl-C before the end */
    if (ctx->stopped) {
        printf("stopped after %lld of %lld steps; checkpoint in %s/checkpoints (resume with --resume)\n",
               (long long)vlp_trainer_step_count(t), (long long)r->tc.steps, r->out);
        return CLI_OK;
    }
    printf("trained %lld steps; model in %s/model, metrics in %s/metrics.jsonl\n", (long long)r->tc.steps, r->out,
           r->out);
    return CLI_OK;
}

/* A fresh VL model's vocabulary size and special ids come from its tokenizer ([CLS] starts a
 * caption, [SEP] ends it); -1 after a message naming the vocabulary and the missing tokens. */
static int vl_apply_vocab(run_cfg *r, const vlp_tokenizer *tok) {
    vlp_vl_config *c = &r->vlc;
    if (vlp_vl_config_set_tokenizer(c, tok, r->vocab[0] ? r->vocab : NULL) || vlp_vl_config_validate(c)) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        return -1;
    }
    return 0;
}

/* --print-config: the run as resolved from RUN.json and the flags, by the code a run uses, as
 * one JSON object on stdout; nothing is read but the config (and a VL run's vocabulary). */
static int print_config(run_cfg *r) {
    json_t *o = json_object(), *m = NULL;
    if (r->vl && !r->init[0]) {
        vlp_tokenizer *tok = vlp_tokenizer_load(r->vlc.tokenizer, r->vocab[0] ? r->vocab : NULL);
        if (!tok) {
            fprintf(stderr, "vlp train: %s\n", vlp_last_error());
            json_decref(o);
            return CLI_FAIL;
        }
        int bad = vl_apply_vocab(r, tok);
        vlp_tokenizer_free(tok);
        char *js = bad ? NULL : vlp_vl_config_dumps(&r->vlc);
        m = js ? json_loads(js, 0, NULL) : NULL;
        free(js);
        if (!m) {
            json_decref(o);
            return CLI_FAIL;
        }
        json_object_set(o, "family", json_object_get(m, "family"));
        json_object_set(o, "objectives", json_object_get(m, "objectives"));
    } else if (!r->vl && !r->init[0]) {
        const vlp_clip_config *c = &r->model;
        vlp_tokenizer *tok = vlp_tokenizer_load(c->tokenizer == VLP_TOKENIZER_WORDPIECE ? VLP_TOKENIZER_WORDPIECE
                                                                                         : VLP_TOKENIZER_CLIP_BPE,
                                                r->vocab[0] ? r->vocab : NULL);
        int bad = !tok || vlp_clip_config_set_tokenizer(&r->model, tok); /* the vocabulary's size, as a run */
        vlp_tokenizer_free(tok);
        if (bad) {
            fprintf(stderr, "vlp train: %s\n", vlp_last_error());
            json_decref(o);
            return CLI_FAIL;
        }
        m = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "name", r->model_desc,
                      "embed_dim", c->embed_dim, "image_size", c->image_size, "patch_size", c->patch_size,
                      "vision_width", c->vision_width, "vision_layers", c->vision_layers, "vision_heads",
                      c->vision_heads, "vision_mlp", c->vision_mlp, "context_length", c->context_length, "vocab_size",
                      c->vocab_size, "text_width", c->text_width, "text_layers", c->text_layers, "text_heads",
                      c->text_heads, "text_mlp", c->text_mlp);
        json_object_set_new(o, "family", json_string("clip"));
        json_object_set_new(m, "tokenizer", json_string(vlp_tokenizer_kind_name(
                                                c->tokenizer == VLP_TOKENIZER_WORDPIECE ? VLP_TOKENIZER_WORDPIECE
                                                                                        : VLP_TOKENIZER_CLIP_BPE)));
    }
    if (r->init[0]) json_object_set_new(o, "init", json_string(r->init));
    if (m) json_object_set_new(o, "model", m);
    int wp = r->vl ? r->vlc.tokenizer == VLP_TOKENIZER_WORDPIECE : r->model.tokenizer == VLP_TOKENIZER_WORDPIECE;
    if (r->vl || wp)
        json_object_set_new(o, "vocab", json_string(r->vocab[0] ? r->vocab
                                                    : wp        ? "bert-base-uncased (built in)"
                                                                : "CLIP BPE (built in)"));
    json_t *val = json_array();
    for (int i = 0; i < r->nval; i++) json_array_append_new(val, json_string(r->val[i]));
    json_object_set_new(o, "data", json_pack("{s:s, s:o, s:i}", "train", r->data, "val", val, "workers", r->workers));
    json_object_set_new(o, "batch_size", json_integer(r->tc.batch_size));
    json_object_set_new(o, "accum_steps", json_integer(r->tc.accum_steps));
    json_object_set_new(o, "steps", json_integer(r->tc.steps));
    json_object_set_new(o, "epochs", json_integer(r->epochs));
    json_object_set_new(o, "seed", json_integer((json_int_t)r->tc.seed));
    json_object_set_new(o, "optimizer", json_pack("{s:s, s:f, s:[f, f], s:f, s:f}", "name", "adamw", "lr",
                                                  (double)r->tc.lr, "betas", (double)r->tc.beta1, (double)r->tc.beta2,
                                                  "eps", (double)r->tc.eps, "weight_decay", (double)r->tc.weight_decay));
    json_object_set_new(o, "schedule", json_pack("{s:s, s:I, s:f}", "name", "warmup_cosine", "warmup",
                                                 (json_int_t)r->tc.warmup, "min_lr", (double)r->tc.min_lr));
    json_object_set_new(o, "clip_grad_norm", json_real((double)r->tc.clip_norm));
    if (!r->vl) json_object_set_new(o, "loss", json_string(r->tc.loss == VLP_ITC_SIGLIP ? "siglip" : "clip"));
    json_object_set_new(o, "out", json_string(r->out));
    char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7)); /* float fields */
    json_decref(o);
    if (!txt) return CLI_FAIL;
    puts(txt);
    free(txt);
    return CLI_OK;
}

static int run_vl(run_cfg *r) {
    int rc = CLI_FAIL;
    run_ctx ctx = {.r = r};
    vlp_vl *m = NULL;
    vlp_dataset *ds = NULL;
    vlp_loader *ld = NULL;
    vlp_trainer *t = NULL;
    uint8_t *cont = NULL;
    vlp_tokenizer *tok = NULL;
    const char *vocab = r->vocab[0] ? r->vocab : NULL;
    if (r->init[0]) { /* the initial model's own tokenizer, unless "vocab" names another */
        if ((m = vlp_vl_load(r->init))) tok = vlp_vl_tokenizer_load(&m->cfg, r->init, vocab);
    } else if ((tok = vlp_tokenizer_load(r->vlc.tokenizer, vocab))) {
        /* the model config's tokenizer ("tokenizer": "wordpiece" or "clip_bpe") gives the ids */
        if (vl_apply_vocab(r, tok)) goto done; /* names the file and each missing token */
        m = vlp_vl_new(&r->vlc, r->tc.seed);
    }
    ctx.tok = tok;
    if (!m || !tok) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        goto done;
    }
    if (!(cont = vlp_tokenizer_word_flags(tok))) goto done; /* whole-word MLM */
    vlp_dataset_options dopt = {.csv_img_key = r->csv_img[0] ? r->csv_img : NULL,
                                .csv_caption_key = r->csv_cap[0] ? r->csv_cap : NULL};
    if (!(ds = vlp_dataset_open(r->data, &dopt))) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        goto done;
    }
    vlp_loader_options lo;
    if (!(ld = open_loader(r, ds, m->cfg.image_size, m->cfg.max_text_len, wp_tokenize, tok, &lo))) goto done;
    if (r->dump) {
        rc = dump_batches(r, NULL, m, cont, ds, ld, &lo);
        goto done;
    }
    if ((rc = run_length(r, ld)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    int64_t bpe = vlp_loader_batches_per_epoch(ld);
    if (!(t = vlp_trainer_new_vl(m, cont, &r->tc))) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        goto done;
    }
    if (m->cfg.embed_dim > 0)
        for (int i = 0; i < r->nval; i++)
            if (!(ctx.val[ctx.nval++] = vlp_dataset_open(r->val[i], &dopt))) {
                fprintf(stderr, "vlp train: %s\n", vlp_last_error());
                goto done;
            }
    r->zeroshot[0] = 0; /* zero-shot classification is a CLIP evaluation */
    const vlp_vl_config *c = &m->cfg;
    fprintf(stderr,
            "vlp train: %s, %.2f M parameters, objectives itc %g itm %g mlm %g mim %g lm %g; %lld pairs from %s, "
            "%lld batches of %d per epoch; %lld steps (%.2f epochs), lr %g, warm-up %lld; run dir %s\n",
            vlp_vl_family_name(c->family), vlp_vl_param_count(m) / 1e6, (double)c->w_itc, (double)c->w_itm,
            (double)c->w_mlm, (double)c->w_mim, (double)c->w_lm, (long long)vlp_dataset_size(ds), r->data,
            (long long)bpe, r->tc.batch_size, (long long)r->tc.steps, (double)r->tc.steps / (double)bpe,
            (double)r->tc.lr, (long long)r->tc.warmup, r->out);
    rc = run_trainer(r, &ctx, t, ld);
    if (rc == CLI_OK && vocab) { /* the tokenizer travels with the model */
        char mp[4200];
        snprintf(mp, sizeof mp, "%s/model", r->out);
        if (access(mp, F_OK) == 0 && vlp_vl_tokenizer_save(m->cfg.tokenizer, vocab, mp)) {
            fprintf(stderr, "vlp train: %s\n", vlp_last_error());
            rc = CLI_FAIL;
        }
    }
done:
    for (int i = 0; i < ctx.nval; i++) vlp_dataset_free(ctx.val[i]);
    vlp_trainer_free(t);
    vlp_loader_free(ld);
    vlp_dataset_free(ds);
    vlp_vl_free(m);
    vlp_tokenizer_free(tok);
    free(cont);
    return rc;
}

/* ---- main --------------------------------------------------------------------------------------- */

int vlp_cmd_train(int argc, char **argv) {
    run_cfg *r = calloc(1, sizeof *r);
    if (!r) return CLI_FAIL;
    vlp_train_config_default(&r->tc);
    r->log_every = 10;
    int have_model = 0, rc = CLI_USAGE;
    const char *config = NULL;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            free(r);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--config")) {
            if (!(config = cli_value("train", argc, argv, &i))) goto out;
        }
    }
    if (config) {
        if (read_config(config, r)) {
            rc = access(config, R_OK) ? CLI_FAIL : CLI_USAGE;
            goto out;
        }
        have_model = r->model_desc[0] != 0;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        double d;
#define VAL() if (!(v = cli_value("train", argc, argv, &i))) goto out
#define INT(flag, lo, hi, dst)                                                   \
    else if (!strcmp(a, flag)) {                                                 \
        VAL();                                                                   \
        if (!cli_int("train", flag, v, lo, hi, &l)) goto out;                    \
        dst = l;                                                                 \
    }
#define FLT(flag, lo, hi, dst)                                                   \
    else if (!strcmp(a, flag)) {                                                 \
        VAL();                                                                   \
        if (!cli_float("train", flag, v, lo, hi, &d)) goto out;                  \
        dst = (float)d;                                                          \
    }
#define STR(flag, dst)                                                           \
    else if (!strcmp(a, flag)) {                                                 \
        VAL();                                                                   \
        snprintf(dst, sizeof dst, "%s", v);                                      \
    }
        if (!strcmp(a, "--config")) {
            i++;
        } else if (!strcmp(a, "--model")) {
            VAL();
            if (r->vl) {
                rc = fail_usage("--model is for CLIP runs; a VL run's model is the config's family + model (or --init "
                                "DIR), got", v);
                goto out;
            }
            json_t *s = json_string(v);
            int bad = load_model_cfg(s, r, "--model");
            json_decref(s);
            if (bad) goto out;
            have_model = 1;
        } else if (!strcmp(a, "--val")) {
            VAL();
            if (r->nval == 8) {
                rc = fail_usage("at most 8 --val sets", NULL);
                goto out;
            }
            snprintf(r->val[r->nval++], sizeof r->val[0], "%s", v);
        } else if (!strcmp(a, "--no-eval")) {
            r->nval = 0;
            r->zeroshot[0] = 0;
        } else if (!strcmp(a, "--resume")) {
            r->resume = 1;
        } else if (!strcmp(a, "--dump-compact")) {
            r->dump_compact = 1;
        } else if (!strcmp(a, "--strict")) {
            r->strict = 1;
        } else if (!strcmp(a, "--print-config")) {
            r->print_config = 1;
        } else if (!strcmp(a, "--loss")) {
            VAL();
            if (!strcmp(v, "clip")) r->tc.loss = VLP_ITC_CLIP;
            else if (!strcmp(v, "siglip")) r->tc.loss = VLP_ITC_SIGLIP;
            else {
                rc = fail_usage("--loss wants clip or siglip, got", v);
                goto out;
            }
        }
        STR("--init", r->init)
        STR("--data", r->data)
        STR("--zeroshot", r->zeroshot)
        STR("--out", r->out)
        INT("--steps", 1, 1000000000L, r->tc.steps)
        INT("--epochs", 1, 1000000L, r->epochs)
        INT("--batch-size", 2, 1 << 20, r->tc.batch_size)
        INT("--accum", 1, 1 << 16, r->tc.accum_steps)
        INT("--warmup", 0, 1000000000L, r->tc.warmup)
        INT("--seed", 0, 2147483647L, r->tc.seed)
        INT("--workers", 0, 256, r->workers)
        INT("--log-every", 1, 1000000000L, r->log_every)
        INT("--eval-every", 0, 1000000000L, r->eval_every)
        INT("--save-every", 0, 1000000000L, r->save_every)
        INT("--keep", 1, 1000, r->keep)
        INT("--dump-batches", 1, 100000, r->dump)
        INT("--stop-after", 1, 1000000000L, r->stop_after)
        else if (!strcmp(a, "--max-minutes")) {
            VAL();
            if (!cli_float("train", "--max-minutes", v, 0.01, 1e6, &d)) goto out;
            r->max_minutes = d;
        }
        FLT("--lr", 0, 10, r->tc.lr)
        FLT("--min-lr", 0, 10, r->tc.min_lr)
        FLT("--wd", 0, 10, r->tc.weight_decay)
        FLT("--beta1", 0, 0.999999, r->tc.beta1)
        FLT("--beta2", 0, 0.999999, r->tc.beta2)
        FLT("--eps", 1e-30, 1, r->tc.eps)
        FLT("--clip-norm", 0, 1e9, r->tc.clip_norm)
        else {
            fprintf(stderr, "vlp train: unknown option '%s' (see vlp train --help)\n", a);
            goto out;
        }
#undef VAL
#undef INT
#undef FLT
#undef STR
    }
    if (!have_model && !r->init[0]) {
        rc = fail_usage("no model: give --config RUN.json, --model PRESET|CONFIG or --init DIR", NULL);
        goto out;
    }
    if (r->print_config) {
        rc = print_config(r);
        goto out;
    }
    if (!r->data[0]) {
        rc = fail_usage("no training data: --data SPEC (or data.train in the config)", NULL);
        goto out;
    }
    if (!r->out[0]) {
        rc = fail_usage("no run directory: --out RUN_DIR (or name/out in the config)", NULL);
        goto out;
    }
    rc = CLI_FAIL;
    if (r->vl) {
        rc = run_vl(r);
        goto out;
    }
    /* the text tower's tokenizer: the initial model's own, or the config's ("tokenizer": "wordpiece"
     * takes "vocab" or the built-in bert-base-uncased), which sets the vocabulary size and [SEP] */
    const char *vocab = r->vocab[0] ? r->vocab : NULL;
    vlp_tokenizer *tok = NULL;
    vlp_clip *m = NULL;
    if (r->init[0]) {
        if ((m = vlp_clip_load(r->init))) tok = vlp_clip_tokenizer_load(m, vocab);
    } else if ((tok = vlp_tokenizer_load(r->model.tokenizer == VLP_TOKENIZER_WORDPIECE ? VLP_TOKENIZER_WORDPIECE
                                                                                        : VLP_TOKENIZER_CLIP_BPE,
                                         vocab))) {
        if (!vlp_clip_config_set_tokenizer(&r->model, tok) && !vlp_clip_config_validate(&r->model))
            m = vlp_clip_new(&r->model, r->tc.seed);
    }
    if (m && tok && vocab && strlen(vocab) < sizeof m->vocab) memcpy(m->vocab, vocab, strlen(vocab) + 1);
    if (!m || !tok) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        vlp_clip_free(m);
        vlp_tokenizer_free(tok);
        goto out;
    }
    vlp_dataset_options dopt = {.csv_img_key = r->csv_img[0] ? r->csv_img : NULL,
                                .csv_caption_key = r->csv_cap[0] ? r->csv_cap : NULL};
    vlp_dataset *ds = vlp_dataset_open(r->data, &dopt);
    vlp_loader *ld = NULL;
    vlp_trainer *t = NULL;
    run_ctx ctx = {.r = r};
    if (!ds) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        goto done;
    }
    vlp_loader_options lo;
    if (!(ld = open_loader(r, ds, m->cfg.image_size, m->cfg.context_length, clip_tokenize, tok, &lo))) goto done;
    if (r->dump) {
        rc = dump_batches(r, m, NULL, NULL, ds, ld, &lo);
        goto done;
    }
    if ((rc = run_length(r, ld)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    int64_t bpe = vlp_loader_batches_per_epoch(ld);
    if (!(t = vlp_trainer_new(m, &r->tc))) {
        fprintf(stderr, "vlp train: %s\n", vlp_last_error());
        goto done;
    }
    for (int i = 0; i < r->nval; i++)
        if (!(ctx.val[ctx.nval++] = vlp_dataset_open(r->val[i], &dopt))) {
            fprintf(stderr, "vlp train: %s\n", vlp_last_error());
            goto done;
        }
    fprintf(stderr,
            "vlp train: %s, %.2f M parameters; %lld pairs from %s, %lld batches of %d per epoch; %lld steps "
            "(%.2f epochs), loss %s, lr %g, warm-up %lld; run dir %s\n",
            r->model_desc[0] ? r->model_desc : r->init, vlp_clip_param_count(m) / 1e6,
            (long long)vlp_dataset_size(ds), r->data, (long long)bpe, r->tc.batch_size, (long long)r->tc.steps,
            (double)r->tc.steps / (double)bpe, r->tc.loss == VLP_ITC_SIGLIP ? "siglip" : "clip", (double)r->tc.lr,
            (long long)r->tc.warmup, r->out);
    rc = run_trainer(r, &ctx, t, ld);
done:
    for (int i = 0; i < ctx.nval; i++) vlp_dataset_free(ctx.val[i]);
    vlp_trainer_free(t);
    vlp_loader_free(ld);
    vlp_dataset_free(ds);
    vlp_clip_free(m);
    vlp_tokenizer_free(tok);
out:
    free(r);
    return rc;
}
