/* The trainer on VL models (vlp_trainer_new_vl): a few steps of each family on a synthetic
 * image-text set lower the loss, a stopped and resumed run equals an uninterrupted one bit
 * for bit, checkpoints of another family or of CLIP are refused, and ITM re-ranking
 * (vlp_rerank, vlp_vl_eval_retrieval) returns permutations that equal the ITC order at K = 1;
 * ALBEF's ITC neither collapses to ln B nor learns much slower than CLIP's on the same data. */
#include "test.h"
#include "test_util.h"
#include "vlp_safetensors.h"
#include "vlp_train.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static float u01(uint64_t k) { return (float)(mix(k) >> 40) * (1.0f / 16777216.0f); }

/* K classes; each pair: an image pattern of its class + noise, text [CLS] a b c [SEP] of the class. */
typedef struct {
    int B, S, T, K, bpe;
    int64_t epoch, batch;
    float *pixels;
    int32_t *tokens;
    int64_t index[64];
} synth;

static int synth_next(void *ctx, vlp_batch *out) {
    synth *d = ctx;
    int px = 3 * d->S * d->S;
    for (int i = 0; i < d->B; i++) {
        uint64_t key = mix(7 ^ mix((uint64_t)d->epoch * 1000003u + (uint64_t)d->batch * 1009u + (uint64_t)i));
        int c = (int)(key % (uint64_t)d->K);
        for (int p = 0; p < px; p++)
            d->pixels[i * px + p] = 2.0f * u01((uint64_t)c * 7919u + (uint64_t)p) - 1.0f + 0.2f * (u01(key + (uint64_t)p) - 0.5f);
        int32_t *t = d->tokens + i * d->T;
        memset(t, 0, (size_t)d->T * sizeof *t);
        t[0] = 1;
        t[1] = 4 + c;
        t[2] = 4 + d->K + (c * 5) % d->K;
        t[3] = 4 + 2 * d->K + c % 3;
        t[4] = 2;
        d->index[i] = c;
    }
    *out = (vlp_batch){.n = d->B, .pixels = d->pixels, .tokens = d->tokens, .index = d->index, .epoch = d->epoch,
                       .batch = d->batch};
    if (++d->batch == d->bpe) d->batch = 0, d->epoch++;
    return 0;
}

static int synth_seek(void *ctx, int64_t e, int64_t b) {
    synth *d = ctx;
    d->epoch = e;
    d->batch = b;
    return 0;
}

static void synth_init(synth *d, vlp_batch_source *src, const vlp_vl_config *c, int B) {
    memset(d, 0, sizeof *d);
    d->K = 6;
    d->B = B;
    d->S = c->image_size;
    d->T = c->max_text_len;
    d->bpe = 4;
    d->pixels = malloc((size_t)B * 3 * d->S * d->S * sizeof(float));
    d->tokens = malloc((size_t)B * d->T * sizeof(int32_t));
    memset(src, 0, sizeof *src);
    src->ctx = d;
    src->next = synth_next;
    src->seek = synth_seek;
    src->batches_per_epoch = d->bpe;
}

static void synth_free(synth *d) {
    free(d->pixels);
    free(d->tokens);
}

static vlp_train_config tiny_train(int64_t steps) {
    vlp_train_config t;
    vlp_train_config_default(&t);
    t.batch_size = 8;
    t.steps = steps;
    t.warmup = 2;
    t.lr = 2e-3f;
    t.weight_decay = 0.01f;
    t.clip_norm = 1.0f;
    t.seed = 3;
    return t;
}

/* preset, with MIM switched on for single-stream so every objective is exercised somewhere;
 * "coca-tiny": blip-tiny with a unimodal lower decoder layer and ITC + LM (CoCa, emoji-cap-s's shape) */
static vlp_vl *tiny_model(const char *preset, uint64_t seed) {
    vlp_vl_config c;
    int coca = !strcmp(preset, "coca-tiny");
    if (vlp_vl_preset(coca ? "blip-tiny" : preset, &c)) return NULL;
    if (c.family == VLP_VL_SINGLE) c.w_mim = 1, c.mim_ratio = 0.5f;
    if (coca) c.fusion_layers = 1, c.embed_dim = 16, c.w_itc = 1;
    return vlp_vl_new(&c, seed);
}

static void test_learns(const char *preset) {
    vlp_vl *m = tiny_model(preset, 1);
    CHECK(m != NULL, "%s: %s", preset, vlp_last_error());
    if (!m) return;
    vlp_train_config tc = tiny_train(24);
    vlp_trainer *t = vlp_trainer_new_vl(m, NULL, &tc);
    CHECK(t != NULL, "%s: trainer_new_vl: %s", preset, vlp_last_error());
    if (!t) {
        vlp_vl_free(m);
        return;
    }
    CHECK(vlp_trainer_vl_model(t) == m && vlp_trainer_model(t) == NULL, "%s: model accessors", preset);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &m->cfg, tc.batch_size);
    double first = 0, last = 0;
    int rc = 0;
    vlp_train_stats st;
    for (int s = 0; s < 24 && !rc; s++) {
        rc = vlp_trainer_step(t, &src, &st);
        if (s < 4) first += st.loss / 4;
        if (s >= 20) last += st.loss / 4;
    }
    CHECK(rc == 0, "%s: training step: %s", preset, vlp_last_error());
    CHECK(last < 0.9 * first, "%s: loss did not fall: first 4 steps %.4f, last 4 %.4f", preset, first, last);
    CHECK(st.step == 24 && st.epoch == 6 && st.batch == 0, "%s: step %lld, position %lld/%lld", preset,
          (long long)st.step, (long long)st.epoch, (long long)st.batch);
    printf("vl trainer %-10s: loss %.4f -> %.4f over 24 steps\n", preset, first, last);
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_vl_free(m);
}

static int run(const char *preset, const char *dir, int64_t steps, int resume, int stop, float **params_out) {
    vlp_vl *m = tiny_model(preset, 5);
    if (!m) return -1;
    vlp_train_config tc = tiny_train(steps);
    vlp_trainer *t = vlp_trainer_new_vl(m, NULL, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &m->cfg, tc.batch_size);
    vlp_run_options o = {.run_dir = dir, .log_every = 1, .save_every = 3, .resume = resume, .save_final = 1};
    if (stop) o.on_step = test_stop_on_step, o.ctx = &stop;
    int rc = t ? vlp_train_run(t, &src, &o) : -1;
    if (params_out) {
        int64_t n = vlp_params_numel(m->params);
        *params_out = malloc((size_t)n * sizeof(float));
        memcpy(*params_out, vlp_params_data(m->params), (size_t)n * sizeof(float));
    }
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_vl_free(m);
    return rc;
}

static void test_resume(const char *preset) {
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/full-%s", tmpdir, preset);
    snprintf(b, sizeof b, "%s/split-%s", tmpdir, preset);
    float *pa = NULL, *pb = NULL;
    CHECK(run(preset, a, 8, 0, 0, &pa) == 0, "%s uninterrupted run: %s", preset, vlp_last_error());
    CHECK(run(preset, b, 8, 0, 5, NULL) == 0, "%s first part: %s", preset, vlp_last_error());
    CHECK(run(preset, b, 8, 1, 0, &pb) == 0, "%s resumed run: %s", preset, vlp_last_error());
    char la[8][32], lb[8][32];
    memset(la, 0, sizeof la);
    memset(lb, 0, sizeof lb);
    int na = test_read_losses(a, la, 8), nb = test_read_losses(b, lb, 8);
    CHECK(na == 8 && nb == 8, "%s metrics lines: %d and %d, want 8", preset, na, nb);
    int same = 1;
    for (int i = 0; i < 8; i++) same &= !strcmp(la[i], lb[i]) && la[i][0];
    CHECK(same, "%s: resumed losses differ (step 6: %s vs %s)", preset, la[5], lb[5]);
    vlp_vl *m = tiny_model(preset, 5);
    int64_t n = m ? vlp_params_numel(m->params) : 0;
    CHECK(pa && pb && n && !memcmp(pa, pb, (size_t)n * sizeof(float)), "%s: final parameters differ", preset);
    char md[400];
    snprintf(md, sizeof md, "%s/model", b);
    vlp_vl *fm = vlp_vl_load(md);
    CHECK(fm && pb && !memcmp(vlp_params_data(fm->params), pb, (size_t)n * sizeof(float)), "%s final model: %s",
          preset, fm ? "parameters differ" : vlp_last_error());
    printf("vl resume %-10s: 8 steps = 5 + resume 3, losses and parameters bit-identical (last loss %s)\n", preset,
           la[7]);
    vlp_vl_free(fm);
    vlp_vl_free(m);
    free(pa);
    free(pb);
}

/* A checkpoint of one family, or of CLIP, is refused by a trainer of another. */
static void test_wrong_family(void) {
    char a[300], ck[400];
    snprintf(a, sizeof a, "%s/full-albef-tiny", tmpdir); /* written by test_resume */
    snprintf(ck, sizeof ck, "%s/checkpoints/step_00000008", a);
    vlp_vl *m = tiny_model("vlmo-tiny", 1);
    vlp_train_config tc = tiny_train(8);
    vlp_trainer *t = m ? vlp_trainer_new_vl(m, NULL, &tc) : NULL;
    CHECK(t != NULL, "vlmo trainer: %s", vlp_last_error());
    if (t) {
        int rc = vlp_trainer_load(t, ck);
        CHECK(rc != 0 && strstr(vlp_last_error(), "dual_stream") && strstr(vlp_last_error(), "mome"),
              "albef checkpoint into a vlmo run: rc %d, '%s'", rc, vlp_last_error());
        CHECK(vlp_trainer_step_count(t) == 0, "a refused checkpoint changed the step");
    }
    vlp_trainer_free(t);
    vlp_vl_free(m);
    /* CLIP trainer vs VL checkpoint */
    vlp_clip_config cc;
    vlp_clip_preset("tiny", &cc);
    vlp_clip *cm = vlp_clip_new(&cc, 1);
    tc.batch_size = 4;
    vlp_trainer *ct = cm ? vlp_trainer_new(cm, &tc) : NULL;
    CHECK(ct && vlp_trainer_load(ct, ck) != 0, "a VL checkpoint loaded into a CLIP trainer");
    vlp_trainer_free(ct);
    vlp_clip_free(cm);
    /* a momentum run needs the teacher in the checkpoint: one without it is refused, naming the file */
    vlp_vl_config c;
    vlp_vl_preset("albef-tiny", &c);
    c.momentum = 0.995f;
    m = vlp_vl_new(&c, 1);
    t = m ? vlp_trainer_new_vl(m, NULL, &tc) : NULL;
    CHECK(t != NULL, "momentum trainer: %s", vlp_last_error());
    if (t) {
        int rc = vlp_trainer_load(t, ck);
        CHECK(rc != 0 && strstr(vlp_last_error(), "teacher.safetensors") && vlp_trainer_step_count(t) == 0,
              "checkpoint without a teacher into a momentum run: rc %d, '%s'", rc, vlp_last_error());
    }
    vlp_trainer_free(t);
    vlp_vl_free(m);
}

/* ---- re-ranking ------------------------------------------------------------------------------- */
static int calls;
static int score_rev(void *ctx, int64_t q, const int64_t *cands, int k, float *out) {
    (void)ctx, (void)q;
    calls++;
    for (int r = 0; r < k; r++) out[r] = (float)cands[r]; /* prefer higher indices */
    return 0;
}

static void test_rerank(void) {
    enum { NQ = 5, NC = 9 };
    float itc[NQ * NC];
    for (int i = 0; i < NQ * NC; i++) itc[i] = (float)(int)(u01((uint64_t)i + 99) * 6); /* ties on purpose */
    int64_t o1[NQ * NC], ok_[NQ * NC];
    calls = 0;
    CHECK(vlp_rerank(itc, NQ, NC, 1, score_rev, NULL, o1) == 0 && calls == 0, "K=1 called the scorer %d times",
          calls);
    int good = 1;
    for (int q = 0; q < NQ; q++) {
        int seen[NC] = {0};
        for (int r = 0; r < NC; r++) {
            int64_t c = o1[q * NC + r];
            good &= c >= 0 && c < NC && !seen[c];
            if (c >= 0 && c < NC) seen[c] = 1;
            if (r) { /* ITC order: descending, ties by index */
                int64_t p = o1[q * NC + r - 1];
                good &= itc[q * NC + p] > itc[q * NC + c] || (itc[q * NC + p] == itc[q * NC + c] && p < c);
            }
        }
    }
    CHECK(good, "K=1 order is not the ITC order");
    for (int K = 2; K <= NC + 3; K += 3) {
        calls = 0;
        CHECK(vlp_rerank(itc, NQ, NC, K, score_rev, NULL, ok_) == 0 && calls == NQ, "K=%d: %d scorer calls", K, calls);
        int kk = K > NC ? NC : K;
        good = 1;
        for (int q = 0; q < NQ; q++) {
            int seen[NC] = {0}, inset = 1;
            for (int r = 0; r < NC; r++) {
                int64_t c = ok_[q * NC + r];
                good &= c >= 0 && c < NC && !seen[c];
                if (c >= 0 && c < NC) seen[c] = 1;
            }
            /* the top K holds the same candidates as ITC's top K, by descending index; the rest unchanged */
            for (int r = 0; r < kk; r++) {
                int found = 0;
                for (int s = 0; s < kk; s++) found |= ok_[q * NC + r] == o1[q * NC + s];
                inset &= found;
                if (r) good &= ok_[q * NC + r - 1] > ok_[q * NC + r];
            }
            for (int r = kk; r < NC; r++) good &= ok_[q * NC + r] == o1[q * NC + r];
            good &= inset;
        }
        CHECK(good, "K=%d: not a permutation re-sorting exactly the ITC top K", K);
    }
    CHECK(vlp_rerank(itc, NQ, NC, 3, NULL, NULL, o1) != 0, "K=3 without a scorer accepted");
}

/* 24-bit BMP of a solid colour, for a tiny retrieval set on disk. */
static unsigned char solid_px(void *ctx, int x, int y, int c) {
    (void)x, (void)y;
    return ((const unsigned char *)ctx)[2 - c];
}
static void write_bmp(const char *path, int S, unsigned char r, unsigned char g, unsigned char b) {
    unsigned char rgb[3] = {r, g, b};
    test_write_bmp(path, S, S, solid_px, rgb);
}

static void test_eval_rerank(void) {
    char dir[300], tsv[400], p[400];
    snprintf(dir, sizeof dir, "%s/ret", tmpdir);
    mkdir(dir, 0777);
    snprintf(tsv, sizeof tsv, "%s/set.tsv", dir);
    FILE *f = fopen(tsv, "w");
    fprintf(f, "filepath\ttitle\n");
    static const char *words[] = {"red", "green", "blue", "cyan", "pink", "gold", "gray"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/i%d.bmp", dir, i);
        write_bmp(p, 32, (unsigned char)(40 * i), (unsigned char)(255 - 30 * i), (unsigned char)(90 * i));
        fprintf(f, "i%d.bmp\ta %s face\n", i, words[i]);
    }
    /* a second caption of image 0: a shared image key */
    fprintf(f, "i0.bmp\ta red square\n");
    fclose(f);
    vlp_dataset *ds = vlp_dataset_open(tsv, NULL);
    CHECK(ds != NULL, "dataset: %s", vlp_last_error());
    vlp_vl *m = tiny_model("albef-tiny", 2);
    vlp_retrieval_result itc, r1, itc2, rk;
    int rc = ds && m ? vlp_vl_eval_retrieval(m, test_tiny_tok, NULL, ds, 3, 1, &itc, &r1) : -1;
    CHECK(rc == 0, "ITC eval: %s", vlp_last_error());
    rc = ds && m ? vlp_vl_eval_retrieval(m, test_tiny_tok, NULL, ds, 3, 4, &itc2, &rk) : -1;
    CHECK(rc == 0, "rerank eval: %s", vlp_last_error());
    if (!rc) {
        CHECK(itc.t2i.queries == 8 && itc.i2t.queries == 7 && itc.t2i.candidates == 7, "queries %lld/%lld",
              (long long)itc.t2i.queries, (long long)itc.i2t.queries);
        CHECK(!memcmp(&itc, &itc2, sizeof itc), "the ITC metrics depend on --rerank");
        const vlp_recall *d[2] = {&rk.t2i, &rk.i2t};
        for (int k = 0; k < 2; k++)
            CHECK(d[k]->r1 <= d[k]->r5 && d[k]->r5 <= d[k]->r10 && d[k]->r10 <= 1 && d[k]->mean_rank >= 1 &&
                      d[k]->mean_rank <= 8,
                  "reranked metrics out of range (dir %d: %g %g %g, mean rank %g)", k, d[k]->r1, d[k]->r5, d[k]->r10,
                  d[k]->mean_rank);
        /* K = 4 only moves candidates inside the top 4: a match ranked below 4 by ITC stays where it was */
        printf("vl eval: ITC t2i R@1 %.3f, ITM@4 t2i R@1 %.3f (tiny untrained model)\n", itc.t2i.r1, rk.t2i.r1);
    }
    /* a model without ITM cannot re-rank; without ITC heads cannot retrieve */
    vlp_vl *cap = tiny_model("blip-tiny", 1);
    CHECK(cap && ds && vlp_vl_eval_retrieval(cap, test_tiny_tok, NULL, ds, 3, 4, &itc, &rk) != 0 &&
              strstr(vlp_last_error(), "ITC"),
          "captioning model retrieval: %s", vlp_last_error());
    vlp_vl_free(cap);
    vlp_vl_free(m);
    vlp_dataset_free(ds);
}

/* Issue 6: ITC alone must not collapse to ln B. 8 fixed pairs, every text and image distinct. At
 * BERT-base's flat 0.02 init a narrow post-LN text encoder gave every caption the same [CLS]
 * feature (distance ~0.003) and the loss sat at ln 8 for the whole run at lr 3e-4. */
typedef struct {
    int B, S, T;
    float *pixels;
    int32_t *tokens;
    int64_t index[8], batch;
} fixed_set;

static void fixed_fill(fixed_set *d) {
    int px = 3 * d->S * d->S;
    for (int i = 0; i < d->B; i++) {
        for (int p = 0; p < px; p++) d->pixels[i * px + p] = 2.0f * u01((uint64_t)i * 7919u + (uint64_t)p) - 1.0f;
        int32_t *t = d->tokens + i * d->T;
        memset(t, 0, (size_t)d->T * sizeof *t);
        t[0] = 1, t[1] = 4 + i, t[2] = 24 + (i * 7) % 20, t[3] = 44 + i % 3, t[4] = 2;
        d->index[i] = i;
    }
}

static int fixed_next(void *ctx, vlp_batch *out) {
    fixed_set *d = ctx;
    *out = (vlp_batch){.n = d->B, .pixels = d->pixels, .tokens = d->tokens, .index = d->index, .batch = d->batch++};
    return 0;
}

static int fixed_seek(void *ctx, int64_t e, int64_t b) {
    (void)ctx, (void)e, (void)b;
    return 0;
}

/* smallest distance between the unit ITC text features of the set's different captions */
static double text_feature_spread(const vlp_vl *m, const fixed_set *d) {
    int64_t s[2] = {d->B, d->T};
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, s), *mask = vlp_input(g, "mask", VLP_I32, 2, s);
    vlp_tensor *tx = vlp_vl_encode_text(g, m, vlp_vl_embed_text(g, m, ids), mask);
    vlp_tensor *fi = NULL, *ft = NULL;
    double best = -1;
    if (!vlp_vl_itc_features(g, m, tx, tx, &fi, &ft)) ft = vlp_keep(vlp_l2norm(g, ft, 1e-12f));
    if (ft && !vlp_graph_build(g, ft, VLP_BUILD_INFERENCE)) {
        memcpy(ids->data, d->tokens, (size_t)d->B * d->T * sizeof(int32_t));
        for (int i = 0; i < d->B * d->T; i++) ((int32_t *)mask->data)[i] = d->tokens[i] != 0;
        if (!vlp_graph_forward(g)) {
            const float *f = ft->data;
            int64_t E = ft->shape[1];
            for (int a = 0; a < d->B; a++)
                for (int b = a + 1; b < d->B; b++) {
                    double q = 0;
                    for (int64_t k = 0; k < E; k++) q += (double)(f[a * E + k] - f[b * E + k]) * (f[a * E + k] - f[b * E + k]);
                    if (best < 0 || sqrt(q) < best) best = sqrt(q);
                }
        }
    }
    vlp_graph_free(g);
    return best;
}

static void test_itc_no_collapse(void) {
    vlp_vl_config c;
    CHECK(vlp_vl_preset("albef-tiny", &c) == 0, "preset: %s", vlp_last_error());
    c.w_itm = c.w_mlm = 0;
    vlp_vl *m = vlp_vl_new(&c, 1);
    CHECK(m != NULL, "albef itc-only: %s", vlp_last_error());
    if (!m) return;
    fixed_set d = {.B = 8, .S = c.image_size, .T = c.max_text_len};
    d.pixels = malloc((size_t)d.B * 3 * d.S * d.S * sizeof(float));
    d.tokens = malloc((size_t)d.B * d.T * sizeof(int32_t));
    fixed_fill(&d);
    double spread = text_feature_spread(m, &d);
    CHECK(spread > 0.02, "albef at init: different captions give almost the same ITC text feature (min distance %.4f)",
          spread);
    vlp_train_config tc = tiny_train(40);
    tc.lr = 3e-4f;
    vlp_trainer *t = vlp_trainer_new_vl(m, NULL, &tc);
    CHECK(t != NULL, "albef itc-only trainer: %s", vlp_last_error());
    vlp_batch_source src = {.ctx = &d, .next = fixed_next, .seek = fixed_seek, .batches_per_epoch = 1000};
    vlp_train_stats st;
    double last = 0, lnb = log(d.B);
    int rc = 0;
    for (int s = 0; t && s < 40 && !rc; s++) {
        rc = vlp_trainer_step(t, &src, &st);
        if (s >= 36) last += st.loss / 4;
    }
    CHECK(t && rc == 0, "albef itc-only step: %s", vlp_last_error());
    CHECK(last < 0.7 * lnb, "albef ITC collapsed: loss %.4f after 40 steps, ln B = %.4f", last, lnb);
    printf("albef ITC only, 8 fixed pairs: text feature min distance %.4f at init, loss %.4f after 40 steps (ln 8 = %.4f)\n",
           spread, last, lnb);
    vlp_trainer_free(t);
    vlp_vl_free(m);
    free(d.pixels);
    free(d.tokens);
}

/* Issue 6: ALBEF's ITC must learn about as fast as CLIP's on the same data. 32 distinct pairs
 * whose image is the sum of one pattern per caption token (+ noise), batches of 16 in a fixed
 * order; albef-tiny with ITC only against a CLIP dual encoder of the same widths and depths
 * (1 text layer: albef-tiny's text layers below fusion), same optimiser and schedule. Measured
 * (loss drop ln 16 - mean of the last 8 of 40 steps, ALBEF over CLIP): 0.96, 0.94, 0.80 for
 * model seeds 1-3, mean 0.90; with the flat N(0, 0.02) init of before e55695d 0.013, 0.009,
 * 0.002 (mean 0.008: the loss stays at ln 16). Seeds 5 and 7 of 1-8 stall longer (0.27, 0.32),
 * so the bar, 0.7 of CLIP's drop on the mean of three seeds, still holds with one stalled seed. */
typedef struct {
    int N, B, S, T, eot;
    float *pixels;
    int32_t *tokens;
    int64_t index[16], batch;
} race_set;

static int race_next(void *ctx, vlp_batch *out) {
    race_set *d = ctx;
    int px = 3 * d->S * d->S;
    for (int r = 0; r < d->B; r++) {
        int i = (int)((d->batch * d->B + r * 5) % d->N);
        int32_t *t = d->tokens + r * d->T;
        memset(t, 0, (size_t)d->T * sizeof *t);
        /* [CLS] a b c [SEP]; (a, b) is distinct for each of the 32 pairs */
        t[0] = 1, t[1] = 4 + i % 16, t[2] = 20 + 8 * (i / 16) + (i * 5) % 8, t[3] = 40 + (i * 3) % 16, t[4] = d->eot;
        for (int p = 0; p < px; p++) {
            float v = 0;
            for (int k = 1; k < 4; k++) v += u01((uint64_t)t[k] * 7919u + (uint64_t)p) - 0.5f;
            d->pixels[r * px + p] = v + 0.2f * (u01(mix((uint64_t)d->batch * 131 + (uint64_t)r) + (uint64_t)p) - 0.5f);
        }
        d->index[r] = i;
    }
    *out = (vlp_batch){.n = d->B, .pixels = d->pixels, .tokens = d->tokens, .index = d->index, .batch = d->batch++};
    return 0;
}

static int race_seek(void *ctx, int64_t e, int64_t b) {
    (void)e;
    ((race_set *)ctx)->batch = b;
    return 0;
}

/* ln B - the mean loss of the last 8 steps, or -1 on an error */
static double race_drop(vlp_trainer *t, race_set *d, int steps) {
    vlp_batch_source src = {.ctx = d, .next = race_next, .seek = race_seek, .batches_per_epoch = 1000};
    vlp_train_stats st;
    double last = 0;
    d->batch = 0;
    for (int s = 0; s < steps; s++) {
        if (!t || vlp_trainer_step(t, &src, &st)) return -1;
        if (s >= steps - 8) last += st.loss / 8;
    }
    return log(d->B) - last;
}

static void test_itc_as_fast_as_clip(void) {
    const int steps = 40;
    vlp_train_config tc;
    vlp_train_config_default(&tc);
    tc.batch_size = 16, tc.steps = steps, tc.warmup = 10, tc.lr = 1e-3f, tc.seed = 3;
    vlp_vl_config c;
    CHECK(vlp_vl_preset("albef-tiny", &c) == 0, "preset: %s", vlp_last_error());
    c.w_itm = c.w_mlm = 0;
    race_set d = {.N = 32, .B = 16, .S = c.image_size, .T = c.max_text_len};
    d.pixels = malloc((size_t)d.B * 3 * d.S * d.S * sizeof(float));
    d.tokens = malloc((size_t)d.B * d.T * sizeof(int32_t));
    /* CLIP: albef-tiny's shapes; its pooled token is the argmax id, so the caption ends in the
     * largest id instead of [SEP] */
    vlp_clip_config cc;
    vlp_clip_preset("tiny", &cc);
    cc.embed_dim = c.embed_dim, cc.image_size = c.image_size, cc.patch_size = c.patch_size;
    cc.vision_width = cc.text_width = c.width, cc.vision_heads = cc.text_heads = c.heads;
    cc.vision_mlp = cc.text_mlp = c.mlp, cc.vision_layers = c.vision_layers;
    cc.text_layers = c.layers - c.fusion_layers;
    cc.vocab_size = c.vocab_size, cc.context_length = c.max_text_len;
    vlp_clip *cm = vlp_clip_new(&cc, 1);
    CHECK(cm != NULL, "clip: %s", vlp_last_error());
    vlp_trainer *ct = cm ? vlp_trainer_new(cm, &tc) : NULL;
    d.eot = c.vocab_size - 1;
    double clip_drop = race_drop(ct, &d, steps), albef = 0;
    CHECK(clip_drop > 0.5 * log(d.B), "clip ITC: drop %.4f (%s)", clip_drop, vlp_last_error());
    vlp_trainer_free(ct);
    vlp_clip_free(cm);
    d.eot = 2;
    for (int seed = 1; seed <= 3; seed++) {
        vlp_vl *m = vlp_vl_new(&c, (uint64_t)seed);
        vlp_trainer *t = m ? vlp_trainer_new_vl(m, NULL, &tc) : NULL;
        double drop = race_drop(t, &d, steps);
        CHECK(drop >= 0, "albef seed %d: %s", seed, vlp_last_error());
        printf("ITC race, seed %d: albef drop %.4f, clip %.4f (ratio %.3f)\n", seed, drop, clip_drop, drop / clip_drop);
        albef += drop / 3;
        vlp_trainer_free(t);
        vlp_vl_free(m);
    }
    CHECK(albef >= 0.7 * clip_drop, "albef ITC learns slower than CLIP: mean loss drop %.4f over 3 seeds, CLIP %.4f",
          albef, clip_drop);
    free(d.pixels);
    free(d.tokens);
}

/* MLM on the labelled rows only (vlp_mlm_compact + rows) equals the head over every position:
 * same loss, same gradients for the fused states and the head; overflow is counted. */
static void test_mlm_rows(void) {
    vlp_vl *m = tiny_model("albef-tiny", 3);
    CHECK(m != NULL, "albef-tiny: %s", vlp_last_error());
    if (!m) return;
    const int B = 3, T = m->cfg.max_text_len, D = m->cfg.width, V = m->cfg.vocab_size, n = B * T;
    int32_t *full = malloc(sizeof(int32_t) * n), *rows = malloc(sizeof(int32_t) * n), *rl = malloc(sizeof(int32_t) * n);
    int count = 0;
    for (int i = 0; i < n; i++) {
        full[i] = u01(1000 + i) < 0.3f ? (int32_t)(u01(5000 + i) * (V - 1)) : -100;
        count += full[i] != -100;
    }
    const int cap = count + 2; /* two padding rows */
    CHECK(vlp_mlm_compact(full, n, rows, rl, cap) == 0 && rl[cap - 1] == -100 && rows[cap - 1] == 0,
          "compact: %d labels into %d rows", count, cap);
    CHECK(vlp_mlm_compact(full, n, rows, rl, count - 3) == 3, "compact: overflow of 3 not counted");
    vlp_mlm_compact(full, n, rows, rl, cap);
    vlp_params *P = vlp_params_new();
    int64_t sf[3] = {B, T, D};
    vlp_tensor *fz = vlp_params_add(P, "fused", 3, sf, 0);
    CHECK(P && fz && vlp_params_alloc(P) == 0, "params: %s", vlp_last_error());
    vlp_init_normal(fz, 0, 1, 7);
    float loss[2] = {0, 0}, *gf[2], *gm[2];
    int64_t nm = vlp_params_numel(m->params);
    for (int k = 0; k < 2; k++) {
        vlp_graph *g = vlp_graph_new();
        int64_t sn[1] = {k ? cap : n};
        vlp_tensor *lab = vlp_input(g, "labels", VLP_I32, 1, sn), *rw = k ? vlp_input(g, "rows", VLP_I32, 1, sn) : NULL;
        vlp_tensor *l = vlp_vl_mlm_loss(g, m, fz, rw, lab);
        int rc = l ? vlp_graph_build(g, l, VLP_BUILD_TRAIN) : -1;
        CHECK(rc == 0, "mlm graph %d: %s", k, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        if (rc) {
            vlp_graph_free(g);
            gf[k] = gm[k] = NULL;
            continue;
        }
        memcpy(lab->data, k ? rl : full, sizeof(int32_t) * (size_t)sn[0]);
        if (rw) memcpy(rw->data, rows, sizeof(int32_t) * (size_t)cap);
        vlp_params_zero_grad(P);
        vlp_params_zero_grad(m->params);
        CHECK(vlp_graph_forward(g) == 0 && vlp_graph_backward(g, NULL) == 0, "mlm %d: %s", k, vlp_last_error());
        loss[k] = ((float *)l->data)[0];
        gf[k] = malloc(sizeof(float) * (size_t)n * D);
        gm[k] = malloc(sizeof(float) * (size_t)nm);
        memcpy(gf[k], vlp_params_grad(P), sizeof(float) * (size_t)n * D);
        memcpy(gm[k], vlp_params_grad(m->params), sizeof(float) * (size_t)nm);
        vlp_graph_free(g);
    }
    if (gf[0] && gf[1]) {
        double ef = 0, nf = 0, em = 0, nrm = 0;
        for (int64_t i = 0; i < (int64_t)n * D; i++) {
            ef = fmax(ef, fabs(gf[0][i] - gf[1][i]));
            nf = fmax(nf, fabs(gf[0][i]));
        }
        for (int64_t i = 0; i < nm; i++) {
            em = fmax(em, fabs(gm[0][i] - gm[1][i]));
            nrm = fmax(nrm, fabs(gm[0][i]));
        }
        CHECK(fabsf(loss[0] - loss[1]) <= 1e-6f * fabsf(loss[0]) && ef <= 1e-5 * nf && em <= 1e-5 * nrm && nf > 0,
              "MLM rows vs all positions: loss %.8f vs %.8f, grad diff fused %.2e (max %.2e), head %.2e (max %.2e)",
              loss[0], loss[1], ef, nf, em, nrm);
        printf("mlm on %d labelled rows of %d: loss %.7f vs %.7f, max grad diff %.1e / %.1e\n", count, n, loss[1],
               loss[0], ef, em);
    }
    for (int k = 0; k < 2; k++) free(gf[k]), free(gm[k]);
    vlp_params_free(P);
    vlp_vl_free(m);
    free(full), free(rows), free(rl);
}

/* ---- momentum distillation (ALBEF): EMA teacher, queue, soft ITC / MLM targets ---------------- */
static vlp_vl *mom_model(uint64_t seed) {
    vlp_vl_config c;
    if (vlp_vl_preset("albef-tiny", &c)) return NULL;
    c.momentum = 0.9f;
    c.queue_size = 8;
    c.distill_alpha = 0.4f;
    c.dropout = 0;
    return vlp_vl_new(&c, seed);
}

/* 3 pairs a step: the queue of 8 wraps in the middle of step 3, and a resume at step 2 starts at row 6. */
static int mom_run(const char *dir, int64_t steps, int resume, int stop, int save_every, float **params_out) {
    vlp_vl *m = mom_model(5);
    if (!m) return -1;
    vlp_train_config tc = tiny_train(steps);
    tc.batch_size = 3;
    vlp_trainer *t = vlp_trainer_new_vl(m, NULL, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &m->cfg, tc.batch_size);
    vlp_run_options o = {.run_dir = dir, .log_every = 1, .save_every = save_every, .resume = resume,
                         .keep_checkpoints = 8};
    if (stop) o.on_step = test_stop_on_step, o.ctx = &stop;
    int rc = t ? vlp_train_run(t, &src, &o) : -1;
    if (!t) fprintf(stderr, "mom_run: %s\n", vlp_last_error());
    if (params_out) {
        int64_t n = vlp_params_numel(m->params);
        *params_out = malloc((size_t)n * sizeof(float));
        memcpy(*params_out, vlp_params_data(m->params), (size_t)n * sizeof(float));
    }
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_vl_free(m);
    return rc;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = k >= 0 ? malloc((size_t)k + 1) : NULL;
    if (b && fread(b, 1, (size_t)k, f) != (size_t)k) free(b), b = NULL;
    fclose(f);
    *n = b ? (size_t)k : 0;
    return b;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* All of a checkpoint file's tensors, in the model's parameter order, into a new array. */
static float *read_params_file(const char *path, const vlp_vl *like) {
    vlp_safetensors *st = vlp_st_open(path);
    int64_t n = vlp_params_numel(like->params);
    float *out = st ? calloc((size_t)n, sizeof(float)) : NULL; /* alignment gaps stay 0 */
    float *base = vlp_params_data(like->params);
    for (int i = 0; out && i < vlp_params_count(like->params); i++) {
        vlp_tensor *x = vlp_params_get(like->params, i);
        int idx = vlp_st_find(st, x->name);
        if (idx < 0 || vlp_st_read_f32(st, idx, out + ((float *)x->data - base), x->numel)) free(out), out = NULL;
    }
    vlp_st_close(st);
    return out;
}

/* 4 steps straight = 2 steps, stop, resume, 2 steps: losses, parameters, teacher, queue and
 * AdamW state bit-identical. */
static void test_momentum_resume(void) {
    char a[300], b[300], fa[500], fb[500];
    snprintf(a, sizeof a, "%s/mom-full", tmpdir);
    snprintf(b, sizeof b, "%s/mom-split", tmpdir);
    float *pa = NULL, *pb = NULL;
    CHECK(mom_run(a, 4, 0, 0, 1, &pa) == 0, "momentum uninterrupted run: %s", vlp_last_error());
    CHECK(mom_run(b, 4, 0, 2, 4, NULL) == 0, "momentum first part: %s", vlp_last_error());
    snprintf(fb, sizeof fb, "%s/checkpoints/step_00000002/teacher.safetensors", b);
    CHECK(access(fb, F_OK) == 0, "the stopped run's checkpoint has no teacher.safetensors");
    CHECK(mom_run(b, 4, 1, 0, 4, &pb) == 0, "momentum resumed run: %s", vlp_last_error());
    char la[4][32], lb[4][32];
    memset(la, 0, sizeof la);
    memset(lb, 0, sizeof lb);
    int na = test_read_losses(a, la, 4), nb = test_read_losses(b, lb, 4), same = 1;
    CHECK(na == 4 && nb == 4, "momentum metrics lines: %d and %d, want 4", na, nb);
    for (int i = 0; i < 4; i++) same &= !strcmp(la[i], lb[i]) && la[i][0];
    CHECK(same, "momentum: resumed losses differ (step 3: %s vs %s, step 4: %s vs %s)", la[2], lb[2], la[3], lb[3]);
    vlp_vl *m = mom_model(5);
    int64_t n = m ? vlp_params_numel(m->params) : 0;
    CHECK(pa && pb && n && !memcmp(pa, pb, (size_t)n * sizeof(float)), "momentum: final parameters differ");
    const char *files[4] = {"teacher.safetensors", "queue.safetensors", "model.safetensors", "train_state.safetensors"};
    for (int k = 0; k < 4; k++) {
        snprintf(fa, sizeof fa, "%s/checkpoints/step_00000004/%s", a, files[k]);
        snprintf(fb, sizeof fb, "%s/checkpoints/step_00000004/%s", b, files[k]);
        CHECK(same_file(fa, fb), "momentum resume: %s differs (or is missing)", files[k]);
    }
    printf("vl momentum resume: 4 steps = 2 + resume 2, losses, parameters, teacher, queue bit-identical "
           "(last loss %s)\n", la[3]);
    vlp_vl_free(m);
    free(pa);
    free(pb);
}

/* Teacher and queue after each step of the uninterrupted run (checkpoints at every step):
 * teacher_s = mo * teacher_{s-1} + (1 - mo) * model_s (teacher_0 = the initial model), and the
 * queue rows of step s hold teacher_{s-1}'s normalised ITC features of batch s - 1. */
static void test_momentum_teacher_queue(void) {
    char a[300], p[500];
    snprintf(a, sizeof a, "%s/mom-full", tmpdir); /* written by test_momentum_resume */
    vlp_vl *m = mom_model(5), *tm = mom_model(5);
    CHECK(m && tm, "momentum model: %s", vlp_last_error());
    if (!m || !tm) {
        vlp_vl_free(m);
        vlp_vl_free(tm);
        return;
    }
    const float mo = m->cfg.momentum;
    int64_t n = vlp_params_numel(m->params);
    synth d;
    vlp_batch_source src;
    const int B = 3, T = m->cfg.max_text_len, K = m->cfg.queue_size, E = m->cfg.embed_dim;
    synth_init(&d, &src, &m->cfg, B);
    /* the teacher's ITC features of one batch, outside the training graph */
    vlp_graph *g = vlp_graph_new();
    int64_t spx[4] = {B, 3, m->cfg.image_size, m->cfg.image_size}, sid[2] = {B, T};
    vlp_tensor *px = vlp_input(g, "pixels", VLP_F32, 4, spx), *ids = vlp_input(g, "ids", VLP_I32, 2, sid),
               *mk = vlp_input(g, "mask", VLP_I32, 2, sid), *fi = NULL, *ft = NULL;
    vlp_tensor *ie = vlp_vl_encode_image(g, tm, vlp_vl_embed_image(g, tm, px, NULL, NULL));
    vlp_tensor *te = vlp_vl_encode_text(g, tm, vlp_vl_embed_text(g, tm, ids), mk);
    int rc = vlp_vl_itc_features(g, tm, ie, te, &fi, &ft);
    vlp_tensor *feats = rc ? NULL : vlp_concat(g, vlp_l2norm(g, fi, 1e-12f), vlp_l2norm(g, ft, 1e-12f), 0);
    rc = feats ? vlp_graph_build(g, feats, VLP_BUILD_INFERENCE) : -1;
    CHECK(rc == 0, "teacher feature graph: %s", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    double worst_ema = 0, worst_q = 0;
    int ema_exact = 1, steps_ok = 0;
    for (int s = 1; s <= 4 && !rc; s++) {
        /* features of batch s - 1 under teacher_{s-1} (tm holds it) */
        vlp_batch bt;
        synth_next(&d, &bt);
        memcpy(px->data, bt.pixels, (size_t)px->numel * sizeof(float));
        memcpy(ids->data, bt.tokens, (size_t)B * T * sizeof(int32_t));
        for (int i = 0; i < B * T; i++) ((int32_t *)mk->data)[i] = bt.tokens[i] != m->cfg.pad_id;
        if (vlp_graph_forward(g)) break;
        snprintf(p, sizeof p, "%s/checkpoints/step_%08d/model.safetensors", a, s);
        float *ms = read_params_file(p, m);
        snprintf(p, sizeof p, "%s/checkpoints/step_%08d/teacher.safetensors", a, s);
        float *ts = read_params_file(p, m);
        snprintf(p, sizeof p, "%s/checkpoints/step_%08d/queue.safetensors", a, s);
        vlp_safetensors *qs = vlp_st_open(p);
        CHECK(ms && ts && qs, "step %d checkpoint: %s", s, vlp_last_error());
        if (!ms || !ts || !qs) {
            free(ms), free(ts), vlp_st_close(qs);
            break;
        }
        float *tp = vlp_params_data(tm->params);
        for (int64_t i = 0; i < n; i++) {
            float want = mo * tp[i] + (1.0f - mo) * ms[i];
            ema_exact &= want == ts[i];
            worst_ema = fmax(worst_ema, fabs((double)want - ts[i]));
        }
        /* rows (s - 1) * B .. of the ring: the image queue, then the text queue */
        float *qi = malloc(sizeof(float) * (size_t)K * E), *qt = malloc(sizeof(float) * (size_t)K * E);
        int qok = qi && qt && !vlp_st_read_f32(qs, vlp_st_find(qs, "image"), qi, (int64_t)K * E) &&
                  !vlp_st_read_f32(qs, vlp_st_find(qs, "text"), qt, (int64_t)K * E);
        const char *pos = vlp_st_metadata(qs, "queue_pos");
        CHECK(qok && pos && atoi(pos) == (s * B) % K, "step %d queue: pos %s, want %d", s, pos ? pos : "?", (s * B) % K);
        const float *f = feats->data;
        for (int b = 0; qok && b < B; b++) {
            int row = ((s - 1) * B + b) % K;
            for (int e = 0; e < E; e++) {
                worst_q = fmax(worst_q, fabs((double)qi[row * E + e] - f[b * E + e]));
                worst_q = fmax(worst_q, fabs((double)qt[row * E + e] - f[(B + b) * E + e]));
            }
        }
        memcpy(tp, ts, (size_t)n * sizeof(float)); /* teacher_s for the next step */
        free(qi), free(qt), free(ms), free(ts);
        vlp_st_close(qs);
        steps_ok++;
    }
    CHECK(steps_ok == 4, "teacher/queue checked on %d of 4 steps", steps_ok);
    CHECK(ema_exact, "teacher != mo * teacher + (1 - mo) * model: max diff %.3e", worst_ema);
    /* the same ops on the same shapes as the training graph's teacher branch */
    CHECK(worst_q <= 1e-6, "queue rows differ from the previous step's teacher features by %.3e", worst_q);
    printf("vl momentum: teacher EMA exact over 4 steps; queue rows = previous teacher features (max diff %.1e)\n",
           worst_q);
    vlp_graph_free(g);
    synth_free(&d);
    vlp_vl_free(m);
    vlp_vl_free(tm);
}

/* MLM distillation at a teacher equal to the model (step 0): the soft term's gradient
 * (P / labelled) (p - q) vanishes, so the MLM-only head bias gets exactly (1 - a) times the
 * gradient of plain MLM; the loss is (1 - a) CE + a H(p) > (1 - a) CE. A perturbed teacher
 * changes the loss (its branch is really used). */
static void test_momentum_mlm_distill(void) {
    float loss[3] = {0, 0, 0}, ce = 0;
    float *gb[3] = {NULL, NULL, NULL};
    int V = 0;
    for (int k = 0; k < 3; k++) {
        vlp_vl_config c;
        vlp_vl_preset("albef-tiny", &c);
        c.momentum = 0.9f;
        c.queue_size = 8;
        c.dropout = 0;
        c.distill_alpha = k ? 0.4f : 0.0f;
        V = c.vocab_size;
        vlp_vl *m = vlp_vl_new(&c, 9), *tm = m ? vlp_vl_momentum_teacher(m) : NULL;
        if (tm && k == 2) { /* a teacher that differs from the model */
            float *d = vlp_params_data(tm->params);
            for (int64_t i = 0; i < vlp_params_numel(tm->params); i++) d[i] *= 1.05f;
        }
        vlp_graph *g = vlp_graph_new();
        vlp_vl_pretrain pt;
        const int B = 4, T = c.max_text_len;
        int rc = tm ? vlp_vl_pretrain_graph(g, m, tm, B, T, &pt) : -1;
        if (!rc) rc = vlp_graph_build(g, pt.loss, VLP_BUILD_TRAIN);
        synth d;
        vlp_batch_source src;
        vlp_batch b;
        synth_init(&d, &src, &c, B);
        synth_next(&d, &b);
        int32_t mask[4 * 64];
        for (int i = 0; i < B * T; i++) mask[i] = b.tokens[i] != c.pad_id;
        if (!rc) rc = vlp_vl_pretrain_fill(m, &pt, b.pixels, b.tokens, mask, NULL, 77);
        if (!rc) {
            vlp_graph_set_training(g, 1, 0);
            vlp_params_zero_grad(m->params);
            rc = vlp_graph_forward(g) || vlp_graph_backward(g, NULL);
        }
        CHECK(rc == 0, "distill graph %d: %s", k, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        if (!rc) {
            loss[k] = *(float *)pt.loss_mlm->data;
            if (!k) ce = loss[k];
            gb[k] = malloc(sizeof(float) * (size_t)V);
            memcpy(gb[k], m->head_bias->grad, sizeof(float) * (size_t)V);
        }
        synth_free(&d);
        vlp_graph_free(g);
        vlp_vl_free(tm);
        vlp_vl_free(m);
    }
    if (gb[0] && gb[1] && gb[2]) {
        double e = 0, nrm = 0;
        for (int i = 0; i < V; i++) {
            e = fmax(e, fabs(gb[1][i] - 0.6 * gb[0][i]));
            nrm = fmax(nrm, fabs(gb[0][i]));
        }
        CHECK(nrm > 0 && e <= 1e-5 * nrm, "distilled MLM head-bias gradient != 0.6 x plain: max diff %.3e (max %.3e)",
              e, nrm);
        CHECK(loss[1] > 0.6f * ce && loss[1] < ce * 2, "distilled MLM loss %.6f vs 0.6 CE %.6f", loss[1], 0.6 * ce);
        CHECK(fabsf(loss[2] - loss[1]) > 1e-4f, "MLM loss ignores the teacher: %.6f vs %.6f", loss[2], loss[1]);
        printf("vl momentum MLM distillation: CE %.5f, distilled %.5f (teacher = model), %.5f (other teacher); "
               "head-bias grad = 0.6 x plain to %.1e\n", ce, loss[1], loss[2], e / nrm);
    }
    for (int k = 0; k < 3; k++) free(gb[k]);
}

/* itm_exclude_same_text: texts 0 and 1 identical. Without the option the hard-negative image
 * of text 0 is sometimes image 1 (its own caption: a false negative); with it, never, and the
 * same for the negative text of image 0. All texts identical: every row keeps the old draw
 * (no NaN, finite loss). */
static void test_itm_exclude_same_text(void) {
    int hits[2] = {0, 0}, draws = 200;
    for (int opt = 0; opt < 3; opt++) { /* 0, 1: texts 0 and 1 equal; 2: all equal, option on */
        vlp_vl_config c;
        vlp_vl_preset("albef-tiny", &c);
        c.dropout = 0;
        c.itm_exclude_same_text = opt > 0;
        vlp_vl *m = vlp_vl_new(&c, 5);
        vlp_graph *g = vlp_graph_new();
        vlp_vl_pretrain pt;
        const int B = 4, T = c.max_text_len;
        int rc = m ? vlp_vl_pretrain_graph(g, m, NULL, B, T, &pt) : -1;
        if (!rc) rc = vlp_graph_build(g, pt.loss, VLP_BUILD_TRAIN);
        CHECK(rc || (opt > 0) == (pt.itm_exclude != NULL), "itm_exclude input %d", opt);
        synth d;
        vlp_batch_source src;
        vlp_batch b;
        synth_init(&d, &src, &c, B);
        synth_next(&d, &b);
        for (int i = 1; i < B; i++)
            if (i == 1 || opt == 2) memcpy(b.tokens + i * T, b.tokens, (size_t)T * sizeof(int32_t));
        int32_t mask[4 * 64];
        for (int i = 0; i < B * T; i++) mask[i] = b.tokens[i] != c.pad_id;
        if (!rc) rc = vlp_vl_pretrain_fill(m, &pt, b.pixels, b.tokens, mask, NULL, 3);
        for (int s = 0; !rc && s < (opt == 2 ? 20 : draws); s++) {
            vlp_graph_set_seed(g, (uint64_t)s * 7919u + 1);
            if ((rc = vlp_graph_forward(g))) break;
            const int32_t *ni = pt.neg_img->data, *nt = pt.neg_txt->data;
            for (int i = 0; i < B; i++)
                CHECK(ni[i] >= 0 && ni[i] < B && ni[i] != i && nt[i] >= 0 && nt[i] < B && nt[i] != i,
                      "negatives of %d: %d %d", i, ni[i], nt[i]);
            if (opt < 2) hits[opt] += (ni[0] == 1) + (ni[1] == 0) + (nt[0] == 1) + (nt[1] == 0);
            float l = *(float *)pt.loss->data, li = *(float *)pt.loss_itm->data;
            if (!isfinite(l) || !isfinite(li)) {
                CHECK(0, "opt %d seed %d: loss %g, itm %g", opt, s, l, li);
                break;
            }
        }
        if (!rc && opt == 1) { /* the field survives a checkpoint's config.json */
            char dir[300], cp[340];
            snprintf(dir, sizeof dir, "%s/itm_excl", tmpdir);
            snprintf(cp, sizeof cp, "%s/config.json", dir);
            vlp_vl_config back;
            CHECK(vlp_vl_save(m, dir) == 0 && vlp_vl_config_load(cp, &back) == 0 && back.itm_exclude_same_text == 1,
                  "config round trip: %s", vlp_last_error());
            /* values other than 0 / 1 are refused */
            char buf[8192] = "", *at = NULL;
            FILE *f = fopen(cp, "rb");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f) fclose(f);
            buf[n] = 0;
            at = strstr(buf, "\"itm_exclude_same_text\": 1");
            f = at ? fopen(cp, "wb") : NULL;
            if (f) at[strlen("\"itm_exclude_same_text\": ")] = '2', fwrite(buf, 1, n, f), fclose(f);
            CHECK(f && vlp_vl_config_load(cp, &back) != 0 && strstr(vlp_last_error(), "itm_exclude_same_text"),
                  "config value 2: %s", vlp_last_error());
        }
        if (!rc && opt == 2) {
            vlp_params_zero_grad(m->params);
            rc = vlp_graph_backward(g, NULL);
        }
        CHECK(rc == 0, "itm exclude %d: %s", opt, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        synth_free(&d);
        vlp_graph_free(g);
        vlp_vl_free(m);
    }
    CHECK(hits[0] > 0, "without the option no same-text negative in %d draws: the test cannot fail", draws);
    CHECK(hits[1] == 0, "with itm_exclude_same_text %d same-text negatives in %d draws", hits[1], draws);
    printf("vl itm_exclude_same_text: same-text negatives %d (off) vs %d (on) of %d draws x 4\n", hits[0], hits[1],
           draws);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_vltrain_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    test_rerank();
    test_mlm_rows();
    test_itc_no_collapse();
    test_itc_as_fast_as_clip();
    test_learns("albef-tiny");
    test_learns("vilt-tiny");
    test_learns("vlmo-tiny");
    test_learns("blip-tiny");
    test_resume("albef-tiny");
    test_resume("vilt-tiny");
    test_resume("vlmo-tiny");
    test_resume("blip-tiny");
    test_resume("coca-tiny");
    test_wrong_family();
    test_momentum_resume();
    test_momentum_teacher_queue();
    test_momentum_mlm_distill();
    test_eval_rerank();
    test_itm_exclude_same_text();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("note: could not remove %s\n", tmpdir);
    return test_finish();
}
