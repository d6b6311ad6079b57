/* vlp plot: the curves of a training run (RUN_DIR/metrics.jsonl) as one SVG file: the loss,
 * the learning rate and every evaluation metric against the step. */
#include "cli.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: vlp plot RUN_DIR [--out FILE.svg]\n"
           "Draws RUN_DIR/metrics.jsonl: training loss, learning rate, and each evaluation metric (one panel\n"
           "per metric family, e.g. style/t2i_r1 ...) against the step. Default output RUN_DIR/curves.svg.\n"
           "exit status: 0 success, 1 failure, 2 usage error\n");
}

typedef struct {
    char name[160];
    double *x, *y;
    int n, cap;
} series;

typedef struct {
    series *s;
    int n, cap;
} series_set;

static series *get_series(series_set *ss, const char *name) {
    for (int i = 0; i < ss->n; i++)
        if (!strcmp(ss->s[i].name, name)) return &ss->s[i];
    if (ss->n == ss->cap) {
        int cap = ss->cap ? 2 * ss->cap : 16;
        series *ns = realloc(ss->s, (size_t)cap * sizeof *ns);
        if (!ns) return NULL;
        ss->s = ns;
        ss->cap = cap;
    }
    series *s = &ss->s[ss->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static int push(series *s, double x, double y) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return -1;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return 0;
}

/* Text content of an SVG element: & < > escaped (run paths and metric names are free text). */
static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else fputc(*s, f);
    }
}

static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* One panel at (x0, y0) of w x h with the series whose names start with prefix (or equal it). */
static void panel(FILE *f, series_set *ss, const char *title, const char *prefix, int exact, int logy, double x0,
                  double y0, double w, double h) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    int any = 0;
    for (int i = 0; i < ss->n; i++) {
        series *s = &ss->s[i];
        if (exact ? strcmp(s->name, prefix) : strncmp(s->name, prefix, strlen(prefix))) continue;
        for (int k = 0; k < s->n; k++) {
            double y = s->y[k];
            if (!isfinite(y) || (logy && y <= 0)) continue;
            if (logy) y = log10(y);
            xmin = fmin(xmin, s->x[k]), xmax = fmax(xmax, s->x[k]);
            ymin = fmin(ymin, y), ymax = fmax(ymax, y);
            any = 1;
        }
    }
    fprintf(f, "<g><rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#888'/>\n", x0, y0, w, h);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' font-weight='bold'>", x0, y0 - 6);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    if (!any) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' fill='#888'>no data</text></g>\n", x0 + 10, y0 + 20);
        return;
    }
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1, ymin -= 1;
    double pad = 0.05 * (ymax - ymin);
    ymin -= pad, ymax += pad;
#define PX(v) (x0 + ((v) - xmin) / (xmax - xmin) * w)
#define PY(v) (y0 + h - ((v) - ymin) / (ymax - ymin) * h)
    for (int t = 0; t <= 4; t++) { /* y ticks */
        double v = ymin + (ymax - ymin) * t / 4;
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#eee'/>", x0, x0 + w, PY(v), PY(v));
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>%.4g</text>\n", x0 - 4, PY(v) + 3,
                logy ? pow(10, v) : v);
    }
    for (int t = 0; t <= 4; t++) {
        double v = xmin + (xmax - xmin) * t / 4;
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%.0f</text>\n", PX(v), y0 + h + 13, v);
    }
    int c = 0;
    for (int i = 0; i < ss->n; i++) {
        series *s = &ss->s[i];
        if (exact ? strcmp(s->name, prefix) : strncmp(s->name, prefix, strlen(prefix))) continue;
        const char *col = colors[c % 8];
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", col);
        for (int k = 0; k < s->n; k++) {
            double y = s->y[k];
            if (!isfinite(y) || (logy && y <= 0)) continue;
            fprintf(f, "%.1f,%.1f ", PX(s->x[k]), PY(logy ? log10(y) : y));
        }
        fprintf(f, "'/>\n");
        if (s->n == 1 || s->n < 30)
            for (int k = 0; k < s->n; k++)
                if (isfinite(s->y[k]) && !(logy && s->y[k] <= 0))
                    fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='%s'/>", PX(s->x[k]),
                            PY(logy ? log10(s->y[k]) : s->y[k]), col);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' fill='%s' text-anchor='end'>", x0 + w - 6,
                y0 + 14 + 13 * c, col);
        xml_text(f, s->name);
        fprintf(f, " = %.4g</text>\n", s->y[s->n - 1]);
        c++;
    }
#undef PX
#undef PY
    fprintf(f, "</g>\n");
}

int vlp_cmd_plot(int argc, char **argv) {
    const char *run = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            return CLI_OK;
        } else if (!strcmp(argv[i], "--out")) {
            if (!(out = cli_value("plot", argc, argv, &i))) return CLI_USAGE;
        } else if (argv[i][0] == '-' || run) {
            fprintf(stderr, "vlp plot: unexpected argument '%s' (see vlp plot --help)\n", argv[i]);
            return CLI_USAGE;
        } else {
            run = argv[i];
        }
    }
    if (!run) {
        fprintf(stderr, "vlp plot: which run? vlp plot RUN_DIR\n");
        return CLI_USAGE;
    }
    char in[4200], def[4200];
    snprintf(in, sizeof in, "%s/metrics.jsonl", run);
    if (!out) {
        snprintf(def, sizeof def, "%s/curves.svg", run);
        out = def;
    }
    size_t ol = strlen(out);
    if (ol < 4 || strcmp(out + ol - 4, ".svg")) {
        fprintf(stderr, "vlp plot: only SVG output is supported (--out FILE.svg)\n");
        return CLI_USAGE;
    }
    FILE *f = fopen(in, "r");
    if (!f) {
        fprintf(stderr, "vlp plot: %s: cannot open (is %s a run directory?)\n", in, run);
        return CLI_FAIL;
    }
    series_set ss = {0};
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) >= 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (!json_is_integer(st)) {
            json_decref(j);
            continue;
        }
        double x = (double)json_integer_value(st);
        const char *k;
        json_t *v;
        int eval = json_object_get(j, "loss") == NULL;
        json_object_foreach(j, k, v) {
            if (!json_is_number(v) || !strcmp(k, "step") || !strcmp(k, "epoch") || !strcmp(k, "time_s") ||
                !strcmp(k, "eval_s"))
                continue;
            char name[128];
            snprintf(name, sizeof name, "%s%s", eval ? "eval:" : "", k);
            series *s = get_series(&ss, name);
            if (s) push(s, x, json_number_value(v));
        }
        json_decref(j);
        lines++;
    }
    free(line);
    fclose(f);
    FILE *o = fopen(out, "w");
    if (!o) {
        fprintf(stderr, "vlp plot: %s: cannot write\n", out);
        rc_free:
        for (int i = 0; i < ss.n; i++) free(ss.s[i].x), free(ss.s[i].y);
        free(ss.s);
        return CLI_FAIL;
    }
    /* panels: loss, lr, logit scale, throughput, then one per eval family (prefix before '/') */
    char fams[16][64];
    int nf = 0;
    for (int i = 0; i < ss.n && nf < 16; i++) {
        if (strncmp(ss.s[i].name, "eval:", 5)) continue;
        const char *n = ss.s[i].name + 5, *sl = strchr(n, '/');
        char fam[64];
        snprintf(fam, sizeof fam, "eval:%.*s", sl ? (int)(sl - n) : (int)strlen(n), n);
        int seen = 0;
        for (int k = 0; k < nf; k++) seen |= !strcmp(fams[k], fam);
        if (!seen) snprintf(fams[nf++], sizeof fams[0], "%s", fam);
    }
    int panels = 4 + nf, cols = 2, rows = (panels + cols - 1) / cols;
    double W = 460, H = 260, M = 70;
    fprintf(o, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif'>\n",
            cols * (W + M) + M, rows * (H + M) + 40);
    fprintf(o, "<rect width='100%%' height='100%%' fill='white'/>\n");
    fprintf(o, "<text x='%.0f' y='22' font-size='15'>", M);
    xml_text(o, run);
    fprintf(o, " (%d lines of metrics.jsonl)</text>\n", lines);
    struct {
        const char *title, *prefix;
        int exact, logy;
    } fixed[4] = {{"training loss", "loss", 1, 1},
                  {"learning rate", "lr", 1, 0},
                  {"logit scale", "logit_scale", 1, 0},
                  {"pairs/s", "pairs_per_s", 1, 0}};
    for (int p = 0; p < panels; p++) {
        double x0 = M + (p % cols) * (W + M), y0 = 40 + M / 2 + (p / cols) * (H + M);
        if (p < 4) panel(o, &ss, fixed[p].title, fixed[p].prefix, fixed[p].exact, fixed[p].logy, x0, y0, W, H);
        else {
            char t[80], pre[80];
            snprintf(t, sizeof t, "eval: %s", fams[p - 4] + 5);
            snprintf(pre, sizeof pre, "%s", fams[p - 4]);
            panel(o, &ss, t, pre, 0, 0, x0, y0, W, H);
        }
    }
    fprintf(o, "</svg>\n");
    if (fclose(o)) {
        fprintf(stderr, "vlp plot: %s: write failed\n", out);
        goto rc_free;
    }
    printf("wrote %s (%d panels)\n", out, panels);
    for (int i = 0; i < ss.n; i++) free(ss.s[i].x), free(ss.s[i].y);
    free(ss.s);
    return CLI_OK;
}
