/* CSV/TSV pair lists: a header row naming the columns, then one (image path, caption)
 * row per pair. Quoting follows RFC 4180 ("..." fields may hold separators, newlines
 * and "" for a quote) and is read as leniently as Python's csv module: text after a
 * closing quote is kept. Rows may have fewer fields than the header as long as the two
 * chosen columns are there (pandas fills the rest), but not more. Blank lines are
 * skipped. A UTF-8 byte order mark is ignored. */
#include "data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char **f;     /* field starts (NUL-terminated, unescaped in place) */
    int n, cap;
} fields;

typedef struct {
    char *p, *end;
    long line;    /* line of the next character */
    char sep;
    const char *path;
} parser;

/* Parses one record at ps->p into fl (fields point into the buffer, which is rewritten in
 * place). Returns 1 for a record, 0 at the end, or a negative status (message set). */
static int next_record(parser *ps, fields *fl, long *start_line) {
    fl->n = 0;
    if (ps->p >= ps->end) return 0;
    *start_line = ps->line;
    for (;;) {
        if (fl->n == fl->cap) {
            int cap = fl->cap ? fl->cap * 2 : 16;
            char **f = realloc(fl->f, (size_t)cap * sizeof *f);
            if (!f) {
                vlp_set_error("%s: out of memory", ps->path);
                return VLP_ERR_NOMEM;
            }
            fl->f = f;
            fl->cap = cap;
        }
        char *w = ps->p; /* write position: unescaping only ever shrinks */
        fl->f[fl->n++] = w;
        int quoted = 0;
        if (ps->p < ps->end && *ps->p == '"') {
            long open_line = ps->line;
            quoted = 1;
            ps->p++;
            for (;;) {
                if (ps->p >= ps->end) {
                    vlp_set_error("%s: line %ld: quoted field never closed (it opens on line %ld)", ps->path,
                                  ps->line, open_line);
                    return VLP_ERR_IO;
                }
                char c = *ps->p++;
                if (c == '"') {
                    if (ps->p < ps->end && *ps->p == '"') {
                        *w++ = '"';
                        ps->p++;
                        continue;
                    }
                    break;
                }
                if (c == '\n') ps->line++;
                *w++ = c;
            }
        }
        /* unquoted text, or what follows a closing quote */
        while (ps->p < ps->end && *ps->p != ps->sep && *ps->p != '\n' && *ps->p != '\r') *w++ = *ps->p++;
        (void)quoted;
        if (ps->p >= ps->end) {
            *w = 0;
            return 1;
        }
        char c = *ps->p;
        *w = 0; /* may overwrite c's byte: read it first */
        ps->p++;
        if (c == ps->sep) continue;
        if (c == '\r' && ps->p < ps->end && *ps->p == '\n') ps->p++;
        ps->line++;
        return 1;
    }
}

static int find_column(const fields *hdr, const char *name) {
    for (int i = 0; i < hdr->n; i++)
        if (!strcmp(hdr->f[i], name)) return i;
    return -1;
}

static void missing_column(const char *path, const fields *hdr, const char *name, const char *option) {
    char cols[256];
    size_t k = 0;
    cols[0] = 0;
    for (int i = 0; i < hdr->n && k + 8 < sizeof cols; i++) {
        int w = snprintf(cols + k, sizeof cols - k, "%s'%s'", i ? ", " : "", hdr->f[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
    if (k >= sizeof cols) memcpy(cols + sizeof cols - 4, "...", 4);
    vlp_set_error("%s: line 1: no column '%s' in the header (%s); choose the column with %s", path, name, cols,
                  option);
}

int ds_open_csv(vlp_dataset *ds, const char *path, const vlp_dataset_options *opt) {
    const char *img_key = opt && opt->csv_img_key ? opt->csv_img_key : "filepath";
    const char *cap_key = opt && opt->csv_caption_key ? opt->csv_caption_key : "title";
    size_t plen = strlen(path);
    char sep = opt && opt->csv_separator ? opt->csv_separator
                                         : (plen >= 4 && !strcasecmp(path + plen - 4, ".tsv") ? '\t' : ',');
    if (sep == '"' || sep == '\n' || sep == '\r') {
        vlp_set_error("%s: the separator cannot be a quote or a newline", path);
        return VLP_ERR_ARG;
    }
    char *buf;
    size_t size;
    int rc = ds_read_file(path, &buf, &size);
    if (rc) return rc;
    parser ps = {buf, buf + size, 1, sep, path};
    if (size >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) ps.p += 3;
    /* relative image paths are relative to the CSV's directory */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    fields hdr = {0}, row = {0};
    long line;
    int r;
    char *joined = NULL;
    do r = next_record(&ps, &hdr, &line);
    while (r == 1 && hdr.n == 1 && !hdr.f[0][0]); /* blank lines before the header */
    if (r <= 0) {
        if (r == 0) vlp_set_error("%s: empty file (a header row with '%s' and '%s' was expected)", path, img_key, cap_key);
        rc = r ? r : VLP_ERR_IO;
        goto done;
    }
    int ci = find_column(&hdr, img_key), cc = find_column(&hdr, cap_key);
    if (ci < 0 || cc < 0) {
        missing_column(path, &hdr, ci < 0 ? img_key : cap_key, ci < 0 ? "csv_img_key" : "csv_caption_key");
        rc = VLP_ERR_IO;
        goto done;
    }
    while ((r = next_record(&ps, &row, &line)) == 1) {
        if (row.n == 1 && !row.f[0][0]) continue; /* blank line */
        if (row.n > hdr.n) {
            vlp_set_error("%s: line %ld: %d fields, but the header has %d", path, line, row.n, hdr.n);
            rc = VLP_ERR_IO;
            goto done;
        }
        if (ci >= row.n || cc >= row.n) {
            int miss = ci >= row.n ? ci : cc;
            vlp_set_error("%s: line %ld: %d fields, no '%s' (column %d)", path, line, row.n, hdr.f[miss], miss + 1);
            rc = VLP_ERR_IO;
            goto done;
        }
        const char *file = row.f[ci];
        if (!*file) {
            vlp_set_error("%s: line %ld: empty '%s'", path, line, img_key);
            rc = VLP_ERR_IO;
            goto done;
        }
        ds_item it = {0};
        it.key = ds_strdup(ds, file);
        size_t caplen = strlen(row.f[cc]);
        it.caption = ds_strndup(ds, row.f[cc], caplen);
        if (file[0] != '/' && dirlen) {
            size_t fl = strlen(file);
            free(joined);
            joined = malloc(dirlen + fl + 1);
            if (joined) {
                memcpy(joined, path, dirlen);
                memcpy(joined + dirlen, file, fl + 1);
                it.path = ds_strdup(ds, joined);
            }
        } else {
            it.path = it.key;
        }
        if (!it.key || !it.caption || !it.path || ds_push(ds, &it)) {
            vlp_set_error("%s: out of memory", path);
            rc = VLP_ERR_NOMEM;
            goto done;
        }
        ds_clean_caption((char *)it.caption, caplen);
    }
    if (r < 0) rc = r;
done:
    free(joined);
    free(hdr.f);
    free(row.f);
    free(buf);
    return rc;
}
