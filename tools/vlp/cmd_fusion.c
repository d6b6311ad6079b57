/* Fusion / captioning model commands (include/vlp_vl.h):
 *   vlp vl-init  a randomly initialised VL model of a family preset
 *   vlp caption  captions for images (captioning family): beam search (default), greedy or nucleus
 *   vlp match    image-text matching probability of texts for an image (ITM head)
 *   vlp fill     the most likely tokens at each [MASK] of a text, given an image (MLM head)
 * Text goes through the model's tokenizer (its config: WordPiece or CLIP BPE; MODEL/vocab.txt or
 * merges.txt when present, else the built-in vocabulary). */
#include "cli.h"
#include "vlp_image.h"
#include "vlp_text.h"
#include "vlp_vl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- shared ------------------------------------------------------------------------------ */

static vlp_tokenizer *load_tokenizer(const char *cmd, const char *model_dir, const vlp_vl *m) {
    vlp_tokenizer *t = vlp_vl_tokenizer_load(&m->cfg, model_dir, NULL);
    if (!t) fprintf(stderr, "vlp %s: %s\n", cmd, vlp_last_error());
    return t;
}

static int load_pixels(const char *cmd, const vlp_vl *m, const char *path, float *out) {
    if (!vlp_vl_load_pixels(m, path, out)) return CLI_OK;
    fprintf(stderr, "vlp %s: %s\n", cmd, vlp_last_error());
    return CLI_FAIL;
}

static vlp_vl *load_model(const char *cmd, const char *path, int want_caption) {
    vlp_vl *m = vlp_vl_load(path);
    if (!m) {
        fprintf(stderr, "vlp %s: %s\n", cmd, vlp_last_error());
        return NULL;
    }
    if ((m->cfg.family == VLP_VL_CAPTION) != want_caption) {
        fprintf(stderr, "vlp %s: %s is a %s model; this command needs %s\n", cmd, path,
                vlp_vl_family_name(m->cfg.family),
                want_caption ? "a captioning model" : "a fusion model (single_stream, dual_stream or mome)");
        vlp_vl_free(m);
        return NULL;
    }
    return m;
}

/* Fused text states of B (image, text) rows on a fresh inference graph. */
typedef struct {
    vlp_graph *g;
    vlp_tensor *px, *ids, *mask, *out;
} fuse_graph;

static int build_fused(const vlp_vl *m, int B, int T, int head, fuse_graph *fg) {
    int S = m->cfg.image_size;
    int64_t sp[4] = {B, 3, S, S}, st[2] = {B, T};
    fg->g = vlp_graph_new();
    vlp_graph *g = fg->g;
    fg->px = vlp_input(g, "pixels", VLP_F32, 4, sp);
    fg->ids = vlp_input(g, "ids", VLP_I32, 2, st);
    fg->mask = vlp_input(g, "mask", VLP_I32, 2, st);
    vlp_tensor *ie = vlp_vl_embed_image(g, m, fg->px, NULL, NULL), *te = vlp_vl_embed_text(g, m, fg->ids);
    int emb = vlp_vl_fuses_embeddings(m);
    vlp_tensor *img = emb ? ie : vlp_vl_encode_image(g, m, ie), *txt = emb ? te : vlp_vl_encode_text(g, m, te, fg->mask);
    vlp_tensor *fused = vlp_vl_fuse(g, m, img, txt, fg->mask, NULL);
    fg->out = head ? vlp_softmax(g, vlp_vl_itm_logits(g, m, fused)) : vlp_softmax(g, vlp_vl_lm_logits(g, m, fused));
    if (!fg->out || vlp_graph_error(g)) {
        fprintf(stderr, "vlp: %s\n", vlp_graph_error(g) ? vlp_graph_error(g) : "cannot build the model graph");
        return VLP_ERR_ARG;
    }
    if (vlp_graph_build(g, fg->out, VLP_BUILD_INFERENCE)) {
        fprintf(stderr, "vlp: %s\n", vlp_last_error());
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* ---- vl-init ------------------------------------------------------------------------------- */

int vlp_cmd_vl_init(int argc, char **argv) {
    const char *preset = NULL, *vocab = NULL, *out = NULL;
    int kind = VLP_TOKENIZER_WORDPIECE;
    long seed = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: vlp vl-init --preset NAME [--tokenizer wordpiece|clip_bpe] [--vocab FILE] [--seed N] OUT_DIR\n"
                   "Writes a randomly initialised fusion / captioning model: OUT_DIR/model.safetensors and\n"
                   "OUT_DIR/config.json (with its family, objectives and tokenizer), sized for the tokenizer's\n"
                   "vocabulary: WordPiece (default; --vocab vocab.txt, copied to OUT_DIR/vocab.txt, else\n"
                   "bert-base-uncased, built in) or CLIP BPE (--tokenizer clip_bpe: --vocab merges.txt[.gz], else\n"
                   "CLIP's, built in; <|startoftext|> / <|endoftext|> serve as [CLS] / [SEP], and [MASK] and\n"
                   "[PAD] get the two ids after the BPE vocabulary). A WordPiece vocabulary needs [UNK], [PAD],\n"
                   "[CLS], [SEP] and [MASK], and each token once: a missing special token or a duplicate is an\n"
                   "error (exit 1) naming the file and the token.\n"
                   "Presets: vilt, albef, albef-coattn, vlmo, blip (base sizes), each also as NAME-tiny.\n");
            return CLI_OK;
        } else if (!strcmp(a, "--preset")) {
            if (!(preset = cli_value("vl-init", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--vocab")) {
            if (!(vocab = cli_value("vl-init", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            const char *v = cli_value("vl-init", argc, argv, &i);
            if (!v) return CLI_USAGE;
            if ((kind = vlp_tokenizer_kind_parse(v)) < 0) {
                fprintf(stderr, "vlp vl-init: --tokenizer wants wordpiece or clip_bpe, got '%s'\n", v);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            const char *v = cli_value("vl-init", argc, argv, &i);
            if (!v || !cli_int("vl-init", "--seed", v, 0, 2147483647L, &seed)) return CLI_USAGE;
        } else if (a[0] == '-' || out) {
            fprintf(stderr, "vlp vl-init: unexpected argument '%s' (see vlp vl-init --help)\n", a);
            return CLI_USAGE;
        } else {
            out = a;
        }
    }
    if (!preset || !out) {
        fprintf(stderr, "vlp vl-init: give --preset NAME and OUT_DIR\n");
        return CLI_USAGE;
    }
    vlp_vl_config cfg;
    if (vlp_vl_preset(preset, &cfg)) {
        fprintf(stderr, "vlp vl-init: %s\n", vlp_last_error());
        return CLI_USAGE;
    }
    vlp_tokenizer *t = vlp_tokenizer_load(kind, vocab);
    int bad = !t || vlp_vl_config_set_tokenizer(&cfg, t, vocab);
    vlp_tokenizer_free(t);
    if (bad) {
        fprintf(stderr, "vlp vl-init: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    vlp_vl *m = vlp_vl_new(&cfg, (uint64_t)seed);
    if (!m || vlp_vl_save(m, out)) {
        fprintf(stderr, "vlp vl-init: %s\n", vlp_last_error());
        vlp_vl_free(m);
        return CLI_FAIL;
    }
    if (vlp_vl_tokenizer_save(kind, vocab, out)) { /* the tokenizer travels with the model */
        fprintf(stderr, "vlp vl-init: %s\n", vlp_last_error());
        vlp_vl_free(m);
        return CLI_FAIL;
    }
    printf("wrote %s (%s, %.2f M parameters)\n", out, vlp_vl_family_name(cfg.family), vlp_vl_param_count(m) / 1e6);
    vlp_vl_free(m);
    return CLI_OK;
}

/* ---- caption ---------------------------------------------------------------------------------- */

/* vlp caption's beam when none is asked for: BLIP's captioning evaluation, as vlp eval --task caption */
#define CAPTION_DEFAULT_BEAM 3

int vlp_cmd_caption(int argc, char **argv) {
    const char *model = NULL;
    const char **images = calloc((size_t)argc + 1, sizeof *images);
    int n = 0, beam_given = 0, greedy = 0;
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc); /* max 20 tokens, min 1, length penalty 1; the beam is set below */
    if (!images) return CLI_FAIL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        long v;
        double d;
        const char *s;
        if (cli_is_help(a)) {
            printf("usage: vlp caption --model MODEL_DIR IMAGE... [--beam K | --greedy | --sample [--top-p P]\n"
                   "                   [--temperature T] [--seed S]] [--max-len N] [--min-len N] [--length-penalty F]\n"
                   "Captions each image with a captioning model (vlp vl-init --preset blip..., vlp train --config\n"
                   "configs/emoji-cap-s.json; key/value-cached decoding). Default beam search with beam %d (as\n"
                   "vlp eval --task caption; score = sum log p / length^F, length penalty F default 1);\n"
                   "--beam K another width; --greedy (= --beam 1) greedy search; --sample nucleus sampling\n"
                   "(top-p 0.9, temperature 1). Lengths: --max-len 20, --min-len 1 tokens by default.\n"
                   "Prints IMAGE<TAB>caption per image; the decoding method goes to stderr.\n"
                   "The model may also be given first without --model: vlp caption MODEL_DIR IMAGE...\n"
                   "exit status: 0 success, 1 failure (an image or the model unreadable), 2 usage error\n",
                   CAPTION_DEFAULT_BEAM);
            free(images);
            return CLI_OK;
        }
#define NUM_FLAG(name, lo, hi, dst)                                                                 \
    if (!strcmp(a, name)) {                                                                         \
        if (!(s = cli_value("caption", argc, argv, &i)) || !cli_int("caption", name, s, lo, hi, &v)) { \
            free(images);                                                                           \
            return CLI_USAGE;                                                                       \
        }                                                                                           \
        dst = (int)v;                                                                               \
        beam_given |= !strcmp(name, "--beam");                                                      \
        continue;                                                                                   \
    }
        NUM_FLAG("--beam", 1, 64, gc.beam)
        NUM_FLAG("--max-len", 1, 4096, gc.max_len)
        NUM_FLAG("--min-len", 0, 4096, gc.min_len)
#undef NUM_FLAG
        if (!strcmp(a, "--model")) {
            if (!(model = cli_value("caption", argc, argv, &i))) {
                free(images);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            if (!(s = cli_value("caption", argc, argv, &i)) || !cli_int("caption", a, s, 0, 2147483647L, &v)) {
                free(images);
                return CLI_USAGE;
            }
            gc.seed = (uint64_t)v;
        } else if (!strcmp(a, "--length-penalty") || !strcmp(a, "--top-p") || !strcmp(a, "--temperature")) {
            int lp = a[2] == 'l', tp = a[3] == 'o';
            if (!(s = cli_value("caption", argc, argv, &i)) ||
                !cli_float("caption", a, s, lp ? -10.0 : 1e-6, lp ? 10.0 : tp ? 1.0 : 100.0, &d)) {
                free(images);
                return CLI_USAGE;
            }
            *(lp ? &gc.length_penalty : tp ? &gc.top_p : &gc.temperature) = (float)d;
        } else if (!strcmp(a, "--sample")) {
            gc.sample = 1;
        } else if (!strcmp(a, "--greedy")) {
            greedy = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "vlp caption: unknown option '%s' (see vlp caption --help)\n", a);
            free(images);
            return CLI_USAGE;
        } else {
            images[n++] = a;
        }
    }
    /* without --model the first operand is the model (the older form vlp caption MODEL_DIR IMAGE...) */
    if (!model && n) {
        model = images[0];
        memmove(images, images + 1, (size_t)--n * sizeof *images);
    }
    if (!model || !n) {
        fprintf(stderr, "vlp caption: give --model MODEL_DIR and at least one IMAGE\n");
        free(images);
        return CLI_USAGE;
    }
    if ((gc.sample || greedy) && beam_given && gc.beam > 1) {
        fprintf(stderr, "vlp caption: --beam %d and %s do not combine\n", gc.beam, gc.sample ? "--sample" : "--greedy");
        free(images);
        return CLI_USAGE;
    }
    if (gc.sample && greedy) {
        fprintf(stderr, "vlp caption: --sample and --greedy do not combine\n");
        free(images);
        return CLI_USAGE;
    }
    if (!beam_given) gc.beam = gc.sample || greedy ? 1 : CAPTION_DEFAULT_BEAM;
    int rc = CLI_FAIL;
    vlp_vl *m = load_model("caption", model, 1);
    vlp_tokenizer *tok = m ? load_tokenizer("caption", model, m) : NULL;
    float *px = NULL, *feat = NULL;
    int32_t *out = NULL;
    char *text = NULL;
    if (!tok) goto done;
    if (gc.max_len + 1 > m->cfg.max_text_len) gc.max_len = m->cfg.max_text_len - 1;
    if (gc.min_len > gc.max_len) gc.min_len = gc.max_len;
    if (gc.sample)
        fprintf(stderr, "vlp caption: nucleus sampling (top-p %g, temperature %g, seed %llu), %d..%d tokens\n",
                (double)gc.top_p, (double)gc.temperature, (unsigned long long)gc.seed, gc.min_len, gc.max_len);
    else if (gc.beam > 1)
        fprintf(stderr, "vlp caption: beam search (beam %d, length penalty %g), %d..%d tokens\n", gc.beam,
                (double)gc.length_penalty, gc.min_len, gc.max_len);
    else fprintf(stderr, "vlp caption: greedy search, %d..%d tokens\n", gc.min_len, gc.max_len);
    int S = m->cfg.image_size, N1 = vlp_vl_image_tokens(m), W = m->cfg.vision_width, lens[1];
    px = malloc((size_t)3 * S * S * sizeof(float));
    feat = malloc((size_t)N1 * W * sizeof(float));
    out = malloc((size_t)gc.max_len * sizeof(int32_t));
    text = malloc(65536);
    if (!px || !feat || !out || !text) goto done;
    rc = CLI_OK;
    for (int i = 0; i < n; i++) { /* one image at a time: a failure names its file, the rest go on */
        if (load_pixels("caption", m, images[i], px)) {
            rc = CLI_FAIL;
            continue;
        }
        if (vlp_vl_image_features(m, px, 1, feat) || vlp_vl_generate(m, feat, 1, &gc, out, lens)) {
            fprintf(stderr, "vlp caption: %s: %s\n", images[i], vlp_last_error());
            rc = CLI_FAIL;
            continue;
        }
        vlp_tokenizer_decode(tok, out, lens[0], 1, text, 65536);
        printf("%s\t%s\n", images[i], text);
    }
done:
    free(px);
    free(feat);
    free(out);
    free(text);
    free(images);
    vlp_tokenizer_free(tok);
    vlp_vl_free(m);
    return rc;
}

/* --model, --image and --text (repeatable for match) name their parts; operands fill the parts
 * not named, in the order MODEL_DIR IMAGE TEXT... (the older positional form). Returns the
 * number of texts, or -1 after a message (usage). */
static int fusion_args(const char *cmd, int argc, char **argv, int max_texts, const char **model, const char **image,
                       const char **texts, long *top) {
    int nt = 0, nop = 0;
    const char **ops = calloc((size_t)argc + 1, sizeof *ops);
    if (!ops) return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--model") || !strcmp(a, "--image") || !strcmp(a, "--text")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) goto bad;
            if (a[2] == 't') {
                if (nt == max_texts) goto too_many;
                texts[nt++] = v;
            } else {
                *(a[2] == 'm' ? model : image) = v;
            }
        } else if (top && !strcmp(a, "--top")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || !cli_int(cmd, "--top", v, 1, 100, top)) goto bad;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vlp %s: unknown option '%s' (see vlp %s --help)\n", cmd, a, cmd);
            goto bad;
        } else {
            ops[nop++] = a;
        }
    }
    int k = 0;
    if (!*model && k < nop) *model = ops[k++];
    if (!*image && k < nop) *image = ops[k++];
    while (k < nop) {
        if (nt == max_texts) goto too_many;
        texts[nt++] = ops[k++];
    }
    free(ops);
    return nt;
too_many:
    fprintf(stderr, "vlp %s: one TEXT only (quote it)\n", cmd);
bad:
    free(ops);
    return -1;
}

/* ---- match ------------------------------------------------------------------------------------ */

int vlp_cmd_match(int argc, char **argv) {
    const char *model = NULL, *image = NULL;
    const char **texts = calloc((size_t)argc + 1, sizeof *texts);
    if (!texts) return CLI_FAIL;
    for (int i = 0; i < argc; i++)
        if (cli_is_help(argv[i])) {
            printf("usage: vlp match --model MODEL_DIR --image IMAGE --text TEXT [--text TEXT...]\n"
                   "The image-text matching probability (ITM head on the fused [CLS]) of each TEXT for IMAGE,\n"
                   "with a fusion model (single_stream, dual_stream or mome). Prints probability<TAB>text.\n"
                   "A text longer than the model's positions keeps its first tokens ([CLS] ... [SEP]).\n"
                   "The older positional form vlp match MODEL_DIR IMAGE TEXT... works too.\n"
                   "exit status: 0 success, 1 failure (the model or the image unreadable), 2 usage error\n");
            free(texts);
            return CLI_OK;
        }
    int nt = fusion_args("match", argc, argv, argc, &model, &image, texts, NULL);
    if (nt < 0) {
        free(texts);
        return CLI_USAGE;
    }
    if (!model || !image || !nt) {
        fprintf(stderr, "vlp match: give --model MODEL_DIR, --image IMAGE and at least one --text TEXT\n");
        free(texts);
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    vlp_vl *m = load_model("match", model, 0);
    vlp_tokenizer *tok = m ? load_tokenizer("match", model, m) : NULL;
    fuse_graph fg = {0};
    float *px = NULL;
    if (!tok) goto done;
    int S = m->cfg.image_size, T = m->cfg.max_text_len;
    px = malloc((size_t)3 * S * S * sizeof(float));
    if (!px || load_pixels("match", m, image, px)) goto done;
    if (build_fused(m, nt, T, 1, &fg)) goto done;
    for (int b = 0; b < nt; b++) {
        memcpy((float *)fg.px->data + (size_t)b * 3 * S * S, px, (size_t)3 * S * S * sizeof(float));
        /* truncated to the model's T positions, as in training: [CLS] first T - 2 tokens [SEP] */
        if (vlp_tokenizer_encode_pair(tok, texts[b], NULL, T, (int32_t *)fg.ids->data + (size_t)b * T, NULL,
                                      (int32_t *)fg.mask->data + (size_t)b * T) < 0) {
            fprintf(stderr, "vlp match: text %d: %s\n", b + 1, vlp_last_error());
            goto done;
        }
    }
    if (vlp_graph_forward(fg.g)) {
        fprintf(stderr, "vlp match: %s\n", vlp_last_error());
        goto done;
    }
    for (int b = 0; b < nt; b++) printf("%.4f\t%s\n", ((float *)fg.out->data)[2 * b + 1], texts[b]);
    rc = CLI_OK;
done:
    vlp_graph_free(fg.g);
    free(px);
    free(texts);
    vlp_tokenizer_free(tok);
    vlp_vl_free(m);
    return rc;
}

/* ---- fill -------------------------------------------------------------------------------------- */

int vlp_cmd_fill(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *text = NULL;
    long top = 5;
    for (int i = 0; i < argc; i++)
        if (cli_is_help(argv[i])) {
            printf("usage: vlp fill --model MODEL_DIR --image IMAGE --text TEXT [--top K]\n"
                   "The K most likely tokens (default 5) at each [MASK] of TEXT, given IMAGE, from the MLM\n"
                   "head of a fusion model. Prints one line per [MASK]: position, then token:probability.\n"
                   "The older positional form vlp fill MODEL_DIR IMAGE TEXT works too.\n"
                   "exit status: 0 success, 1 failure (the model or the image unreadable, the text longer\n"
                   "than the model's positions), 2 usage error (no [MASK] in the text)\n");
            return CLI_OK;
        }
    int nt = fusion_args("fill", argc, argv, 1, &model, &image, &text, &top);
    if (nt < 0) return CLI_USAGE;
    if (!model || !image || !text) {
        fprintf(stderr, "vlp fill: give --model MODEL_DIR, --image IMAGE and --text TEXT (with [MASK] where tokens "
                        "are wanted)\n");
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    vlp_vl *m = load_model("fill", model, 0);
    vlp_tokenizer *tok = m ? load_tokenizer("fill", model, m) : NULL;
    fuse_graph fg = {0};
    float *px = NULL;
    int32_t *ids = NULL;
    if (!tok) goto done;
    int S = m->cfg.image_size, T = m->cfg.max_text_len, V = m->cfg.vocab_size, len = 0, nmask = 0;
    px = malloc((size_t)3 * S * S * sizeof(float));
    ids = malloc((size_t)T * sizeof(int32_t));
    if (!px || !ids || load_pixels("fill", m, image, px)) goto done;
    /* [CLS] piece [MASK] piece ... [SEP]: the tokenizer never matches "[MASK]" in text itself */
    ids[len++] = m->cfg.cls_id;
    const char *p = text;
    for (;;) {
        const char *q = strstr(p, "[MASK]");
        size_t plen = q ? (size_t)(q - p) : strlen(p);
        int k = vlp_tokenizer_encode_n(tok, p, plen, ids + len, T - 1 - len);
        if (k < 0 || len + k > T - 1) {
            fprintf(stderr, "vlp fill: %s\n", k < 0 ? vlp_last_error() : "the text is longer than the model's positions");
            goto done;
        }
        len += k;
        if (!q) break;
        if (len >= T - 1) {
            fprintf(stderr, "vlp fill: the text is longer than the model's positions\n");
            goto done;
        }
        ids[len++] = m->cfg.mask_id;
        nmask++;
        p = q + 6;
    }
    ids[len++] = m->cfg.sep_id;
    if (!nmask) {
        fprintf(stderr, "vlp fill: the text has no [MASK]\n");
        rc = CLI_USAGE;
        goto done;
    }
    if (build_fused(m, 1, len, 0, &fg)) goto done;
    memcpy(fg.px->data, px, (size_t)3 * S * S * sizeof(float));
    memcpy(fg.ids->data, ids, (size_t)len * sizeof(int32_t));
    for (int t = 0; t < len; t++) ((int32_t *)fg.mask->data)[t] = 1;
    if (vlp_graph_forward(fg.g)) {
        fprintf(stderr, "vlp fill: %s\n", vlp_last_error());
        goto done;
    }
    for (int t = 0; t < len; t++) {
        if (ids[t] != m->cfg.mask_id) continue;
        float *pr = (float *)fg.out->data + (size_t)t * V;
        printf("%d", t);
        for (int k = 0; k < top && k < V; k++) { /* selection: top is small */
            int best = -1;
            for (int v = 0; v < V; v++)
                if (pr[v] >= 0 && (best < 0 || pr[v] > pr[best])) best = v;
            char name[256];
            if (vlp_tokenizer_id_text(tok, best, name, sizeof name) < 0) snprintf(name, sizeof name, "?");
            printf("\t%s:%.4f", name, pr[best]);
            pr[best] = -1;
        }
        printf("\n");
    }
    rc = CLI_OK;
done:
    vlp_graph_free(fg.g);
    free(px);
    free(ids);
    vlp_tokenizer_free(tok);
    vlp_vl_free(m);
    return rc;
}

/* ---- vlp info for VL models ----------------------------------------------------------------- */

/* The config.json of a model given as a directory or as its .safetensors file; -1 if path is missing. */
static int model_config_path(const char *path, char *cfg, size_t cap) {
    struct stat sb;
    if (stat(path, &sb)) return -1;
    if (S_ISDIR(sb.st_mode)) {
        snprintf(cfg, cap, "%s/config.json", path);
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(cfg, cap, "%.*s/config.json", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    return 0;
}

static int is_vl_config(json_t *root) {
    json_t *fmt = root ? json_object_get(root, "format") : NULL;
    return fmt && json_is_string(fmt) && !strcmp(json_string_value(fmt), "vlp-vl");
}

int cli_is_pretrained_vl(const char *path, vlp_vl_config *cfg) {
    char cp[4200];
    if (model_config_path(path, cp, sizeof cp)) return 0;
    json_t *root = json_load_file(cp, 0, NULL);
    int r = is_vl_config(root) && !json_object_get(root, "finetune") && !vlp_vl_config_load(cp, cfg);
    json_decref(root);
    return r;
}

int vlp_info_vl(const char *path, int json) {
    char cfg[4200];
    if (model_config_path(path, cfg, sizeof cfg)) return -1;
    json_t *root = json_load_file(cfg, 0, NULL);
    int is_vl = is_vl_config(root);
    /* a fine-tuned model (vlp finetune) records its task head */
    json_t *ft = root ? json_object_get(root, "finetune") : NULL;
    char ft_json[512] = "", ft_text[512] = "";
    if (json_is_object(ft)) {
        const char *task = json_string_value(json_object_get(ft, "task")), *head = json_string_value(json_object_get(ft, "head"));
        long long cl = json_integer_value(json_object_get(ft, "classes"));
        snprintf(ft_json, sizeof ft_json, ", \"finetune\": {\"task\": \"%s\", \"head\": \"%s\", \"classes\": %lld}",
                 task ? task : "?", head ? head : "?", cl);
        if (head && !strcmp(head, "lm")) /* the decoder itself: its "classes" are the vocabulary */
            snprintf(ft_text, sizeof ft_text, "fine-tuned   for %s, head lm (the decoder, %lld-token vocabulary)\n",
                     task ? task : "?", cl);
        else
            snprintf(ft_text, sizeof ft_text, "fine-tuned   for %s, head %s, %lld classes\n", task ? task : "?",
                     head ? head : "?", cl);
    }
    json_decref(root);
    if (!is_vl) return -1;
    vlp_vl *m = vlp_vl_load(path);
    if (!m) {
        fprintf(stderr, "vlp info: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    const vlp_vl_config *c = &m->cfg;
    static const char *arch[] = {"single-stream fusion (ViLT)", "dual-stream fusion (ALBEF)",
                                 "mixture of modality experts (VLMo)", "captioning decoder (BLIP)"};
    const char *on[5] = {"itc", "itm", "mlm", "mim", "lm"};
    float w[5] = {c->w_itc, c->w_itm, c->w_mlm, c->w_mim, c->w_lm};
    char objs[128] = "";
    for (int i = 0; i < 5; i++)
        if (w[i] > 0)
            snprintf(objs + strlen(objs), sizeof objs - strlen(objs), json ? "%s\"%s\"" : "%s%s", objs[0] ? ", " : "",
                     on[i]);
    if (json) {
        printf("{\"family\": \"%s\", \"architecture\": \"%s\", \"objectives\": [%s], \"parameters\": %lld, "
               "\"image_size\": %d, \"patch_size\": %d, \"width\": %d, \"layers\": %d, \"heads\": %d, "
               "\"vision_width\": %d, \"vision_layers\": %d, \"fusion_layers\": %d, \"vocab_size\": %d, "
               "\"max_text_len\": %d, \"embed_dim\": %d, \"tokenizer\": \"%s\"%s}\n",
               vlp_vl_family_name(c->family), arch[c->family], objs, (long long)vlp_vl_param_count(m), c->image_size,
               c->patch_size, c->width, c->layers, c->heads, c->vision_width, c->vision_layers, c->fusion_layers,
               c->vocab_size, c->max_text_len, c->embed_dim, vlp_tokenizer_kind_name(c->tokenizer), ft_json);
    } else {
        printf("model        %s\n", path);
        printf("family       %s: %s\n", vlp_vl_family_name(c->family), arch[c->family]);
        printf("objectives   %s\n", objs);
        fputs(ft_text, stdout);
        printf("parameters   %lld (%.1f M)\n", (long long)vlp_vl_param_count(m), vlp_vl_param_count(m) / 1e6);
        printf("image        %dx%d, patch %d", c->image_size, c->image_size, c->patch_size);
        if (c->family == VLP_VL_DUAL || c->family == VLP_VL_CAPTION)
            printf(", ViT width %d, %d layers, %d heads", c->vision_width, c->vision_layers, c->vision_heads);
        printf("\ntext/fusion  width %d, %d layers (%d fusion), %d heads, vocab %d (%s), %d positions%s\n", c->width,
               c->layers, c->fusion_layers, c->heads, c->vocab_size,
               c->tokenizer == VLP_TOKENIZER_CLIP_BPE ? "CLIP BPE" : "WordPiece", c->max_text_len,
               c->co_attention ? ", co-attention" : "");
    }
    vlp_vl_free(m);
    return CLI_OK;
}
