/* Task file readers (the JSONL formats of shared/datasets/emoji-tasks.md) and prediction
 * files. Every problem names the file and line; bad rows are counted by reason and skipped
 * unless the caller asks for strict reading. */
#include "eval_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small shared helpers -------------------------------------------------------------- */
void ev_buf_put(ev_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void ev_buf_puts(ev_buf *b, const char *s) { ev_buf_put(b, s, strlen(s)); }

void ev_buf_printf(ev_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        ev_buf_put(b, tmp, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    ev_buf_put(b, big, (size_t)k);
    free(big);
}

void ev_buf_html(ev_buf *b, const char *s) {
    if (!s) return;
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            ev_buf_put(b, run, (size_t)(s - run));
            ev_buf_puts(b, rep);
            run = s + 1;
        }
    }
    ev_buf_put(b, run, (size_t)(s - run));
}

char *ev_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *ev_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    ev_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) ev_buf_put(&b, chunk, k);
    int err = ferror(f);
    fclose(f);
    if (err || b.failed) {
        vlp_set_error("%s: %s", path, err ? "read error" : "out of memory");
        free(b.s);
        return NULL;
    }
    if (!b.s) {
        b.s = malloc(1);
        if (!b.s) {
            vlp_set_error("%s: out of memory", path);
            return NULL;
        }
        b.s[0] = 0;
    }
    if (size) *size = b.len;
    return b.s;
}

char *ev_path_join(const char *dir, const char *p) {
    if (!p) return NULL;
    if (p[0] == '/' || !dir || !dir[0] || !strcmp(dir, ".")) return ev_strdup(p);
    size_t a = strlen(dir), c = strlen(p);
    char *out = malloc(a + c + 2);
    if (!out) return NULL;
    memcpy(out, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') out[k++] = '/';
    memcpy(out + k, p, c + 1);
    return out;
}

char *ev_dirname(const char *path) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash) return ev_strdup(".");
    if (slash == path) return ev_strdup("/");
    size_t n = (size_t)(slash - path);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, path, n);
    out[n] = 0;
    return out;
}

/* ---- task names ------------------------------------------------------------------------- */
static const char *const task_names[VLP_TASK_COUNT] = {"caption", "vqa", "nlvr", "ground2", "ground3", "mc"};

const char *vlp_task_name(vlp_task_kind k) {
    return (unsigned)k < VLP_TASK_COUNT ? task_names[k] : "unknown";
}

int vlp_task_from_name(const char *name, vlp_task_kind *out) {
    for (int i = 0; i < VLP_TASK_COUNT; i++)
        if (name && !strcmp(name, task_names[i])) {
            *out = (vlp_task_kind)i;
            return 0;
        }
    vlp_set_error("unknown task '%s' (caption, vqa, nlvr, ground2, ground3, mc)", name ? name : "(null)");
    return VLP_ERR_ARG;
}

/* ---- duplicate detection: an open-addressing set of canonical row texts ----------------- */
typedef struct {
    char **keys;
    uint64_t *hashes;
    size_t cap, n;
} str_set;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* 1 if inserted, 0 if already present (key freed), -1 on allocation failure (key freed). */
static int str_set_add(str_set *s, char *key) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char **keys = calloc(cap, sizeof *keys);
        uint64_t *hs = calloc(cap, sizeof *hs);
        if (!keys || !hs) {
            free(keys);
            free(hs);
            free(key);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->keys[i]) {
                size_t j = s->hashes[i] & (cap - 1);
                while (keys[j]) j = (j + 1) & (cap - 1);
                keys[j] = s->keys[i];
                hs[j] = s->hashes[i];
            }
        free(s->keys);
        free(s->hashes);
        s->keys = keys;
        s->hashes = hs;
        s->cap = cap;
    }
    uint64_t h = fnv1a(key);
    size_t j = h & (s->cap - 1);
    while (s->keys[j]) {
        if (s->hashes[j] == h && !strcmp(s->keys[j], key)) {
            free(key);
            return 0;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->keys[j] = key;
    s->hashes[j] = h;
    s->n++;
    return 1;
}

static void str_set_free(str_set *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->keys[i]);
    free(s->keys);
    free(s->hashes);
}

/* ---- rows --------------------------------------------------------------------------------- */
static void example_free(vlp_task_example *e) {
    free(e->image);
    free(e->image2);
    free(e->text);
    free(e->answer);
    free(e->type);
    for (int i = 0; i < e->n_cells; i++) free(e->cells[i]);
    free(e->cells);
    for (int i = 0; i < e->n_choices; i++) free(e->choices[i]);
    free(e->choices);
    memset(e, 0, sizeof *e);
}

void vlp_task_set_free(vlp_task_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) example_free(&s->ex[i]);
    free(s->ex);
    for (int i = 0; i < s->n_messages; i++) free(s->messages[i]);
    for (int64_t i = 0; s->bad_rows && i < s->n_bad; i++) free(s->bad_rows[i].message);
    free(s->bad_rows);
    free(s->path);
    free(s);
}

/* Parsing one row: returns 0, or 1 + a bad reason with msg filled; -1: out of memory. */
typedef struct {
    char msg[400];
} row_err;

static int bad(row_err *e, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(row_err *e, int reason, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return reason + 1; /* 0 means a good row */
}

#define OOM (-1)

/* A required string field. */
static int get_str(json_t *row, const char *key, char **out, row_err *e) {
    json_t *v = json_object_get(row, key);
    if (!v) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"%s\"", key);
    if (!json_is_string(v)) return bad(e, VLP_TASK_BAD_FIELD, "field \"%s\" is not a string", key);
    *out = ev_strdup(json_string_value(v));
    return *out ? 0 : OOM;
}

/* A required non-empty path, resolved against dir. */
static int get_path(json_t *row, const char *key, const char *dir, char **out, row_err *e) {
    json_t *v = json_object_get(row, key);
    if (!v) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"%s\"", key);
    if (!json_is_string(v) || !json_string_value(v)[0])
        return bad(e, VLP_TASK_BAD_FIELD, "field \"%s\" is not a non-empty path string", key);
    *out = ev_path_join(dir, json_string_value(v));
    return *out ? 0 : OOM;
}

static int get_int(json_t *row, const char *key, long lo, long hi, int *out, row_err *e) {
    json_t *v = json_object_get(row, key);
    if (!v) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"%s\"", key);
    if (!json_is_integer(v)) return bad(e, VLP_TASK_BAD_FIELD, "field \"%s\" is not an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(e, VLP_TASK_BAD_RANGE, "field \"%s\" = %lld is out of range [%ld, %ld]", key, (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static int check_image(const char *path, const char *key, row_err *e) {
    if (access(path, R_OK) != 0)
        return bad(e, VLP_TASK_BAD_IMAGE, "image \"%s\" (%s) cannot be read: %s", key, path, strerror(errno));
    return 0;
}

static int parse_row(json_t *row, vlp_task_kind kind, const char *dir, int check_images, vlp_task_example *x,
                     row_err *e) {
    int r;
    x->label = -1;
#define TRY(call)               \
    do {                        \
        if ((r = (call)) != 0) return r; \
    } while (0)
    switch (kind) {
    case VLP_TASK_CAPTION:
        TRY(get_path(row, "image", dir, &x->image, e));
        TRY(get_str(row, "caption", &x->answer, e));
        break;
    case VLP_TASK_VQA:
        TRY(get_path(row, "image", dir, &x->image, e));
        TRY(get_str(row, "question", &x->text, e));
        TRY(get_str(row, "answer", &x->answer, e));
        TRY(get_str(row, "type", &x->type, e));
        if (!x->type[0]) return bad(e, VLP_TASK_BAD_FIELD, "field \"type\" is empty");
        break;
    case VLP_TASK_NLVR: {
        TRY(get_path(row, "left", dir, &x->image, e));
        TRY(get_path(row, "right", dir, &x->image2, e));
        TRY(get_str(row, "statement", &x->text, e));
        json_t *v = json_object_get(row, "label");
        if (!v) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"label\"");
        if (json_is_boolean(v)) {
            x->label = json_is_true(v);
        } else if (json_is_integer(v)) {
            json_int_t l = json_integer_value(v);
            if (l != 0 && l != 1)
                return bad(e, VLP_TASK_BAD_RANGE, "field \"label\" = %lld is not true/false (0/1)", (long long)l);
            x->label = (int)l;
        } else {
            return bad(e, VLP_TASK_BAD_FIELD, "field \"label\" is not true/false");
        }
        break;
    }
    case VLP_TASK_GROUND2:
    case VLP_TASK_GROUND3: {
        int g = kind == VLP_TASK_GROUND2 ? 2 : 3;
        TRY(get_path(row, "image", dir, &x->image, e));
        TRY(get_str(row, "query", &x->text, e));
        TRY(get_int(row, "grid", g, g, &x->grid, e));
        json_t *cells = json_object_get(row, "cells");
        if (!cells) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"cells\"");
        if (!json_is_array(cells)) return bad(e, VLP_TASK_BAD_FIELD, "field \"cells\" is not an array");
        if ((int)json_array_size(cells) != g * g)
            return bad(e, VLP_TASK_BAD_RANGE, "field \"cells\" has %zu paths, grid %d needs %d",
                       json_array_size(cells), g, g * g);
        x->cells = calloc((size_t)(g * g), sizeof *x->cells);
        if (!x->cells) return OOM;
        for (int i = 0; i < g * g; i++) {
            json_t *c = json_array_get(cells, (size_t)i);
            if (!json_is_string(c) || !json_string_value(c)[0])
                return bad(e, VLP_TASK_BAD_FIELD, "cells[%d] is not a non-empty path string", i);
            x->cells[i] = ev_path_join(dir, json_string_value(c));
            if (!x->cells[i]) return OOM;
            x->n_cells = i + 1;
        }
        TRY(get_int(row, "label", 0, g * g - 1, &x->label, e));
        break;
    }
    case VLP_TASK_MC: {
        TRY(get_path(row, "image", dir, &x->image, e));
        TRY(get_str(row, "question", &x->text, e));
        json_t *ch = json_object_get(row, "choices");
        if (!ch) return bad(e, VLP_TASK_BAD_FIELD, "missing field \"choices\"");
        if (!json_is_array(ch)) return bad(e, VLP_TASK_BAD_FIELD, "field \"choices\" is not an array");
        size_t n = json_array_size(ch);
        if (n < 2 || n > 64) return bad(e, VLP_TASK_BAD_RANGE, "field \"choices\" has %zu entries (2..64)", n);
        x->choices = calloc(n, sizeof *x->choices);
        if (!x->choices) return OOM;
        for (size_t i = 0; i < n; i++) {
            json_t *c = json_array_get(ch, i);
            if (!json_is_string(c)) return bad(e, VLP_TASK_BAD_FIELD, "choices[%zu] is not a string", i);
            x->choices[i] = ev_strdup(json_string_value(c));
            if (!x->choices[i]) return OOM;
            x->n_choices = (int)i + 1;
        }
        TRY(get_int(row, "label", 0, (long)n - 1, &x->label, e));
        break;
    }
    default:
        return bad(e, VLP_TASK_BAD_FIELD, "unknown task kind");
    }
#undef TRY
    if (check_images) {
        if ((r = check_image(x->image, kind == VLP_TASK_NLVR ? "left" : "image", e))) return r;
        if (x->image2 && (r = check_image(x->image2, "right", e))) return r;
        for (int i = 0; i < x->n_cells; i++)
            if ((r = check_image(x->cells[i], "cells", e))) return r;
    }
    return 0;
}

static int add_message(vlp_task_set *s, const char *msg) {
    if (s->n_messages >= VLP_TASK_MAX_MESSAGES) return 0;
    s->messages[s->n_messages] = ev_strdup(msg);
    if (!s->messages[s->n_messages]) return -1;
    s->n_messages++;
    return 0;
}

/* Records a skipped row (msg is the full "FILE:LINE: problem"); -1 when out of memory. */
static int add_bad(vlp_task_set *s, int64_t line, int64_t row, int reason, const char *msg) {
    int64_t k = s->n_bad;
    if ((k & (k - 1)) == 0) { /* capacity: the next power of two */
        vlp_task_bad_row *p = realloc(s->bad_rows, (size_t)(k ? 2 * k : 1) * sizeof *p);
        if (!p) return -1;
        s->bad_rows = p;
    }
    char *m = ev_strdup(msg);
    if (!m) return -1;
    s->bad_rows[k] = (vlp_task_bad_row){.line = line, .row = row, .reason = (vlp_task_bad_reason)reason, .message = m};
    s->n_bad++;
    s->bad[reason]++;
    return add_message(s, msg);
}

static int cmp_bad_row(const void *a, const void *b) {
    int64_t x = ((const vlp_task_bad_row *)a)->row, y = ((const vlp_task_bad_row *)b)->row;
    return (x > y) - (x < y);
}

int vlp_task_drop(vlp_task_set *s, const char *const *why, vlp_task_bad_reason reason, int strict) {
    if (!s || !why || (unsigned)reason >= VLP_TASK_BAD_COUNT) {
        vlp_set_error("vlp_task_drop: bad arguments");
        return VLP_ERR_ARG;
    }
    int64_t first = -1, dropped = 0;
    for (int64_t i = 0; i < s->n && first < 0; i++)
        if (why[i]) first = i;
    if (first < 0) return 0;
    if (strict) {
        vlp_set_error("%s:%lld: %s", s->path, (long long)s->ex[first].line, why[first]);
        return VLP_ERR_IO;
    }
    int64_t k = 0;
    int oom = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!why[i]) {
            s->ex[k++] = s->ex[i];
            continue;
        }
        char msg[1200];
        snprintf(msg, sizeof msg, "%s:%lld: %s", s->path, (long long)s->ex[i].line, why[i]);
        if (!oom && add_bad(s, s->ex[i].line, s->ex[i].row, reason, msg)) oom = 1;
        example_free(&s->ex[i]);
        dropped++;
    }
    s->n = k;
    /* the reader's bad rows and these in one file order (the rows are distinct) */
    qsort(s->bad_rows, (size_t)s->n_bad, sizeof *s->bad_rows, cmp_bad_row);
    if (oom) {
        vlp_set_error("%s: out of memory", s->path);
        return VLP_ERR_NOMEM;
    }
    return (int)(dropped < INT32_MAX ? dropped : INT32_MAX);
}

vlp_task_set *vlp_task_read_mem(const char *data, size_t size, const char *name, const char *base_dir,
                                vlp_task_kind kind, const vlp_task_read_options *opt) {
    vlp_task_read_options o = opt ? *opt : (vlp_task_read_options){0};
    if (!name) name = "(memory)";
    if ((unsigned)kind >= VLP_TASK_COUNT || (!data && size)) {
        vlp_set_error("%s: bad arguments to the task reader", name);
        return NULL;
    }
    vlp_task_set *s = calloc(1, sizeof *s);
    if (!s || !(s->path = ev_strdup(name))) {
        free(s);
        vlp_set_error("%s: out of memory", name);
        return NULL;
    }
    s->kind = kind;
    str_set seen = {0};
    size_t cap = 0;
    int64_t lineno = 0;
    size_t pos = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int status = 0;
    while (pos < size) {
        size_t end = pos;
        while (end < size && data[end] != '\n') end++;
        lineno++;
        size_t len = end - pos;
        if (len && data[pos + len - 1] == '\r') len--;
        const char *l = data + pos;
        pos = end + 1;
        size_t k = 0;
        while (k < len && (l[k] == ' ' || l[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        int64_t row_index = s->n_rows++;
        if (len + 1 > line_cap) {
            char *p = realloc(line, len + 1);
            if (!p) {
                status = OOM;
                break;
            }
            line = p;
            line_cap = len + 1;
        }
        memcpy(line, l, len);
        line[len] = 0;
        row_err e = {{0}};
        int reason;
        vlp_task_example x = {0};
        json_error_t jerr;
        json_t *row = NULL;
        if (memchr(l, 0, len)) {
            reason = bad(&e, VLP_TASK_BAD_JSON, "NUL byte in the line");
        } else if (!(row = json_loads(line, JSON_REJECT_DUPLICATES, &jerr))) {
            reason = bad(&e, VLP_TASK_BAD_JSON, "not JSON: %s (column %d)", jerr.text, jerr.column);
        } else if (!json_is_object(row)) {
            reason = bad(&e, VLP_TASK_BAD_JSON, "not a JSON object");
        } else {
            reason = parse_row(row, kind, base_dir, o.check_images, &x, &e);
        }
        if (reason == 0) {
            /* the canonical text (sorted keys) catches rows that differ only in key order */
            char *key = json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS);
            int added = key ? str_set_add(&seen, key) : -1;
            if (added < 0) reason = OOM;
            else if (added == 0) reason = bad(&e, VLP_TASK_BAD_DUPLICATE, "duplicate of an earlier row");
        }
        json_decref(row);
        if (reason == OOM) {
            example_free(&x);
            status = OOM;
            break;
        }
        if (reason) {
            example_free(&x);
            char msg[600];
            snprintf(msg, sizeof msg, "%s:%lld: %s", name, (long long)lineno, e.msg);
            if (o.strict) {
                vlp_set_error("%s", msg);
                status = VLP_ERR_IO;
                break;
            }
            if (add_bad(s, lineno, row_index, reason - 1, msg)) {
                status = OOM;
                break;
            }
            continue;
        }
        x.line = lineno;
        x.row = row_index;
        if ((size_t)s->n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            vlp_task_example *p = realloc(s->ex, nc * sizeof *p);
            if (!p) {
                example_free(&x);
                status = OOM;
                break;
            }
            s->ex = p;
            cap = nc;
        }
        s->ex[s->n++] = x;
    }
    free(line);
    str_set_free(&seen);
    if (status) {
        if (status == OOM) vlp_set_error("%s:%lld: out of memory", name, (long long)lineno);
        vlp_task_set_free(s);
        return NULL;
    }
    return s;
}

vlp_task_set *vlp_task_read(const char *path, vlp_task_kind kind, const vlp_task_read_options *opt) {
    size_t size;
    char *data = ev_read_file(path, &size);
    if (!data) return NULL;
    char *dir = ev_dirname(path);
    vlp_task_set *s = dir ? vlp_task_read_mem(data, size, path, dir, kind, opt) : NULL;
    if (!dir) vlp_set_error("%s: out of memory", path);
    free(dir);
    free(data);
    return s;
}

/* ---- predictions -------------------------------------------------------------------------- */
void vlp_task_predictions_free(vlp_task_predictions *p) {
    if (!p) return;
    if (p->text)
        for (int64_t i = 0; i < p->n; i++) free(p->text[i]);
    free(p->text);
    free(p->label);
    free(p->skipped);
    free(p);
}

vlp_task_predictions *vlp_task_predictions_read(const char *path, vlp_task_kind kind) {
    if ((unsigned)kind >= VLP_TASK_COUNT) {
        vlp_set_error("%s: unknown task kind", path);
        return NULL;
    }
    size_t size;
    char *data = ev_read_file(path, &size);
    if (!data) return NULL;
    vlp_task_predictions *p = calloc(1, sizeof *p);
    int textual = kind == VLP_TASK_VQA || kind == VLP_TASK_CAPTION;
    const char *field = kind == VLP_TASK_VQA ? "answer" : kind == VLP_TASK_CAPTION ? "caption" : "label";
    size_t cap = 0, pos = 0;
    int64_t lineno = 0;
    int ok = p != NULL;
    if (!ok) vlp_set_error("%s: out of memory", path);
    if (p) p->kind = kind;
    while (ok && pos < size) {
        size_t end = pos;
        while (end < size && data[end] != '\n') end++;
        data[end < size ? end : size] = 0; /* data is NUL-terminated at size */
        char *l = data + pos;
        pos = end + 1;
        lineno++;
        if (strspn(l, " \t\r") == strlen(l)) continue;
        json_error_t jerr;
        json_t *row = json_loads(l, 0, &jerr);
        if (!row || !json_is_object(row)) {
            vlp_set_error("%s:%lld: %s%s", path, (long long)lineno, row ? "not a JSON object" : "not JSON: ",
                          row ? "" : jerr.text);
            json_decref(row);
            ok = 0;
            break;
        }
        json_t *v = json_object_get(row, field);
        int skip = json_is_true(json_object_get(row, "skipped"));
        if ((size_t)p->n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            void *a = textual ? realloc(p->text, nc * sizeof *p->text) : realloc(p->label, nc * sizeof *p->label);
            if (a) {
                if (textual) p->text = a;
                else p->label = a;
            }
            unsigned char *sk = a && p->skipped ? realloc(p->skipped, nc) : NULL;
            if (!a || (p->skipped && !sk)) {
                vlp_set_error("%s:%lld: out of memory", path, (long long)lineno);
                json_decref(row);
                ok = 0;
                break;
            }
            if (sk) {
                memset(sk + cap, 0, nc - cap);
                p->skipped = sk;
            }
            cap = nc;
        }
        if (skip && !p->skipped && !(p->skipped = calloc(cap, 1))) {
            vlp_set_error("%s:%lld: out of memory", path, (long long)lineno);
            ok = 0;
        } else if (skip) { /* a data row the predictor skipped: nothing predicted */
            p->skipped[p->n] = 1;
            if (textual && !(p->text[p->n] = ev_strdup(""))) {
                vlp_set_error("%s:%lld: out of memory", path, (long long)lineno);
                ok = 0;
            } else if (!textual) {
                p->label[p->n] = -1;
            }
        } else if (!v) {
            vlp_set_error("%s:%lld: missing field \"%s\"", path, (long long)lineno, field);
            ok = 0;
        } else if (textual) {
            if (!json_is_string(v)) {
                vlp_set_error("%s:%lld: field \"%s\" is not a string", path, (long long)lineno, field);
                ok = 0;
            } else if (!(p->text[p->n] = ev_strdup(json_string_value(v)))) {
                vlp_set_error("%s:%lld: out of memory", path, (long long)lineno);
                ok = 0;
            }
        } else if (json_is_boolean(v) && kind == VLP_TASK_NLVR) {
            p->label[p->n] = json_is_true(v);
        } else if (json_is_integer(v) && json_integer_value(v) >= -1 && json_integer_value(v) <= 1000000) {
            p->label[p->n] = (int)json_integer_value(v); /* out-of-range labels just score as wrong */
        } else {
            vlp_set_error("%s:%lld: field \"label\" is not %s", path, (long long)lineno,
                          kind == VLP_TASK_NLVR ? "true/false or 0/1" : "an integer");
            ok = 0;
        }
        json_decref(row);
        if (ok) p->n++;
    }
    free(data);
    if (!ok) {
        vlp_task_predictions_free(p);
        return NULL;
    }
    return p;
}
