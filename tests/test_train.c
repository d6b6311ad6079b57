/* Contrastive training: SigLIP and ITC gradients against finite differences of a
 * double-precision reference, the trainer on a tiny synthetic image-text set (loss falls,
 * gradient accumulation, logit-scale clamp, NaN stop), exact resume, atomic checkpoints (a
 * crash mid-write keeps the previous one), retrieval metrics and zero-shot classification on
 * hand-made cases. */
#include "test.h"
#include "test_util.h"
#include "train/train_internal.h"
#include "vlp_safetensors.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- deterministic RNG -------------------------------------------------------------------- */
static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- gradient checks ------------------------------------------------------------------------ */
/* Reference loss in double: kind 0 CLIP (symmetric InfoNCE), 1 SigLIP; a, b L2-normalised here. */
static double ref_loss(int kind, const double *a0, const double *b0, double ls, double bias, int N, int E) {
    double a[64 * 8], b[64 * 8], L[64 * 64];
    for (int i = 0; i < N; i++) {
        double na = 0, nb = 0;
        for (int e = 0; e < E; e++) na += a0[i * E + e] * a0[i * E + e], nb += b0[i * E + e] * b0[i * E + e];
        na = sqrt(na), nb = sqrt(nb);
        for (int e = 0; e < E; e++) a[i * E + e] = a0[i * E + e] / na, b[i * E + e] = b0[i * E + e] / nb;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = 0;
            for (int e = 0; e < E; e++) d += a[i * E + e] * b[j * E + e];
            L[i * N + j] = exp(ls) * d + (kind ? bias : 0);
        }
    double loss = 0;
    if (kind) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) loss += log1p(exp(i == j ? -L[i * N + j] : L[i * N + j]));
        return loss / N;
    }
    for (int i = 0; i < N; i++) {
        double sr = 0, sc = 0;
        for (int j = 0; j < N; j++) sr += exp(L[i * N + j]), sc += exp(L[j * N + i]);
        loss += 0.5 * (log(sr) + log(sc)) - L[i * N + i];
    }
    return loss / N;
}

static void gradcheck_itc(int kind, int N, int E) {
    vlp_graph *g = vlp_graph_new();
    vlp_params *P = vlp_params_new();
    int64_t s[2] = {N, E};
    vlp_tensor *a = vlp_input_grad(g, "a", 2, s), *b = vlp_input_grad(g, "b", 2, s);
    vlp_tensor *ls = vlp_params_add(P, "log_scale", 0, NULL, 0), *bias = vlp_params_add(P, "bias", 0, NULL, 0);
    vlp_params_alloc(P);
    vlp_tensor *y = vlp_itc_loss(g, a, b, ls, bias, kind);
    int ok = y && !vlp_graph_build(g, y, VLP_BUILD_TRAIN);
    CHECK(ok, "itc kind %d: build: %s", kind, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    if (!ok) goto out;
    double ad[64 * 8], bd[64 * 8], lsd = 0.3 + urand(), bd0 = -2.0 + 2 * urand();
    for (int i = 0; i < N * E; i++) ad[i] = 2 * urand() - 1, bd[i] = 2 * urand() - 1;
    for (int i = 0; i < N * E; i++) {
        ((float *)a->data)[i] = (float)ad[i];
        ((float *)b->data)[i] = (float)bd[i];
        ad[i] = ((float *)a->data)[i]; /* the reference sees exactly the engine's inputs */
        bd[i] = ((float *)b->data)[i];
    }
    *(float *)ls->data = (float)lsd;
    *(float *)bias->data = (float)bd0;
    lsd = *(float *)ls->data;
    bd0 = *(float *)bias->data;
    vlp_params_zero_grad(P);
    vlp_graph_forward(g);
    vlp_graph_backward(g, NULL);
    double ref = ref_loss(kind, ad, bd, lsd, bd0, N, E), got = *(float *)y->data;
    CHECK(fabs(got - ref) <= 2e-5 * (1 + fabs(ref)), "itc kind %d N %d: loss %.8g, reference %.8g", kind, N, got, ref);
    /* central differences in double over every input */
    const double h = 1e-6;
    double worst = 0;
    struct {
        double *x;
        int n;
        const float *grad;
    } vars[4] = {{ad, N * E, a->grad}, {bd, N * E, b->grad}, {&lsd, 1, ls->grad}, {&bd0, 1, bias->grad}};
    for (int v = 0; v < (kind ? 4 : 3); v++) {
        double num_max = 0, err_max = 0;
        for (int i = 0; i < vars[v].n; i++) {
            double keep = vars[v].x[i];
            vars[v].x[i] = keep + h;
            double lp = ref_loss(kind, ad, bd, lsd, bd0, N, E);
            vars[v].x[i] = keep - h;
            double lm = ref_loss(kind, ad, bd, lsd, bd0, N, E);
            vars[v].x[i] = keep;
            double num = (lp - lm) / (2 * h);
            num_max = fmax(num_max, fabs(num));
            err_max = fmax(err_max, fabs(num - vars[v].grad[i]));
        }
        double rel = err_max / fmax(num_max, 1e-3);
        worst = fmax(worst, rel);
        CHECK(rel <= 1e-3, "itc kind %d N %d E %d: input %d gradient error %.3g (max |grad| %.3g)", kind, N, E, v, rel,
              num_max);
    }
    if (kind == 1) CHECK(bias->grad[0] != 0, "siglip: bias gradient is zero");
    else CHECK(bias->grad[0] == 0, "clip: the bias receives a gradient (%g)", bias->grad[0]);
    printf("itc %-6s N %2d E %d: loss %.6f (ref %.6f), worst gradient error %.2e\n", kind ? "siglip" : "clip", N, E,
           got, ref, worst);
out:
    vlp_graph_free(g);
    vlp_params_free(P);
}

static void test_siglip_errors(void) {
    vlp_graph *g = vlp_graph_new();
    int64_t s1[2] = {4, 3}, s2[2] = {5, 3};
    vlp_tensor *a = vlp_input(g, "a", VLP_F32, 2, s1), *b = vlp_input(g, "b", VLP_F32, 2, s2);
    vlp_tensor *ls = vlp_input(g, "ls", VLP_F32, 0, NULL), *bias = vlp_input(g, "bias", VLP_F32, 0, NULL);
    CHECK(vlp_siglip(g, a, b, ls, bias) == NULL, "siglip accepted mismatched shapes");
    CHECK(vlp_graph_error(g) && strstr(vlp_graph_error(g), "vlp_siglip"), "siglip error names the op: %s",
          vlp_graph_error(g) ? vlp_graph_error(g) : "(none)");
    vlp_graph_free(g);
}

/* ---- synthetic image-text data ------------------------------------------------------------------ */
/* K concepts; the image of concept c is a fixed random pattern plus noise, its caption the
 * tokens [1, 2 + c, 2 + (c * 7) % K, EOT] (EOT = vocab - 1, the largest id, where CLIP pools). */
typedef struct {
    int K, B, S, T, V;
    int64_t bpe, epoch, batch;
    uint64_t seed;
    float *pixels;
    int32_t *tokens;
    int64_t index[256];
} synth;

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static float u01(uint64_t k) { return (float)(mix(k) >> 40) * (1.0f / 16777216.0f); }

static int synth_next(void *ctx, vlp_batch *out) {
    synth *d = ctx;
    int px = 3 * d->S * d->S;
    for (int i = 0; i < d->B; i++) {
        uint64_t key = mix(d->seed ^ mix((uint64_t)d->epoch * 1000003u + (uint64_t)d->batch * 1009u + (uint64_t)i));
        int c = (int)(key % (uint64_t)d->K);
        for (int p = 0; p < px; p++)
            d->pixels[i * px + p] = 2.0f * u01((uint64_t)c * 7919u + (uint64_t)p) - 1.0f + 0.2f * (u01(key + (uint64_t)p) - 0.5f);
        int32_t *t = d->tokens + i * d->T;
        memset(t, 0, (size_t)d->T * sizeof *t);
        t[0] = 1;
        t[1] = 2 + c;
        t[2] = 2 + (c * 7) % d->K;
        t[3] = d->V - 1;
        d->index[i] = c;
    }
    out->n = d->B;
    out->pixels = d->pixels;
    out->tokens = d->tokens;
    out->index = d->index;
    out->epoch = d->epoch;
    out->batch = d->batch;
    if (++d->batch == d->bpe) d->batch = 0, d->epoch++;
    return 0;
}

static int synth_seek(void *ctx, int64_t e, int64_t b) {
    synth *d = ctx;
    d->epoch = e;
    d->batch = b;
    return 0;
}

static void synth_init(synth *d, vlp_batch_source *src, const vlp_clip_config *c, int B) {
    memset(d, 0, sizeof *d);
    d->K = 12;
    d->B = B;
    d->S = c->image_size;
    d->T = c->context_length;
    d->V = c->vocab_size;
    d->bpe = 5;
    d->seed = 42;
    d->pixels = malloc((size_t)B * 3 * d->S * d->S * sizeof(float));
    d->tokens = malloc((size_t)B * d->T * sizeof(int32_t));
    memset(src, 0, sizeof *src);
    src->ctx = d;
    src->next = synth_next;
    src->seek = synth_seek;
    src->batches_per_epoch = d->bpe;
}
static void synth_free(synth *d) {
    free(d->pixels);
    free(d->tokens);
}

static vlp_clip_config tiny_config(void) {
    vlp_clip_config c;
    vlp_clip_preset("tiny", &c);
    c.embed_dim = 16;
    c.image_size = 16;
    c.patch_size = 8;
    c.vision_width = 32;
    c.vision_layers = 1;
    c.vision_heads = 2;
    c.vision_mlp = 64;
    c.context_length = 8;
    c.vocab_size = 32;
    c.text_width = 32;
    c.text_layers = 1;
    c.text_heads = 2;
    c.text_mlp = 64;
    return c;
}

static vlp_train_config tiny_train(int64_t steps) {
    vlp_train_config t;
    vlp_train_config_default(&t);
    t.batch_size = 12;
    t.steps = steps;
    t.warmup = 3;
    t.lr = 3e-3f;
    t.weight_decay = 0.01f;
    t.clip_norm = 1.0f;
    return t;
}

static void test_trainer_learns(int kind) {
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 1);
    vlp_train_config tc = tiny_train(60);
    tc.loss = kind;
    vlp_trainer *t = vlp_trainer_new(m, &tc);
    CHECK(t != NULL, "trainer_new: %s", vlp_last_error());
    if (!t) {
        vlp_clip_free(m);
        return;
    }
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &cc, tc.batch_size);
    double first = 0, last = 0;
    int rc = 0;
    vlp_train_stats st;
    for (int s = 0; s < 60 && !rc; s++) {
        rc = vlp_trainer_step(t, &src, &st);
        if (s < 5) first += st.loss / 5;
        if (s >= 55) last += st.loss / 5;
    }
    CHECK(rc == 0, "%s training step failed: %s", kind ? "siglip" : "clip", vlp_last_error());
    CHECK(last < 0.5 * first, "%s loss did not fall enough: first 5 steps %.4f, last 5 %.4f", kind ? "siglip" : "clip",
          first, last);
    CHECK(st.step == 60 && vlp_trainer_step_count(t) == 60, "step count %lld", (long long)st.step);
    CHECK(st.epoch == 12 && st.batch == 0, "data position after 60 steps of 5 per epoch: %lld/%lld",
          (long long)st.epoch, (long long)st.batch);
    CHECK(st.lr == vlp_lr_warmup_cosine(59, 3, 60, tc.lr, 0) && st.lr < 1e-3f * tc.lr,
          "lr of the last step is %g, want the end of the cosine", st.lr);
    if (kind) CHECK(st.logit_bias != -10.0f, "siglip bias did not move (%g)", st.logit_bias);
    printf("trainer %-6s: loss %.4f -> %.4f over 60 steps (logit scale %.2f%s)\n", kind ? "siglip" : "clip", first,
           last, st.logit_scale, kind ? ", bias trained" : "");
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_clip_free(m);
}

/* Accumulation: batch 12 as 2 x 6 gives the mean of the two micro-batch losses, and the
 * parameter update of one step equals the one from summing both micro-batch gradients. */
static void test_accumulation_and_clamp(void) {
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 3);
    vlp_train_config tc = tiny_train(4);
    tc.accum_steps = 2;
    vlp_trainer *t = vlp_trainer_new(m, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &cc, tc.batch_size);
    *(float *)m->logit_scale->data = 7.0f; /* above ln 100: clamped after the step */
    vlp_train_stats st;
    int rc = t ? vlp_trainer_step(t, &src, &st) : -1;
    CHECK(rc == 0, "accumulation step: %s", vlp_last_error());
    CHECK(*(float *)m->logit_scale->data <= logf(100.0f) + 1e-6f, "logit scale not clamped: %g",
          *(float *)m->logit_scale->data);
    /* the same data through two graphs of 6: mean loss */
    vlp_clip *m2 = vlp_clip_new(&cc, 3);
    *(float *)m2->logit_scale->data = 7.0f;
    vlp_graph *g = vlp_graph_new();
    int64_t sp[4] = {6, 3, cc.image_size, cc.image_size}, si[2] = {6, cc.context_length};
    vlp_tensor *px = vlp_input(g, "p", VLP_F32, 4, sp), *ids = vlp_input(g, "i", VLP_I32, 2, si);
    vlp_tensor *y = vlp_itc_loss(g, vlp_clip_encode_image(g, m2, px, NULL), vlp_clip_encode_text(g, m2, ids, NULL),
                                 m2->logit_scale, NULL, VLP_ITC_CLIP);
    vlp_graph_build(g, y, VLP_BUILD_TRAIN);
    synth_seek(&d, 0, 0);
    vlp_batch b;
    synth_next(&d, &b);
    double mean = 0;
    for (int k = 0; k < 2; k++) {
        memcpy(px->data, b.pixels + k * 6 * 3 * cc.image_size * cc.image_size,
               (size_t)6 * 3 * cc.image_size * cc.image_size * sizeof(float));
        memcpy(ids->data, b.tokens + k * 6 * cc.context_length, (size_t)6 * cc.context_length * sizeof(int32_t));
        vlp_graph_forward(g);
        mean += *(float *)y->data / 2;
    }
    CHECK(fabs(mean - st.loss) < 1e-6 * (1 + fabs(mean)), "accumulated loss %.8f, mean of micro-batches %.8f", st.loss,
          mean);
    vlp_graph_free(g);
    vlp_clip_free(m2);
    /* NaN: a poisoned parameter stops the step with a clear error */
    ((float *)m->vis_proj->data)[0] = NAN;
    rc = vlp_trainer_step(t, &src, &st);
    CHECK(rc == VLP_ERR_NUMERIC && strstr(vlp_last_error(), "NaN") && strstr(vlp_last_error(), "step 2"),
          "NaN loss: rc %d, message '%s'", rc, vlp_last_error());
    CHECK(vlp_trainer_step_count(t) == 1, "a failed step was counted");
    /* config errors */
    vlp_train_config bad = tiny_train(4);
    bad.accum_steps = 5;
    CHECK(vlp_trainer_new(m, &bad) == NULL && strstr(vlp_last_error(), "accum_steps"), "bad accum: %s",
          vlp_last_error());
    bad = tiny_train(4);
    bad.warmup = 9;
    CHECK(vlp_trainer_new(m, &bad) == NULL && strstr(vlp_last_error(), "warmup"), "bad warmup: %s", vlp_last_error());
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_clip_free(m);
}

/* ---- runs, resume, checkpoints ------------------------------------------------------------------ */
static char tmpdir[256];

static int run(const char *dir, int64_t steps, int resume, int stop, int kind, float **params_out) {
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 5);
    vlp_train_config tc = tiny_train(steps);
    tc.loss = kind;
    vlp_trainer *t = vlp_trainer_new(m, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &cc, tc.batch_size);
    vlp_run_options o = {.run_dir = dir, .log_every = 1, .save_every = 4, .resume = resume, .save_final = 1};
    if (stop) o.on_step = test_stop_on_step, o.ctx = &stop;
    int rc = t ? vlp_train_run(t, &src, &o) : -1;
    if (params_out) {
        int64_t n = vlp_params_numel(m->params);
        *params_out = malloc((size_t)n * sizeof(float));
        memcpy(*params_out, vlp_params_data(m->params), (size_t)n * sizeof(float));
    }
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_clip_free(m);
    return rc;
}

static void test_resume(int kind) {
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/full%d", tmpdir, kind);
    snprintf(b, sizeof b, "%s/split%d", tmpdir, kind);
    float *pa = NULL, *pb = NULL;
    int ra = run(a, 10, 0, 0, kind, &pa);
    CHECK(ra == 0, "uninterrupted run: %s", vlp_last_error());
    /* stop after step 6 (on_step asks to stop: checkpoint at 6), resume to 10 */
    int rb = run(b, 10, 0, 6, kind, NULL);
    CHECK(rb == 0, "first half: %s", vlp_last_error());
    char lp[400], name[64] = "";
    snprintf(lp, sizeof lp, "%s/checkpoints/latest", b);
    FILE *f = fopen(lp, "r");
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = 0;
        fclose(f);
    }
    CHECK(!strcmp(name, "step_00000006\n"), "latest after the stop: '%s'", name);
    /* a second fresh run in a directory with checkpoints is refused */
    CHECK(run(b, 10, 0, 0, kind, NULL) == VLP_ERR_ARG && strstr(vlp_last_error(), "--resume"),
          "fresh run over a run dir: %s", vlp_last_error());
    rb = run(b, 10, 1, 0, kind, &pb);
    CHECK(rb == 0, "resumed run: %s", vlp_last_error());
    char la[10][32], lb[10][32];
    memset(la, 0, sizeof la);
    memset(lb, 0, sizeof lb);
    int na = test_read_losses(a, la, 10), nb = test_read_losses(b, lb, 10);
    CHECK(na == 10 && nb == 10, "metrics lines: %d and %d, want 10 each (resumed run rewrites none twice)", na, nb);
    int same = 1;
    for (int i = 0; i < 10; i++) same &= !strcmp(la[i], lb[i]) && la[i][0];
    CHECK(same, "%s resumed losses differ from the uninterrupted run (step 7: %s vs %s)", kind ? "siglip" : "clip",
          la[6], lb[6]);
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 5);
    int64_t n = vlp_params_numel(m->params);
    CHECK(pa && pb && !memcmp(pa, pb, (size_t)n * sizeof(float)),
          "%s final parameters differ between resumed and uninterrupted runs", kind ? "siglip" : "clip");
    printf("resume %-6s: 10 steps = 6 + resume 4, losses and parameters bit-identical (last loss %s)\n",
           kind ? "siglip" : "clip", la[9]);
    /* the final model loads with vlp_clip_load */
    char md[400];
    snprintf(md, sizeof md, "%s/model", b);
    vlp_clip *fm = vlp_clip_load(md);
    CHECK(fm && !memcmp(vlp_params_data(fm->params), pb, (size_t)n * sizeof(float)), "final model: %s",
          fm ? "parameters differ" : vlp_last_error());
    vlp_clip_free(fm);
    /* checkpoints kept: the newest 2 (8 and 10) */
    snprintf(md, sizeof md, "%s/checkpoints/step_00000004", b);
    CHECK(access(md, F_OK) != 0, "old checkpoint %s not pruned", md);
    snprintf(md, sizeof md, "%s/checkpoints/step_00000008/train_state.safetensors", b);
    CHECK(access(md, F_OK) == 0, "checkpoint %s missing", md);
    vlp_clip_free(m);
    free(pa);
    free(pb);
}

static const char *crash_stage;
static void crash_hook(const char *stage) {
    if (!strcmp(stage, crash_stage)) _exit(7);
}

static void test_atomic_checkpoint(void) {
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 9);
    vlp_train_config tc = tiny_train(8);
    vlp_trainer *t = vlp_trainer_new(m, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &cc, tc.batch_size);
    vlp_train_stats st;
    vlp_trainer_step(t, &src, &st);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/ckpt", tmpdir);
    int rc = vlp_trainer_save(t, dir, NULL);
    CHECK(rc == 0, "save: %s", vlp_last_error());
    int64_t n = vlp_params_numel(m->params);
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, vlp_params_data(m->params), (size_t)n * sizeof(float));
    vlp_trainer_step(t, &src, &st); /* parameters move on */
    const char *stages[] = {"model", "state"};
    for (int s = 0; s < 2; s++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            crash_stage = stages[s];
            vlp_checkpoint_test_hook = crash_hook;
            vlp_trainer_save(t, dir, NULL);
            _exit(0); /* the hook did not fire */
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "crash at '%s' did not happen (status %d)", stages[s],
              status);
        /* the old checkpoint is intact */
        vlp_clip *old = vlp_clip_load(dir);
        CHECK(old && !memcmp(vlp_params_data(old->params), before, (size_t)n * sizeof(float)),
              "after a crash at '%s' the checkpoint is %s", stages[s], old ? "changed" : vlp_last_error());
        vlp_clip_free(old);
    }
    /* loading the surviving checkpoint restores step 1; a new save replaces it and cleans up */
    vlp_trainer *t2 = vlp_trainer_new(m, &tc);
    rc = vlp_trainer_load(t2, dir);
    CHECK(rc == 0 && vlp_trainer_step_count(t2) == 1, "load after crash: rc %d step %lld: %s", rc,
          (long long)vlp_trainer_step_count(t2), vlp_last_error());
    CHECK(!memcmp(vlp_params_data(m->params), before, (size_t)n * sizeof(float)), "load did not restore the params");
    rc = vlp_trainer_save(t2, dir, NULL);
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    CHECK(rc == 0 && access(tmp, F_OK) != 0, "save after a crash: rc %d, stale %s %s", rc, tmp,
          access(tmp, F_OK) ? "removed" : "left");
    /* a corrupt state file is an error naming it, and leaves the trainer untouched */
    char sp[400];
    snprintf(sp, sizeof sp, "%s/train_state.safetensors", dir);
    FILE *f = fopen(sp, "r+b");
    if (f) {
        fseek(f, 10, SEEK_SET);
        fputs("garbage!", f);
        fclose(f);
    }
    rc = vlp_trainer_load(t2, dir);
    CHECK(rc != 0 && strstr(vlp_last_error(), "train_state"), "corrupt state: rc %d '%s'", rc, vlp_last_error());
    CHECK(vlp_trainer_step_count(t2) == 1, "a failed load changed the step");
    free(before);
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_trainer_free(t2);
    vlp_clip_free(m);
}

static void test_diverged_run(void) {
    vlp_clip_config cc = tiny_config();
    vlp_clip *m = vlp_clip_new(&cc, 2);
    vlp_train_config tc = tiny_train(6);
    vlp_trainer *t = vlp_trainer_new(m, &tc);
    synth d;
    vlp_batch_source src;
    synth_init(&d, &src, &cc, tc.batch_size);
    *(float *)m->logit_scale->data = NAN; /* (NaN inside the towers trips UBSan in vmath.h's exp) */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/diverged", tmpdir);
    vlp_run_options o = {.run_dir = dir, .log_every = 1, .save_every = 1};
    int rc = vlp_train_run(t, &src, &o);
    CHECK(rc == VLP_ERR_NUMERIC && strstr(vlp_last_error(), "step 1"), "diverged run: rc %d '%s'", rc,
          vlp_last_error());
    char p[400];
    snprintf(p, sizeof p, "%s/checkpoints/latest", dir);
    CHECK(access(p, F_OK) != 0, "a diverged state was checkpointed");
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "r");
    char line[1024] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    CHECK(strstr(line, "\"error\""), "metrics.jsonl has no error line: %s", line);
    synth_free(&d);
    vlp_trainer_free(t);
    vlp_clip_free(m);
}

/* ---- evaluation --------------------------------------------------------------------------------- */
static void test_retrieval_metrics(void) {
    /* 4 images x 4 texts, text j belongs to image j.
     * t2i (columns): text 0 -> rank 1; text 1: 0.5 below 0.9 -> 2; text 2: 0.2 below 0.3, 0.7, 0.4 -> 4;
     * text 3: 0.8 ties image 0, which counts in its favour -> 1.
     * i2t (rows): image 0 -> 1; image 1: 0.5 below 0.6, 0.7 -> 3; image 2: tie -> 1; image 3: 0.8 below 0.9 -> 2. */
    const float sim[16] = {0.9f, 0.1f, 0.3f, 0.8f, /* image 0 */
                           0.6f, 0.5f, 0.7f, 0.0f, /* image 1 */
                           0.1f, 0.2f, 0.2f, 0.1f, /* image 2 */
                           0.0f, 0.9f, 0.4f, 0.8f};
    vlp_retrieval_result r;
    int rc = vlp_retrieval_metrics(sim, 4, 4, NULL, &r);
    CHECK(rc == 0, "retrieval: %s", vlp_last_error());
    /* t2i ranks: 1, 2, 4, 1 */
    CHECK(fabs(r.t2i.r1 - 0.5) < 1e-12 && r.t2i.r5 == 1.0 && fabs(r.t2i.mean_rank - 2.0) < 1e-12 &&
              r.t2i.median_rank == 1.5,
          "t2i: r1 %g r5 %g mean %g median %g", r.t2i.r1, r.t2i.r5, r.t2i.mean_rank, r.t2i.median_rank);
    /* i2t ranks: 1, 3, 1, 2 */
    CHECK(fabs(r.i2t.r1 - 0.5) < 1e-12 && fabs(r.i2t.mean_rank - 1.75) < 1e-12 && r.i2t.queries == 4,
          "i2t: r1 %g mean %g n %lld", r.i2t.r1, r.i2t.mean_rank, (long long)r.i2t.queries);
    /* two captions per image: image 0 has texts 0, 1; image 1 has texts 2, 3 */
    const float s2[8] = {0.1f, 0.9f, 0.5f, 0.2f, /* image 0: best own text 0.9 -> rank 1 */
                         0.3f, 0.8f, 0.4f, 0.1f}; /* image 1: best own 0.4 < 0.8 -> rank 2 */
    const int64_t map[4] = {0, 0, 1, 1};
    rc = vlp_retrieval_metrics(s2, 2, 4, map, &r);
    /* t2i: text 0: 0.1 vs 0.3 -> 2; text 1: 0.9 vs 0.8 -> 1; text 2: 0.4 vs 0.5 -> 2; text 3: 0.1 vs 0.2 -> 2 */
    CHECK(rc == 0 && r.i2t.queries == 2 && r.i2t.r1 == 0.5 && r.i2t.mean_rank == 1.5 && r.t2i.queries == 4 &&
              r.t2i.r1 == 0.25 && r.t2i.mean_rank == 1.75,
          "multi-caption: i2t r1 %g mean %g; t2i r1 %g mean %g", r.i2t.r1, r.i2t.mean_rank, r.t2i.r1,
          r.t2i.mean_rank);
    /* recall@10 with 12 candidates */
    float big[144];
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 12; j++) big[i * 12 + j] = (float)((i * 5 + j * 7) % 12) + (i == j ? 0.5f : 0.0f);
    rc = vlp_retrieval_metrics(big, 12, 12, NULL, &r);
    int h10 = 0;
    for (int j = 0; j < 12; j++) {
        int better = 0;
        for (int i = 0; i < 12; i++) better += big[i * 12 + j] > big[j * 12 + j];
        h10 += better < 10;
    }
    CHECK(rc == 0 && fabs(r.t2i.r10 - h10 / 12.0) < 1e-12, "r10 %g, want %g", r.t2i.r10, h10 / 12.0);
    const int64_t badmap[2] = {0, 5};
    CHECK(vlp_retrieval_metrics(s2, 2, 2, badmap, &r) == VLP_ERR_ARG, "out-of-range map accepted");
}

static void test_zeroshot(void) {
    /* 3 classes x 2 templates in 2-D; class c's prompts point near angle c * 120 degrees */
    const float txt[12] = {1, 0.2f, 2, -0.4f,        /* class 0: about (1, 0), unnormalised on purpose */
                           -0.5f, 0.8f, -0.4f, 0.9f, /* class 1 */
                           -0.5f, -0.9f, -1, -1.6f}; /* class 2 */
    float w[6];
    vlp_zeroshot_weights(txt, 3, 2, 2, w);
    /* class 0: mean of normalised (1, .2) and (2, -.4) = (0.98058, 0) -> (1, 0) */
    CHECK(fabs(w[0] - 1) < 1e-6 && fabs(w[1]) < 1e-6, "class 0 weight (%g, %g), want (1, 0)", w[0], w[1]);
    CHECK(fabs(w[2] * w[2] + w[3] * w[3] - 1) < 1e-6, "weights are not renormalised");
    const float img[10] = {3, 0.1f, -1, 1.5f, -0.2f, -1, 0.1f, 1, -1, 0.05f};
    const int labels[5] = {0, 1, 2, 0, -1};
    int pred[5];
    vlp_zeroshot_result r;
    int rc = vlp_zeroshot_eval(img, 5, w, 3, 2, labels, pred, &r);
    /* predictions: 0, 1, 2, 1 (0.1, 1 is nearest class 1), and image 4 (-1, .05) is nearer 1 than 2 */
    CHECK(rc == 0 && pred[0] == 0 && pred[1] == 1 && pred[2] == 2 && pred[3] == 1 && pred[4] == 1,
          "predictions %d %d %d %d %d", pred[0], pred[1], pred[2], pred[3], pred[4]);
    CHECK(r.n == 4 && fabs(r.top1 - 0.75) < 1e-12 && r.top5 == 1.0, "top1 %g top5 %g n %lld", r.top1, r.top5,
          (long long)r.n);
    const int bad[1] = {3};
    CHECK(vlp_zeroshot_eval(img, 1, w, 3, 2, bad, NULL, &r) == VLP_ERR_ARG, "label 3 of 3 classes accepted");
    char buf[64];
    CHECK(vlp_format_prompt("an emoji of {category}", "food", buf, sizeof buf) > 0 && !strcmp(buf, "an emoji of food"),
          "prompt: %s", buf);
    CHECK(vlp_format_prompt("a {} emoji", "flag", buf, sizeof buf) > 0 && !strcmp(buf, "a flag emoji"), "prompt: %s",
          buf);
    CHECK(vlp_format_prompt("a {} emoji", "flag", buf, 6) < 0, "overflow not reported");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_train_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    for (int kind = 0; kind < 2; kind++) {
        gradcheck_itc(kind, 1, 3);
        gradcheck_itc(kind, 5, 4);
        gradcheck_itc(kind, 13, 6);
    }
    test_siglip_errors();
    test_retrieval_metrics();
    test_zeroshot();
    test_trainer_learns(VLP_ITC_CLIP);
    test_trainer_learns(VLP_ITC_SIGLIP);
    test_accumulation_and_clamp();
    test_resume(VLP_ITC_CLIP);
    test_resume(VLP_ITC_SIGLIP);
    test_atomic_checkpoint();
    test_diverged_run();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("note: could not remove %s\n", tmpdir);
    return test_finish();
}
