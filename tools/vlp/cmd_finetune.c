/* vlp finetune: fine-tuning a pre-trained fusion model on a downstream task (vqa, mc, nlvr,
 * ground2, ground3) from a config (JSON) and flags, with the trainer of `vlp train` (include/vlp_finetune.h). */
#include "cli.h"
#include "vlp_downstream.h"
#include "vlp_finetune.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
    printf("usage: vlp finetune [--config FT.json] [options]\n"
           "Fine-tunes a pre-trained fusion model (single_stream, dual_stream, mome; from vlp train) on a task\n"
           "file of the emoji-tasks format, with vlp train's loop, AdamW, warm-up + cosine schedule, atomic\n"
           "checkpoints and exact resume. Heads:\n"
           "  vqa   answer_mlp  pooled fused [CLS] -> MLP -> the answers of the train file (saved with the model)\n"
           "  mc    itm         the ITM log-odds of each (image, choice), softmax over the choices\n"
           "  nlvr  pair_mlp    (left image, statement) and (right image, statement) fused, pooled, concatenated\n"
           "                    -> MLP -> true / false\n"
           "  ground2/ground3  cell  the canvas at grid x the pre-trained size (position embeddings resized\n"
           "                    bicubically); per cell <q(fused [CLS]), mean of k(image tokens) in the cell>; softmax\n"
           "A captioning model (BLIP/CoCa decoder) fine-tunes its decoder (head lm, teacher forcing):\n"
           "  caption  lm      [CLS] caption [SEP], loss on every next token (the pre-training LM objective)\n"
           "  vqa      lm      [CLS] question [SEP] answer [SEP], loss on the answer tokens only; evaluate with\n"
           "                    vlp eval --task vqa --protocol generate|rank (see configs/ft-cap-s-vqa.json)\n"
           "See configs/ft-albef-s-vqa.json. Options (each overrides the field of FT.json named after it):\n"
           "  --config FILE       fine-tuning config\n"
           "  --pretrained DIR    the pre-trained model (e.g. runs/emoji-albef-s/model)\n"
           "  --task vqa|mc|nlvr|ground2|ground3|caption  --head NAME (default: the task's head)\n"
           "  --train FILE.jsonl  training examples;  --val FILE.jsonl (repeatable) evaluated every --eval-every\n"
           "                      steps and at the end (accuracy; vqa: mean over question types); --no-eval\n"
           "  --freeze PART       vision, text or embeddings (repeatable); --freeze none clears the config's\n"
           "  --layer-decay X     layer-wise learning-rate decay in (0, 1] (1: off)\n"
           "  --out RUN_DIR       run directory (metrics.jsonl, checkpoints/, model/); default runs/NAME\n"
           "  --resume            continue RUN_DIR from its latest checkpoint (same losses as uninterrupted)\n"
           "  --steps N  --batch-size N  --accum N  --lr X  --min-lr X  --warmup N  --wd X  --beta1 X  --beta2 X\n"
           "  --eps X  --clip-norm X  --seed N  --log-every N  --eval-every N  --save-every N  --keep N\n"
           "  --eval-batch N      examples per evaluation pass (default 64)\n"
           "  --image-size N      ground2/ground3: the canvas size (default: grid x the pre-trained image size)\n"
           "  --stop-after N      stop (with a checkpoint) after step N of the schedule\n"
           "  --vocab FILE        the tokenizer's vocabulary, of the kind the model's config names (default: the\n"
           "                      pre-trained model's vocab.txt / merges.txt, else the built-in one)\n"
           "  --strict            a bad row in a train or val file is an error (\"strict\": true); by default rows\n"
           "                      with missing fields, labels out of range, duplicates or images that cannot be\n"
           "                      decoded are reported (FILE:LINE: problem) and skipped\n"
           "  --dump-batches N    (vqa, nlvr) write, instead of training, RUN_DIR/init (the model with its new\n"
           "                      head), RUN_DIR/batches (the examples of the first N steps, in order),\n"
           "                      RUN_DIR/probe (step-0 loss, scores, gradients), train.json and params.tsv, then\n"
           "                      exit (for bench/torch_finetune_albef.py)\n"
           "The fine-tuned model (RUN_DIR/model) evaluates with vlp eval --task TASK --model RUN_DIR/model.\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

typedef struct {
    char pretrained[4096], task[32], head[32], train[4096], out[4096], vocab[4096];
    char val[8][4096];
    int nval, freeze, image_size;
    vlp_train_config tc;
    float layer_decay;
    int log_every, eval_every, save_every, keep, resume, eval_batch, dump, strict;
    int64_t stop_after;
} ft_cfg;

#define get_num(o, k, out, where) cli_json_num("finetune", o, k, out, where)
#define get_str(o, k, out, cap, where) cli_json_str("finetune", o, k, out, cap, where)
#define check_keys(o, known, where) cli_json_check_keys("finetune", o, known, where)

static int add_val(ft_cfg *c, const char *v) {
    if (c->nval == 8 || strlen(v) >= sizeof c->val[0]) {
        fprintf(stderr, "vlp finetune: at most 8 validation files\n");
        return -1;
    }
    snprintf(c->val[c->nval++], sizeof c->val[0], "%s", v);
    return 0;
}

static int read_config(const char *path, ft_cfg *c) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        fprintf(stderr, "vlp finetune: %s: %s (line %d)\n", path, root ? "must be a JSON object" : je.text, je.line);
        json_decref(root);
        return -1;
    }
    static const char *known[] = {"name", "description", "pretrained", "task", "head", "data", "freeze",
                                  "layer_decay", "batch_size", "steps", "accum_steps", "optimizer", "schedule",
                                  "clip_grad_norm", "seed", "log_every", "eval_every", "save_every",
                                  "keep_checkpoints", "eval_batch", "out", "vocab", "image_size", "strict", NULL};
    static const char *kdata[] = {"train", "val", NULL};
    int rc = check_keys(root, known, path);
    if (!rc) rc = get_str(root, "pretrained", c->pretrained, sizeof c->pretrained, path);
    if (!rc) rc = get_str(root, "task", c->task, sizeof c->task, path);
    if (!rc) rc = get_str(root, "head", c->head, sizeof c->head, path);
    if (!rc) rc = get_str(root, "vocab", c->vocab, sizeof c->vocab, path);
    if (!rc) rc = get_str(root, "out", c->out, sizeof c->out, path);
    json_t *nm = json_object_get(root, "name");
    if (!rc && !c->out[0] && json_is_string(nm)) snprintf(c->out, sizeof c->out, "runs/%s", json_string_value(nm));
    json_t *d = json_object_get(root, "data");
    if (!rc && d) {
        rc = json_is_object(d) ? check_keys(d, kdata, path) : -1;
        if (!rc) rc = get_str(d, "train", c->train, sizeof c->train, path);
        json_t *val = json_object_get(d, "val");
        if (!rc && val) {
            if (json_is_string(val)) rc = add_val(c, json_string_value(val));
            else if (!json_is_array(val)) rc = -1;
            for (size_t i = 0; !rc && json_is_array(val) && i < json_array_size(val); i++) {
                const char *s = json_string_value(json_array_get(val, i));
                rc = s ? add_val(c, s) : -1;
            }
            if (rc) fprintf(stderr, "vlp finetune: %s: data.val must be a file or a list of up to 8 files\n", path);
        }
    }
    json_t *st = json_object_get(root, "strict");
    if (!rc && st) {
        if (json_is_boolean(st)) c->strict = json_is_true(st);
        else {
            fprintf(stderr, "vlp finetune: %s: 'strict' must be true or false\n", path);
            rc = -1;
        }
    }
    json_t *fr = json_object_get(root, "freeze");
    if (!rc && fr) {
        if (json_is_string(fr)) fr = json_pack("[O]", fr);
        else json_incref(fr);
        for (size_t i = 0; !rc && i < json_array_size(fr); i++) {
            const char *s = json_string_value(json_array_get(fr, i));
            if (!s || vlp_ft_freeze_parse(s, &c->freeze)) {
                fprintf(stderr, "vlp finetune: %s: freeze: %s\n", path, s ? vlp_last_error() : "must be strings");
                rc = -1;
            }
        }
        if (!json_is_array(fr)) {
            fprintf(stderr, "vlp finetune: %s: freeze must be a list of parts\n", path);
            rc = -1;
        }
        json_decref(fr);
    }
    double x;
    vlp_train_config *t = &c->tc;
#define NUM(obj, key, lv, type)                                    \
    if (!rc) {                                                     \
        x = (double)(lv);                                          \
        rc = get_num(obj, key, &x, path);                          \
        lv = (type)x;                                              \
    }
    NUM(root, "batch_size", t->batch_size, int)
    NUM(root, "steps", t->steps, int64_t)
    NUM(root, "accum_steps", t->accum_steps, int)
    NUM(root, "clip_grad_norm", t->clip_norm, float)
    NUM(root, "seed", t->seed, uint64_t)
    NUM(root, "layer_decay", c->layer_decay, float)
    NUM(root, "log_every", c->log_every, int)
    NUM(root, "eval_every", c->eval_every, int)
    NUM(root, "save_every", c->save_every, int)
    NUM(root, "keep_checkpoints", c->keep, int)
    NUM(root, "eval_batch", c->eval_batch, int)
    NUM(root, "image_size", c->image_size, int)
    if (!rc) rc = cli_json_optimizer("finetune", root, path, t);
#undef NUM
    json_decref(root);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct {
    ft_cfg *c;
    vlp_ft_model *m;
    vlp_ft_data *val[8];
    vlp_task_set *vset[8], *train_set;
    vlp_tokenizer *tok; /* generated answers take the train answers' spelling, as vlp eval does */
    char split[8][256];
    double t0, last_draw;
    int tty;
} run_ctx;

static int on_step(void *ctx, const vlp_train_stats *st, double pps, double wait) {
    run_ctx *r = ctx;
    (void)wait;
    double now = cli_now(), el = now - r->t0;
    int64_t total = r->c->tc.steps;
    int last = st->step == total;
    if (r->tty ? (now - r->last_draw >= 0.5 || last) : (st->step % (r->c->log_every ? r->c->log_every : 10) == 0 || last)) {
        r->last_draw = now;
        fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.2e  %.0f examples/s  %.0f s%s", r->tty ? "\r" : "",
                (long long)st->step, (long long)total, st->loss, st->lr, pps, el, r->tty && !last ? "   " : "\n");
        fflush(stderr);
    }
    if (r->c->stop_after && st->step >= r->c->stop_after && !last) {
        fprintf(stderr, "%sstopping after step %lld (--stop-after); resume with --resume\n", r->tty ? "\n" : "",
                (long long)st->step);
        return 1;
    }
    if (cli_interrupted()) {
        fprintf(stderr, "\ninterrupted: checkpoint at step %lld; resume with --resume\n", (long long)st->step);
        return 1;
    }
    return 0;
}

static int on_eval(void *ctx, vlp_trainer *t, int64_t step, char *buf, size_t cap) {
    run_ctx *r = ctx;
    (void)t;
    json_t *o = json_object();
    int rc = VLP_OK;
    for (int i = 0; i < r->c->nval && !rc; i++) {
        vlp_task_predictions *p = NULL;
        vlp_task_metrics met;
        memset(&met, 0, sizeof met);
        rc = vlp_ft_predict(r->m, r->val[i], r->c->eval_batch, &p, NULL);
        if (!rc && r->m->head == VLP_FT_HEAD_LM && r->m->task == VLP_TASK_VQA &&
            vlp_ft_lm_canonical_answers(r->tok, r->train_set, p) < 0)
            rc = VLP_ERR_NOMEM;
        if (!rc) rc = vlp_task_score(r->vset[i], p, r->m->task == VLP_TASK_VQA ? r->train_set : NULL, &met);
        if (!rc) {
            char k[300];
            snprintf(k, sizeof k, "%s/accuracy", r->split[i]);
            json_object_set_new(o, k, json_real(met.accuracy));
            fprintf(stderr, "%seval step %lld: %s accuracy %.2f%%", r->tty ? "\n" : "", (long long)step, r->split[i],
                    100 * met.accuracy);
            if (isfinite(met.chance)) fprintf(stderr, " (chance %.2f%%)", 100 * met.chance);
            if (isfinite(met.majority)) fprintf(stderr, " (majority %.2f%%)", 100 * met.majority);
            if (r->m->task == VLP_TASK_CAPTION) { /* exact match above; the caption metrics too */
                snprintf(k, sizeof k, "%s/cider_d", r->split[i]);
                json_object_set_new(o, k, json_real(met.cider_d));
                snprintf(k, sizeof k, "%s/bleu4", r->split[i]);
                json_object_set_new(o, k, json_real(met.bleu4));
                fprintf(stderr, "  BLEU-4 %.4f  CIDEr-D %.4f (greedy)", met.bleu4, met.cider_d);
            }
            fputc('\n', stderr);
            vlp_task_metrics_free(&met);
        }
        vlp_task_predictions_free(p);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (s) snprintf(buf, cap, "%s", s);
    free(s);
    if (rc) fprintf(stderr, "vlp finetune: evaluation: %s\n", vlp_last_error());
    return rc;
}

int vlp_cmd_finetune(int argc, char **argv);
int vlp_cmd_finetune(int argc, char **argv) {
    ft_cfg c;
    memset(&c, 0, sizeof c);
    vlp_train_config_default(&c.tc);
    c.tc.batch_size = 64;
    c.tc.lr = 1e-4f;
    c.tc.weight_decay = 0.01f;
    c.layer_decay = 1.0f;
    c.eval_batch = 64;
    /* the config first, then every flag over it */
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--config")) {
            const char *v = cli_value("finetune", argc, argv, &i);
            if (!v) return CLI_USAGE;
            if (read_config(v, &c)) return CLI_USAGE;
        }
    }
    int no_eval = 0, flag_val = 0, flag_freeze = 0; /* flags replace the config's lists */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *dst = NULL;
        size_t cap = 0;
        long lv;
        double fv;
#define INTF(flag, lo, hi, lval)                                                                     \
    else if (!strcmp(a, flag)) {                                                                     \
        const char *v = cli_value("finetune", argc, argv, &i);                                      \
        if (!v || !cli_int("finetune", flag, v, lo, hi, &lv)) return CLI_USAGE;                      \
        lval = lv;                                                                                   \
    }
#define FLTF(flag, lo, hi, lval)                                                                     \
    else if (!strcmp(a, flag)) {                                                                     \
        const char *v = cli_value("finetune", argc, argv, &i);                                      \
        if (!v || !cli_float("finetune", flag, v, lo, hi, &fv)) return CLI_USAGE;                    \
        lval = (float)fv;                                                                            \
    }
        if (!strcmp(a, "--config")) {
            i++;
        } else if (!strcmp(a, "--resume")) {
            c.resume = 1;
        } else if (!strcmp(a, "--no-eval")) {
            no_eval = 1;
        } else if (!strcmp(a, "--strict")) {
            c.strict = 1;
        } else if (!strcmp(a, "--pretrained")) dst = c.pretrained, cap = sizeof c.pretrained;
        else if (!strcmp(a, "--task")) dst = c.task, cap = sizeof c.task;
        else if (!strcmp(a, "--head")) dst = c.head, cap = sizeof c.head;
        else if (!strcmp(a, "--train")) dst = c.train, cap = sizeof c.train;
        else if (!strcmp(a, "--out")) dst = c.out, cap = sizeof c.out;
        else if (!strcmp(a, "--vocab")) dst = c.vocab, cap = sizeof c.vocab;
        else if (!strcmp(a, "--val")) {
            const char *v = cli_value("finetune", argc, argv, &i);
            if (!v) return CLI_USAGE;
            if (!flag_val) c.nval = 0, flag_val = 1;
            if (add_val(&c, v)) return CLI_USAGE;
        } else if (!strcmp(a, "--freeze")) {
            const char *v = cli_value("finetune", argc, argv, &i);
            if (!v) return CLI_USAGE;
            if (!flag_freeze) c.freeze = 0, flag_freeze = 1;
            if (strcmp(v, "none") && vlp_ft_freeze_parse(v, &c.freeze)) {
                fprintf(stderr, "vlp finetune: --freeze: %s\n", vlp_last_error());
                return CLI_USAGE;
            }
        }
        INTF("--steps", 1, 100000000, c.tc.steps)
        INTF("--batch-size", 2, 1 << 20, c.tc.batch_size)
        INTF("--accum", 1, 1 << 20, c.tc.accum_steps)
        INTF("--warmup", 0, 100000000, c.tc.warmup)
        INTF("--seed", 0, 0x7fffffffL, c.tc.seed)
        INTF("--log-every", 1, 1 << 30, c.log_every)
        INTF("--eval-every", 0, 1 << 30, c.eval_every)
        INTF("--save-every", 0, 1 << 30, c.save_every)
        INTF("--keep", 1, 1 << 20, c.keep)
        INTF("--eval-batch", 1, 1 << 16, c.eval_batch)
        INTF("--image-size", 1, 4096, c.image_size)
        INTF("--stop-after", 1, 100000000, c.stop_after)
        INTF("--dump-batches", 1, 100000, c.dump)
        FLTF("--lr", 0, 10, c.tc.lr)
        FLTF("--min-lr", 0, 10, c.tc.min_lr)
        FLTF("--wd", 0, 10, c.tc.weight_decay)
        FLTF("--beta1", 0, 0.999999, c.tc.beta1)
        FLTF("--beta2", 0, 0.999999, c.tc.beta2)
        FLTF("--eps", 1e-12, 1, c.tc.eps)
        FLTF("--clip-norm", 0, 1e6, c.tc.clip_norm)
        FLTF("--layer-decay", 1e-6, 1, c.layer_decay)
        else {
            fprintf(stderr, "vlp finetune: unknown option '%s' (see vlp finetune --help)\n", a);
            return CLI_USAGE;
        }
#undef INTF
#undef FLTF
        if (dst) {
            const char *v = cli_value("finetune", argc, argv, &i);
            if (!v) return CLI_USAGE;
            snprintf(dst, cap, "%s", v);
        }
    }
    if (no_eval || c.dump) c.nval = 0; /* a dump trains nothing: nothing to evaluate */
    if (!c.pretrained[0] || !c.task[0] || !c.train[0] || !c.out[0]) {
        fprintf(stderr, "vlp finetune: needs %s (in the config or as a flag)\n",
                !c.pretrained[0] ? "--pretrained DIR" : !c.task[0] ? "--task" : !c.train[0] ? "--train FILE" : "--out RUN_DIR");
        return CLI_USAGE;
    }
    vlp_task_kind task;
    if (vlp_task_from_name(c.task, &task)) {
        fprintf(stderr, "vlp finetune: --task: %s\n", vlp_last_error());
        return CLI_USAGE;
    }
    if (c.tc.steps < 1) {
        fprintf(stderr, "vlp finetune: the run needs --steps N\n");
        return CLI_USAGE;
    }
    if (c.dump && c.resume) {
        fprintf(stderr, "vlp finetune: --dump-batches starts a run; it does not go with --resume\n");
        return CLI_USAGE;
    }
    if (c.tc.warmup > c.tc.steps) c.tc.warmup = c.tc.steps; /* a short run (--steps) keeps the config's warm-up: clamp, as vlp train */
    if (vlp_train_config_validate(&c.tc)) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        return CLI_USAGE;
    }

    int rc = CLI_FAIL;
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.c = &c;
    vlp_tokenizer *tok = NULL;
    vlp_ft_model *m = NULL;
    vlp_ft_data *dt = NULL;
    vlp_trainer *t = NULL;
    vlp_batch_source src = {0};
    char **answers = NULL;
    int n_answers = 0, head;
    vlp_task_read_options ro = {.strict = c.strict};
    char vocab[4200] = ""; /* the tokenizer's file: --vocab, else the pre-trained model's own ("": built in) */
    vlp_vl *vl = vlp_vl_load(c.pretrained);
    if (!vl) {
        fprintf(stderr, "vlp finetune: pre-trained model: %s\n", vlp_last_error());
        goto done;
    }
    if (c.vocab[0]) snprintf(vocab, sizeof vocab, "%s", c.vocab);
    else vlp_vl_tokenizer_path(&vl->cfg, c.pretrained, vocab, sizeof vocab);
    if (vlp_ft_pick_head(task, c.head, vl->cfg.family, &head)) {
        fprintf(stderr, "vlp finetune: %s: %s\n", c.pretrained, vlp_last_error());
        vlp_vl_free(vl);
        rc = CLI_USAGE;
        goto done;
    }
    if (!(tok = vlp_vl_tokenizer_load(&vl->cfg, c.pretrained, vocab[0] ? vocab : NULL))) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        vlp_vl_free(vl);
        goto done;
    }
    if (!(ctx.train_set = vlp_task_read(c.train, task, &ro))) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        vlp_vl_free(vl);
        goto done;
    }
    int classes = 2;
    if (task == VLP_TASK_VQA && head != VLP_FT_HEAD_LM) { /* lm (captioning) generates: no answer list */
        if (vlp_ft_answers(ctx.train_set, &answers, &n_answers)) {
            fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
            vlp_vl_free(vl);
            goto done;
        }
        classes = n_answers;
    } else if (task == VLP_TASK_MC) {
        classes = ctx.train_set->n ? ctx.train_set->ex[0].n_choices : 0;
    } else if (task == VLP_TASK_GROUND2 || task == VLP_TASK_GROUND3) {
        int g = ctx.train_set->n ? ctx.train_set->ex[0].grid : 0;
        classes = g * g;
        /* the canvas at g times the pre-trained size; position embeddings resized bicubically */
        int size = c.image_size ? c.image_size : g * vl->cfg.image_size;
        if (size != vl->cfg.image_size) {
            vlp_vl *r = vlp_ft_resize_image(vl, size);
            vlp_vl_free(vl);
            if (!(vl = r)) {
                fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
                goto done;
            }
        }
    }
    double t_load = cli_now();
    if (!(m = vlp_ft_new(vl, task, head, classes, (const char *const *)answers, c.freeze, c.tc.seed))) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        goto done;
    }
    ctx.m = m;
    ctx.tok = tok;
    /* rows whose images cannot be decoded leave the sets as the pixels load (each image once) */
    dt = vlp_ft_data_new_ex(m, ctx.train_set, tok, &ro);
    cli_report_bad_rows("finetune", ctx.train_set);
    if (!dt) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        goto done;
    }
    for (int i = 0; i < c.nval; i++) {
        cli_task_split(c.val[i], c.task, ctx.split[i], sizeof ctx.split[i]);
        if ((ctx.vset[i] = vlp_task_read(c.val[i], task, &ro))) {
            ctx.val[i] = vlp_ft_data_new_ex(m, ctx.vset[i], tok, &ro);
            cli_report_bad_rows("finetune", ctx.vset[i]);
        }
        if (!ctx.vset[i] || !ctx.val[i]) {
            fprintf(stderr, "vlp finetune: --val: %s\n", vlp_last_error());
            goto done;
        }
    }
    fprintf(stderr, "finetune %s: %s model %s, head %s (%d classes), %lld train examples (%lld labelled), data ready "
                    "in %.1f s\n", c.task, vlp_vl_family_name(m->vl->cfg.family), c.pretrained,
            vlp_ft_head_name(m->head), m->classes, (long long)vlp_ft_data_size(dt), (long long)vlp_ft_data_labelled(dt),
            cli_now() - t_load);
    if (c.dump) { /* the run's start for bench/torch_finetune_albef.py, then stop */
        char dst[4400];
        snprintf(dst, sizeof dst, "%s/init", c.out);
        if (vlp_ft_dump_batches(m, dt, &c.tc, c.layer_decay, c.dump, c.out)) {
            fprintf(stderr, "vlp finetune: --dump-batches: %s\n", vlp_last_error());
            goto done;
        }
        if (vlp_vl_tokenizer_save(m->vl->cfg.tokenizer, vocab[0] ? vocab : NULL, dst)) {
            fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
            goto done;
        }
        printf("wrote the first %d batches of %d examples to %s/batches, the initial model to %s/init and the "
               "step-0 probe to %s/probe\n", c.dump, c.tc.batch_size, c.out, c.out, c.out);
        rc = CLI_OK;
        goto done;
    }
    if (!(t = vlp_trainer_new_ft(m, dt, &c.tc, c.layer_decay))) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        goto done;
    }
    if (vlp_ft_batch_source(&src, dt, c.tc.batch_size, c.tc.seed)) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        goto done;
    }
    const char *meta[] = {"pretrained", c.pretrained, "task", c.task, "train", c.train, NULL};
    vlp_run_options o = {.run_dir = c.out, .log_every = c.log_every, .save_every = c.save_every,
                         .eval_every = c.eval_every, .keep_checkpoints = c.keep, .resume = c.resume,
                         .save_final = 1, .on_step = on_step, .on_eval = c.nval ? on_eval : NULL, .ctx = &ctx,
                         .meta = meta};
    ctx.t0 = cli_now();
    ctx.tty = cli_progress_redraw();
    cli_sigint_catch();
    int r = vlp_train_run(t, &src, &o);
    cli_sigint_restore();
    if (r) {
        fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
        goto done;
    }
    /* stopped early by Ctrl-C: the checkpoint is saved; exit 1 as vlp train does (a Ctrl-C during
     * the final save leaves a finished run, which goes on to copy its vocabulary) */
    if (cli_interrupted() && vlp_trainer_step_count(t) < c.tc.steps) goto done;
    if (vlp_trainer_step_count(t) == c.tc.steps) {
        char dst[4400];
        snprintf(dst, sizeof dst, "%s/model", c.out);
        if (vlp_vl_tokenizer_save(m->vl->cfg.tokenizer, vocab[0] ? vocab : NULL, dst)) { /* travels with the model */
            fprintf(stderr, "vlp finetune: %s\n", vlp_last_error());
            goto done;
        }
        printf("%s/model: %s fine-tuned for %s (%s head) in %lld steps\n", c.out,
               vlp_vl_family_name(m->vl->cfg.family), c.task, vlp_ft_head_name(m->head), (long long)c.tc.steps);
    }
    rc = CLI_OK;
done:
    vlp_ft_batch_source_free(&src);
    vlp_trainer_free(t);
    for (int i = 0; i < 8; i++) {
        vlp_ft_data_free(ctx.val[i]);
        vlp_task_set_free(ctx.vset[i]);
    }
    vlp_ft_data_free(dt);
    vlp_ft_free(m);
    vlp_task_set_free(ctx.train_set);
    for (int i = 0; i < n_answers; i++) free(answers[i]);
    free(answers);
    vlp_tokenizer_free(tok);
    return rc;
}

/* ---- vlp eval on a fine-tuned model ------------------------------------------------------------ */

int vlp_ft_eval_predict(const char *model, vlp_task_set *ds, int strict, int batch, vlp_clip_task_result *out);

/* A pre-trained fusion model on multiple choice with no fine-tuning: the mc head is the
 * pre-training ITM head itself, so the untouched model scores the choices (ALBEF/ViLT zero-shot).
 * The caller (cmd_eval_task.c) has checked that the model was pre-trained with ITM. */
static vlp_ft_model *zero_shot_mc(const char *model, const vlp_task_set *ds) {
    vlp_vl *vl = vlp_vl_load(model);
    return vl ? vlp_ft_new(vl, VLP_TASK_MC, VLP_FT_HEAD_ITM, ds->n ? ds->ex[0].n_choices : 4, NULL, 0, 0) : NULL;
}

/* Predictions of a fine-tuned checkpoint in the result type of the zero-shot evaluation, so
 * `vlp eval --task` scores, prints and writes them with the same code (cmd_eval_task.c). Rows
 * whose images cannot be decoded leave ds as the pixels load (strict: an error). */
int vlp_ft_eval_predict(const char *model, vlp_task_set *ds, int strict, int batch, vlp_clip_task_result *out) {
    memset(out, 0, sizeof *out);
    int zero_shot = !vlp_ft_is_finetuned(model) && ds->kind == VLP_TASK_MC;
    vlp_ft_model *m = zero_shot ? zero_shot_mc(model, ds) : vlp_ft_load(model);
    vlp_tokenizer *tok = m ? vlp_vl_tokenizer_load(&m->vl->cfg, model, NULL) : NULL;
    vlp_task_read_options ro = {.strict = strict};
    vlp_ft_data *d = tok ? vlp_ft_data_new_ex(m, ds, tok, &ro) : NULL;
    float *probs = NULL;
    int rc = d ? vlp_ft_predict(m, d, batch, &out->pred, &probs) : VLP_ERR_ARG;
    int64_t n = ds->n;
    int C = m ? m->classes : 0;
    if (!rc && !(out->confidence = malloc((size_t)(n ? n : 1) * sizeof(float)))) rc = VLP_ERR_NOMEM;
    for (int64_t i = 0; !rc && i < n; i++) { /* the probability of the pick */
        const float *p = probs + (size_t)i * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (p[k] > p[best]) best = k;
        out->confidence[i] = p[best];
    }
    if (!rc && (m->task == VLP_TASK_MC || m->head == VLP_FT_HEAD_CELL)) { /* per-choice / per-cell, as zero-shot */
        out->probs_off = malloc((size_t)(n + 1) * sizeof(int64_t));
        if (!out->probs_off) rc = VLP_ERR_NOMEM;
        for (int64_t i = 0; !rc && i <= n; i++) out->probs_off[i] = i * C;
        if (!rc) out->probs = probs, probs = NULL;
    }
    if (rc == VLP_ERR_NOMEM) fprintf(stderr, "vlp eval: out of memory\n");
    if (m)
        out->method = zero_shot ? "zero-shot: the pre-trained ITM head's log-odds of each choice, softmax, the best"
                      : m->task == VLP_TASK_VQA ? "fine-tuned answer classifier (answer_mlp) over the train answers"
                      : m->task == VLP_TASK_MC ? "fine-tuned ITM log-odds of each choice, softmax, the best"
                      : m->head == VLP_FT_HEAD_CELL ? "fine-tuned cell head: query vs the mean image token of each cell"
                                               : "fine-tuned pair head on both fused images (pair_mlp)";
    free(probs);
    vlp_ft_data_free(d);
    vlp_tokenizer_free(tok);
    vlp_ft_free(m);
    return rc;
}
