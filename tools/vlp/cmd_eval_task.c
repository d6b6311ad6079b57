/* vlp eval --task vqa|nlvr|ground2|ground3|mc: zero-shot downstream evaluation of a CLIP dual
 * encoder (src/eval/downstream.c), scored with the same code as `vlp score`. */
#include "cli.h"
#include "vlp.h"
#include "vlp_downstream.h"
#include "vlp_eval.h"
#include "vlp_finetune.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vlp_cmd_eval_task(int argc, char **argv);
int vlp_ft_eval_predict(const char *model, const vlp_task_set *ds, int batch, vlp_clip_task_result *out); /* cmd_finetune.c */

static void help(void) {
    printf("usage: vlp eval --task vqa|nlvr|ground2|ground3|mc --model M --data FILE.jsonl [options]\n"
           "Zero-shot downstream evaluation of a CLIP dual encoder (no training):\n"
           "  mc       ITC similarity of the image and each choice, softmax, the best choice\n"
           "  ground2/3  each cell of the canvas cropped, embedded and scored against the query, the best cell\n"
           "  vqa      a classifier per question type over that type's train answers (prompts \"an emoji of {}\"\n"
           "           for category/subcategory, \"{} skin tone\" for skintone); yesno: \"yes\" iff the asked\n"
           "           phrase is the image's best match among the yes/no phrases\n"
           "  nlvr     a rule on each image's best-matching statement phrase; statements other than \"both\n"
           "           images show P.\", \"exactly one image shows P.\" and \"the two images show the same\n"
           "           kind of thing.\" are not supported by a dual encoder (predicted false, counted)\n"
           "  caption  not supported by a dual encoder\n"
           "Metrics as `vlp score` computes them (same code, same numbers).\n"
           "  --predictions OUT.jsonl  write one row per example ({\"answer\"} or {\"label\"}, plus confidence, probs)\n"
           "  --out EVAL.json   write eval_<task>_<split>.json for `vlp report` (predictions default to\n"
           "                    predictions_<task>_<split>.jsonl next to it)\n"
           "  --train FILE      vqa: the train file (default: vqa-train.jsonl next to the data file)\n"
           "  --split NAME      the part's name (default: from {task}-{NAME}.jsonl)\n"
           "  --batch N         images or texts per forward pass (default 64)\n"
           "  --json            print the result as JSON instead of a table\n"
           "  --strict          a bad row in the data file is an error (default: counted and skipped)\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

static char *abs_path(const char *p) {
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}

static void pct(double x) {
    if (isfinite(x)) printf("%8.2f%%", 100 * x);
    else printf("%9s", "-");
}

static void on_progress(void *ctx, const char *stage, int64_t done, int64_t total) {
    (void)ctx;
    fprintf(stderr, "\r  %s %lld/%lld", stage, (long long)done, (long long)total);
    if (done >= total) fputc('\n', stderr);
}

int vlp_cmd_eval_task(int argc, char **argv) {
    const char *task_s = NULL, *model = NULL, *data = NULL, *pred = NULL, *out = NULL, *train = NULL, *split = NULL;
    int as_json = 0;
    long batch = 64;
    vlp_task_read_options ro = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], **dst = NULL;
        if (cli_is_help(a)) {
            help();
            return CLI_OK;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--strict")) {
            ro.strict = 1;
        } else if (!strcmp(a, "--batch")) {
            const char *v = cli_value("eval", argc, argv, &i);
            if (!v || !cli_int("eval", "--batch", v, 1, 65536, &batch)) return CLI_USAGE;
        } else if (!strcmp(a, "--task")) dst = &task_s;
        else if (!strcmp(a, "--model")) dst = &model;
        else if (!strcmp(a, "--data")) dst = &data;
        else if (!strcmp(a, "--predictions")) dst = &pred;
        else if (!strcmp(a, "--out")) dst = &out;
        else if (!strcmp(a, "--train")) dst = &train;
        else if (!strcmp(a, "--split")) dst = &split;
        else {
            fprintf(stderr, "vlp eval: unknown option '%s' for a downstream task (see vlp eval --task mc --help)\n", a);
            return CLI_USAGE;
        }
        if (dst && !(*dst = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
    }
    vlp_task_kind kind;
    if (!task_s || vlp_task_from_name(task_s, &kind)) {
        fprintf(stderr, "vlp eval: --task: %s\n", task_s ? vlp_last_error() : "missing");
        return CLI_USAGE;
    }
    if (!model || !data) {
        fprintf(stderr, "vlp eval: --task %s needs --model and --data\n", task_s);
        return CLI_USAGE;
    }
    if (kind == VLP_TASK_CAPTION) {
        fprintf(stderr, "vlp eval: --task caption needs a generative model; a CLIP dual encoder does not produce "
                        "captions (not supported)\n");
        return CLI_FAIL;
    }
    char split_buf[256], *pred_buf = NULL, *auto_train = NULL;
    if (!split) {
        cli_task_split(data, task_s, split_buf, sizeof split_buf);
        split = split_buf;
    }
    if (out && !pred) { /* vlp report shows the predictions in its gallery */
        const char *slash = strrchr(out, '/');
        size_t dl = slash ? (size_t)(slash - out + 1) : 0, n = dl + strlen(task_s) + strlen(split) + 32;
        if ((pred_buf = malloc(n))) {
            snprintf(pred_buf, n, "%.*spredictions_%s_%s.jsonl", (int)dl, out, task_s, split);
            pred = pred_buf;
        }
    }
    if (kind == VLP_TASK_VQA && !train) {
        const char *slash = strrchr(data, '/');
        size_t dl = slash ? (size_t)(slash - data + 1) : 0;
        if ((auto_train = malloc(dl + 16))) {
            memcpy(auto_train, data, dl);
            strcpy(auto_train + dl, "vqa-train.jsonl");
            if (access(auto_train, R_OK) == 0) train = auto_train;
        }
        if (!train) {
            fprintf(stderr, "vlp eval: --task vqa needs --train (no vqa-train.jsonl next to %s)\n", data);
            free(auto_train);
            free(pred_buf);
            return CLI_USAGE;
        }
    }
    int rc = CLI_FAIL, scored = 0;
    vlp_clip *m = NULL;
    vlp_task_set *ds = NULL, *tr = NULL;
    vlp_clip_task_result res = {0};
    vlp_task_metrics met = {0};
    char *js = NULL;
    if (!(ds = vlp_task_read(data, kind, &ro))) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        goto done;
    }
    if (ds->n_bad) {
        fprintf(stderr, "vlp eval: %s: %lld of %lld rows skipped\n", data, (long long)ds->n_bad, (long long)ds->n_rows);
        for (int i = 0; i < ds->n_messages && i < 10; i++) fprintf(stderr, "  %s\n", ds->messages[i]);
    }
    if (train && !(tr = vlp_task_read(train, VLP_TASK_VQA, NULL))) {
        fprintf(stderr, "vlp eval: --train: %s\n", vlp_last_error());
        goto done;
    }
    /* a fine-tuned fusion model (vlp finetune) predicts with its task head */
    int finetuned = vlp_ft_is_finetuned(model);
    if (!finetuned && !(m = vlp_clip_load(model))) {
        fprintf(stderr, "vlp eval: %s (downstream evaluation here needs a CLIP dual encoder or a model from vlp "
                        "finetune)\n", vlp_last_error());
        goto done;
    }
    vlp_clip_task_options opt = {.batch = (int)batch, .on_progress = isatty(2) ? on_progress : NULL};
    double t0 = cli_now();
    if (finetuned ? vlp_ft_eval_predict(model, ds, (int)batch, &res) : vlp_clip_task_predict(m, ds, tr, &opt, &res)) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        goto done;
    }
    double secs = cli_now() - t0;
    if (vlp_task_score(ds, res.pred, tr, &met)) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        goto done;
    }
    scored = 1;
    if (!(js = vlp_task_metrics_json(&met))) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        goto done;
    }
    if (pred && vlp_clip_task_write_predictions(&res, pred)) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        goto done;
    }
    json_t *o = json_object(), *metrics = json_loads(js, 0, NULL);
    char *ad = abs_path(data), *ap = pred ? abs_path(pred) : NULL, *at = train ? abs_path(train) : NULL;
    json_object_set_new(o, "task", json_string(task_s));
    json_object_set_new(o, "split", json_string(split));
    json_object_set_new(o, "data", json_string(ad ? ad : data));
    if (ap) json_object_set_new(o, "predictions", json_string(ap));
    if (at) json_object_set_new(o, "train", json_string(at));
    json_object_set_new(o, "n", json_integer(met.n));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "protocol", json_string(finetuned ? "fine-tuned" : "zero-shot dual encoder"));
    json_object_set_new(o, "method", json_string(res.method));
    if (kind == VLP_TASK_NLVR) json_object_set_new(o, "unsupported", json_integer(res.n_unsupported));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "metrics", metrics ? metrics : json_object());
    free(ad);
    free(ap);
    free(at);
    rc = CLI_OK;
    if (out && json_dump_file(o, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))) {
        fprintf(stderr, "vlp eval: cannot write %s\n", out);
        rc = CLI_FAIL;
    }
    if (as_json) {
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (s) printf("%s\n", s);
        free(s);
    } else {
        printf("%s / %s: %lld examples, %s %s (%.1f s)\n  method: %s\n", task_s, split, (long long)met.n,
               finetuned ? "fine-tuned" : "zero-shot", model, secs, res.method);
        if (kind == VLP_TASK_VQA) {
            printf("  %-14s %8s %9s %9s\n", "type", "n", "accuracy", "majority");
            for (int t = 0; t < met.n_types; t++) {
                printf("  %-14s %8lld ", met.types[t].type, (long long)met.types[t].n);
                pct(met.types[t].accuracy);
                putchar(' ');
                pct(met.types[t].majority);
                putchar('\n');
            }
            printf("  %-14s %8lld ", "overall", (long long)met.n);
            pct(met.accuracy);
            putchar(' ');
            pct(met.majority);
            printf("  (mean over types)\n");
        } else {
            printf("  accuracy ");
            pct(met.accuracy);
            printf("   chance ");
            pct(met.chance);
            if (kind == VLP_TASK_NLVR) {
                printf("   majority ");
                pct(met.majority);
            }
            putchar('\n');
            if (kind == VLP_TASK_NLVR && res.n_unsupported)
                printf("  %lld statements not supported by a dual encoder (predicted false)\n",
                       (long long)res.n_unsupported);
        }
    }
    json_decref(o);
done:
    free(js);
    if (scored) vlp_task_metrics_free(&met);
    vlp_clip_task_result_free(&res);
    vlp_clip_free(m);
    vlp_task_set_free(ds);
    vlp_task_set_free(tr);
    free(auto_train);
    free(pred_buf);
    return rc;
}
