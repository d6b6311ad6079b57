/* vlp score: the metrics of a task's predictions (shared/datasets/emoji-tasks.md), as a table
 * or JSON, and optionally the eval_<task>_<split>.json file that `vlp report` reads. */
#include "cli.h"
#include "vlp.h"
#include "vlp_eval.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void score_usage(FILE *f) {
    fprintf(f,
            "usage: vlp score --task T --data FILE.jsonl --predictions PRED.jsonl [options]\n"
            "Scores predictions (one JSON row per example, in the data file's order: {\"answer\": S} for vqa,\n"
            "{\"caption\": S} for caption, {\"label\": L} for nlvr, ground2, ground3, mc) with the metrics of\n"
            "the task spec: VQA accuracy per question type with majority baselines, accuracy with chance,\n"
            "exact match, BLEU-4 and CIDEr-D for captions.\n"
            "  --task T            caption, vqa, nlvr, ground2, ground3 or mc\n"
            "  --data FILE         the task file (JSON Lines; image paths relative to it)\n"
            "  --predictions FILE  the predictions (also: --predictions-in)\n"
            "  --train FILE        vqa: the train file for the majority baselines (default: vqa-train.jsonl\n"
            "                      next to the data file, when it exists)\n"
            "  --split NAME        the part's name in the output (default: from FILE, {task}-{NAME}.jsonl)\n"
            "  --out EVAL.json     also write {\"task\", \"split\", \"data\", \"predictions\", \"n\", \"metrics\"}\n"
            "                      (paths absolute) for `vlp report`; name it RUN_DIR/eval_<task>_<split>.json\n"
            "  --json              print the metrics as JSON instead of a table\n"
            "  --strict            a bad row in the data file is an error (default: counted and skipped)\n"
            "  --check-images      rows whose image files cannot be opened are bad rows\n"
            "exit status: 0 scored, 1 unreadable or mismatched files, 2 usage error\n");
}

static void pct(double x) {
    if (isfinite(x)) printf("%8.2f%%", 100 * x);
    else printf("%9s", "-");
}

static void print_table(const vlp_task_metrics *m, const char *task, const char *split, const char *data) {
    printf("%s / %s: %lld examples (%s)\n", task, split, (long long)m->n, data);
    switch (m->kind) {
    case VLP_TASK_VQA:
        printf("  %-14s %8s %9s %9s  %s\n", "type", "n", "accuracy", "majority", "majority answer");
        for (int t = 0; t < m->n_types; t++) {
            printf("  %-14s %8lld ", m->types[t].type, (long long)m->types[t].n);
            pct(m->types[t].accuracy);
            putchar(' ');
            pct(m->types[t].majority);
            printf("  %s\n", m->types[t].majority_answer ? m->types[t].majority_answer : "-");
        }
        printf("  %-14s %8lld ", "overall", (long long)m->n);
        pct(m->accuracy);
        putchar(' ');
        pct(m->majority);
        printf("  (mean over types)\n");
        break;
    case VLP_TASK_CAPTION:
        printf("  exact match  ");
        pct(m->accuracy);
        printf("\n  BLEU-4       %9.4f  (precisions %.4f %.4f %.4f %.4f, brevity penalty %.4f, %lld/%lld tokens)\n",
               m->bleu4, m->bleu_precision[0], m->bleu_precision[1], m->bleu_precision[2], m->bleu_precision[3],
               m->brevity_penalty, (long long)m->cand_len, (long long)m->ref_len);
        printf("  CIDEr-D      %9.4f\n", m->cider_d);
        break;
    default:
        printf("  accuracy     ");
        pct(m->accuracy);
        printf("\n  chance       ");
        pct(m->chance);
        putchar('\n');
        if (m->kind == VLP_TASK_NLVR) {
            printf("  majority     ");
            pct(m->majority);
            printf("  (always %s)\n", m->majority_label ? "true" : "false");
        }
        break;
    }
}

static char *abs_path(const char *p) {
    char *r = realpath(p, NULL);
    if (!r) r = strdup(p);
    return r;
}

int vlp_cmd_score(int argc, char **argv);
int vlp_cmd_score(int argc, char **argv) {
    const char *task_s = NULL, *data = NULL, *pred = NULL, *train = NULL, *split = NULL, *out = NULL;
    int as_json = 0;
    vlp_task_read_options ro = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (cli_is_help(a)) {
            score_usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--strict")) {
            ro.strict = 1;
        } else if (!strcmp(a, "--check-images")) {
            ro.check_images = 1;
        } else if (!strcmp(a, "--task")) dst = &task_s;
        else if (!strcmp(a, "--data")) dst = &data;
        else if (!strcmp(a, "--predictions") || !strcmp(a, "--predictions-in")) dst = &pred;
        else if (!strcmp(a, "--train")) dst = &train;
        else if (!strcmp(a, "--split")) dst = &split;
        else if (!strcmp(a, "--out")) dst = &out;
        else {
            fprintf(stderr, "vlp score: unknown option '%s' (see vlp score --help)\n", a);
            return CLI_USAGE;
        }
        if (dst && !(*dst = cli_value("score", argc, argv, &i))) return CLI_USAGE;
    }
    if (!task_s || !data || !pred) {
        fprintf(stderr, "vlp score: --task, --data and --predictions are required (see vlp score --help)\n");
        return CLI_USAGE;
    }
    vlp_task_kind kind;
    if (vlp_task_from_name(task_s, &kind)) {
        fprintf(stderr, "vlp score: --task: %s\n", vlp_last_error());
        return CLI_USAGE;
    }
    char split_buf[256];
    if (!split) {
        cli_task_split(data, task_s, split_buf, sizeof split_buf);
        split = split_buf;
    }
    int rc = CLI_FAIL;
    vlp_task_set *ds = NULL, *tr = NULL;
    vlp_task_predictions *p = NULL;
    char *auto_train = NULL, *js = NULL;
    vlp_task_metrics m = {0};
    int scored = 0;
    if (!(ds = vlp_task_read(data, kind, &ro))) {
        fprintf(stderr, "vlp score: %s\n", vlp_last_error());
        goto done;
    }
    cli_report_bad_rows("score", ds);
    if (kind == VLP_TASK_VQA && !train) {
        const char *slash = strrchr(data, '/');
        size_t dl = slash ? (size_t)(slash - data + 1) : 0;
        auto_train = malloc(dl + 16);
        if (auto_train) {
            memcpy(auto_train, data, dl);
            strcpy(auto_train + dl, "vqa-train.jsonl");
            if (access(auto_train, R_OK) == 0 && strcmp(auto_train, data)) train = auto_train;
        }
        if (!train) fprintf(stderr, "vlp score: no --train file: no majority baselines\n");
    }
    if (train) {
        if (!(tr = vlp_task_read(train, VLP_TASK_VQA, NULL))) {
            fprintf(stderr, "vlp score: --train: %s\n", vlp_last_error());
            goto done;
        }
        cli_report_bad_rows("score", tr);
    }
    if (!(p = vlp_task_predictions_read(pred, kind))) {
        fprintf(stderr, "vlp score: %s\n", vlp_last_error());
        goto done;
    }
    if (vlp_task_score(ds, p, tr, &m)) {
        fprintf(stderr, "vlp score: %s\n", vlp_last_error());
        goto done;
    }
    scored = 1;
    if (!(js = vlp_task_metrics_json(&m))) {
        fprintf(stderr, "vlp score: %s\n", vlp_last_error());
        goto done;
    }
    if (m.n_skipped)
        fprintf(stderr, "vlp score: %s: %lld examples left out: their prediction rows are skipped rows\n", pred,
                (long long)m.n_skipped);
    if (as_json) printf("%s\n", js);
    else print_table(&m, task_s, split, data);
    if (out) {
        char *ad = abs_path(data), *ap = abs_path(pred), *at = train ? abs_path(train) : NULL;
        /* task, split, data, predictions, n, metrics: the format vlp report reads */
        json_t *o = json_object(), *metrics = json_loads(js, 0, NULL);
        json_object_set_new(o, "task", json_string(task_s));
        json_object_set_new(o, "split", json_string(split));
        json_object_set_new(o, "data", json_string(ad));
        json_object_set_new(o, "predictions", json_string(ap));
        if (at) json_object_set_new(o, "train", json_string(at));
        json_object_set_new(o, "n", json_integer(m.n));
        /* data rows not scored: skipped by the reader, or skipped rows of the predictions */
        json_object_set_new(o, "rows", json_integer(ds->n_rows));
        json_object_set_new(o, "skipped", json_integer(ds->n_bad + m.n_skipped));
        json_object_set_new(o, "metrics", metrics ? metrics : json_object());
        if (json_dump_file(o, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) == 0)
            rc = CLI_OK;
        else
            fprintf(stderr, "vlp score: cannot write %s\n", out);
        json_decref(o);
        free(ad);
        free(ap);
        free(at);
    } else {
        rc = CLI_OK;
    }
done:
    free(js);
    if (scored) vlp_task_metrics_free(&m);
    vlp_task_predictions_free(p);
    vlp_task_set_free(ds);
    vlp_task_set_free(tr);
    free(auto_train);
    return rc;
}
