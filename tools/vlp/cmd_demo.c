/* vlp demo: a small pre-LN transformer learns to reverse token sequences; the
 * loss falls from ln(16) to near zero in a few seconds. A smoke test of the whole
 * engine (embedding, attention, layernorm, cross-entropy, AdamW, schedule). */
#include "cli.h"
#include "vlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- demo: a 2-block transformer learns to reverse a sequence of tokens ---- */

static void demo_usage(FILE *f) {
    fprintf(f, "usage: vlp demo [--steps N] [--batch N] [--seq N] [--width N] [--layers N] [--lr X] [--seed N]\n"
               "Trains a pre-LN transformer to output its input sequence reversed; prints loss and accuracy.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out, const char *flag) {
    long v;
    if (!cli_int("demo", flag, s, lo, hi, &v)) return 0;
    *out = (int)v;
    return 1;
}

int vlp_cmd_demo(int argc, char **argv) {
    int steps = 300, batch = 64, T = 12, D = 64, layers = 2, seed = 0, V = 16;
    float lr = 3e-3f;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            demo_usage(stdout);
            return 0;
        } else if (!v) {
            fprintf(stderr, "vlp demo: unknown or incomplete option '%s'\n", a);
            demo_usage(stderr);
            return 2;
        } else if (!strcmp(a, "--steps")) ok = parse_int(v, 1, 1000000, &steps, a);
        else if (!strcmp(a, "--batch")) ok = parse_int(v, 1, 65536, &batch, a);
        else if (!strcmp(a, "--seq")) ok = parse_int(v, 2, 4096, &T, a);
        else if (!strcmp(a, "--width")) ok = parse_int(v, 8, 8192, &D, a);
        else if (!strcmp(a, "--layers")) ok = parse_int(v, 1, 64, &layers, a);
        else if (!strcmp(a, "--seed")) ok = parse_int(v, 0, 1 << 30, &seed, a);
        else if (!strcmp(a, "--lr")) {
            lr = strtof(v, NULL);
            ok = lr > 0 && lr < 1;
            if (!ok) fprintf(stderr, "vlp demo: --lr wants a number in (0, 1), got '%s'\n", v);
        } else {
            fprintf(stderr, "vlp demo: unknown option '%s'\n", a);
            demo_usage(stderr);
            return 2;
        }
        if (!ok) return 2;
        i++;
    }
    vlp_transformer_config cfg = {.width = D, .heads = D >= 64 ? D / 32 : 2, .layers = layers, 
                                  .act = VLP_ACT_GELU, .ln_eps = 1e-5f, .causal = 0};
    vlp_params *P = vlp_params_new();
    vlp_block_params *blocks = calloc((size_t)layers, sizeof *blocks);
    int64_t sh_tok[] = {V, D}, sh_pos[] = {T, D}, sh_d[] = {D}, sh_head[] = {V, D}, sh_hb[] = {V};
    vlp_tensor *tok = vlp_params_add(P, "tok_emb.weight", 2, sh_tok, VLP_FLAG_NO_DECAY);
    vlp_tensor *pos = vlp_params_add(P, "pos_emb.weight", 2, sh_pos, VLP_FLAG_NO_DECAY);
    int rc = vlp_transformer_declare(P, "blocks", &cfg, blocks);
    vlp_tensor *lnf_w = vlp_params_add(P, "ln_f.weight", 1, sh_d, VLP_FLAG_NO_DECAY);
    vlp_tensor *lnf_b = vlp_params_add(P, "ln_f.bias", 1, sh_d, VLP_FLAG_NO_DECAY);
    vlp_tensor *head_w = vlp_params_add(P, "head.weight", 2, sh_head, 0);
    vlp_tensor *head_b = vlp_params_add(P, "head.bias", 1, sh_hb, VLP_FLAG_NO_DECAY);
    if (rc || !tok || !pos || !lnf_w || !lnf_b || !head_w || !head_b || vlp_params_alloc(P)) {
        fprintf(stderr, "vlp demo: %s\n", vlp_last_error());
        return 1;
    }
    vlp_init_normal(tok, 0, 0.02f, (uint64_t)seed * 7 + 1);
    vlp_init_normal(pos, 0, 0.02f, (uint64_t)seed * 7 + 2);
    vlp_transformer_init(&cfg, blocks, (uint64_t)seed);
    vlp_init_const(lnf_w, 1);
    vlp_init_normal(head_w, 0, 0.02f, (uint64_t)seed * 7 + 3);

    vlp_graph *g = vlp_graph_new();
    int64_t sh_ids[] = {batch, T}, sh_tg[] = {(int64_t)batch * T};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, sh_ids);
    vlp_tensor *targets = vlp_input(g, "targets", VLP_I32, 1, sh_tg);
    vlp_tensor *x = vlp_add(g, vlp_embedding(g, ids, tok), pos);
    x = vlp_transformer_forward(g, &cfg, blocks, x, NULL);
    x = vlp_layernorm(g, x, lnf_w, lnf_b, 1e-5f);
    int64_t sh_flat[] = {(int64_t)batch * T, D};
    vlp_tensor *logits = vlp_keep(vlp_linear(g, vlp_reshape(g, x, 2, sh_flat), head_w, head_b));
    vlp_tensor *loss = vlp_cross_entropy(g, logits, targets, -100);
    if (!loss || vlp_graph_build(g, loss, VLP_BUILD_TRAIN)) {
        fprintf(stderr, "vlp demo: %s\n", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        return 1;
    }
    vlp_adamw_config oc = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.01f,
                           .clip_norm = 1.0f};
    vlp_adamw *opt = vlp_adamw_new(P, &oc);
    printf("vlp demo: %d-block transformer (width %d, %d heads, %.2fM parameters) learns to reverse %d tokens "
           "(vocabulary %d), batch %d, %d threads\n",
           layers, D, cfg.heads, (double)vlp_params_numel(P) / 1e6, T, V, batch, vlp_get_threads());
    printf("chance loss ln(%d) = %.3f\n", V, log((double)V));
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)seed;
    double t0 = cli_now();
    int32_t *id = ids->data, *tg = targets->data;
    for (int step = 0; step < steps; step++) {
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < T; t++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                id[b * T + t] = (int32_t)(rng % (uint64_t)V);
            }
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < T; t++) tg[b * T + t] = id[b * T + (T - 1 - t)];
        float cur_lr = vlp_lr_warmup_cosine(step, steps / 10, steps, lr, lr * 0.05f);
        vlp_graph_set_training(g, 1, (uint64_t)step);
        vlp_params_zero_grad(P);
        if ((rc = vlp_graph_forward(g)) || (rc = vlp_graph_backward(g, NULL)) ||
            (rc = vlp_adamw_step(opt, cur_lr, 1.0f, NULL))) {
            fprintf(stderr, "vlp demo: step %d: %s\n", step, vlp_last_error());
            return 1;
        }
        if (step % 25 == 0 || step == steps - 1) {
            const float *lg = logits->data;
            int correct = 0;
            for (int r = 0; r < batch * T; r++) {
                int best = 0;
                for (int c = 1; c < V; c++)
                    if (lg[r * V + c] > lg[r * V + best]) best = c;
                correct += best == tg[r];
            }
            double el = cli_now() - t0;
            printf("step %4d  loss %.4f  acc %5.1f%%  lr %.2e  %.0f tokens/s\n", step, *(float *)loss->data,
                   100.0 * correct / (batch * T), (double)cur_lr, (double)(step + 1) * batch * T / el);
            fflush(stdout);
        }
    }
    printf("done in %.1f s\n", cli_now() - t0);
    vlp_adamw_free(opt);
    vlp_graph_free(g);
    vlp_params_free(P);
    free(blocks);
    return 0;
}

