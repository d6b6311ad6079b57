/* Gradient checks for every op: analytic gradients (the engine's backward
 * kernels) against central finite differences of a naive double-precision
 * reference forward written here, on random shapes including odd sizes.
 *
 * For each case: build a graph (float inputs via vlp_input_grad, weights via a
 * vlp_params store), fill it with deterministic random values, run forward and
 * compare with the reference, run backward with a random seed gradient R (the
 * implied loss is sum(out * R)), and compare every input/parameter gradient
 * with (Lref(x + h e_j) - Lref(x - h e_j)) / 2h computed in double.
 * Error metric per tensor: max_j |analytic_j - numeric_j| / max_j |numeric_j|;
 * required <= 1e-3. Prints one line per case and a per-op summary. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "vlp.h"

#define GRAD_TOL 1e-3
#define FWD_TOL 1e-5
#define FD_H 1e-6
#define MAX_FD 256 /* at most this many finite-difference elements per tensor (sampled) */

/* ---- deterministic RNG ------------------------------------------------------------ */
static uint64_t rng_s = 0x243F6A8885A308D3ull;
static uint64_t rng_u64(void) {
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return rng_s;
}
static double rng_u01(void) { return (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0); }
static float rng_f(float lo, float hi) { return lo + (hi - lo) * (float)rng_u01(); }
static int rng_int(int lo, int hi) { return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1)); }
static const int odd_sizes[] = {1, 3, 5, 7, 13};
static int rng_odd(int min) { /* one of 1, 3, 5, 7, 13 that is >= min */
    int v;
    do v = odd_sizes[rng_int(0, 4)]; while (v < min);
    return v;
}

/* ---- per-op summary ---------------------------------------------------------------- */
typedef struct {
    char name[32];
    double fwd, grad;
    int cases;
} op_stat;
static op_stat stats[64];
static int n_stats;

static op_stat *stat_for(const char *op) {
    for (int i = 0; i < n_stats; i++)
        if (!strcmp(stats[i].name, op)) return &stats[i];
    op_stat *s = &stats[n_stats++];
    snprintf(s->name, sizeof s->name, "%s", op);
    s->fwd = s->grad = 0;
    s->cases = 0;
    return s;
}

/* ---- a gradient-check case ------------------------------------------------------------ */
#define MAXIN 8
typedef struct gc gc;
typedef void (*ref_fn)(const gc *c, double *const *in, double *out);
struct gc {
    const char *op;
    char cname[128];
    vlp_tensor *t[MAXIN]; /* float leaves whose gradients are checked (NULL slots allowed) */
    const char *nm[MAXIN];
    float lo[MAXIN], hi[MAXIN]; /* fill range; lo == hi means [-1, 1] */
    int nocheck[MAXIN];         /* float input without a gradient (plain vlp_input) */
    vlp_tensor *it[4];          /* int inputs, filled from ih after build */
    const int32_t *ih[4];
    ref_fn ref;
    int64_t ip[24];
    double fp[4];
    double fwd_tol;
    int training;
    uint64_t step;
    int null_seed;    /* backward(NULL) for a scalar output */
    const float *y;   /* engine forward output, for references that need it (dropout mask) */
};

static void gc_init(gc *c, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void gc_init(gc *c, const char *op, const char *fmt, ...) {
    memset(c, 0, sizeof *c);
    c->op = op;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->cname, sizeof c->cname, fmt, ap);
    va_end(ap);
}

static vlp_tensor *gc_in(gc *c, int slot, vlp_graph *g, const char *name, int ndim, const int64_t *shape) {
    vlp_tensor *t = vlp_input_grad(g, name, ndim, shape);
    c->t[slot] = t;
    c->nm[slot] = name;
    return t;
}
static vlp_tensor *gc_in_nograd(gc *c, int slot, vlp_graph *g, const char *name, int ndim, const int64_t *shape) {
    vlp_tensor *t = vlp_input(g, name, VLP_F32, ndim, shape);
    c->t[slot] = t;
    c->nm[slot] = name;
    c->nocheck[slot] = 1;
    return t;
}
static vlp_tensor *gc_param(gc *c, int slot, vlp_params *P, const char *name, int ndim, const int64_t *shape) {
    vlp_tensor *t = vlp_params_add(P, name, ndim, shape, 0);
    c->t[slot] = t;
    c->nm[slot] = name;
    return t;
}
static vlp_tensor *gc_param_frozen(gc *c, int slot, vlp_params *P, const char *name, int ndim, const int64_t *shape) {
    vlp_tensor *t = vlp_params_add(P, name, ndim, shape, VLP_FLAG_FROZEN);
    c->t[slot] = t;
    c->nm[slot] = name;
    c->nocheck[slot] = 1;
    return t;
}
static vlp_tensor *gc_int(gc *c, int slot, vlp_graph *g, const char *name, int ndim, const int64_t *shape,
                          const int32_t *host) {
    vlp_tensor *t = vlp_input(g, name, VLP_I32, ndim, shape);
    c->it[slot] = t;
    c->ih[slot] = host;
    return t;
}

static double eval_loss(const gc *c, double *const *xd, double *ref, const float *R, int64_t nout) {
    c->ref(c, xd, ref);
    double L = 0;
    for (int64_t i = 0; i < nout; i++) L += ref[i] * (c->null_seed ? 1.0 : (double)R[i]);
    return L;
}

/* Builds (params alloc + graph build), fills, runs forward/backward, checks
 * forward and every gradient. Frees g and P. */
static void gc_run(gc *c, vlp_graph *g, vlp_params *P, vlp_tensor *out) {
    const char *gerr = vlp_graph_error(g);
    CHECK(out != NULL && !gerr, "%s %s: graph construction failed: %s", c->op, c->cname, gerr ? gerr : "?");
    if (!out || gerr) goto done;
    if (P) {
        int rc = vlp_params_alloc(P);
        CHECK(rc == 0, "%s %s: vlp_params_alloc: %s", c->op, c->cname, vlp_last_error());
        if (rc) goto done;
    }
    int rc = vlp_graph_build(g, out, VLP_BUILD_TRAIN);
    CHECK(rc == 0, "%s %s: vlp_graph_build: %s", c->op, c->cname, vlp_last_error());
    if (rc) goto done;
    if (c->training) vlp_graph_set_training(g, 1, c->step);
    for (int k = 0; k < 4; k++)
        if (c->it[k]) memcpy(c->it[k]->data, c->ih[k], (size_t)c->it[k]->numel * sizeof(int32_t));
    double *xd[MAXIN] = {0};
    for (int i = 0; i < MAXIN; i++) {
        vlp_tensor *t = c->t[i];
        if (!t) continue;
        float lo = c->lo[i], hi = c->hi[i];
        if (lo == hi) lo = -1.0f, hi = 1.0f;
        float *d = (float *)t->data;
        xd[i] = malloc((size_t)t->numel * sizeof(double));
        for (int64_t j = 0; j < t->numel; j++) {
            d[j] = rng_f(lo, hi);
            xd[i][j] = d[j];
        }
    }
    int64_t nout = out->numel;
    double *ref = malloc((size_t)nout * sizeof(double));
    float *R = malloc((size_t)nout * sizeof(float));
    rc = vlp_graph_forward(g);
    CHECK(rc == 0, "%s %s: forward: %s", c->op, c->cname, vlp_last_error());
    if (rc) goto free_all;
    c->y = (const float *)out->data;
    c->ref(c, xd, ref);
    double maxref = 0, maxdiff = 0;
    for (int64_t i = 0; i < nout; i++) {
        double d = fabs((double)((const float *)out->data)[i] - ref[i]);
        if (!(d <= maxdiff)) maxdiff = d; /* NaN propagates as a failure */
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    double fwd_err = maxdiff / (maxref > 1e-8 ? maxref : 1e-8);
    double ftol = c->fwd_tol > 0 ? c->fwd_tol : FWD_TOL;
    CHECK(fwd_err <= ftol, "%s %s: forward rel error %.3e > %.1e", c->op, c->cname, fwd_err, ftol);

    for (int64_t i = 0; i < nout; i++) R[i] = rng_f(-1.0f, 1.0f);
    if (P) vlp_params_zero_grad(P);
    rc = vlp_graph_backward(g, c->null_seed ? NULL : R);
    CHECK(rc == 0, "%s %s: backward: %s", c->op, c->cname, vlp_last_error());
    if (rc) goto free_all;

    char line[1024];
    int len = snprintf(line, sizeof line, "gradcheck %-13s %-44s fwd_err=%.2e", c->op, c->cname, fwd_err);
    double worst = 0;
    for (int i = 0; i < MAXIN; i++) {
        vlp_tensor *t = c->t[i];
        if (!t) continue;
        if (c->nocheck[i]) {
            CHECK(t->grad == NULL, "%s %s: %s has a gradient buffer but requires none", c->op, c->cname, c->nm[i]);
            continue;
        }
        CHECK(t->grad != NULL, "%s %s: %s has no gradient buffer", c->op, c->cname, c->nm[i]);
        if (!t->grad) continue;
        int64_t n = t->numel, step = n > MAX_FD ? (n + MAX_FD - 1) / MAX_FD : 1;
        int64_t off = step > 1 ? (int64_t)(rng_u64() % (uint64_t)step) : 0;
        double maxnum = 0, maxd = 0;
        for (int64_t j = off; j < n; j += step) {
            double save = xd[i][j];
            xd[i][j] = save + FD_H;
            double Lp = eval_loss(c, xd, ref, R, nout);
            xd[i][j] = save - FD_H;
            double Lm = eval_loss(c, xd, ref, R, nout);
            xd[i][j] = save;
            double num = (Lp - Lm) / (2 * FD_H);
            double d = fabs((double)t->grad[j] - num);
            if (!(d <= maxd)) maxd = d;
            if (fabs(num) > maxnum) maxnum = fabs(num);
        }
        double err = maxd / (maxnum > 1e-8 ? maxnum : 1e-8);
        if (!(err <= worst)) worst = err;
        CHECK(err <= GRAD_TOL, "%s %s: gradient of %s: rel error %.3e > %.1e (max |numeric| %.3e)", c->op,
              c->cname, c->nm[i], err, GRAD_TOL, maxnum);
        if (len < (int)sizeof line - 64) len += snprintf(line + len, sizeof line - len, " grad_err[%s]=%.2e", c->nm[i], err);
    }
    /* A second backward without zeroing: activation/input gradients are re-zeroed
     * (same values), parameter gradients accumulate (twice the values). */
    {
        float *g1[MAXIN] = {0};
        for (int i = 0; i < MAXIN; i++)
            if (c->t[i] && c->t[i]->grad) {
                g1[i] = malloc((size_t)c->t[i]->numel * sizeof(float));
                memcpy(g1[i], c->t[i]->grad, (size_t)c->t[i]->numel * sizeof(float));
            }
        rc = vlp_graph_backward(g, c->null_seed ? NULL : R);
        CHECK(rc == 0, "%s %s: second backward: %s", c->op, c->cname, vlp_last_error());
        for (int i = 0; i < MAXIN && !rc; i++) {
            if (!g1[i]) continue;
            int param = (c->t[i]->flags & VLP_FLAG_PARAM) != 0;
            double maxd = 0, maxg = 0;
            for (int64_t j = 0; j < c->t[i]->numel; j++) {
                double want = param ? 2.0 * g1[i][j] : g1[i][j];
                double d = fabs(c->t[i]->grad[j] - want);
                if (!(d <= maxd)) maxd = d;
                if (fabs(want) > maxg) maxg = fabs(want);
            }
            CHECK(maxd <= 1e-6 * (maxg > 1e-30 ? maxg : 1e-30), "%s %s: second backward: %s gradient %s (rel diff %.3e)",
                  c->op, c->cname, c->nm[i], param ? "did not accumulate to 2x" : "was not re-zeroed / differs",
                  maxd / (maxg > 1e-30 ? maxg : 1e-30));
        }
        for (int i = 0; i < MAXIN; i++) free(g1[i]);
    }
    printf("%s\n", line);
    op_stat *s = stat_for(c->op);
    if (!(fwd_err <= s->fwd)) s->fwd = fwd_err;
    if (!(worst <= s->grad)) s->grad = worst;
    s->cases++;
free_all:
    for (int i = 0; i < MAXIN; i++) free(xd[i]);
    free(ref);
    free(R);
done:
    vlp_graph_free(g);
    vlp_params_free(P);
}

/* ======================================================================================= */
/* Reference forwards (double). */

/* matmul: ip 0 ta, 1 tb, 2 batch, 3 M, 4 N, 5 K, 6 shared */
static void ref_matmul(const gc *c, double *const *in, double *out) {
    int64_t ta = c->ip[0], tb = c->ip[1], batch = c->ip[2], M = c->ip[3], N = c->ip[4], K = c->ip[5];
    int shared = (int)c->ip[6];
    const double *A = in[0], *B = in[1];
    for (int64_t bt = 0; bt < batch; bt++) {
        const double *Ab = A + bt * M * K, *Bb = B + (shared ? 0 : bt * K * N);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (ta ? Ab[k * M + m] : Ab[m * K + k]) * (tb ? Bb[n * K + k] : Bb[k * N + n]);
                out[(bt * M + m) * N + n] = s;
            }
    }
}

/* linear: ip 0 rows, 1 K, 2 N, 3 ldx, 4 column offset (x may be a view of in[0]) */
static void ref_linear(const gc *c, double *const *in, double *out) {
    int64_t rows = c->ip[0], K = c->ip[1], N = c->ip[2], ld = c->ip[3], off = c->ip[4];
    const double *x = in[0], *w = in[1], *b = in[2];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t n = 0; n < N; n++) {
            double s = b ? b[n] : 0;
            for (int64_t k = 0; k < K; k++) s += x[r * ld + off + k] * w[n * K + k];
            out[r * N + n] = s;
        }
}

/* add / mul: ip 0 n, 1 nb, 2 is_mul */
static void ref_binary(const gc *c, double *const *in, double *out) {
    int64_t n = c->ip[0], nb = c->ip[1];
    for (int64_t i = 0; i < n; i++) out[i] = c->ip[2] ? in[0][i] * in[1][i % nb] : in[0][i] + in[1][i % nb];
}

/* unary: ip 0 n, 1 kind; fp 0 scale */
enum { U_SCALE, U_GELU, U_GELU_TANH, U_QUICK_GELU, U_TANH };
static void ref_unary(const gc *c, double *const *in, double *out) {
    for (int64_t i = 0; i < c->ip[0]; i++) {
        double x = in[0][i];
        switch (c->ip[1]) {
        case U_SCALE: out[i] = x * c->fp[0]; break;
        case U_GELU: out[i] = 0.5 * x * (1.0 + erf(x / sqrt(2.0))); break;
        case U_GELU_TANH: out[i] = 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))); break;
        case U_QUICK_GELU: out[i] = x / (1.0 + exp(-1.702 * x)); break;
        case U_TANH: out[i] = tanh(x); break;
        }
    }
}

/* row-wise over the last dim: ip 0 rows, 1 D; fp 0 eps */
static void ref_layernorm(const gc *c, double *const *in, double *out) {
    int64_t rows = c->ip[0], D = c->ip[1];
    const double *x = in[0], *w = in[1], *b = in[2];
    for (int64_t r = 0; r < rows; r++) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < D; i++) mu += x[r * D + i];
        mu /= (double)D;
        for (int64_t i = 0; i < D; i++) var += (x[r * D + i] - mu) * (x[r * D + i] - mu);
        var /= (double)D;
        double rs = 1.0 / sqrt(var + c->fp[0]);
        for (int64_t i = 0; i < D; i++)
            out[r * D + i] = (x[r * D + i] - mu) * rs * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
    }
}
static void softmax_rows(const double *x, int64_t rows, int64_t D, double *out) {
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < D; i++) m = fmax(m, x[r * D + i]);
        for (int64_t i = 0; i < D; i++) s += (out[r * D + i] = exp(x[r * D + i] - m));
        for (int64_t i = 0; i < D; i++) out[r * D + i] /= s;
    }
}
static void ref_softmax(const gc *c, double *const *in, double *out) { softmax_rows(in[0], c->ip[0], c->ip[1], out); }
static void l2norm_rows(const double *x, int64_t rows, int64_t D, double eps, double *out) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t i = 0; i < D; i++) s += x[r * D + i] * x[r * D + i];
        double n = fmax(sqrt(s), eps);
        for (int64_t i = 0; i < D; i++) out[r * D + i] = x[r * D + i] / n;
    }
}
static void ref_l2norm(const gc *c, double *const *in, double *out) { l2norm_rows(in[0], c->ip[0], c->ip[1], c->fp[0], out); }

/* attention: ip 0 B, 1 Tq, 2 Tk, 3 D, 4 H, 5 causal, 6/7/8 input slot of q/k/v,
 * 9/10/11 column offsets, 12/13/14 row strides; mask in ih[0] (or NULL) */
static void ref_attention(const gc *c, double *const *in, double *out) {
    int64_t B = c->ip[0], Tq = c->ip[1], Tk = c->ip[2], D = c->ip[3], H = c->ip[4], causal = c->ip[5];
    const double *q = in[c->ip[6]] + c->ip[9], *k = in[c->ip[7]] + c->ip[10], *v = in[c->ip[8]] + c->ip[11];
    int64_t ldq = c->ip[12], ldk = c->ip[13], ldv = c->ip[14], hd = D / H;
    const int32_t *mask = c->ih[0];
    int64_t Tm = c->ip[15] ? c->ip[15] : Tk;
    double scale = 1.0 / sqrt((double)hd), s[64];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                double m = -INFINITY;
                int any = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    int ok = (!causal || j <= i) && (!mask || j >= Tm || mask[b * Tm + j]);
                    s[j] = -INFINITY;
                    if (!ok) continue;
                    double d = 0;
                    for (int64_t e = 0; e < hd; e++)
                        d += q[(b * Tq + i) * ldq + h * hd + e] * k[(b * Tk + j) * ldk + h * hd + e];
                    s[j] = d * scale;
                    m = fmax(m, s[j]);
                    any = 1;
                }
                double z = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    s[j] = any && s[j] != -INFINITY ? exp(s[j] - m) : 0.0;
                    z += s[j];
                }
                for (int64_t e = 0; e < hd; e++) {
                    double o = 0;
                    for (int64_t j = 0; j < Tk; j++) o += s[j] * v[(b * Tk + j) * ldv + h * hd + e];
                    out[(b * Tq + i) * D + h * hd + e] = any ? o / z : 0.0;
                }
            }
}

/* embedding: ip 0 n ids, 1 D; ids ih[0] */
static void ref_embedding(const gc *c, double *const *in, double *out) {
    int64_t n = c->ip[0], D = c->ip[1];
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) out[i * D + d] = in[0][(int64_t)c->ih[0][i] * D + d];
}

/* patch_embed: ip 0 B, 1 C, 2 H, 3 W, 4 P, 5 D */
static void ref_patch_embed(const gc *c, double *const *in, double *out) {
    int64_t B = c->ip[0], C = c->ip[1], H = c->ip[2], W = c->ip[3], P = c->ip[4], D = c->ip[5];
    int64_t gh = H / P, gw = W / P;
    const double *img = in[0], *w = in[1], *bias = in[2];
    for (int64_t b = 0; b < B; b++)
        for (int64_t py = 0; py < gh; py++)
            for (int64_t px = 0; px < gw; px++)
                for (int64_t d = 0; d < D; d++) {
                    double s = bias ? bias[d] : 0;
                    for (int64_t ch = 0; ch < C; ch++)
                        for (int64_t i = 0; i < P; i++)
                            for (int64_t j = 0; j < P; j++)
                                s += w[((d * C + ch) * P + i) * P + j] *
                                     img[((b * C + ch) * H + py * P + i) * W + px * P + j];
                    out[((b * gh + py) * gw + px) * D + d] = s;
                }
}

/* gather_rows: ip 0 B, 1 T, 2 D; idx ih[0] */
static void ref_gather_rows(const gc *c, double *const *in, double *out) {
    int64_t B = c->ip[0], T = c->ip[1], D = c->ip[2];
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) out[b * D + d] = in[0][(b * T + c->ih[0][b]) * D + d];
}

/* slice: ip 0 outer, 1 n, 2 inner, 3 start, 4 len */
static void ref_slice(const gc *c, double *const *in, double *out) {
    int64_t outer = c->ip[0], n = c->ip[1], inner = c->ip[2], start = c->ip[3], len = c->ip[4];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len * inner; i++) out[o * len * inner + i] = in[0][(o * n + start) * inner + i];
}

/* concat: ip 0 outer, 1 na, 2 nb, 3 inner */
static void ref_concat(const gc *c, double *const *in, double *out) {
    int64_t outer = c->ip[0], na = c->ip[1], nb = c->ip[2], inner = c->ip[3];
    for (int64_t o = 0; o < outer; o++) {
        double *dst = out + o * (na + nb) * inner;
        for (int64_t i = 0; i < na * inner; i++) dst[i] = in[0][o * na * inner + i];
        for (int64_t i = 0; i < nb * inner; i++) dst[na * inner + i] = in[1][o * nb * inner + i];
    }
}

/* sum / mean: ip 0 n, 1 is_mean */
static void ref_sum(const gc *c, double *const *in, double *out) {
    double s = 0;
    for (int64_t i = 0; i < c->ip[0]; i++) s += in[0][i];
    out[0] = c->ip[1] ? s / (double)c->ip[0] : s;
}

/* cross_entropy: ip 0 N, 1 C, 2 ignore_index; targets ih[0] */
static void ref_ce(const gc *c, double *const *in, double *out) {
    int64_t N = c->ip[0], C = c->ip[1], ign = c->ip[2], cnt = 0;
    double loss = 0;
    for (int64_t r = 0; r < N; r++) {
        if (c->ih[0][r] == ign) continue;
        const double *x = in[0] + r * C;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < C; j++) m = fmax(m, x[j]);
        for (int64_t j = 0; j < C; j++) s += exp(x[j] - m);
        loss += m + log(s) - x[c->ih[0][r]];
        cnt++;
    }
    out[0] = cnt ? loss / (double)cnt : 0.0;
}

static double infonce_core(const double *a, const double *b, double log_scale, int64_t N, int64_t E) {
    double s = exp(log_scale), L[64 * 64], loss = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
            double d = 0;
            for (int64_t e = 0; e < E; e++) d += a[i * E + e] * b[j * E + e];
            L[i * N + j] = s * d;
        }
    for (int64_t i = 0; i < N; i++) {
        double mr = -INFINITY, mc = -INFINITY, sr = 0, sc = 0;
        for (int64_t j = 0; j < N; j++) mr = fmax(mr, L[i * N + j]), mc = fmax(mc, L[j * N + i]);
        for (int64_t j = 0; j < N; j++) sr += exp(L[i * N + j] - mr), sc += exp(L[j * N + i] - mc);
        loss += 0.5 * ((mr + log(sr) - L[i * N + i]) + (mc + log(sc) - L[i * N + i]));
    }
    return loss / (double)N;
}
/* infonce: ip 0 N, 1 E, 2 l2-normalise a and b first; fp 0 l2 eps */
static void ref_infonce(const gc *c, double *const *in, double *out) {
    int64_t N = c->ip[0], E = c->ip[1];
    if (c->ip[2]) {
        double na[64 * 64], nb[64 * 64];
        l2norm_rows(in[0], N, E, c->fp[0], na);
        l2norm_rows(in[1], N, E, c->fp[0], nb);
        out[0] = infonce_core(na, nb, in[2][0], N, E);
    } else {
        out[0] = infonce_core(in[0], in[1], in[2][0], N, E);
    }
}

/* mse: ip 0 n */
static void ref_mse(const gc *c, double *const *in, double *out) {
    double s = 0;
    for (int64_t i = 0; i < c->ip[0]; i++) s += (in[0][i] - in[1][i]) * (in[0][i] - in[1][i]);
    out[0] = s / (double)c->ip[0];
}

/* dropout: ip 0 n; fp 0 p; the mask is read off the engine's output (y != 0) */
static void ref_dropout(const gc *c, double *const *in, double *out) {
    for (int64_t i = 0; i < c->ip[0]; i++) out[i] = c->y[i] != 0.0f ? in[0][i] / (1.0 - c->fp[0]) : 0.0;
}

/* ======================================================================================= */
/* Cases. */

static int64_t prod(int n, const int64_t *s) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= s[i];
    return p;
}

static void check_matmul(void) {
    /* modes: 0 a 2-D shared b; 1 a 3-D shared b; 2 a 3-D batched b; 3 a 4-D batched b; 4 a 4-D shared b */
    for (int mode = 0; mode < 5; mode++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                gc c;
                int64_t M = rng_odd(1), N = rng_odd(1), K = rng_odd(1), b0 = rng_int(2, 3), b1 = rng_int(1, 3);
                if (mode == 0 && ta == 0 && tb == 0) M = 13, N = 7, K = 5;
                int shared = mode == 0 || mode == 1 || mode == 4;
                int andim = mode == 0 ? 2 : mode <= 2 ? 3 : 4;
                int64_t ash[4], bsh[4], batch = 1;
                int nlead = andim - 2;
                int64_t lead[2] = {b0, b1};
                for (int i = 0; i < nlead; i++) ash[i] = lead[i], batch *= lead[i];
                ash[nlead] = ta ? K : M;
                ash[nlead + 1] = ta ? M : K;
                int bndim = shared ? 2 : andim;
                for (int i = 0; i < bndim - 2; i++) bsh[i] = lead[i];
                bsh[bndim - 2] = tb ? N : K;
                bsh[bndim - 1] = tb ? K : N;
                gc_init(&c, "matmul", "a%dD%s b%s%s M%lld N%lld K%lld batch%lld", andim, ta ? "^T" : "",
                        shared ? "shared" : "batched", tb ? "^T" : "", (long long)M, (long long)N, (long long)K,
                        (long long)batch);
                vlp_graph *g = vlp_graph_new();
                vlp_params *P = shared ? vlp_params_new() : NULL;
                vlp_tensor *a = gc_in(&c, 0, g, "a", andim, ash);
                vlp_tensor *b = shared ? gc_param(&c, 1, P, "b", bndim, bsh) : gc_in(&c, 1, g, "b", bndim, bsh);
                vlp_tensor *y = vlp_matmul(g, a, b, ta, tb);
                c.ref = ref_matmul;
                int64_t ip[] = {ta, tb, batch, M, N, K, shared};
                memcpy(c.ip, ip, sizeof ip);
                gc_run(&c, g, P, y);
            }
}

static void check_linear(void) {
    /* kind: 0 x 2-D, 1 x 3-D, 2 x view_cols of a wider 2-D, 3 x view_cols of a wider 3-D, 4 large (threaded paths) */
    for (int kind = 0; kind < 5; kind++)
        for (int bias = 0; bias < 2; bias++) {
            gc c;
            int64_t B = rng_int(1, 3), T = rng_odd(1), K = rng_odd(1), N = rng_odd(1), extra = rng_int(1, 4);
            int64_t off = rng_int(0, (int)extra);
            if (kind == 4) B = 1, T = 300, K = 5, N = 240;
            int x3 = kind == 1 || kind == 3;
            int view = kind == 2 || kind == 3;
            int64_t Kw = view ? K + extra : K, rows = x3 ? B * T : T;
            if (!view) off = 0;
            gc_init(&c, "linear", "x%s%s [%lld, %lld] N%lld%s", x3 ? "3D" : "2D", view ? " view_cols" : "",
                    (long long)rows, (long long)K, (long long)N, bias ? " bias" : "");
            vlp_graph *g = vlp_graph_new();
            vlp_params *P = vlp_params_new();
            int64_t xs3[3] = {B, T, Kw}, xs2[2] = {T, Kw};
            vlp_tensor *x = x3 ? gc_in(&c, 0, g, "x", 3, xs3) : gc_in(&c, 0, g, "x", 2, xs2);
            if (view) x = vlp_view_cols(g, x, off, K);
            int64_t ws[2] = {N, K}, bs[1] = {N};
            vlp_tensor *w = gc_param(&c, 1, P, "w", 2, ws);
            vlp_tensor *b = bias ? gc_param(&c, 2, P, "bias", 1, bs) : NULL;
            vlp_tensor *y = vlp_linear(g, x, w, b);
            c.ref = ref_linear;
            int64_t ip[] = {rows, K, N, Kw, off};
            memcpy(c.ip, ip, sizeof ip);
            gc_run(&c, g, P, y);
        }
}

static void check_add_mul(void) {
    for (int is_mul = 0; is_mul < 2; is_mul++)
        for (int kind = 0; kind < 5; kind++) {
            /* 0 same 2-D; 1 same 3-D; 2 b [D] of [B,T,D]; 3 b [T,D] of [B,T,D]; 4 large broadcast (threads) */
            gc c;
            int64_t B = rng_int(2, 3), T = rng_odd(1), D = rng_odd(3);
            if (kind == 4) B = 70, T = 7, D = 71;
            int64_t as[3] = {B, T, D};
            int and_ = kind == 0 ? 2 : 3;
            const int64_t *ash = kind == 0 ? as + 1 : as;
            int bnd = kind == 0 ? 2 : kind == 1 ? 3 : kind == 3 ? 2 : 1;
            const int64_t *bsh = as + (3 - bnd);
            gc_init(&c, is_mul ? "mul" : "add", "a[%lld,%lld,%lld]%s b rank %d%s", (long long)(and_ == 3 ? B : 1),
                    (long long)T, (long long)D, and_ == 2 ? "(2D)" : "", bnd, bnd < and_ ? " broadcast" : "");
            vlp_graph *g = vlp_graph_new();
            vlp_params *P = vlp_params_new();
            vlp_tensor *a = gc_in(&c, 0, g, "a", and_, ash);
            vlp_tensor *b = (kind & 1) ? gc_in(&c, 1, g, "b", bnd, bsh) : gc_param(&c, 1, P, "b", bnd, bsh);
            vlp_tensor *y = is_mul ? vlp_mul(g, a, b) : vlp_add(g, a, b);
            c.ref = ref_binary;
            c.ip[0] = prod(and_, ash);
            c.ip[1] = prod(bnd, bsh);
            c.ip[2] = is_mul;
            gc_run(&c, g, P, y);
        }
}

static void check_unary(void) {
    static const char *names[] = {"scale", "gelu", "gelu_tanh", "quick_gelu", "tanh"};
    for (int kind = 0; kind < 5; kind++)
        for (int rep = 0; rep < 3; rep++) {
            gc c;
            int64_t s[3] = {rng_int(1, 3), rng_odd(1), rng_odd(1)};
            if (rep == 2) s[0] = 9, s[1] = 31, s[2] = 33; /* > 8192 elements: threaded path */
            float sc = rep == 0 ? -0.7f : 2.5f;
            gc_init(&c, names[kind], "x[%lld,%lld,%lld]%s", (long long)s[0], (long long)s[1], (long long)s[2],
                    kind == U_SCALE ? (rep ? " s=2.5" : " s=-0.7") : "");
            vlp_graph *g = vlp_graph_new();
            vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s), *y = NULL;
            c.lo[0] = -4.0f, c.hi[0] = 4.0f;
            switch (kind) {
            case U_SCALE: y = vlp_scale(g, x, sc); break;
            case U_GELU: y = vlp_gelu(g, x); break;
            case U_GELU_TANH: y = vlp_gelu_tanh(g, x); break;
            case U_QUICK_GELU: y = vlp_activation(g, x, VLP_ACT_QUICK_GELU); break;
            case U_TANH: y = vlp_tanh_act(g, x); break;
            }
            c.ref = ref_unary;
            c.ip[0] = prod(3, s);
            c.ip[1] = kind;
            c.fp[0] = sc;
            gc_run(&c, g, NULL, y);
        }
}

static void check_layernorm(void) {
    for (int hw = 0; hw < 2; hw++)
        for (int hb = 0; hb < 2; hb++)
            for (int rep = 0; rep < 2; rep++) {
                gc c;
                int64_t s[3] = {rng_int(1, 3), rng_odd(1), rng_odd(3)};
                if (rep == 1 && hw && hb) s[0] = 3, s[1] = 100, s[2] = 61; /* > 256 rows: several reduce chunks, threads */
                gc_init(&c, "layernorm", "x[%lld,%lld,%lld]%s%s", (long long)s[0], (long long)s[1], (long long)s[2],
                        hw ? " weight" : "", hb ? " bias" : "");
                vlp_graph *g = vlp_graph_new();
                vlp_params *P = vlp_params_new();
                vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s);
                c.lo[0] = -2.0f, c.hi[0] = 3.0f;
                vlp_tensor *w = hw ? gc_param(&c, 1, P, "w", 1, s + 2) : NULL;
                vlp_tensor *b = hb ? gc_param(&c, 2, P, "b", 1, s + 2) : NULL;
                c.lo[1] = 0.5f, c.hi[1] = 1.5f;
                vlp_tensor *y = vlp_layernorm(g, x, w, b, 1e-5f);
                c.ref = ref_layernorm;
                c.ip[0] = s[0] * s[1];
                c.ip[1] = s[2];
                c.fp[0] = 1e-5f; /* the float eps, exactly */
                gc_run(&c, g, hw || hb ? P : (vlp_params_free(P), NULL), y);
            }
}

static void check_softmax_l2norm(void) {
    for (int op = 0; op < 2; op++)
        for (int rep = 0; rep < 4; rep++) {
            gc c;
            int64_t s[3] = {rng_int(1, 3), rng_odd(1), rng_odd(3)};
            if (rep == 3) s[0] = 4, s[1] = 64, s[2] = 67; /* threaded */
            float eps = rep == 1 ? 1e-6f : 1e-12f;
            gc_init(&c, op ? "l2norm" : "softmax", "x[%lld,%lld,%lld]", (long long)s[0], (long long)s[1],
                    (long long)s[2]);
            vlp_graph *g = vlp_graph_new();
            vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s);
            c.lo[0] = -3.0f, c.hi[0] = 3.0f;
            vlp_tensor *y = op ? vlp_l2norm(g, x, eps) : vlp_softmax(g, x);
            c.ref = op ? ref_l2norm : ref_softmax;
            c.ip[0] = s[0] * s[1];
            c.ip[1] = s[2];
            c.fp[0] = eps;
            gc_run(&c, g, NULL, y);
        }
}

enum { ATT_CAUSAL = 1, ATT_PAD = 2, ATT_FUSED = 4, ATT_CROSS = 8, ATT_SHORT = 16 /* mask covers Tk - 2 keys */ };
static void attention_case(int flags, int B, int Tq, int Tk, int D, int H) {
    gc c;
    gc_init(&c, "attention", "%s%s%s%s%sB%d Tq%d Tk%d D%d H%d", flags & (ATT_CAUSAL | ATT_PAD) ? "" : "nomask ",
            flags & ATT_CAUSAL ? "causal " : "", flags & ATT_PAD ? "padmask " : "", flags & ATT_FUSED ? "fused-qkv " : "",
            flags & ATT_CROSS ? "cross " : "", B, Tq, Tk, D, H);
    if (flags & ATT_SHORT) strncat(c.cname, " (mask of Tk-2 keys)", sizeof c.cname - strlen(c.cname) - 1);
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *q, *k, *v;
    int64_t ip[15] = {B, Tq, Tk, D, H, (flags & ATT_CAUSAL) != 0};
    if (flags & ATT_FUSED) { /* q, k, v are column views of one [B, T, 3D] tensor */
        int64_t s[3] = {B, Tq, 3 * D};
        vlp_tensor *qkv = gc_in(&c, 0, g, "qkv", 3, s);
        q = vlp_view_cols(g, qkv, 0, D);
        k = vlp_view_cols(g, qkv, D, D);
        v = vlp_view_cols(g, qkv, 2 * D, D);
        int64_t f[] = {0, 0, 0, 0, D, 2 * D, 3 * D, 3 * D, 3 * D};
        memcpy(ip + 6, f, sizeof f);
    } else {
        int64_t sq[3] = {B, Tq, D}, sk[3] = {B, Tk, D};
        q = gc_in(&c, 0, g, "q", 3, sq);
        k = gc_in(&c, 1, g, "k", 3, sk);
        v = gc_in(&c, 2, g, "v", 3, sk);
        int64_t f[] = {0, 1, 2, 0, 0, 0, D, D, D};
        memcpy(ip + 6, f, sizeof f);
    }
    memcpy(c.ip, ip, sizeof ip);
    int32_t mask[64];
    vlp_tensor *km = NULL;
    if (flags & ATT_PAD) {
        int Tm = (flags & ATT_SHORT) ? Tk - 2 : Tk; /* short: keys past Tm are always attended */
        c.ip[15] = Tm;
        for (int b = 0; b < B; b++) {
            int valid = b == 0 ? Tm : rng_int(1, Tm); /* batch 0 unpadded, others right-padded */
            for (int j = 0; j < Tm; j++) mask[b * Tm + j] = j < valid;
        }
        if (B > 1 && (flags & ATT_CAUSAL)) mask[1 * Tm + 0] = 0; /* query 0 of batch 1 sees nothing */
        if (B > 2 && !(flags & ATT_CAUSAL))
            for (int j = 0; j < Tm; j++) mask[2 * Tm + j] = 0; /* a fully padded sequence (or prefix) */
        int64_t ms[2] = {B, Tm};
        km = gc_int(&c, 0, g, "key_mask", 2, ms, mask);
    }
    vlp_tensor *y = vlp_attention(g, q, k, v, H, (flags & ATT_CAUSAL) ? VLP_ATTN_CAUSAL : 0, km);
    c.lo[0] = c.lo[1] = c.lo[2] = -1.5f;
    c.hi[0] = c.hi[1] = c.hi[2] = 1.5f;
    c.ref = ref_attention;
    gc_run(&c, g, NULL, y);
}

static void check_attention(void) {
    attention_case(0, 2, 5, 5, 6, 1);
    attention_case(0, 1, 7, 7, 6, 3);
    attention_case(ATT_CAUSAL, 2, 7, 7, 6, 3);
    attention_case(ATT_CAUSAL, 1, 1, 1, 4, 2);
    attention_case(ATT_PAD, 3, 5, 5, 4, 2);
    attention_case(ATT_CAUSAL | ATT_PAD, 2, 7, 7, 9, 3);
    attention_case(ATT_CROSS, 2, 3, 7, 4, 2);
    attention_case(ATT_CROSS | ATT_PAD, 3, 5, 7, 6, 3);
    attention_case(ATT_CROSS, 1, 13, 3, 3, 1);
    attention_case(ATT_CROSS | ATT_PAD | ATT_SHORT, 3, 3, 7, 4, 2);
    attention_case(ATT_FUSED | ATT_PAD | ATT_SHORT, 2, 5, 5, 6, 3);
    attention_case(ATT_FUSED, 2, 5, 5, 6, 3);
    attention_case(ATT_FUSED | ATT_CAUSAL, 2, 7, 7, 4, 2);
    attention_case(ATT_FUSED | ATT_CAUSAL | ATT_PAD, 2, 7, 7, 6, 1);
    attention_case(ATT_FUSED | ATT_PAD, 3, 5, 5, 6, 2);
    for (int r = 0; r < 3; r++) { /* random configurations */
        int H = rng_int(1, 3), hd = rng_int(1, 3), T = rng_odd(1), B = rng_int(1, 3);
        attention_case(rng_int(0, 7), B, T, T, H * hd, H);
    }
}

static void check_embedding(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t V = rng_int(3, 6), D = rng_odd(1);
        int64_t ids_shape[3] = {rng_int(1, 3), rng_odd(3), 2};
        int nd = rep + 1;
        int64_t n = prod(nd, ids_shape);
        int32_t ids[128];
        for (int64_t i = 0; i < n; i++) ids[i] = rng_int(0, (int)V - 1);
        ids[0] = (int32_t)V - 1;
        if (n > 1) ids[n - 1] = ids[0]; /* at least one repeat */
        gc_init(&c, "embedding", "ids rank %d (%lld ids, repeats) V%lld D%lld", nd, (long long)n, (long long)V,
                (long long)D);
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        vlp_tensor *idt = gc_int(&c, 0, g, "ids", nd, ids_shape, ids);
        int64_t ts[2] = {V, D};
        vlp_tensor *tab = gc_param(&c, 0, P, "table", 2, ts);
        vlp_tensor *y = vlp_embedding(g, idt, tab);
        c.ref = ref_embedding;
        c.ip[0] = n;
        c.ip[1] = D;
        gc_run(&c, g, P, y);
    }
}

static void check_patch_embed(void) {
    static const int cfg[][6] = {/* B, C, H, W, P, bias */
                                 {2, 3, 4, 6, 2, 1}, {1, 3, 6, 9, 3, 0}, {2, 3, 9, 3, 3, 1},
                                 {1, 3, 2, 2, 2, 0}, {3, 3, 6, 4, 2, 1}, {1, 1, 3, 6, 3, 1}};
    for (int i = 0; i < (int)(sizeof cfg / sizeof cfg[0]); i++) {
        gc c;
        int64_t B = cfg[i][0], C = cfg[i][1], H = cfg[i][2], W = cfg[i][3], Pp = cfg[i][4], D = rng_odd(3);
        int bias = cfg[i][5];
        gc_init(&c, "patch_embed", "img[%lld,%lld,%lld,%lld] P%lld D%lld%s", (long long)B, (long long)C, (long long)H,
                (long long)W, (long long)Pp, (long long)D, bias ? " bias" : "");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t is[4] = {B, C, H, W}, ws[4] = {D, C, Pp, Pp};
        vlp_tensor *img = gc_in(&c, 0, g, "images", 4, is);
        vlp_tensor *w = gc_param(&c, 1, P, "w", 4, ws);
        vlp_tensor *b = bias ? gc_param(&c, 2, P, "bias", 1, &D) : NULL;
        vlp_tensor *y = vlp_patch_embed(g, img, w, b);
        c.ref = ref_patch_embed;
        int64_t ip[] = {B, C, H, W, Pp, D};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, y);
    }
}

static void check_gather_rows(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t B = rng_int(1, 4), T = rng_odd(1), D = rng_odd(1);
        int32_t idx[8];
        for (int b = 0; b < B; b++) idx[b] = rng_int(0, (int)T - 1);
        idx[0] = (int32_t)T - 1;
        if (B > 1) idx[1] = 0;
        gc_init(&c, "gather_rows", "x[%lld,%lld,%lld]", (long long)B, (long long)T, (long long)D);
        vlp_graph *g = vlp_graph_new();
        int64_t xs[3] = {B, T, D};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 3, xs);
        vlp_tensor *it = gc_int(&c, 0, g, "idx", 1, &B, idx);
        vlp_tensor *y = vlp_gather_rows(g, x, it);
        c.ref = ref_gather_rows;
        int64_t ip[] = {B, T, D};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, NULL, y);
    }
}

/* prepend_token: ip 0 B, 1 N, 2 D; inputs x [B,N,D], tok [D] */
static void ref_prepend(const gc *c, double *const *in, double *out) {
    int64_t B = c->ip[0], N = c->ip[1], D = c->ip[2];
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < D; i++) out[b * (N + 1) * D + i] = in[1][i];
        for (int64_t i = 0; i < N * D; i++) out[b * (N + 1) * D + D + i] = in[0][b * N * D + i];
    }
}

static void check_prepend_token(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t B = rng_int(1, 4), N = rng_odd(1), D = rng_odd(1);
        gc_init(&c, "prepend_token", "x[%lld,%lld,%lld]", (long long)B, (long long)N, (long long)D);
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t xs[3] = {B, N, D};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 3, xs);
        vlp_tensor *tok = gc_param(&c, 1, P, "cls", 1, &D);
        vlp_tensor *y = vlp_prepend_token(g, x, tok);
        c.ref = ref_prepend;
        int64_t ip[] = {B, N, D};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, y);
    }
}

static void split(int nd, const int64_t *s, int dim, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= s[i];
    for (int i = dim + 1; i < nd; i++) *inner *= s[i];
}

static void check_slice_concat(void) {
    for (int rep = 0; rep < 8; rep++) {
        int nd = rep < 4 ? 3 : rep < 6 ? 4 : 2;
        int64_t s[4];
        for (int i = 0; i < nd; i++) s[i] = rng_int(2, 5);
        int dim = rep % nd, apidim = (rep == 3) ? dim - nd : dim; /* one negative dim */
        int64_t start = rng_int(0, (int)s[dim] - 1), len = rng_int(1, (int)(s[dim] - start));
        gc c;
        gc_init(&c, "slice", "x rank %d dim %d [%lld, %lld) of %lld", nd, apidim, (long long)start,
                (long long)(start + len), (long long)s[dim]);
        vlp_graph *g = vlp_graph_new();
        vlp_tensor *x = gc_in(&c, 0, g, "x", nd, s);
        vlp_tensor *y = vlp_slice(g, x, apidim, start, len);
        c.ref = ref_slice;
        split(nd, s, dim, &c.ip[0], &c.ip[2]);
        c.ip[1] = s[dim];
        c.ip[3] = start;
        c.ip[4] = len;
        gc_run(&c, g, NULL, y);
    }
    for (int rep = 0; rep < 8; rep++) {
        int nd = rep < 4 ? 3 : rep < 6 ? 4 : 2;
        int64_t sa[4], sb[4];
        for (int i = 0; i < nd; i++) sa[i] = sb[i] = rng_int(1, 4);
        int dim = rep % nd, apidim = (rep == 2) ? dim - nd : dim;
        sb[dim] = rng_int(1, 5);
        gc c;
        gc_init(&c, "concat", "rank %d dim %d: %lld + %lld", nd, apidim, (long long)sa[dim], (long long)sb[dim]);
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        vlp_tensor *a = gc_in(&c, 0, g, "a", nd, sa);
        vlp_tensor *b = gc_param(&c, 1, P, "b", nd, sb);
        vlp_tensor *y = vlp_concat(g, a, b, apidim);
        c.ref = ref_concat;
        split(nd, sa, dim, &c.ip[0], &c.ip[3]);
        c.ip[1] = sa[dim];
        c.ip[2] = sb[dim];
        gc_run(&c, g, P, y);
    }
}

/* reshape -> softmax over the new last dim; reshape -> matmul; view_cols of view_cols -> linear */
static void check_views(void) {
    {
        gc c;
        gc_init(&c, "reshape", "x[3,10] -> [6,5] -> softmax");
        vlp_graph *g = vlp_graph_new();
        int64_t s[2] = {3, 10}, t[2] = {6, 5};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 2, s);
        vlp_tensor *y = vlp_softmax(g, vlp_reshape(g, x, 2, t));
        c.lo[0] = -2, c.hi[0] = 2;
        c.ref = ref_softmax;
        c.ip[0] = 6;
        c.ip[1] = 5;
        gc_run(&c, g, NULL, y);
    }
    {
        gc c;
        gc_init(&c, "reshape", "x[2,3,5] -> [6,5] -> matmul b[5,7] (param reshaped from [35])");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t s[3] = {2, 3, 5}, t[2] = {6, 5}, bs[1] = {35}, bt[2] = {5, 7};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s);
        vlp_tensor *b = gc_param(&c, 1, P, "b", 1, bs);
        vlp_tensor *y = vlp_matmul(g, vlp_reshape(g, x, 2, t), vlp_reshape(g, b, 2, bt), 0, 0);
        c.ref = ref_matmul;
        int64_t ip[] = {0, 0, 1, 6, 7, 5, 1};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, y);
    }
    {
        gc c;
        gc_init(&c, "view_cols", "x[2,3,13] cols [2,10) then [3,8) -> linear N5");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t s[3] = {2, 3, 13}, ws[2] = {5, 5};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s);
        vlp_tensor *v = vlp_view_cols(g, vlp_view_cols(g, x, 2, 8), 3, 5);
        vlp_tensor *w = gc_param(&c, 1, P, "w", 2, ws);
        vlp_tensor *y = vlp_linear(g, v, w, NULL);
        c.ref = ref_linear;
        int64_t ip[] = {6, 5, 5, 13, 5};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, y);
    }
    {
        gc c;
        gc_init(&c, "view_cols", "x[4,9] cols [4,7) -> linear N3 bias");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t s[2] = {4, 9}, ws[2] = {3, 3}, bs[1] = {3};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 2, s);
        vlp_tensor *w = gc_param(&c, 1, P, "w", 2, ws);
        vlp_tensor *b = gc_param(&c, 2, P, "bias", 1, bs);
        vlp_tensor *y = vlp_linear(g, vlp_view_cols(g, x, 4, 3), w, b);
        c.ref = ref_linear;
        int64_t ip[] = {4, 3, 3, 9, 4};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, y);
    }
}

static void check_reductions(void) {
    for (int is_mean = 0; is_mean < 2; is_mean++)
        for (int rep = 0; rep < 3; rep++) {
            gc c;
            int64_t s[3] = {rng_int(1, 3), rng_odd(1), rng_odd(1)};
            if (rep == 2) s[0] = 5, s[1] = 130, s[2] = 103; /* > 65536: threaded chunked sum */
            gc_init(&c, is_mean ? "mean" : "sum", "x[%lld,%lld,%lld]%s", (long long)s[0], (long long)s[1],
                    (long long)s[2], rep == 1 ? " seed=NULL" : "");
            vlp_graph *g = vlp_graph_new();
            vlp_tensor *x = gc_in(&c, 0, g, "x", 3, s);
            vlp_tensor *y = is_mean ? vlp_mean(g, x) : vlp_sum(g, x);
            c.ref = ref_sum;
            c.ip[0] = prod(3, s);
            c.ip[1] = is_mean;
            c.null_seed = rep == 1;
            c.lo[0] = 0.1f, c.hi[0] = 1.0f; /* keep the sum away from 0 for the relative forward check */
            gc_run(&c, g, NULL, y);
        }
}

static void check_cross_entropy(void) {
    for (int rep = 0; rep < 6; rep++) {
        gc c;
        int64_t N = rng_odd(5), C = rng_odd(3);
        int ign = rep == 2 ? 1 : -100; /* an ignore_index that is a valid class */
        int32_t tg[16];
        for (int i = 0; i < N; i++) tg[i] = rng_int(0, (int)C - 1);
        tg[1] = ign;
        if (rep != 0) tg[N - 1] = ign;
        if (rep == 4) tg[0] = (int32_t)C - 1;
        if (rep == 5) /* every row ignored: loss 0, zero gradient */
            for (int i = 0; i < N; i++) tg[i] = ign;
        gc_init(&c, "cross_entropy", "N%lld C%lld ignore_index=%d%s", (long long)N, (long long)C, ign,
                rep == 3 ? " seed=NULL" : rep == 5 ? " all rows ignored" : "");
        vlp_graph *g = vlp_graph_new();
        int64_t ls[2] = {N, C};
        vlp_tensor *x = gc_in(&c, 0, g, "logits", 2, ls);
        c.lo[0] = -3, c.hi[0] = 3;
        vlp_tensor *t = gc_int(&c, 0, g, "targets", 1, &N, tg);
        vlp_tensor *y = vlp_cross_entropy(g, x, t, ign);
        c.ref = ref_ce;
        c.ip[0] = N;
        c.ip[1] = C;
        c.ip[2] = ign;
        c.null_seed = rep == 3;
        gc_run(&c, g, NULL, y);
    }
}

static void check_infonce(void) {
    for (int rep = 0; rep < 5; rep++) {
        gc c;
        int64_t N = rep == 0 ? 1 : rng_odd(3), E = rng_int(2, 6);
        int l2 = rep >= 3;
        gc_init(&c, "infonce", "N%lld E%lld%s", (long long)N, (long long)E, l2 ? " (a, b through l2norm)" : "");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t s[2] = {N, E};
        vlp_tensor *a = gc_in(&c, 0, g, "a", 2, s);
        vlp_tensor *b = gc_in(&c, 1, g, "b", 2, s);
        vlp_tensor *ls = gc_param(&c, 2, P, "log_scale", 0, NULL);
        c.lo[2] = 0.5f, c.hi[2] = 2.0f;
        if (l2) {
            a = vlp_l2norm(g, a, 1e-6f);
            b = vlp_l2norm(g, b, 1e-6f);
        }
        vlp_tensor *y = vlp_infonce(g, a, b, ls);
        c.ref = ref_infonce;
        c.ip[0] = N;
        c.ip[1] = E;
        c.ip[2] = l2;
        c.fp[0] = 1e-6f;
        c.fwd_tol = 2e-5;
        gc_run(&c, g, P, y);
    }
}

static void check_mse(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t s[3] = {rng_int(1, 3), rng_odd(1), rng_odd(1)};
        gc_init(&c, "mse", "[%lld,%lld,%lld]%s", (long long)s[0], (long long)s[1], (long long)s[2],
                rep == 2 ? " b is a param" : "");
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        vlp_tensor *a = gc_in(&c, 0, g, "a", 3, s);
        vlp_tensor *b = rep == 2 ? gc_param(&c, 1, P, "b", 3, s) : gc_in(&c, 1, g, "b", 3, s);
        vlp_tensor *y = vlp_mse(g, a, b);
        c.ref = ref_mse;
        c.ip[0] = prod(3, s);
        gc_run(&c, g, P, y);
    }
}

static void ref_soft_ce(const gc *c, double *const *in, double *out);
static void ref_soft_ce_sm(const gc *c, double *const *in, double *out) {
    int64_t N = c->ip[0], C = c->ip[1];
    double *t = malloc((size_t)(N * C) * sizeof(double));
    softmax_rows(in[1], N, C, t);
    double *in2[2] = {in[0], t};
    ref_soft_ce(c, in2, out);
    free(t);
}
static void ref_soft_ce(const gc *c, double *const *in, double *out) {
    int64_t N = c->ip[0], C = c->ip[1];
    double loss = 0;
    for (int64_t r = 0; r < N; r++) {
        const double *x = in[0] + r * C, *t = in[1] + r * C;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < C; j++) m = fmax(m, x[j]);
        for (int64_t j = 0; j < C; j++) s += exp(x[j] - m);
        for (int64_t j = 0; j < C; j++) loss -= t[j] * (x[j] - m - log(s));
    }
    out[0] = loss / (double)N;
}

static void check_soft_ce(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t s[2] = {rep == 0 ? 1 : rng_odd(1), rng_odd(1)};
        gc_init(&c, "soft_cross_entropy", "N%lld C%lld%s", (long long)s[0], (long long)s[1],
                rep == 2 ? " (targets through softmax)" : "");
        vlp_graph *g = vlp_graph_new();
        vlp_tensor *x = gc_in(&c, 0, g, "logits", 2, s), *t = gc_in(&c, 1, g, "targets", 2, s);
        c.lo[1] = 0.0f, c.hi[1] = 1.0f;
        vlp_tensor *y = vlp_soft_cross_entropy(g, x, rep == 2 ? vlp_softmax(g, t) : t);
        c.ref = rep == 2 ? ref_soft_ce_sm : ref_soft_ce; /* _sm: softmax the targets first */
        c.ip[0] = s[0];
        c.ip[1] = s[1];
        gc_run(&c, g, NULL, y);
    }
}

/* Dropout: FD with the mask read off the forward output, plus direct checks of
 * the backward relation, the keep fraction, determinism, and eval identity. */
static void check_dropout(void) {
    for (int rep = 0; rep < 3; rep++) {
        gc c;
        int64_t s[2] = {rng_odd(3), rng_odd(5)};
        gc_init(&c, "dropout", "train p=0.3 x[%lld,%lld] step %d", (long long)s[0], (long long)s[1], rep);
        vlp_graph *g = vlp_graph_new();
        vlp_tensor *x = gc_in(&c, 0, g, "x", 2, s);
        vlp_tensor *y = vlp_dropout(g, x, 0.3f);
        c.ref = ref_dropout;
        c.ip[0] = prod(2, s);
        c.fp[0] = 0.3f;
        c.training = 1;
        c.step = (uint64_t)rep;
        c.lo[0] = 0.1f, c.hi[0] = 1.0f; /* nonzero inputs: y == 0 exactly means dropped */
        gc_run(&c, g, NULL, y);
    }
    /* keep fraction, dy * (y != 0) / (1 - p), determinism, eval identity */
    const int64_t n = 20000;
    vlp_graph *g = vlp_graph_new();
    vlp_tensor *x = vlp_input_grad(g, "x", 1, &n);
    vlp_tensor *y = vlp_dropout(g, x, 0.3f);
    int rc = vlp_graph_build(g, y, VLP_BUILD_TRAIN);
    CHECK(rc == 0, "dropout build: %s", vlp_last_error());
    if (rc) {
        vlp_graph_free(g);
        return;
    }
    float *xd = x->data, *yd = y->data, *dy = malloc(n * sizeof(float)), *y1 = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) xd[i] = rng_f(0.1f, 2.0f), dy[i] = rng_f(-1.0f, 1.0f);
    vlp_graph_set_training(g, 1, 7);
    vlp_graph_forward(g);
    vlp_graph_backward(g, dy);
    int64_t kept = 0, bad_y = 0, bad_dx = 0;
    for (int64_t i = 0; i < n; i++) {
        int k = yd[i] != 0.0f;
        kept += k;
        if (k && fabsf(yd[i] - xd[i] / 0.7f) > 1e-6f * fabsf(xd[i] / 0.7f)) bad_y++;
        float want = k ? dy[i] / 0.7f : 0.0f;
        if (fabsf(x->grad[i] - want) > 1e-6f * fabsf(want)) bad_dx++;
    }
    double frac = (double)kept / (double)n;
    CHECK(fabs(frac - 0.7) < 0.015, "dropout keep fraction %.4f, want 0.7", frac);
    CHECK(bad_y == 0, "dropout: %lld kept outputs are not x / (1 - p)", (long long)bad_y);
    CHECK(bad_dx == 0, "dropout: %lld gradients differ from dy * (y != 0) / (1 - p)", (long long)bad_dx);
    printf("gradcheck %-13s %-44s keep_fraction=%.4f\n", "dropout", "train p=0.3 n=20000 step 7", frac);
    memcpy(y1, yd, n * sizeof(float));
    vlp_graph_forward(g);
    CHECK(!memcmp(y1, yd, n * sizeof(float)), "dropout: same step gives a different mask");
    vlp_graph_set_training(g, 1, 8);
    vlp_graph_forward(g);
    CHECK(memcmp(y1, yd, n * sizeof(float)) != 0, "dropout: a new step gives the same mask");
    vlp_graph_set_training(g, 0, 8);
    vlp_graph_forward(g);
    vlp_graph_backward(g, dy);
    CHECK(!memcmp(xd, yd, n * sizeof(float)), "dropout: eval mode is not the identity");
    CHECK(!memcmp(dy, x->grad, n * sizeof(float)), "dropout: eval-mode gradient is not dy");
    free(dy);
    free(y1);
    vlp_graph_free(g);
}

/* Composite: x -> linear(W1, b1) -> layernorm(g, b) -> quick_gelu -> linear(W2, b2) -> sum */
static void ref_chain(const gc *c, double *const *in, double *out) {
    int64_t rows = c->ip[0], K = c->ip[1], H1 = c->ip[2], H2 = c->ip[3];
    double *h = malloc((size_t)(rows * H1) * sizeof(double)), *z = malloc((size_t)(rows * H1) * sizeof(double));
    gc t = *c;
    double *lin1[3] = {in[0], in[1], in[2]};
    t.ip[0] = rows, t.ip[1] = K, t.ip[2] = H1, t.ip[3] = K, t.ip[4] = 0;
    ref_linear(&t, lin1, h);
    double *ln[3] = {h, in[3], in[4]};
    t.ip[0] = rows, t.ip[1] = H1, t.fp[0] = 1e-5f;
    ref_layernorm(&t, ln, z);
    for (int64_t i = 0; i < rows * H1; i++) z[i] = z[i] / (1.0 + exp(-1.702 * z[i]));
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t n = 0; n < H2; n++) {
            double a = in[6][n];
            for (int64_t k = 0; k < H1; k++) a += z[r * H1 + k] * in[5][n * H1 + k];
            s += a;
        }
    out[0] = s;
    free(h);
    free(z);
}

static void check_composite(void) {
    for (int rep = 0; rep < 2; rep++) {
        gc c;
        int64_t B = rng_int(2, 3), T = rng_odd(3), K = rng_odd(3), H1 = rng_odd(3), H2 = rng_odd(1);
        gc_init(&c, "composite", "linear>layernorm>quick_gelu>linear>sum x[%lld,%lld,%lld] H%lld,%lld", (long long)B,
                (long long)T, (long long)K, (long long)H1, (long long)H2);
        vlp_graph *g = vlp_graph_new();
        vlp_params *P = vlp_params_new();
        int64_t xs[3] = {B, T, K}, w1[2] = {H1, K}, w2[2] = {H2, H1};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 3, xs);
        vlp_tensor *W1 = gc_param(&c, 1, P, "w1", 2, w1), *b1 = gc_param(&c, 2, P, "b1", 1, &H1);
        vlp_tensor *lw = gc_param(&c, 3, P, "ln_w", 1, &H1), *lb = gc_param(&c, 4, P, "ln_b", 1, &H1);
        vlp_tensor *W2 = gc_param(&c, 5, P, "w2", 2, w2), *b2 = gc_param(&c, 6, P, "b2", 1, &H2);
        c.lo[3] = 0.5f, c.hi[3] = 1.5f;
        vlp_tensor *h = vlp_linear(g, x, W1, b1);
        h = vlp_layernorm(g, h, lw, lb, 1e-5f);
        h = vlp_quick_gelu(g, h);
        h = vlp_linear(g, h, W2, b2);
        vlp_tensor *y = vlp_sum(g, h);
        c.ref = ref_chain;
        c.ip[0] = B * T, c.ip[1] = K, c.ip[2] = H1, c.ip[3] = H2;
        c.null_seed = rep == 0;
        gc_run(&c, g, P, y);
    }
}

/* Only some inputs need gradients (plain vlp_input or frozen parameters): the
 * kernels' vlp_needs_grad branches. The name lists the checked tensors. */
static void check_partial(void) {
    gc c;
    vlp_graph *g;
    vlp_params *P;
    {
        gc_init(&c, "linear", "partial: x no grad; w, bias");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t xs[3] = {2, 5, 7}, ws[2] = {3, 7}, bs[1] = {3};
        vlp_tensor *x = gc_in_nograd(&c, 0, g, "x", 3, xs);
        vlp_tensor *w = gc_param(&c, 1, P, "w", 2, ws), *b = gc_param(&c, 2, P, "bias", 1, bs);
        c.ref = ref_linear;
        int64_t ip[] = {10, 7, 3, 7, 0};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, vlp_linear(g, x, w, b));
    }
    {
        gc_init(&c, "linear", "partial: x; w, bias frozen");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t xs[2] = {5, 3}, ws[2] = {7, 3}, bs[1] = {7};
        vlp_tensor *x = gc_in(&c, 0, g, "x", 2, xs);
        vlp_tensor *w = gc_param_frozen(&c, 1, P, "w", 2, ws), *b = gc_param_frozen(&c, 2, P, "bias", 1, bs);
        c.ref = ref_linear;
        int64_t ip[] = {5, 3, 7, 3, 0};
        memcpy(c.ip, ip, sizeof ip);
        gc_run(&c, g, P, vlp_linear(g, x, w, b));
    }
    for (int m = 0; m < 2; m++) {
        gc_init(&c, "matmul", m ? "partial: a3D^T; b batched no grad" : "partial: a3D no grad; b shared^T");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t as[3] = {3, m ? 5 : 7, m ? 7 : 5}, bs2[2] = {3, 5}, bs3[3] = {3, 5, 3};
        vlp_tensor *a = m ? gc_in(&c, 0, g, "a", 3, as) : gc_in_nograd(&c, 0, g, "a", 3, as);
        vlp_tensor *b = m ? gc_in_nograd(&c, 1, g, "b", 3, bs3) : gc_param(&c, 1, P, "b", 2, bs2);
        c.ref = ref_matmul;
        int64_t ip0[] = {0, 1, 3, 7, 3, 5, 1}, ip1[] = {1, 0, 3, 7, 3, 5, 0};
        memcpy(c.ip, m ? ip1 : ip0, sizeof ip0);
        gc_run(&c, g, P, vlp_matmul(g, a, b, m, !m));
    }
    for (int m = 0; m < 2; m++) {
        gc_init(&c, "layernorm", m ? "partial: x; w, b frozen" : "partial: x no grad; w, b");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t xs[2] = {7, 5}, ds[1] = {5};
        vlp_tensor *x = m ? gc_in(&c, 0, g, "x", 2, xs) : gc_in_nograd(&c, 0, g, "x", 2, xs);
        vlp_tensor *w = m ? gc_param_frozen(&c, 1, P, "w", 1, ds) : gc_param(&c, 1, P, "w", 1, ds);
        vlp_tensor *b = m ? gc_param_frozen(&c, 2, P, "b", 1, ds) : gc_param(&c, 2, P, "b", 1, ds);
        c.ref = ref_layernorm;
        c.ip[0] = 7, c.ip[1] = 5, c.fp[0] = 1e-5f;
        gc_run(&c, g, P, vlp_layernorm(g, x, w, b, 1e-5f));
    }
    for (int m = 0; m < 3; m++) { /* 0: q no grad; 1: q, k no grad; 2: v no grad */
        static const char *nm[] = {"partial: q no grad; k, v", "partial: q, k no grad; v", "partial: q, k; v no grad"};
        gc_init(&c, "attention", "%s (causal B2 T5 D6 H2)", nm[m]);
        g = vlp_graph_new();
        int64_t s[3] = {2, 5, 6};
        vlp_tensor *q = m <= 1 ? gc_in_nograd(&c, 0, g, "q", 3, s) : gc_in(&c, 0, g, "q", 3, s);
        vlp_tensor *k = m == 1 ? gc_in_nograd(&c, 1, g, "k", 3, s) : gc_in(&c, 1, g, "k", 3, s);
        vlp_tensor *v = m == 2 ? gc_in_nograd(&c, 2, g, "v", 3, s) : gc_in(&c, 2, g, "v", 3, s);
        int64_t ip[15] = {2, 5, 5, 6, 2, 1, 0, 1, 2, 0, 0, 0, 6, 6, 6};
        memcpy(c.ip, ip, sizeof ip);
        c.ref = ref_attention;
        gc_run(&c, g, NULL, vlp_attention(g, q, k, v, 2, VLP_ATTN_CAUSAL, NULL));
    }
    {
        gc_init(&c, "patch_embed", "partial: images no grad; w, bias (img[2,3,4,6] P2 D5)");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t is[4] = {2, 3, 4, 6}, ws[4] = {5, 3, 2, 2}, bs[1] = {5};
        vlp_tensor *img = gc_in_nograd(&c, 0, g, "images", 4, is);
        vlp_tensor *w = gc_param(&c, 1, P, "w", 4, ws), *b = gc_param(&c, 2, P, "bias", 1, bs);
        int64_t ip[] = {2, 3, 4, 6, 2, 5};
        memcpy(c.ip, ip, sizeof ip);
        c.ref = ref_patch_embed;
        gc_run(&c, g, P, vlp_patch_embed(g, img, w, b));
    }
    {
        gc_init(&c, "patch_embed", "partial: images; w, bias frozen (img[1,3,6,3] P3 D3)");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t is[4] = {1, 3, 6, 3}, ws[4] = {3, 3, 3, 3}, bs[1] = {3};
        vlp_tensor *img = gc_in(&c, 0, g, "images", 4, is);
        vlp_tensor *w = gc_param_frozen(&c, 1, P, "w", 4, ws), *b = gc_param_frozen(&c, 2, P, "bias", 1, bs);
        int64_t ip[] = {1, 3, 6, 3, 3, 3};
        memcpy(c.ip, ip, sizeof ip);
        c.ref = ref_patch_embed;
        gc_run(&c, g, P, vlp_patch_embed(g, img, w, b));
    }
    for (int m = 0; m < 4; m++) { /* add/mul with one side constant */
        int is_mul = m >> 1, a_const = m & 1;
        gc_init(&c, is_mul ? "mul" : "add", "partial: %s no grad (a[3,5,7] b[7])", a_const ? "a" : "b");
        g = vlp_graph_new();
        int64_t s[3] = {3, 5, 7};
        vlp_tensor *a = a_const ? gc_in_nograd(&c, 0, g, "a", 3, s) : gc_in(&c, 0, g, "a", 3, s);
        vlp_tensor *b = a_const ? gc_in(&c, 1, g, "b", 1, s + 2) : gc_in_nograd(&c, 1, g, "b", 1, s + 2);
        c.ref = ref_binary;
        c.ip[0] = 105, c.ip[1] = 7, c.ip[2] = is_mul;
        gc_run(&c, g, NULL, is_mul ? vlp_mul(g, a, b) : vlp_add(g, a, b));
    }
    {
        gc_init(&c, "concat", "partial: a no grad (dim 1: [2,3,4] + [2,2,4])");
        g = vlp_graph_new();
        int64_t sa[3] = {2, 3, 4}, sb[3] = {2, 2, 4};
        vlp_tensor *a = gc_in_nograd(&c, 0, g, "a", 3, sa), *b = gc_in(&c, 1, g, "b", 3, sb);
        c.ref = ref_concat;
        c.ip[0] = 2, c.ip[1] = 3, c.ip[2] = 2, c.ip[3] = 4;
        gc_run(&c, g, NULL, vlp_concat(g, a, b, 1));
    }
    {
        gc_init(&c, "infonce", "partial: log_scale frozen (N5 E4)");
        g = vlp_graph_new(), P = vlp_params_new();
        int64_t s[2] = {5, 4};
        vlp_tensor *a = gc_in(&c, 0, g, "a", 2, s), *b = gc_in(&c, 1, g, "b", 2, s);
        vlp_tensor *ls = gc_param_frozen(&c, 2, P, "log_scale", 0, NULL);
        c.lo[2] = 0.5f, c.hi[2] = 2.0f;
        c.ref = ref_infonce;
        c.ip[0] = 5, c.ip[1] = 4;
        gc_run(&c, g, P, vlp_infonce(g, a, b, ls));
    }
    {
        gc_init(&c, "mse", "partial: b no grad ([3,7])");
        g = vlp_graph_new();
        int64_t s[2] = {3, 7};
        vlp_tensor *a = gc_in(&c, 0, g, "a", 2, s), *b = gc_in_nograd(&c, 1, g, "b", 2, s);
        c.ref = ref_mse;
        c.ip[0] = 21;
        gc_run(&c, g, NULL, vlp_mse(g, a, b));
    }
}

int main(void) {
    vlp_set_threads(2);
    clock_t t0 = clock();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    check_matmul();
    check_linear();
    check_add_mul();
    check_unary();
    check_layernorm();
    check_softmax_l2norm();
    check_attention();
    check_embedding();
    check_patch_embed();
    check_gather_rows();
    check_prepend_token();
    check_slice_concat();
    check_views();
    check_reductions();
    check_cross_entropy();
    check_infonce();
    check_mse();
    check_soft_ce();
    check_dropout();
    check_partial();
    check_composite();
    clock_gettime(CLOCK_MONOTONIC, &w1);
    printf("\nmax grad rel error per op:\n");
    double worst = 0;
    for (int i = 0; i < n_stats; i++) {
        printf("  %-14s %.2e  (fwd %.2e, %d cases)\n", stats[i].name, stats[i].grad, stats[i].fwd, stats[i].cases);
        if (stats[i].grad > worst) worst = stats[i].grad;
    }
    printf("overall max grad rel error %.2e (tolerance %.0e); %.1f s wall, %.1f s cpu\n", worst, GRAD_TOL,
           (double)(w1.tv_sec - w0.tv_sec) + 1e-9 * (double)(w1.tv_nsec - w0.tv_nsec),
           (double)(clock() - t0) / CLOCKS_PER_SEC);
    return test_finish();
}
