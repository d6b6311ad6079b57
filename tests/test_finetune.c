/* Fine-tuning (src/train/finetune.c): heads that do not fit the task or family are refused,
 * head shapes per family, gradients of the heads against finite differences, frozen parts
 * and unused heads stay put, layer-wise learning-rate decay equals AdamW at the scaled lr,
 * tiny synthetic VQA and multiple-choice tasks learned far above chance, save / load gives
 * the same predictions, an interrupted run resumes bit for bit, bad input is a clear error;
 * --dump-batches writes the run's start and its probe's loss is the run's first loss. */
#include "test.h"
#include "test_util.h"
#include "vlp_finetune.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static vlp_tokenizer *tok;
static const char *colours[4] = {"red", "green", "blue", "yellow"};
static const unsigned char rgb[4][3] = {{220, 30, 30}, {30, 200, 40}, {40, 40, 220}, {230, 220, 30}};

/* 24-bit BMP of colour c (write_bmp) or a 2 x 2 canvas of colours perm (write_canvas), with
 * per-pixel noise from seed: distinct files, same classes. */
typedef struct {
    unsigned seed;
    int S, c;
    const int *perm;
} noisy;
static unsigned char noisy_px(void *ctx, int x, int y, int k) {
    noisy *n = ctx;
    n->seed = n->seed * 1103515245u + 12345u;
    int c = n->perm ? n->perm[((2 * n->S - 1 - y) / n->S) * 2 + x / n->S] : n->c; /* rows run bottom-up */
    int v = rgb[c][2 - k] + (int)((n->seed >> 16) % 41) - 20;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}
static void write_bmp(const char *path, int S, int c, unsigned seed) {
    noisy n = {seed, S, c, NULL};
    test_write_bmp(path, S, S, noisy_px, &n);
}

static void write_canvas(const char *path, int S, const int perm[4], unsigned seed) {
    noisy n = {seed, S, 0, perm};
    test_write_bmp(path, 2 * S, 2 * S, noisy_px, &n);
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
static vlp_tokenizer *tiny_vocab(void) {
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
    return vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, p);
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
    int rc = vlp_ft_pick_head(VLP_TASK_MC, NULL, VLP_VL_CAPTION, &h); /* vqa / caption: head lm (test_lm_head) */
    CHECK(rc < 0 && strstr(vlp_last_error(), "captioning") && strstr(vlp_last_error(), "fusion"),
          "mc head on a captioning model: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_VQA, "itm", VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "does not fit task vqa"), "itm head for vqa: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_MC, "softmax", VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "unknown head 'softmax'"), "unknown head: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_CAPTION, NULL, VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "caption"), "caption on a fusion model: %s", vlp_last_error());
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

/* Trains m (taken) on train for 7 steps (batch 8), stopping after step `stop` if non-zero;
 * out (optional) gets a copy of the final parameters. */
static int run_model(vlp_ft_model *m, vlp_task_set *train, const char *dir, int resume, int stop, float **out,
                     int64_t *n) {
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
    if (stop) o.on_step = test_stop_on_step, o.ctx = &stop;
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

static int ft_run(vlp_task_kind task, vlp_task_set *train, const char *dir, int resume, int stop, float **out,
                  int64_t *n) {
    return run_model(make("albef-tiny", task, train, 0), train, dir, resume, stop, out, n);
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

/* Images that cannot be decoded: a missing file (row 2) and a corrupt one two rows share (rows
 * 4, 5). vlp_ft_data_new_ex drops those rows from the set, counted and described as the reader's
 * bad rows; the kept rows predict as the same rows without them; strict (and vlp_ft_data_new,
 * which only reads the set) fail on the first, naming file:line. */
static void test_bad_images(vlp_ft_model *m) {
    char p[400];
    snprintf(p, sizeof p, "%s/corrupt.bmp", tmpdir);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("BM this is not a bitmap", f);
        fclose(f);
    }
#define MC_ROW(img, q) "{\"image\": \"" img "\", \"question\": \"" q "\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 1}\n"
    const char *bad = MC_ROW("img_0.bmp", "q") MC_ROW("missing.bmp", "q") MC_ROW("img_1.bmp", "q")
                          MC_ROW("corrupt.bmp", "q") MC_ROW("corrupt.bmp", "r"),
               *good = MC_ROW("img_0.bmp", "q") MC_ROW("img_1.bmp", "q");
#undef MC_ROW
    vlp_task_set *s = vlp_task_read_mem(bad, strlen(bad), "gone.jsonl", tmpdir, VLP_TASK_MC, NULL),
                 *g = vlp_task_read_mem(good, strlen(good), "good.jsonl", tmpdir, VLP_TASK_MC, NULL);
    if (!s || !g) {
        CHECK(0, "task sets: %s", vlp_last_error());
        vlp_task_set_free(s);
        vlp_task_set_free(g);
        return;
    }
    CHECK(!vlp_ft_data_new(m, s, tok) && strstr(vlp_last_error(), "gone.jsonl:2: image ") &&
              strstr(vlp_last_error(), "missing.bmp") && s->n == 5,
          "vlp_ft_data_new: an unreadable image is an error: %s", vlp_last_error());
    vlp_task_read_options strict = {.strict = 1};
    CHECK(!vlp_ft_data_new_ex(m, s, tok, &strict) && strstr(vlp_last_error(), "gone.jsonl:2: image ") &&
              strstr(vlp_last_error(), "missing.bmp") && s->n == 5 && s->n_bad == 0,
          "strict: the first bad row is the error, the set unchanged: %s", vlp_last_error());
    vlp_ft_data *d = vlp_ft_data_new_ex(m, s, tok, NULL), *dg = vlp_ft_data_new(m, g, tok);
    CHECK(d && vlp_ft_data_size(d) == 2 && s->n == 2 && s->n_rows == 5 && s->n_bad == 3 &&
              s->bad[VLP_TASK_BAD_IMAGE] == 3 && s->ex[0].line == 1 && s->ex[1].line == 3,
          "bad image rows dropped and counted (%s; %lld kept, %lld bad)", d ? "ok" : vlp_last_error(),
          (long long)s->n, (long long)s->n_bad);
    int lines_ok = s->n_bad == 3 && s->bad_rows && s->n_messages == 3;
    for (int i = 0; lines_ok && i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "gone.jsonl:%d: image ", (int[]){2, 4, 5}[i]);
        lines_ok = s->bad_rows[i].line == (int[]){2, 4, 5}[i] && s->bad_rows[i].row == (int[]){1, 3, 4}[i] &&
                   s->bad_rows[i].reason == VLP_TASK_BAD_IMAGE && strstr(s->bad_rows[i].message, want) &&
                   strstr(s->bad_rows[i].message, i ? "corrupt.bmp: " : "missing.bmp: cannot open");
    }
    CHECK(lines_ok, "each bad row described as FILE:LINE: image PATH: reason (%s)",
          s->n_messages ? s->messages[0] : "no messages");
    /* the kept rows keep their own pixels: the same scores as a file of just those rows */
    vlp_task_predictions *pa = NULL, *pb = NULL;
    float *qa = NULL, *qb = NULL;
    int ra = d ? vlp_ft_predict(m, d, 4, &pa, &qa) : -1, rb = dg ? vlp_ft_predict(m, dg, 4, &pb, &qb) : -1;
    CHECK(ra == 0 && rb == 0 && pa->n == 2 && pb->n == 2 && !memcmp(qa, qb, 2 * 4 * sizeof(float)),
          "kept rows predict as the clean file: %s", vlp_last_error());
    vlp_task_predictions_free(pa);
    vlp_task_predictions_free(pb);
    free(qa);
    free(qb);
    vlp_ft_data_free(d);
    vlp_ft_data_free(dg);
    vlp_task_set_free(s);
    vlp_task_set_free(g);
}

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
    test_bad_images(m);
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

/* ---- --dump-batches: the run's start for bench/torch_finetune_albef.py ------------------------- */

static double json_num(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    char buf[4096] = "", k[64];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *h = strstr(buf, k);
    return h ? strtod(h + strlen(k), NULL) : NAN;
}

/* The first "loss_last" of a run's metrics.jsonl (the loss of step 1, log_every 1). */
static double first_run_loss(const char *run) {
    char p[1000], line[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    double v = NAN;
    while (f && fgets(line, sizeof line, f)) {
        const char *h = strstr(line, "\"loss_last\":");
        if (h) {
            v = strtod(h + 12, NULL);
            break;
        }
    }
    if (f) fclose(f);
    return v;
}

static int exists(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, R_OK) == 0;
}

static void test_dump(vlp_task_set *vqa, vlp_task_set *nlvr, vlp_task_set *mc) {
    static const char *files[] = {"init/model.safetensors", "init/config.json", "train.json", "params.tsv",
                                  "batches/order.npy", "batches/rows.npy", "batches/images.npy",
                                  "batches/img_a.npy", "batches/ids.npy", "batches/mask.npy", "batches/labels.npy",
                                  "batches/lut.npy", "probe/losses.json", "probe/scores.npy",
                                  "probe/grads.safetensors"};
    const int nf = (int)(sizeof files / sizeof files[0]);
    vlp_task_set *sets[2] = {vqa, nlvr};
    vlp_task_kind kinds[2] = {VLP_TASK_VQA, VLP_TASK_NLVR};
    for (int k = 0; k < 2; k++) {
        /* library: dump, then the trainer's own first step from the same start */
        char dir[400], p[600];
        snprintf(dir, sizeof dir, "%s/dump-%s", tmpdir, vlp_task_name(kinds[k]));
        vlp_ft_model *m = make("albef-tiny", kinds[k], sets[k], 0);
        vlp_ft_data *d = m ? vlp_ft_data_new(m, sets[k], tok) : NULL;
        CHECK(d != NULL, "%s dump data: %s", vlp_task_name(kinds[k]), vlp_last_error());
        if (!d) {
            vlp_ft_free(m);
            continue;
        }
        vlp_train_config tc = train_cfg(5, 8, 1e-3f);
        int rc = vlp_ft_dump_batches(m, d, &tc, 1.0f, 3, dir);
        CHECK(rc == 0, "%s --dump-batches: %s", vlp_task_name(kinds[k]), vlp_last_error());
        for (int i = 0; !rc && i < nf; i++)
            CHECK(exists(dir, files[i]), "%s dump: %s/%s missing", vlp_task_name(kinds[k]), dir, files[i]);
        if (kinds[k] == VLP_TASK_NLVR) CHECK(exists(dir, "batches/img_b.npy"), "nlvr dump: img_b.npy missing");
        /* order.npy: [3, 8], its first row the batch source's first batch */
        vlp_batch_source src;
        vlp_dtype dt;
        int nd = 0;
        int64_t sh[8] = {0};
        void *ord = NULL;
        snprintf(p, sizeof p, "%s/batches/order.npy", dir);
        CHECK(vlp_npy_load(p, &dt, &nd, sh, &ord) == 0 && dt == VLP_I32 && nd == 2 && sh[0] == 3 && sh[1] == 8,
              "order.npy: %s", vlp_last_error());
        vlp_trainer *t = vlp_trainer_new_ft(m, d, &tc, 1.0f);
        int sr = t ? vlp_ft_batch_source(&src, d, 8, tc.seed) : -1;
        vlp_train_stats st;
        memset(&st, 0, sizeof st);
        CHECK(sr == 0 && vlp_trainer_step(t, &src, &st) == 0, "first step: %s", vlp_last_error());
        snprintf(p, sizeof p, "%s/probe/losses.json", dir);
        double probe = json_num(p, "loss");
        CHECK(isfinite(probe) && fabs(probe - st.loss) <= 1e-6 * fabs(probe),
              "%s: the run's step-0 loss %.9g must equal the probe's %.9g", vlp_task_name(kinds[k]), (double)st.loss,
              probe);
        if (!sr) { /* the source restarted: its first batch is order.npy's first row */
            vlp_ft_batch_source_free(&src);
            vlp_batch b;
            if (ord && vlp_ft_batch_source(&src, d, 8, tc.seed) == 0 && src.next(src.ctx, &b) == 0) {
                int same = 1;
                for (int i = 0; i < 8; i++) same &= ((int32_t *)ord)[i] == b.index[i];
                CHECK(same, "%s: order.npy's first row is not the run's first batch", vlp_task_name(kinds[k]));
                vlp_ft_batch_source_free(&src);
            }
        }
        free(ord);
        vlp_trainer_free(t);
        vlp_ft_data_free(d);
        vlp_ft_free(m);
    }
    /* the mc head is not dumped: a clear error */
    vlp_ft_model *m = make("albef-tiny", VLP_TASK_MC, mc, 0);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, mc, tok) : NULL;
    vlp_train_config tc = train_cfg(5, 8, 1e-3f);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/dump-mc", tmpdir);
    CHECK(d && vlp_ft_dump_batches(m, d, &tc, 1.0f, 2, dir) == VLP_ERR_ARG && strstr(vlp_last_error(), "itm"),
          "mc dump must be refused naming the head: %s", vlp_last_error());
    vlp_ft_data_free(d);
    vlp_ft_free(m);

    /* the CLI (BUILD/vlp, when the test runs from make test): the dump, a normal run's step-0 loss
     * equal to the probe's, and a bad N a usage error */
    const char *build = getenv("BUILD");
    char vlp[600], pre[500], cmd[4000], p[700];
    snprintf(vlp, sizeof vlp, "%s/vlp", build && *build ? build : "build");
    if (access(vlp, X_OK)) {
        printf("note: %s not built; the CLI part of the dump test is skipped\n", vlp);
        return;
    }
    snprintf(pre, sizeof pre, "%s/pre", tmpdir);
    vlp_vl *vl = tiny("albef-tiny", 3);
    CHECK(vl && vlp_vl_save(vl, pre) == 0, "pre-trained model: %s", vlp_last_error());
    vlp_vl_free(vl);
    snprintf(cmd, sizeof cmd, "cp %s/vocab.txt %s/vocab.txt", tmpdir, pre);
    CHECK(system(cmd) == 0, "%s", cmd);
    const char *common = "finetune --task vqa --steps 4 --warmup 1 --batch-size 8 --lr 0.001 --no-eval --save-every 0";
    snprintf(cmd, sizeof cmd, "%s --threads 2 %s --pretrained %s --train %s/vqa-train.jsonl --out %s/cli-dump "
             "--dump-batches 2 >/dev/null 2>&1", vlp, common, pre, tmpdir, tmpdir);
    int rc = system(cmd);
    CHECK(rc == 0, "vlp finetune --dump-batches 2: exit %d", rc);
    snprintf(p, sizeof p, "%s/cli-dump", tmpdir);
    for (int i = 0; i < nf; i++) CHECK(exists(p, files[i]), "CLI dump: %s/%s missing", p, files[i]);
    CHECK(exists(p, "init/vocab.txt"), "CLI dump: the vocabulary must travel with init/");
    CHECK(!exists(p, "metrics.jsonl"), "--dump-batches must not train");
    snprintf(cmd, sizeof cmd, "%s --threads 2 %s --pretrained %s --train %s/vqa-train.jsonl --out %s/cli-run "
             "--log-every 1 >/dev/null 2>&1", vlp, common, pre, tmpdir, tmpdir);
    rc = system(cmd);
    CHECK(rc == 0, "vlp finetune (normal run): exit %d", rc);
    snprintf(p, sizeof p, "%s/cli-run", tmpdir);
    double run0 = first_run_loss(p);
    snprintf(p, sizeof p, "%s/cli-dump/probe/losses.json", tmpdir);
    double probe = json_num(p, "loss");
    CHECK(isfinite(run0) && fabs(run0 - probe) <= 1e-6 * fabs(probe),
          "CLI: the normal run's step-0 loss %.9g must equal the probe's %.9g", run0, probe);
    static const char *bad[] = {"0", "-3", "two", "100001"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --pretrained %s --train %s/vqa-train.jsonl --out %s/cli-bad "
                 "--dump-batches %s 2>%s/bad.txt >/dev/null", vlp, common, pre, tmpdir, tmpdir, bad[i], tmpdir);
        rc = system(cmd);
        snprintf(p, sizeof p, "%s/bad.txt", tmpdir);
        FILE *f = fopen(p, "r");
        char msg[1000] = "";
        size_t n = f ? fread(msg, 1, sizeof msg - 1, f) : 0;
        if (f) fclose(f);
        msg[n] = 0;
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && strstr(msg, "--dump-batches"),
              "--dump-batches %s must be a usage error (exit 2) naming the flag: exit %d, '%s'", bad[i],
              WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, msg);
    }
    snprintf(p, sizeof p, "%s/cli-bad", tmpdir);
    CHECK(access(p, F_OK) != 0, "a usage error must not create the run directory");
}

/* ---- the lm head (captioning family): loss on the answer only, learning, resume, rank, generate ---- */

static vlp_ft_model *make_lm(vlp_task_kind task, uint64_t seed) {
    vlp_vl *vl = tiny("blip-tiny", seed);
    int head = -1;
    if (!vl || vlp_ft_pick_head(task, NULL, vl->cfg.family, &head)) {
        vlp_vl_free(vl);
        return NULL;
    }
    return vlp_ft_new(vl, task, head, 0, NULL, 0, 11);
}

/* lm-vqa.jsonl: type "two" with the answers red / green, type "other" with blue; lm-caption.jsonl:
 * captions "an emoji of C" (the images of write_tasks). */
static void write_lm_tasks(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/lm-vqa.jsonl", tmpdir);
    FILE *f = fopen(p, "w");
    snprintf(p, sizeof p, "%s/lm-caption.jsonl", tmpdir);
    FILE *g = fopen(p, "w");
    for (int i = 0; f && g && i < 24; i++) {
        int c = (i * 7 + i / 4) % 4;
        if (i % 6 == 5)
            fprintf(f, "{\"image\": \"img_%d.bmp\", \"question\": \"is this blue?\", \"answer\": \"blue\", \"type\": "
                       "\"other\"}\n", i);
        else
            fprintf(f, "{\"image\": \"img_%d.bmp\", \"question\": \"what colour is this?\", \"answer\": \"%s\", "
                       "\"type\": \"two\"}\n", i, colours[c % 2]);
        fprintf(g, "{\"image\": \"img_%d.bmp\", \"caption\": \"an emoji of %s\"}\n", i, colours[c]);
    }
    if (f) fclose(f);
    if (g) fclose(g);
}

/* The normalised pixels of example ex, as the lm graph's fill gives them. */
static int lm_pixels(vlp_ft_model *m, vlp_ft_data *d, int64_t ex, float *px) {
    vlp_graph *g = vlp_graph_new();
    vlp_ft_graph fg;
    int rc = vlp_ft_graph_declare(g, m, 1, 1, &fg);
    if (!rc) rc = vlp_graph_build(g, fg.loss, VLP_BUILD_TRAIN);
    if (!rc) rc = vlp_ft_data_fill(m, d, &ex, 1, &fg);
    if (!rc) memcpy(px, fg.pixels->data, (size_t)fg.pixels->numel * sizeof(float));
    vlp_graph_free(g);
    return rc;
}

/* One full forward of the decoder (no cache): pixels [3, S, S], seq [L] -> logits [L, V]. */
static int full_logits(vlp_ft_model *m, const float *px, const int32_t *seq, int L, float *out) {
    const vlp_vl_config *c = &m->vl->cfg;
    int T = c->max_text_len, S = c->image_size, V = c->vocab_size;
    int64_t sp[4] = {1, 3, S, S}, st[2] = {1, T};
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *p = vlp_input(g, "pixels", VLP_F32, 4, sp), *ids = vlp_input(g, "ids", VLP_I32, 2, st),
               *mask = vlp_input(g, "mask", VLP_I32, 2, st);
    vlp_tensor *img = vlp_vl_encode_image(g, m->vl, vlp_vl_embed_image(g, m->vl, p, NULL, NULL));
    vlp_tensor *lg = vlp_vl_caption_logits(g, m->vl, img, ids, mask);
    int rc = lg && !vlp_graph_error(g) ? vlp_graph_build(g, lg, VLP_BUILD_INFERENCE) : -1;
    if (!rc) {
        memcpy(p->data, px, (size_t)p->numel * sizeof(float));
        int32_t *I = ids->data, *M = mask->data;
        for (int t = 0; t < T; t++) I[t] = t < L ? seq[t] : c->pad_id, M[t] = t < L;
        rc = vlp_graph_forward(g);
    }
    if (!rc) memcpy(out, lg->data, (size_t)L * V * sizeof(float));
    vlp_graph_free(g);
    return rc;
}

static double log_softmax_at(const float *x, int V, int k) {
    double mx = x[0], s = 0;
    for (int i = 1; i < V; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++) s += exp(x[i] - mx);
    return x[k] - mx - log(s);
}

/* log p(text [SEP] | image, prefix of ex) from full forwards. */
/* log p(text [SEP] | image, prefix) by full forwards; first_only: the first token's term alone. */
static double ref_logp_n(vlp_ft_model *m, vlp_ft_data *d, int64_t ex, const char *text, int first_only);
static double ref_logp(vlp_ft_model *m, vlp_ft_data *d, int64_t ex, const char *text) {
    return ref_logp_n(m, d, ex, text, 0);
}
static double ref_logp_n(vlp_ft_model *m, vlp_ft_data *d, int64_t ex, const char *text, int first_only) {
    const vlp_vl_config *c = &m->vl->cfg;
    int T = c->max_text_len, V = c->vocab_size, P = 0, S = c->image_size;
    const int32_t *pre = vlp_ft_lm_prefix(d, ex, &P);
    int32_t seq[64], tmp[64];
    float *px = malloc((size_t)3 * S * S * sizeof(float)), *lg = malloc((size_t)T * V * sizeof(float));
    int n = vlp_tokenizer_encode_pair(tok, text, NULL, T, tmp, NULL, NULL) - 1; /* without [CLS] */
    double lp = NAN;
    if (pre && px && lg && n > 0 && P + n <= T && !lm_pixels(m, d, ex, px)) {
        memcpy(seq, pre, (size_t)P * sizeof(int32_t));
        memcpy(seq + P, tmp + 1, (size_t)n * sizeof(int32_t));
        if (!full_logits(m, px, seq, P + n, lg)) {
            lp = 0;
            for (int j = 0; j < (first_only ? 1 : n); j++) lp += log_softmax_at(lg + (size_t)(P - 1 + j) * V, V, seq[P + j]);
        }
    }
    free(px);
    free(lg);
    return lp;
}

static void test_lm_head(void) {
    int h = -1;
    CHECK(vlp_ft_pick_head(VLP_TASK_VQA, NULL, VLP_VL_CAPTION, &h) == 0 && h == VLP_FT_HEAD_LM, "vqa on captioning: lm");
    CHECK(vlp_ft_pick_head(VLP_TASK_CAPTION, "lm", VLP_VL_CAPTION, &h) == 0 && h == VLP_FT_HEAD_LM, "caption: lm");
    int rc = vlp_ft_pick_head(VLP_TASK_MC, NULL, VLP_VL_CAPTION, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "captioning"), "mc on a captioning model: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_VQA, "lm", VLP_VL_DUAL, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "captioning model"), "lm on a fusion model: %s", vlp_last_error());
    rc = vlp_ft_pick_head(VLP_TASK_VQA, "answer_mlp", VLP_VL_CAPTION, &h);
    CHECK(rc < 0 && strstr(vlp_last_error(), "fusion"), "answer_mlp on a captioning model: %s", vlp_last_error());
}

/* The vqa lm loss is the mean cross-entropy over the answer tokens (and the closing [SEP]) only. */
static void test_lm_loss(vlp_task_set *vqa) {
    vlp_ft_model *m = make_lm(VLP_TASK_VQA, 5);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, vqa, tok) : NULL;
    CHECK(d != NULL, "lm vqa data: %s", vlp_last_error());
    if (!d) {
        vlp_ft_free(m);
        return;
    }
    CHECK(m->head == VLP_FT_HEAD_LM && m->classes == m->vl->cfg.vocab_size && !m->answers &&
              vlp_ft_data_labelled(d) == vlp_ft_data_size(d), "lm model: head %d, %d classes", m->head, m->classes);
    const vlp_vl_config *c = &m->vl->cfg;
    int T = c->max_text_len, V = c->vocab_size, S = c->image_size;
    vlp_graph *g = vlp_graph_new();
    vlp_ft_graph fg;
    int64_t rows[3] = {0, 5, 9};
    int rc = vlp_ft_graph_declare(g, m, 4, 1, &fg);
    if (!rc) rc = vlp_graph_build(g, fg.loss, VLP_BUILD_TRAIN);
    if (!rc) rc = vlp_ft_data_fill(m, d, rows, 3, &fg); /* row 3 repeats row 2 without targets */
    if (!rc) rc = vlp_graph_forward(g);
    CHECK(rc == 0, "lm graph: %s", vlp_last_error());
    float *lg = malloc((size_t)T * V * sizeof(float));
    double ans = 0, all = 0;
    int na = 0, nall = 0, pad_ok = 1;
    for (int r = 0; !rc && r < 3; r++) {
        const int32_t *ids = (const int32_t *)fg.ids->data + (size_t)r * T, *lab = (const int32_t *)fg.labels->data + (size_t)r * T;
        int L = 0, s = -1;
        while (L < T && ((const int32_t *)fg.mask->data)[(size_t)r * T + L]) L++;
        for (int t = 1; t < L && s < 0; t++)
            if (ids[t] == c->sep_id) s = t;
        CHECK(s > 1 && s + 2 < L, "row %d: [CLS] question [SEP] answer [SEP] (sep at %d of %d)", r, s, L);
        rc = full_logits(m, (const float *)fg.pixels->data + (size_t)r * 3 * S * S, ids, L, lg);
        for (int t = 0; !rc && t + 1 < L; t++) {
            double nll = -log_softmax_at(lg + (size_t)t * V, V, ids[t + 1]);
            all += nll, nall++;
            if (t >= s) ans += nll, na++;
            CHECK(lab[t] == (t >= s ? ids[t + 1] : -100), "row %d position %d: target %d", r, t, lab[t]);
        }
    }
    for (int t = 0; !rc && t < T; t++) pad_ok &= ((const int32_t *)fg.labels->data)[3 * T + t] == -100;
    float loss = rc ? NAN : *(float *)fg.loss->data;
    printf("lm vqa loss %.6f: answer tokens only %.6f (%d tokens), every token %.6f (%d)\n", loss, ans / na, na,
           all / nall, nall);
    CHECK(!rc && fabs(loss - ans / na) < 1e-4 * fmax(1.0, ans / na), "lm vqa loss %g, hand-built over the answer %g",
          loss, ans / na);
    CHECK(!rc && fabs(loss - all / nall) > 1e-3, "the question tokens must not count (%g vs %g)", loss, all / nall);
    CHECK(pad_ok, "the padding row has no targets");
    free(lg);
    vlp_graph_free(g);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
}

/* A few steps reduce the loss; greedy answers then come from the answers seen. */
static void test_lm_learns(vlp_task_set *vqa, vlp_task_set *vqa_v) {
    vlp_ft_model *m = make_lm(VLP_TASK_VQA, 6);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, vqa, tok) : NULL, *dv = m ? vlp_ft_data_new(m, vqa_v, tok) : NULL;
    CHECK(d && dv, "lm learn setup: %s", vlp_last_error());
    vlp_train_config tc = train_cfg(40, 8, 5e-3f);
    vlp_trainer *t = d && dv ? vlp_trainer_new_ft(m, d, &tc, 1.0f) : NULL;
    vlp_batch_source src;
    int rc = t ? vlp_ft_batch_source(&src, d, 8, 4) : -1;
    double first = 0, last = 0;
    for (int s = 0; !rc && s < 40; s++) {
        vlp_train_stats st;
        rc = vlp_trainer_step(t, &src, &st);
        if (s < 3) first += st.loss / 3;
        if (s >= 37) last += st.loss / 3;
    }
    CHECK(rc == 0, "lm training: %s", vlp_last_error());
    vlp_task_predictions *p = NULL;
    rc = rc ? rc : vlp_ft_predict(m, dv, 8, &p, NULL);
    double acc = rc ? 0 : vlp_ft_accuracy(dv, p);
    printf("lm vqa: loss %.3f -> %.3f in 40 steps; greedy held-out accuracy %.3f\n", first, last, acc);
    CHECK(!rc && last < 0.5 * first, "lm loss %.3f -> %.3f: must fall by half", first, last);
    int known = 0;
    for (int64_t i = 0; p && i < p->n; i++)
        for (int k = 0; k < 4; k++) known += !strcmp(p->text[i], colours[k]);
    CHECK(p && known == p->n, "greedy answers after training: %d of %lld are colour words", known,
          p ? (long long)p->n : 0LL);
    vlp_task_predictions_free(p);
    if (t) vlp_ft_batch_source_free(&src);
    vlp_trainer_free(t);
    vlp_ft_data_free(d);
    vlp_ft_data_free(dv);
    vlp_ft_free(m);
}

static int lm_run(vlp_task_set *train, const char *dir, int resume, int stop, float **out, int64_t *n) {
    return run_model(make_lm(train->kind, 3), train, dir, resume, stop, out, n);
}

static void test_lm_resume(vlp_task_set *cap, vlp_task_set *vqa2) {
    char a[400], b[400], md[500];
    snprintf(a, sizeof a, "%s/lm-full", tmpdir);
    snprintf(b, sizeof b, "%s/lm-split", tmpdir);
    float *pa = NULL, *pb = NULL;
    int64_t na = 0, nb = 0;
    CHECK(lm_run(cap, a, 0, 0, &pa, &na) == 0, "lm uninterrupted: %s", vlp_last_error());
    CHECK(lm_run(cap, b, 0, 3, NULL, NULL) == 0, "lm first part: %s", vlp_last_error());
    CHECK(lm_run(cap, b, 1, 0, &pb, &nb) == 0, "lm resumed: %s", vlp_last_error());
    CHECK(pa && pb && na == nb && !memcmp(pa, pb, (size_t)na * sizeof(float)),
          "caption lm fine-tuning: 7 steps = 3 + resume 4 must give bit-identical parameters");
    snprintf(md, sizeof md, "%s/model", b);
    vlp_ft_model *fm = vlp_ft_load(md);
    CHECK(fm && fm->head == VLP_FT_HEAD_LM && fm->task == VLP_TASK_CAPTION && pb &&
              vlp_params_numel(fm->params) == nb && !memcmp(vlp_params_data(fm->params), pb, (size_t)nb * sizeof(float)),
          "final lm model: %s", fm ? "differs" : vlp_last_error());
    vlp_vl *bb = vlp_vl_load(md);
    CHECK(bb && bb->cfg.family == VLP_VL_CAPTION, "the fine-tuned captioner loads as a plain captioning model: %s",
          vlp_last_error());
    vlp_vl_free(bb);
    vlp_ft_free(fm);
    free(pa);
    free(pb);
    int rc = lm_run(vqa2, b, 1, 0, NULL, NULL); /* a caption run does not resume as vqa */
    CHECK(rc < 0 && strstr(vlp_last_error(), "caption"), "lm resume with another task: %s", vlp_last_error());
}

/* rank over a 2-answer list = comparing the two log-likelihoods of full forwards. */
static void test_lm_rank(vlp_task_set *vqa2) {
    vlp_ft_model *m = make_lm(VLP_TASK_VQA, 7);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, vqa2, tok) : NULL;
    vlp_task_predictions *p = NULL;
    float *conf = NULL;
    int rc = d ? vlp_ft_lm_rank(m, d, vqa2, 3, 0, &p, &conf) : -1;
    CHECK(rc == 0, "lm rank: %s", vlp_last_error());
    const char *two[2] = {"red", "green"};
    double maxd = 0;
    int agree = 0, n2 = 0;
    for (int64_t i = 0; !rc && i < 12; i++) {
        const vlp_task_example *e = &vqa2->ex[i];
        if (strcmp(e->type, "two")) {
            CHECK(!strcmp(p->text[i], "blue") && conf[i] == 1.0f, "row %lld: one candidate (blue), got '%s'",
                  (long long)i, p->text[i]);
            continue;
        }
        double r0 = ref_logp(m, d, i, two[0]), r1 = ref_logp(m, d, i, two[1]), lp[2] = {NAN, NAN};
        CHECK(vlp_ft_lm_score(m, d, i, two, 2, 1, lp) == 0, "lm score: %s", vlp_last_error());
        maxd = fmax(maxd, fmax(fabs(lp[0] - r0), fabs(lp[1] - r1)));
        const char *want = r1 > r0 ? two[1] : two[0];
        n2++;
        agree += !strcmp(p->text[i], want);
        CHECK(!strcmp(p->text[i], want), "row %lld: ranked '%s', full forwards prefer '%s' (%g vs %g)", (long long)i,
              p->text[i], want, r0, r1);
        double pw = 1.0 / (1.0 + exp(-fabs(r1 - r0)));
        CHECK(fabs(conf[i] - pw) < 1e-3, "row %lld: confidence %g, softmax of the pick %g", (long long)i, conf[i], pw);
    }
    printf("lm rank: %d of %d picks as the full forwards; cached vs full log-likelihood differ by at most %.2g\n",
           agree, n2, maxd);
    CHECK(n2 > 0 && maxd < 1e-3, "cached log-likelihoods differ from the full forward by %g", maxd);
    /* BLIP's shortlist: k >= the candidates changes nothing; k = 1 scores only the candidate whose
     * first token is the more likely (full forwards decide which), so it is the pick, with
     * confidence 1 */
    vlp_task_predictions *pk2 = NULL, *pk1 = NULL;
    float *ck2 = NULL, *ck1 = NULL;
    int rk = rc ? -1 : vlp_ft_lm_rank(m, d, vqa2, 3, 2, &pk2, &ck2);
    if (!rk) rk = vlp_ft_lm_rank(m, d, vqa2, 3, 1, &pk1, &ck1);
    CHECK(rk == 0, "lm rank with a shortlist: %s", vlp_last_error());
    int same2 = !rk, first_ok = !rk, n_diff = 0;
    for (int64_t i = 0; !rk && i < 12; i++) {
        same2 &= !strcmp(pk2->text[i], p->text[i]) && ck2[i] == conf[i];
        if (strcmp(vqa2->ex[i].type, "two")) continue;
        double f0 = ref_logp_n(m, d, i, two[0], 1), f1 = ref_logp_n(m, d, i, two[1], 1);
        const char *want = f1 > f0 ? two[1] : two[0];
        first_ok &= !strcmp(pk1->text[i], want) && ck1[i] == 1.0f;
        n_diff += strcmp(pk1->text[i], p->text[i]) != 0;
    }
    CHECK(same2, "rank-k 2 over 2 candidates = ranking them all");
    CHECK(first_ok, "rank-k 1 picks the candidate with the more likely first token (%d rows differ from the full "
          "ranking)", n_diff);
    vlp_task_predictions_free(pk2);
    vlp_task_predictions_free(pk1);
    free(ck2);
    free(ck1);
    vlp_task_predictions_free(p);
    free(conf);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
}

/* generate = the decoder's greedy search (full forwards); caption beam = vlp_vl_generate's. */
static void test_lm_generate(vlp_task_set *vqa2, vlp_task_set *cap) {
    vlp_ft_model *m = make_lm(VLP_TASK_VQA, 9);
    vlp_ft_data *d = m ? vlp_ft_data_new(m, vqa2, tok) : NULL;
    vlp_vl_gen_config gc;
    vlp_vl_gen_defaults(&gc);
    gc.max_len = 5;
    vlp_task_predictions *p = NULL, *p2 = NULL;
    int rc = d ? vlp_ft_lm_generate(m, d, &gc, 5, &p, NULL) : -1;
    CHECK(rc == 0, "lm generate: %s", vlp_last_error());
    if (!rc) rc = vlp_ft_lm_generate(m, d, &gc, 2, &p2, NULL);
    for (int64_t i = 0; !rc && i < p->n; i++)
        CHECK(!strcmp(p->text[i], p2->text[i]), "row %lld: batch 5 '%s', batch 2 '%s'", (long long)i, p->text[i],
              p2->text[i]);
    const vlp_vl_config *c = m ? &m->vl->cfg : NULL;
    int S = c ? c->image_size : 0, V = c ? c->vocab_size : 0, T = c ? c->max_text_len : 0;
    float *px = malloc((size_t)3 * S * S * sizeof(float) + 4), *lg = malloc((size_t)T * V * sizeof(float) + 4);
    char text[512];
    for (int64_t i = 0; !rc && i < 6; i++) {
        int P = 0, L;
        int32_t seq[64];
        const int32_t *pre = vlp_ft_lm_prefix(d, i, &P);
        memcpy(seq, pre, (size_t)P * sizeof(int32_t));
        rc = lm_pixels(m, d, i, px);
        for (L = P; !rc && L < P + gc.max_len && L < T;) {
            rc = full_logits(m, px, seq, L, lg);
            float *x = lg + (size_t)(L - 1) * V;
            if (L == P) x[c->eos_id] = -INFINITY; /* min_len 1 */
            int best = 0;
            for (int v = 1; v < V; v++)
                if (x[v] > x[best]) best = v;
            seq[L++] = best;
            if (best == c->eos_id) break;
        }
        vlp_tokenizer_decode(tok, seq + P, L - P, 1, text, sizeof text);
        CHECK(!rc && !strcmp(text, p->text[i]), "row %lld: generated '%s', greedy full forwards '%s'", (long long)i,
              p->text[i], text);
    }
    vlp_task_predictions_free(p);
    vlp_task_predictions_free(p2);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
    /* caption: beam 3 from [CLS] equals the captioner's own beam search */
    m = make_lm(VLP_TASK_CAPTION, 10);
    d = m ? vlp_ft_data_new(m, cap, tok) : NULL;
    gc.beam = 3;
    gc.max_len = 6;
    p = NULL;
    rc = d ? vlp_ft_lm_generate(m, d, &gc, 4, &p, NULL) : -1;
    CHECK(rc == 0, "lm caption beam: %s", vlp_last_error());
    int NI = m ? vlp_vl_image_tokens(m->vl) : 0, W = m ? m->vl->cfg.vision_width : 0;
    float *feat = malloc((size_t)NI * W * sizeof(float) + 4);
    for (int64_t i = 0; !rc && i < 4; i++) {
        int32_t out[16];
        int len = 0;
        rc = lm_pixels(m, d, i, px);
        if (!rc) rc = vlp_vl_image_features(m->vl, px, 1, feat);
        if (!rc) rc = vlp_vl_generate(m->vl, feat, 1, &gc, out, &len);
        if (len > 0 && out[len - 1] == m->vl->cfg.eos_id) len--;
        vlp_tokenizer_decode(tok, out, len, 1, text, sizeof text);
        CHECK(!rc && !strcmp(text, p->text[i]), "caption %lld: '%s', vlp_vl_generate '%s'", (long long)i, p->text[i],
              text);
    }
    free(feat);
    free(px);
    free(lg);
    vlp_task_predictions_free(p);
    vlp_ft_data_free(d);
    vlp_ft_free(m);
}

/* Generated answers take the train answers' spelling when their tokens are the same: the
 * decoder's "medium - light" is the train answer "medium-light"; an unseen answer stays. */
static void test_canonical_answers(void) {
    const char *train_rows =
        "{\"image\": \"a.png\", \"question\": \"what skin tone?\", \"answer\": \"medium-light\", \"type\": \"skintone\"}\n"
        "{\"image\": \"a.png\", \"question\": \"what category?\", \"answer\": \"people & body\", \"type\": \"category\"}\n"
        "{\"image\": \"a.png\", \"question\": \"what is it?\", \"answer\": \"keycap: *\", \"type\": \"identify\"}\n"
        "{\"image\": \"a.png\", \"question\": \"what is it?\", \"answer\": \"Face-Smiling\", \"type\": \"identify\"}\n";
    vlp_task_set *tr = vlp_task_read_mem(train_rows, strlen(train_rows), "train", ".", VLP_TASK_VQA, NULL);
    vlp_tokenizer *bert = vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, NULL);
    const char *gen[] = {"medium - light", "people & body", "keycap : *", "face - smiling", "medium", "dark - light"};
    const char *want[] = {"medium-light", "people & body", "keycap: *", "Face-Smiling", "medium", "dark - light"};
    int n = 6;
    vlp_task_predictions *p = calloc(1, sizeof *p);
    if (p) p->kind = VLP_TASK_VQA, p->n = n, p->text = calloc((size_t)n, sizeof *p->text);
    for (int i = 0; p && p->text && i < n; i++) p->text[i] = strdup(gen[i]);
    int changed = tr && bert && p && p->text ? vlp_ft_lm_canonical_answers(bert, tr, p) : -1;
    int same = changed >= 0;
    for (int i = 0; same && i < n; i++) same &= p->text[i] && !strcmp(p->text[i], want[i]);
    CHECK(changed == 3 && same, "canonical answers: %d changed (want 3): %s | %s | %s | %s | %s | %s", changed,
          p && p->text ? p->text[0] : "", p && p->text ? p->text[1] : "", p && p->text ? p->text[2] : "",
          p && p->text ? p->text[3] : "", p && p->text ? p->text[4] : "", p && p->text ? p->text[5] : "");
    CHECK(vlp_ft_lm_canonical_answers(NULL, tr, p) < 0, "NULL tokenizer refused");
    vlp_task_predictions_free(p);
    vlp_tokenizer_free(bert);
    vlp_task_set_free(tr);
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
    test_canonical_answers();
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
        test_dump(vqa, nlvr, mc);
        write_lm_tasks();
        vlp_task_set *lv = read_set("lm-vqa.jsonl", VLP_TASK_VQA), *lc = read_set("lm-caption.jsonl", VLP_TASK_CAPTION);
        if (lv && lc) {
            test_lm_head();
            test_lm_loss(vqa);
            test_lm_learns(vqa, vqa_v);
            test_lm_resume(lc, lv);
            test_lm_rank(lv);
            test_lm_generate(lv, lc);
        }
        vlp_task_set_free(lv);
        vlp_task_set_free(lc);
    }
    vlp_task_set_free(vqa);
    vlp_task_set_free(mc);
    vlp_task_set_free(nlvr);
    vlp_task_set_free(vqa_v);
    vlp_task_set_free(mc_v);
    vlp_task_set_free(gr);
    vlp_task_set_free(gr_v);
    vlp_tokenizer_free(tok);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("could not remove %s\n", tmpdir);
    return test_finish();
}
