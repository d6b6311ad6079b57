/* Dataset front end: picks the reader from the spec, expands brace patterns, and
 * holds the pair index every reader fills (see include/vlp_data.h). */
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Shard names from one spec (LAION-2B has ~231k shards): a typo like {0..99999999} stops
 * here, as do nested patterns whose names add up to more than MAX_EXPANSION_BYTES. */
int64_t ds_expand_limit = 1000000;
#define MAX_EXPANSION ds_expand_limit
#define MAX_EXPANSION_BYTES ((size_t)64 << 20)

char *ds_strndup(vlp_dataset *ds, const char *s, size_t len) {
    ds_chunk *c = ds->chunks;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > (1u << 20) ? len + 1 : (1u << 20);
        c = malloc(sizeof(ds_chunk) + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = ds->chunks;
        ds->chunks = c;
    }
    char *p = c->data + c->used;
    if (len) memcpy(p, s, len);
    p[len] = 0;
    c->used += len + 1;
    return p;
}

char *ds_strdup(vlp_dataset *ds, const char *s) { return ds_strndup(ds, s, strlen(s)); }

int ds_push(vlp_dataset *ds, const ds_item *it) {
    if (ds->n == ds->cap) {
        int64_t cap = ds->cap ? ds->cap * 2 : 256;
        ds_item *p = realloc(ds->items, (size_t)cap * sizeof *p);
        if (!p) return VLP_ERR_NOMEM;
        ds->items = p;
        ds->cap = cap;
    }
    ds->items[ds->n++] = *it;
    return 0;
}

size_t ds_clean_caption(char *s, size_t len) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i]) s[k++] = s[i];
    while (k && (s[k - 1] == '\n' || s[k - 1] == '\r')) k--;
    s[k] = 0;
    return k;
}

int ds_is_image_ext(const char *ext) {
    static const char *const exts[] = {"jpg", "jpeg", "png", "webp", "gif", "bmp"};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
        if (!strcasecmp(ext, exts[i])) return 1;
    return 0;
}

const char *ds_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int ds_read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("%s: cannot open: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *nb = cap > ((size_t)1 << 40) ? NULL : realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        vlp_set_error("%s: out of memory reading the file", path);
        return VLP_ERR_NOMEM;
    }
    if (ferror(f)) {
        vlp_set_error("%s: read error: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return VLP_ERR_IO;
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

/* ---- brace expansion ------------------------------------------------------------ */

typedef struct {
    char **s;
    int64_t n, cap;
    size_t bytes;
    int status;
} strlist;

static void sl_push(strlist *l, char *s) {
    if (!s) {
        l->status = VLP_ERR_NOMEM;
        return;
    }
    l->bytes += strlen(s) + 1;
    if (l->n >= MAX_EXPANSION || l->bytes > MAX_EXPANSION_BYTES) {
        free(s);
        l->status = VLP_ERR_ARG;
        return;
    }
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->s, (size_t)cap * sizeof *p);
        if (!p) {
            free(s);
            l->status = VLP_ERR_NOMEM;
            return;
        }
        l->s = p;
        l->cap = cap;
    }
    l->s[l->n++] = s;
}

void ds_free_strings(char **s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Parses "[-]digits" filling the whole of [s, e); returns 0 on success. */
static int parse_int(const char *s, const char *e, long long *v, int *width, int *zero) {
    const char *p = s;
    if (p < e && *p == '-') p++;
    if (p == e || e - p > 17) return -1;
    for (const char *q = p; q < e; q++)
        if (*q < '0' || *q > '9') return -1;
    *v = strtoll(s, NULL, 10);
    *width = (int)(e - s);
    *zero = (e - p > 1 && *p == '0');
    return 0;
}

static char *concat3(const char *a, size_t na, const char *b, size_t nb, const char *c) {
    size_t nc = strlen(c);
    char *s = malloc(na + nb + nc + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc + 1);
    return s;
}

/* How many names s[0..len) expands to (saturating past MAX_EXPANSION), following the
 * same rules as expand(), so that a huge pattern is refused before any name is made. */
static int64_t count_names(const char *s, size_t len) {
    int64_t total = 1;
    for (size_t i = 0; i < len && total <= MAX_EXPANSION; i++) {
        if (s[i] != '{') continue;
        int depth = 0;
        size_t close = 0, ncomma = 0;
        for (size_t j = i; j < len; j++) {
            if (s[j] == '{') depth++;
            else if (s[j] == '}' && --depth == 0) {
                close = j;
                break;
            } else if (s[j] == ',' && depth == 1) ncomma++;
        }
        if (!close) break; /* unbalanced: the rest is literal */
        const char *in = s + i + 1, *ine = s + close;
        const char *dots = NULL;
        for (const char *p = in; p + 1 < ine; p++)
            if (p[0] == '.' && p[1] == '.') {
                dots = p;
                break;
            }
        long long a, b;
        int wa, wb, za, zb;
        int64_t group = 1;
        if (!ncomma && dots && !parse_int(in, dots, &a, &wa, &za) && !parse_int(dots + 2, ine, &b, &wb, &zb)) {
            long long c = (a <= b ? b - a : a - b) + 1;
            group = c > MAX_EXPANSION ? MAX_EXPANSION + 1 : (int64_t)c;
        } else if (ncomma) {
            group = 0;
            const char *p = in;
            depth = 0;
            for (const char *q = in; q <= ine; q++) {
                if (q < ine && *q == '{') depth++;
                else if (q < ine && *q == '}') depth--;
                else if (q == ine || (*q == ',' && depth == 0)) {
                    group += count_names(p, (size_t)(q - p));
                    if (group > MAX_EXPANSION) break;
                    p = q + 1;
                }
            }
        } else {
            continue; /* literal group: look inside it too, as expand() does */
        }
        total = group > MAX_EXPANSION || total * group > MAX_EXPANSION ? MAX_EXPANSION + 1 : total * group;
        i = close;
    }
    return total;
}

/* Expands the first brace group at or after `from` in s, recursing on each result. */
static void expand(const char *s, size_t from, strlist *out) {
    if (out->status) return;
    size_t len = strlen(s);
    for (size_t i = from; i < len; i++) {
        if (s[i] != '{') continue;
        /* find the matching '}' and the top-level commas */
        int depth = 0;
        size_t close = 0, ncomma = 0;
        for (size_t j = i; j < len; j++) {
            if (s[j] == '{') depth++;
            else if (s[j] == '}' && --depth == 0) {
                close = j;
                break;
            } else if (s[j] == ',' && depth == 1) ncomma++;
        }
        if (!close) { /* unbalanced: the rest is literal */
            sl_push(out, strdup(s));
            return;
        }
        const char *in = s + i + 1, *ine = s + close;
        const char *dots = NULL;
        for (const char *p = in; p + 1 < ine; p++)
            if (p[0] == '.' && p[1] == '.') {
                dots = p;
                break;
            }
        long long a, b;
        int wa, wb, za, zb;
        if (!ncomma && dots && !parse_int(in, dots, &a, &wa, &za) && !parse_int(dots + 2, ine, &b, &wb, &zb)) {
            int width = (za || zb) ? (wa > wb ? wa : wb) : 0;
            long long step = a <= b ? 1 : -1, count = (a <= b ? b - a : a - b) + 1;
            if (count > MAX_EXPANSION || out->n + count > MAX_EXPANSION) {
                out->status = VLP_ERR_ARG;
                return;
            }
            for (long long k = 0, v = a; k < count && !out->status; k++, v += step) {
                char num[32];
                snprintf(num, sizeof num, "%0*lld", width, v);
                char *t = concat3(s, i, num, strlen(num), s + close + 1);
                if (!t) {
                    out->status = VLP_ERR_NOMEM;
                    return;
                }
                expand(t, i + strlen(num), out);
                free(t);
            }
            return;
        }
        if (ncomma) {
            const char *p = in;
            depth = 0;
            for (const char *q = in; q <= ine && !out->status; q++) {
                if (q < ine && *q == '{') depth++;
                else if (q < ine && *q == '}') depth--;
                else if (q == ine || (*q == ',' && depth == 0)) {
                    char *t = concat3(s, i, p, (size_t)(q - p), s + close + 1);
                    if (!t) {
                        out->status = VLP_ERR_NOMEM;
                        return;
                    }
                    expand(t, i, out); /* the alternative may hold braces itself */
                    free(t);
                    if (out->n > MAX_EXPANSION) out->status = VLP_ERR_ARG;
                    p = q + 1;
                }
            }
            return;
        }
        /* "{}" or "{x}": literal, as in bash; keep looking after it */
    }
    sl_push(out, strdup(s));
}

int ds_expand_braces(const char *pattern, char ***out, int64_t *n) {
    *out = NULL;
    *n = 0;
    strlist l = {0};
    const char *p = pattern;
    for (;;) {
        const char *sep = strstr(p, "::");
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        if (len) {
            if (l.n + count_names(p, len) > MAX_EXPANSION) {
                l.status = VLP_ERR_ARG;
                break;
            }
            char *part = strndup(p, len);
            if (!part) {
                l.status = VLP_ERR_NOMEM;
                break;
            }
            expand(part, 0, &l);
            free(part);
            if (l.status) break;
        }
        if (!sep) break;
        p = sep + 2;
    }
    if (l.status) {
        ds_free_strings(l.s, l.n);
        if (l.status == VLP_ERR_NOMEM) vlp_set_error("%s: out of memory expanding the pattern", pattern);
        else
            vlp_set_error("%s: the pattern expands to more than %lld names (or %zu MiB of names)", pattern,
                          (long long)MAX_EXPANSION, MAX_EXPANSION_BYTES >> 20);
        return l.status;
    }
    if (!l.n) {
        free(l.s);
        vlp_set_error("dataset spec '%s' names nothing", pattern);
        return VLP_ERR_ARG;
    }
    *out = l.s;
    *n = l.n;
    return 0;
}

/* ---- public API ----------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcasecmp(s + n - m, suf);
}

vlp_dataset *vlp_dataset_open(const char *spec, const vlp_dataset_options *opt) {
    if (!spec || !*spec) {
        vlp_set_error("vlp_dataset_open: spec is %s", spec ? "empty" : "NULL");
        return NULL;
    }
    vlp_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        vlp_set_error("vlp_dataset_open: out of memory");
        return NULL;
    }
    struct stat st;
    int rc;
    if (!strstr(spec, "::") && stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) {
        ds->kind = DS_FOLDER;
        rc = ds_open_folder(ds, spec);
    } else if (!strstr(spec, "::") && !strchr(spec, '{') && (has_suffix(spec, ".csv") || has_suffix(spec, ".tsv"))) {
        ds->kind = DS_CSV;
        rc = ds_open_csv(ds, spec, opt);
    } else {
        ds->kind = DS_TAR;
        char **names;
        int64_t n;
        rc = ds_expand_braces(spec, &names, &n);
        if (!rc) rc = ds_open_tar(ds, names, n); /* takes names */
    }
    if (rc) {
        vlp_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void vlp_dataset_free(vlp_dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) free(ds->items[i].mem);
    free(ds->items);
    ds_free_strings(ds->shards, ds->nshards);
    for (ds_chunk *c = ds->chunks, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    free(ds);
}

int64_t vlp_dataset_size(const vlp_dataset *ds) { return ds ? ds->n : 0; }
int64_t vlp_dataset_skipped(const vlp_dataset *ds) { return ds ? ds->skipped : 0; }

const char *vlp_dataset_kind(const vlp_dataset *ds) {
    if (!ds) return NULL;
    return ds->kind == DS_TAR ? "tar" : ds->kind == DS_CSV ? "csv" : "folder";
}

const char *vlp_dataset_caption(const vlp_dataset *ds, int64_t i) {
    return ds && i >= 0 && i < ds->n ? ds->items[i].caption : NULL;
}

const char *vlp_dataset_key(const vlp_dataset *ds, int64_t i) {
    return ds && i >= 0 && i < ds->n ? ds->items[i].key : NULL;
}

const char *vlp_dataset_shard(const vlp_dataset *ds, int64_t i) {
    if (!ds || i < 0 || i >= ds->n || !ds->shards) return NULL;
    int32_t k = ds->items[i].shard;
    return k >= 0 && k < ds->nshards ? ds->shards[k] : NULL;
}

int vlp_dataset_read_image(const vlp_dataset *ds, int64_t i, uint8_t **data, size_t *size) {
    if (!data || !size) {
        vlp_set_error("vlp_dataset_read_image: %s is NULL", data ? "size" : "data");
        return VLP_ERR_ARG;
    }
    *data = NULL;
    *size = 0;
    if (!ds || i < 0 || i >= ds->n) {
        vlp_set_error("vlp_dataset_read_image: index %lld out of range (%lld pairs)", (long long)i,
                      (long long)(ds ? ds->n : 0));
        return VLP_ERR_ARG;
    }
    const ds_item *it = &ds->items[i];
    if (ds->kind == DS_TAR) return ds_read_tar_image(ds, it, data, size);
    char *buf;
    size_t n;
    int rc = ds_read_file(it->path, &buf, &n);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("image of '%s': %s", it->key, msg);
        return rc;
    }
    *data = (uint8_t *)buf;
    *size = n;
    return 0;
}
