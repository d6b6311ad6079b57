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

int main(void) {
    vlp_set_threads(2);
    test_layouts();
    test_inferred_config();
    test_bad_checkpoints();
    test_graph_errors();
    return test_finish();
}
