/* vlp probe: a linear probe (logistic regression) on a CLIP model's frozen image embeddings for one
 * VQA question type, trained on the train file's rows of that type, scored on the data file's. */
#include "cli.h"
#include "vlp.h"
#include "vlp_downstream.h"
#include "vlp_eval.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int vlp_cmd_probe(int argc, char **argv);

static void help(void) {
    printf("usage: vlp probe --model M --train VQA-TRAIN.jsonl --data VQA-PART.jsonl [options]\n"
           "Linear probe: multinomial logistic regression on the model's frozen, normalised image embeddings,\n"
           "classes = the train answers of one question type, trained full-batch (deterministic), scored on\n"
           "the data file's rows of that type (accuracy and the majority baseline of `vlp score`).\n"
           "  --type T          question type (default category)\n"
           "  --epochs N        gradient steps (default 300); --lr X (default 2); --wd X (default 1e-4)\n"
           "  --predictions F   write one {\"answer\", \"row\"} line per probed row (row: 0-based row of the data file)\n"
           "  --batch N         images per forward pass (default 64); --json: JSON instead of the table\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

/* Rows of the set with the type: a shallow view (the examples belong to s). */
static vlp_task_set *view_of_type(const vlp_task_set *s, const char *type) {
    vlp_task_set *v = calloc(1, sizeof *v);
    if (!v || !(v->ex = malloc((size_t)(s->n ? s->n : 1) * sizeof *v->ex))) {
        free(v);
        return NULL;
    }
    v->kind = s->kind;
    v->path = s->path;
    for (int64_t i = 0; i < s->n; i++)
        if (!strcmp(s->ex[i].type, type)) v->ex[v->n++] = s->ex[i];
    v->n_rows = v->n;
    return v;
}

static void view_free(vlp_task_set *v) {
    if (v) free(v->ex);
    free(v);
}

static float *embed(vlp_clip_runner *r, const vlp_task_set *v, int E) {
    const char **paths = malloc((size_t)(v->n ? v->n : 1) * sizeof *paths);
    float *f = malloc((size_t)(v->n ? v->n : 1) * E * sizeof(float));
    int got = -1;
    if (paths && f) {
        for (int64_t i = 0; i < v->n; i++) paths[i] = v->ex[i].image;
        got = vlp_clip_embed_image_files(r, paths, (int)v->n, 1, f, NULL, NULL, NULL, NULL, NULL);
        if (got < 0) fprintf(stderr, "vlp probe: %s\n", vlp_last_error());
        else if (got < v->n) fprintf(stderr, "vlp probe: %s: %lld images could not be read\n", v->path, (long long)(v->n - got));
    } else {
        fprintf(stderr, "vlp probe: out of memory\n");
    }
    free(paths);
    if (got < v->n) {
        free(f);
        return NULL;
    }
    return f;
}

int vlp_cmd_probe(int argc, char **argv) {
    const char *model = NULL, *train = NULL, *data = NULL, *type = "category", *pred = NULL;
    long epochs = 300, batch = 64;
    double lr = 2.0, wd = 1e-4;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], **dst = NULL, *v;
        if (cli_is_help(a)) {
            help();
            return CLI_OK;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--epochs")) {
            if (!(v = cli_value("probe", argc, argv, &i)) || !cli_int("probe", a, v, 0, 1000000, &epochs)) return CLI_USAGE;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = cli_value("probe", argc, argv, &i)) || !cli_int("probe", a, v, 1, 65536, &batch)) return CLI_USAGE;
        } else if (!strcmp(a, "--lr")) {
            if (!(v = cli_value("probe", argc, argv, &i)) || !cli_float("probe", a, v, 0, 1e6, &lr)) return CLI_USAGE;
        } else if (!strcmp(a, "--wd")) {
            if (!(v = cli_value("probe", argc, argv, &i)) || !cli_float("probe", a, v, 0, 1e6, &wd)) return CLI_USAGE;
        } else if (!strcmp(a, "--model")) dst = &model;
        else if (!strcmp(a, "--train")) dst = &train;
        else if (!strcmp(a, "--data")) dst = &data;
        else if (!strcmp(a, "--type")) dst = &type;
        else if (!strcmp(a, "--predictions")) dst = &pred;
        else {
            fprintf(stderr, "vlp probe: unknown option '%s' (see vlp probe --help)\n", a);
            return CLI_USAGE;
        }
        if (dst && !(*dst = cli_value("probe", argc, argv, &i))) return CLI_USAGE;
    }
    if (!model || !train || !data) {
        fprintf(stderr, "vlp probe: --model, --train and --data are required (see vlp probe --help)\n");
        return CLI_USAGE;
    }
    int rc = CLI_FAIL, scored = 0;
    vlp_task_set *tr = NULL, *ds = NULL, *vt = NULL, *vd = NULL;
    vlp_clip *m = NULL;
    vlp_clip_runner *r = NULL;
    float *xt = NULL, *xd = NULL, *w = NULL;
    int *yt = NULL, *pd = NULL;
    char **classes = NULL;
    int C = 0;
    vlp_task_predictions *p = NULL;
    vlp_task_metrics met = {0};
    if (!(tr = vlp_task_read(train, VLP_TASK_VQA, NULL)) || !(ds = vlp_task_read(data, VLP_TASK_VQA, NULL))) {
        fprintf(stderr, "vlp probe: %s\n", vlp_last_error());
        goto done;
    }
    if (!(vt = view_of_type(tr, type)) || !(vd = view_of_type(ds, type))) goto nomem;
    if (!vt->n || !vd->n) {
        fprintf(stderr, "vlp probe: no '%s' questions in %s\n", type, vt && !vt->n ? train : data);
        goto done;
    }
    /* classes: the distinct normalised train answers, in order of first appearance */
    if (!(classes = calloc((size_t)vt->n, sizeof *classes)) || !(yt = malloc((size_t)vt->n * sizeof *yt))) goto nomem;
    for (int64_t i = 0; i < vt->n; i++) {
        char *a = vlp_answer_normalize(vt->ex[i].answer);
        if (!a) goto nomem;
        int c = 0;
        while (c < C && strcmp(classes[c], a)) c++;
        if (c == C) classes[C++] = a;
        else free(a);
        yt[i] = c;
    }
    if (C < 2) {
        fprintf(stderr, "vlp probe: '%s' has %d answer in %s; a probe needs two or more\n", type, C, train);
        goto done;
    }
    if (!(m = vlp_clip_load(model)) || !(r = vlp_clip_runner_new(m, (int)batch))) {
        fprintf(stderr, "vlp probe: %s\n", vlp_last_error());
        goto done;
    }
    int E = m->cfg.embed_dim;
    double t0 = cli_now();
    if (!(xt = embed(r, vt, E)) || !(xd = embed(r, vd, E))) goto done; /* embed() said why */
    if (!(w = malloc((size_t)C * (E + 1) * sizeof *w)) || !(pd = malloc((size_t)vd->n * sizeof *pd))) goto nomem;
    if (vlp_logreg_train(xt, yt, vt->n, E, C, (int)epochs, (float)lr, (float)wd, w)) {
        fprintf(stderr, "vlp probe: %s\n", vlp_last_error());
        goto done;
    }
    vlp_logreg_predict(w, xd, vd->n, E, C, pd);
    if (!(p = calloc(1, sizeof *p)) || !(p->text = calloc((size_t)vd->n, sizeof *p->text))) goto nomem;
    p->kind = VLP_TASK_VQA;
    p->n = vd->n;
    for (int64_t i = 0; i < vd->n; i++)
        if (!(p->text[i] = strdup(classes[pd[i]]))) goto nomem;
    if (vlp_task_score(vd, p, vt, &met)) {
        fprintf(stderr, "vlp probe: %s\n", vlp_last_error());
        goto done;
    }
    scored = 1;
    double secs = cli_now() - t0;
    if (pred) {
        FILE *f = fopen(pred, "w");
        for (int64_t i = 0; f && i < vd->n; i++) {
            json_t *o = json_pack("{s:s, s:I}", "answer", p->text[i], "row", (json_int_t)vd->ex[i].row);
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (s) fprintf(f, "%s\n", s);
            free(s);
            json_decref(o);
        }
        if (!f || fclose(f)) {
            fprintf(stderr, "vlp probe: cannot write %s\n", pred);
            goto done;
        }
    }
    if (as_json)
        printf("{\"task\": \"vqa\", \"protocol\": \"linear probe\", \"type\": \"%s\", \"classes\": %d, \"train\": %lld, "
               "\"n\": %lld, \"accuracy\": %.10g, \"majority\": %.10g, \"chance\": %.10g, \"seconds\": %.3f}\n",
               type, C, (long long)vt->n, (long long)vd->n, met.accuracy, met.majority, 1.0 / C, secs);
    else
        printf("linear probe, vqa '%s' (%s): %d classes, %lld train rows, %lld test rows (%.1f s)\n"
               "  accuracy %6.2f%%   majority %6.2f%%   chance %6.2f%%\n",
               type, data, C, (long long)vt->n, (long long)vd->n, secs, 100 * met.accuracy, 100 * met.majority,
               100.0 / C);
    rc = CLI_OK;
    goto done;
nomem:
    fprintf(stderr, "vlp probe: out of memory\n");
done:
    if (scored) vlp_task_metrics_free(&met);
    vlp_task_predictions_free(p);
    for (int c = 0; classes && c < C; c++) free(classes[c]);
    free(classes);
    free(yt);
    free(pd);
    free(xt);
    free(xd);
    free(w);
    vlp_clip_runner_free(r);
    vlp_clip_free(m);
    view_free(vt);
    view_free(vd);
    vlp_task_set_free(tr);
    vlp_task_set_free(ds);
    return rc;
}
