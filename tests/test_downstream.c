/* Zero-shot downstream tasks with a CLIP dual encoder (src/eval/downstream.c) on the tiny fixture
 * model: one prediction per row in order, picks equal to an independent computation from the
 * public embedding API, cases whose answer is forced by construction, the linear probe. */
#include "test.h"
#include "vlp_downstream.h"
#include "vlp_image.h"
#include "vlp_text.h"

#include <string.h>

#define MODEL FIXTURE("clip/model-tiny")
#define TASKS FIXTURE("report/tasks")

static vlp_task_set *mem(const char *text, vlp_task_kind kind) {
    return vlp_task_read_mem(text, strlen(text), "mem.jsonl", TASKS, kind, NULL);
}

/* ITC logits of one image file against texts, computed here without the module. */
static void ref_logits(const vlp_clip *m, const char *image, const char *const *texts, int n, float *logit) {
    vlp_clip_runner *r = vlp_clip_runner_new(m, 8);
    vlp_tokenizer *tok = vlp_clip_tokenizer_load(m, NULL);
    float img[256], txt[16 * 256];
    int ok = 0;
    vlp_clip_embed_image_files(r, &image, 1, 1, img, &ok, NULL, NULL, NULL, NULL);
    vlp_clip_embed_texts(r, tok, texts, n, 1, txt);
    vlp_clip_logits(m, img, 1, txt, n, logit);
    vlp_tokenizer_free(tok);
    vlp_clip_runner_free(r);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_mc(const vlp_clip *m) {
    vlp_task_set *d = vlp_task_read(TASKS "/mc-style.jsonl", VLP_TASK_MC, NULL);
    vlp_clip_task_result r;
    int rc = vlp_clip_task_predict(m, d, NULL, NULL, &r);
    CHECK(rc == 0, "mc predict: %s", vlp_last_error());
    if (rc) goto out;
    CHECK(r.pred->n == d->n && d->n == 4, "mc: %lld predictions for %lld rows", (long long)r.pred->n, (long long)d->n);
    for (int64_t i = 0; i < d->n; i++) {
        const vlp_task_example *e = &d->ex[i];
        float lg[8], sum = 0;
        ref_logits(m, e->image, (const char *const *)e->choices, e->n_choices, lg);
        CHECK(r.pred->label[i] == argmax(lg, e->n_choices), "mc row %lld: picked %d, independent argmax %d",
              (long long)i, r.pred->label[i], argmax(lg, e->n_choices));
        CHECK(r.probs_off[i + 1] - r.probs_off[i] == e->n_choices, "mc row %lld: %lld probabilities", (long long)i,
              (long long)(r.probs_off[i + 1] - r.probs_off[i]));
        for (int j = 0; j < e->n_choices; j++) sum += r.probs[r.probs_off[i] + j];
        CHECK(fabsf(sum - 1) < 1e-5f, "mc row %lld: probabilities sum to %g", (long long)i, sum);
        CHECK(r.confidence[i] == r.probs[r.probs_off[i] + r.pred->label[i]], "mc row %lld: confidence", (long long)i);
        /* the softmax of the independent logits */
        double z = 0;
        for (int j = 0; j < e->n_choices; j++) z += exp(lg[j] - lg[argmax(lg, e->n_choices)]);
        double p = 1 / z;
        CHECK(fabs(r.confidence[i] - p) < 1e-4, "mc row %lld: confidence %g, independent %g", (long long)i,
              r.confidence[i], p);
    }
out:
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(d);
}

/* Rotating the choices rotates the pick (the same text is chosen); four copies of one choice
 * tie: the first, at probability 1/4. */
static void test_mc_forced(const vlp_clip *m) {
    const char *c[4] = {"red circle", "blue square", "green triangle", "orange diamond"};
    char buf[4096];
    size_t o = 0;
    for (int k = 0; k < 4; k++)
        o += (size_t)snprintf(buf + o, sizeof buf - o,
                              "{\"image\": \"../images/item2.png\", \"question\": \"q\", \"choices\": [\"%s\", \"%s\", "
                              "\"%s\", \"%s\"], \"label\": 0}\n",
                              c[k % 4], c[(k + 1) % 4], c[(k + 2) % 4], c[(k + 3) % 4]);
    snprintf(buf + o, sizeof buf - o,
             "{\"image\": \"../images/item3.png\", \"question\": \"q\", \"choices\": [\"x y\", \"x y\", \"x y\", "
             "\"x y\"], \"label\": 2}\n");
    vlp_task_set *d = mem(buf, VLP_TASK_MC);
    CHECK(d && d->n == 5, "forced mc file read: %s", d ? "" : vlp_last_error());
    vlp_clip_task_result r;
    if (!d || vlp_clip_task_predict(m, d, NULL, NULL, &r)) {
        CHECK(0, "forced mc predict: %s", vlp_last_error());
        vlp_task_set_free(d);
        return;
    }
    const char *first = d->ex[0].choices[r.pred->label[0]];
    for (int k = 1; k < 4; k++)
        CHECK(!strcmp(d->ex[k].choices[r.pred->label[k]], first), "rotation %d picked '%s', not '%s'", k,
              d->ex[k].choices[r.pred->label[k]], first);
    CHECK(r.pred->label[4] == 0 && fabsf(r.confidence[4] - 0.25f) < 1e-6f, "identical choices: label %d p %g",
          r.pred->label[4], r.confidence[4]);
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(d);
}

static void test_ground(const vlp_clip *m) {
    vlp_task_set *d = vlp_task_read(TASKS "/ground2-style.jsonl", VLP_TASK_GROUND2, NULL);
    vlp_clip_task_result r;
    int rc = vlp_clip_task_predict(m, d, NULL, NULL, &r);
    CHECK(rc == 0, "ground predict: %s", vlp_last_error());
    if (rc) goto out;
    CHECK(r.pred->n == 2 && d->n == 2, "ground: %lld predictions", (long long)r.pred->n);
    for (int64_t i = 0; i < d->n; i++) {
        const vlp_task_example *e = &d->ex[i];
        /* the fixture's canvases hold the cell images exactly, so the cell files stand in for the crops */
        vlp_image canvas, cell;
        int same = vlp_image_load(e->image, NULL, &canvas) == 0;
        uint8_t *rgb = same ? malloc((size_t)canvas.width * canvas.height * 3) : NULL,
                *crgb = malloc(64 * 64 * 3);
        same = same && rgb && crgb && vlp_image_to_rgb(&canvas, 1, rgb) == 0 && canvas.width == 64 * e->grid;
        for (int k = 0; same && k < e->n_cells; k++) {
            same = vlp_image_load(e->cells[k], NULL, &cell) == 0 && cell.width == 64 && cell.height == 64 &&
                   vlp_image_to_rgb(&cell, 1, crgb) == 0;
            for (int y = 0; same && y < 64; y++)
                same = !memcmp(crgb + y * 64 * 3,
                               rgb + ((size_t)(64 * (k / e->grid) + y) * canvas.width + 64 * (k % e->grid)) * 3, 64 * 3);
            vlp_image_free(&cell);
        }
        CHECK(same, "ground row %lld: the canvas cells are the cell images", (long long)i);
        free(rgb);
        free(crgb);
        vlp_image_free(&canvas);
        /* independent: each cell file against the query */
        float lg[9];
        for (int k = 0; k < e->n_cells; k++) ref_logits(m, e->cells[k], (const char *const *)&e->text, 1, &lg[k]);
        CHECK(r.pred->label[i] == argmax(lg, e->n_cells), "ground row %lld: picked %d, independent %d", (long long)i,
              r.pred->label[i], argmax(lg, e->n_cells));
        double z = 0;
        for (int k = 0; k < e->n_cells; k++) z += exp(lg[k] - lg[argmax(lg, e->n_cells)]);
        CHECK(fabs(r.confidence[i] - 1 / z) < 1e-4, "ground row %lld: confidence %g, independent %g", (long long)i,
              r.confidence[i], 1 / z);
    }
out:
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(d);
}

static void test_vqa(const vlp_clip *m) {
    const char *train_s =
        "{\"image\": \"../images/item0.png\", \"question\": \"what category is this emoji?\", \"answer\": \"a shape\", \"type\": \"category\"}\n"
        "{\"image\": \"../images/item4.png\", \"question\": \"what category is this emoji?\", \"answer\": \"A Symbol \", \"type\": \"category\"}\n"
        "{\"image\": \"../images/item0.png\", \"question\": \"is this a shape?\", \"answer\": \"yes\", \"type\": \"yesno\"}\n"
        "{\"image\": \"../images/item0.png\", \"question\": \"is this a symbol?\", \"answer\": \"no\", \"type\": \"yesno\"}\n";
    const char *data_s =
        "{\"image\": \"../images/item1.png\", \"question\": \"what category is this emoji?\", \"answer\": \"a shape\", \"type\": \"category\"}\n"
        "{\"image\": \"../images/item5.png\", \"question\": \"is this a shape?\", \"answer\": \"yes\", \"type\": \"yesno\"}\n"
        "{\"image\": \"../images/item5.png\", \"question\": \"is this a symbol?\", \"answer\": \"no\", \"type\": \"yesno\"}\n"
        "{\"image\": \"../images/item5.png\", \"question\": \"what colour?\", \"answer\": \"teal\", \"type\": \"colour\"}\n";
    vlp_task_set *tr = mem(train_s, VLP_TASK_VQA), *d = mem(data_s, VLP_TASK_VQA);
    vlp_clip_task_result r;
    CHECK(vlp_clip_task_predict(m, d, NULL, NULL, &r) == VLP_ERR_ARG && strstr(vlp_last_error(), "train"),
          "vqa without train: an error naming it (%s)", vlp_last_error());
    int rc = vlp_clip_task_predict(m, d, tr, NULL, &r);
    CHECK(rc == 0, "vqa predict: %s", vlp_last_error());
    if (rc) goto out;
    CHECK(r.pred->n == 4, "vqa: %lld predictions", (long long)r.pred->n);
    const char *prompts[2] = {"an emoji of a shape", "an emoji of a symbol"}, *answers[2] = {"a shape", "a symbol"};
    float lg[2];
    ref_logits(m, d->ex[0].image, prompts, 2, lg);
    CHECK(!strcmp(r.pred->text[0], answers[argmax(lg, 2)]), "category: '%s', independent '%s'", r.pred->text[0],
          answers[argmax(lg, 2)]);
    /* the two yes/no questions of one image over the two phrases: exactly one "yes", the better phrase */
    const char *phrases[2] = {"a shape", "a symbol"};
    ref_logits(m, d->ex[1].image, phrases, 2, lg);
    int yes = argmax(lg, 2);
    CHECK(!strcmp(r.pred->text[1], yes == 0 ? "yes" : "no") && !strcmp(r.pred->text[2], yes == 1 ? "yes" : "no"),
          "yesno: '%s' '%s', best phrase %d", r.pred->text[1], r.pred->text[2], yes);
    CHECK(!strcmp(r.pred->text[3], ""), "a type with no train answers: empty answer, got '%s'", r.pred->text[3]);
    /* scoring through the shared scorer */
    vlp_task_metrics met;
    CHECK(vlp_task_score(d, r.pred, tr, &met) == 0 && met.n_types == 3, "vqa scored: %s", vlp_last_error());
    vlp_task_metrics_free(&met);
out:
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(tr);
    vlp_task_set_free(d);
}

/* The same image left and right forces the rule: "exactly one" false, "same kind" true. */
static void test_nlvr(const vlp_clip *m) {
    const char *s =
        "{\"left\": \"../images/item0.png\", \"right\": \"../images/item0.png\", \"statement\": \"exactly one image shows a shape.\", \"label\": false}\n"
        "{\"left\": \"../images/item4.png\", \"right\": \"../images/item4.png\", \"statement\": \"exactly one image shows a symbol.\", \"label\": false}\n"
        "{\"left\": \"../images/item1.png\", \"right\": \"../images/item1.png\", \"statement\": \"the two images show the same kind of thing.\", \"label\": true}\n"
        "{\"left\": \"../images/item0.png\", \"right\": \"../images/item4.png\", \"statement\": \"both images show a shape.\", \"label\": false}\n"
        "{\"left\": \"../images/item0.png\", \"right\": \"../images/item4.png\", \"statement\": \"the left one is bigger.\", \"label\": true}\n";
    vlp_task_set *d = mem(s, VLP_TASK_NLVR);
    vlp_clip_task_result r;
    int rc = vlp_clip_task_predict(m, d, NULL, NULL, &r);
    CHECK(rc == 0, "nlvr predict: %s", vlp_last_error());
    if (rc) goto out;
    CHECK(r.pred->n == 5 && r.pred->label[0] == 0 && r.pred->label[1] == 0 && r.pred->label[2] == 1,
          "forced nlvr: %d %d %d", r.pred->label[0], r.pred->label[1], r.pred->label[2]);
    const char *phrases[2] = {"a shape", "a symbol"};
    float l[2], rr[2];
    ref_logits(m, d->ex[3].image, phrases, 2, l);
    ref_logits(m, d->ex[3].image2, phrases, 2, rr);
    CHECK(r.pred->label[3] == (argmax(l, 2) == 0 && argmax(rr, 2) == 0), "both: %d", r.pred->label[3]);
    CHECK(r.pred->label[4] == 0 && r.n_unsupported == 1, "unsupported statement: label %d, %lld counted",
          r.pred->label[4], (long long)r.n_unsupported);
out:
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(d);
}

static void test_errors(const vlp_clip *m) {
    vlp_task_set *d = vlp_task_read(TASKS "/caption-style.jsonl", VLP_TASK_CAPTION, NULL);
    vlp_clip_task_result r;
    CHECK(vlp_clip_task_predict(m, d, NULL, NULL, &r) == VLP_ERR_ARG && strstr(vlp_last_error(), "generative"),
          "caption: not supported (%s)", vlp_last_error());
    vlp_task_set_free(d);
    d = mem("{\"image\": \"../images/nosuch.png\", \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n",
            VLP_TASK_MC);
    CHECK(vlp_clip_task_predict(m, d, NULL, NULL, &r) != 0 && strstr(vlp_last_error(), "nosuch"),
          "unreadable image: an error naming it (%s)", vlp_last_error());
    CHECK(r.pred == NULL, "no result after an error");
    vlp_task_set_free(d);
    d = mem("{\"image\": \"../images/item0.png\", \"grid\": 2, \"cells\": [\"a\", \"b\", \"c\", \"d\"], \"query\": \"q\", "
            "\"label\": 0}\n",
            VLP_TASK_GROUND2);
    /* item0 is 64x64: four 32x32 cells, still a valid (if odd) canvas */
    CHECK(vlp_clip_task_predict(m, d, NULL, NULL, &r) == 0 && r.pred->n == 1, "small canvas: %s", vlp_last_error());
    vlp_clip_task_result_free(&r);
    vlp_task_set_free(d);
}

/* Two separable clusters: the probe learns them; labels out of range are rejected. */
static void test_logreg(void) {
    enum { N = 60, D = 3, C = 3 };
    float x[N * D], w[C * (D + 1)];
    int y[N], p[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int e = 0; e < D; e++) x[i * D + e] = (e == y[i] ? 1.0f : 0.0f) + 0.1f * (float)((i * 7 + e * 3) % 5 - 2);
    }
    CHECK(vlp_logreg_train(x, y, N, D, C, 300, 1.0f, 1e-4f, w) == 0, "logreg: %s", vlp_last_error());
    vlp_logreg_predict(w, x, N, D, C, p);
    int right = 0;
    for (int i = 0; i < N; i++) right += p[i] == y[i];
    CHECK(right == N, "logreg: %d of %d right", right, N);
    y[5] = C;
    CHECK(vlp_logreg_train(x, y, N, D, C, 1, 1.0f, 0, w) == VLP_ERR_ARG && strstr(vlp_last_error(), "row 5"),
          "bad label: %s", vlp_last_error());
}

/* A VL model's ITC heads as the dual encoder (vlp_vl_task_predict): mc probabilities equal the
 * softmax of exp(logit_scale) x cosine of ITC features computed here, one (image, choice) pair at
 * a time in a graph of batch 1 (the runner batches by 64 and embeds each side alone); for ALBEF's
 * first-token ITC and CoCa's ITC token after the text. */
static void vl_ref_logits(const vlp_vl *m, vlp_tokenizer *tok, const char *image, const char *const *texts, int n,
                          float *logit) {
    const vlp_vl_config *c = &m->cfg;
    int S = c->image_size, T = c->max_text_len;
    vlp_graph *g = vlp_graph_new();
    int64_t sp[4] = {1, 3, S, S}, st[2] = {1, T};
    vlp_tensor *px = vlp_input(g, "px", VLP_F32, 4, sp), *ids = vlp_input(g, "ids", VLP_I32, 2, st),
               *mask = vlp_input(g, "mask", VLP_I32, 2, st), *fi = NULL, *ft = NULL;
    vlp_tensor *ienc = vlp_vl_encode_image(g, m, vlp_vl_embed_image(g, m, px, NULL, NULL));
    vlp_tensor *tenc = vlp_vl_encode_text(g, m, vlp_vl_embed_text(g, m, ids), mask);
    CHECK(vlp_vl_itc_features(g, m, ienc, tenc, &fi, &ft) == 0, "ITC features: %s", vlp_graph_error(g));
    vlp_keep(fi);
    CHECK(vlp_graph_build(g, ft, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_last_error());
    vlp_image img;
    vlp_preprocess_config pre = vlp_preprocess_clip(S);
    memcpy(pre.mean, c->mean, sizeof pre.mean);
    memcpy(pre.std, c->std, sizeof pre.std);
    CHECK(vlp_image_load(image, NULL, &img) == 0 && vlp_image_preprocess(&img, &pre, px->data) == 0, "image %s", image);
    vlp_image_free(&img);
    int E = c->embed_dim;
    float scale = expf(((float *)m->logit_scale->data)[0]);
    for (int j = 0; j < n; j++) {
        int32_t mk[64];
        vlp_tokenizer_encode_pair(tok, texts[j], NULL, T, ids->data, NULL, mk);
        if (mask->data) memcpy(mask->data, mk, sizeof(int32_t) * T);
        CHECK(vlp_graph_forward(g) == 0, "forward");
        const float *a = fi->data, *b = ft->data;
        double ab = 0, aa = 0, bb = 0;
        for (int e = 0; e < E; e++) ab += (double)a[e] * b[e], aa += (double)a[e] * a[e], bb += (double)b[e] * b[e];
        logit[j] = (float)(scale * ab / sqrt(aa * bb));
    }
    vlp_graph_free(g);
}

static void test_vl_itc(void) {
    vlp_tokenizer *tok = vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, NULL);
    vlp_task_set *d = vlp_task_read(TASKS "/mc-style.jsonl", VLP_TASK_MC, NULL);
    const char *presets[2] = {"albef-tiny", "blip-tiny"};
    for (int p = 0; p < 2 && tok && d; p++) {
        vlp_vl_config c;
        vlp_vl_preset(presets[p], &c);
        c.max_text_len = 16;
        if (p == 1) c.embed_dim = 16, c.w_itc = 1, c.fusion_layers = 1; /* CoCa: ITC token after 1 unimodal layer */
        vlp_vl_config_set_tokenizer(&c, tok, NULL);
        vlp_vl *m = vlp_vl_new(&c, 11);
        CHECK(m != NULL, "%s: %s", presets[p], vlp_last_error());
        if (!m) continue;
        CHECK(p == 0 || m->itc_tok, "%s: the CoCa ITC token", presets[p]);
        vlp_clip_task_result r;
        vlp_clip_task_options opt = {.batch = 3}; /* batches of 3 leave padded rows */
        int rc = vlp_vl_task_predict(m, tok, d, NULL, &opt, &r);
        CHECK(rc == 0 && r.pred->n == d->n, "%s: mc by ITC: %s", presets[p], vlp_last_error());
        double worst = 0;
        for (int64_t i = 0; !rc && i < d->n; i++) {
            const vlp_task_example *e = &d->ex[i];
            float lg[8];
            vl_ref_logits(m, tok, e->image, (const char *const *)e->choices, e->n_choices, lg);
            int best = argmax(lg, e->n_choices);
            double z = 0;
            for (int j = 0; j < e->n_choices; j++) z += exp(lg[j] - lg[best]);
            for (int j = 0; j < e->n_choices; j++)
                worst = fmax(worst, fabs(r.probs[r.probs_off[i] + j] - exp(lg[j] - lg[best]) / z));
            CHECK(r.pred->label[i] == best, "%s row %lld: picked %d, independent %d", presets[p], (long long)i,
                  r.pred->label[i], best);
        }
        CHECK(worst < 1e-5, "%s: probabilities within %.2g of the independent ones", presets[p], worst);
        vlp_clip_task_result_free(&r);
        vlp_vl_free(m);
    }
    /* a model without ITC heads: the error names the family */
    vlp_vl_config c;
    vlp_vl_preset("vilt-tiny", &c);
    vlp_vl_config_set_tokenizer(&c, tok, NULL);
    vlp_vl *m = vlp_vl_new(&c, 1);
    vlp_clip_task_result r;
    CHECK(m && vlp_vl_task_predict(m, tok, d, NULL, NULL, &r) != 0 && strstr(vlp_last_error(), "single_stream") &&
              strstr(vlp_last_error(), "ITC"),
          "no ITC heads: %s", vlp_last_error());
    vlp_vl_free(m);
    vlp_task_set_free(d);
    vlp_tokenizer_free(tok);
}

int main(void) {
    vlp_clip *m = vlp_clip_load(MODEL);
    CHECK(m != NULL, "load %s: %s", MODEL, vlp_last_error());
    if (m) {
        test_mc(m);
        test_mc_forced(m);
        test_ground(m);
        test_vqa(m);
        test_nlvr(m);
        test_errors(m);
    }
    test_logreg();
    test_vl_itc();
    vlp_clip_free(m);
    return test_finish();
}
