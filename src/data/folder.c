/* A folder of images with same-named captions: a/b.jpg + a/b.txt. Subfolders are
 * walked (symlinked folders are not followed, so a link loop cannot recurse), hidden
 * entries are skipped, and the pairs are sorted by relative path so that the order
 * does not depend on the file system. */
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 64

typedef struct {
    char **rel;
    int64_t n, cap;
} names;

static int walk(const char *root, const char *rel, int depth, names *out) {
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s", root, rel) < 0) {
        vlp_set_error("%s: out of memory", root);
        return VLP_ERR_NOMEM;
    }
    DIR *d = opendir(dir);
    if (!d) {
        vlp_set_error("%s: cannot list the folder: %s", dir, strerror(errno));
        free(dir);
        return VLP_ERR_IO;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *r = NULL, *full = NULL;
        if (asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) r = NULL;
        if (r && asprintf(&full, "%s/%s", root, r) < 0) full = NULL;
        if (!r || !full) {
            free(r);
            vlp_set_error("%s: out of memory", root);
            rc = VLP_ERR_NOMEM;
            break;
        }
        struct stat lst, st;
        if (lstat(full, &lst) == 0 && S_ISDIR(lst.st_mode)) {
            if (depth < MAX_DEPTH) rc = walk(root, r, depth + 1, out);
            free(r);
        } else if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            const char *dot = strrchr(e->d_name, '.');
            if (dot && ds_is_image_ext(dot + 1)) {
                if (out->n == out->cap) {
                    int64_t cap = out->cap ? out->cap * 2 : 256;
                    char **p = realloc(out->rel, (size_t)cap * sizeof *p);
                    if (!p) {
                        free(r);
                        free(full);
                        vlp_set_error("%s: out of memory", root);
                        rc = VLP_ERR_NOMEM;
                        break;
                    }
                    out->rel = p;
                    out->cap = cap;
                }
                out->rel[out->n++] = r;
            } else {
                free(r);
            }
        } else {
            free(r);
        }
        free(full);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ds_open_folder(vlp_dataset *ds, const char *dir) {
    names nm = {0};
    size_t dl = strlen(dir);
    char *root = strndup(dir, dl);
    if (!root) {
        vlp_set_error("%s: out of memory", dir);
        return VLP_ERR_NOMEM;
    }
    while (dl > 1 && root[dl - 1] == '/') root[--dl] = 0;
    int rc = walk(root, "", 0, &nm);
    if (!rc) qsort(nm.rel, (size_t)nm.n, sizeof *nm.rel, cmp_str);
    for (int64_t i = 0; !rc && i < nm.n; i++) {
        char *full = NULL, *txt = NULL;
        if (asprintf(&full, "%s/%s", root, nm.rel[i]) < 0) full = NULL;
        if (full) {
            const char *dot = strrchr(full, '.');
            if (asprintf(&txt, "%.*s.txt", (int)(dot - full), full) < 0) txt = NULL;
        }
        if (!full || !txt) {
            free(full);
            vlp_set_error("%s: out of memory", root);
            rc = VLP_ERR_NOMEM;
            break;
        }
        struct stat st;
        if (stat(txt, &st) != 0 || !S_ISREG(st.st_mode)) {
            ds->skipped++; /* an image without a caption */
        } else {
            char *cap;
            size_t n;
            rc = ds_read_file(txt, &cap, &n);
            if (!rc) {
                n = ds_clean_caption(cap, n);
                ds_item it = {.key = ds_strdup(ds, nm.rel[i]), .caption = ds_strndup(ds, cap, n),
                              .path = ds_strdup(ds, full)};
                if (!it.key || !it.caption || !it.path || ds_push(ds, &it)) {
                    vlp_set_error("%s: out of memory", root);
                    rc = VLP_ERR_NOMEM;
                }
                free(cap);
            }
        }
        free(full);
        free(txt);
    }
    ds_free_strings(nm.rel, nm.n);
    free(root);
    return rc;
}
