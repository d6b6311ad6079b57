/* CLIP parity: tests/fixtures/clip/model-tiny loaded from the Hugging Face layout,
 * the OpenAI/open_clip layout and F16 weights must reproduce the reference
 * implementation's features, hidden states, pooled vectors and logits within the
 * fixture README's tolerances. Plus save/load round trip and bad checkpoints. */
#include "test.h"
#include "vlp_clip.h"
#include "vlp_safetensors.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_TINY FIXTURE("clip/model-tiny")

static void *load_npy(const char *name, int64_t *shape, int *nd, vlp_dtype *dt) {
    char path[512];
    snprintf(path, sizeof path, DIR_TINY "/%s", name);
    void *data = NULL;
    if (vlp_npy_load(path, dt, nd, shape, &data)) {
        CHECK(0, "%s", vlp_last_error());
        return NULL;
    }
    return data;
}

/* Per row: max |a - r| <= tol * ||r||. Returns the worst ratio max|a-r| / ||r||. */
static double row_err(const float *a, const float *r, int64_t rows, int64_t dim) {
    double worst = 0;
    for (int64_t i = 0; i < rows; i++) {
        double n2 = 0, md = 0;
        for (int64_t k = 0; k < dim; k++) {
            n2 += (double)r[i * dim + k] * r[i * dim + k];
            double d = fabs((double)a[i * dim + k] - r[i * dim + k]);
            md = d > md ? d : md;
        }
        double e = md / (sqrt(n2) > 0 ? sqrt(n2) : 1);
        worst = e > worst ? e : worst;
    }
    return worst;
}

typedef struct {
    float *img, *txt; /* features */
    float logits_i[7 * 8];
} outputs;

static int run_model(vlp_clip *m, const char *tag, int check_states, const char *img_ref, const char *txt_ref,
                     outputs *o) {
    int64_t ps[4], ts[4];
    int pnd, tnd;
    vlp_dtype pdt, tdt;
    float *pixels = load_npy("pixels.npy", ps, &pnd, &pdt);
    int32_t *tokens = load_npy("tokens.npy", ts, &tnd, &tdt);
    if (!pixels || !tokens) return -1;
    CHECK(pdt == VLP_F32 && tdt == VLP_I32 && ps[0] == 7 && ts[0] == 8 && ts[1] == 77, "%s: fixture inputs", tag);
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *px = vlp_input(g, "pixels", VLP_F32, 4, ps);
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, ts);
    vlp_clip_states si, stt;
    vlp_tensor *fi = vlp_keep(vlp_clip_encode_image(g, m, px, check_states ? &si : NULL));
    vlp_tensor *ft = vlp_keep(vlp_clip_encode_text(g, m, ids, check_states ? &stt : NULL));
    /* one graph, two outputs: build on the text features, the image ones are kept */
    int rc = vlp_graph_build(g, ft, VLP_BUILD_INFERENCE);
    CHECK(rc == 0, "%s: build: %s", tag, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    if (rc) return -1;
    memcpy(px->data, pixels, sizeof(float) * 7 * 3 * 64 * 64);
    memcpy(ids->data, tokens, sizeof(int32_t) * 8 * 77);
    rc = vlp_graph_forward(g);
    CHECK(rc == 0, "%s: forward: %s", tag, vlp_last_error());
    int64_t s[4];
    int nd;
    vlp_dtype dt;
    float *ri = load_npy(img_ref, s, &nd, &dt), *rt = load_npy(txt_ref, s, &nd, &dt);
    double ei = row_err(fi->data, ri, 7, 32), et = row_err(ft->data, rt, 8, 32);
    CHECK(ei <= 1e-4, "%s: image features err %.3g > 1e-4 x norm", tag, ei);
    CHECK(et <= 1e-4, "%s: text features err %.3g > 1e-4 x norm", tag, et);
    printf("%-18s image features %.2e, text features %.2e (x row norm)\n", tag, ei, et);
    o->img = malloc(sizeof(float) * 7 * 32);
    o->txt = malloc(sizeof(float) * 8 * 32);
    memcpy(o->img, fi->data, sizeof(float) * 7 * 32);
    memcpy(o->txt, ft->data, sizeof(float) * 8 * 32);
    vlp_clip_logits(m, o->img, 7, o->txt, 8, o->logits_i);
    if (check_states) {
        float *hi = load_npy("image_hidden_states.npy", s, &nd, &dt); /* [3,7,17,128] */
        float *ht = load_npy("text_hidden_states.npy", s, &nd, &dt);  /* [3,8,77,64] */
        float *pi = load_npy("image_pooled.npy", s, &nd, &dt), *pt = load_npy("text_pooled.npy", s, &nd, &dt);
        double worst = 0;
        for (int l = 0; l < 3; l++) {
            double e1 = row_err(si.hidden[l]->data, hi + (int64_t)l * 7 * 17 * 128, 7 * 17, 128);
            double e2 = row_err(stt.hidden[l]->data, ht + (int64_t)l * 8 * 77 * 64, 8 * 77, 64);
            CHECK(e1 <= 1e-4, "%s: image hidden state %d err %.3g", tag, l, e1);
            CHECK(e2 <= 1e-4, "%s: text hidden state %d err %.3g", tag, l, e2);
            worst = fmax(worst, fmax(e1, e2));
        }
        double e3 = row_err(si.pooled->data, pi, 7, 128), e4 = row_err(stt.pooled->data, pt, 8, 64);
        CHECK(e3 <= 1e-4 && e4 <= 1e-4, "%s: pooled err %.3g / %.3g", tag, e3, e4);
        printf("%-18s hidden states %.2e, pooled %.2e / %.2e\n", tag, worst, e3, e4);
        float *li = load_npy("logits_per_image.npy", s, &nd, &dt), *lt = load_npy("logits_per_text.npy", s, &nd, &dt);
        double scale = exp(*(float *)m->logit_scale->data), ml = 0;
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 8; j++) {
                ml = fmax(ml, fabs(o->logits_i[i * 8 + j] - li[i * 8 + j]));
                ml = fmax(ml, fabs(o->logits_i[i * 8 + j] - lt[j * 7 + i])); /* logits_per_text = transpose */
            }
        CHECK(ml <= 1e-4 * scale, "%s: logits max diff %.3g > 1e-4 x %.1f", tag, ml, scale);
        printf("%-18s logits max diff %.2e (scale %.1f)\n", tag, ml, scale);
        free(hi), free(ht), free(pi), free(pt), free(li), free(lt);
    }
    free(ri), free(rt), free(pixels), free(tokens);
    vlp_graph_free(g);
    return 0;
}

static void test_layouts(void) {
    outputs hf = {0}, oa = {0}, f16 = {0}, rt = {0};
    vlp_clip *m = vlp_clip_load(DIR_TINY);
    CHECK(m != NULL, "load HF dir: %s", vlp_last_error());
    if (!m) return;
    CHECK(!strcmp(m->source, "hf") && m->cfg.text_heads == 2 && m->cfg.vision_heads == 2 &&
              m->cfg.vision_act == VLP_ACT_QUICK_GELU,
          "HF config: source %s heads %d/%d", m->source, m->cfg.vision_heads, m->cfg.text_heads);
    run_model(m, "hf", 1, "image_features.npy", "text_features.npy", &hf);

    /* save in the HF layout and load it back: identical outputs */
    char dir[] = "/tmp/vlp_clip_saveXXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(vlp_clip_save(m, dir) == 0, "save: %s", vlp_last_error());
    vlp_clip *m2 = vlp_clip_load(dir);
    CHECK(m2 != NULL, "reload: %s", vlp_last_error());
    if (m2) {
        run_model(m2, "saved+reloaded", 0, "image_features.npy", "text_features.npy", &rt);
        CHECK(rt.img && !memcmp(rt.img, hf.img, sizeof(float) * 7 * 32) && !memcmp(rt.txt, hf.txt, sizeof(float) * 8 * 32),
              "saved model gives different features");
        vlp_clip_free(m2);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
    vlp_clip_free(m);

    m = vlp_clip_load(DIR_TINY "/open_clip_model.safetensors");
    CHECK(m != NULL, "load open_clip file: %s", vlp_last_error());
    if (m) {
        CHECK(!strcmp(m->source, "openai") && m->cfg.text_heads == 2, "open_clip config: heads %d", m->cfg.text_heads);
        run_model(m, "open_clip", 1, "image_features.npy", "text_features.npy", &oa);
        vlp_clip_free(m);
    }
    m = vlp_clip_load(DIR_TINY "/model-f16.safetensors");
    CHECK(m != NULL, "load F16 file: %s", vlp_last_error());
    if (m) {
        run_model(m, "hf-f16", 0, "image_features-f16.npy", "text_features-f16.npy", &f16);
        vlp_clip_free(m);
    }
    free(hf.img), free(hf.txt), free(oa.img), free(oa.txt), free(f16.img), free(f16.txt), free(rt.img), free(rt.txt);
}

/* An OpenAI state dict with no config beside it: shapes give the config and heads =
 * width / 64, which for this model's text tower (2 heads of 32) is wrong, as the
 * fixture README warns: it loads, and the text features differ. */
static void test_inferred_config(void) {
    char dir[] = "/tmp/vlp_clip_inferXXXXXX", path[600];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    char *target = realpath(DIR_TINY "/open_clip_model.safetensors", NULL);
    CHECK(target && symlink(target, path) == 0, "symlink");
    free(target);
    vlp_clip *m = vlp_clip_load(path);
    CHECK(m != NULL, "inferred load: %s", vlp_last_error());
    if (m) {
        CHECK(m->cfg.vision_width == 128 && m->cfg.vision_heads == 2 && m->cfg.text_heads == 1 &&
                  m->cfg.image_size == 64 && m->cfg.patch_size == 16 && m->cfg.embed_dim == 32 &&
                  m->cfg.vision_layers == 2 && m->cfg.text_layers == 2 && m->cfg.context_length == 77,
              "inferred config: width %d heads %d/%d image %d patch %d", m->cfg.vision_width, m->cfg.vision_heads,
              m->cfg.text_heads, m->cfg.image_size, m->cfg.patch_size);
        vlp_clip_free(m);
    }
    unlink(path);
    rmdir(dir);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_bad_checkpoints(void) {
    CHECK(vlp_clip_load("/nonexistent/model") == NULL && strstr(vlp_last_error(), "/nonexistent/model"),
          "missing path: %s", vlp_last_error());
    char dir[] = "/tmp/vlp_clip_badXXXXXX", p[600], q[600];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "no model.safetensors"), "empty dir: %s",
          vlp_last_error());
    /* HF weights with a config of another size: the error names the tensor and both shapes */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    char *target = realpath(DIR_TINY "/model.safetensors", NULL);
    CHECK(target && symlink(target, p) == 0, "symlink");
    free(target);
    snprintf(q, sizeof q, "%s/config.json", dir);
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "config.json"), "missing config: %s", vlp_last_error());
    write_text(q, "{\"projection_dim\": 32, \"text_config\": {\"hidden_size\": 64, \"intermediate_size\": 256, "
                  "\"num_attention_heads\": 2, \"num_hidden_layers\": 2}, \"vision_config\": {\"hidden_size\": 128, "
                  "\"intermediate_size\": 512, \"num_attention_heads\": 2, \"num_hidden_layers\": 2, "
                  "\"patch_size\": 8, \"image_size\": 64}}");
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "patch_embedding") &&
              strstr(vlp_last_error(), "[128, 3, 16, 16]") && strstr(vlp_last_error(), "[128, 3, 8, 8]"),
          "wrong shape: %s", vlp_last_error());
    write_text(q, "{\"projection_dim\": 32, \"text_config\": {\"hidden_size\": 64, \"intermediate_size\": 256, "
                  "\"num_attention_heads\": 2, \"num_hidden_layers\": 2, \"hidden_act\": \"swish\"}, "
                  "\"vision_config\": {\"hidden_size\": 128, \"intermediate_size\": 512, \"num_attention_heads\": 2, "
                  "\"num_hidden_layers\": 2, \"patch_size\": 16, \"image_size\": 64}}");
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "swish"), "bad act: %s", vlp_last_error());
    write_text(q, "{\"projection_dim\": 32, \"text_config\": {\"hidden_size\": 64}, \"vision_config\": {}}");
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "intermediate_size"), "missing field: %s",
          vlp_last_error());
    write_text(q, "{not json");
    CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "config.json"), "bad json: %s", vlp_last_error());
    unlink(q);
    unlink(p);
    /* a checkpoint missing a tensor: the error names it */
    vlp_clip_config cfg;
    vlp_clip_preset("tiny", &cfg);
    vlp_clip *m = vlp_clip_new(&cfg, 1);
    CHECK(m && vlp_clip_save(m, dir) == 0, "save: %s", vlp_last_error());
    vlp_safetensors *st = vlp_st_open(p);
    CHECK(st != NULL, "open saved: %s", vlp_last_error());
    if (st) {
        int n = vlp_st_count(st), k = 0;
        vlp_st_entry *e = calloc((size_t)n, sizeof *e);
        float **bufs = calloc((size_t)n, sizeof *bufs);
        for (int i = 0; i < n; i++) {
            if (!strcmp(vlp_st_name(st, i), "text_model.final_layer_norm.bias")) continue;
            vlp_st_dtype dt;
            e[k].name = vlp_st_name(st, i);
            vlp_st_info(st, i, &dt, &e[k].ndim, e[k].shape);
            int64_t numel = vlp_st_numel(st, i);
            bufs[k] = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
            vlp_st_read_f32(st, i, bufs[k], numel);
            e[k].data = bufs[k];
            e[k].store_as = VLP_ST_F32;
            k++;
        }
        snprintf(q, sizeof q, "%s/model.safetensors.new", dir);
        CHECK(vlp_st_save(q, e, k, NULL) == 0, "resave: %s", vlp_last_error());
        vlp_st_close(st);
        rename(q, p);
        CHECK(vlp_clip_load(dir) == NULL && strstr(vlp_last_error(), "text_model.final_layer_norm.bias"),
              "missing tensor: %s", vlp_last_error());
        for (int i = 0; i < k; i++) free(bufs[i]);
        free(bufs);
        free(e);
    }
    vlp_clip_free(m);
    unlink(p);
    snprintf(q, sizeof q, "%s/config.json", dir);
    unlink(q);
    rmdir(dir);
}

static void test_graph_errors(void) {
    vlp_clip_config cfg;
    CHECK(vlp_clip_preset("nope", &cfg) == VLP_ERR_ARG && strstr(vlp_last_error(), "nope"), "unknown preset");
    vlp_clip_preset("tiny", &cfg);
    vlp_clip *m = vlp_clip_new(&cfg, 3);
    vlp_graph *g = vlp_graph_new();
    int64_t bad[4] = {2, 3, 32, 32};
    vlp_tensor *px = vlp_input(g, "px", VLP_F32, 4, bad);
    CHECK(vlp_clip_encode_image(g, m, px, NULL) == NULL && strstr(vlp_graph_error(g), "[2, 3, 32, 32]") &&
              strstr(vlp_graph_error(g), "64"),
          "wrong image size: %s", vlp_graph_error(g) ? vlp_graph_error(g) : "");
    vlp_graph_free(g);
    cfg.image_size = 60;
    CHECK(vlp_clip_new(&cfg, 1) == NULL && strstr(vlp_last_error(), "patch_size"), "bad config: %s", vlp_last_error());
    vlp_clip_free(m);
}

/* vlp_find_first: the first position of a value per row; a row without it gives T - 1. */
static void test_find_first(void) {
    vlp_graph *g = vlp_graph_new();
    int64_t sh[2] = {3, 5};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, sh), *at = vlp_find_first(g, ids, 7);
    CHECK(at && vlp_graph_build(g, at, VLP_BUILD_INFERENCE) == 0, "find_first build: %s", vlp_last_error());
    const int32_t in[15] = {1, 7, 9, 7, 0, 7, 2, 3, 4, 5, 9, 9, 9, 9, 9};
    memcpy(ids->data, in, sizeof in);
    CHECK(vlp_graph_forward(g) == 0, "find_first forward");
    const int32_t *o = at->data;
    CHECK(o[0] == 1 && o[1] == 0 && o[2] == 4, "find_first: %d %d %d (want 1 0 4)", o[0], o[1], o[2]);
    vlp_graph_free(g);
    g = vlp_graph_new();
    vlp_tensor *f = vlp_input(g, "f", VLP_F32, 2, sh);
    CHECK(vlp_find_first(g, f, 7) == NULL && strstr(vlp_graph_error(g), "i32"), "find_first on floats: %s",
          vlp_graph_error(g) ? vlp_graph_error(g) : "");
    vlp_graph_free(g);
}

/* The same towers fed by WordPiece: [CLS] text [SEP] [PAD]..., pooled at the first [SEP] (not at the
 * largest id, as BPE's <|endoftext|>); the config and the vocabulary travel with the model. */
static void test_wordpiece(void) {
    char dir[] = "/tmp/vlp_clip_wpXXXXXX", voc[600], voc2[600], mdir[600], p[700];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* [SEP] = 3 sits below every word id, so pooling at argmax would take the last word instead */
    snprintf(voc, sizeof voc, "%s/vocab.src.txt", dir);
    write_text(voc, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nred\napple\ngreen\n##s\nof\nphoto\n");
    snprintf(voc2, sizeof voc2, "%s/vocab.other.txt", dir); /* same size, [SEP] elsewhere */
    write_text(voc2, "[PAD]\n[UNK]\n[CLS]\n[MASK]\n[SEP]\na\nred\napple\ngreen\n##s\nof\nphoto\n");
    vlp_tokenizer *tok = vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, voc);
    vlp_clip_config cfg;
    vlp_clip_preset("tiny", &cfg);
    cfg.context_length = 16;
    CHECK(tok && vlp_clip_config_set_tokenizer(&cfg, tok) == 0 && cfg.tokenizer == VLP_TOKENIZER_WORDPIECE &&
              cfg.vocab_size == 12 && cfg.eos_id == 3,
          "set_tokenizer: kind %d vocab %d eos %d (%s)", cfg.tokenizer, cfg.vocab_size, cfg.eos_id, vlp_last_error());
    vlp_clip *m = vlp_clip_new(&cfg, 5);
    if (!m || !tok) return;
    snprintf(m->vocab, sizeof m->vocab, "%s", voc);
    enum { B = 3, T = 16 };
    const char *texts[B] = {"a red apple", "Green apples", "a photo of a red apple a photo of a green apple a photo"};
    int32_t rows[B * T];
    for (int b = 0; b < B; b++) CHECK(vlp_clip_tokenize(tok, texts[b], T, rows + b * T) == 0, "tokenize %d", b);
    const int32_t want0[7] = {2, 5, 6, 7, 3, 0, 0};
    CHECK(!memcmp(rows, want0, sizeof want0), "[CLS] a red apple [SEP] [PAD]: %d %d %d %d %d %d", rows[0], rows[1],
          rows[2], rows[3], rows[4], rows[5]);
    CHECK(rows[2 * T] == 2 && rows[2 * T + T - 1] == 3, "a long text keeps [SEP] at the end: %d", rows[2 * T + T - 1]);
    /* pooled row = ln_final(last hidden state at the first [SEP]) */
    vlp_graph *g = vlp_graph_new();
    int64_t sh[2] = {B, T};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, sh);
    vlp_clip_states st;
    vlp_tensor *ft = vlp_clip_encode_text(g, m, ids, &st);
    CHECK(ft && vlp_graph_build(g, ft, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_last_error());
    memcpy(ids->data, rows, sizeof rows);
    CHECK(vlp_graph_forward(g) == 0, "forward: %s", vlp_last_error());
    const float *h = st.hidden[st.n_hidden - 1]->data, *pooled = st.pooled->data, *w = m->ln_final_w->data,
                *bb = m->ln_final_b->data;
    int D = cfg.text_width;
    double worst = 0, off_argmax = 0;
    for (int b = 0; b < B; b++) {
        int at = 0, amax = 0;
        while (rows[b * T + at] != 3) at++;
        for (int j = 1; j < T; j++) amax = rows[b * T + j] > rows[b * T + amax] ? j : amax;
        for (int which = 0; which < 2; which++) {
            const float *x = h + ((size_t)b * T + (which ? amax : at)) * D;
            double mu = 0, var = 0;
            for (int k = 0; k < D; k++) mu += x[k];
            mu /= D;
            for (int k = 0; k < D; k++) var += (x[k] - mu) * (x[k] - mu);
            var /= D;
            for (int k = 0; k < D; k++) {
                double y = (x[k] - mu) / sqrt(var + cfg.ln_eps) * w[k] + bb[k], d = fabs(y - pooled[b * D + k]);
                if (which) off_argmax = fmax(off_argmax, d);
                else worst = fmax(worst, d);
            }
        }
    }
    CHECK(worst < 1e-4 && off_argmax > 1e-2, "pooled at [SEP]: err %.3g (at argmax it would differ by %.3g)", worst,
          off_argmax);
    vlp_graph_free(g);
    /* saved: Hugging Face's tokenizer_class and eos_token_id, the vocabulary beside the weights */
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    CHECK(vlp_clip_save(m, mdir) == 0, "save: %s", vlp_last_error());
    snprintf(p, sizeof p, "%s/config.json", mdir);
    FILE *f = fopen(p, "r");
    char js[4096] = "";
    if (f) js[fread(js, 1, sizeof js - 1, f)] = 0, fclose(f);
    CHECK(strstr(js, "\"tokenizer_class\": \"BertTokenizer\"") && strstr(js, "\"eos_token_id\": 3"),
          "config.json names the tokenizer and [SEP]: %.300s", js);
    vlp_clip *m2 = vlp_clip_load(mdir);
    snprintf(p, sizeof p, "%s/vocab.txt", mdir);
    CHECK(m2 && m2->cfg.tokenizer == VLP_TOKENIZER_WORDPIECE && m2->cfg.eos_id == 3 && m2->cfg.vocab_size == 12 &&
              !strcmp(m2->vocab, p),
          "reloaded: kind %d eos %d vocab %s (%s)", m2 ? m2->cfg.tokenizer : -1, m2 ? m2->cfg.eos_id : -1,
          m2 ? m2->vocab : "", vlp_last_error());
    vlp_tokenizer *tok2 = m2 ? vlp_clip_tokenizer_load(m2, NULL) : NULL;
    vlp_clip_runner *r1 = vlp_clip_runner_new(m, 2), *r2 = m2 ? vlp_clip_runner_new(m2, 2) : NULL;
    float e1[B * 32], e2[B * 32];
    CHECK(tok2 && r2 && vlp_clip_embed_texts(r1, tok, texts, B, 1, e1) == 0 &&
              vlp_clip_embed_texts(r2, tok2, texts, B, 1, e2) == 0 && !memcmp(e1, e2, sizeof e1),
          "the reloaded model embeds as the original: %s", vlp_last_error());
    /* a vocabulary that does not fit the model: the error names the file and the mismatch */
    vlp_tokenizer *bad = m2 ? vlp_clip_tokenizer_load(m2, voc2) : NULL;
    CHECK(!bad && strstr(vlp_last_error(), voc2) && strstr(vlp_last_error(), "[SEP] is id 4"), "other [SEP]: %s",
          vlp_last_error());
    unlink(p); /* without its vocab.txt the built-in bert-base-uncased does not fit either */
    vlp_clip_free(m2);
    m2 = vlp_clip_load(mdir);
    bad = m2 ? vlp_clip_tokenizer_load(m2, NULL) : NULL;
    CHECK(!bad && strstr(vlp_last_error(), "30522") && strstr(vlp_last_error(), "12"), "vocabulary gone: %s",
          vlp_last_error());
    write_text(voc2, "[PAD]\n[UNK]\n[CLS]\na\n");
    vlp_tokenizer *t3 = vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, voc2);
    vlp_clip_config c3 = cfg;
    CHECK(t3 && vlp_clip_config_set_tokenizer(&c3, t3) != 0 && strstr(vlp_last_error(), "[SEP]"), "no [SEP]: %s",
          vlp_last_error());
    vlp_tokenizer_free(t3);
    /* configs: an unknown tokenizer, a Hugging Face config naming another tokenizer or lacking eos_token_id */
    snprintf(p, sizeof p, "%s/flat.json", dir);
    write_text(p, "{\"preset\": \"tiny\", \"tokenizer\": \"sentencepiece\"}");
    CHECK(vlp_clip_config_load(p, &c3) != 0 && strstr(vlp_last_error(), "tokenizer"), "flat: %s", vlp_last_error());
    write_text(p, "{\"preset\": \"tiny\", \"tokenizer\": \"wordpiece\"}");
    CHECK(vlp_clip_config_load(p, &c3) == 0 && c3.tokenizer == VLP_TOKENIZER_WORDPIECE && c3.vocab_size == 30522 &&
              c3.eos_id == 102,
          "flat wordpiece: bert-base-uncased's size and [SEP] (%d, %d)", c3.vocab_size, c3.eos_id);
    const char *hf = "{\"projection_dim\": 32, \"tokenizer_class\": \"%s\", \"text_config\": {\"hidden_size\": 64, "
                     "\"intermediate_size\": 256, \"num_attention_heads\": 2, \"num_hidden_layers\": 2}, "
                     "\"vision_config\": {\"hidden_size\": 128, \"intermediate_size\": 512, \"num_attention_heads\": 2, "
                     "\"num_hidden_layers\": 2, \"patch_size\": 16, \"image_size\": 64}}";
    snprintf(js, sizeof js, hf, "XLMRobertaTokenizer");
    write_text(p, js);
    CHECK(vlp_clip_config_load(p, &c3) != 0 && strstr(vlp_last_error(), "XLMRobertaTokenizer"), "hf class: %s",
          vlp_last_error());
    snprintf(js, sizeof js, hf, "BertTokenizerFast");
    write_text(p, js);
    CHECK(vlp_clip_config_load(p, &c3) != 0 && strstr(vlp_last_error(), "eos_token_id"), "hf eos: %s",
          vlp_last_error());
    vlp_clip_runner_free(r1);
    vlp_clip_runner_free(r2);
    vlp_tokenizer_free(tok);
    vlp_tokenizer_free(tok2);
    vlp_clip_free(m);
    vlp_clip_free(m2);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    vlp_set_threads(2);
    test_layouts();
    test_inferred_config();
    test_bad_checkpoints();
    test_graph_errors();
    test_find_first();
    test_wordpiece();
    return test_finish();
}
