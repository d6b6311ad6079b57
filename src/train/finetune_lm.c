/* The lm head of fine-tuning (include/vlp_finetune.h): a captioning model's decoder trained
 * with teacher forcing on captions or on "[CLS] question [SEP] answer [SEP]" (loss on the answer
 * only), and its predictions: captions / answers decoded from a prefix with the key/value cache
 * (greedy or beam search), or a closed answer list ranked by the decoder's log-likelihood (BLIP). */
#include "core/internal.h"
#include "finetune_internal.h"
#include "core/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- graph -------------------------------------------------------------------------------- */

int vlp_ft_lm_graph_declare(vlp_graph *g, const vlp_ft_model *m, int batch, int train, vlp_ft_graph *o) {
    const vlp_vl *vl = m->vl;
    const vlp_vl_config *c = &vl->cfg;
    if (c->family != VLP_VL_CAPTION) {
        vlp_set_error("fine-tuning graph (lm head): needs a captioning model, not a %s model",
                      vlp_vl_family_name(c->family));
        return VLP_ERR_ARG;
    }
    if (!train) {
        vlp_set_error("fine-tuning graph (lm head): it trains only; predictions decode with the key/value cache "
                      "(vlp_ft_lm_generate, vlp_ft_lm_rank)");
        return VLP_ERR_ARG;
    }
    int64_t sp[4] = {batch, 3, c->image_size, c->image_size}, st[2] = {batch, c->max_text_len},
            sl[1] = {(int64_t)batch * c->max_text_len};
    o->batch = o->rows = batch;
    o->pixels = vlp_input(g, "pixels", VLP_F32, 4, sp);
    o->ids = vlp_input(g, "ids", VLP_I32, 2, st);
    o->mask = vlp_input(g, "mask", VLP_I32, 2, st);
    o->labels = vlp_input(g, "labels", VLP_I32, 1, sl);
    vlp_tensor *img = vlp_vl_encode_image(g, vl, vlp_vl_embed_image(g, vl, o->pixels, NULL, NULL));
    /* the pre-training LM objective: mean cross-entropy over the positions with a target */
    o->loss = vlp_vl_lm_loss(g, vl, img, o->ids, o->mask, o->labels);
    if (vlp_graph_error(g) || !o->loss) {
        vlp_set_error("fine-tuning graph (lm head): %s", vlp_graph_error(g) ? vlp_graph_error(g) : "cannot build");
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* ---- data --------------------------------------------------------------------------------- */

int vlp_ft_lm_prepare(const vlp_ft_model *m, vlp_ft_data *d, vlp_tokenizer *tok) {
    const vlp_vl_config *c = &m->vl->cfg;
    int T = d->T, vqa = m->task == VLP_TASK_VQA;
    int64_t n = d->n;
    if (m->task != VLP_TASK_VQA && m->task != VLP_TASK_CAPTION) {
        vlp_set_error("lm head: task %s (caption and vqa only)", vlp_task_name(m->task));
        return VLP_ERR_ARG;
    }
    d->tok = tok;
    d->lm = malloc((size_t)(n ? n : 1) * T * sizeof(int32_t));
    d->pre = calloc((size_t)(n ? n : 1) * T, sizeof(int32_t));
    d->pre_len = calloc((size_t)(n ? n : 1), sizeof(int));
    int32_t *type = malloc((size_t)T * sizeof(int32_t));
    if (!d->lm || !d->pre || !d->pre_len || !type) {
        free(type);
        vlp_set_error("vlp_ft_data_new: out of memory");
        return VLP_ERR_NOMEM;
    }
    d->labelled = 0;
    for (int64_t i = 0; i < n; i++) {
        const vlp_task_example *e = &d->set->ex[i];
        int32_t *ids = d->ids + (size_t)i * T, *mask = d->mask + (size_t)i * T, *lab = d->lm + (size_t)i * T,
                *pre = d->pre + (size_t)i * T;
        const char *a = e->answer ? e->answer : "";
        /* caption: [CLS] caption [SEP], every next token a target; vqa: [CLS] q [SEP] a [SEP], the
         * targets are the tokens of the second segment (the answer and its [SEP]) */
        int len = vlp_tokenizer_encode_pair(tok, vqa ? (e->text ? e->text : "") : a, vqa ? a : NULL, T, ids, type,
                                            mask);
        int plen = len < 0 ? -1
                   : vqa   ? vlp_tokenizer_encode_pair(tok, e->text ? e->text : "", NULL, T - 1, pre, NULL, NULL)
                           : 1;
        if (len < 0 || plen < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", vlp_last_error());
            vlp_set_error("%s:%lld: %s", d->set->path, (long long)e->line, msg);
            free(type);
            return VLP_ERR_ARG;
        }
        ids[0] = pre[0] = c->bos_id; /* the family's start token ([CLS] in vlp's presets) */
        d->pre_len[i] = plen;
        int any = 0;
        for (int t = 0; t < T; t++) {
            int ok = t + 1 < T && mask[t + 1] && (!vqa || type[t + 1]);
            lab[t] = ok ? ids[t + 1] : -100;
            any |= ok;
        }
        d->label[i] = any ? 0 : -1;
        d->labelled += any;
    }
    free(type);
    return VLP_OK;
}

static void put_image(const vlp_ft_data *d, int64_t id, float *out) {
    const uint8_t *rgb = d->img + (size_t)id * d->S * d->S * 3;
    size_t np = (size_t)d->S * d->S;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < np; i++) out[c * np + i] = d->lut[c][rgb[3 * i + c]];
}

int vlp_ft_lm_fill(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *rows, int n, const vlp_ft_graph *g) {
    (void)m;
    int B = g->batch, T = d->T;
    size_t px = (size_t)3 * d->S * d->S;
    int32_t *L = g->labels ? g->labels->data : NULL;
    for (int r = 0; r < B; r++) {
        int64_t e = rows[r < n ? r : n - 1];
        if (e < 0 || e >= d->n) {
            vlp_set_error("vlp_ft_data_fill: example %lld is outside the %lld examples", (long long)e, (long long)d->n);
            return VLP_ERR_ARG;
        }
        put_image(d, d->img_a[e], (float *)g->pixels->data + (size_t)r * px);
        memcpy((int32_t *)g->ids->data + (size_t)r * T, d->ids + (size_t)e * T, (size_t)T * sizeof(int32_t));
        memcpy((int32_t *)g->mask->data + (size_t)r * T, d->mask + (size_t)e * T, (size_t)T * sizeof(int32_t));
        if (!L) continue;
        if (r < n) memcpy(L + (size_t)r * T, d->lm + (size_t)e * T, (size_t)T * sizeof(int32_t));
        else
            for (int t = 0; t < T; t++) L[(size_t)r * T + t] = -100; /* repeats of the last example: no loss */
    }
    return VLP_OK;
}

const int32_t *vlp_ft_lm_prefix(const vlp_ft_data *d, int64_t ex, int *len) {
    if (!d || !d->pre || ex < 0 || ex >= d->n) return NULL;
    if (len) *len = d->pre_len[ex];
    return d->pre + (size_t)ex * d->T;
}

/* Image tokens of examples ex[0..k) -> feat [k, N + 1, vision_width]. */
static int features(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *ex, int k, float *feat) {
    size_t px = (size_t)3 * d->S * d->S;
    float *p = malloc((size_t)k * px * sizeof(float));
    if (!p) {
        vlp_set_error("lm head: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < k; i++) put_image(d, d->img_a[ex[i]], p + (size_t)i * px);
    int rc = vlp_vl_image_features(m->vl, p, k, feat);
    free(p);
    return rc;
}

static int check_lm(const vlp_ft_model *m, const vlp_ft_data *d, const char *fn) {
    if (!m || !d) {
        vlp_set_error("%s: NULL argument", fn);
        return VLP_ERR_ARG;
    }
    if (m->head != VLP_FT_HEAD_LM || !d->pre || !d->tok) {
        vlp_set_error("%s: needs a model with the lm head (a fine-tuned captioning model) and its data", fn);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* ---- generation ---------------------------------------------------------------------------- */

/* Greedy or beam search (vlp_vl_generate_prefix) for k examples sharing prefix length P; out texts
 * and, optionally, the probability of each. */
static int generate_chunk(const vlp_ft_model *m, const vlp_ft_data *d, const vlp_vl_gen_config *gc,
                          const int64_t *ex, int k, char **texts, float *conf) {
    int P = d->pre_len[ex[0]], NI = vlp_vl_image_tokens(m->vl), IW = m->vl->cfg.vision_width, rc = VLP_ERR_NOMEM;
    vlp_vl_gen_config g = *gc;
    if (g.max_len > d->T - P) g.max_len = d->T - P; /* the cache holds the prefix and the answer */
    if (g.min_len > g.max_len) g.min_len = g.max_len;
    if (g.max_len < 1) { /* no room after the prefix */
        for (int i = 0; i < k; i++) {
            if (!(texts[i] = strdup(""))) return VLP_ERR_NOMEM;
            if (conf) conf[i] = 1.0f;
        }
        return VLP_OK;
    }
    int T = g.max_len;
    float *feat = malloc((size_t)k * NI * IW * sizeof(float)), *logp = malloc((size_t)k * sizeof(float));
    int32_t *pre = malloc((size_t)k * P * sizeof(int32_t)), *out = malloc((size_t)k * T * sizeof(int32_t));
    int *lens = malloc((size_t)k * sizeof(int));
    char *buf = malloc(4096);
    if (!feat || !logp || !pre || !out || !lens || !buf) {
        vlp_set_error("lm head: out of memory");
        goto out;
    }
    for (int i = 0; i < k; i++) memcpy(pre + (size_t)i * P, d->pre + (size_t)ex[i] * d->T, (size_t)P * sizeof(int32_t));
    if ((rc = features(m, d, ex, k, feat)) ||
        (rc = vlp_vl_generate_prefix(m->vl, feat, k, pre, P, &g, out, lens, logp)))
        goto out;
    for (int i = 0; i < k; i++) {
        int L = lens[i]; /* the text without the eos that ends it */
        if (L && out[(size_t)i * T + L - 1] == m->vl->cfg.eos_id) L--;
        if (vlp_tokenizer_decode(d->tok, out + (size_t)i * T, L, 1, buf, 4096) < 0) {
            rc = VLP_ERR_ARG;
            goto out;
        }
        if (!(texts[i] = strdup(buf))) {
            vlp_set_error("lm head: out of memory");
            rc = VLP_ERR_NOMEM;
            goto out;
        }
        if (conf) conf[i] = lens[i] ? expf(logp[i]) : 0.0f;
    }
    rc = VLP_OK;
out:
    free(feat);
    free(logp);
    free(pre);
    free(out);
    free(lens);
    free(buf);
    return rc;
}

/* ---- answers in the train set's spelling ------------------------------------------------- */

typedef struct {
    char *key; /* the WordPiece ids, "12,345,6" */
    const char *answer;
} ans_key;

static int by_key(const void *a, const void *b) { return strcmp(((const ans_key *)a)->key, ((const ans_key *)b)->key); }

/* "id,id,...": the WordPiece ids of text (no special tokens); NULL when out of memory. */
static char *ids_key(vlp_tokenizer *tok, const char *text) {
    int32_t ids[64];
    int n = vlp_tokenizer_encode(tok, text ? text : "", ids, 64);
    if (n < 0) n = 0;
    if (n > 64) n = 64; /* longer answers compare on their first 64 tokens */
    char *k = malloc((size_t)n * 12 + 1), *p = k;
    if (!k) return NULL;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%d", i ? "," : "", ids[i]);
    return k;
}

int vlp_ft_lm_canonical_answers(vlp_tokenizer *tok, const vlp_task_set *train, vlp_task_predictions *pred) {
    if (!tok || !train || !pred) {
        vlp_set_error("vlp_ft_lm_canonical_answers: NULL argument");
        return VLP_ERR_ARG;
    }
    int64_t na = 0, changed = 0;
    ans_key *keys = malloc((size_t)(train->n ? train->n : 1) * sizeof *keys);
    int rc = keys ? VLP_OK : VLP_ERR_NOMEM;
    for (int64_t i = 0; !rc && i < train->n; i++) {
        const char *a = train->ex[i].answer;
        if (!a || !*a) continue;
        if (!(keys[na].key = ids_key(tok, a))) rc = VLP_ERR_NOMEM;
        else keys[na++].answer = a;
    }
    if (!rc) qsort(keys, (size_t)na, sizeof *keys, by_key); /* equal keys: any of them (same tokens) */
    for (int64_t i = 0; !rc && i < pred->n; i++) {
        if (!pred->text[i]) continue;
        ans_key q = {ids_key(tok, pred->text[i]), NULL};
        if (!q.key) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        const ans_key *hit = na ? bsearch(&q, keys, (size_t)na, sizeof *keys, by_key) : NULL;
        free(q.key);
        if (!hit || !strcmp(hit->answer, pred->text[i])) continue;
        char *t = strdup(hit->answer);
        if (!t) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        free(pred->text[i]);
        pred->text[i] = t;
        changed++;
    }
    for (int64_t i = 0; keys && i < na; i++) free(keys[i].key);
    free(keys);
    if (rc) {
        vlp_set_error("vlp_ft_lm_canonical_answers: out of memory");
        return rc;
    }
    return (int)(changed > 0x7fffffff ? 0x7fffffff : changed);
}

static const vlp_ft_data *sort_data;
static int by_prefix_len(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int lx = sort_data->pre_len[x], ly = sort_data->pre_len[y];
    return lx != ly ? lx - ly : (x > y) - (x < y);
}

static vlp_task_predictions *new_pred(const vlp_ft_data *d) {
    vlp_task_predictions *p = calloc(1, sizeof *p);
    if (p && !(p->text = calloc((size_t)(d->n ? d->n : 1), sizeof *p->text))) {
        free(p);
        p = NULL;
    }
    if (!p) vlp_set_error("lm head: out of memory");
    if (p) p->kind = d->set->kind, p->n = d->n;
    return p;
}

int vlp_ft_lm_generate(const vlp_ft_model *m, const vlp_ft_data *d, const vlp_vl_gen_config *gc, int batch,
                       vlp_task_predictions **pred, float **conf) {
    int rc = check_lm(m, d, "vlp_ft_lm_generate");
    if (rc) return rc;
    if (!gc || !pred || gc->beam < 1 || gc->beam > 64 || gc->max_len < 1 || gc->min_len < 0 || gc->sample) {
        vlp_set_error("vlp_ft_lm_generate: beam 1..64, max_len >= 1, min_len >= 0, no sampling");
        return VLP_ERR_ARG;
    }
    *pred = NULL;
    if (conf) *conf = NULL;
    int64_t n = d->n;
    int B = batch > 0 ? batch : 16;
    vlp_task_predictions *p = new_pred(d);
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    float *cf = malloc((size_t)(n ? n : 1) * sizeof(float)), *cc = malloc((size_t)B * sizeof(float));
    char **tx = calloc((size_t)B, sizeof *tx);
    if (!p || !order || !cf || !cc || !tx) {
        vlp_set_error("lm head: out of memory");
        rc = VLP_ERR_NOMEM;
        goto out;
    }
    /* examples with the same prefix length decode together (the cache steps every row at once) */
    for (int64_t i = 0; i < n; i++) order[i] = i;
    sort_data = d;
    qsort(order, (size_t)n, sizeof *order, by_prefix_len);
    for (int64_t s = 0; s < n;) {
        int k = 1;
        while (k < B && s + k < n && d->pre_len[order[s + k]] == d->pre_len[order[s]]) k++;
        if ((rc = generate_chunk(m, d, gc, order + s, k, tx, cc))) goto out;
        for (int i = 0; i < k; i++) {
            p->text[order[s + i]] = tx[i];
            tx[i] = NULL;
            cf[order[s + i]] = cc[i];
        }
        s += k;
    }
    *pred = p;
    p = NULL;
    if (conf) *conf = cf, cf = NULL;
out:
    vlp_task_predictions_free(p);
    free(order);
    free(cf);
    free(cc);
    for (int i = 0; tx && i < B; i++) free(tx[i]);
    free(tx);
    return rc;
}

int vlp_ft_lm_predict(const vlp_ft_model *m, const vlp_ft_data *d, int batch, vlp_task_predictions **pred) {
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc); /* greedy, up to 20 tokens: the evaluation during fine-tuning */
    return vlp_ft_lm_generate(m, d, &gc, batch, pred, NULL);
}

/* ---- likelihood of given continuations ------------------------------------------------------ */

/* logp[j] = log p(cand[j][0..len[j]) | image feat, prefix pre[0..P)), `batch` rows at a time. */
static int score_rows(const vlp_ft_model *m, const float *feat, const int32_t *pre, int P, int32_t *const *cand,
                      const int *len, int n, int batch, double *logp) {
    const vlp_vl_config *c = &m->vl->cfg;
    int V = c->vocab_size, B = batch > 0 ? batch : 64, rc = VLP_OK;
    if (B > n) B = n;
    float *logits = malloc((size_t)B * V * sizeof(float));
    int32_t *tok = malloc((size_t)B * sizeof(int32_t));
    int *row_img = calloc((size_t)B, sizeof(int));
    if (!logits || !tok || !row_img) {
        vlp_set_error("lm head: out of memory");
        rc = VLP_ERR_NOMEM;
    }
    for (int c0 = 0; !rc && c0 < n; c0 += B) {
        int R = n - c0 < B ? n - c0 : B, L = 0;
        for (int r = 0; r < R; r++) L = len[c0 + r] > L ? len[c0 + r] : L;
        vlp_vl_kv *kv = vlp_vl_kv_new(m->vl, R, P + (L > 0 ? L : 1));
        if (!kv || (rc = vlp_vl_kv_set_images(kv, feat, 1, row_img))) {
            rc = rc ? rc : VLP_ERR_NOMEM;
            vlp_vl_kv_free(kv);
            break;
        }
        for (int p = 0; !rc && p < P; p++) {
            for (int r = 0; r < R; r++) tok[r] = pre[p];
            rc = vlp_vl_kv_step(kv, tok, p + 1 < P ? NULL : logits); /* only the last position predicts */
        }
        for (int r = 0; r < R; r++) logp[c0 + r] = 0;
        for (int j = 0; !rc && j < L; j++) {
            for (int r = 0; r < R; r++) {
                if (j >= len[c0 + r]) continue;
                const float *lg = logits + (size_t)r * V;
                logp[c0 + r] += (double)lg[cand[c0 + r][j]] - (double)vlp_logsumexp(lg, V);
            }
            if (j + 1 == L) break;
            for (int r = 0; r < R; r++) tok[r] = j < len[c0 + r] ? cand[c0 + r][j] : c->pad_id;
            rc = vlp_vl_kv_step(kv, tok, logits);
        }
        vlp_vl_kv_free(kv);
    }
    free(logits);
    free(tok);
    free(row_img);
    return rc;
}

/* The continuation tokens of a text: its WordPiece tokens then [SEP], at most cap. */
static int cont_tokens(vlp_tokenizer *tok, const char *s, int T, int cap, int32_t *out) {
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    if (!ids) {
        vlp_set_error("lm head: out of memory");
        return VLP_ERR_NOMEM;
    }
    int n = vlp_tokenizer_encode_pair(tok, s ? s : "", NULL, T, ids, NULL, NULL);
    if (n >= 2) {
        n -= 1; /* drop [CLS]; keep the closing [SEP] */
        if (n > cap) n = cap;
        memcpy(out, ids + 1, (size_t)n * sizeof(int32_t));
    }
    free(ids);
    return n;
}

int vlp_ft_lm_score(const vlp_ft_model *m, const vlp_ft_data *d, int64_t ex, const char *const *texts, int n,
                    int batch, double *logp) {
    int rc = check_lm(m, d, "vlp_ft_lm_score");
    if (rc) return rc;
    if (ex < 0 || ex >= d->n || !texts || n < 1 || !logp) {
        vlp_set_error("vlp_ft_lm_score: bad arguments (example %lld of %lld, %d texts)", (long long)ex,
                      (long long)d->n, n);
        return VLP_ERR_ARG;
    }
    int T = d->T, P = d->pre_len[ex], NI = vlp_vl_image_tokens(m->vl);
    float *feat = malloc((size_t)NI * m->vl->cfg.vision_width * sizeof(float));
    int32_t *ids = malloc((size_t)n * T * sizeof(int32_t)), **cand = malloc((size_t)n * sizeof *cand);
    int *len = malloc((size_t)n * sizeof(int));
    if (!feat || !ids || !cand || !len) {
        vlp_set_error("lm head: out of memory");
        rc = VLP_ERR_NOMEM;
    }
    for (int j = 0; !rc && j < n; j++) {
        cand[j] = ids + (size_t)j * T;
        if ((len[j] = cont_tokens(d->tok, texts[j], T, T - P, cand[j])) < 0) rc = VLP_ERR_ARG;
    }
    if (!rc) rc = features(m, d, &ex, 1, feat);
    if (!rc) rc = score_rows(m, feat, d->pre + (size_t)ex * T, P, cand, len, n, batch, logp);
    free(feat);
    free(ids);
    free(cand);
    free(len);
    return rc;
}

/* ---- ranking a closed answer list ----------------------------------------------------------- */

typedef struct {
    const char *type;
    int n, cap;
    char **ans; /* normalised, order of first appearance in train */
} type_list;

static int list_add(type_list *l, const char *a) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->ans[i], a)) return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        char **na = realloc(l->ans, (size_t)nc * sizeof *na);
        if (!na) return -1;
        l->ans = na;
        l->cap = nc;
    }
    return (l->ans[l->n] = strdup(a)) ? (l->n++, 0) : -1;
}

/* log p(first continuation token = v) for every v, after the prefix pre[0..P) and image feat. */
static int first_token_logp(const vlp_ft_model *m, const float *feat, const int32_t *pre, int P, float *lg) {
    int V = m->vl->cfg.vocab_size, zero = 0, rc = VLP_OK;
    vlp_vl_kv *kv = vlp_vl_kv_new(m->vl, 1, P);
    if (!kv) return VLP_ERR_NOMEM;
    rc = vlp_vl_kv_set_images(kv, feat, 1, &zero);
    for (int p = 0; !rc && p < P; p++) rc = vlp_vl_kv_step(kv, pre + p, p + 1 < P ? NULL : lg);
    vlp_vl_kv_free(kv);
    if (rc) return rc;
    float lse = vlp_logsumexp(lg, V);
    for (int v = 0; v < V; v++) lg[v] -= lse;
    return VLP_OK;
}

typedef struct {
    float s;
    int j;
} shortlist_t;
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static int by_first_token(const void *a, const void *b) {
    const shortlist_t *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->j - y->j; /* ties: the earlier candidate first */
}

int vlp_ft_lm_rank(const vlp_ft_model *m, const vlp_ft_data *d, const vlp_task_set *train, int batch, int k,
                   vlp_task_predictions **pred, float **conf) {
    int rc = check_lm(m, d, "vlp_ft_lm_rank");
    if (rc) return rc;
    if (m->task != VLP_TASK_VQA || !train || train->kind != VLP_TASK_VQA || !pred) {
        vlp_set_error("vlp_ft_lm_rank: needs a vqa model, its data and the vqa train set (the answer lists)");
        return VLP_ERR_ARG;
    }
    *pred = NULL;
    if (conf) *conf = NULL;
    int T = d->T, NI = vlp_vl_image_tokens(m->vl), nt = 0;
    int64_t n = d->n;
    type_list *types = calloc((size_t)(train->n ? train->n : 1), sizeof *types);
    vlp_task_predictions *p = new_pred(d);
    float *cf = malloc((size_t)(n ? n : 1) * sizeof(float));
    /* image tokens of FB examples per encoder pass */
    enum { FB = 32 };
    size_t fsz = (size_t)NI * m->vl->cfg.vision_width;
    float *feat = malloc(FB * fsz * sizeof(float));
    int64_t fex[FB];
    int32_t **tok = NULL, **cand = NULL;
    int *len = NULL, maxc = 0, V = m->vl->cfg.vocab_size;
    double *lp = NULL;
    float *lg0 = malloc((size_t)V * sizeof(float));
    shortlist_t *sl = NULL;
    int *pick = NULL;
    rc = types && p && cf && feat && lg0 ? VLP_OK : VLP_ERR_NOMEM;
    /* the answer list of each question type */
    for (int64_t i = 0; !rc && i < train->n; i++) {
        const char *ty = train->ex[i].type ? train->ex[i].type : "";
        int t = 0;
        while (t < nt && strcmp(types[t].type, ty)) t++;
        if (t == nt) types[nt++].type = ty;
        char *a = vlp_answer_normalize(train->ex[i].answer ? train->ex[i].answer : "");
        if (!a || list_add(&types[t], a)) rc = VLP_ERR_NOMEM;
        free(a);
        if (types[t].n > maxc) maxc = types[t].n;
    }
    /* each type's candidates tokenised once: tok[t][j * T ..] */
    if (!rc && (!(tok = calloc((size_t)(nt ? nt : 1), sizeof *tok)) ||
                !(cand = malloc((size_t)(maxc ? maxc : 1) * sizeof *cand)) ||
                !(len = malloc((size_t)(nt ? nt : 1) * (maxc ? maxc : 1) * sizeof(int))) ||
                !(lp = malloc((size_t)(maxc ? maxc : 1) * sizeof(double))) ||
                !(sl = malloc((size_t)(maxc ? maxc : 1) * sizeof *sl)) ||
                !(pick = malloc((size_t)(maxc ? maxc : 1) * sizeof *pick))))
        rc = VLP_ERR_NOMEM;
    for (int t = 0; !rc && t < nt; t++) {
        if (!(tok[t] = malloc((size_t)types[t].n * T * sizeof(int32_t)))) rc = VLP_ERR_NOMEM;
        for (int j = 0; !rc && j < types[t].n; j++)
            if ((len[t * maxc + j] = cont_tokens(d->tok, types[t].ans[j], T, T, tok[t] + (size_t)j * T)) < 0)
                rc = VLP_ERR_ARG;
    }
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_ft_lm_rank: out of memory");
    for (int64_t i = 0; !rc && i < n; i++) {
        if (i % FB == 0) { /* the next FB examples' image tokens */
            int k = n - i < FB ? (int)(n - i) : FB;
            for (int j = 0; j < k; j++) fex[j] = i + j;
            if ((rc = features(m, d, fex, k, feat))) break;
        }
        const char *ty = d->set->ex[i].type ? d->set->ex[i].type : "";
        int t = 0, P = d->pre_len[i];
        while (t < nt && strcmp(types[t].type, ty)) t++;
        if (t == nt || !types[t].n) { /* no train answer of this type: nothing to rank */
            cf[i] = 0.0f;
            if (!(p->text[i] = strdup(""))) rc = VLP_ERR_NOMEM;
            continue;
        }
        int C = types[t].n, *cl = len + (size_t)t * maxc, K = C;
        const float *fi = feat + (size_t)(i % FB) * fsz;
        const int32_t *pre = d->pre + (size_t)i * T;
        for (int j = 0; j < C; j++) pick[j] = j;
        if (k > 0 && k < C) { /* BLIP: the k candidates whose first token is most likely, in full */
            if ((rc = first_token_logp(m, fi, pre, P, lg0))) break;
            for (int j = 0; j < C; j++) {
                int32_t f = tok[t][(size_t)j * T];
                sl[j] = (shortlist_t){cl[j] > 0 && f >= 0 && f < V ? lg0[f] : -INFINITY, j};
            }
            qsort(sl, (size_t)C, sizeof *sl, by_first_token);
            K = k;
            for (int j = 0; j < K; j++) pick[j] = sl[j].j;
            /* scored in the candidates' own order, so a tie resolves as without the shortlist */
            qsort(pick, (size_t)K, sizeof *pick, cmp_int);
        }
        /* candidates longer than the room after the prefix are cut there */
        int *lj = malloc((size_t)K * sizeof(int));
        if (!lj) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        for (int j = 0; j < K; j++) {
            cand[j] = tok[t] + (size_t)pick[j] * T;
            lj[j] = cl[pick[j]] < T - P ? cl[pick[j]] : T - P;
        }
        rc = score_rows(m, fi, pre, P, cand, lj, K, batch, lp);
        free(lj);
        if (rc) break;
        int best = 0;
        for (int j = 1; j < K; j++)
            if (lp[j] > lp[best]) best = j;
        double z = 0;
        for (int j = 0; j < K; j++) z += exp(lp[j] - lp[best]);
        cf[i] = (float)(1.0 / z);
        if (!(p->text[i] = strdup(types[t].ans[pick[best]]))) rc = VLP_ERR_NOMEM;
    }
    if (!rc) {
        *pred = p;
        p = NULL;
        if (conf) *conf = cf, cf = NULL;
    } else if (rc == VLP_ERR_NOMEM) {
        vlp_set_error("vlp_ft_lm_rank: out of memory");
    }
    for (int t = 0; types && t < nt; t++) {
        for (int j = 0; j < types[t].n; j++) free(types[t].ans[j]);
        free(types[t].ans);
        if (tok) free(tok[t]);
    }
    free(types);
    free(tok);
    free(cand);
    free(len);
    free(lp);
    free(lg0);
    free(sl);
    free(pick);
    free(feat);
    free(cf);
    vlp_task_predictions_free(p);
    return rc;
}
