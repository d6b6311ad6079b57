/* vlp embed / classify / similarity: CLIP inference from the command line. */
#include "cli.h"
#include "vlp_clip.h"
#include "vlp_image.h"
#include "vlp_text.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- inputs ------------------------------------------------------------------------ */

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int sl_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    static const char *exts[] = {"jpg", "jpeg", "png", "webp", "gif", "bmp", NULL};
    for (int i = 0; exts[i]; i++)
        if (!strcmp(ext, exts[i])) return 1;
    return 0;
}

/* A path: a file is taken as is; a directory contributes its image files (by
 * extension), sorted, not recursing. */
static int add_image_path(const char *cmd, strlist *l, const char *path) {
    struct stat sb;
    if (stat(path, &sb)) {
        fprintf(stderr, "vlp %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) return sl_push(l, path);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "vlp %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    int first = l->n;
    struct dirent *e;
    char full[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (sl_push(l, full)) break;
    }
    closedir(d);
    qsort(l->v + first, (size_t)(l->n - first), sizeof(char *), cmp_str);
    if (l->n == first) fprintf(stderr, "vlp %s: warning: no image files in %s\n", cmd, path);
    return 0;
}

/* Appends the lines of path ("-" = stdin) to l and, if src is not NULL, "path:N" to src. */
static int read_lines(const char *cmd, strlist *l, strlist *src, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "vlp %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    char where[4200];
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        snprintf(where, sizeof where, "%s:%d", strcmp(path, "-") ? path : "<stdin>", ++lineno);
        if (sl_push(l, line) || (src && sl_push(src, where))) break;
    }
    free(line);
    if (f != stdin) fclose(f);
    return 0;
}

/* ---- shared options ---------------------------------------------------------------- */

typedef struct {
    const char *model, *out, *format;
    strlist images, texts, text_src, labels, templates;
    long batch, top_k;
    int normalize, strict, json;
} opts;

static void print_err(void *ctx, int index, const char *msg) {
    (void)index;
    fprintf(stderr, "vlp %s: skipped %s\n", (const char *)ctx, msg);
}

static void progress_cb(void *ctx, int done) { cli_progress_update(ctx, done); }

/* Parses the options a command allows (a string of letters: m model, i images,
 * t text, o out/format, l labels/templates/top-k, b batch/normalize/strict, j json).
 * Returns 0 to go on, 1 after --help, -1 on a usage error, -2 when a named input
 * (image path, text or labels file) cannot be read. */
static int parse(const char *cmd, const char *allow, int argc, char **argv, opts *o, void (*help)(void)) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->top_k = 5;
    o->normalize = 1;
    o->format = "npy";
    int in_images = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
#define ALLOWED(c) (strchr(allow, c) != NULL)
        if (cli_is_help(a)) {
            help();
            return 1;
        } else if (!strcmp(a, "--model") && ALLOWED('m')) {
            if (!(o->model = cli_value(cmd, argc, argv, &i))) return -1;
        } else if (!strcmp(a, "--images") && ALLOWED('i')) {
            in_images = 1;
            continue;
        } else if (!strcmp(a, "--text") && ALLOWED('t')) {
            char where[32];
            snprintf(where, sizeof where, "--text #%d", o->texts.n + 1);
            if (!(v = cli_value(cmd, argc, argv, &i)) || sl_push(&o->texts, v) || sl_push(&o->text_src, where)) return -1;
        } else if (!strcmp(a, "--text-file") && ALLOWED('t')) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return -1;
            if (read_lines(cmd, &o->texts, &o->text_src, v)) return -2;
        } else if (!strcmp(a, "--out") && ALLOWED('o')) {
            if (!(o->out = cli_value(cmd, argc, argv, &i))) return -1;
        } else if (!strcmp(a, "--format") && ALLOWED('o')) {
            if (!(o->format = cli_value(cmd, argc, argv, &i))) return -1;
            if (strcmp(o->format, "npy") && strcmp(o->format, "jsonl")) {
                fprintf(stderr, "vlp %s: --format is npy or jsonl, got '%s'\n", cmd, o->format);
                return -1;
            }
        } else if (!strcmp(a, "--labels") && ALLOWED('l')) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return -1;
            char *copy = strdup(v), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                while (isspace((unsigned char)*tok)) tok++;
                char *end = tok + strlen(tok);
                while (end > tok && isspace((unsigned char)end[-1])) *--end = 0;
                if (*tok) sl_push(&o->labels, tok);
            }
            free(copy);
        } else if (!strcmp(a, "--labels-file") && ALLOWED('l')) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return -1;
            if (read_lines(cmd, &o->labels, NULL, v)) return -2;
        } else if (!strcmp(a, "--template") && ALLOWED('l')) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || sl_push(&o->templates, v)) return -1;
            if (!strstr(v, "{}")) {
                fprintf(stderr, "vlp %s: --template must contain {} (where the label goes): '%s'\n", cmd, v);
                return -1;
            }
        } else if (!strcmp(a, "--top-k") && ALLOWED('l')) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || !cli_int(cmd, a, v, 1, 1000000, &o->top_k)) return -1;
        } else if (!strcmp(a, "--batch") && ALLOWED('b')) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || !cli_int(cmd, a, v, 1, 4096, &o->batch)) return -1;
        } else if (!strcmp(a, "--no-normalize") && ALLOWED('b')) {
            o->normalize = 0;
        } else if (!strcmp(a, "--strict") && ALLOWED('b')) {
            o->strict = 1;
        } else if (!strcmp(a, "--json") && ALLOWED('j')) {
            o->json = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vlp %s: unknown option '%s' (see vlp %s --help)\n", cmd, a, cmd);
            return -1;
        } else if (in_images || !strcmp(cmd, "classify")) {
            if (add_image_path(cmd, &o->images, a)) return -2;
            continue;
        } else {
            fprintf(stderr, "vlp %s: unexpected argument '%s' (see vlp %s --help)\n", cmd, a, cmd);
            return -1;
        }
        in_images = 0;
#undef ALLOWED
    }
    if (!o->model) {
        fprintf(stderr, "vlp %s: --model is required\n", cmd);
        return -1;
    }
    return 0;
}

static void free_opts(opts *o) {
    sl_free(&o->images);
    sl_free(&o->texts);
    sl_free(&o->text_src);
    sl_free(&o->labels);
    sl_free(&o->templates);
}

/* Embeds o->images into feats (n x E); returns the count embedded or -1. */
static int embed_images(const char *cmd, vlp_clip_runner *r, opts *o, float *feats, int *ok) {
    cli_progress p;
    cli_progress_start(&p, "images", "img", o->images.n);
    int got = vlp_clip_embed_image_files(r, (const char *const *)o->images.v, o->images.n, o->normalize, feats, ok,
                                         print_err, (void *)cmd, progress_cb, &p);
    cli_progress_end(&p, o->images.n);
    if (got < 0) {
        fprintf(stderr, "vlp %s: %s\n", cmd, vlp_last_error());
        return -1;
    }
    if (o->strict && got < o->images.n) {
        fprintf(stderr, "vlp %s: %d of %d images failed (--strict)\n", cmd, o->images.n - got, o->images.n);
        return -1;
    }
    if (got == 0 && o->images.n > 0) {
        fprintf(stderr, "vlp %s: none of the %d images could be read\n", cmd, o->images.n);
        return -1;
    }
    return got;
}

/* Texts a model cannot honour: an empty one is an error naming where it came from; one
 * over the context length is cut (as clip.tokenize(truncate=True) does) with a warning,
 * or refused under --strict. Returns 0 or -1. */
static int check_texts(const char *cmd, vlp_tokenizer *tok, const opts *o, int context) {
    for (int i = 0; i < o->texts.n; i++) {
        const char *t = o->texts.v[i], *src = i < o->text_src.n ? o->text_src.v[i] : "text";
        int n = vlp_tokenizer_encode(tok, t, NULL, 0);
        if (n < 0) {
            fprintf(stderr, "vlp %s: %s: %s\n", cmd, src, vlp_last_error());
            return -1;
        }
        if (n == 0) {
            fprintf(stderr, "vlp %s: %s: empty text (nothing to embed)\n", cmd, src);
            return -1;
        }
        if (n + 2 > context) {
            fprintf(stderr, "vlp %s: %s%s: %d tokens + start/end is over the context length %d%s\n", cmd,
                    o->strict ? "" : "warning: ", src, n, context, o->strict ? " (--strict)" : "; cut");
            if (o->strict) return -1;
        }
    }
    return 0;
}

/* ---- vlp embed --------------------------------------------------------------------------- */

static void embed_help(void) {
    printf("usage: vlp embed --model MODEL [--images PATH...] [--text TEXT]... [--text-file FILE]\n"
           "                 --out FILE [--format npy|jsonl] [--batch N] [--no-normalize] [--strict]\n"
           "Embeds images (files, or directories of .jpg/.png/.webp/.gif/.bmp, sorted) and texts with a\n"
           "CLIP model. Rows: the images in order, then the texts. Features are L2-normalised unless\n"
           "--no-normalize. npy: FILE holds float32 [rows, dim] and FILE.rows.tsv says what each row is;\n"
           "jsonl: one {\"kind\", \"input\", \"ok\", \"embedding\"} object per row. An image that cannot be\n"
           "decoded is reported and skipped (its row is zero and ok=false); --strict makes it fatal.\n"
           "An empty text is an error; a text over the model's context length is cut (a warning;\n"
           "an error under --strict). Exit status: 0 done, 1 failure (unreadable model, input or\n"
           "output file, no image readable, --strict), 2 usage error.\n");
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

int vlp_cmd_embed(int argc, char **argv) {
    opts o;
    int pr = parse("embed", "mitob", argc, argv, &o, embed_help);
    if (pr) {
        free_opts(&o);
        return pr > 0 ? CLI_OK : pr == -2 ? CLI_FAIL : CLI_USAGE;
    }
    if (!o.out || (!o.images.n && !o.texts.n)) {
        fprintf(stderr, "vlp embed: need --out and at least one image or text\n");
        free_opts(&o);
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    vlp_clip *m = vlp_clip_load(o.model);
    vlp_tokenizer *tok = m && o.texts.n ? vlp_clip_tokenizer_load(m, NULL) : NULL; /* the model's own */
    vlp_clip_runner *r = m ? vlp_clip_runner_new(m, (int)o.batch) : NULL;
    int rows = o.images.n + o.texts.n, E = m ? m->cfg.embed_dim : 0;
    float *feats = r ? calloc((size_t)rows * (size_t)E, sizeof(float)) : NULL;
    int *ok = feats ? calloc((size_t)rows, sizeof(int)) : NULL;
    if (!m || !r || !feats || !ok || (o.texts.n && !tok)) {
        fprintf(stderr, "vlp embed: %s\n", vlp_last_error());
        goto done;
    }
    if (o.texts.n && check_texts("embed", tok, &o, m->cfg.context_length)) goto done;
    if (o.images.n && embed_images("embed", r, &o, feats, ok) < 0) goto done;
    if (o.texts.n) {
        for (int i = 0; i < o.texts.n; i++) ok[o.images.n + i] = 1;
        if (vlp_clip_embed_texts(r, tok, (const char *const *)o.texts.v, o.texts.n, o.normalize,
                                 feats + (size_t)o.images.n * E)) {
            fprintf(stderr, "vlp embed: %s\n", vlp_last_error());
            goto done;
        }
    }
    if (!strcmp(o.format, "npy")) {
        int64_t shape[2] = {rows, E};
        if (vlp_npy_save(o.out, VLP_F32, 2, shape, feats)) {
            fprintf(stderr, "vlp embed: %s\n", vlp_last_error());
            goto done;
        }
        char side[4200];
        snprintf(side, sizeof side, "%s.rows.tsv", o.out);
        FILE *f = fopen(side, "w");
        if (!f) {
            fprintf(stderr, "vlp embed: %s: %s\n", side, strerror(errno));
            goto done;
        }
        fprintf(f, "row\tkind\tok\tinput\n");
        for (int i = 0; i < rows; i++)
            fprintf(f, "%d\t%s\t%d\t%s\n", i, i < o.images.n ? "image" : "text", ok[i],
                    i < o.images.n ? o.images.v[i] : o.texts.v[i - o.images.n]);
        fclose(f);
    } else {
        FILE *f = strcmp(o.out, "-") ? fopen(o.out, "w") : stdout;
        if (!f) {
            fprintf(stderr, "vlp embed: %s: %s\n", o.out, strerror(errno));
            goto done;
        }
        for (int i = 0; i < rows; i++) {
            fprintf(f, "{\"kind\": \"%s\", \"input\": ", i < o.images.n ? "image" : "text");
            json_string(f, i < o.images.n ? o.images.v[i] : o.texts.v[i - o.images.n]);
            fprintf(f, ", \"ok\": %s, \"embedding\": [", ok[i] ? "true" : "false");
            for (int k = 0; k < E; k++) fprintf(f, k ? ", %.7g" : "%.7g", (double)feats[(size_t)i * E + k]);
            fprintf(f, "]}\n");
        }
        if (f != stdout) fclose(f);
    }
    int bad = 0;
    for (int i = 0; i < rows; i++) bad += !ok[i];
    fprintf(stderr, "vlp embed: %d rows (%d images, %d texts%s%d skipped) of dim %d -> %s\n", rows, o.images.n,
            o.texts.n, ", ", bad, E, o.out);
    rc = CLI_OK;
done:
    free(feats);
    free(ok);
    vlp_clip_runner_free(r);
    vlp_tokenizer_free(tok);
    vlp_clip_free(m);
    free_opts(&o);
    return rc;
}

/* ---- vlp classify -------------------------------------------------------------------------- */

static void classify_help(void) {
    printf("usage: vlp classify --model MODEL (--labels \"cat,dog,car\" | --labels-file FILE)\n"
           "                    [--template \"a photo of a {}.\"]... [--top-k K] [--json] [--batch N] [--strict] IMAGE...\n"
           "Zero-shot classification: each label is written into every template (default \"a photo of a {}.\"),\n"
           "the normalised text embeddings of a label are averaged, and each image gets softmax(scale * cos)\n"
           "over the labels. Prints the top K labels with probabilities per image (or JSON lines).\n"
           "IMAGE: files or directories (their image files, sorted). An unreadable image is reported\n"
           "and listed as skipped (--strict: exit 1).\n");
}

static int cmp_desc(const void *a, const void *b, void *p) {
    const float *v = p;
    float x = v[*(const int *)a], y = v[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Label embeddings: mean over templates of normalised text embeddings, renormalised. */
static float *label_embeddings(vlp_clip_runner *r, vlp_tokenizer *tok, opts *o, int E) {
    if (!o->templates.n) sl_push(&o->templates, "a photo of a {}.");
    int nl = o->labels.n, nt = o->templates.n;
    char **texts = calloc((size_t)nl * (size_t)nt, sizeof(char *));
    float *tf = calloc((size_t)nl * (size_t)nt * (size_t)E, sizeof(float)), *lab = calloc((size_t)nl * (size_t)E, sizeof(float));
    int ok = texts && tf && lab;
    for (int l = 0; ok && l < nl; l++)
        for (int t = 0; ok && t < nt; t++) {
            const char *tpl = o->templates.v[t], *at = strstr(tpl, "{}");
            size_t n = strlen(tpl) + strlen(o->labels.v[l]);
            char *s = malloc(n);
            if (!s) { ok = 0; break; }
            snprintf(s, n, "%.*s%s%s", (int)(at - tpl), tpl, o->labels.v[l], at + 2);
            texts[l * nt + t] = s;
        }
    if (ok && vlp_clip_embed_texts(r, tok, (const char *const *)texts, nl * nt, 1, tf)) ok = 0;
    for (int l = 0; ok && l < nl; l++) {
        for (int t = 0; t < nt; t++)
            for (int k = 0; k < E; k++) lab[l * E + k] += tf[((size_t)l * nt + t) * E + k];
        vlp_l2_normalize_rows(lab + (size_t)l * E, 1, E);
    }
    for (int i = 0; texts && i < nl * nt; i++) free(texts[i]);
    free(texts);
    free(tf);
    if (!ok) {
        free(lab);
        return NULL;
    }
    return lab;
}

int vlp_cmd_classify(int argc, char **argv) {
    opts o;
    int pr = parse("classify", "mlbj", argc, argv, &o, classify_help);
    if (pr) {
        free_opts(&o);
        return pr > 0 ? CLI_OK : pr == -2 ? CLI_FAIL : CLI_USAGE;
    }
    if (!o.labels.n || !o.images.n) {
        fprintf(stderr, "vlp classify: need --labels (or --labels-file) and at least one image\n");
        free_opts(&o);
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    vlp_clip *m = vlp_clip_load(o.model);
    vlp_tokenizer *tok = m ? vlp_clip_tokenizer_load(m, NULL) : NULL;
    vlp_clip_runner *r = m ? vlp_clip_runner_new(m, (int)o.batch) : NULL;
    int E = m ? m->cfg.embed_dim : 0, ni = o.images.n, nl = o.labels.n;
    float *img = r ? calloc((size_t)ni * (size_t)E, sizeof(float)) : NULL, *lab = NULL, *logits = NULL;
    int *ok = calloc((size_t)ni, sizeof(int)), *order = calloc((size_t)nl, sizeof(int));
    if (!m || !tok || !r || !img || !ok || !order) {
        fprintf(stderr, "vlp classify: %s\n", vlp_last_error());
        goto done;
    }
    if (!(lab = label_embeddings(r, tok, &o, E))) {
        fprintf(stderr, "vlp classify: %s\n", vlp_last_error());
        goto done;
    }
    if (embed_images("classify", r, &o, img, ok) < 0) goto done;
    logits = malloc(sizeof(float) * (size_t)ni * (size_t)nl);
    vlp_clip_logits(m, img, ni, lab, nl, logits);
    int k = (int)(o.top_k < nl ? o.top_k : nl);
    for (int i = 0; i < ni; i++) {
        if (!ok[i]) { /* reported on stderr; the output still says which input it was */
            if (o.json) {
                printf("{\"image\": ");
                json_string(stdout, o.images.v[i]);
                printf(", \"ok\": false, \"labels\": []}\n");
            } else {
                printf("%s\n  (skipped: not a readable image)\n", o.images.v[i]);
            }
            continue;
        }
        float *row = logits + (size_t)i * nl, mx = -INFINITY;
        double s = 0;
        for (int l = 0; l < nl; l++) mx = row[l] > mx ? row[l] : mx;
        for (int l = 0; l < nl; l++) s += exp((double)(row[l] - mx));
        for (int l = 0; l < nl; l++) row[l] = (float)(exp((double)(row[l] - mx)) / s), order[l] = l;
        qsort_r(order, (size_t)nl, sizeof(int), cmp_desc, row);
        if (o.json) {
            printf("{\"image\": ");
            json_string(stdout, o.images.v[i]);
            printf(", \"ok\": true, \"labels\": [");
            for (int j = 0; j < k; j++) {
                printf(j ? ", {\"label\": " : "{\"label\": ");
                json_string(stdout, o.labels.v[order[j]]);
                printf(", \"prob\": %.6f}", (double)row[order[j]]);
            }
            printf("]}\n");
        } else {
            printf("%s\n", o.images.v[i]);
            for (int j = 0; j < k; j++) printf("  %6.2f%%  %s\n", 100.0 * row[order[j]], o.labels.v[order[j]]);
        }
    }
    rc = CLI_OK;
done:
    free(img), free(lab), free(logits), free(ok), free(order);
    vlp_clip_runner_free(r);
    vlp_tokenizer_free(tok);
    vlp_clip_free(m);
    free_opts(&o);
    return rc;
}

/* ---- vlp similarity -------------------------------------------------------------------------- */

static void similarity_help(void) {
    printf("usage: vlp similarity --model MODEL --images PATH... (--text TEXT... | --text-file FILE) [--json]\n"
           "Prints the logit matrix exp(logit_scale) * cos(image, text): one row per image, one column\n"
           "per text (CLIP's logits_per_image). Unreadable images get a row of '-' (--strict: exit 1).\n");
}

int vlp_cmd_similarity(int argc, char **argv) {
    opts o;
    int pr = parse("similarity", "mitbj", argc, argv, &o, similarity_help);
    if (pr) {
        free_opts(&o);
        return pr > 0 ? CLI_OK : pr == -2 ? CLI_FAIL : CLI_USAGE;
    }
    if (!o.images.n || !o.texts.n) {
        fprintf(stderr, "vlp similarity: need --images and --text\n");
        free_opts(&o);
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    vlp_clip *m = vlp_clip_load(o.model);
    vlp_tokenizer *tok = m ? vlp_clip_tokenizer_load(m, NULL) : NULL;
    vlp_clip_runner *r = m ? vlp_clip_runner_new(m, (int)o.batch) : NULL;
    int E = m ? m->cfg.embed_dim : 0, ni = o.images.n, nt = o.texts.n;
    float *img = r ? calloc((size_t)ni * (size_t)E, sizeof(float)) : NULL;
    float *txt = r ? calloc((size_t)nt * (size_t)E, sizeof(float)) : NULL, *logits = NULL;
    int *ok = calloc((size_t)ni, sizeof(int));
    if (!m || !tok || !r || !img || !txt || !ok) {
        fprintf(stderr, "vlp similarity: %s\n", vlp_last_error());
        goto done;
    }
    if (check_texts("similarity", tok, &o, m->cfg.context_length)) goto done;
    if (embed_images("similarity", r, &o, img, ok) < 0) goto done;
    if (vlp_clip_embed_texts(r, tok, (const char *const *)o.texts.v, nt, 1, txt)) {
        fprintf(stderr, "vlp similarity: %s\n", vlp_last_error());
        goto done;
    }
    logits = malloc(sizeof(float) * (size_t)ni * (size_t)nt);
    vlp_clip_logits(m, img, ni, txt, nt, logits);
    if (o.json) {
        for (int i = 0; i < ni; i++) {
            printf("{\"image\": ");
            json_string(stdout, o.images.v[i]);
            printf(", \"ok\": %s, \"logits\": [", ok[i] ? "true" : "false");
            for (int j = 0; j < nt; j++) printf(j ? ", %.4f" : "%.4f", ok[i] ? (double)logits[i * nt + j] : 0.0);
            printf("]}\n");
        }
    } else {
        /* a column per text, as wide as its text (10 to 24 characters, cut beyond) */
        printf("%-32s", "image \\ text");
        for (int j = 0; j < nt; j++) {
            int w = (int)strlen(o.texts.v[j]);
            w = w < 10 ? 10 : w > 24 ? 24 : w;
            printf("  %*.*s", w, w, o.texts.v[j]);
        }
        printf("\n");
        for (int i = 0; i < ni; i++) {
            const char *name = strrchr(o.images.v[i], '/');
            printf("%-32.32s", name ? name + 1 : o.images.v[i]);
            for (int j = 0; j < nt; j++) {
                int w = (int)strlen(o.texts.v[j]);
                w = w < 10 ? 10 : w > 24 ? 24 : w;
                if (ok[i]) printf("  %*.3f", w, (double)logits[i * nt + j]);
                else printf("  %*s", w, "-");
            }
            printf("\n");
        }
    }
    rc = CLI_OK;
done:
    free(img), free(txt), free(logits), free(ok);
    vlp_clip_runner_free(r);
    vlp_tokenizer_free(tok);
    vlp_clip_free(m);
    free_opts(&o);
    return rc;
}
