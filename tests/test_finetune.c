/* Fine-tuning (src/train/finetune.c): heads that do not fit the task or family are refused,
 * head shapes per family, gradients of the heads against finite differences, frozen parts
 * and unused heads stay put, layer-wise learning-rate decay equals AdamW at the scaled lr,
 * tiny synthetic VQA and multiple-choice tasks learned far above chance, save / load gives
 * the same predictions, an interrupted run resumes bit for bit, bad input is a clear error. */
#include "test.h"
#include "vlp_finetune.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static vlp_wordpiece *tok;
static const char *colours[4] = {"red", "green", "blue", "yellow"};
static const unsigned char rgb[4][3] = {{220, 30, 30}, {30, 200, 40}, {40, 40, 220}, {230, 220, 30}};

/* 24-bit BMP of colour c with per-pixel noise from seed (distinct files, same class). */
static void write_bmp(const char *path, int S, int c, unsigned seed) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    int row = (S * 3 + 3) & ~3, size = 54 + row * S;
    unsigned char h[54] = {'B', 'M'};
    h[2] = (unsigned char)size, h[3] = (unsigned char)(size >> 8), h[4] = (unsigned char)(size >> 16);
    h[10] = 54, h[14] = 40, h[18] = (unsigned char)S, h[22] = (unsigned char)S, h[26] = 1, h[28] = 24;
    fwrite(h, 1, 54, f);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < row; x++) {
            seed = seed * 1103515245u + 12345u;
            int k = x % 3, v = (x >= S * 3 ? 0 : rgb[c][2 - k]) + (int)((seed >> 16) % 41) - 20;
            fputc(v < 0 ? 0 : v > 255 ? 255 : v, f);
        }
    fclose(f);
}

/* A 2 x 2 canvas (2S x 2S): cell k filled with colour perm[k], noise from seed. */
static void write_canvas(const char *path, int S, const int perm[4], unsigned seed) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    int W = 2 * S, row = (W * 3 + 3) & ~3, size = 54 + row * W;
    unsigned char h[54] = {'B', 'M'};
    h[2] = (unsigned char)size, h[3] = (unsigned char)(size >> 8), h[4] = (unsigned char)(size >> 16);
    h[10] = 54, h[14] = 40, h[18] = (unsigned char)W, h[22] = (unsigned char)W, h[26] = 1, h[28] = 24;
    fwrite(h, 1, 54, f);
    for (int yb = 0; yb < W; yb++) { /* BMP rows run bottom-up */
        int y = W - 1 - yb;
        for (int x = 0; x < row; x++) {
            seed = seed * 1103515245u + 12345u;
            int px = x / 3, k = x % 3, cell = (y / S) * 2 + px / S;
            int v = (x >= W * 3 ? 0 : rgb[perm[cell]][2 - k]) + (int)((seed >> 16) % 41) - 20;
            fputc(v < 0 ? 0 : v > 255 ? 255 : v, f);
        }
    }
    fclose(f);
}

static void write_ground(int n, int first, const char *name) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    for (int k = 0; f && k < n; k++) {
        int i = first + k, perm[4] = {0, 1, 2, 3};
        unsigned x = (unsigned)i * 2246822519u + 7;
        for (int j = 3; j > 0; j--) { /* a permutation per canvas */
            x = x * 1103515245u + 12345u;
            int r = (int)((x >> 16) % (unsigned)(j + 1)), t = perm[j];
            perm[j] = perm[r];
            perm[r] = t;
        }
        snprintf(p, sizeof p, "%s/canvas_%d.bmp", tmpdir, i);
        write_canvas(p, 32, perm, (unsigned)i * 40503u);
        int want = i % 4, cell = 0;
        for (int j = 0; j < 4; j++)
            if (perm[j] == want) cell = j;
        fprintf(f, "{\"image\": \"canvas_%d.bmp\", \"grid\": 2, \"cells\": [\"a.bmp\", \"b.bmp\", \"c.bmp\", "
                   "\"d.bmp\"], \"query\": \"%s\", \"label\": %d}\n", i, colours[want], cell);
    }
    if (f) fclose(f);
}

/* A 64-token vocabulary whose special ids match the tiny presets ([PAD] 0, [CLS] 1, [SEP] 2, [MASK] 3). */
static vlp_wordpiece *tiny_vocab(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/vocab.txt", tmpdir);
    FILE *f = fopen(p, "w");
    if (!f) return NULL;
    const char *words[] = {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "what", "colour", "is", "this", "?", "red",
                           "green", "blue", "yellow", "same", "the", "both", "images", "are", "an", "emoji", "of", "."};
    int n = (int)(sizeof words / sizeof words[0]);
    for (int i = 0; i < n; i++) fprintf(f, "%s\n", words[i]);
    for (int i = n; i < 64; i++) fprintf(f, "w%d\n", i);
    fclose(f);
    return vlp_wordpiece_load(p);
}

static vlp_vl *tiny(const char *preset, uint64_t seed) {
    vlp_vl_config c;
    if (vlp_vl_preset(preset, &c)) return NULL;
    c.dropout = 0;
    return vlp_vl_new(&c, seed);
}

/* Task files: n examples of image i with colour i % 4 (images img_<i>.bmp, 32 px). */
static void write_tasks(int n, int first, const char *name_vqa, const char *name_mc, const char *name_nlvr) {
    char p[400];
    FILE *fv, *fm, *fn;
    snprintf(p, sizeof p, "%s/%s", tmpdir, name_vqa);
    fv = fopen(p, "w");
    snprintf(p, sizeof p, "%s/%s", tmpdir, name_mc);
    fm = fopen(p, "w");
    snprintf(p, sizeof p, "%s/%s", tmpdir, name_nlvr);
    fn = fopen(p, "w");
    for (int k = 0; k < n; k++) {
        int i = first + k, c = (i * 7 + i / 4) % 4;
        snprintf(p, sizeof p, "%s/img_%d.bmp", tmpdir, i);
        write_bmp(p, 32, c, (unsigned)i * 2654435761u);
        fprintf(fv, "{\"image\": \"img_%d.bmp\", \"question\": \"what colour is this?\", \"answer\": \"%s\", "
                    "\"type\": \"colour\"}\n", i, colours[c]);
        int t = i % 4;
        fprintf(fm, "{\"image\": \"img_%d.bmp\", \"question\": \"which?\", \"choices\": [", i);
        for (int j = 0; j < 4; j++) fprintf(fm, "%s\"an emoji of %s\"", j ? ", " : "", colours[(c + j - t + 4) % 4]);
        fprintf(fm, "], \"label\": %d}\n", t);
        int r = first + (k + 1 + k % 3) % n, cr = (r * 7 + r / 4) % 4;
        fprintf(fn, "{\"left\": \"img_%d.bmp\", \"right\": \"img_%d.bmp\", \"statement\": \"both images are the "
                    "same colour.\", \"label\": %s}\n", i, r, c == cr ? "true" : "false");
    }
    fclose(fv);
    fclose(fm);
    fclose(fn);
}

static vlp_task_set *read_set(const char *name, vlp_task_kind k) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    vlp_task_set *s = vlp_task_read(p, k, NULL);
    CHECK(s != NULL, "%s: %s", name, vlp_last_error());
    return s;
}

static vlp_ft_model *make(const char *preset, vlp_task_kind task, const vlp_task_set *train, int freeze) {
    int head, classes = 4;
    char **ans = NULL;
    vlp_vl *vl = tiny(preset, 3);
    if (vl && task == VLP_TASK_GROUND2) { /* the 2 x 2 canvas at twice the pre-trained size */
        vlp_vl *r = vlp_ft_resize_image(vl, 2 * vl->cfg.image_size);
        vlp_vl_free(vl);
        vl = r;
    }
    if (!vl || vlp_ft_pick_head(task, NULL, vl->cfg.family, &head)) {
        vlp_vl_free(vl);
        return NULL;
    }
    if (task == VLP_TASK_VQA && vlp_ft_answers(train, &ans, &classes)) {
        vlp_vl_free(vl);
        return NULL;
    }
    vlp_ft_model *m = vlp_ft_new(vl, task, head, classes, (const char *const *)ans, freeze, 11);
    for (int i = 0; ans && i < classes; i++) free(ans[i]);
    free(ans);
    return m;
}

static vlp_train_config train_cfg(int64_t steps, int batch, float lr) {
    vlp_train_config tc;
    vlp_train_config_default(&tc);
    tc.batch_size = batch;
    tc.steps = steps;
    tc.warmup = 2;
    tc.lr = lr;
    tc.weight_decay = 0.01f;
    tc.seed = 4;
    return tc;
}

/* ---- heads that do not fit ---------------------------------------------------------------- */

static void test_bad_heads(void) {
    int h = -1;
    CHECK(vlp_ft_pick_head(VLP_TASK_VQA, NULL, VLP_VL_DUAL, &h) == 0 && h == VLP_FT_HEAD_ANSWER_MLP, "vqa default");
    CHECK(vlp_ft_pick_head(VLP_TASK_MC, "itm", VLP_VL_SINGLE, &h) == 0 && h == VLP_FT_HEAD_ITM, "mc itm");
    CHECK(vlp_ft_pick_head(VLP_TASK_NLVR, NULL, VLP_VL_MOME, &h) == 0 && h == VLP_FT_HEAD_PAIR_MLP, "nlvr default");
    int rc = vlp_ft_pick_head(VLP_TASK_VQA, NULL, VLP_VL_CAPTION, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "captioning") && strstr(vlp_last_error(), "fusion"),
          "vqa head on a captioning model: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_VQA, "itm", VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "does not fit task vqa"), "itm head for vqa: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_MC, "softmax", VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "unknown head 'softmax'"), "unknown head: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_CAPTION, NULL, VLP_VL_CAPTION, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "caption"), "caption: %s", vlp_last_error());
    int bits = 0;
    CHECK(vlp_ft_freeze_parse("vision", &bits) == 0 && vlp_ft_freeze_parse("text", &bits) == 0 &&
              bits == (VLP_FT_FREEZE_VISION | VLP_FT_FREEZE_TEXT), "freeze parts");
    CHECK(vlp_ft_freeze_parse("decoder", &bits) < 0 && strstr(vlp_last_error(), "'decoder'"), "bad part: %s",
          vlp_last_error());
    /* vlp_ft_new on a captioning backbone refuses and frees it (ASan: no leak) */
    vlp_vl *cap = tiny("blip-tiny", 1);
    const char *ans[2] = {"a", "b"};
    CHECK(cap && !vlp_ft_new(cap, VLP_TASK_VQA, VLP_FT_HEAD_ANSWER_MLP, 2, ans, 0, 1) &&
              strstr(vlp_last_error(), "captioning"), "ft_new on blip: %s", vlp_last_error());
}

/* ---- shapes and gradients ----------------------------------------------------------------- */

static void test_shapes(vlp_task_set *vqa, vlp_task_set *mc, vlp_task_set *nlvr, vlp_task_set *gr) {
    const char *presets[3] = {"albef-tiny", "vilt-tiny", "vlmo-tiny"};
    vlp_task_set *sets[4] = {vqa, mc, nlvr, gr};
    vlp_task_kind kinds[4] = {VLP_TASK_VQA, VLP_TASK_MC, VLP_TASK_NLVR, VLP_TASK_GROUND2};
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 4; k++) {
            vlp_ft_model *m = make(presets[p], kinds[k], sets[k], 0);
            CHECK(m != NULL, "%s %s: %s", presets[p], vlp_task_name(kinds[k]), vlp_last_error());
            if (!m) continue;
            vlp_ft_data *d = vlp_ft_data_new(m, sets[k], tok);
            vlp_graph *g = vlp_graph_new();
            vlp_ft_graph fg;
            int rc = d ? vlp_ft_graph_declare(g, m, 3, 1, &fg) : -1;
            rc = rc ? rc : vlp_graph_build(g, fg.loss, VLP_BUILD_TRAIN);
            int64_t rows[3] = {0, 1, 2};
            rc = rc ? rc : vlp_ft_data_fill(m, d, rows, 3, &fg);
            rc = rc ? rc : vlp_graph_forward(g);
            CHECK(rc == 0, "%s %s graph: %s", presets[p], vlp_task_name(kinds[k]), vlp_last_error());
            int want_rows = kinds[k] == VLP_TASK_MC ? 12 : kinds[k] == VLP_TASK_NLVR ? 6 : 3;
            CHECK(!rc && fg.scores->ndim == 2 && fg.scores->shape[0] == 3 && fg.scores->shape[1] == m->classes &&
                      fg.rows == want_rows && fg.pixels->shape[0] == want_rows,
                  "%s %s: scores [%lld, %lld], %d rows", presets[p], vlp_task_name(kinds[k]),
                  (long long)fg.scores->shape[0], (long long)fg.scores->shape[1], fg.rows);
            float l = rc ? NAN : *(float *)fg.loss->data;
            /* a fresh head is near uniform: the loss is close to ln(classes) */
            CHECK(isfinite(l) && fabsf(l - logf((float)m->classes)) < 0.7f, "%s %s: initial loss %g, ln C %g",
                  presets[p], vlp_task_name(kinds[k]), l, logf((float)m->classes));
            vlp_graph_free(g);
            vlp_ft_data_free(d);
            vlp_ft_free(m);
        }
}

/* Analytic gradients of the fine-tuning loss against central differences, for head tensors and
 * backbone tensors the head reads (pooler, ITM head, a fusion layer). */
static void gradcheck(const char *preset, vlp_task_kind task, vlp_task_set *set, const char *const *names, int nn) {
    vlp_ft_model *m = make(preset, task, set, 0);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, set, tok) : NULL;
    vlp_graph *g = vlp_graph_new();
    vlp_ft_graph fg;
    int rc = d ? vlp_ft_graph_declare(g, m, 4, 1, &fg) : -1;
    rc = rc ? rc : vlp_graph_build(g, fg.loss, VLP_BUILD_TRAIN);
    int64_t rows[4] = {0, 1, 2, 3};
    rc = rc ? rc : vlp_ft_data_fill(m, d, rows, 4, &fg);
    CHECK(rc == 0, "gradcheck %s setup: %s", vlp_task_name(task), vlp_last_error());
    if (rc) goto out;
    /* scale the head so the check is not at a flat point */
    if (m->fc2_w) vlp_init_normal(m->fc2_w, 0, 0.3f, 5);
    vlp_params_zero_grad(m->params);
    vlp_graph_forward(g);
    vlp_graph_backward(g, NULL);
    int bad = 0, checked = 0;
    for (int k = 0; k < nn; k++) {
        vlp_tensor *t = vlp_params_find(m->params, names[k]);
        CHECK(t && t->grad, "%s: no trainable tensor %s", vlp_task_name(task), names[k]);
        if (!t || !t->grad) continue;
        for (int j = 0; j < 3; j++) {
            int64_t i = (j * 7919 + 13) % t->numel;
            float *w = t->data, w0 = w[i], eps = 2e-3f;
            w[i] = w0 + eps;
            vlp_graph_forward(g);
            double lp = *(float *)fg.loss->data;
            w[i] = w0 - eps;
            vlp_graph_forward(g);
            double lm = *(float *)fg.loss->data;
            w[i] = w0;
            double num = (lp - lm) / (2 * eps), ana = t->grad[i];
            checked++;
            if (fabs(num - ana) > 2e-2 * fmax(fabs(num), fabs(ana)) + 2e-4) {
                bad++;
                printf("  %s %s[%lld]: numeric %.6g analytic %.6g\n", vlp_task_name(task), names[k], (long long)i, num,
                       ana);
            }
        }
    }
    CHECK(!bad && checked == 3 * nn, "%s (%s): %d of %d gradient entries off", vlp_task_name(task), preset, bad, checked);
out:
    vlp_graph_free(g);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
}

/* ---- position embeddings at another size ------------------------------------------------------ */

static void test_pos_resize(void) {
    FILE *f = fopen(FIXTURE("finetune/pos_resize.txt"), "r");
    CHECK(f != NULL, "fixture finetune/pos_resize.txt missing");
    if (!f) return;
    int gin, gout, dim, cases = 0;
    while (fscanf(f, "%d %d %d", &gin, &gout, &dim) == 3) {
        float *in = malloc((size_t)gin * gin * dim * sizeof(float)), *want = malloc((size_t)gout * gout * dim * sizeof(float)),
              *got = malloc((size_t)gout * gout * dim * sizeof(float));
        int ok = 1;
        for (int i = 0; i < gin * gin * dim; i++) ok &= fscanf(f, "%f", &in[i]) == 1;
        for (int i = 0; i < gout * gout * dim; i++) ok &= fscanf(f, "%f", &want[i]) == 1;
        double worst = 0;
        ok &= vlp_pos_embed_resize(in, gin, gout, dim, got) == 0;
        for (int i = 0; ok && i < gout * gout * dim; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        CHECK(ok && worst < 2e-6, "bicubic %dx%d -> %dx%d (dim %d): worst difference from torch %g", gin, gin, gout, gout,
              dim, worst);
        cases++;
        free(in);
        free(want);
        free(got);
    }
    fclose(f);
    CHECK(cases == 5, "%d fixture cases, want 5", cases);
    /* a whole model: class-token row kept, a constant grid stays constant, other tensors copied */
    vlp_vl *m = tiny("vilt-tiny", 8);
    if (!m) return;
    int64_t pd = m->vis_pos->shape[1];
    float *pos = m->vis_pos->data;
    for (int64_t r = 1; r < m->vis_pos->shape[0]; r++)
        for (int64_t d = 0; d < pd; d++) pos[r * pd + d] = 0.01f * (float)d - 0.2f;
    vlp_vl *r = vlp_ft_resize_image(m, 64);
    CHECK(r && r->cfg.image_size == 64 && r->vis_pos->shape[0] == 65, "resize to 64: %s", vlp_last_error());
    if (r) {
        const float *q = r->vis_pos->data;
        int same_cls = !memcmp(q, pos, (size_t)pd * sizeof(float)), flat = 1;
        for (int64_t i = 1; i < 65; i++)
            for (int64_t d = 0; d < pd; d++) flat &= fabsf(q[i * pd + d] - (0.01f * (float)d - 0.2f)) < 1e-6f;
        CHECK(same_cls && flat, "resized position embeddings: class row %s, constant grid %s", same_cls ? "kept" : "changed",
              flat ? "kept" : "changed");
        vlp_tensor *a = vlp_params_find(m->params, "blocks.1.attn.qkv.weight"),
                   *b = vlp_params_find(r->params, "blocks.1.attn.qkv.weight");
        CHECK(a && b && !memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)), "other tensors copied");
    }
    CHECK(!vlp_ft_resize_image(m, 60) && strstr(vlp_last_error(), "patch size 8"), "size 60: %s", vlp_last_error());
    vlp_vl_free(r);
    vlp_vl_free(m);
}

/* ---- freezing and layer-wise decay --------------------------------------------------------- */

static int run_steps(vlp_ft_model *m, vlp_ft_data *d, int steps, float lr, float decay) {
    vlp_train_config tc = train_cfg(steps, 8, lr);
    tc.warmup = 0;
    vlp_trainer *t = vlp_trainer_new_ft(m, d, &tc, decay);
    vlp_batch_source src;
    int rc = t ? vlp_ft_batch_source(&src, d, 8, 4) : -1;
    for (int s = 0; !rc && s < steps; s++) rc = vlp_trainer_step(t, &src, NULL);
    if (t) vlp_ft_batch_source_free(&src);
    vlp_trainer_free(t);
    return rc;
}

static void test_freeze_decay(vlp_task_set *vqa) {
    vlp_ft_model *m = make("albef-tiny", VLP_TASK_VQA, vqa, VLP_FT_FREEZE_VISION);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, vqa, tok) : NULL;
    CHECK(d != NULL, "freeze setup: %s", vlp_last_error());
    if (!d) {
        vlp_ft_free(m);
        return;
    }
    int64_t n = vlp_params_numel(m->params);
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, vlp_params_data(m->params), (size_t)n * sizeof(float));
    CHECK(run_steps(m, d, 2, 1e-3f, 1.0f) == 0, "freeze steps: %s", vlp_last_error());
    int vis_moved = 0, unused_moved = 0, head_same = 1, text_same = 1;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        int same = !memcmp(t->data, before + t->off_data, (size_t)t->numel * sizeof(float));
        if (!strncmp(t->name, "vision.", 7)) vis_moved += !same;
        if (!strncmp(t->name, "lm_head.", 8) || !strncmp(t->name, "itm_head.", 9) || !strcmp(t->name, "logit_scale"))
            unused_moved += !same;
        if (!strncmp(t->name, "ft.", 3) && t->ndim == 2) head_same &= same;
        if (!strcmp(t->name, "text.encoder.layer.1.crossattention.self.query.weight")) text_same = same;
    }
    CHECK(vis_moved == 0, "freeze vision: %d vision tensors changed", vis_moved);
    CHECK(unused_moved == 0, "%d unused head tensors changed (weight decay on frozen parameters)", unused_moved);
    CHECK(!head_same && !text_same, "the head and the fusion layers must train");
    free(before);
    vlp_ft_data_free(d);
    vlp_ft_free(m);

    /* lr scales: albef-tiny has 2 ViT blocks and 2 text layers (1 with cross-attention) */
    m = make("albef-tiny", VLP_TASK_VQA, vqa, 0);
    if (!m) return;
    struct {
        const char *name;
        float want;
    } cases[] = {{"ft.fc1.weight", 1}, {"pooler.weight", 1}, {"text.encoder.layer.1.output.dense.weight", 0.5f},
                 {"text.encoder.layer.0.output.dense.weight", 0.25f}, {"text.embeddings.word_embeddings.weight", 0.125f},
                 {"vision.blocks.1.mlp.fc1.weight", 0.5f}, {"vision.pos_embed", 0.125f}, {"vision.ln.weight", 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int idx = -1;
        for (int i = 0; i < vlp_params_count(m->params); i++)
            if (!strcmp(vlp_params_get(m->params, i)->name, cases[c].name)) idx = i;
        float s = vlp_ft_lr_scale(m, idx, 0.5f);
        CHECK(idx >= 0 && fabsf(s - cases[c].want) < 1e-6f, "lr scale of %s: %g, want %g (index %d)", cases[c].name, s,
              cases[c].want, idx);
    }
    /* one step with decay 0.5 moves each tensor by its scale times the undecayed step's move */
    d = vlp_ft_data_new(m, vqa, tok);
    vlp_ft_model *m2 = make("albef-tiny", VLP_TASK_VQA, vqa, 0);
    vlp_ft_data *d2 = m2 ? vlp_ft_data_new(m2, vqa, tok) : NULL;
    n = vlp_params_numel(m->params);
    float *w0 = malloc((size_t)n * sizeof(float));
    memcpy(w0, vlp_params_data(m->params), (size_t)n * sizeof(float));
    int rc = d && d2 ? run_steps(m, d, 1, 1e-3f, 1.0f) : -1;
    rc = rc ? rc : run_steps(m2, d2, 1, 1e-3f, 0.5f);
    CHECK(rc == 0, "decay steps: %s", vlp_last_error());
    double worst = 0;
    int moved = 0;
    for (int i = 0; !rc && i < vlp_params_count(m->params); i++) {
        vlp_tensor *a = vlp_params_get(m->params, i), *b = vlp_params_get(m2->params, i);
        float s = vlp_ft_lr_scale(m, i, 0.5f);
        for (int64_t j = 0; j < a->numel; j++) {
            double da = (double)((float *)a->data)[j] - w0[a->off_data + j],
                   db = (double)((float *)b->data)[j] - w0[a->off_data + j];
            double e = fabs(db - s * da);
            if (e > worst) worst = e;
            moved += da != 0 && s < 1;
        }
    }
    CHECK(!rc && worst < 1e-6 && moved > 1000, "layer decay: worst deviation %g from s * step (%d moved)", worst, moved);
    free(w0);
    vlp_ft_data_free(d);
    vlp_ft_data_free(d2);
    vlp_ft_free(m);
    vlp_ft_free(m2);
}

/* ---- learning, save / load, resume ----------------------------------------------------------- */

static void test_learns(const char *preset, vlp_task_kind task, vlp_task_set *train, vlp_task_set *val, int steps,
                        double want) {
    vlp_ft_model *m = make(preset, task, train, 0);
    vlp_ft_data *dt = m ? vlp_ft_data_new(m, train, tok) : NULL, *dv = m ? vlp_ft_data_new(m, val, tok) : NULL;
    CHECK(dt && dv, "learn setup: %s", vlp_last_error());
    if (!dt || !dv) goto out;
    vlp_task_predictions *p0 = NULL, *p1 = NULL;
    vlp_ft_predict(m, dv, 16, &p0, NULL);
    double a0 = vlp_ft_accuracy(dv, p0);
    int rc = run_steps(m, dt, steps, 2e-3f, 1.0f);
    CHECK(rc == 0, "%s training: %s", vlp_task_name(task), vlp_last_error());
    float *probs = NULL;
    rc = vlp_ft_predict(m, dv, 16, &p1, &probs);
    double a1 = rc ? 0 : vlp_ft_accuracy(dv, p1);
    printf("fine-tune %-10s %-4s: held-out accuracy %.3f -> %.3f after %d steps (chance 0.25)\n", preset,
           vlp_task_name(task), a0, a1, steps);
    CHECK(a1 >= want, "%s %s: held-out accuracy %.3f after fine-tuning, want >= %.2f", preset, vlp_task_name(task), a1,
          want);
    /* save, load: the same predictions; the directory also loads as the plain backbone */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/ft-%s-%s", tmpdir, preset, vlp_task_name(task));
    CHECK(vlp_ft_save(m, dir) == 0, "save: %s", vlp_last_error());
    CHECK(vlp_ft_is_finetuned(dir), "%s: not recognised as fine-tuned", dir);
    vlp_ft_model *l = vlp_ft_load(dir);
    CHECK(l && l->task == task && l->classes == m->classes, "load: %s", vlp_last_error());
    vlp_ft_data *dl = l ? vlp_ft_data_new(l, val, tok) : NULL;
    vlp_task_predictions *p2 = NULL;
    float *probs2 = NULL;
    if (dl && !vlp_ft_predict(l, dl, 7, &p2, &probs2)) {
        CHECK(!memcmp(probs, probs2, (size_t)vlp_ft_data_size(dl) * (size_t)l->classes * sizeof(float)) ||
                  vlp_ft_accuracy(dv, p2) == a1,
              "loaded model predicts differently");
        double md = 0;
        for (int64_t i = 0; i < vlp_ft_data_size(dl) * l->classes; i++) md = fmax(md, fabs(probs[i] - probs2[i]));
        CHECK(md < 1e-5, "loaded model: probabilities differ by %g (batch 7 vs 16)", md);
    }
    vlp_vl *bb = vlp_vl_load(dir);
    CHECK(bb != NULL, "a fine-tuned directory as a plain backbone: %s", vlp_last_error());
    vlp_vl_free(bb);
    vlp_task_predictions_free(p2);
    free(probs2);
    vlp_ft_data_free(dl);
    vlp_ft_free(l);
    vlp_task_predictions_free(p0);
    vlp_task_predictions_free(p1);
    free(probs);
out:
    vlp_ft_data_free(dt);
    vlp_ft_data_free(dv);
    vlp_ft_free(m);
}

static int stop_at;
static int on_step_stop(void *ctx, const vlp_train_stats *st, double pps, double wait) {
    (void)ctx, (void)pps, (void)wait;
    return st->step == stop_at;
}

static int ft_run(vlp_task_kind task, vlp_task_set *train, const char *dir, int resume, int stop, float **out,
                  int64_t *n) {
    vlp_ft_model *m = make("albef-tiny", task, train, 0);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, train, tok) : NULL;
    if (!d) {
        vlp_ft_free(m);
        return -1;
    }
    vlp_train_config tc = train_cfg(7, 8, 1e-3f);
    vlp_trainer *t = vlp_trainer_new_ft(m, d, &tc, 0.8f);
    vlp_batch_source src;
    int rc = t ? vlp_ft_batch_source(&src, d, 8, 4) : -1;
    vlp_run_options o = {.run_dir = dir, .log_every = 1, .save_every = 2, .resume = resume, .save_final = 1};
    stop_at = stop;
    if (stop) o.on_step = on_step_stop;
    if (!rc) rc = vlp_train_run(t, &src, &o);
    if (out) {
        *n = vlp_params_numel(m->params);
        *out = malloc((size_t)*n * sizeof(float));
        memcpy(*out, vlp_params_data(m->params), (size_t)*n * sizeof(float));
    }
    if (t) vlp_ft_batch_source_free(&src);
    vlp_trainer_free(t);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
    return rc;
}

static void test_resume(vlp_task_set *nlvr, vlp_task_set *vqa) {
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/run-full", tmpdir);
    snprintf(b, sizeof b, "%s/run-split", tmpdir);
    float *pa = NULL, *pb = NULL;
    int64_t na = 0, nb = 0;
    CHECK(ft_run(VLP_TASK_NLVR, nlvr, a, 0, 0, &pa, &na) == 0, "uninterrupted: %s", vlp_last_error());
    CHECK(ft_run(VLP_TASK_NLVR, nlvr, b, 0, 3, NULL, NULL) == 0, "first part: %s", vlp_last_error());
    char ck[600] = "";
    vlp_train_latest_checkpoint(b, ck, sizeof ck);
    CHECK(strstr(ck, "step_00000003") != NULL, "the first part must stop at step 3 (latest: %s)", ck);
    CHECK(ft_run(VLP_TASK_NLVR, nlvr, b, 1, 0, &pb, &nb) == 0, "resumed: %s", vlp_last_error());
    CHECK(pa && pb && na == nb && !memcmp(pa, pb, (size_t)na * sizeof(float)),
          "nlvr fine-tuning: 7 steps = 3 + resume 4 must give bit-identical parameters");
    char md[500];
    snprintf(md, sizeof md, "%s/model", b);
    vlp_ft_model *fm = vlp_ft_load(md);
    CHECK(fm && pb && vlp_params_numel(fm->params) == nb &&
              !memcmp(vlp_params_data(fm->params), pb, (size_t)nb * sizeof(float)),
          "final fine-tuned model: %s", fm ? "parameters differ" : vlp_last_error());
    vlp_ft_free(fm);
    free(pa);
    free(pb);
    /* resuming the nlvr run as a vqa run is refused */
    int rc = ft_run(VLP_TASK_VQA, vqa, b, 1, 0, NULL, NULL);
    CHECK(rc < 0 && (strstr(vlp_last_error(), "ft/nlvr") || strstr(vlp_last_error(), "nlvr")),
          "resume with another task: %s", vlp_last_error());
}

/* ---- bad input --------------------------------------------------------------------------------- */

static void test_bad_input(vlp_task_set *mc, vlp_task_set *vqa) {
    char p[400];
    snprintf(p, sizeof p, "%s/no-such-checkpoint", tmpdir);
    CHECK(!vlp_ft_load(p) && strstr(vlp_last_error(), "no-such-checkpoint"), "missing checkpoint: %s",
          vlp_last_error());
    /* a plain pre-trained model is not a fine-tuned one */
    vlp_vl *vl = tiny("albef-tiny", 2);
    snprintf(p, sizeof p, "%s/pretrained", tmpdir);
    CHECK(vl && vlp_vl_save(vl, p) == 0, "save pretrained: %s", vlp_last_error());
    vlp_vl_free(vl);
    CHECK(!vlp_ft_is_finetuned(p) && !vlp_ft_load(p) && strstr(vlp_last_error(), "not a fine-tuned model"),
          "pretrained as fine-tuned: %s", vlp_last_error());
    vlp_ft_model *m = make("albef-tiny", VLP_TASK_MC, mc, 0);
    if (!m) return;
    /* a data file of another task */
    CHECK(!vlp_ft_data_new(m, vqa, tok) && strstr(vlp_last_error(), "fine-tuned for mc"), "vqa data for mc: %s",
          vlp_last_error());
    /* a row with 3 choices for a 4-choice model, named by file and line */
    const char *three = "{\"image\": \"img_0.bmp\", \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], "
                        "\"label\": 1}\n";
    vlp_task_set *s = vlp_task_read_mem(three, strlen(three), "three.jsonl", tmpdir, VLP_TASK_MC, NULL);
    CHECK(s && !vlp_ft_data_new(m, s, tok) && strstr(vlp_last_error(), "three.jsonl:1") &&
              strstr(vlp_last_error(), "3 choices"),
          "3 choices: %s", vlp_last_error());
    /* a label out of range (a set built by hand, past the reader's checks) */
    if (s) {
        s->ex[0].n_choices = 4;
        char **c4 = realloc(s->ex[0].choices, 4 * sizeof *c4);
        if (c4) {
            c4[3] = strdup("d");
            s->ex[0].choices = c4;
            s->ex[0].label = 9;
            CHECK(!vlp_ft_data_new(m, s, tok) && strstr(vlp_last_error(), "label 9 is outside 0..3"),
                  "label out of range: %s", vlp_last_error());
        }
    }
    vlp_task_set_free(s);
    /* an image that cannot be read */
    const char *gone = "{\"image\": \"missing.bmp\", \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], "
                       "\"label\": 1}\n";
    s = vlp_task_read_mem(gone, strlen(gone), "gone.jsonl", tmpdir, VLP_TASK_MC, NULL);
    CHECK(s && !vlp_ft_data_new(m, s, tok) && strstr(vlp_last_error(), "gone.jsonl:1") &&
              strstr(vlp_last_error(), "missing.bmp"),
          "unreadable image: %s", vlp_last_error());
    vlp_task_set_free(s);
    /* fewer labelled examples than a batch */
    vlp_ft_data *d = vlp_ft_data_new(m, mc, tok);
    vlp_batch_source src;
    CHECK(d && vlp_ft_batch_source(&src, d, 1000, 1) < 0 && strstr(vlp_last_error(), "fewer than one batch"),
          "batch too large: %s", vlp_last_error());
    vlp_train_config tc = train_cfg(3, 8, 1e-3f);
    CHECK(!vlp_trainer_new_ft(m, d, &tc, 1.5f) && strstr(vlp_last_error(), "lr_decay"), "lr_decay 1.5: %s",
          vlp_last_error());
    vlp_ft_data_free(d);
    vlp_ft_free(m);
}

int main(void) {
    vlp_set_threads(2);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_ft_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    tok = tiny_vocab();
    CHECK(tok != NULL, "vocabulary: %s", vlp_last_error());
    write_tasks(96, 0, "vqa-train.jsonl", "mc-train.jsonl", "nlvr-train.jsonl");
    write_tasks(32, 1000, "vqa-val.jsonl", "mc-val.jsonl", "nlvr-val.jsonl");
    write_ground(96, 0, "ground2-train.jsonl");
    write_ground(32, 1000, "ground2-val.jsonl");
    vlp_task_set *vqa = read_set("vqa-train.jsonl", VLP_TASK_VQA), *mc = read_set("mc-train.jsonl", VLP_TASK_MC),
                 *nlvr = read_set("nlvr-train.jsonl", VLP_TASK_NLVR), *vqa_v = read_set("vqa-val.jsonl", VLP_TASK_VQA),
                 *mc_v = read_set("mc-val.jsonl", VLP_TASK_MC), *gr = read_set("ground2-train.jsonl", VLP_TASK_GROUND2),
                 *gr_v = read_set("ground2-val.jsonl", VLP_TASK_GROUND2);
    test_pos_resize();
    if (tok && vqa && mc && nlvr && vqa_v && mc_v && gr && gr_v) {
        test_bad_heads();
        test_shapes(vqa, mc, nlvr, gr);
        const char *g_gr[] = {"ft.q.weight", "ft.k.weight", "ft.k.bias", "vision.pos_embed", "blocks.1.mlp.fc2.weight"};
        gradcheck("vilt-tiny", VLP_TASK_GROUND2, gr, g_gr, 5);
        const char *g_gr2[] = {"ft.q.weight", "ft.k.weight", "vision.blocks.0.attn.out.weight"};
        gradcheck("albef-tiny", VLP_TASK_GROUND2, gr, g_gr2, 3);
        const char *g_vqa[] = {"ft.fc2.weight", "ft.fc1.weight", "ft.ln.weight", "pooler.weight",
                               "text.encoder.layer.1.crossattention.self.query.weight"};
        gradcheck("albef-tiny", VLP_TASK_VQA, vqa, g_vqa, 5);
        const char *g_mc[] = {"itm_head.weight", "pooler.weight", "blocks.1.ffn_vl.fc1.weight"};
        gradcheck("vlmo-tiny", VLP_TASK_MC, mc, g_mc, 3);
        const char *g_nl[] = {"ft.fc2.weight", "ft.fc1.bias", "blocks.0.attn.qkv.weight"};
        gradcheck("vilt-tiny", VLP_TASK_NLVR, nlvr, g_nl, 3);
        test_freeze_decay(vqa);
        test_learns("albef-tiny", VLP_TASK_VQA, vqa, vqa_v, 40, 0.9);
        test_learns("albef-tiny", VLP_TASK_MC, mc, mc_v, 40, 0.75);
        test_learns("albef-tiny", VLP_TASK_GROUND2, gr, gr_v, 80, 0.75);
        test_resume(nlvr, vqa);
        test_bad_input(mc, vqa);
    }
    vlp_task_set_free(vqa);
    vlp_task_set_free(mc);
    vlp_task_set_free(nlvr);
    vlp_task_set_free(vqa_v);
    vlp_task_set_free(mc_v);
    vlp_task_set_free(gr);
    vlp_task_set_free(gr_v);
    vlp_wordpiece_free(tok);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("could not remove %s\n", tmpdir);
    return test_finish();
}
