/* Metrics of the downstream tasks, as shared/datasets/emoji-tasks.md defines them: answer
 * normalisation, VQA accuracy per type with majority baselines, accuracy with chance, and the
 * COCO caption metrics BLEU-4 (corpus level) and CIDEr-D, written from their definitions
 * (Papineni et al. 2002; Vedantam et al. 2015, with the "-D" changes of the COCO evaluation:
 * clipped TF-IDF matches and a Gaussian length penalty, sigma 6, scaled by 10). */
#include "eval_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- text normalisation ----------------------------------------------------------------- */
/* Decodes one code point; invalid bytes come back as themselves (Latin-1) so nothing is lost. */
static size_t next_cp(const char *s, utf8proc_int32_t *cp) {
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, cp);
    if (k <= 0) {
        *cp = -1 - (unsigned char)s[0]; /* marks an invalid byte */
        return 1;
    }
    return (size_t)k;
}

/* Python's str.isspace(): the White_Space property. */
static int is_space(utf8proc_int32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85) return 1;
    if (c < 0x80) return 0;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

/* Python's str.isalnum() for one code point: a letter (L*) or a number (N*). */
static int is_alnum(utf8proc_int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

static void put_cp(ev_buf *b, utf8proc_int32_t cp) {
    if (cp < 0) {
        char c = (char)(-1 - cp);
        ev_buf_put(b, &c, 1);
        return;
    }
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
    ev_buf_put(b, (const char *)u, (size_t)k);
}

static utf8proc_int32_t lower(utf8proc_int32_t cp) {
    if (cp < 0) return cp;
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return utf8proc_tolower(cp);
}

char *vlp_answer_normalize(const char *s) {
    ev_buf b = {0};
    size_t keep = 0; /* length up to the last non-space character */
    int started = 0;
    ev_buf_put(&b, "", 0);
    for (size_t i = 0; s && s[i];) {
        utf8proc_int32_t cp;
        i += next_cp(s + i, &cp);
        int sp = cp >= 0 && is_space(cp);
        if (!started && sp) continue;
        started = 1;
        put_cp(&b, lower(cp));
        if (!sp) keep = b.len;
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    b.s[keep] = 0;
    return b.s;
}

void vlp_caption_tokens_free(char **tokens, int n) {
    if (!tokens) return;
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
}

int vlp_caption_tokenize(const char *s, char ***tokens) {
    *tokens = NULL;
    char **out = NULL;
    int n = 0, cap = 0;
    ev_buf cur = {0};
    for (size_t i = 0;; ) {
        utf8proc_int32_t cp = 0;
        int end = !s || !s[i];
        if (!end) i += next_cp(s + i, &cp);
        utf8proc_int32_t lc = end ? 0 : lower(cp);
        if (!end && lc >= 0 && is_alnum(lc)) {
            put_cp(&cur, lc);
            if (cur.failed) goto oom;
            continue;
        }
        if (cur.len) { /* a separator ends the current token */
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **p = realloc(out, (size_t)cap * sizeof *p);
                if (!p) goto oom;
                out = p;
            }
            out[n++] = cur.s;
            cur = (ev_buf){0};
        }
        if (end) break;
    }
    *tokens = out;
    return n;
oom:
    free(cur.s);
    vlp_caption_tokens_free(out, n);
    vlp_set_error("caption tokenizer: out of memory");
    return VLP_ERR_NOMEM;
}

/* ---- n-grams ------------------------------------------------------------------------------ */
/* The distinct n-grams (n = 1..4) of one tokenised caption with their counts. */
typedef struct {
    int n_tok;
    char **tok;
    int count[4];       /* distinct n-grams of each order */
    int *start[4];      /* first token of each distinct n-gram */
    int *freq[4];       /* its count */
} ngrams;

static int gram_eq(char **tok, int a, int b, int n) {
    for (int k = 0; k < n; k++)
        if (strcmp(tok[a + k], tok[b + k])) return 0;
    return 1;
}

static void ngrams_free(ngrams *g) {
    vlp_caption_tokens_free(g->tok, g->n_tok);
    for (int n = 0; n < 4; n++) {
        free(g->start[n]);
        free(g->freq[n]);
    }
    memset(g, 0, sizeof *g);
}

static int ngrams_build(const char *s, ngrams *g) {
    memset(g, 0, sizeof *g);
    int nt = vlp_caption_tokenize(s, &g->tok);
    if (nt < 0) return nt;
    g->n_tok = nt;
    for (int n = 1; n <= 4; n++) {
        int total = nt - n + 1;
        if (total <= 0) continue;
        g->start[n - 1] = malloc(sizeof(int) * (size_t)total);
        g->freq[n - 1] = malloc(sizeof(int) * (size_t)total);
        if (!g->start[n - 1] || !g->freq[n - 1]) {
            ngrams_free(g);
            vlp_set_error("caption metrics: out of memory");
            return VLP_ERR_NOMEM;
        }
        /* quadratic, but captions are short and this keeps the counts exact */
        for (int p = 0; p < total; p++) {
            int j;
            for (j = 0; j < g->count[n - 1]; j++)
                if (gram_eq(g->tok, g->start[n - 1][j], p, n)) break;
            if (j == g->count[n - 1]) {
                g->start[n - 1][j] = p;
                g->freq[n - 1][j] = 0;
                g->count[n - 1]++;
            }
            g->freq[n - 1][j]++;
        }
    }
    return 0;
}

/* Count of the n-gram starting at tok[p] of a in b (0 when absent). */
static int ngram_count_in(const ngrams *a, int p, int n, const ngrams *b) {
    for (int j = 0; j < b->count[n - 1]; j++) {
        int q = b->start[n - 1][j], k;
        for (k = 0; k < n; k++)
            if (strcmp(a->tok[p + k], b->tok[q + k])) break;
        if (k == n) return b->freq[n - 1][j];
    }
    return 0;
}

static int build_all(int64_t n, const char *const *cands, const char *const *refs, ngrams **pc, ngrams **pr) {
    ngrams *c = calloc((size_t)(n ? n : 1), sizeof *c), *r = calloc((size_t)(n ? n : 1), sizeof *r);
    if (!c || !r) {
        free(c);
        free(r);
        vlp_set_error("caption metrics: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        int st = ngrams_build(cands[i] ? cands[i] : "", &c[i]);
        if (!st) st = ngrams_build(refs[i] ? refs[i] : "", &r[i]);
        if (st) {
            for (int64_t k = 0; k <= i; k++) {
                ngrams_free(&c[k]);
                ngrams_free(&r[k]);
            }
            free(c);
            free(r);
            return st;
        }
    }
    *pc = c;
    *pr = r;
    return 0;
}

static void free_all(int64_t n, ngrams *c, ngrams *r) {
    for (int64_t i = 0; i < n; i++) {
        ngrams_free(&c[i]);
        ngrams_free(&r[i]);
    }
    free(c);
    free(r);
}

/* ---- BLEU-4 ------------------------------------------------------------------------------ */
int vlp_bleu4(int64_t n, const char *const *cands, const char *const *refs, vlp_bleu_result *out) {
    memset(out, 0, sizeof *out);
    if (n < 0 || (n && (!cands || !refs))) {
        vlp_set_error("BLEU-4: bad arguments");
        return VLP_ERR_ARG;
    }
    ngrams *c, *r;
    int st = build_all(n, cands, refs, &c, &r);
    if (st) return st;
    double match[4] = {0}, total[4] = {0};
    for (int64_t i = 0; i < n; i++) {
        out->cand_len += c[i].n_tok;
        out->ref_len += r[i].n_tok;
        for (int k = 1; k <= 4; k++)
            for (int j = 0; j < c[i].count[k - 1]; j++) {
                int f = c[i].freq[k - 1][j];
                int inref = ngram_count_in(&c[i], c[i].start[k - 1][j], k, &r[i]);
                match[k - 1] += f < inref ? f : inref; /* clipped by the reference count */
                total[k - 1] += f;
            }
    }
    free_all(n, c, r);
    double logsum = 0;
    int zero = 0;
    for (int k = 0; k < 4; k++) {
        out->precision[k] = total[k] > 0 ? match[k] / total[k] : 0;
        if (out->precision[k] <= 0) zero = 1;
        else logsum += log(out->precision[k]);
    }
    out->brevity_penalty = 1.0;
    if (out->cand_len < out->ref_len)
        out->brevity_penalty = out->cand_len > 0 ? exp(1.0 - (double)out->ref_len / (double)out->cand_len) : 0.0;
    out->bleu4 = zero ? 0.0 : out->brevity_penalty * exp(logsum / 4.0);
    return 0;
}

/* ---- CIDEr-D ------------------------------------------------------------------------------ */
/* Document frequencies: a string -> count map over the references' distinct n-grams. */
typedef struct {
    char **keys;
    int64_t *vals;
    size_t cap, n;
} df_map;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static char *gram_key(char **tok, int p, int n) {
    size_t len = 0;
    for (int k = 0; k < n; k++) len += strlen(tok[p + k]) + 1;
    char *key = malloc(len);
    if (!key) return NULL;
    size_t o = 0;
    for (int k = 0; k < n; k++) {
        size_t l = strlen(tok[p + k]);
        memcpy(key + o, tok[p + k], l);
        o += l;
        key[o++] = k + 1 < n ? ' ' : 0; /* tokens hold no spaces, so the key is unambiguous */
    }
    return key;
}

static int64_t *df_slot(df_map *m, const char *key, int insert) {
    if (insert && (m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        char **keys = calloc(cap, sizeof *keys);
        int64_t *vals = calloc(cap, sizeof *vals);
        if (!keys || !vals) {
            free(keys);
            free(vals);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = hash_str(m->keys[i]) & (cap - 1);
                while (keys[j]) j = (j + 1) & (cap - 1);
                keys[j] = m->keys[i];
                vals[j] = m->vals[i];
            }
        free(m->keys);
        free(m->vals);
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    if (!m->cap) return NULL;
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!insert) return NULL;
    m->keys[j] = ev_strdup(key);
    if (!m->keys[j]) return NULL;
    m->n++;
    return &m->vals[j];
}

static void df_free(df_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

static int64_t df_get(df_map *m, char **tok, int p, int n, int *oom) {
    char *key = gram_key(tok, p, n);
    if (!key) {
        *oom = 1;
        return 0;
    }
    int64_t *v = df_slot(m, key, 0);
    free(key);
    return v ? *v : 0;
}

int vlp_cider_d(int64_t n, const char *const *cands, const char *const *refs, double *score, double *per_example) {
    *score = 0;
    if (n < 0 || (n && (!cands || !refs))) {
        vlp_set_error("CIDEr-D: bad arguments");
        return VLP_ERR_ARG;
    }
    if (n == 0) return 0;
    ngrams *c, *r;
    int st = build_all(n, cands, refs, &c, &r);
    if (st) return st;
    df_map df = {0};
    int oom = 0;
    /* df(g): the number of references that contain g */
    for (int64_t i = 0; i < n && !oom; i++)
        for (int k = 1; k <= 4 && !oom; k++)
            for (int j = 0; j < r[i].count[k - 1] && !oom; j++) {
                char *key = gram_key(r[i].tok, r[i].start[k - 1][j], k);
                int64_t *v = key ? df_slot(&df, key, 1) : NULL;
                if (v) (*v)++;
                else oom = 1;
                free(key);
            }
    const double log_m = log((double)n), sigma = 6.0;
    double sum = 0;
    double *wc = NULL, *wr = NULL;
    for (int64_t i = 0; i < n && !oom; i++) {
        double delta = (double)(c[i].n_tok - r[i].n_tok);
        double penalty = exp(-(delta * delta) / (2 * sigma * sigma));
        double val = 0;
        for (int k = 1; k <= 4 && !oom; k++) {
            int nc = c[i].count[k - 1], nr = r[i].count[k - 1];
            double *pc = realloc(wc, sizeof(double) * (size_t)(nc + 1)), *pr;
            if (!pc) {
                oom = 1;
                break;
            }
            wc = pc;
            pr = realloc(wr, sizeof(double) * (size_t)(nr + 1));
            if (!pr) {
                oom = 1;
                break;
            }
            wr = pr;
            double norm_c = 0, norm_r = 0;
            for (int j = 0; j < nr; j++) {
                int64_t d = df_get(&df, r[i].tok, r[i].start[k - 1][j], k, &oom);
                wr[j] = r[i].freq[k - 1][j] * (log_m - log(d > 1 ? (double)d : 1.0));
                norm_r += wr[j] * wr[j];
            }
            double dot = 0;
            for (int j = 0; j < nc; j++) {
                int p = c[i].start[k - 1][j];
                int64_t d = df_get(&df, c[i].tok, p, k, &oom);
                wc[j] = c[i].freq[k - 1][j] * (log_m - log(d > 1 ? (double)d : 1.0));
                norm_c += wc[j] * wc[j];
                int fr = ngram_count_in(&c[i], p, k, &r[i]);
                if (fr) {
                    /* same n-gram, same df: the reference weight is fr * idf */
                    double w_ref = fr * (log_m - log(d > 1 ? (double)d : 1.0));
                    dot += (wc[j] < w_ref ? wc[j] : w_ref) * w_ref;
                }
            }
            if (norm_c > 0 && norm_r > 0) val += dot / (sqrt(norm_c) * sqrt(norm_r)) * penalty;
        }
        double s = val / 4.0 * 10.0;
        if (per_example) per_example[i] = s;
        sum += s;
    }
    free(wc);
    free(wr);
    df_free(&df);
    free_all(n, c, r);
    if (oom) {
        vlp_set_error("CIDEr-D: out of memory");
        return VLP_ERR_NOMEM;
    }
    *score = sum / (double)n;
    return 0;
}

/* ---- scoring a task ----------------------------------------------------------------------- */
void vlp_task_metrics_free(vlp_task_metrics *m) {
    if (!m) return;
    for (int i = 0; i < m->n_types; i++) {
        free(m->types[i].type);
        free(m->types[i].majority_answer);
    }
    free(m->types);
    free(m->correct);
    memset(m, 0, sizeof *m);
}

static int streq_norm(const char *a, const char *b, int *oom) {
    char *x = vlp_answer_normalize(a), *y = vlp_answer_normalize(b);
    int eq = x && y && !strcmp(x, y);
    if (!x || !y) *oom = 1;
    free(x);
    free(y);
    return eq;
}

/* The most frequent normalised train answer of a type; ties go to the earliest in the file. */
static char *majority_answer(const vlp_task_set *train, const char *type, int *oom) {
    int64_t m = 0;
    char **ans = malloc(sizeof(char *) * (size_t)(train->n ? train->n : 1));
    if (!ans) {
        *oom = 1;
        return NULL;
    }
    for (int64_t i = 0; i < train->n; i++)
        if (train->ex[i].type && !strcmp(train->ex[i].type, type)) {
            if (!(ans[m] = vlp_answer_normalize(train->ex[i].answer))) *oom = 1;
            else m++;
        }
    df_map counts = {0};
    char *best = NULL;
    int64_t best_n = 0;
    for (int64_t i = 0; i < m && !*oom; i++) {
        int64_t *v = df_slot(&counts, ans[i], 1);
        if (!v) {
            *oom = 1;
            break;
        }
        (*v)++;
    }
    /* scan in file order so a tie keeps the answer seen first */
    for (int64_t i = 0; i < m && !*oom; i++) {
        int64_t *v = df_slot(&counts, ans[i], 0);
        if (v && *v > best_n) {
            best_n = *v;
            best = ans[i];
        }
    }
    char *out = best && !*oom ? ev_strdup(best) : NULL;
    if (best && !out) *oom = 1;
    for (int64_t i = 0; i < m; i++) free(ans[i]);
    free(ans);
    df_free(&counts);
    return out;
}

int vlp_task_score(const vlp_task_set *data, const vlp_task_predictions *pred, const vlp_task_set *train,
                   vlp_task_metrics *out) {
    memset(out, 0, sizeof *out);
    out->chance = out->majority = NAN;
    out->bleu4 = out->cider_d = out->brevity_penalty = NAN;
    if (!data || !pred) {
        vlp_set_error("score: no data or predictions");
        return VLP_ERR_ARG;
    }
    if (pred->kind != data->kind) {
        vlp_set_error("score: predictions are for %s, %s is a %s file", vlp_task_name(pred->kind), data->path,
                      vlp_task_name(data->kind));
        return VLP_ERR_ARG;
    }
    if (train && train->kind != VLP_TASK_VQA) train = NULL;
    /* predictions per kept example, or per data row (skipped rows included) */
    int by_row;
    if (pred->n == data->n) by_row = 0;
    else if (pred->n == data->n_rows) by_row = 1;
    else {
        vlp_set_error("score: %lld predictions for %s, which has %lld examples (%lld rows)", (long long)pred->n,
                      data->path, (long long)data->n, (long long)data->n_rows);
        return VLP_ERR_ARG;
    }
    if (pred->skipped) { /* examples whose prediction row is {"skipped": true}: left out */
        int64_t m = 0;
        for (int64_t i = 0; i < data->n; i++) m += pred->skipped[by_row ? data->ex[i].row : i] != 0;
        if (m) {
            vlp_task_set d = *data;
            vlp_task_predictions p = {.kind = pred->kind};
            int textual = data->kind == VLP_TASK_CAPTION || data->kind == VLP_TASK_VQA;
            size_t k = (size_t)(data->n - m);
            d.ex = malloc((k ? k : 1) * sizeof *d.ex);
            if (textual) p.text = malloc((k ? k : 1) * sizeof *p.text);
            else p.label = malloc((k ? k : 1) * sizeof *p.label);
            if (!d.ex || (!p.text && !p.label)) {
                free(d.ex);
                free(p.text);
                free(p.label);
                vlp_set_error("score %s: out of memory", data->path);
                return VLP_ERR_NOMEM;
            }
            d.n = 0;
            for (int64_t i = 0; i < data->n; i++) {
                int64_t q = by_row ? data->ex[i].row : i;
                if (pred->skipped[q]) continue;
                if (textual) p.text[d.n] = pred->text[q];
                else p.label[d.n] = pred->label[q];
                d.ex[d.n++] = data->ex[i];
            }
            p.n = d.n;
            int rc = vlp_task_score(&d, &p, train, out);
            out->n_skipped = m;
            free(d.ex);
            free(p.text);
            free(p.label);
            return rc;
        }
    }
    const int64_t n = data->n;
    out->kind = data->kind;
    out->n = n;
    out->correct = calloc((size_t)(n ? n : 1), 1);
    if (!out->correct) goto oom;
    int nomem = 0;
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        const vlp_task_example *x = &data->ex[i];
        int64_t p = by_row ? x->row : i;
        int ok;
        if (data->kind == VLP_TASK_CAPTION || data->kind == VLP_TASK_VQA)
            ok = streq_norm(pred->text[p], x->answer, &nomem);
        else
            ok = pred->label[p] == x->label;
        out->correct[i] = (unsigned char)ok;
        right += ok;
    }
    if (nomem) goto oom;
    out->accuracy = n ? (double)right / (double)n : NAN;

    switch (data->kind) {
    case VLP_TASK_CAPTION: {
        const char **cands = malloc(sizeof(char *) * (size_t)(n ? n : 1));
        const char **refs = malloc(sizeof(char *) * (size_t)(n ? n : 1));
        if (!cands || !refs) {
            free(cands);
            free(refs);
            goto oom;
        }
        for (int64_t i = 0; i < n; i++) {
            cands[i] = pred->text[by_row ? data->ex[i].row : i];
            refs[i] = data->ex[i].answer;
        }
        vlp_bleu_result b;
        int st = vlp_bleu4(n, cands, refs, &b);
        if (!st) st = vlp_cider_d(n, cands, refs, &out->cider_d, NULL);
        free(cands);
        free(refs);
        if (st) {
            vlp_task_metrics_free(out);
            return st;
        }
        out->bleu4 = b.bleu4;
        memcpy(out->bleu_precision, b.precision, sizeof b.precision);
        out->brevity_penalty = b.brevity_penalty;
        out->cand_len = b.cand_len;
        out->ref_len = b.ref_len;
        break;
    }
    case VLP_TASK_VQA: {
        out->types = calloc((size_t)(n ? n : 1), sizeof *out->types);
        if (!out->types) goto oom;
        for (int64_t i = 0; i < n; i++) {
            int t;
            for (t = 0; t < out->n_types; t++)
                if (!strcmp(out->types[t].type, data->ex[i].type)) break;
            if (t == out->n_types) {
                out->types[t].type = ev_strdup(data->ex[i].type);
                if (!out->types[t].type) goto oom;
                out->types[t].majority = NAN;
                out->n_types++;
                if (train) {
                    out->types[t].majority_answer = majority_answer(train, data->ex[i].type, &nomem);
                    if (nomem) goto oom;
                }
            }
            vlp_vqa_type_metrics *tm = &out->types[t];
            tm->n++;
            tm->accuracy += out->correct[i];
            if (train && tm->majority_answer) {
                char *a = vlp_answer_normalize(data->ex[i].answer);
                if (!a) goto oom;
                if (isnan(tm->majority)) tm->majority = 0;
                tm->majority += !strcmp(a, tm->majority_answer);
                free(a);
            } else if (train) {
                tm->majority = 0; /* no train answer of this type: the baseline never answers right */
            }
        }
        double acc = 0, maj = 0;
        for (int t = 0; t < out->n_types; t++) {
            vlp_vqa_type_metrics *tm = &out->types[t];
            tm->accuracy /= (double)tm->n;
            if (train) tm->majority /= (double)tm->n;
            acc += tm->accuracy;
            maj += train ? tm->majority : 0;
        }
        out->accuracy = out->n_types ? acc / out->n_types : NAN;
        if (train && out->n_types) out->majority = maj / out->n_types;
        break;
    }
    case VLP_TASK_NLVR: {
        int64_t pos = 0;
        for (int64_t i = 0; i < n; i++) pos += data->ex[i].label == 1;
        out->chance = 0.5;
        out->majority_label = pos * 2 >= n ? 1 : 0;
        out->majority = n ? (double)(pos * 2 >= n ? pos : n - pos) / (double)n : NAN;
        break;
    }
    case VLP_TASK_GROUND2:
    case VLP_TASK_GROUND3:
    case VLP_TASK_MC: {
        double ch = 0;
        for (int64_t i = 0; i < n; i++) {
            int k = data->kind == VLP_TASK_MC ? data->ex[i].n_choices : data->ex[i].grid * data->ex[i].grid;
            ch += 1.0 / (k > 0 ? k : 1);
        }
        out->chance = n ? ch / (double)n : NAN;
        break;
    }
    default:
        break;
    }
    return 0;
oom:
    vlp_task_metrics_free(out);
    vlp_set_error("score %s: out of memory", data->path);
    return VLP_ERR_NOMEM;
}

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

char *vlp_task_metrics_json(const vlp_task_metrics *m) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "n", json_integer(m->n));
    switch (m->kind) {
    case VLP_TASK_CAPTION: {
        json_object_set_new(o, "exact_match", num(m->accuracy));
        json_object_set_new(o, "bleu4", num(m->bleu4));
        json_object_set_new(o, "cider_d", num(m->cider_d));
        json_t *p = json_array();
        for (int k = 0; k < 4; k++) json_array_append_new(p, num(m->bleu_precision[k]));
        json_object_set_new(o, "bleu_precisions", p);
        json_object_set_new(o, "brevity_penalty", num(m->brevity_penalty));
        json_object_set_new(o, "candidate_tokens", json_integer(m->cand_len));
        json_object_set_new(o, "reference_tokens", json_integer(m->ref_len));
        break;
    }
    case VLP_TASK_VQA: {
        json_object_set_new(o, "overall", num(m->accuracy));
        json_object_set_new(o, "overall_majority", num(m->majority));
        json_t *types = json_object();
        for (int t = 0; t < m->n_types; t++) {
            const vlp_vqa_type_metrics *tm = &m->types[t];
            json_t *x = json_object();
            json_object_set_new(x, "n", json_integer(tm->n));
            json_object_set_new(x, "accuracy", num(tm->accuracy));
            json_object_set_new(x, "majority", num(tm->majority));
            json_object_set_new(x, "majority_answer", tm->majority_answer ? json_string(tm->majority_answer) : json_null());
            json_object_set_new(types, tm->type, x);
        }
        json_object_set_new(o, "types", types);
        break;
    }
    case VLP_TASK_NLVR:
        json_object_set_new(o, "accuracy", num(m->accuracy));
        json_object_set_new(o, "chance", num(m->chance));
        json_object_set_new(o, "majority", num(m->majority));
        json_object_set_new(o, "majority_label", json_boolean(m->majority_label));
        break;
    default:
        json_object_set_new(o, "accuracy", num(m->accuracy));
        json_object_set_new(o, "chance", num(m->chance));
        break;
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!s) vlp_set_error("metrics: out of memory");
    return s;
}
