/* vlp eval for VL models: retrieval by the ITC heads, and with --rerank K the ITM re-scoring
 * of every query's top K (ALBEF / BLIP), next to the ITC-only numbers. A model with an ITM
 * head and no ITC heads (ViLT) ranks every candidate by ITM ("itm_full": texts x images
 * fusion passes, capped by --max-pairs). */
#include "cli.h"
#include "vlp_data.h"
#include "vlp_text.h"
#include "vlp_train.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A VL model directory: config.json with a "family". */
static int is_vl_model(const char *path) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", path);
    json_t *j = json_load_file(p, 0, NULL);
    int vl = j && json_is_string(json_object_get(j, "family"));
    json_decref(j);
    return vl;
}

int vlp_eval_wants_vl(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--rerank")) return 1;
        if (!strcmp(argv[i], "--model") && i + 1 < argc && is_vl_model(argv[i + 1])) return 1;
    }
    return 0;
}

static int wp_tokenize(void *ctx, const char *text, int T, int32_t *ids) {
    int n = vlp_tokenizer_encode_pair(ctx, text, NULL, T, ids, NULL, NULL);
    return n < 0 ? n : 0;
}

static json_t *recall_json(const vlp_recall *r) {
    return json_pack("{s:f, s:f, s:f, s:f, s:f}", "r1", r->r1, "r5", r->r5, "r10", r->r10, "mean_rank", r->mean_rank,
                     "median_rank", r->median_rank);
}

typedef struct {
    cli_progress p;
    const char *name;
} itm_progress;

static void on_itm_progress(void *ctx, int64_t done, int64_t total) {
    itm_progress *ip = ctx;
    if (done == 0) cli_progress_start(&ip->p, "  ITM passes", "pairs", total);
    else if (done < total) cli_progress_update(&ip->p, done);
    else cli_progress_end(&ip->p, done);
}

static void print_rows(const char *label, const vlp_retrieval_result *r) {
    const vlp_recall *dir[2] = {&r->t2i, &r->i2t};
    for (int k = 0; k < 2; k++)
        printf("  %-8s %-12s %6.2f%% %6.2f%% %6.2f%% %10.1f\n", label, k ? "image->text" : "text->image",
               100 * dir[k]->r1, 100 * dir[k]->r5, 100 * dir[k]->r10, dir[k]->mean_rank);
}

int vlp_cmd_eval_vl(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *task = "retrieval", *data[16];
    int nd = 0, json = 0;
    long batch = 128, rerank = 0, max_pairs = 200000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: vlp eval --model VL_MODEL --data SPEC... [--task retrieval] [--rerank K] [--vocab FILE]\n"
                   "                [--batch N] [--max-pairs N] [--json]\n"
                   "Retrieval with a VL model (dual_stream or mome with ITC heads): the ITC similarities rank every\n"
                   "candidate; --rerank K re-scores the top K of each query (text->image and image->text) with the\n"
                   "ITM probability of the fused pair and reports both (K = 1: the ITC order). Texts are WordPiece\n"
                   "(--vocab, else MODEL/vocab.txt if present, else bert-base-uncased).\n"
                   "A model with an ITM head but no ITC heads (single_stream, ViLT) ranks every candidate by the ITM\n"
                   "probability (ViLT's protocol), reported as \"itm_full\": every text x image pair is one fusion\n"
                   "pass (191 x 191 = 36,481 for data/emoji/unseen.tsv; 1720 x 1720 = 3M for style.tsv).\n"
                   "  --max-pairs N   refuse a data set above N text x image pairs (default 200000)\n"
                   "  --batch N       pairs per forward pass (default 128)\n"
                   "exit status: 0 success, 1 failure, 2 usage error\n");
            return CLI_OK;
        } else if (!strcmp(a, "--model")) {
            if (!(model = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--vocab")) {
            if (!(vocab = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--data")) {
            if (nd == 16) {
                fprintf(stderr, "vlp eval: at most 16 --data sets\n");
                return CLI_USAGE;
            }
            if (!(data[nd++] = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--task")) {
            if (!(task = cli_value("eval", argc, argv, &i))) return CLI_USAGE;
            if (strcmp(task, "retrieval")) {
                fprintf(stderr, "vlp eval: a VL model evaluates --task retrieval here, got '%s'\n", task);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--rerank")) {
            if (!(v = cli_value("eval", argc, argv, &i)) || !cli_int("eval", "--rerank", v, 1, 100000, &rerank))
                return CLI_USAGE;
        } else if (!strcmp(a, "--max-pairs")) {
            if (!(v = cli_value("eval", argc, argv, &i)) ||
                !cli_int("eval", "--max-pairs", v, 1, 2147483647L, &max_pairs))
                return CLI_USAGE;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = cli_value("eval", argc, argv, &i)) || !cli_int("eval", "--batch", v, 1, 65536, &batch))
                return CLI_USAGE;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "vlp eval: unknown option '%s' for a VL model (see vlp eval --rerank 1 --help)\n", a);
            return CLI_USAGE;
        }
    }
    if (!model || !nd) {
        fprintf(stderr, "vlp eval: need --model VL_MODEL and --data SPEC\n");
        return CLI_USAGE;
    }
    vlp_vl *m = vlp_vl_load(model);
    if (!m) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    vlp_tokenizer *tok = vlp_vl_tokenizer_load(&m->cfg, model, vocab);
    int rc = CLI_OK;
    if (!tok) {
        fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
        rc = CLI_FAIL;
    }
    /* no ITC heads but an ITM head: every pair through the fusion encoder */
    int itm_full = !rc && (m->cfg.embed_dim <= 0 || !m->vis_proj) && m->itm_w && m->cfg.family != VLP_VL_CAPTION;
    if (itm_full && rerank > 1) {
        fprintf(stderr, "vlp eval: --rerank needs ITC heads; this %s model ranks every candidate by ITM (itm_full)\n",
                vlp_vl_family_name(m->cfg.family));
        rc = CLI_USAGE;
    }
    json_t *out = json_object();
    json_object_set_new(out, "model", json_string(model));
    json_object_set_new(out, "family", json_string(vlp_vl_family_name(m->cfg.family)));
    for (int d = 0; !rc && d < nd; d++) {
        vlp_dataset *ds = vlp_dataset_open(data[d], NULL);
        vlp_retrieval_result itc, rr;
        const char *b = strrchr(data[d], '/');
        int64_t ni = 0, passes = ds && itm_full ? vlp_vl_itm_full_pairs(ds, &ni) : 0;
        if (ds && itm_full) {
            fprintf(stderr, "vlp eval: %s: ITM over every pair: %lld texts x %lld images = %lld fusion passes\n",
                    b ? b + 1 : data[d], (long long)vlp_dataset_size(ds), (long long)ni, (long long)passes);
            if (passes > max_pairs) {
                fprintf(stderr, "vlp eval: %s: %lld ITM passes is above --max-pairs %ld (ranking by ITM costs one "
                                "fusion pass per text x image pair); raise --max-pairs or use a smaller set\n",
                        b ? b + 1 : data[d], (long long)passes, max_pairs);
                vlp_dataset_free(ds);
                rc = CLI_FAIL;
                break;
            }
        }
        itm_progress ip = {.name = data[d]};
        vlp_vl_itm_full_options io = {.batch = (int)batch, .max_pairs = max_pairs, .on_progress = on_itm_progress,
                                      .progress_ctx = &ip};
        double t0 = cli_now();
        if (!ds || (itm_full ? vlp_vl_eval_itm_full(m, wp_tokenize, tok, ds, &io, &itc, NULL)
                             : vlp_vl_eval_retrieval(m, wp_tokenize, tok, ds, (int)batch, (int)rerank, &itc, &rr))) {
            fprintf(stderr, "vlp eval: %s\n", vlp_last_error());
            vlp_dataset_free(ds);
            rc = CLI_FAIL;
            break;
        }
        double secs = cli_now() - t0;
        vlp_dataset_free(ds);
        json_t *o = json_pack("{s:s, s:I, s:I, s:f}", "data", data[d], "images", (json_int_t)itc.i2t.queries, "texts",
                              (json_int_t)itc.t2i.queries, "seconds", secs);
        if (itm_full) {
            json_object_set_new(o, "method", json_string("itm_full"));
            json_object_set_new(o, "itm_passes", json_integer(passes));
            json_object_set_new(o, "itm_full", json_pack("{s:o, s:o}", "text_to_image", recall_json(&itc.t2i),
                                                         "image_to_text", recall_json(&itc.i2t)));
        } else {
            json_object_set_new(o, "text_to_image", recall_json(&itc.t2i));
            json_object_set_new(o, "image_to_text", recall_json(&itc.i2t));
        }
        if (rerank > 1)
            json_object_set_new(o, "rerank", json_pack("{s:i, s:o, s:o}", "k", (int)rerank, "text_to_image",
                                                       recall_json(&rr.t2i), "image_to_text", recall_json(&rr.i2t)));
        json_t *arr = json_object_get(out, "retrieval");
        if (!arr) json_object_set_new(out, "retrieval", arr = json_array());
        json_array_append_new(arr, o);
        if (!json) {
            printf("retrieval on %s: %lld images, %lld texts (%.1f s)\n", b ? b + 1 : data[d],
                   (long long)itc.i2t.queries, (long long)itc.t2i.queries, secs);
            if (itm_full)
                printf("  every candidate ranked by the ITM probability: %lld fusion passes (%.0f pairs/s)\n",
                       (long long)passes, secs > 0 ? (double)passes / secs : 0.0);
            printf("  %-8s %-12s %7s %7s %7s %10s\n", "", "", "R@1", "R@5", "R@10", "mean rank");
            print_rows(itm_full ? "ITM-full" : "ITC", &itc);
            if (rerank > 1) {
                char lab[32];
                snprintf(lab, sizeof lab, "ITM@%ld", rerank);
                print_rows(lab, &rr);
            }
        }
    }
    if (!rc && json) {
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (s) printf("%s\n", s);
        free(s);
    }
    json_decref(out);
    vlp_tokenizer_free(tok);
    vlp_vl_free(m);
    return rc;
}
