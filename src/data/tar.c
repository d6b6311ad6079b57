/* WebDataset tar shards. Each shard is read once at open with libarchive: members
 * "dir/KEY.ext" group by KEY (the path up to the first '.' of the file name, as
 * webdataset splits it); a KEY with an image member and a caption (KEY.txt, else
 * KEY.json's "caption" or "text" string) becomes a pair. For a plain tar only the image
 * member's data offset and size are kept and images are read later with pread, so any
 * pair can be read in any order from any thread; a compressed shard cannot be read at an
 * offset, so its image members are kept in memory. */
#include "data_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CAPTION_BYTES ((int64_t)64 << 20) /* a caption member larger than this is corrupt */
#define MAX_MEMBER_BYTES ((int64_t)1 << 34)   /* compressed shards: refuse to buffer beyond this */

typedef struct {
    const char *key;
    char *caption;        /* malloc'd until the pair is kept */
    int caption_from_txt; /* a .txt caption wins over a .json one */
    int has_image;
    int64_t offset, size;
    uint8_t *mem;
} rec;

typedef struct {
    rec *r;
    int64_t n, cap;
    int64_t *slots; /* open addressing: index + 1 into r, 0 = empty */
    int64_t nslots;
} rec_table;

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int table_grow(rec_table *t) {
    int64_t ns = t->nslots ? t->nslots * 2 : 1024;
    int64_t *slots = calloc((size_t)ns, sizeof *slots);
    if (!slots) return VLP_ERR_NOMEM;
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = hash_str(t->r[i].key, strlen(t->r[i].key)) & (uint64_t)(ns - 1);
        while (slots[h]) h = (h + 1) & (uint64_t)(ns - 1);
        slots[h] = i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    return 0;
}

/* The record of key[0..klen), created (key copied into the dataset) when new; NULL: no memory. */
static rec *table_get(rec_table *t, vlp_dataset *ds, const char *key, size_t klen) {
    if ((t->n + 1) * 2 > t->nslots && table_grow(t)) return NULL;
    uint64_t mask = (uint64_t)(t->nslots - 1), h = hash_str(key, klen) & mask;
    while (t->slots[h]) {
        rec *r = &t->r[t->slots[h] - 1];
        if (!strncmp(r->key, key, klen) && !r->key[klen]) return r;
        h = (h + 1) & mask;
    }
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 256;
        rec *p = realloc(t->r, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        t->r = p;
        t->cap = cap;
    }
    rec *r = &t->r[t->n];
    memset(r, 0, sizeof *r);
    r->key = ds_strndup(ds, key, klen);
    if (!r->key) return NULL;
    t->slots[h] = ++t->n;
    return r;
}

static void table_clear(rec_table *t) {
    for (int64_t i = 0; i < t->n; i++) {
        free(t->r[i].caption);
        free(t->r[i].mem);
    }
    free(t->r);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* Reads the current member's data (size bytes) into a malloc'd buffer (+ NUL). */
static int read_member(struct archive *a, const char *shard, const char *name, int64_t size, char **out) {
    *out = NULL;
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        vlp_set_error("%s: out of memory for member '%s' (%lld bytes)", shard, name, (long long)size);
        return VLP_ERR_NOMEM;
    }
    int64_t got = 0;
    while (got < size) {
        la_ssize_t r = archive_read_data(a, buf + got, (size_t)(size - got));
        if (r < 0) {
            vlp_set_error("%s: member '%s': %s", shard, name, archive_error_string(a));
            free(buf);
            return VLP_ERR_IO;
        }
        if (r == 0) break;
        got += r;
    }
    if (got != size) {
        vlp_set_error("%s: member '%s' is truncated (%lld of %lld bytes): truncated tar?", shard, name,
                      (long long)got, (long long)size);
        free(buf);
        return VLP_ERR_IO;
    }
    buf[size] = 0;
    *out = buf;
    return 0;
}

/* The caption of a .json member: "caption", else "text" (a string). NULL if neither. */
static char *json_caption(const char *text, size_t n) {
    json_error_t err;
    json_t *j = json_loadb(text, n, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &err);
    if (!j) return NULL;
    char *out = NULL;
    json_t *v = json_object_get(j, "caption");
    if (!json_is_string(v)) v = json_object_get(j, "text");
    if (json_is_string(v)) {
        size_t len = json_string_length(v);
        out = malloc(len + 1);
        if (out) {
            memcpy(out, json_string_value(v), len);
            out[len] = 0;
            ds_clean_caption(out, len);
        }
    }
    json_decref(j);
    return out;
}

static int index_shard(vlp_dataset *ds, int32_t shard) {
    const char *path = ds->shards[shard];
    struct stat st;
    if (stat(path, &st) != 0) {
        vlp_set_error("%s: cannot open tar shard: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        vlp_set_error("%s: not a regular file (a tar shard was expected)", path);
        return VLP_ERR_IO;
    }
    struct archive *a = archive_read_new();
    if (!a) {
        vlp_set_error("%s: out of memory (libarchive)", path);
        return VLP_ERR_NOMEM;
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    rec_table t = {0};
    int rc = 0, compressed = -1, sparse = 0;
    int64_t data_end = 0; /* plain tar: where the last member's padded data ends */
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        vlp_set_error("%s: %s", path, archive_error_string(a));
        rc = VLP_ERR_IO;
        goto done;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            const char *msg = archive_error_string(a);
            vlp_set_error("%s: not a readable tar file: %s", path, msg ? msg : "unknown error");
            rc = VLP_ERR_IO;
            goto done;
        }
        if (compressed < 0) {
            compressed = 0;
            for (int f = 0; f < archive_filter_count(a); f++)
                if (archive_filter_code(a, f) != ARCHIVE_FILTER_NONE) compressed = 1;
        }
        if (archive_entry_sparse_count(e) > 0) sparse = 1;
        if (!compressed && archive_entry_size_is_set(e) && archive_entry_size(e) >= 0) {
            int64_t end = archive_filter_bytes(a, 0) + ((archive_entry_size(e) + 511) & ~(int64_t)511);
            if (end > data_end) data_end = end;
        }
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (!name) continue;
        while (name[0] == '.' && name[1] == '/') name += 2;
        const char *base = ds_basename(name);
        const char *dot = strchr(base, '.');
        if (base[0] == '.' || !dot) continue; /* hidden files, names without an extension */
        const char *ext = dot + 1;
        int is_img = ds_is_image_ext(ext), is_txt = !strcasecmp(ext, "txt"), is_json = !strcasecmp(ext, "json");
        if (!is_img && !is_txt && !is_json) continue;
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (size < 0) {
            vlp_set_error("%s: member '%s' has no size", path, name);
            rc = VLP_ERR_IO;
            goto done;
        }
        rec *rr = table_get(&t, ds, name, (size_t)(dot - name));
        if (!rr) {
            vlp_set_error("%s: out of memory indexing the shard", path);
            rc = VLP_ERR_NOMEM;
            goto done;
        }
        if (is_img) {
            if (rr->has_image) continue; /* KEY.jpg and KEY.png: the first one wins */
            if (compressed || archive_entry_sparse_count(e) > 0) {
                if (size > MAX_MEMBER_BYTES) {
                    vlp_set_error("%s: member '%s' of %lld bytes is too large to buffer", path, name, (long long)size);
                    rc = VLP_ERR_IO;
                    goto done;
                }
                char *buf;
                if ((rc = read_member(a, path, name, size, &buf))) goto done;
                rr->mem = (uint8_t *)buf;
            } else {
                /* The tar reader has consumed the header blocks (and any pax/GNU long-name
                 * blocks) but none of the data: the position of the uncompressed stream is
                 * where the data starts. */
                rr->offset = archive_filter_bytes(a, 0);
                if (rr->offset < 0 || rr->offset + size > (int64_t)st.st_size) {
                    vlp_set_error("%s: member '%s' (%lld bytes at offset %lld) runs past the end of the "
                                  "file (%lld bytes): truncated tar?",
                                  path, name, (long long)size, (long long)rr->offset, (long long)st.st_size);
                    rc = VLP_ERR_IO;
                    goto done;
                }
            }
            rr->size = size;
            rr->has_image = 1;
        } else {
            if (rr->caption && (rr->caption_from_txt || is_json)) continue;
            if (size > MAX_CAPTION_BYTES) {
                vlp_set_error("%s: caption member '%s' of %lld bytes is too large", path, name, (long long)size);
                rc = VLP_ERR_IO;
                goto done;
            }
            char *buf;
            if ((rc = read_member(a, path, name, size, &buf))) goto done;
            char *cap = buf;
            if (is_json) {
                cap = json_caption(buf, (size_t)size);
                free(buf);
                if (!cap) continue; /* no caption field: the key may still get a .txt */
            } else {
                ds_clean_caption(cap, (size_t)size);
            }
            free(rr->caption);
            rr->caption = cap;
            rr->caption_from_txt = is_txt;
        }
    }
    /* libarchive ends quietly when a file stops between members; writers always end a tar
     * with two zero blocks, so a plain shard without them was cut short. */
    if (compressed == 0 && !sparse) {
        uint8_t z[1024];
        int ok = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && pread(fd, z, sizeof z, (off_t)data_end) == (ssize_t)sizeof z) {
            ok = 1;
            for (size_t i = 0; i < sizeof z; i++) ok &= z[i] == 0;
        }
        if (fd >= 0) close(fd);
        if (!ok) {
            vlp_set_error("%s: no end-of-archive blocks after the last member (offset %lld of %lld bytes): "
                          "truncated tar?",
                          path, (long long)data_end, (long long)st.st_size);
            rc = VLP_ERR_IO;
            goto done;
        }
    }
    for (int64_t i = 0; i < t.n; i++) {
        rec *r = &t.r[i];
        if (!r->has_image || !r->caption) {
            ds->skipped++;
            continue;
        }
        ds_item it = {.key = r->key, .offset = r->offset, .size = r->size, .mem = r->mem, .shard = shard};
        it.caption = ds_strdup(ds, r->caption);
        if (!it.caption || ds_push(ds, &it)) {
            vlp_set_error("%s: out of memory indexing the shard", path);
            rc = VLP_ERR_NOMEM;
            goto done;
        }
        r->mem = NULL; /* owned by the dataset now */
    }
done:
    table_clear(&t);
    archive_read_free(a);
    return rc;
}

int ds_open_tar(vlp_dataset *ds, char **shards, int64_t nshards) {
    ds->shards = shards;
    ds->nshards = (int)nshards;
    if (nshards > INT32_MAX) {
        vlp_set_error("%s: too many shards (%lld)", shards[0], (long long)nshards);
        return VLP_ERR_ARG;
    }
    for (int32_t s = 0; s < (int32_t)nshards; s++) {
        int rc = index_shard(ds, s);
        if (rc) return rc;
    }
    return 0;
}

int ds_read_tar_image(const vlp_dataset *ds, const ds_item *it, uint8_t **data, size_t *size) {
    const char *shard = ds->shards[it->shard];
    uint8_t *buf = malloc(it->size ? (size_t)it->size : 1);
    if (!buf) {
        vlp_set_error("%s: out of memory for the image of '%s' (%lld bytes)", shard, it->key, (long long)it->size);
        return VLP_ERR_NOMEM;
    }
    if (it->mem) {
        memcpy(buf, it->mem, (size_t)it->size);
    } else {
        int fd = open(shard, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            vlp_set_error("%s: cannot open (image of '%s'): %s", shard, it->key, strerror(errno));
            free(buf);
            return VLP_ERR_IO;
        }
        int64_t got = 0;
        while (got < it->size) {
            ssize_t r = pread(fd, buf + got, (size_t)(it->size - got), (off_t)(it->offset + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                vlp_set_error("%s: image of '%s': %s (%lld of %lld bytes at offset %lld)", shard, it->key,
                              r < 0 ? strerror(errno) : "file shrank since it was indexed", (long long)got,
                              (long long)it->size, (long long)it->offset);
                close(fd);
                free(buf);
                return VLP_ERR_IO;
            }
            got += r;
        }
        close(fd);
    }
    *data = buf;
    *size = (size_t)it->size;
    return 0;
}
