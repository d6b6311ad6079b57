/* vlp eval: retrieval (Recall@1/5/10 and mean rank, both directions) and zero-shot
 * classification (prompt templates averaged per class) of a CLIP model. */
#include "cli.h"
#include "vlp_data.h"
#include "vlp_train.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: vlp eval --model M (--data SPEC... | --classes ZEROSHOT.json) [--task retrieval|zeroshot|all]\n"
           "                [--json] [--batch N] [--csv-img-key K] [--csv-caption-key K]\n"
           "Retrieval on each --data set (a .tsv/.csv, folder or tar shards; every caption's image is the one of\n"
           "its row; rows sharing an image path count as one image): text->image and image->text Recall@1/5/10\n"
           "and mean rank over all items of the set. Zero-shot classification from ZEROSHOT.json (as written by\n"
           "vlp data emoji: classes, templates with {} for the class name, images with labels): each class's\n"
           "text embeddings averaged over templates, renormalised; top-1 and top-5 accuracy.\n"
           "--task defaults to retrieval with --data, zeroshot with --classes, all with both.\n"
           "--json: one JSON object on stdout instead of the table.\n"
           "Downstream tasks: vlp eval --task vqa|nlvr|ground2|ground3|mc --model M --data FILE.jsonl\n"
           "  [--predictions OUT.jsonl] [--out EVAL.json]: a dual encoder zero-shot, a pre-trained fusion model\n"
           "  zero-shot (mc, by its ITM head), or a model fine-tuned by vlp finetune (its head; lm: generated or\n"
           "  ranked answers); see vlp eval --task mc --help\n"
           "  --task caption: a captioning model (beam search); BLEU-4, CIDEr-D; see vlp eval --task caption --help\n"
           "VL models (vlp train with a family): retrieval by ITC; --rerank K re-scores each query's top K\n"
           "  with the ITM head (ALBEF / BLIP style); a model with ITM but no ITC heads (ViLT) ranks every\n"
           "  pair by ITM (itm_full, --max-pairs N); see vlp eval --rerank 1 --help\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

static const char *base_name(const char *spec) {
    const char *s = strrchr(spec, '/');
    return s ? s + 1 : spec;
}

int vlp_cmd_eval_task(int argc, char **argv); /* cmd_eval_task.c: downstream tasks */
int vlp_eval_wants_vl(int argc, char **argv);  /* cmd_eval_vl.c: a VL --model or --rerank */
int vlp_cmd_eval_vl(int argc, char **argv);

int vlp_cmd_eval(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++) /* --task vqa|nlvr|ground2|ground3|mc|caption: downstream */
        if (!strcmp(argv[i], "--task") && strcmp(argv[i + 1], "retrieval") && strcmp(argv[i + 1], "zeroshot") &&
            strcmp(argv[i + 1], "all") && strcmp(argv[i + 1], "rerank"))
            return vlp_cmd_eval_task(argc, argv);
    if (vlp_eval_wants_vl(argc, argv)) return vlp_cmd_eval_vl(argc, argv);
    const char *model = NULL, *classes = NULL, *task = NULL, *img_key = NULL, *cap_key = NULL;
    const char *data[16];
    int nd = 0, json = 0;
    long batch = 128;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help();
            return CLI_OK;
        } else if (!strcmp(a, "--model")) {
            if (!(model = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--data")) {
            if (nd == 16) {
                fprintf(stderr, "vlp eval: at most 16 --data sets\n");
                return CLI_USAGE;
            }
            if (!(data[nd++] = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--classes")) {
            if (!(classes = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--task")) {
            if (!(task = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
            if (strcmp(task, "retrieval") && strcmp(task, "zeroshot") && strcmp(task, "all")) {
                fprintf(stderr, "vlp eval: --task wants retrieval, zeroshot or all, got '%s'\n", task);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--csv-img-key")) {
            if (!(img_key = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--csv-caption-key")) {
            if (!(cap_key = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--batch")) {
            const char *v = cli_value("eval", argc, argv, &i);
            if (!v || !cli_int("eval", "--batch", v, 1, 65536, &batch)) return CLI_USAGE;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "vlp eval: unknown option '%s' (see vlp eval --help)\n", a);
            return CLI_USAGE;
        }
    }
    if (!task) task = nd && classes ? "all" : classes ? "zeroshot" : "retrieval";
    int do_ret = strcmp(task, "zeroshot") != 0, do_zs = strcmp(task, "retrieval") != 0;
    if (!model || (do_ret && !nd) || (do_zs && !classes)) {
        fprintf(stderr, "vlp eval: need --model, and --data for retrieval or --classes for zeroshot\n");
        return CLI_USAGE;
    }
    vlp_clip *m = vlp_clip_load(model);
    if (!m) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    json_t *out = json_object();
    json_object_set_new(out, "model", json_string(model));
    int rc = CLI_OK;
    vlp_dataset_options dopt = {.csv_img_key = img_key, .csv_caption_key = cap_key};
    for (int d = 0; do_ret && d < nd && !rc; d++) {
        vlp_dataset *ds = vlp_dataset_open(data[d], &dopt);
        vlp_retrieval_result r;
        double t0 = cli_now();
        if (!ds || vlp_eval_retrieval(m, ds, (int)batch, &r)) {
            fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
            vlp_dataset_free(ds);
            rc = CLI_FAIL;
            break;
        }
        double secs = cli_now() - t0;
        vlp_dataset_free(ds);
        json_t *o = json_pack("{s:s, s:I, s:I, s:f}", "data", data[d], "images", (json_int_t)r.i2t.queries, "texts",
                              (json_int_t)r.t2i.queries, "seconds", secs);
        const vlp_recall *dir[2] = {&r.t2i, &r.i2t};
        const char *names[2] = {"text_to_image", "image_to_text"};
        for (int k = 0; k < 2; k++)
            json_object_set_new(o, names[k],
                                json_pack("{s:f, s:f, s:f, s:f, s:f}", "r1", dir[k]->r1, "r5", dir[k]->r5, "r10",
                                          dir[k]->r10, "mean_rank", dir[k]->mean_rank, "median_rank",
                                          dir[k]->median_rank));
        json_t *arr = json_object_get(out, "retrieval");
        if (!arr) json_object_set_new(out, "retrieval", arr = json_array());
        json_array_append_new(arr, o);
        if (!json) {
            printf("retrieval on %s: %lld images, %lld texts (%.1f s)\n", base_name(data[d]),
                   (long long)r.i2t.queries, (long long)r.t2i.queries, secs);
            printf("  %-14s %7s %7s %7s %10s %12s\n", "", "R@1", "R@5", "R@10", "mean rank", "median rank");
            for (int k = 0; k < 2; k++)
                printf("  %-14s %6.2f%% %6.2f%% %6.2f%% %10.1f %12.1f\n", k ? "image->text" : "text->image",
                       100 * dir[k]->r1, 100 * dir[k]->r5, 100 * dir[k]->r10, dir[k]->mean_rank,
                       dir[k]->median_rank);
        }
    }
    if (!rc && do_zs) {
        vlp_zeroshot_result z;
        double t0 = cli_now();
        if (vlp_eval_zeroshot_file(m, classes, (int)batch, &z)) {
            fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
            rc = CLI_FAIL;
        } else {
            double secs = cli_now() - t0;
            json_object_set_new(out, "zeroshot",
                                json_pack("{s:s, s:I, s:i, s:f, s:f, s:f, s:f}", "classes_file", classes, "images",
                                          (json_int_t)z.n, "classes", z.classes, "top1", z.top1, "top5", z.top5,
                                          "chance", 1.0 / z.classes, "seconds", secs));
            if (!json)
                printf("zero-shot on %s: %lld images, %d classes: top-1 %.2f%%%s%.2f%%  (chance %.1f%%)\n",
                       base_name(classes), (long long)z.n, z.classes, 100 * z.top1,
                       z.classes > 5 ? "  top-5 " : "", z.classes > 5 ? 100 * z.top5 : 0.0, 100.0 / z.classes);
        }
    }
    if (!rc && json) {
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (s) printf("%s\n", s);
        free(s);
    }
    json_decref(out);
    vlp_clip_free(m);
    return rc;
}
