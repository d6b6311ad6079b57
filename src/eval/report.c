/* vlp report: one self-contained HTML page comparing runs.
 *
 * Inputs per run directory (see include/vlp_eval.h):
 *   metrics.jsonl                      training log: {"step": N, "loss": x, ...} per line
 *   eval_<task>_<split>.json           {"task", "split", "data", "n", "predictions", "metrics": {...}}
 *   predictions_<task>_<split>.jsonl   one prediction per example of "data", in its order
 * Output: metric tables (runs side by side, one table per task and split), training curves as
 * inline SVG (every log field whose name contains "loss", against "step"), and a gallery of
 * examples with their images embedded as data: URIs, predicted and true answers, right or wrong
 * marked. Nothing on the page refers to another file or to the network. */
#include "eval_internal.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_IMAGE_BYTES (2u << 20) /* larger images are not embedded (a note is shown) */
#define MAX_CURVE_POINTS 800

typedef struct {
    char *name;
    int64_t n, cap;
    double *x, *y;
} series;

typedef struct {
    char *file;       /* the eval json path */
    char *task, *split;
    char *data;       /* resolved data path or NULL */
    char *pred;       /* resolved predictions path or NULL */
    json_t *metrics;  /* borrowed from root */
    json_t *root;
} eval_entry;

typedef struct {
    char *dir, *name;
    int n_series;
    series *s;
    int64_t log_rows, log_bad;
    int n_evals;
    eval_entry *evals;
} run_info;

static void run_free(run_info *r) {
    free(r->dir);
    free(r->name);
    for (int i = 0; i < r->n_series; i++) {
        free(r->s[i].name);
        free(r->s[i].x);
        free(r->s[i].y);
    }
    free(r->s);
    for (int i = 0; i < r->n_evals; i++) {
        eval_entry *e = &r->evals[i];
        free(e->file);
        free(e->task);
        free(e->split);
        free(e->data);
        free(e->pred);
        json_decref(e->root);
    }
    free(r->evals);
}

static series *get_series(run_info *r, const char *name) {
    for (int i = 0; i < r->n_series; i++)
        if (!strcmp(r->s[i].name, name)) return &r->s[i];
    series *p = realloc(r->s, sizeof *p * (size_t)(r->n_series + 1));
    if (!p) return NULL;
    r->s = p;
    series *s = &r->s[r->n_series];
    memset(s, 0, sizeof *s);
    if (!(s->name = ev_strdup(name))) return NULL;
    r->n_series++;
    return s;
}

static int series_add(series *s, double x, double y) {
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 64;
        double *a = realloc(s->x, sizeof(double) * (size_t)cap);
        if (!a) return -1;
        s->x = a;
        double *b = realloc(s->y, sizeof(double) * (size_t)cap);
        if (!b) return -1;
        s->y = b;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

/* The training log: bad lines (a run still writing leaves a partial last line) are counted. */
static int read_log(run_info *r, const char *path) {
    size_t size;
    char *data = ev_read_file(path, &size);
    if (!data) return 0; /* no log: no curves */
    int rc = 0;
    char *save = NULL;
    for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strspn(l, " \t\r") == strlen(l)) continue;
        json_t *o = json_loads(l, 0, NULL);
        json_t *st = o ? json_object_get(o, "step") : NULL;
        if (!o || !json_is_object(o) || !json_is_number(st)) {
            r->log_bad++;
            json_decref(o);
            continue;
        }
        r->log_rows++;
        json_t *split = json_object_get(o, "split");
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
            /* "loss_last" (the last step's loss next to the window mean) would only add noise */
            size_t kl = strlen(key);
            if (!json_is_number(v) || !strstr(key, "loss") || (kl > 5 && !strcmp(key + kl - 5, "_last"))) continue;
            char name[256];
            if (json_is_string(split)) snprintf(name, sizeof name, "%s %s", json_string_value(split), key);
            else snprintf(name, sizeof name, "%s", key);
            series *s = get_series(r, name);
            if (!s || series_add(s, json_number_value(st), json_number_value(v))) {
                rc = -1;
                break;
            }
        }
        json_decref(o);
        if (rc) break;
    }
    free(data);
    if (rc) vlp_set_error("%s: out of memory", path);
    return rc;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int task_rank(const char *t) {
    vlp_task_kind k;
    return vlp_task_from_name(t, &k) == 0 ? (int)k : VLP_TASK_COUNT;
}

/* Tasks in the spec's order (caption, vqa, nlvr, ground2, ground3, mc), then others by name. */
static int eval_cmp(const void *a, const void *b) {
    const eval_entry *x = a, *y = b;
    int ra = task_rank(x->task), rb = task_rank(y->task);
    if (ra != rb) return ra - rb;
    int c = strcmp(x->task, y->task);
    return c ? c : strcmp(x->split, y->split);
}

static int read_evals(run_info *r) {
    DIR *d = opendir(r->dir);
    if (!d) {
        vlp_set_error("%s: cannot open the run directory", r->dir);
        return VLP_ERR_IO;
    }
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 10 || strncmp(de->d_name, "eval_", 5) || strcmp(de->d_name + l - 5, ".json")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, sizeof *p * (size_t)cap);
            if (!p) {
                rc = VLP_ERR_NOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = ev_strdup(de->d_name))) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n) qsort(names, (size_t)n, sizeof *names, name_cmp);
    if (!rc && n && !(r->evals = calloc((size_t)n, sizeof *r->evals))) rc = VLP_ERR_NOMEM;
    if (rc == VLP_ERR_NOMEM) vlp_set_error("%s: out of memory", r->dir);
    for (int i = 0; i < n && !rc; i++) {
        eval_entry *e = &r->evals[r->n_evals];
        e->file = ev_path_join(r->dir, names[i]);
        json_error_t err;
        e->root = e->file ? json_load_file(e->file, 0, &err) : NULL;
        r->n_evals++;
        if (!e->root) {
            vlp_set_error("%s: not JSON: %s (line %d)", e->file ? e->file : names[i], err.text, err.line);
            rc = VLP_ERR_IO;
            break;
        }
        json_t *task = json_object_get(e->root, "task"), *split = json_object_get(e->root, "split");
        e->metrics = json_object_get(e->root, "metrics");
        if (!json_is_string(task) || !json_is_object(e->metrics)) {
            vlp_set_error("%s: needs a string \"task\" and an object \"metrics\"", e->file);
            rc = VLP_ERR_IO;
            break;
        }
        e->task = ev_strdup(json_string_value(task));
        e->split = ev_strdup(json_is_string(split) ? json_string_value(split) : "-");
        json_t *data = json_object_get(e->root, "data"), *pred = json_object_get(e->root, "predictions");
        if (json_is_string(data)) e->data = ev_path_join(r->dir, json_string_value(data));
        if (json_is_string(pred)) {
            e->pred = ev_path_join(r->dir, json_string_value(pred));
        } else { /* the conventional name next to the eval file */
            char pn[600];
            snprintf(pn, sizeof pn, "predictions_%.*s.jsonl", (int)(strlen(names[i]) - 10), names[i] + 5);
            e->pred = ev_path_join(r->dir, pn);
        }
        if (!e->task || !e->split) {
            vlp_set_error("%s: out of memory", e->file);
            rc = VLP_ERR_NOMEM;
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!rc && r->n_evals > 1) qsort(r->evals, (size_t)r->n_evals, sizeof *r->evals, eval_cmp);
    return rc;
}

/* ---- HTML pieces ---------------------------------------------------------------------------- */
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

static void put_number(ev_buf *b, json_t *v) {
    if (json_is_integer(v)) ev_buf_printf(b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        double x = json_real_value(v);
        ev_buf_printf(b, fabs(x) >= 1000 ? "%.1f" : "%.4f", x);
    } else if (json_is_string(v)) ev_buf_html(b, json_string_value(v));
    else if (json_is_true(v)) ev_buf_puts(b, "true");
    else if (json_is_false(v)) ev_buf_puts(b, "false");
    else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) ev_buf_puts(b, " / ");
            put_number(b, json_array_get(v, i));
        }
    } else ev_buf_puts(b, "&ndash;");
}

/* Flattened metric names of one object ("types.category.accuracy"), appended in order. */
typedef struct {
    char **k;
    int n, cap;
} keylist;

static int keylist_add(keylist *l, const char *k) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->k[i], k)) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 32;
        char **p = realloc(l->k, sizeof *p * (size_t)cap);
        if (!p) return -1;
        l->k = p;
        l->cap = cap;
    }
    if (!(l->k[l->n] = ev_strdup(k))) return -1;
    l->n++;
    return 0;
}

static int flatten(json_t *o, const char *prefix, keylist *l) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (json_is_object(v)) {
            if (flatten(v, name, l)) return -1;
        } else if (keylist_add(l, name)) {
            return -1;
        }
    }
    return 0;
}

static json_t *lookup(json_t *o, const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    json_t *v = o;
    for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) v = json_object_get(v, p);
    return v;
}

/* Baselines and counts are not "better when higher"; the best run is bolded on other rows. */
static int is_score_row(const char *k) {
    return !strstr(k, "chance") && !strstr(k, "majority") && strcmp(k, "n") && !strstr(k, ".n") &&
           !strstr(k, "tokens") && !strstr(k, "brevity") && !strstr(k, "precisions");
}

typedef struct {
    const char *task, *split;
} table_key;

static int table_cmp(const void *a, const void *b) {
    const table_key *x = a, *y = b;
    int ra = task_rank(x->task), rb = task_rank(y->task);
    if (ra != rb) return ra - rb;
    int c = strcmp(x->task, y->task);
    return c ? c : strcmp(x->split, y->split);
}

static eval_entry *find_eval(run_info *r, const char *task, const char *split) {
    for (int i = 0; i < r->n_evals; i++)
        if (!strcmp(r->evals[i].task, task) && !strcmp(r->evals[i].split, split)) return &r->evals[i];
    return NULL;
}

static int write_tables(ev_buf *b, run_info *runs, int n_runs) {
    int total = 0;
    for (int r = 0; r < n_runs; r++) total += runs[r].n_evals;
    ev_buf_puts(b, "<section id=\"metrics\"><h2>Metrics</h2>\n");
    if (!total) {
        ev_buf_puts(b, "<p class=\"note\">No eval_&lt;task&gt;_&lt;split&gt;.json files in these runs.</p></section>\n");
        return 0;
    }
    table_key *keys = calloc((size_t)total, sizeof *keys);
    if (!keys) return -1;
    int nk = 0;
    for (int r = 0; r < n_runs; r++)
        for (int i = 0; i < runs[r].n_evals; i++) {
            int j;
            for (j = 0; j < nk; j++)
                if (!strcmp(keys[j].task, runs[r].evals[i].task) && !strcmp(keys[j].split, runs[r].evals[i].split)) break;
            if (j == nk) keys[nk++] = (table_key){runs[r].evals[i].task, runs[r].evals[i].split};
        }
    qsort(keys, (size_t)nk, sizeof *keys, table_cmp);
    int rc = 0;
    for (int t = 0; t < nk && !rc; t++) {
        keylist rows = {0};
        for (int r = 0; r < n_runs && !rc; r++) {
            eval_entry *e = find_eval(&runs[r], keys[t].task, keys[t].split);
            if (e && flatten(e->metrics, "", &rows)) rc = -1;
        }
        ev_buf_puts(b, "<table class=\"metrics\" data-task=\"");
        ev_buf_html(b, keys[t].task);
        ev_buf_puts(b, "\" data-split=\"");
        ev_buf_html(b, keys[t].split);
        ev_buf_puts(b, "\"><caption>");
        ev_buf_html(b, keys[t].task);
        ev_buf_puts(b, " &middot; ");
        ev_buf_html(b, keys[t].split);
        ev_buf_puts(b, "</caption>\n<thead><tr><th>metric</th>");
        for (int r = 0; r < n_runs; r++) {
            ev_buf_puts(b, "<th>");
            ev_buf_html(b, runs[r].name);
            eval_entry *e = find_eval(&runs[r], keys[t].task, keys[t].split);
            json_t *n = e ? json_object_get(e->root, "n") : NULL;
            if (!n && e) n = json_object_get(e->metrics, "n");
            if (json_is_integer(n)) ev_buf_printf(b, "<br><small>n = %lld</small>", (long long)json_integer_value(n));
            ev_buf_puts(b, "</th>");
        }
        ev_buf_puts(b, "</tr></thead>\n<tbody>\n");
        for (int k = 0; k < rows.n; k++) {
            /* the best run on a score row is bolded */
            int best = -1, ties = 0;
            double bv = -INFINITY;
            for (int r = 0; r < n_runs && is_score_row(rows.k[k]); r++) {
                eval_entry *e = find_eval(&runs[r], keys[t].task, keys[t].split);
                json_t *v = e ? lookup(e->metrics, rows.k[k]) : NULL;
                if (!json_is_number(v)) continue;
                if (json_number_value(v) > bv) {
                    bv = json_number_value(v);
                    best = r;
                    ties = 0;
                } else if (json_number_value(v) == bv) {
                    ties = 1;
                }
            }
            if (ties) best = -1; /* nothing to single out */
            ev_buf_puts(b, "<tr><td class=\"key\">");
            ev_buf_html(b, rows.k[k]);
            ev_buf_puts(b, "</td>");
            for (int r = 0; r < n_runs; r++) {
                eval_entry *e = find_eval(&runs[r], keys[t].task, keys[t].split);
                json_t *v = e ? lookup(e->metrics, rows.k[k]) : NULL;
                ev_buf_puts(b, r == best && n_runs > 1 ? "<td class=\"best\">" : "<td>");
                put_number(b, v);
                ev_buf_puts(b, "</td>");
            }
            ev_buf_puts(b, "</tr>\n");
        }
        ev_buf_puts(b, "</tbody></table>\n");
        for (int k = 0; k < rows.n; k++) free(rows.k[k]);
        free(rows.k);
    }
    free(keys);
    ev_buf_puts(b, "</section>\n");
    return rc;
}

/* Round tick steps: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int ticks) {
    double raw = range / ticks, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void write_curves(ev_buf *b, run_info *runs, int n_runs) {
    ev_buf_puts(b, "<section id=\"curves\"><h2>Training curves</h2>\n");
    keylist names = {0};
    for (int r = 0; r < n_runs; r++)
        for (int i = 0; i < runs[r].n_series; i++) keylist_add(&names, runs[r].s[i].name);
    if (!names.n) ev_buf_puts(b, "<p class=\"note\">No training logs (metrics.jsonl with \"step\" and a loss).</p>\n");
    const double W = 640, H = 280, L = 64, R = 16, T = 16, B = 40;
    for (int k = 0; k < names.n; k++) {
        double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (int r = 0; r < n_runs; r++)
            for (int i = 0; i < runs[r].n_series; i++) {
                series *s = &runs[r].s[i];
                if (strcmp(s->name, names.k[k])) continue;
                for (int64_t j = 0; j < s->n; j++) {
                    if (!isfinite(s->x[j]) || !isfinite(s->y[j])) continue;
                    x0 = fmin(x0, s->x[j]), x1 = fmax(x1, s->x[j]);
                    y0 = fmin(y0, s->y[j]), y1 = fmax(y1, s->y[j]);
                }
            }
        if (!isfinite(x0) || !isfinite(y0)) continue;
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) y1 = y0 + fmax(1e-6, fabs(y0) * 0.1);
        double ys = nice_step(y1 - y0, 5), xs = nice_step(x1 - x0, 6);
        y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
        ev_buf_puts(b, "<figure class=\"chart\"><figcaption>");
        ev_buf_html(b, names.k[k]);
        ev_buf_printf(b, " vs step</figcaption>\n<svg class=\"curve\" "
                         "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
                      W, H, W, H);
        ev_buf_printf(b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#999\"/>\n", L,
                      T, W - L - R, H - T - B);
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
        for (double y = y0; y <= y1 + ys * 1e-6; y += ys)
            ev_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%g</text>\n",
                          L, W - R, PY(y), PY(y), L - 6, PY(y) + 4, fabs(y) < ys * 1e-6 ? 0.0 : y);
        for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-6; x += xs)
            ev_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">%g</text>\n", PX(x),
                          H - B + 16, x);
        ev_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"axis\">step</text>\n",
                      L + (W - L - R) / 2, H - 6);
        int legend = 0;
        for (int r = 0; r < n_runs; r++)
            for (int i = 0; i < runs[r].n_series; i++) {
                series *s = &runs[r].s[i];
                if (strcmp(s->name, names.k[k]) || !s->n) continue;
                const char *col = palette[r % 8];
                int64_t stride = s->n > MAX_CURVE_POINTS ? (s->n + MAX_CURVE_POINTS - 1) / MAX_CURVE_POINTS : 1;
                ev_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
                for (int64_t j = 0; j < s->n; j += stride)
                    if (isfinite(s->x[j]) && isfinite(s->y[j])) ev_buf_printf(b, "%.1f,%.1f ", PX(s->x[j]), PY(s->y[j]));
                if ((s->n - 1) % stride && isfinite(s->y[s->n - 1]))
                    ev_buf_printf(b, "%.1f,%.1f", PX(s->x[s->n - 1]), PY(s->y[s->n - 1]));
                ev_buf_puts(b, "\"/>\n");
                if (s->n == 1)
                    ev_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s->x[0]), PY(s->y[0]), col);
                ev_buf_printf(b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                                 "<text x=\"%.0f\" y=\"%.0f\" class=\"legend\">",
                              W - R - 150, T + 12 + legend * 16.0, col, W - R - 134, T + 16 + legend * 16.0);
                ev_buf_html(b, runs[r].name);
                ev_buf_puts(b, "</text>\n");
                legend++;
            }
#undef PX
#undef PY
        ev_buf_puts(b, "</svg></figure>\n");
    }
    for (int k = 0; k < names.n; k++) free(names.k[k]);
    free(names.k);
    ev_buf_puts(b, "</section>\n");
}

static const char *image_mime(const unsigned char *d, size_t n) {
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return "image/jpeg";
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "image/gif";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "image/webp";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "image/bmp";
    return NULL;
}

/* A data: URI of the image file into b; a visible note when it cannot be embedded. */
static void put_image(ev_buf *b, const char *path, const char *cls, int px) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct stat st;
    const char *why = NULL;
    unsigned char *d = NULL;
    size_t n = 0;
    if (!path || stat(path, &st) != 0) why = "image missing";
    else if ((size_t)st.st_size > MAX_IMAGE_BYTES) why = "image too large to embed";
    else if (!(d = (unsigned char *)ev_read_file(path, &n))) why = "image unreadable";
    const char *mime = d ? image_mime(d, n) : NULL;
    if (d && !mime) why = "not an image";
    if (why) {
        ev_buf_printf(b, "<span class=\"noimg %s\" style=\"width:%dpx;height:%dpx\">", cls, px, px);
        ev_buf_puts(b, why);
        ev_buf_puts(b, "</span>");
        free(d);
        return;
    }
    ev_buf_printf(b, "<img class=\"%s\" width=\"%d\" height=\"%d\" alt=\"", cls, px, px);
    const char *base = strrchr(path, '/');
    ev_buf_html(b, base ? base + 1 : path);
    ev_buf_printf(b, "\" src=\"data:%s;base64,", mime);
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        q[0] = tbl[v >> 18 & 63], q[1] = tbl[v >> 12 & 63];
        q[2] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tbl[v & 63] : '=';
        ev_buf_put(b, q, 4);
    }
    ev_buf_puts(b, "\">");
    free(d);
}

static void put_label(ev_buf *b, vlp_task_kind k, const vlp_task_example *x, int label) {
    if (k == VLP_TASK_NLVR) ev_buf_puts(b, label == 1 ? "true" : label == 0 ? "false" : "?");
    else if (k == VLP_TASK_MC && label >= 0 && label < x->n_choices) {
        ev_buf_printf(b, "%d: ", label);
        ev_buf_html(b, x->choices[label]);
    } else if (k == VLP_TASK_GROUND2 || k == VLP_TASK_GROUND3) ev_buf_printf(b, "cell %d", label);
    else ev_buf_printf(b, "%d", label);
}

/* Picks up to g examples, about half right and half wrong when both exist, spread evenly over
 * the file (neighbouring rows often share an image), returned in file order. */
static int idx_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int pick(const unsigned char *correct, int64_t n, int g, int64_t *out) {
    int64_t n_right = 0;
    for (int64_t i = 0; i < n; i++) n_right += correct[i];
    int64_t n_wrong = n - n_right, want_right = (g + 1) / 2, want_wrong = g / 2;
    if (n_wrong < want_wrong) want_right = g - n_wrong;
    if (n_right < want_right) want_wrong = g - n_right;
    if (want_right > n_right) want_right = n_right;
    if (want_wrong > n_wrong) want_wrong = n_wrong;
    int m = 0;
    for (int kind = 1; kind >= 0; kind--) {
        int64_t total = kind ? n_right : n_wrong, want = kind ? want_right : want_wrong, seen = 0, k = 0;
        /* the k-th pick is the (k * total / want)-th example of this kind */
        for (int64_t i = 0; i < n && k < want; i++) {
            if (correct[i] != kind) continue;
            if (seen == k * total / want) {
                out[m++] = i;
                k++;
            }
            seen++;
        }
    }
    qsort(out, (size_t)m, sizeof *out, idx_cmp);
    return m;
}

static void write_gallery_entry(ev_buf *b, run_info *r, eval_entry *e, int g) {
    vlp_task_kind kind;
    if (vlp_task_from_name(e->task, &kind)) return; /* retrieval and other evals have no gallery */
    ev_buf_puts(b, "<h3>");
    ev_buf_html(b, r->name);
    ev_buf_puts(b, " &middot; ");
    ev_buf_html(b, e->task);
    ev_buf_puts(b, " &middot; ");
    ev_buf_html(b, e->split);
    ev_buf_puts(b, "</h3>\n");
    if (!e->data) {
        ev_buf_puts(b, "<p class=\"note\">No \"data\" file recorded in ");
        ev_buf_html(b, e->file);
        ev_buf_puts(b, ".</p>\n");
        return;
    }
    vlp_task_set *s = vlp_task_read(e->data, kind, NULL);
    vlp_task_predictions *p = s && e->pred ? vlp_task_predictions_read(e->pred, kind) : NULL;
    if (!s || !p || (p->n != s->n && p->n != s->n_rows)) {
        ev_buf_puts(b, "<p class=\"note\">No gallery: ");
        if (s && p) ev_buf_printf(b, "%lld predictions for %lld examples", (long long)p->n, (long long)s->n);
        else ev_buf_html(b, vlp_last_error());
        ev_buf_puts(b, "</p>\n");
        vlp_task_predictions_free(p);
        vlp_task_set_free(s);
        return;
    }
    int by_row = p->n != s->n;
    unsigned char *correct = calloc((size_t)(s->n ? s->n : 1), 1);
    int64_t *idx = calloc((size_t)g, sizeof *idx);
    int m = 0;
    int64_t right = 0;
    if (correct && idx) {
        for (int64_t i = 0; i < s->n; i++) {
            int64_t q = by_row ? s->ex[i].row : i;
            if (kind == VLP_TASK_CAPTION || kind == VLP_TASK_VQA) {
                char *a = vlp_answer_normalize(p->text[q]), *t = vlp_answer_normalize(s->ex[i].answer);
                correct[i] = a && t && !strcmp(a, t);
                free(a);
                free(t);
            } else {
                correct[i] = p->label[q] == s->ex[i].label;
            }
            right += correct[i];
        }
        m = pick(correct, s->n, g, idx);
    }
    ev_buf_printf(b, "<p class=\"note\">%lld of %lld right (%.1f%%); data ", (long long)right, (long long)s->n,
                  s->n ? 100.0 * (double)right / (double)s->n : 0.0);
    ev_buf_html(b, e->data);
    ev_buf_puts(b, "</p>\n<div class=\"gallery\">\n");
    for (int j = 0; j < m; j++) {
        const vlp_task_example *x = &s->ex[idx[j]];
        int64_t q = by_row ? x->row : idx[j];
        int ok = correct[idx[j]];
        ev_buf_printf(b, "<figure class=\"example %s\" data-line=\"%lld\"><div class=\"imgs\">", ok ? "right" : "wrong",
                      (long long)x->line);
        if (kind == VLP_TASK_GROUND2 || kind == VLP_TASK_GROUND3) {
            /* the canvas with the true cell (green) and a wrong prediction (red, dashed) drawn on it */
            int gsz = x->grid, px = 64 * gsz <= 192 ? 64 * gsz : 192;
            double c = (double)px / gsz;
            ev_buf_printf(b, "<div class=\"ground\" style=\"width:%dpx;height:%dpx\">", px, px);
            put_image(b, x->image, "canvas", px);
            ev_buf_printf(b, "<svg class=\"cells\" width=\"%d\" height=\"%d\">", px, px);
            ev_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#1a9850\" "
                             "stroke-width=\"4\"/>",
                          (x->label % gsz) * c + 2, (x->label / gsz) * c + 2, c - 4, c - 4);
            int pl = p->label[q];
            if (!ok && pl >= 0 && pl < gsz * gsz)
                ev_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                                 "stroke=\"#d73027\" stroke-width=\"3\" stroke-dasharray=\"6 3\"/>",
                              (pl % gsz) * c + 5, (pl / gsz) * c + 5, c - 10, c - 10);
            ev_buf_puts(b, "</svg></div>");
        } else {
            put_image(b, x->image, "ex", 96);
            if (x->image2) put_image(b, x->image2, "ex", 96);
        }
        ev_buf_puts(b, "</div><figcaption>");
        if (x->text) {
            ev_buf_puts(b, "<div class=\"q\">");
            ev_buf_html(b, x->text);
            ev_buf_puts(b, "</div>");
        }
        if (kind == VLP_TASK_VQA && x->type) {
            ev_buf_puts(b, "<div class=\"type\">");
            ev_buf_html(b, x->type);
            ev_buf_puts(b, "</div>");
        }
        if (kind == VLP_TASK_MC) {
            ev_buf_puts(b, "<ol class=\"choices\" start=\"0\">");
            for (int c = 0; c < x->n_choices; c++) {
                ev_buf_printf(b, "<li%s>", c == x->label ? " class=\"truth\"" : c == p->label[q] ? " class=\"picked\"" : "");
                ev_buf_html(b, x->choices[c]);
                ev_buf_puts(b, "</li>");
            }
            ev_buf_puts(b, "</ol>");
        }
        ev_buf_printf(b, "<div class=\"pred\"><span class=\"mark\">%s</span> predicted: <b>",
                      ok ? "&#10003;" : "&#10007;");
        if (kind == VLP_TASK_CAPTION || kind == VLP_TASK_VQA) ev_buf_html(b, p->text[q]);
        else put_label(b, kind, x, p->label[q]);
        ev_buf_puts(b, "</b></div><div class=\"truth\">true: <b>");
        if (kind == VLP_TASK_CAPTION || kind == VLP_TASK_VQA) ev_buf_html(b, x->answer);
        else put_label(b, kind, x, x->label);
        ev_buf_puts(b, "</b></div></figcaption></figure>\n");
    }
    ev_buf_puts(b, "</div>\n");
    free(correct);
    free(idx);
    vlp_task_predictions_free(p);
    vlp_task_set_free(s);
}

static const char *const css =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid #333;padding-bottom:4px;margin-top:28px}"
    "h3{font-size:15px;margin:18px 0 4px}.note{color:#666;margin:4px 0}"
    "table.metrics{border-collapse:collapse;margin:12px 24px 12px 0;display:inline-table;vertical-align:top}"
    "table.metrics caption{font-weight:600;text-align:left;padding:4px 0}"
    "table.metrics th,table.metrics td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "table.metrics th{background:#eef2f7}table.metrics td.key{text-align:left;font-family:monospace}"
    "table.metrics td.best{font-weight:700;background:#e6f4ea}"
    "figure.chart{display:inline-block;margin:8px 16px 8px 0}figure.chart figcaption{font-weight:600}"
    "svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}svg .legend{font-size:12px;fill:#222}"
    ".gallery{display:flex;flex-wrap:wrap;gap:12px}"
    "figure.example{margin:0;width:230px;border:3px solid;border-radius:6px;padding:8px;background:#fcfcfc}"
    "figure.example.right{border-color:#1a9850}figure.example.wrong{border-color:#d73027}"
    "figure.example .imgs{display:flex;gap:6px;justify-content:center}"
    "figure.example img{image-rendering:pixelated;border:1px solid #ddd;background:#fff}"
    ".ground{position:relative}.ground img,.ground svg{position:absolute;left:0;top:0}"
    ".noimg{display:inline-flex;align-items:center;justify-content:center;border:1px dashed #999;color:#999;font-size:11px}"
    ".q{font-style:italic;margin:6px 0 2px}.type{font-size:11px;color:#777}"
    ".mark{font-weight:700;font-size:16px}.right .mark{color:#1a9850}.wrong .mark{color:#d73027}"
    "ol.choices{margin:4px 0;padding-left:22px;font-size:12px}ol.choices li.truth{color:#1a9850;font-weight:600}"
    "ol.choices li.picked{color:#d73027;text-decoration:line-through}"
    "ul.runs{margin:6px 0}code{background:#f3f3f3;padding:0 3px}";

int vlp_report_write(const char *const *run_dirs, int n_runs, const char *out_path, const vlp_report_options *opt) {
    if (!run_dirs || n_runs < 1 || !out_path) {
        vlp_set_error("report: needs at least one run directory and an output path");
        return VLP_ERR_ARG;
    }
    int g = opt && opt->gallery > 0 ? opt->gallery : 8;
    if (g > 1000) g = 1000;
    const char *title = opt && opt->title ? opt->title : "vlp results";
    run_info *runs = calloc((size_t)n_runs, sizeof *runs);
    if (!runs) {
        vlp_set_error("report: out of memory");
        return VLP_ERR_NOMEM;
    }
    int rc = 0;
    for (int r = 0; r < n_runs && !rc; r++) {
        struct stat st;
        if (stat(run_dirs[r], &st) != 0 || !S_ISDIR(st.st_mode)) {
            vlp_set_error("report: %s is not a directory", run_dirs[r]);
            rc = VLP_ERR_IO;
            break;
        }
        runs[r].dir = ev_strdup(run_dirs[r]);
        /* the name is the last path component */
        char *tmp = ev_strdup(run_dirs[r]);
        if (!runs[r].dir || !tmp) {
            free(tmp);
            rc = VLP_ERR_NOMEM;
            vlp_set_error("report: out of memory");
            break;
        }
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
        const char *base = strrchr(tmp, '/');
        runs[r].name = ev_strdup(base && base[1] ? base + 1 : tmp);
        free(tmp);
        char *log = ev_path_join(runs[r].dir, "metrics.jsonl");
        if (!runs[r].name || !log || read_log(&runs[r], log)) {
            if (!log || !runs[r].name) vlp_set_error("report: out of memory");
            rc = VLP_ERR_NOMEM;
        }
        free(log);
        if (!rc) rc = read_evals(&runs[r]);
    }
    ev_buf b = {0};
    if (!rc) {
        ev_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
        ev_buf_html(&b, title);
        ev_buf_printf(&b, "</title>\n<style>%s</style></head>\n<body>\n<h1>", css);
        ev_buf_html(&b, title);
        ev_buf_printf(&b, "</h1>\n<p class=\"note\">vlp %s &middot; %d run%s</p>\n<ul class=\"runs\">\n", vlp_version(),
                      n_runs, n_runs == 1 ? "" : "s");
        for (int r = 0; r < n_runs; r++) {
            ev_buf_printf(&b, "<li><span style=\"color:%s\">&#9632;</span> <b>", palette[r % 8]);
            ev_buf_html(&b, runs[r].name);
            ev_buf_puts(&b, "</b> <code>");
            ev_buf_html(&b, runs[r].dir);
            ev_buf_printf(&b, "</code>: %lld log rows", (long long)runs[r].log_rows);
            if (runs[r].log_bad) ev_buf_printf(&b, " (%lld unreadable, skipped)", (long long)runs[r].log_bad);
            ev_buf_printf(&b, ", %d evaluation%s</li>\n", runs[r].n_evals, runs[r].n_evals == 1 ? "" : "s");
        }
        ev_buf_puts(&b, "</ul>\n");
        if (write_tables(&b, runs, n_runs)) b.failed = 1;
        write_curves(&b, runs, n_runs);
        ev_buf_puts(&b, "<section id=\"gallery\"><h2>Test examples</h2>\n<p class=\"note\">Green frame and &#10003;: "
                        "right; red frame and &#10007;: wrong. Grounding: the true cell in green, a wrong pick dashed "
                        "red.</p>\n");
        int any = 0;
        for (int r = 0; r < n_runs; r++)
            for (int i = 0; i < runs[r].n_evals; i++, any++) write_gallery_entry(&b, &runs[r], &runs[r].evals[i], g);
        if (!any) ev_buf_puts(&b, "<p class=\"note\">No evaluations with predictions.</p>\n");
        ev_buf_puts(&b, "</section>\n</body></html>\n");
        if (b.failed) {
            vlp_set_error("report: out of memory");
            rc = VLP_ERR_NOMEM;
        }
    }
    if (!rc) {
        /* write a temporary file and rename, so a reader never sees half a page */
        char *tmp = malloc(strlen(out_path) + 8);
        FILE *f = NULL;
        if (tmp) {
            sprintf(tmp, "%s.tmp", out_path);
            f = fopen(tmp, "wb");
        }
        int ok = f && fwrite(b.s, 1, b.len, f) == b.len;
        if (f && fclose(f) != 0) ok = 0;
        if (ok && rename(tmp, out_path) != 0) ok = 0;
        if (!ok) {
            vlp_set_error("report: cannot write %s", out_path);
            if (f) remove(tmp);
            rc = VLP_ERR_IO;
        }
        free(tmp);
    }
    free(b.s);
    for (int r = 0; r < n_runs; r++) run_free(&runs[r]);
    free(runs);
    return rc;
}
