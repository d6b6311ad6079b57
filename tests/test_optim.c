/* Optimiser, clipping, schedule and gradient accumulation, against PyTorch
 * (tests/tools/gen_optim_fixture.py) and against each other. */
#include "test.h"
#include "vlp.h"

#include <string.h>

static float *load(const char *name, int64_t numel) {
    char path[256];
    snprintf(path, sizeof path, FIXTURE("optim/%s.npy"), name);
    vlp_dtype dt;
    int nd;
    int64_t shape[VLP_MAX_DIMS];
    void *data = NULL;
    int rc = vlp_npy_load(path, &dt, &nd, shape, &data);
    int64_t n = 1;
    for (int i = 0; !rc && i < nd; i++) n *= shape[i];
    CHECK(rc == 0 && n == numel, "%s: %s (numel %lld, want %lld)", path, rc ? vlp_last_error() : "", (long long)n,
          (long long)numel);
    return rc ? calloc((size_t)numel, sizeof(float)) : data;
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(b[i]) > 1e-3 ? fabs(b[i]) : 1e-3);
        m = d > m ? d : m;
    }
    return m;
}

static void test_adamw_vs_torch(void) {
    const int STEPS = 8;
    vlp_params *P = vlp_params_new();
    int64_t sw[] = {5, 7}, sb[] = {7};
    vlp_tensor *w = vlp_params_add(P, "w", 2, sw, 0);
    vlp_tensor *b = vlp_params_add(P, "b", 1, sb, VLP_FLAG_NO_DECAY);
    vlp_tensor *s = vlp_params_add(P, "logit_scale", 0, NULL, VLP_FLAG_NO_DECAY);
    CHECK(w && b && s && vlp_params_alloc(P) == 0, "params: %s", vlp_last_error());
    float *w0 = load("w0", 35), *b0 = load("b0", 7), *s0 = load("s0", 1);
    float *gw = load("gw", STEPS * 35), *gb = load("gb", STEPS * 7), *gs = load("gs", STEPS);
    float *rw = load("w", STEPS * 35), *rb = load("b", STEPS * 7), *rs = load("s", STEPS);
    float *rlr = load("lr", STEPS), *rnorm = load("norm", STEPS);
    memcpy(w->data, w0, sizeof(float) * 35);
    memcpy(b->data, b0, sizeof(float) * 7);
    memcpy(s->data, s0, sizeof(float));
    vlp_adamw_config cfg = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.1f,
                            .clip_norm = 1.0f};
    vlp_adamw *o = vlp_adamw_new(P, &cfg);
    CHECK(o != NULL, "adamw_new: %s", vlp_last_error());
    double worst = 0;
    for (int t = 0; t < STEPS && o; t++) {
        float lr = vlp_lr_warmup_cosine(t, 3, STEPS, 1e-2f, 0.0f);
        CHECK(fabs(lr - rlr[t]) <= 1e-6 * fabs(rlr[t]) + 1e-9, "lr step %d: %g vs torch %g", t, lr, rlr[t]);
        memcpy(w->grad, gw + t * 35, sizeof(float) * 35);
        memcpy(b->grad, gb + t * 7, sizeof(float) * 7);
        s->grad[0] = gs[t];
        float norm;
        CHECK(vlp_adamw_step(o, lr, 1.0f, &norm) == 0, "step %d: %s", t, vlp_last_error());
        CHECK(fabs(norm - rnorm[t]) <= 1e-5 * rnorm[t], "norm step %d: %g vs torch %g", t, norm, rnorm[t]);
        double e = max_rel(w->data, rw + t * 35, 35);
        double eb = max_rel(b->data, rb + t * 7, 7), es = max_rel(s->data, rs + t, 1);
        e = e > eb ? e : eb;
        e = e > es ? e : es;
        worst = e > worst ? e : worst;
        CHECK(e <= 2e-5, "params after step %d differ from torch by %.3g (rel)", t, e);
    }
    printf("adamw+clip+schedule vs torch over %d steps: max rel param err %.2e\n", STEPS, worst);
    CHECK(vlp_adamw_steps(o) == STEPS, "step counter %lld", (long long)vlp_adamw_steps(o));

    /* A NaN gradient is refused and leaves the parameters as they were. */
    float before[35];
    memcpy(before, w->data, sizeof before);
    w->grad[3] = NAN;
    CHECK(vlp_adamw_step(o, 1e-3f, 1.0f, NULL) == VLP_ERR_NUMERIC, "NaN gradient accepted");
    CHECK(strstr(vlp_last_error(), "NaN") != NULL, "message: %s", vlp_last_error());
    CHECK(!memcmp(before, w->data, sizeof before), "parameters changed by a refused step");
    CHECK(vlp_adamw_steps(o) == STEPS, "refused step was counted");
    vlp_adamw_free(o);
    vlp_params_free(P);
    free(w0), free(b0), free(s0), free(gw), free(gb), free(gs), free(rw), free(rb), free(rs), free(rlr), free(rnorm);
}

static void test_groups_and_scale(void) {
    /* Weight decay only where allowed; frozen parameters untouched; grad_scale. */
    vlp_params *P = vlp_params_new();
    int64_t sh[] = {4};
    vlp_tensor *a = vlp_params_add(P, "a", 1, sh, 0);
    vlp_tensor *nd = vlp_params_add(P, "nd", 1, sh, VLP_FLAG_NO_DECAY);
    vlp_tensor *fz = vlp_params_add(P, "fz", 1, sh, VLP_FLAG_FROZEN);
    CHECK(vlp_params_alloc(P) == 0, "alloc");
    CHECK(fz->grad == NULL, "frozen parameter has a gradient buffer");
    vlp_init_const(a, 1.0f);
    vlp_init_const(nd, 1.0f);
    vlp_init_const(fz, 1.0f);
    vlp_adamw_config cfg = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f};
    vlp_adamw *o = vlp_adamw_new(P, &cfg);
    /* zero gradient: Adam's update is 0, only decay acts: a *= 1 - lr*wd */
    CHECK(vlp_adamw_step(o, 0.1f, 1.0f, NULL) == 0, "step");
    CHECK(fabsf(((float *)a->data)[0] - 0.95f) < 1e-7f, "decayed value %g, want 0.95", ((float *)a->data)[0]);
    CHECK(((float *)nd->data)[0] == 1.0f, "no-decay parameter changed: %g", ((float *)nd->data)[0]);
    CHECK(((float *)fz->data)[0] == 1.0f, "frozen parameter changed");
    /* grad_scale multiplies gradients before the norm: norm of [2,2,2,2]*0.25 is 1 */
    for (int i = 0; i < 4; i++) a->grad[i] = 2.0f, nd->grad[i] = 0.0f;
    float norm;
    CHECK(vlp_adamw_step(o, 0.1f, 0.25f, &norm) == 0 && fabsf(norm - 1.0f) < 1e-6f, "scaled norm %g, want 1", norm);
    vlp_adamw_free(o);
    vlp_params_free(P);
    /* schedule shape */
    CHECK(vlp_lr_warmup_cosine(0, 10, 100, 1.0f, 0.0f) == 0.1f, "first warm-up lr");
    CHECK(vlp_lr_warmup_cosine(9, 10, 100, 1.0f, 0.0f) == 1.0f, "last warm-up lr");
    CHECK(fabsf(vlp_lr_warmup_cosine(55, 10, 100, 1.0f, 0.0f) - 0.5f) < 1e-6f, "cosine midpoint");
    CHECK(vlp_lr_warmup_cosine(100, 10, 100, 1.0f, 0.0f) == 0.0f, "end of schedule");
}

/* Two micro-batches with accumulated gradients (scaled by 1/2) give the same
 * update as one batch of both. */
static void test_accumulation(void) {
    const int N = 8, IN = 6, OUT = 3;
    float xs[8 * 6], ys[8 * 3];
    for (int i = 0; i < N * IN; i++) xs[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < N * OUT; i++) ys[i] = cosf(0.91f * (float)i);
    float result[2][OUT * IN + OUT];
    for (int mode = 0; mode < 2; mode++) {
        int mb = mode ? N / 2 : N, micro = mode ? 2 : 1;
        vlp_params *P = vlp_params_new();
        int64_t sw[] = {OUT, IN}, sb[] = {OUT};
        vlp_tensor *w = vlp_params_add(P, "w", 2, sw, 0), *b = vlp_params_add(P, "b", 1, sb, VLP_FLAG_NO_DECAY);
        vlp_params_alloc(P);
        vlp_init_normal(w, 0, 0.5f, 3);
        vlp_init_normal(b, 0, 0.5f, 4);
        vlp_graph *g = vlp_graph_new();
        int64_t sx[] = {mb, IN}, sy[] = {mb, OUT};
        vlp_tensor *x = vlp_input(g, "x", VLP_F32, 2, sx), *y = vlp_input(g, "y", VLP_F32, 2, sy);
        vlp_tensor *loss = vlp_mse(g, vlp_linear(g, x, w, b), y);
        CHECK(vlp_graph_build(g, loss, VLP_BUILD_TRAIN) == 0, "build: %s", vlp_last_error());
        vlp_adamw_config cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.1f};
        vlp_adamw *o = vlp_adamw_new(P, &cfg);
        for (int step = 0; step < 3; step++) {
            vlp_params_zero_grad(P);
            for (int m = 0; m < micro; m++) {
                memcpy(x->data, xs + m * mb * IN, sizeof(float) * (size_t)(mb * IN));
                memcpy(y->data, ys + m * mb * OUT, sizeof(float) * (size_t)(mb * OUT));
                vlp_graph_forward(g);
                vlp_graph_backward(g, NULL);
            }
            vlp_adamw_step(o, 0.01f, 1.0f / (float)micro, NULL);
        }
        memcpy(result[mode], w->data, sizeof(float) * OUT * IN);
        memcpy(result[mode] + OUT * IN, b->data, sizeof(float) * OUT);
        vlp_adamw_free(o);
        vlp_graph_free(g);
        vlp_params_free(P);
    }
    double e = max_rel(result[1], result[0], OUT * IN + OUT);
    CHECK(e < 1e-5, "accumulated update differs from full-batch update by %.3g", e);
}

int main(void) {
    vlp_set_threads(2);
    test_adamw_vs_torch();
    test_groups_and_scale();
    test_accumulation();
    return test_finish();
}
