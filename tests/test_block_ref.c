/* Composite check: a 2-block pre-LN transformer built from vlp ops matches the
 * PyTorch reference (tests/tools/gen_block_fixture.py, float64) in its output and
 * in the gradient of every parameter and of the input, to 1e-4 relative. */
#include "test.h"
#include "vlp.h"

#include <string.h>

static int meta_int(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

static int meta_bool(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p += strlen(pat);
    while (*p == ' ') p++;
    return !strncmp(p, "true", 4);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static float *load(const char *dir, const char *name, int64_t expect_numel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    vlp_dtype dt;
    int nd;
    int64_t shape[VLP_MAX_DIMS];
    void *data;
    if (vlp_npy_load(path, &dt, &nd, shape, &data)) {
        printf("load failed: %s\n", vlp_last_error());
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    if (expect_numel >= 0 && n != expect_numel) {
        printf("%s: %lld elements, expected %lld\n", path, (long long)n, (long long)expect_numel);
        free(data);
        return NULL;
    }
    return data;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return md / (mb > 0 ? mb : 1);
}

static void run_case(const char *name) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, FIXTURE("block2/%s"), name);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    char *meta = read_text(path);
    CHECK(meta != NULL, "%s: cannot read %s", name, path);
    if (!meta) return;
    int B = meta_int(meta, "B"), T = meta_int(meta, "T"), D = meta_int(meta, "D"), H = meta_int(meta, "H");
    int causal = meta_bool(meta, "causal"), padding = meta_bool(meta, "key_padding");
    int act = strstr(meta, "\"act\": \"quickgelu\"") ? VLP_ACT_QUICK_GELU
              : strstr(meta, "\"act\": \"gelu_tanh\"") ? VLP_ACT_GELU_TANH
                                                       : VLP_ACT_GELU;
    vlp_transformer_config cfg = {.width = D, .heads = H, .layers = 2, .act = act,
                                  .ln_eps = 1e-5f, .causal = causal};
    vlp_params *P = vlp_params_new();
    vlp_block_params blocks[2];
    int64_t shd[] = {D};
    CHECK(vlp_transformer_declare(P, "blocks", &cfg, blocks) == 0, "%s: declare: %s", name, vlp_last_error());
    vlp_tensor *lnf_w = vlp_params_add(P, "ln_f.weight", 1, shd, VLP_FLAG_NO_DECAY);
    vlp_tensor *lnf_b = vlp_params_add(P, "ln_f.bias", 1, shd, VLP_FLAG_NO_DECAY);
    CHECK(vlp_params_alloc(P) == 0, "alloc");
    for (int i = 0; i < vlp_params_count(P); i++) {
        vlp_tensor *t = vlp_params_get(P, i);
        char pname[128];
        snprintf(pname, sizeof pname, "param.%s", t->name);
        float *v = load(dir, pname, t->numel);
        CHECK(v != NULL, "%s: missing %s", name, pname);
        if (v) memcpy(t->data, v, (size_t)t->numel * sizeof(float));
        free(v);
    }
    vlp_graph *g = vlp_graph_new();
    int64_t sx[] = {B, T, D}, sm[] = {B, T};
    vlp_tensor *x = vlp_input_grad(g, "x", 3, sx);
    vlp_tensor *mask = padding ? vlp_input(g, "key_mask", VLP_I32, 2, sm) : NULL;
    vlp_tensor *y = vlp_transformer_forward(g, &cfg, blocks, x, mask);
    y = vlp_layernorm(g, y, lnf_w, lnf_b, 1e-5f);
    CHECK(y && vlp_graph_build(g, y, VLP_BUILD_TRAIN) == 0, "%s: build: %s", name,
          vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    float *xin = load(dir, "x", (int64_t)B * T * D), *dy = load(dir, "dy", (int64_t)B * T * D);
    float *yref = load(dir, "y", (int64_t)B * T * D), *gxref = load(dir, "grad_x", (int64_t)B * T * D);
    if (!xin || !dy || !yref || !gxref || !y || !y->data) {
        CHECK(0, "%s: fixture incomplete", name);
        return;
    }
    memcpy(x->data, xin, sizeof(float) * (size_t)(B * T * D));
    if (mask) {
        snprintf(path, sizeof path, "%s/key_mask.npy", dir);
        vlp_dtype dt;
        int nd;
        int64_t shape[4];
        void *m;
        CHECK(vlp_npy_load(path, &dt, &nd, shape, &m) == 0 && dt == VLP_I32, "%s: key_mask", name);
        memcpy(mask->data, m, sizeof(int32_t) * (size_t)(B * T));
        free(m);
    }
    CHECK(vlp_graph_forward(g) == 0, "%s: forward: %s", name, vlp_last_error());
    double ey = rel_err(y->data, yref, (int64_t)B * T * D);
    CHECK(ey <= 1e-4, "%s: output rel err %.3g > 1e-4", name, ey);
    vlp_params_zero_grad(P);
    CHECK(vlp_graph_backward(g, dy) == 0, "%s: backward: %s", name, vlp_last_error());
    double egx = rel_err(x->grad, gxref, (int64_t)B * T * D), worst = egx;
    CHECK(egx <= 1e-4, "%s: grad_x rel err %.3g > 1e-4", name, egx);
    const char *worst_name = "x";
    for (int i = 0; i < vlp_params_count(P); i++) {
        vlp_tensor *t = vlp_params_get(P, i);
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", t->name);
        float *gref = load(dir, gname, t->numel);
        CHECK(gref != NULL, "%s: missing %s", name, gname);
        if (!gref) continue;
        double e = rel_err(t->grad, gref, t->numel);
        CHECK(e <= 1e-4, "%s: %s rel err %.3g > 1e-4", name, gname, e);
        if (e > worst) {
            worst = e;
            worst_name = t->name;
        }
        free(gref);
    }
    printf("block2 %-16s output rel err %.2e, worst gradient rel err %.2e (%s)\n", name, ey, worst, worst_name);
    free(xin);
    free(dy);
    free(yref);
    free(gxref);
    free(meta);
    vlp_graph_free(g);
    vlp_params_free(P);
}

int main(void) {
    vlp_set_threads(2);
    run_case("quickgelu");
    run_case("gelu_causal_pad");
    run_case("gelu_tanh");
    return test_finish();
}
