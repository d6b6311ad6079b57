/* vlp side of the training-step benchmark: the model of bench/torch_train_step.py
 * (a stack of pre-LN blocks with QuickGELU, final LayerNorm, MSE to a fixed
 * random target, AdamW lr 1e-4 betas (0.9, 0.98) eps 1e-6 wd 0.1), timed over
 * forward + backward + optimiser step. Prints one JSON line.
 *
 *   build/bench/train_step --width 128 [--layers 4 --batch 256 --tokens 65 --steps 10 --warmup 3]
 */
#include "vlp.h"

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

int main(int argc, char **argv) {
    int width = 128, layers = 4, heads = 0, batch = 256, tokens = 65, steps = 10, warmup = 3, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--width")) width = v;
        else if (!strcmp(argv[i], "--layers")) layers = v;
        else if (!strcmp(argv[i], "--heads")) heads = v;
        else if (!strcmp(argv[i], "--batch")) batch = v;
        else if (!strcmp(argv[i], "--tokens")) tokens = v;
        else if (!strcmp(argv[i], "--steps")) steps = v;
        else if (!strcmp(argv[i], "--warmup")) warmup = v;
        else if (!strcmp(argv[i], "--threads")) threads = v;
        else {
            fprintf(stderr, "train_step: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!heads) heads = width / 64 > 2 ? width / 64 : 2;
    if (threads) vlp_set_threads(threads);
    vlp_transformer_config cfg = {.width = width, .heads = heads, .layers = layers, 
                                  .act = VLP_ACT_QUICK_GELU, .ln_eps = 1e-5f, .causal = 0};
    vlp_params *P = vlp_params_new();
    vlp_block_params *blocks = calloc((size_t)layers, sizeof *blocks);
    int64_t sd[] = {width};
    vlp_transformer_declare(P, "blocks", &cfg, blocks);
    vlp_tensor *lw = vlp_params_add(P, "ln_f.weight", 1, sd, VLP_FLAG_NO_DECAY);
    vlp_tensor *lb = vlp_params_add(P, "ln_f.bias", 1, sd, VLP_FLAG_NO_DECAY);
    if (vlp_params_alloc(P)) {
        fprintf(stderr, "train_step: %s\n", vlp_last_error());
        return 1;
    }
    vlp_transformer_init(&cfg, blocks, 0);
    vlp_init_const(lw, 1.0f);
    vlp_graph *g = vlp_graph_new();
    int64_t sx[] = {batch, tokens, width};
    vlp_tensor *x = vlp_input(g, "x", VLP_F32, 3, sx), *target = vlp_input(g, "target", VLP_F32, 3, sx);
    vlp_tensor *y = vlp_layernorm(g, vlp_transformer_forward(g, &cfg, blocks, x, NULL), lw, lb, 1e-5f);
    vlp_tensor *loss = vlp_mse(g, y, target);
    if (!loss || vlp_graph_build(g, loss, VLP_BUILD_TRAIN)) {
        fprintf(stderr, "train_step: %s\n", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        return 1;
    }
    vlp_init_normal(x, 0, 1, 11);
    vlp_init_normal(target, 0, 1, 12);
    vlp_adamw_config oc = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.1f};
    vlp_adamw *opt = vlp_adamw_new(P, &oc);
    double *times = calloc((size_t)steps, sizeof *times);
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now_s();
        vlp_params_zero_grad(P);
        if (vlp_graph_forward(g) || vlp_graph_backward(g, NULL) || vlp_adamw_step(opt, 1e-4f, 1.0f, NULL)) {
            fprintf(stderr, "train_step: step %d: %s\n", s, vlp_last_error());
            return 1;
        }
        if (s >= warmup) times[s - warmup] = now_s() - t0;
    }
    if (getenv("VLP_PROFILE")) vlp_graph_profile_print(g, stderr);
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double B = batch, T = tokens, D = width;
    double gflop = 3.0 * layers * (24.0 * B * T * D * D + 4.0 * B * T * T * D) * 1e-9;
    double med = times[steps / 2];
    printf("{\"impl\":\"vlp\",\"threads\":%d,\"width\":%d,\"layers\":%d,\"heads\":%d,\"batch\":%d,\"tokens\":%d,"
           "\"median_s\":%.4f,\"min_s\":%.4f,\"steps\":%d,\"gflop_per_step\":%.2f,\"gflops_at_median\":%.1f,"
           "\"loss\":%.6f,\"arena_mib\":%.1f}\n",
           vlp_get_threads(), width, layers, heads, batch, tokens, med, times[0], steps, gflop, gflop / med,
           *(float *)loss->data, vlp_graph_arena_bytes(g) / 1048576.0);
    free(times);
    vlp_adamw_free(opt);
    vlp_graph_free(g);
    vlp_params_free(P);
    free(blocks);
    return 0;
}
