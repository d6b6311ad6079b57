/* Shared helpers of the vlp CLI commands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "vlp %s: %s wants an integer in %ld..%ld, got '%s'\n", cmd, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "vlp %s: %s wants a number in [%g, %g], got '%s'\n", cmd, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "vlp %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_progress_redraw(void) {
    const char *env = getenv("VLP_PROGRESS");
    return env ? atoi(env) != 0 : isatty(2);
}

void cli_progress_start(cli_progress *p, const char *label, const char *unit, int64_t total) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->t0 = p->last = cli_now();
    p->enabled = cli_progress_redraw();
}

/* Ctrl-C during training: the trainer stops at the next step boundary and saves a checkpoint
 * (the on_step callbacks return non-zero once cli_interrupted() is set). */
static volatile sig_atomic_t interrupted;
static struct sigaction old_sigint;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}
void cli_sigint_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART; /* reads and writes in flight carry on; the flag is polled per step */
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_sigint);
}
void cli_sigint_restore(void) { sigaction(SIGINT, &old_sigint, NULL); }
int cli_interrupted(void) { return interrupted; }

static void draw(cli_progress *p, int64_t done, int final) {
    double el = cli_now() - p->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
    fprintf(stderr, "\r%s %lld/%lld %s  %.1f %s/s  %s %02d:%02d%s", p->label, (long long)done, (long long)p->total,
            p->unit, rate, p->unit, final ? "took" : "ETA", (int)((final ? el : eta) / 60),
            (int)fmod(final ? el : eta, 60), final ? "\n" : "   ");
    fflush(stderr);
}

void cli_progress_update(cli_progress *p, int64_t done) {
    if (!p->enabled) return;
    double t = cli_now();
    if (t - p->last < 0.5) return;
    p->last = t;
    draw(p, done, 0);
}

void cli_progress_end(cli_progress *p, int64_t done) {
    if (p->enabled && cli_now() - p->t0 > 1.0) draw(p, done, 1);
}
