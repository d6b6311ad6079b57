/* Engine behaviour: thread-count independence, allocation-free steps, the
 * inference memory planner, error reporting on bad input, NaN detection, npy. */
#include "test.h"
#include "vlp.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* ---- heap allocation counter (interposes malloc for the whole process) ---------- */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0
static long heap_allocs(void) { return 0; }
static int trap_allocs;
#else
#define COUNT_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static atomic_long n_allocs;
volatile int trap_allocs;
__attribute__((noinline)) void on_trapped_alloc(void) { __asm__ volatile(""); }
void *malloc(size_t n) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t al, size_t n) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    return __libc_memalign(al, n);
}
void *memalign(size_t al, size_t n) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    return __libc_memalign(al, n);
}
int posix_memalign(void **p, size_t al, size_t n) {
    if (trap_allocs) on_trapped_alloc();
    atomic_fetch_add(&n_allocs, 1);
    *p = __libc_memalign(al, n);
    return *p ? 0 : ENOMEM;
}
static long heap_allocs(void) { return atomic_load(&n_allocs); }
#endif

/* ---- a small model with every kind of op a VLP step uses ---------------------- */
typedef struct {
    vlp_params *P;
    vlp_graph *g;
    vlp_adamw *opt;
    vlp_tensor *ids, *targets, *loss, *logits;
    vlp_block_params blocks[2];
} model;

enum { V = 23, T = 9, B = 6, D = 48 };

static int model_act = VLP_ACT_QUICK_GELU;

static int build_model(model *m, int mode) {
    memset(m, 0, sizeof *m);
    vlp_transformer_config cfg = {.width = D, .heads = 3, .layers = 2, .act = model_act,
                                  .ln_eps = 1e-5f, .causal = 1};
    m->P = vlp_params_new();
    int64_t st[] = {V, D}, sp[] = {T, D}, sd[] = {D};
    vlp_tensor *tok = vlp_params_add(m->P, "tok", 2, st, VLP_FLAG_NO_DECAY);
    vlp_tensor *pos = vlp_params_add(m->P, "pos", 2, sp, VLP_FLAG_NO_DECAY);
    vlp_transformer_declare(m->P, "blocks", &cfg, m->blocks);
    vlp_tensor *lw = vlp_params_add(m->P, "ln_f.weight", 1, sd, VLP_FLAG_NO_DECAY);
    vlp_tensor *lb = vlp_params_add(m->P, "ln_f.bias", 1, sd, VLP_FLAG_NO_DECAY);
    if (vlp_params_alloc(m->P)) return -1;
    vlp_init_normal(tok, 0, 0.1f, 1);
    vlp_init_normal(pos, 0, 0.1f, 2);
    vlp_transformer_init(&cfg, m->blocks, 3);
    vlp_init_const(lw, 1);
    m->g = vlp_graph_new();
    int64_t si[] = {B, T}, stg[] = {B * T}, sflat[] = {B * T, D};
    m->ids = vlp_input(m->g, "ids", VLP_I32, 2, si);
    m->targets = vlp_input(m->g, "targets", VLP_I32, 1, stg);
    vlp_tensor *x = vlp_add(m->g, vlp_embedding(m->g, m->ids, tok), pos);
    x = vlp_dropout(m->g, x, 0.1f);
    x = vlp_transformer_forward(m->g, &cfg, m->blocks, x, NULL);
    x = vlp_layernorm(m->g, x, lw, lb, 1e-5f);
    m->logits = vlp_keep(vlp_matmul(m->g, vlp_reshape(m->g, x, 2, sflat), tok, 0, 1)); /* tied head */
    m->loss = vlp_cross_entropy(m->g, m->logits, m->targets, -1);
    if (vlp_graph_build(m->g, mode == VLP_BUILD_TRAIN ? m->loss : m->logits, mode)) return -1;
    vlp_adamw_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.1f,
                           .clip_norm = 1.0f};
    if (mode == VLP_BUILD_TRAIN) m->opt = vlp_adamw_new(m->P, &oc);
    return 0;
}

static void fill_batch(model *m, int step) {
    int32_t *id = m->ids->data, *tg = m->targets->data;
    for (int i = 0; i < B * T; i++) {
        id[i] = (int32_t)((i * 7 + step * 13 + (i * i) % 5) % V);
        if (tg) tg[i] = (i % 11 == 3) ? -1 : (int32_t)((i * 3 + step) % V);
    }
}

static int train_step(model *m, int step) {
    fill_batch(m, step);
    vlp_graph_set_training(m->g, 1, (uint64_t)step);
    vlp_params_zero_grad(m->P);
    int rc = vlp_graph_forward(m->g);
    if (!rc) rc = vlp_graph_backward(m->g, NULL);
    if (!rc) rc = vlp_adamw_step(m->opt, 1e-3f, 1.0f, NULL);
    return rc;
}

static void free_model(model *m) {
    vlp_adamw_free(m->opt);
    vlp_graph_free(m->g);
    vlp_params_free(m->P);
}

static void test_threads_agree(void) {
    float losses[2][4];
    float *params[2];
    int64_t n = 0;
    for (int run = 0; run < 2; run++) {
        vlp_set_threads(run ? 2 : 1);
        model m;
        CHECK(build_model(&m, VLP_BUILD_TRAIN) == 0, "build: %s", vlp_last_error());
        for (int s = 0; s < 4; s++) {
            CHECK(train_step(&m, s) == 0, "step: %s", vlp_last_error());
            losses[run][s] = *(float *)m.loss->data;
        }
        n = vlp_params_numel(m.P);
        params[run] = malloc((size_t)n * sizeof(float));
        memcpy(params[run], vlp_params_data(m.P), (size_t)n * sizeof(float));
        free_model(&m);
    }
    CHECK(!memcmp(losses[0], losses[1], sizeof losses[0]), "losses differ between 1 and 2 threads: %.9g vs %.9g",
          losses[0][3], losses[1][3]);
    CHECK(!memcmp(params[0], params[1], (size_t)n * sizeof(float)),
          "parameters after 4 steps are not bit-identical between 1 and 2 threads");
    CHECK(losses[0][3] < losses[0][0], "loss did not fall: %g -> %g", losses[0][0], losses[0][3]);
    free(params[0]);
    free(params[1]);
    vlp_set_threads(2);
}

static void test_no_alloc_after_first_step(void) {
    model m;
    CHECK(build_model(&m, VLP_BUILD_TRAIN) == 0, "build: %s", vlp_last_error());
    size_t arena = vlp_graph_arena_bytes(m.g);
    CHECK(train_step(&m, 0) == 0, "first step: %s", vlp_last_error());
    long heap0 = heap_allocs();
    uint64_t vlp0 = vlp_alloc_count();
    trap_allocs = 1;
    for (int s = 1; s < 5; s++) CHECK(train_step(&m, s) == 0, "step %d: %s", s, vlp_last_error());
    trap_allocs = 0;
    long heap1 = heap_allocs();
    CHECK(vlp_alloc_count() == vlp0, "vlp allocated %llu times in steps 2..5",
          (unsigned long long)(vlp_alloc_count() - vlp0));
    if (COUNT_MALLOC) CHECK(heap1 == heap0, "process heap allocations in steps 2..5: %ld", heap1 - heap0);
    CHECK(vlp_graph_arena_bytes(m.g) == arena, "arena grew");
    printf("training arena %.2f MiB; heap allocations in steps 2..5: %ld (counted: %s)\n", arena / 1048576.0,
           heap1 - heap0, COUNT_MALLOC ? "yes" : "no, ASan build");
    free_model(&m);
}

static void test_inference_planner(int act) {
    static const char *names[] = {"quick_gelu", "gelu", "gelu_tanh"};
    const char *an = names[act];
    model_act = act;
    model tr, inf;
    CHECK(build_model(&tr, VLP_BUILD_TRAIN) == 0, "train build");
    CHECK(build_model(&inf, VLP_BUILD_INFERENCE) == 0, "inference build: %s", vlp_last_error());
    fill_batch(&tr, 0);
    fill_batch(&inf, 0);
    vlp_graph_set_training(tr.g, 0, 0);
    CHECK(vlp_graph_forward(tr.g) == 0 && vlp_graph_forward(inf.g) == 0, "forward: %s", vlp_last_error());
    CHECK(!memcmp(tr.logits->data, inf.logits->data, sizeof(float) * B * T * V),
          "inference graph (buffers reused) gives different logits");
    CHECK(vlp_graph_arena_bytes(inf.g) * 2 < vlp_graph_arena_bytes(tr.g), "inference arena %zu not < half of %zu",
          vlp_graph_arena_bytes(inf.g), vlp_graph_arena_bytes(tr.g));
    CHECK(vlp_graph_backward(inf.g, NULL) == VLP_ERR_STATE, "backward on an inference graph accepted");
    /* the inference build folds each block's activation and both residual adds into linear layers */
    CHECK(vlp_graph_op_count(tr.g, an) == 2 && vlp_graph_op_count(inf.g, an) == 0,
          "%s left: train %d, inference %d", an, vlp_graph_op_count(tr.g, an), vlp_graph_op_count(inf.g, an));
    CHECK(vlp_graph_op_count(inf.g, "add") == vlp_graph_op_count(tr.g, "add") - 4, "adds: train %d, inference %d",
          vlp_graph_op_count(tr.g, "add"), vlp_graph_op_count(inf.g, "add"));
    model nf;
    setenv("VLP_FUSE", "0", 1);
    CHECK(build_model(&nf, VLP_BUILD_INFERENCE) == 0, "unfused inference build: %s", vlp_last_error());
    unsetenv("VLP_FUSE");
    fill_batch(&nf, 0);
    CHECK(vlp_graph_forward(nf.g) == 0, "forward: %s", vlp_last_error());
    CHECK(vlp_graph_op_count(nf.g, an) == 2, "VLP_FUSE=0 still fused");
    CHECK(!memcmp(nf.logits->data, inf.logits->data, sizeof(float) * B * T * V), "fused != unfused logits");
    /* weights packed once for the GEMM: same logits; refused on a training graph */
    CHECK(vlp_graph_pack_weights(tr.g) == VLP_ERR_STATE, "packing a training graph's weights accepted");
    CHECK(vlp_graph_pack_weights(inf.g) == 0 && vlp_graph_pack_weights(inf.g) == 0, "pack: %s", vlp_last_error());
    memset(inf.logits->data, 0, sizeof(float) * B * T * V);
    CHECK(vlp_graph_forward(inf.g) == 0, "forward: %s", vlp_last_error());
    CHECK(!memcmp(nf.logits->data, inf.logits->data, sizeof(float) * B * T * V), "packed weights change the logits");
    free_model(&nf);
    printf("arena: training %.0f KiB, inference %.0f KiB\n", vlp_graph_arena_bytes(tr.g) / 1024.0,
           vlp_graph_arena_bytes(inf.g) / 1024.0);
    free_model(&tr);
    free_model(&inf);
}

static void test_errors(void) {
    vlp_graph *g = vlp_graph_new();
    vlp_params *P = vlp_params_new();
    int64_t sx[] = {4, 5}, sw[] = {3, 6}, sm[] = {6, 7};
    vlp_tensor *w = vlp_params_add(P, "w", 2, sw, 0);
    CHECK(vlp_params_add(P, "w", 2, sw, 0) == NULL && strstr(vlp_last_error(), "duplicate"), "duplicate name: %s",
          vlp_last_error());
    vlp_params_alloc(P);
    CHECK(vlp_params_add(P, "late", 2, sw, 0) == NULL, "add after alloc accepted");
    vlp_tensor *x = vlp_input(g, "x", VLP_F32, 2, sx);
    CHECK(vlp_graph_forward(g) == VLP_ERR_STATE, "forward before build accepted");
    vlp_tensor *y = vlp_linear(g, x, w, NULL);
    CHECK(y == NULL, "mismatched linear accepted");
    const char *e = vlp_graph_error(g);
    CHECK(e && strstr(e, "[4, 5]") && strstr(e, "[3, 6]"), "message should name both shapes: %s", e ? e : "(none)");
    CHECK(vlp_add(g, x, x) == NULL, "op on a failed graph returned a node");
    CHECK(vlp_graph_build(g, x, VLP_BUILD_INFERENCE) != 0, "build of a failed graph succeeded");
    vlp_graph_free(g);

    g = vlp_graph_new();
    x = vlp_input(g, "x", VLP_F32, 2, sx);
    vlp_tensor *m = vlp_input(g, "m", VLP_F32, 2, sm);
    CHECK(vlp_matmul(g, x, m, 0, 0) == NULL, "matmul inner mismatch accepted");
    e = vlp_graph_error(g);
    CHECK(e && strstr(e, "[4, 5]") && strstr(e, "[6, 7]"), "message should name both shapes: %s", e ? e : "");
    vlp_graph_free(g);

    g = vlp_graph_new();
    x = vlp_input(g, "x", VLP_F32, 2, sx);
    CHECK(vlp_matmul(g, x, NULL, 0, 0) == NULL && strstr(vlp_graph_error(g), "input 1 is NULL"), "NULL arg: %s",
          vlp_graph_error(g) ? vlp_graph_error(g) : "");
    vlp_graph_free(g);

    g = vlp_graph_new();
    x = vlp_input(g, "x", VLP_F32, 2, sx);
    int64_t s3[] = {4, 5, 2};
    CHECK(vlp_add(g, x, vlp_input(g, "z", VLP_F32, 3, s3)) == NULL, "bad broadcast accepted");
    CHECK(vlp_layernorm(NULL, x, NULL, NULL, 1e-5f) == NULL && strstr(vlp_last_error(), "graph is NULL"),
          "NULL graph: %s", vlp_last_error());
    vlp_graph_free(g);

    /* Runtime errors: an id outside the table, a NaN loss. */
    g = vlp_graph_new();
    int64_t sid[] = {3}, stab[] = {4, 2};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 1, sid);
    vlp_tensor *tab = vlp_input_grad(g, "tab", 2, stab);
    vlp_tensor *loss = vlp_sum(g, vlp_embedding(g, ids, tab));
    CHECK(vlp_graph_build(g, loss, VLP_BUILD_TRAIN) == 0, "build: %s", vlp_last_error());
    ((int32_t *)ids->data)[1] = 9;
    CHECK(vlp_graph_forward(g) == VLP_ERR_ARG && strstr(vlp_last_error(), "id 9"), "bad id: %s", vlp_last_error());
    ((int32_t *)ids->data)[1] = 1;
    ((float *)tab->data)[2] = NAN;
    CHECK(vlp_graph_forward(g) == VLP_ERR_NUMERIC && strstr(vlp_last_error(), "NaN"), "NaN loss: %s",
          vlp_last_error());
    vlp_graph_free(g);
    vlp_params_free(P);
}

static void test_npy(void) {
    char path[] = "/tmp/vlp_test_npy_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    float data[6] = {1, -2, 3.5f, 4, 5, 6e10f};
    int64_t shape[2] = {2, 3};
    CHECK(vlp_npy_save(path, VLP_F32, 2, shape, data) == 0, "save: %s", vlp_last_error());
    vlp_dtype dt;
    int nd;
    int64_t sh[4];
    void *out;
    CHECK(vlp_npy_load(path, &dt, &nd, sh, &out) == 0, "load: %s", vlp_last_error());
    CHECK(dt == VLP_F32 && nd == 2 && sh[0] == 2 && sh[1] == 3 && !memcmp(out, data, sizeof data), "round trip");
    free(out);
    /* truncated file */
    FILE *f = fopen(path, "r+b");
    CHECK(f && ftruncate(fileno(f), 100) == 0, "truncate");
    fclose(f);
    CHECK(vlp_npy_load(path, &dt, &nd, sh, &out) == VLP_ERR_IO && strstr(vlp_last_error(), path) &&
              strstr(vlp_last_error(), "truncated"),
          "truncated: %s", vlp_last_error());
    f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    CHECK(vlp_npy_load(path, &dt, &nd, sh, &out) == VLP_ERR_IO && strstr(vlp_last_error(), "magic"), "bad magic: %s",
          vlp_last_error());
    unlink(path);
    CHECK(vlp_npy_load(path, &dt, &nd, sh, &out) == VLP_ERR_IO && strstr(vlp_last_error(), "cannot open"),
          "missing: %s", vlp_last_error());
}

/* An input declared after other nodes must not share space with them: the caller fills it
 * before the forward, and nodes computed earlier would overwrite it. */
static void test_late_input(void) {
    vlp_graph *g = vlp_graph_new();
    int64_t sh[1] = {4096};
    vlp_tensor *a = vlp_input(g, "a", VLP_F32, 1, sh);
    vlp_tensor *t = vlp_scale(g, vlp_scale(g, vlp_scale(g, a, 2.0f), 2.0f), 2.0f);
    vlp_tensor *b = vlp_input(g, "b", VLP_F32, 1, sh);
    vlp_tensor *y = vlp_keep(vlp_add(g, t, b));
    CHECK(vlp_graph_build(g, y, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_last_error());
    for (int i = 0; i < 4096; i++) ((float *)a->data)[i] = (float)i, ((float *)b->data)[i] = 0.5f;
    CHECK(vlp_graph_forward(g) == 0, "forward: %s", vlp_last_error());
    int bad = 0;
    for (int i = 0; i < 4096; i++) bad += ((float *)y->data)[i] != 8.0f * (float)i + 0.5f;
    CHECK(bad == 0, "a late input was overwritten by earlier nodes (%d wrong)", bad);
    vlp_graph_free(g);
}

/* A kept view keeps its base alive: later nodes must not reuse the base's space. */
static void test_kept_view(void) {
    vlp_graph *g = vlp_graph_new();
    int64_t sh[1] = {4096}, s2[2] = {64, 64};
    vlp_tensor *a = vlp_input(g, "a", VLP_F32, 1, sh);
    vlp_tensor *t = vlp_scale(g, a, 2.0f);
    vlp_tensor *v = vlp_keep(vlp_reshape(g, t, 2, s2));
    vlp_tensor *y = vlp_keep(vlp_scale(g, vlp_scale(g, vlp_scale(g, t, 3.0f), 3.0f), 3.0f));
    CHECK(vlp_graph_build(g, y, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_last_error());
    for (int i = 0; i < 4096; i++) ((float *)a->data)[i] = (float)i;
    CHECK(vlp_graph_forward(g) == 0, "forward: %s", vlp_last_error());
    int bad = 0;
    for (int i = 0; i < 4096; i++) bad += ((float *)v->data)[i] != 2.0f * (float)i;
    CHECK(bad == 0, "a kept view was overwritten by later nodes (%d wrong)", bad);
    vlp_graph_free(g);
}

/* A view of a parameter (reshape of a weight) in an inference graph: parameters are not
 * planned (no node id), and the planner once indexed its last-reader table with that -1. */
static void test_param_view(void) {
    vlp_params *P = vlp_params_new();
    int64_t ws[1] = {64}, w2[2] = {8, 8}, xs[3] = {8, 8, 8};
    vlp_tensor *w = vlp_params_add(P, "w", 1, ws, 0);
    CHECK(w && vlp_params_alloc(P) == 0, "params: %s", vlp_last_error());
    for (int i = 0; i < 64; i++) ((float *)w->data)[i] = (float)i;
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *x = vlp_input(g, "x", VLP_F32, 3, xs);
    vlp_tensor *wv = vlp_reshape(g, w, 2, w2);
    vlp_tensor *y = vlp_keep(vlp_scale(g, vlp_add(g, vlp_scale(g, x, 2.0f), wv), 0.5f));
    CHECK(vlp_graph_build(g, y, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_last_error());
    for (int i = 0; i < 8 * 64; i++) ((float *)x->data)[i] = 1.0f;
    CHECK(vlp_graph_forward(g) == 0, "forward: %s", vlp_last_error());
    int bad = 0;
    for (int i = 0; i < 8 * 64; i++) bad += ((float *)y->data)[i] != 0.5f * (2.0f + (float)(i % 64));
    CHECK(bad == 0, "a reshaped parameter in an inference graph (%d wrong)", bad);
    vlp_graph_free(g);
    vlp_params_free(P);
}

int main(void) {
    vlp_set_threads(2);
    test_threads_agree();
    test_no_alloc_after_first_step();
    for (int act = VLP_ACT_QUICK_GELU; act <= VLP_ACT_GELU_TANH; act++) test_inference_planner(act);
    model_act = VLP_ACT_QUICK_GELU;
    test_errors();
    test_late_input();
    test_kept_view();
    test_param_view();
    test_npy();
    return test_finish();
}
