/* Zero-shot downstream tasks with a CLIP dual encoder (see vlp_downstream.h for the rules). */
#include "vlp_downstream.h"

#include "core/internal.h"
#include "vlp_image.h"
#include "vlp_text.h"
#include "vl_embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string set: distinct strings in order of first insertion ------------------------- */

typedef struct {
    char **s;
    int64_t n, cap;
    int64_t *slot; /* open addressing, -1 empty */
    int64_t nslot;
} strset;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strset_free(strset *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* Index of s (added when new), -1 when out of memory. */
static int64_t strset_add(strset *t, const char *s) {
    if (2 * (t->n + 1) > t->nslot) {
        int64_t ns = t->nslot ? 2 * t->nslot : 64;
        int64_t *sl = malloc((size_t)ns * sizeof *sl);
        if (!sl) return -1;
        for (int64_t i = 0; i < ns; i++) sl[i] = -1;
        for (int64_t i = 0; i < t->n; i++) {
            uint64_t h = hash_str(t->s[i]) & (uint64_t)(ns - 1);
            while (sl[h] >= 0) h = (h + 1) & (uint64_t)(ns - 1);
            sl[h] = i;
        }
        free(t->slot);
        t->slot = sl;
        t->nslot = ns;
    }
    uint64_t h = hash_str(s) & (uint64_t)(t->nslot - 1);
    while (t->slot[h] >= 0) {
        if (!strcmp(t->s[t->slot[h]], s)) return t->slot[h];
        h = (h + 1) & (uint64_t)(t->nslot - 1);
    }
    if (t->n == t->cap) {
        int64_t nc = t->cap ? 2 * t->cap : 64;
        char **ns = realloc(t->s, (size_t)nc * sizeof *ns);
        if (!ns) return -1;
        t->s = ns;
        t->cap = nc;
    }
    if (!(t->s[t->n] = strdup(s))) return -1;
    t->slot[h] = t->n;
    return t->n++;
}

/* ---- embedding helpers -------------------------------------------------------------------- */

/* The dual encoder the protocols score with: a CLIP model (r), or a VL model's ITC heads (vr). */
typedef struct {
    vlp_clip_runner *r;
    vl_itc_runner *vr;
    vlp_tokenizer *tok; /* the model's own */
    int E, S;           /* feature width, image size */
    float mean[3], std[3];
    float scale; /* exp(logit_scale) */
    const vlp_clip_task_options *opt;
} ctx;

static void progress(const ctx *c, const char *stage, int64_t done, int64_t total) {
    if (c->opt && c->opt->on_progress) c->opt->on_progress(c->opt->progress_ctx, stage, done, total);
}

static int embed_pixels(const ctx *c, const float *px, int n, float *out) {
    return c->r ? (vlp_clip_embed_pixels(c->r, px, n, 1, out) < 0 ? VLP_ERR_STATE : VLP_OK)
                : vl_itc_embed_pixels(c->vr, px, n, out);
}

static vlp_preprocess_config preprocess_of(const ctx *c) {
    vlp_preprocess_config pre = vlp_preprocess_clip(c->S);
    memcpy(pre.mean, c->mean, sizeof pre.mean);
    memcpy(pre.std, c->std, sizeof pre.std);
    return pre;
}

/* VL models: decode and preprocess the files a batch at a time, then embed (CLIP's runner
 * overlaps decoding with the model instead). Returns 0 or the error (naming the file). */
static int embed_files_vl(const ctx *c, const strset *imgs, float *f) {
    enum { CHUNK = 64 };
    size_t per = (size_t)3 * c->S * c->S;
    float *px = malloc(per * CHUNK * sizeof(float));
    if (!px) return VLP_ERR_NOMEM;
    vlp_preprocess_config pre = preprocess_of(c);
    int rc = VLP_OK;
    for (int64_t i0 = 0; !rc && i0 < imgs->n; i0 += CHUNK) {
        int k = imgs->n - i0 < CHUNK ? (int)(imgs->n - i0) : CHUNK;
        for (int j = 0; !rc && j < k; j++) {
            vlp_image img;
            if (vlp_image_load(imgs->s[i0 + j], NULL, &img)) rc = VLP_ERR_IO; /* the message names the file */
            else {
                if (vlp_image_preprocess(&img, &pre, px + per * j)) rc = VLP_ERR_IO;
                vlp_image_free(&img);
            }
        }
        if (!rc) rc = vl_itc_embed_pixels(c->vr, px, k, f + (size_t)i0 * c->E);
        if (!rc) progress(c, "images", i0 + k, imgs->n);
    }
    free(px);
    return rc;
}

static void first_error(void *p, int index, const char *message) {
    char *buf = p;
    (void)index;
    if (!buf[0]) snprintf(buf, 512, "%s", message);
}

/* Normalised embeddings of the set's image files, [n, E]; NULL on error. */
static float *embed_images(const ctx *c, const strset *imgs) {
    float *f = malloc((size_t)(imgs->n ? imgs->n : 1) * c->E * sizeof(float));
    if (!f) {
        vlp_set_error("out of memory (%lld image embeddings)", (long long)imgs->n);
        return NULL;
    }
    if (!c->r) {
        if (embed_files_vl(c, imgs, f)) {
            free(f);
            return NULL;
        }
        return f;
    }
    char err[512] = "";
    int got = vlp_clip_embed_image_files(c->r, (const char *const *)imgs->s, (int)imgs->n, 1, f, NULL, first_error,
                                         err, NULL, NULL);
    if (got < 0 || got < imgs->n) {
        if (got >= 0) vlp_set_error("%lld of %lld images could not be read; first: %s", (long long)(imgs->n - got),
                                    (long long)imgs->n, err);
        free(f);
        return NULL;
    }
    progress(c, "images", imgs->n, imgs->n);
    return f;
}

static float *embed_texts(const ctx *c, const strset *txt) {
    float *f = malloc((size_t)(txt->n ? txt->n : 1) * c->E * sizeof(float));
    if (!f) {
        vlp_set_error("out of memory (%lld text embeddings)", (long long)txt->n);
        return NULL;
    }
    if (txt->n && (c->r ? vlp_clip_embed_texts(c->r, c->tok, (const char *const *)txt->s, (int)txt->n, 1, f) < 0
                        : vl_itc_embed_texts(c->vr, (const char *const *)txt->s, (int)txt->n, f) != 0)) {
        free(f);
        return NULL;
    }
    progress(c, "texts", txt->n, txt->n);
    return f;
}

static float dot(const float *a, const float *b, int E) {
    double s = 0;
    for (int e = 0; e < E; e++) s += (double)a[e] * b[e];
    return (float)s;
}

/* Softmax of k logits into p; returns the index of the first maximum. */
static int softmax_best(const float *logit, int k, float *p) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (logit[j] > logit[best]) best = j;
    double z = 0;
    for (int j = 0; j < k; j++) z += exp((double)logit[j] - logit[best]);
    for (int j = 0; j < k; j++) p[j] = (float)(exp((double)logit[j] - logit[best]) / z);
    return best;
}

static int alloc_result(vlp_clip_task_result *out, vlp_task_kind kind, int64_t n, int text, int64_t nprobs) {
    out->pred = calloc(1, sizeof *out->pred);
    out->confidence = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!out->pred || !out->confidence) return VLP_ERR_NOMEM;
    out->pred->kind = kind;
    out->pred->n = n;
    if (text) out->pred->text = calloc((size_t)(n ? n : 1), sizeof(char *));
    else out->pred->label = calloc((size_t)(n ? n : 1), sizeof(int));
    if (!out->pred->text && !out->pred->label) return VLP_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) out->confidence[i] = NAN;
    if (nprobs) {
        out->probs_off = calloc((size_t)n + 1, sizeof(int64_t));
        out->probs = malloc((size_t)nprobs * sizeof(float));
        if (!out->probs_off || !out->probs) return VLP_ERR_NOMEM;
    }
    return VLP_OK;
}

/* ---- multiple choice ---------------------------------------------------------------------- */

static int do_mc(const ctx *c, const vlp_task_set *d, vlp_clip_task_result *out) {
    strset imgs = {0}, txt = {0};
    int64_t nprobs = 0, *ii = malloc((size_t)(d->n ? d->n : 1) * sizeof *ii), *ti = NULL;
    for (int64_t i = 0; i < d->n; i++) nprobs += d->ex[i].n_choices;
    ti = malloc((size_t)(nprobs ? nprobs : 1) * sizeof *ti);
    float *fi = NULL, *ft = NULL, *lg = NULL;
    int rc = !ii || !ti ? VLP_ERR_NOMEM : alloc_result(out, VLP_TASK_MC, d->n, 0, nprobs);
    for (int64_t i = 0, k = 0; !rc && i < d->n; i++) {
        if ((ii[i] = strset_add(&imgs, d->ex[i].image)) < 0) rc = VLP_ERR_NOMEM;
        for (int j = 0; !rc && j < d->ex[i].n_choices; j++, k++)
            if ((ti[k] = strset_add(&txt, d->ex[i].choices[j])) < 0) rc = VLP_ERR_NOMEM;
    }
    if (rc == VLP_ERR_NOMEM) vlp_set_error("out of memory");
    if (!rc && (!(fi = embed_images(c, &imgs)) || !(ft = embed_texts(c, &txt)))) rc = VLP_ERR_STATE;
    int maxk = 1;
    for (int64_t i = 0; i < d->n; i++)
        if (d->ex[i].n_choices > maxk) maxk = d->ex[i].n_choices;
    if (!rc && !(lg = malloc((size_t)maxk * sizeof *lg))) rc = VLP_ERR_NOMEM;
    for (int64_t i = 0, k = 0; !rc && i < d->n; i++) {
        int K = d->ex[i].n_choices;
        out->probs_off[i] = k;
        for (int j = 0; j < K; j++) lg[j] = c->scale * dot(fi + ii[i] * c->E, ft + ti[k + j] * c->E, c->E);
        int best = softmax_best(lg, K, out->probs + k);
        out->pred->label[i] = best;
        out->confidence[i] = out->probs[k + best];
        k += K;
        out->probs_off[i + 1] = k;
    }
    free(ii);
    free(ti);
    free(fi);
    free(ft);
    free(lg);
    strset_free(&imgs);
    strset_free(&txt);
    return rc;
}

/* ---- grounding: crop the canvas into its cells ----------------------------------------- */

static int crop_cells(const ctx *c, const vlp_task_example *ex, float *pixels) {
    vlp_image img;
    if (vlp_image_load(ex->image, NULL, &img)) return VLP_ERR_IO; /* message names the file */
    int W = img.width, H = img.height, g = ex->grid, S = c->S, rc = VLP_OK;
    if (W < g || H < g) {
        vlp_set_error("%s: a %dx%d canvas cannot hold a %dx%d grid", ex->image, W, H, g, g);
        vlp_image_free(&img);
        return VLP_ERR_ARG;
    }
    uint8_t *rgb = malloc((size_t)W * H * 3), *cell = malloc((size_t)W * H * 3);
    vlp_preprocess_config pre = preprocess_of(c);
    if (!rgb || !cell) {
        vlp_set_error("%s: out of memory", ex->image);
        rc = VLP_ERR_NOMEM;
    } else if ((rc = vlp_image_to_rgb(&img, 1, rgb)) != 0) {
        rc = VLP_ERR_IO;
    }
    for (int k = 0; !rc && k < g * g; k++) {
        int x0 = W * (k % g) / g, x1 = W * (k % g + 1) / g, y0 = H * (k / g) / g, y1 = H * (k / g + 1) / g;
        for (int y = y0; y < y1; y++) memcpy(cell + (size_t)(y - y0) * (x1 - x0) * 3, rgb + ((size_t)y * W + x0) * 3,
                                             (size_t)(x1 - x0) * 3);
        vlp_image ci;
        memset(&ci, 0, sizeof ci);
        ci.width = x1 - x0;
        ci.height = y1 - y0;
        ci.channels = 3;
        ci.mode = VLP_IMG_RGB;
        ci.format = img.format;
        ci.pixels = cell;
        if (vlp_image_preprocess(&ci, &pre, pixels + (size_t)k * 3 * S * S)) rc = VLP_ERR_IO;
    }
    free(rgb);
    free(cell);
    vlp_image_free(&img);
    return rc;
}

static int do_ground(const ctx *c, const vlp_task_set *d, vlp_task_kind kind, vlp_clip_task_result *out) {
    strset txt = {0};
    int64_t nprobs = 0, *ti = malloc((size_t)(d->n ? d->n : 1) * sizeof *ti);
    int maxk = 1, S = c->S, E = c->E;
    for (int64_t i = 0; i < d->n; i++) {
        nprobs += d->ex[i].n_cells;
        if (d->ex[i].n_cells > maxk) maxk = d->ex[i].n_cells;
    }
    int rc = !ti ? VLP_ERR_NOMEM : alloc_result(out, kind, d->n, 0, nprobs);
    for (int64_t i = 0; !rc && i < d->n; i++)
        if ((ti[i] = strset_add(&txt, d->ex[i].text)) < 0) rc = VLP_ERR_NOMEM;
    if (rc == VLP_ERR_NOMEM) vlp_set_error("out of memory");
    float *ft = rc ? NULL : embed_texts(c, &txt);
    if (!rc && !ft) rc = VLP_ERR_STATE;
    /* a chunk of about 128 cells at a time bounds the pixel buffer */
    int rows = 128 / maxk > 0 ? 128 / maxk : 1;
    size_t per = (size_t)3 * S * S;
    float *px = rc ? NULL : malloc(per * (size_t)rows * maxk * sizeof(float)),
          *fc = rc ? NULL : malloc((size_t)rows * maxk * E * sizeof(float)), *lg = malloc((size_t)maxk * sizeof(float));
    if (!rc && (!px || !fc || !lg)) {
        vlp_set_error("out of memory (grounding buffers)");
        rc = VLP_ERR_NOMEM;
    }
    for (int64_t i0 = 0; !rc && i0 < d->n; i0 += rows) {
        int64_t i1 = i0 + rows < d->n ? i0 + rows : d->n, cells = 0;
        for (int64_t i = i0; !rc && i < i1; i++) {
            rc = crop_cells(c, &d->ex[i], px + per * (size_t)cells);
            cells += d->ex[i].n_cells;
        }
        if (!rc && embed_pixels(c, px, (int)cells, fc)) rc = VLP_ERR_STATE;
        int64_t k = 0, off = i0 ? out->probs_off[i0] : 0;
        for (int64_t i = i0; !rc && i < i1; i++) {
            int K = d->ex[i].n_cells;
            out->probs_off[i] = off;
            for (int j = 0; j < K; j++) lg[j] = c->scale * dot(fc + (size_t)(k + j) * E, ft + ti[i] * E, E);
            int best = softmax_best(lg, K, out->probs + off);
            out->pred->label[i] = best;
            out->confidence[i] = out->probs[off + best];
            k += K;
            off += K;
            out->probs_off[i + 1] = off;
        }
        if (!rc) progress(c, "canvases", i1, d->n);
    }
    free(ti);
    free(ft);
    free(px);
    free(fc);
    free(lg);
    strset_free(&txt);
    return rc;
}

/* ---- VQA ------------------------------------------------------------------------------------ */

/* "is this X?" -> X (malloc'd), else NULL. */
static char *yesno_phrase(const char *q) {
    static const char pre[] = "is this ";
    size_t n = strlen(q), p = sizeof pre - 1;
    while (n && (q[n - 1] == ' ' || q[n - 1] == '\n')) n--;
    if (n <= p + 1 || strncmp(q, pre, p) || q[n - 1] != '?') return NULL;
    char *r = malloc(n - p);
    if (r) {
        memcpy(r, q + p, n - p - 1);
        r[n - p - 1] = 0;
    }
    return r;
}

static const char *vqa_template(const char *type) {
    if (!strcmp(type, "category") || !strcmp(type, "subcategory")) return "an emoji of %s";
    if (!strcmp(type, "skintone")) return "%s skin tone";
    return "%s";
}

static int do_vqa(const ctx *c, const vlp_task_set *d, const vlp_task_set *train, vlp_clip_task_result *out) {
    if (!train) {
        vlp_set_error("%s: vqa needs the train file (its answers are the classes)", d->path);
        return VLP_ERR_ARG;
    }
    strset imgs = {0}, types = {0}, txt = {0}, phrases = {0};
    /* per type: the distinct train answers (first appearance), as indices into txt (the prompts) */
    strset *answers = NULL;
    int64_t **prompt_of = NULL, *ii = malloc((size_t)(d->n ? d->n : 1) * sizeof *ii);
    float *fi = NULL, *ft = NULL;
    int rc = !ii ? VLP_ERR_NOMEM : alloc_result(out, VLP_TASK_VQA, d->n, 1, 0);
    for (int pass = 0; !rc && pass < 2; pass++) { /* types of train then data, so every type has a slot */
        const vlp_task_set *s = pass ? d : train;
        for (int64_t i = 0; !rc && i < s->n; i++) {
            int64_t before = types.n, t = strset_add(&types, s->ex[i].type);
            if (t < 0) rc = VLP_ERR_NOMEM;
            else if (types.n != before) {
                strset *na = realloc(answers, (size_t)types.n * sizeof *na);
                if (!na) rc = VLP_ERR_NOMEM;
                else memset(&(answers = na)[t], 0, sizeof *na);
            }
            char *ph = rc ? NULL : yesno_phrase(s->ex[i].text);
            if (ph && strset_add(&phrases, ph) < 0) rc = VLP_ERR_NOMEM;
            free(ph);
        }
    }
    for (int64_t i = 0; !rc && i < train->n; i++) {
        int64_t t = strset_add(&types, train->ex[i].type);
        char *a = vlp_answer_normalize(train->ex[i].answer);
        if (t < 0 || !a || strset_add(&answers[t], a) < 0) rc = VLP_ERR_NOMEM;
        free(a);
    }
    if (!rc && !(prompt_of = calloc((size_t)(types.n ? types.n : 1), sizeof *prompt_of))) rc = VLP_ERR_NOMEM;
    for (int64_t t = 0; !rc && t < types.n; t++) {
        if (!(prompt_of[t] = malloc((size_t)(answers[t].n ? answers[t].n : 1) * sizeof(int64_t)))) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        for (int64_t a = 0; !rc && a < answers[t].n; a++) {
            char buf[1024];
            snprintf(buf, sizeof buf, vqa_template(types.s[t]), answers[t].s[a]);
            if ((prompt_of[t][a] = strset_add(&txt, buf)) < 0) rc = VLP_ERR_NOMEM;
        }
    }
    int64_t phrase0 = txt.n; /* the yes/no phrases follow the prompts */
    for (int64_t p = 0; !rc && p < phrases.n; p++)
        if (strset_add(&txt, phrases.s[p]) < 0) rc = VLP_ERR_NOMEM;
    for (int64_t i = 0; !rc && i < d->n; i++)
        if ((ii[i] = strset_add(&imgs, d->ex[i].image)) < 0) rc = VLP_ERR_NOMEM;
    if (rc == VLP_ERR_NOMEM) vlp_set_error("out of memory");
    if (!rc && (!(fi = embed_images(c, &imgs)) || !(ft = embed_texts(c, &txt)))) rc = VLP_ERR_STATE;
    float *lg = NULL, *pr = NULL;
    int64_t maxa = phrases.n > 2 ? phrases.n : 2;
    for (int64_t t = 0; t < types.n; t++)
        if (answers && answers[t].n > maxa) maxa = answers[t].n;
    if (!rc && (!(lg = malloc((size_t)maxa * sizeof *lg)) || !(pr = malloc((size_t)maxa * sizeof *pr)))) {
        vlp_set_error("out of memory");
        rc = VLP_ERR_NOMEM;
    }
    for (int64_t i = 0; !rc && i < d->n; i++) {
        const float *x = fi + ii[i] * c->E;
        int64_t t = strset_add(&types, d->ex[i].type);
        char *ph = !strcmp(d->ex[i].type, "yesno") ? yesno_phrase(d->ex[i].text) : NULL;
        const char *ans = "";
        float conf = NAN;
        if (ph && phrases.n) { /* yes iff the asked phrase is the image's best phrase */
            int64_t asked = strset_add(&phrases, ph);
            for (int64_t p = 0; p < phrases.n; p++) lg[p] = c->scale * dot(x, ft + (phrase0 + p) * c->E, c->E);
            int best = softmax_best(lg, (int)phrases.n, pr);
            ans = best == asked ? "yes" : "no";
            conf = pr[asked];
        } else if (t >= 0 && answers[t].n) {
            for (int64_t a = 0; a < answers[t].n; a++)
                lg[a] = c->scale * dot(x, ft + prompt_of[t][a] * c->E, c->E);
            int best = softmax_best(lg, (int)answers[t].n, pr);
            ans = answers[t].s[best];
            conf = pr[best];
        } /* a type without train answers: an empty answer, always wrong */
        free(ph);
        if (!(out->pred->text[i] = strdup(ans))) rc = VLP_ERR_NOMEM;
        out->confidence[i] = conf;
    }
    free(lg);
    free(pr);
    for (int64_t t = 0; prompt_of && t < types.n; t++) free(prompt_of[t]);
    free(prompt_of);
    for (int64_t t = 0; answers && t < types.n; t++) strset_free(&answers[t]);
    free(answers);
    free(ii);
    free(fi);
    free(ft);
    strset_free(&imgs);
    strset_free(&types);
    strset_free(&txt);
    strset_free(&phrases);
    return rc;
}

/* ---- NLVR ----------------------------------------------------------------------------------- */

enum { ST_OTHER, ST_BOTH, ST_ONE, ST_SAME };

/* Statement kind; *phrase gets P (malloc'd) for both/one. */
static int statement_kind(const char *s, char **phrase) {
    static const char *const pre[2] = {"both images show ", "exactly one image shows "};
    *phrase = NULL;
    if (!strcmp(s, "the two images show the same kind of thing.")) return ST_SAME;
    for (int k = 0; k < 2; k++) {
        size_t p = strlen(pre[k]), n = strlen(s);
        if (n > p + 1 && !strncmp(s, pre[k], p) && s[n - 1] == '.') {
            if ((*phrase = malloc(n - p))) {
                memcpy(*phrase, s + p, n - p - 1);
                (*phrase)[n - p - 1] = 0;
            }
            return k ? ST_ONE : ST_BOTH;
        }
    }
    return ST_OTHER;
}

static int do_nlvr(const ctx *c, const vlp_task_set *d, vlp_clip_task_result *out) {
    strset imgs = {0}, phrases = {0};
    int64_t *ii = malloc((size_t)(d->n ? d->n : 1) * 2 * sizeof *ii), *best = NULL;
    float *fi = NULL, *ft = NULL;
    int rc = !ii ? VLP_ERR_NOMEM : alloc_result(out, VLP_TASK_NLVR, d->n, 0, 0);
    for (int64_t i = 0; !rc && i < d->n; i++) {
        char *ph = NULL;
        statement_kind(d->ex[i].text, &ph);
        if (ph && strset_add(&phrases, ph) < 0) rc = VLP_ERR_NOMEM;
        free(ph);
        if ((ii[2 * i] = strset_add(&imgs, d->ex[i].image)) < 0 ||
            (ii[2 * i + 1] = strset_add(&imgs, d->ex[i].image2)) < 0)
            rc = VLP_ERR_NOMEM;
    }
    if (rc == VLP_ERR_NOMEM) vlp_set_error("out of memory");
    if (!rc && phrases.n && (!(fi = embed_images(c, &imgs)) || !(ft = embed_texts(c, &phrases)))) rc = VLP_ERR_STATE;
    if (!rc && phrases.n && !(best = malloc((size_t)imgs.n * sizeof *best))) rc = VLP_ERR_NOMEM;
    for (int64_t k = 0; !rc && phrases.n && k < imgs.n; k++) { /* each image's best phrase */
        float bs = -INFINITY;
        for (int64_t p = 0; p < phrases.n; p++) {
            float s = dot(fi + k * c->E, ft + p * c->E, c->E);
            if (s > bs) bs = s, best[k] = p;
        }
    }
    for (int64_t i = 0; !rc && i < d->n; i++) {
        char *ph = NULL;
        int kind = statement_kind(d->ex[i].text, &ph), label = 0;
        if (kind != ST_OTHER && phrases.n) {
            int64_t l = best[ii[2 * i]], r = best[ii[2 * i + 1]], p = ph ? strset_add(&phrases, ph) : -1;
            if (kind == ST_SAME) label = l == r;
            else if (kind == ST_BOTH) label = l == p && r == p;
            else label = (l == p) != (r == p);
        } else {
            out->n_unsupported++;
        }
        free(ph);
        out->pred->label[i] = label;
    }
    free(ii);
    free(best);
    free(fi);
    free(ft);
    strset_free(&imgs);
    strset_free(&phrases);
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------------ */

/* The protocols on a ready ctx (c->tok, and c->r or c->vr). */
static int predict(ctx *c, const char *who, const vlp_task_set *data, const vlp_task_set *train,
                   vlp_clip_task_result *out) {
    static const char *const method[VLP_TASK_COUNT] = {
        [VLP_TASK_VQA] = "zero-shot classifier per question type over the train answers (yesno: the asked phrase "
                         "is the image's best phrase)",
        [VLP_TASK_NLVR] = "rule on each image's best-matching statement phrase (both / exactly one / same label)",
        [VLP_TASK_GROUND2] = "each canvas cell cropped and scored against the query (ITC), best cell",
        [VLP_TASK_GROUND3] = "each canvas cell cropped and scored against the query (ITC), best cell",
        [VLP_TASK_MC] = "ITC similarity of the image and each choice, softmax, best choice",
    };
    if (data->kind == VLP_TASK_CAPTION || (unsigned)data->kind >= VLP_TASK_COUNT) {
        vlp_set_error("%s: task '%s' needs a generative model; %s does not produce captions", data->path,
                      vlp_task_name(data->kind), who);
        return VLP_ERR_ARG;
    }
    if (train && train->kind != VLP_TASK_VQA) {
        vlp_set_error("%s: the train file must be a vqa file", train->path);
        return VLP_ERR_ARG;
    }
    out->method = method[data->kind];
    int rc;
    switch (data->kind) {
    case VLP_TASK_MC: rc = do_mc(c, data, out); break;
    case VLP_TASK_GROUND2:
    case VLP_TASK_GROUND3: rc = do_ground(c, data, data->kind, out); break;
    case VLP_TASK_VQA: rc = do_vqa(c, data, train, out); break;
    default: rc = do_nlvr(c, data, out); break;
    }
    if (rc == VLP_ERR_NOMEM && !vlp_last_error()[0]) vlp_set_error("out of memory");
    if (rc) {
        vlp_clip_task_result_free(out);
        out->method = NULL;
    }
    return rc;
}

int vlp_clip_task_predict(const vlp_clip *m, const vlp_task_set *data, const vlp_task_set *train,
                          const vlp_clip_task_options *opt, vlp_clip_task_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!m || !data || !out) {
        vlp_set_error("vlp_clip_task_predict: NULL argument");
        return VLP_ERR_ARG;
    }
    ctx c = {.E = m->cfg.embed_dim, .S = m->cfg.image_size, .opt = opt};
    memcpy(c.mean, m->cfg.mean, sizeof c.mean);
    memcpy(c.std, m->cfg.std, sizeof c.std);
    c.scale = m->logit_scale ? expf(vlp_f(m->logit_scale)[0]) : 1.0f;
    int rc = VLP_OK;
    if (!(c.tok = vlp_clip_tokenizer_load(m, NULL)) || !(c.r = vlp_clip_runner_new(m, opt && opt->batch > 0 ? opt->batch : 64)))
        rc = VLP_ERR_STATE;
    if (!rc) rc = predict(&c, "a CLIP dual encoder", data, train, out);
    vlp_clip_runner_free(c.r);
    vlp_tokenizer_free(c.tok);
    return rc;
}

int vlp_vl_task_predict(const vlp_vl *m, vlp_tokenizer *tok, const vlp_task_set *data, const vlp_task_set *train,
                        const vlp_clip_task_options *opt, vlp_clip_task_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!m || !tok || !data || !out) {
        vlp_set_error("vlp_vl_task_predict: NULL argument");
        return VLP_ERR_ARG;
    }
    ctx c = {.tok = tok, .E = m->cfg.embed_dim, .S = m->cfg.image_size, .opt = opt};
    memcpy(c.mean, m->cfg.mean, sizeof c.mean);
    memcpy(c.std, m->cfg.std, sizeof c.std);
    if (!(c.vr = vl_itc_runner_new(m, tok, opt && opt->batch > 0 ? opt->batch : 64))) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: the %s model's zero-shot protocols need ITC heads: %s", data->path,
                      vlp_vl_family_name(m->cfg.family), msg);
        return VLP_ERR_ARG;
    }
    c.scale = vl_itc_scale(c.vr);
    int rc = predict(&c, "a model's ITC heads", data, train, out);
    vl_itc_runner_free(c.vr);
    return rc;
}

void vlp_clip_task_result_free(vlp_clip_task_result *r) {
    if (!r) return;
    vlp_task_predictions_free(r->pred);
    free(r->confidence);
    free(r->probs_off);
    free(r->probs);
    const char *m = r->method;
    memset(r, 0, sizeof *r);
    r->method = m;
}

#include <jansson.h>
#include <stdio.h>

char *vlp_task_skipped_row_json(const vlp_task_bad_row *b) {
    json_t *o = json_pack("{s:b, s:s}", "skipped", 1, "error", b && b->message ? b->message : "");
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

int vlp_clip_task_write_predictions(const vlp_clip_task_result *r, const char *path) {
    return vlp_clip_task_write_predictions_rows(r, NULL, path);
}

int vlp_clip_task_write_predictions_rows(const vlp_clip_task_result *r, const vlp_task_set *data, const char *path) {
    if (!r || !r->pred || !path) {
        vlp_set_error("vlp_clip_task_write_predictions: NULL argument");
        return VLP_ERR_ARG;
    }
    if (data && (data->n != r->pred->n || (data->n_bad && !data->bad_rows))) {
        vlp_set_error("%s: %lld predictions for %lld examples", path, (long long)r->pred->n, (long long)data->n);
        return VLP_ERR_ARG;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp) return VLP_ERR_NOMEM;
    snprintf(tmp, pl + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        vlp_set_error("%s: cannot write", tmp);
        free(tmp);
        return VLP_ERR_IO;
    }
    const vlp_task_predictions *p = r->pred;
    int rc = VLP_OK;
    int64_t b = 0; /* the next skipped data row */
    for (int64_t i = 0; !rc && i <= p->n; i++) {
        /* the skipped rows before example i (all that are left after the last one) keep line N = row N */
        while (!rc && data && b < data->n_bad && (i == p->n || data->bad_rows[b].row < data->ex[i].row)) {
            char *s = vlp_task_skipped_row_json(&data->bad_rows[b++]);
            if (!s || fprintf(f, "%s\n", s) < 0) rc = VLP_ERR_IO;
            free(s);
        }
        if (rc || i == p->n) break;
        json_t *o = json_object();
        if (p->kind == VLP_TASK_VQA) json_object_set_new(o, "answer", json_string(p->text[i]));
        else if (p->kind == VLP_TASK_NLVR) json_object_set_new(o, "label", json_boolean(p->label[i]));
        else json_object_set_new(o, "label", json_integer(p->label[i]));
        if (isfinite(r->confidence[i])) json_object_set_new(o, "confidence", json_real(r->confidence[i]));
        if (r->probs_off) {
            json_t *a = json_array();
            for (int64_t k = r->probs_off[i]; k < r->probs_off[i + 1]; k++) json_array_append_new(a, json_real(r->probs[k]));
            json_object_set_new(o, "probs", a);
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (!s || fprintf(f, "%s\n", s) < 0) rc = VLP_ERR_IO;
        free(s);
        json_decref(o);
    }
    if (fclose(f) || rc) {
        vlp_set_error("%s: write failed", tmp);
        remove(tmp);
        rc = VLP_ERR_IO;
    } else if (rename(tmp, path)) {
        vlp_set_error("%s: cannot rename to %s", tmp, path);
        remove(tmp);
        rc = VLP_ERR_IO;
    }
    free(tmp);
    return rc;
}

/* ---- linear probe ------------------------------------------------------------------------------ */

int vlp_logreg_train(const float *x, const int *labels, int64_t n, int d, int classes, int epochs, float lr,
                     float weight_decay, float *w) {
    if (!x || !labels || !w || n <= 0 || d <= 0 || classes < 2 || epochs < 0) {
        vlp_set_error("vlp_logreg_train: bad arguments (%lld rows, dim %d, %d classes)", (long long)n, d, classes);
        return VLP_ERR_ARG;
    }
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            vlp_set_error("vlp_logreg_train: label %d of row %lld is outside 0..%d", labels[i], (long long)i,
                          classes - 1);
            return VLP_ERR_ARG;
        }
    int D = d + 1;
    double *grad = malloc((size_t)classes * D * sizeof *grad), *p = malloc((size_t)classes * sizeof *p);
    if (!grad || !p) {
        free(grad);
        free(p);
        vlp_set_error("vlp_logreg_train: out of memory");
        return VLP_ERR_NOMEM;
    }
    memset(w, 0, (size_t)classes * D * sizeof *w);
    for (int ep = 0; ep < epochs; ep++) {
        memset(grad, 0, (size_t)classes * D * sizeof *grad);
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * d;
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < classes; k++) {
                const float *wk = w + (size_t)k * D;
                double s = wk[d];
                for (int e = 0; e < d; e++) s += (double)wk[e] * xi[e];
                p[k] = s;
                if (s > mx) mx = s;
            }
            for (int k = 0; k < classes; k++) z += (p[k] = exp(p[k] - mx));
            for (int k = 0; k < classes; k++) {
                double gk = p[k] / z - (k == labels[i]);
                double *gr = grad + (size_t)k * D;
                for (int e = 0; e < d; e++) gr[e] += gk * xi[e];
                gr[d] += gk;
            }
        }
        for (int k = 0; k < classes; k++)
            for (int e = 0; e < D; e++) {
                float *wk = w + (size_t)k * D;
                double g = grad[(size_t)k * D + e] / (double)n + (e < d ? weight_decay * wk[e] : 0.0);
                wk[e] -= (float)(lr * g);
            }
    }
    free(grad);
    free(p);
    return VLP_OK;
}

void vlp_logreg_predict(const float *w, const float *x, int64_t n, int d, int classes, int *pred) {
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bs = -INFINITY;
        for (int k = 0; k < classes; k++) {
            const float *wk = w + (size_t)k * (d + 1);
            double s = wk[d];
            for (int e = 0; e < d; e++) s += (double)wk[e] * x[(size_t)i * d + e];
            if (s > bs) bs = s, best = k;
        }
        pred[i] = best;
    }
}
