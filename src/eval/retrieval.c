/* Image-text retrieval metrics: Recall@1/5/10 and mean/median rank in both directions,
 * from a similarity matrix. Texts may share an image (several captions per image): a text
 * query has one correct image; an image query is ranked by its best-ranked text. */
#include "vlp_train.h"

#include "core/internal.h"

#include <math.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ranks[q] (1-based) -> the summary. */
static void summarise(double *ranks, int64_t nq, int64_t nc, vlp_recall *r) {
    memset(r, 0, sizeof *r);
    r->queries = nq;
    r->candidates = nc;
    if (!nq) return;
    double s = 0;
    int64_t h1 = 0, h5 = 0, h10 = 0;
    for (int64_t q = 0; q < nq; q++) {
        s += ranks[q];
        h1 += ranks[q] <= 1;
        h5 += ranks[q] <= 5;
        h10 += ranks[q] <= 10;
    }
    r->r1 = (double)h1 / (double)nq;
    r->r5 = (double)h5 / (double)nq;
    r->r10 = (double)h10 / (double)nq;
    r->mean_rank = s / (double)nq;
    qsort(ranks, (size_t)nq, sizeof *ranks, cmp_double);
    r->median_rank = nq % 2 ? ranks[nq / 2] : 0.5 * (ranks[nq / 2 - 1] + ranks[nq / 2]);
}

int vlp_retrieval_metrics(const float *sim, int64_t ni, int64_t nt, const int64_t *txt_img,
                          vlp_retrieval_result *out) {
    if (!sim || !out || ni <= 0 || nt <= 0 || (!txt_img && ni != nt)) {
        vlp_set_error("vlp_retrieval_metrics: bad arguments (%lld images, %lld texts%s)", (long long)ni,
                      (long long)nt, !txt_img && ni != nt ? ", no text->image map and the counts differ" : "");
        return VLP_ERR_ARG;
    }
    for (int64_t j = 0; txt_img && j < nt; j++)
        if (txt_img[j] < 0 || txt_img[j] >= ni) {
            vlp_set_error("vlp_retrieval_metrics: text %lld maps to image %lld, outside 0..%lld", (long long)j,
                          (long long)txt_img[j], (long long)ni - 1);
            return VLP_ERR_ARG;
        }
    double *rt = malloc((size_t)nt * sizeof *rt), *ri = malloc((size_t)ni * sizeof *ri);
    if (!rt || !ri) {
        free(rt);
        free(ri);
        vlp_set_error("vlp_retrieval_metrics: out of memory");
        return VLP_ERR_NOMEM;
    }
    /* text -> image: column j, the correct image's score against all images */
    for (int64_t j = 0; j < nt; j++) {
        int64_t gi = txt_img ? txt_img[j] : j, better = 0;
        float s = sim[gi * nt + j];
        for (int64_t i = 0; i < ni; i++) better += sim[i * nt + j] > s;
        rt[j] = (double)(better + 1);
    }
    /* image -> text: row i, rank of its best text = 1 + texts strictly above the best correct one */
    int64_t nimg = 0;
    for (int64_t i = 0; i < ni; i++) {
        const float *row = sim + i * nt;
        float best = -INFINITY;
        int has = 0;
        for (int64_t j = 0; j < nt; j++)
            if ((txt_img ? txt_img[j] : j) == i && (!has || row[j] > best)) best = row[j], has = 1;
        if (!has) continue; /* an image without a text is only a distractor */
        int64_t better = 0;
        for (int64_t j = 0; j < nt; j++) better += row[j] > best;
        ri[nimg++] = (double)(better + 1);
    }
    summarise(rt, nt, ni, &out->t2i);
    summarise(ri, nimg, nt, &out->i2t);
    free(rt);
    free(ri);
    return VLP_OK;
}

/* ---- over a dataset ------------------------------------------------------------------------ */

typedef struct {
    vlp_clip_runner *r;
    float *fi, *ft;
    int E;
} embed_ctx;

static int embed_batch(void *ctx, const vlp_batch *bt, int64_t first) {
    embed_ctx *c = ctx;
    if (vlp_clip_embed_pixels(c->r, bt->pixels, bt->n, 1, c->fi + first * c->E) < 0) return VLP_ERR_STATE;
    return vlp_clip_embed_tokens(c->r, bt->tokens, bt->n, 1, c->ft + first * c->E) < 0 ? VLP_ERR_STATE : VLP_OK;
}

/* The loader's tokenize callback: the model's tokenizer (vlp_clip_tokenize is thread-safe). */
static int clip_tokenize(void *tok, const char *text, int T, int32_t *ids) { return vlp_clip_tokenize(tok, text, T, ids); }

int vlp_embed_dataset(const vlp_clip *m, const vlp_dataset *ds, int batch, int workers, float **img, float **txt,
                      int64_t *n_out) {
    if (!m || !ds || !img || !txt || !n_out) {
        vlp_set_error("vlp_embed_dataset: NULL argument");
        return VLP_ERR_ARG;
    }
    *img = *txt = NULL;
    int64_t n = vlp_dataset_size(ds);
    int E = m->cfg.embed_dim;
    if (n <= 0) {
        vlp_set_error("vlp_embed_dataset: the dataset is empty");
        return VLP_ERR_ARG;
    }
    if (batch <= 0) batch = 64;
    if (batch > n) batch = (int)n;
    vlp_tokenizer *tok = vlp_clip_tokenizer_load(m, NULL); /* the model's own: BPE or WordPiece */
    if (!tok) return VLP_ERR_ARG;
    vlp_loader_options lo = {.batch_size = batch, .image_size = m->cfg.image_size,
                             .context_length = m->cfg.context_length, .shuffle = 0, .drop_last = 0,
                             .workers = workers, .tokenize = clip_tokenize, .tokenize_ctx = tok};
    vlp_loader *ld = vlp_loader_new(ds, &lo);
    vlp_clip_runner *r = ld ? vlp_clip_runner_new(m, batch) : NULL;
    float *fi = malloc((size_t)n * E * sizeof(float)), *ft = malloc((size_t)n * E * sizeof(float));
    int rc = ld && r && fi && ft ? VLP_OK : VLP_ERR_NOMEM;
    if (rc && ld && r) vlp_set_error("vlp_embed_dataset: out of memory for %lld features", (long long)n);
    embed_ctx ec = {r, fi, ft, E};
    if (!rc) rc = vlp_loader_each_in_order(ld, n, "vlp_embed_dataset", embed_batch, &ec);
    vlp_clip_runner_free(r);
    vlp_loader_free(ld);
    vlp_tokenizer_free(tok);
    if (rc) {
        free(fi);
        free(ft);
        return rc;
    }
    *img = fi;
    *txt = ft;
    *n_out = n;
    return VLP_OK;
}

static const vlp_dataset *sort_ds;
static int cmp_key(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int c = strcmp(vlp_dataset_key(sort_ds, x), vlp_dataset_key(sort_ds, y));
    return c ? c : (x > y) - (x < y);
}

int vlp_eval_retrieval(const vlp_clip *m, const vlp_dataset *ds, int batch, vlp_retrieval_result *out) {
    float *img, *txt;
    int64_t n;
    int rc = vlp_embed_dataset(m, ds, batch, 0, &img, &txt, &n);
    if (rc) return rc;
    int E = m->cfg.embed_dim;
    /* pairs with one image key are one image: keep its first pair's features */
    int64_t *ord = malloc((size_t)n * sizeof *ord), *txt_img = malloc((size_t)n * sizeof *txt_img),
            *first = malloc((size_t)n * sizeof *first);
    float *sim = NULL;
    int64_t ni = 0;
    if (ord && txt_img && first) {
        for (int64_t i = 0; i < n; i++) ord[i] = i;
        sort_ds = ds; /* qsort has no context argument; eval is not re-entrant across threads here */
        qsort(ord, (size_t)n, sizeof *ord, cmp_key);
        for (int64_t k = 0; k < n; k++) {
            if (k == 0 || strcmp(vlp_dataset_key(ds, ord[k]), vlp_dataset_key(ds, ord[k - 1]))) first[ni++] = ord[k];
            txt_img[ord[k]] = ni - 1;
        }
        sim = malloc((size_t)ni * (size_t)n * sizeof *sim);
    }
    if (!sim) {
        vlp_set_error("vlp_eval_retrieval: out of memory for a %lld x %lld similarity matrix", (long long)ni,
                      (long long)n);
        rc = VLP_ERR_NOMEM;
    } else {
        VLP_PARFOR(vlp_get_threads(), ni * n > 4096, (int64_t i = 0; i < ni; i++), {
            const float *a = img + first[i] * E;
            for (int64_t j = 0; j < n; j++) {
                const float *b = txt + j * E;
                float d = 0;
                for (int e = 0; e < E; e++) d += a[e] * b[e];
                sim[i * n + j] = d;
            }
        });
        rc = vlp_retrieval_metrics(sim, ni, n, txt_img, out);
    }
    free(sim);
    free(ord);
    free(txt_img);
    free(first);
    free(img);
    free(txt);
    return rc;
}
