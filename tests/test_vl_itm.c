/* ITM-only retrieval (src/eval/vl_retrieval.c, vlp_vl_eval_itm_full): on tiny random models the
 * scores equal a brute-force pass of the ITM head over each (image, text) pair alone (its own
 * batch-1 graph), every query's full ranking equals the brute-force ranking, the recalls and
 * ranks equal those counted here from the brute-force scores; the pass count, the progress
 * calls and the max_pairs refusal; models without an ITM head are refused. */
#include "test.h"
#include "test_util.h"
#include "vlp_data.h"
#include "vlp_train.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* A diagonal stripe of colour rgb and its complement, so images differ in more than colour. */
static unsigned char stripe_px(void *ctx, int x, int y, int c) {
    const unsigned char *rgb = ctx, v = rgb[2 - c];
    return ((x + y) / 4) % 2 ? v : (unsigned char)(255 - v);
}
static void write_bmp(const char *path, int S, unsigned char r, unsigned char g, unsigned char b) {
    unsigned char rgb[3] = {r, g, b};
    test_write_bmp(path, S, S, stripe_px, rgb);
}

typedef struct {
    int calls, bad;
    int64_t last, total;
} progress_log;

static void on_progress(void *ctx, int64_t done, int64_t total) {
    progress_log *p = ctx;
    if ((p->calls == 0) != (done == 0) || done < p->last || done > total) p->bad++;
    p->calls++;
    p->last = done;
    p->total = total;
}

/* The ITM logit margin of one pair, on its own batch-1 graph from pixels and ids. */
typedef struct {
    vlp_graph *g;
    vlp_tensor *px, *ids, *mask, *out;
} pair_graph;

static int pair_graph_build(const vlp_vl *m, pair_graph *pg) {
    int S = m->cfg.image_size, T = m->cfg.max_text_len;
    int64_t sp[4] = {1, 3, S, S}, st[2] = {1, T};
    pg->g = vlp_graph_new();
    pg->px = vlp_input(pg->g, "pixels", VLP_F32, 4, sp);
    pg->ids = vlp_input(pg->g, "ids", VLP_I32, 2, st);
    pg->mask = vlp_input(pg->g, "mask", VLP_I32, 2, st);
    vlp_tensor *ie = vlp_vl_embed_image(pg->g, m, pg->px, NULL, NULL), *te = vlp_vl_embed_text(pg->g, m, pg->ids);
    if (!vlp_vl_fuses_embeddings(m)) {
        ie = vlp_vl_encode_image(pg->g, m, ie);
        te = vlp_vl_encode_text(pg->g, m, te, pg->mask);
    }
    pg->out = vlp_vl_itm_logits(pg->g, m, vlp_vl_fuse(pg->g, m, ie, te, pg->mask, NULL));
    if (!pg->out || vlp_graph_error(pg->g)) return -1;
    return vlp_graph_build(pg->g, pg->out, VLP_BUILD_INFERENCE);
}

static int cmp_desc(const void *a, const void *b, const float *s) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (s[x] != s[y]) return s[x] > s[y] ? -1 : 1;
    return (x > y) - (x < y);
}
static const float *sort_scores;
static int cmp_by_score(const void *a, const void *b) { return cmp_desc(a, b, sort_scores); }

static void test_itm_full(const char *preset, uint64_t seed) {
    enum { NI = 6, NT = 7 }; /* text 6 is a second caption of image 0 */
    char dir[400], tsv[500], p[500];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, preset);
    mkdir(dir, 0777);
    snprintf(tsv, sizeof tsv, "%s/set.tsv", dir);
    FILE *f = fopen(tsv, "w");
    if (!f) {
        CHECK(0, "cannot write %s", tsv);
        return;
    }
    fprintf(f, "filepath\ttitle\n");
    static const char *words[NI] = {"red sun", "green leaf", "blue sea", "cyan ice", "pink rose", "gold coin"};
    for (int i = 0; i < NI; i++) {
        snprintf(p, sizeof p, "%s/i%d.bmp", dir, i);
        write_bmp(p, 32, (unsigned char)(40 * i), (unsigned char)(255 - 30 * i), (unsigned char)(90 * i));
        fprintf(f, "i%d.bmp\ta %s\n", i, words[i]);
    }
    fprintf(f, "i0.bmp\tthe hot star\n");
    fclose(f);
    vlp_dataset *ds = vlp_dataset_open(tsv, NULL);
    vlp_vl_config c;
    vlp_vl *m = vlp_vl_preset(preset, &c) == 0 ? (c.w_itm = 1, vlp_vl_new(&c, seed)) : NULL;
    CHECK(ds && m, "%s: dataset / model: %s", preset, vlp_last_error());
    if (!ds || !m) {
        vlp_dataset_free(ds);
        vlp_vl_free(m);
        return;
    }
    int64_t ni = 0, pairs = vlp_vl_itm_full_pairs(ds, &ni);
    CHECK(pairs == NI * NT && ni == NI, "%s: %lld pairs, %lld images (want %d, %d)", preset, (long long)pairs,
          (long long)ni, NI * NT, NI);

    /* over the limit: refused before any work, naming the pass count */
    vlp_retrieval_result res;
    progress_log pl = {0};
    vlp_vl_itm_full_options o = {.batch = 4, .max_pairs = NI * NT - 1, .on_progress = on_progress,
                                 .progress_ctx = &pl};
    float *scores = NULL;
    int rc = vlp_vl_eval_itm_full(m, test_tiny_tok, NULL, ds, &o, &res, &scores);
    CHECK(rc != 0 && strstr(vlp_last_error(), "42") && pl.calls == 0 && !scores,
          "%s: max_pairs %d: rc %d, %d progress calls: %s", preset, NI * NT - 1, rc, pl.calls, vlp_last_error());

    /* batch 4: passes mix queries and the last one is short */
    o.max_pairs = NI * NT;
    rc = vlp_vl_eval_itm_full(m, test_tiny_tok, NULL, ds, &o, &res, &scores);
    CHECK(rc == 0 && scores, "%s: itm_full: %s", preset, vlp_last_error());
    CHECK(pl.bad == 0 && pl.total == NI * NT && pl.last == NI * NT && pl.calls == 1 + (NI * NT + 3) / 4,
          "%s: progress: %d calls, %d bad, last %lld of %lld", preset, pl.calls, pl.bad, (long long)pl.last,
          (long long)pl.total);
    if (rc || !scores) {
        free(scores);
        vlp_dataset_free(ds);
        vlp_vl_free(m);
        return;
    }

    /* brute force: each (image, text) alone; the pixels and ids from the loader, one pair a batch */
    int S = m->cfg.image_size, T = m->cfg.max_text_len;
    float *pix = malloc((size_t)NT * 3 * S * S * sizeof(float)), brute[NI][NT];
    int32_t *tok = malloc((size_t)NT * T * sizeof(int32_t));
    vlp_loader_options lo = {.batch_size = 1, .image_size = S, .context_length = T, .tokenize = test_tiny_tok};
    vlp_loader *ld = vlp_loader_new(ds, &lo);
    int ok = pix && tok && ld;
    for (int k = 0; ok && k < NT; k++) {
        vlp_batch bt;
        ok = vlp_loader_next(ld, &bt) == 0 && bt.n == 1 && bt.index[0] == k;
        if (ok) {
            memcpy(pix + (size_t)k * 3 * S * S, bt.pixels, (size_t)3 * S * S * sizeof(float));
            memcpy(tok + (size_t)k * T, bt.tokens, (size_t)T * sizeof(int32_t));
        }
    }
    vlp_loader_free(ld);
    pair_graph pg = {0};
    ok = ok && pair_graph_build(m, &pg) == 0;
    CHECK(ok, "%s: brute-force setup: %s", preset, vlp_last_error());
    /* image i is pair i (pair 6 repeats image 0) */
    for (int i = 0; ok && i < NI; i++)
        for (int j = 0; ok && j < NT; j++) {
            memcpy(pg.px->data, pix + (size_t)i * 3 * S * S, (size_t)3 * S * S * sizeof(float));
            for (int t = 0; t < T; t++) {
                int32_t id = tok[(size_t)j * T + t];
                ((int32_t *)pg.ids->data)[t] = id;
                if (pg.mask->data) ((int32_t *)pg.mask->data)[t] = id != m->cfg.pad_id;
            }
            ok = vlp_graph_forward(pg.g) == 0;
            const float *lg = pg.out->data;
            brute[i][j] = lg[1] - lg[0];
        }
    vlp_graph_free(pg.g);
    CHECK(ok, "%s: brute-force forward: %s", preset, vlp_last_error());
    if (ok) {
        double worst = 0, gap = INFINITY;
        for (int i = 0; i < NI; i++)
            for (int j = 0; j < NT; j++) {
                double d = fabs((double)scores[i * NT + j] - brute[i][j]);
                worst = d > worst ? d : worst;
            }
        CHECK(worst < 1e-4, "%s: scores differ from the brute-force pass by %g", preset, worst);
        /* the full ranking of every query, both directions */
        int same = 1;
        float col[NI], row[NT], bcol[NI], brow[NT];
        int64_t oa[NT], ob[NT];
        for (int j = 0; j < NT; j++) { /* text j ranks the images */
            for (int i = 0; i < NI; i++) col[i] = scores[i * NT + j], bcol[i] = brute[i][j], oa[i] = ob[i] = i;
            sort_scores = col;
            qsort(oa, NI, sizeof *oa, cmp_by_score);
            sort_scores = bcol;
            qsort(ob, NI, sizeof *ob, cmp_by_score);
            same &= !memcmp(oa, ob, NI * sizeof *oa);
            for (int r = 0; r + 1 < NI; r++) gap = fmin(gap, bcol[ob[r]] - bcol[ob[r + 1]]);
        }
        for (int i = 0; i < NI; i++) { /* image i ranks the texts */
            for (int j = 0; j < NT; j++) row[j] = scores[i * NT + j], brow[j] = brute[i][j], oa[j] = ob[j] = j;
            sort_scores = row;
            qsort(oa, NT, sizeof *oa, cmp_by_score);
            sort_scores = brow;
            qsort(ob, NT, sizeof *ob, cmp_by_score);
            same &= !memcmp(oa, ob, NT * sizeof *oa);
            for (int r = 0; r + 1 < NT; r++) gap = fmin(gap, brow[ob[r]] - brow[ob[r + 1]]);
        }
        CHECK(same, "%s: a query's ITM ranking differs from the brute-force ranking", preset);
        CHECK(gap > 10 * worst, "%s: brute-force scores too close to rank robustly (gap %g, error %g)", preset, gap,
              worst);
        /* recalls and ranks counted from the brute-force scores (rank = 1 + strictly better) */
        static const int img_of[NT] = {0, 1, 2, 3, 4, 5, 0};
        double t_r1 = 0, t_r5 = 0, t_mean = 0, i_r1 = 0, i_r5 = 0, i_mean = 0;
        for (int j = 0; j < NT; j++) {
            int rank = 1;
            for (int i = 0; i < NI; i++) rank += brute[i][j] > brute[img_of[j]][j];
            t_r1 += rank <= 1, t_r5 += rank <= 5, t_mean += rank;
        }
        for (int i = 0; i < NI; i++) {
            int best = NT + 1;
            for (int j = 0; j < NT; j++) {
                if (img_of[j] != i) continue;
                int rank = 1;
                for (int k = 0; k < NT; k++) rank += brute[i][k] > brute[i][j];
                best = rank < best ? rank : best;
            }
            i_r1 += best <= 1, i_r5 += best <= 5, i_mean += best;
        }
        CHECK(res.t2i.queries == NT && res.i2t.queries == NI, "%s: queries %lld / %lld", preset,
              (long long)res.t2i.queries, (long long)res.i2t.queries);
        CHECK(fabs(res.t2i.r1 - t_r1 / NT) < 1e-9 && fabs(res.t2i.r5 - t_r5 / NT) < 1e-9 &&
                  fabs(res.t2i.mean_rank - t_mean / NT) < 1e-9,
              "%s: text->image R@1 %g R@5 %g mean rank %g; brute force %g %g %g", preset, res.t2i.r1, res.t2i.r5,
              res.t2i.mean_rank, t_r1 / NT, t_r5 / NT, t_mean / NT);
        CHECK(fabs(res.i2t.r1 - i_r1 / NI) < 1e-9 && fabs(res.i2t.r5 - i_r5 / NI) < 1e-9 &&
                  fabs(res.i2t.mean_rank - i_mean / NI) < 1e-9,
              "%s: image->text R@1 %g R@5 %g mean rank %g; brute force %g %g %g", preset, res.i2t.r1, res.i2t.r5,
              res.i2t.mean_rank, i_r1 / NI, i_r5 / NI, i_mean / NI);
        printf("%s: itm_full t2i R@1 %.3f mean rank %.2f, i2t R@1 %.3f (max |score - brute| %.2g, min gap %.2g)\n",
               preset, res.t2i.r1, res.t2i.mean_rank, res.i2t.r1, worst, gap);
    }
    /* without ITC heads, the ITC entry point points here */
    if (m->cfg.embed_dim <= 0) {
        vlp_retrieval_result a, b;
        CHECK(vlp_vl_eval_retrieval(m, test_tiny_tok, NULL, ds, 4, 1, &a, &b) != 0 &&
                  strstr(vlp_last_error(), "vlp_vl_eval_itm_full"),
              "%s: ITC retrieval without ITC heads: %s", preset, vlp_last_error());
    }
    free(pix);
    free(tok);
    free(scores);
    vlp_dataset_free(ds);
    vlp_vl_free(m);
}

static void test_no_itm_head(void) {
    vlp_vl_config c;
    vlp_vl *cap = vlp_vl_preset("blip-tiny", &c) == 0 ? vlp_vl_new(&c, 1) : NULL;
    char tsv[400];
    snprintf(tsv, sizeof tsv, "%s/vilt-tiny/set.tsv", tmpdir);
    vlp_dataset *ds = vlp_dataset_open(tsv, NULL);
    vlp_retrieval_result r;
    float *s = (float *)&r;
    CHECK(cap && ds && vlp_vl_eval_itm_full(cap, test_tiny_tok, NULL, ds, NULL, &r, &s) != 0 && s == NULL &&
              strstr(vlp_last_error(), "ITM head"),
          "captioning model: %s", vlp_last_error());
    CHECK(vlp_vl_eval_itm_full(NULL, test_tiny_tok, NULL, ds, NULL, &r, NULL) != 0, "NULL model accepted");
    vlp_dataset_free(ds);
    vlp_vl_free(cap);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_vl_itm_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    test_itm_full("vilt-tiny", 3);
    test_itm_full("albef-tiny", 2);
    test_no_itm_head();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("note: could not remove %s\n", tmpdir);
    return test_finish();
}
