/* vlp side of the CLIP inference benchmark (peer: bench/torch_clip.py, same
 * deterministic inputs): image embedding at batch 1 (latency) and batch 32
 * (throughput), text embedding at batch 32. Prints one JSON line.
 *
 *   build/bench/clip_bench MODEL_DIR [--reps 5] [--check torch_features.npy]
 * --check compares the image and text features of the test inputs with the
 * PyTorch peer's dump (bench/torch_clip.py --dump), so both sides are known to run
 * the same model. --profile B runs the image tower at batch B a few times with the
 * graph profiler on and prints the per-op table to stderr (then exits). */
#include "vlp_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_pixels(float *x, int n, int s) {
    for (long i = 0; i < (long)n * 3 * s * s; i++) x[i] = (float)sin((double)i * 0.001);
}

static void test_ids(int32_t *ids, int n, int ctx) {
    memset(ids, 0, sizeof(int32_t) * (size_t)n * (size_t)ctx);
    for (int r = 0; r < n; r++) {
        int L = 5 + (r * 7) % 20;
        ids[r * ctx] = 49406;
        for (int j = 1; j < L; j++) ids[r * ctx + j] = (j * 97 + r * 31) % 49000 + 1;
        ids[r * ctx + L] = 49407;
    }
}

typedef int (*run_fn)(vlp_clip_runner *, const void *, int, float *);
static int run_img(vlp_clip_runner *r, const void *in, int n, float *out) { return vlp_clip_embed_pixels(r, in, n, 0, out); }
static int run_txt(vlp_clip_runner *r, const void *in, int n, float *out) { return vlp_clip_embed_tokens(r, in, n, 0, out); }

static double median_time(vlp_clip_runner *r, run_fn fn, const void *in, int n, float *out, int reps) {
    double *t = calloc((size_t)reps, sizeof *t);
    if (fn(r, in, n, out)) { /* warm-up builds the graph */
        fprintf(stderr, "clip_bench: %s\n", vlp_last_error());
        exit(1);
    }
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        fn(r, in, n, out);
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

static double check(const char *path, const float *got, int rows, int dim) {
    vlp_dtype dt;
    int nd;
    int64_t shape[4];
    void *ref;
    if (vlp_npy_load(path, &dt, &nd, shape, &ref) || shape[0] != rows || shape[1] != dim) {
        fprintf(stderr, "clip_bench: %s: %s\n", path, vlp_last_error());
        exit(1);
    }
    double worst = 0;
    for (int i = 0; i < rows; i++) {
        double n2 = 0, md = 0;
        for (int k = 0; k < dim; k++) {
            double r = ((float *)ref)[i * dim + k];
            n2 += r * r;
            md = fmax(md, fabs(r - got[i * dim + k]));
        }
        worst = fmax(worst, md / sqrt(n2));
    }
    free(ref);
    return worst;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: clip_bench MODEL_DIR [--reps N] [--check FILE.npy]\n");
        return 2;
    }
    int reps = 5, prof = 0;
    const char *chk = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--check")) chk = argv[i + 1];
        else if (!strcmp(argv[i], "--profile")) prof = atoi(argv[i + 1]);
    }
    vlp_clip *m = vlp_clip_load(argv[1]);
    if (!m) {
        fprintf(stderr, "clip_bench: %s\n", vlp_last_error());
        return 1;
    }
    int S = m->cfg.image_size, ctx = m->cfg.context_length, E = m->cfg.embed_dim;
    if (prof > 0) {
        vlp_graph *g = vlp_graph_new();
        int64_t sh[4] = {prof, 3, S, S};
        vlp_tensor *px = vlp_input(g, "pixels", VLP_F32, 4, sh);
        vlp_tensor *y = vlp_clip_encode_image(g, m, px, NULL);
        if (!y || vlp_graph_build(g, y, VLP_BUILD_INFERENCE)) {
            fprintf(stderr, "clip_bench: %s\n", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
            return 1;
        }
        test_pixels(px->data, prof, S);
        vlp_graph_forward(g); /* warm-up */
        vlp_graph_set_profile(g, 1);
        double t0 = now_s(), c0 = (double)clock() / CLOCKS_PER_SEC;
        for (int i = 0; i < reps; i++) vlp_graph_forward(g);
        double wall = (now_s() - t0) / reps, cpu = ((double)clock() / CLOCKS_PER_SEC - c0) / reps;
        /* CPU seconds (all threads) tell the work done on a loaded machine, where wall time mostly
         * measures the scheduler */
        fprintf(stderr, "batch %d: %.2f ms per forward, %.2f CPU-ms (%d reps)\n", prof, wall * 1e3, cpu * 1e3, reps);
        vlp_graph_profile_print(g, stderr);
        vlp_graph_free(g);
        vlp_clip_free(m);
        return 0;
    }
    float *px = malloc(sizeof(float) * 32 * 3 * (size_t)S * S), *out = malloc(sizeof(float) * 32 * (size_t)E);
    int32_t *ids = malloc(sizeof(int32_t) * 32 * (size_t)ctx);
    double err_img = -1, err_txt = -1;
    if (chk) {
        vlp_clip_runner *r4 = vlp_clip_runner_new(m, 4);
        char tpath[4096];
        test_pixels(px, 4, S);
        test_ids(ids, 4, ctx);
        if (vlp_clip_embed_pixels(r4, px, 4, 0, out)) return 1;
        err_img = check(chk, out, 4, E);
        if (vlp_clip_embed_tokens(r4, ids, 4, 0, out)) return 1;
        snprintf(tpath, sizeof tpath, "%.*s_text.npy", (int)(strlen(chk) - 4), chk);
        err_txt = check(tpath, out, 4, E);
        vlp_clip_runner_free(r4);
    }
    vlp_clip_runner *r1 = vlp_clip_runner_new(m, 1), *r32 = vlp_clip_runner_new(m, 32);
    test_pixels(px, 1, S);
    double b1 = median_time(r1, run_img, px, 1, out, reps * 4);
    vlp_clip_runner_free(r1);
    test_pixels(px, 32, S);
    double b32 = median_time(r32, run_img, px, 32, out, reps);
    test_ids(ids, 32, ctx);
    double tx = median_time(r32, run_txt, ids, 32, out, reps);
    vlp_clip_runner_free(r32);
    /* FLOPs of one image through the image tower (matmuls only) */
    double W = m->cfg.vision_width, T = (S / m->cfg.patch_size) * (S / m->cfg.patch_size) + 1;
    double img_gflop = 2e-9 * (T * 3 * m->cfg.patch_size * m->cfg.patch_size * W +
                               m->cfg.vision_layers * (T * 4 * W * W + 2 * T * W * m->cfg.vision_mlp + 2 * T * T * W) +
                               W * E);
    printf("{\"impl\":\"vlp\",\"threads\":%d,\"image_b1_ms\":%.2f,\"image_b32_per_s\":%.2f,\"text_b32_per_s\":%.2f,"
           "\"image_gflop\":%.3f,\"image_b32_gflops\":%.1f,\"image_b1_gflops\":%.1f,\"check_image\":%.2e,"
           "\"check_text\":%.2e}\n",
           vlp_get_threads(), b1 * 1e3, 32 / b32, 32 / tx, img_gflop, img_gflop * 32 / b32, img_gflop / b1, err_img,
           err_txt);
    free(px), free(out), free(ids);
    vlp_clip_free(m);
    return 0;
}
