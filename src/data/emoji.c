/* The emoji benchmark (shared/datasets/emoji.md): reads the four npm tarballs with
 * libarchive, parses emoji.json with jansson, composites each needed 64x64 RGBA PNG over
 * white and writes it as RGB PNG, then the split TSVs, zeroshot.json and manifest.json.
 * The same driver builds the downstream tasks (emoji_tasks.c adds its rows per vendor). */
#include "emoji_internal.h"
#include "internal.h"
#include "vlp_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <omp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

enum { EMOJI_FORMAT = 1, IMG = 64 };
enum { NEED_PAIRS = 1, NEED_TONES = 2 }; /* why an image is needed: a pair of emoji.md, a tone item */

const char *const emoji_tone_words[5] = {"light", "medium-light", "medium", "medium-dark", "dark"};
static const char *const tone_codes[5] = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"};
const char *const emoji_cat_names[9] = {"Smileys & Emotion", "People & Body",   "Animals & Nature",
                                        "Food & Drink",      "Travel & Places", "Activities",
                                        "Objects",           "Symbols",         "Flags"};
const char *const emoji_cat_phrases[9] = {"a smiley or emotion",
                                          "a person or body part",
                                          "an animal or plant",
                                          "food or drink",
                                          "a place or vehicle",
                                          "an activity",
                                          "an object",
                                          "a symbol",
                                          "a flag"};
static const char *const part_names[VLP_EMOJI_NPARTS] = {"train", "style", "unseen"};
static const char *const split_files[VLP_EMOJI_NPARTS] = {"train.tsv", "style.tsv", "unseen.tsv"};

const char *vlp_emoji_part_name(int p) { return p >= 0 && p < VLP_EMOJI_NPARTS ? part_names[p] : "?"; }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- small file helpers ------------------------------------------------------------------ */
void emoji_buf_add(emoji_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void emoji_buf_printf(emoji_buf *b, const char *fmt, ...) {
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof small) {
        emoji_buf_add(b, small, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    emoji_buf_add(b, big, (size_t)k);
    free(big);
}

void emoji_buf_free(emoji_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int emoji_mkdirs(const char *path) {
    char p[EMOJI_PATH];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        vlp_set_error("%s: path too long", path);
        return VLP_ERR_ARG;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            vlp_set_error("%s: cannot create directory: %s", p, strerror(errno));
            return VLP_ERR_IO;
        }
        if (!c) break;
        *s = c;
    }
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) {
        vlp_set_error("%s: not a directory", path);
        return VLP_ERR_IO;
    }
    return 0;
}

int emoji_file_exists(const char *path) {
    struct stat sb;
    return !stat(path, &sb) && S_ISREG(sb.st_mode);
}

int emoji_write_atomic(const char *path, const void *data, size_t n) {
    char tmp[EMOJI_PATH + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        vlp_set_error("%s: %s", tmp, strerror(errno));
        return VLP_ERR_IO;
    }
    int bad = n && fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        vlp_set_error("%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return VLP_ERR_IO;
    }
    return 0;
}

void emoji_image_relpath(int vendor, const char *image, char *buf, size_t n) {
    snprintf(buf, n, "images/%s/%s", vlp_emoji_vendor_name(vendor), image);
}

/* ---- emoji.json ---------------------------------------------------------------------------- */
static char *lower_utf8(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(4 * n + 1), *o = out;
    if (!out) return NULL;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) {
            free(out);
            return NULL;
        }
        o += utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)o);
        p += k;
    }
    *o = 0;
    return out;
}

/* File names go into paths under DIR: no separators, no leading dot. */
static int safe_image_name(const char *s) {
    size_t n = strlen(s);
    if (n < 5 || n > 200 || s[0] == '.' || strcmp(s + n - 4, ".png")) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || strchr("._-", *p)))
            return 0;
    return 1;
}

static void free_db(emoji_ctx *c) {
    for (int i = 0; i < c->n; i++) {
        emoji_entry *e = &c->e[i];
        free(e->caption), free(e->image), free(e->category), free(e->subcategory);
        for (int j = 0; j < e->nvars; j++) free(e->vars[j].key), free(e->vars[j].image), free(e->vars[j].caption);
        free(e->vars);
    }
    free(c->e);
    c->e = NULL;
    c->n = 0;
}

static char *dup_str(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static int parse_db(emoji_ctx *c, const char *text, size_t n, const char *src) {
    json_error_t jerr;
    json_t *root = json_loadb(text, n, 0, &jerr);
    if (!root) {
        vlp_set_error("%s: emoji.json: %s (line %d)", src, jerr.text, jerr.line);
        return VLP_ERR_IO;
    }
    int rc = VLP_ERR_IO;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        vlp_set_error("%s: emoji.json is not a non-empty array", src);
        goto done;
    }
    c->n = (int)json_array_size(root);
    c->e = calloc((size_t)c->n, sizeof *c->e);
    if (!c->e) {
        c->n = 0;
        vlp_set_error("%s: out of memory", src);
        rc = VLP_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < c->n; i++) {
        json_t *o = json_array_get(root, (size_t)i);
        emoji_entry *e = &c->e[i];
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *image = json_string_value(json_object_get(o, "image"));
        const char *cat = json_string_value(json_object_get(o, "category"));
        const char *sub = json_string_value(json_object_get(o, "subcategory"));
        json_t *so = json_object_get(o, "sort_order");
        if (!name || !image || !cat || !sub || !json_is_integer(so)) {
            vlp_set_error("%s: emoji.json entry %d (%s): needs name, image, category, subcategory and an integer "
                          "sort_order",
                          src, i, name ? name : "no name");
            goto done;
        }
        if (!safe_image_name(image)) {
            vlp_set_error("%s: emoji.json entry %d (%s): bad image file name '%s'", src, i, name, image);
            goto done;
        }
        e->caption = lower_utf8(name);
        e->image = dup_str(image), e->category = dup_str(cat), e->subcategory = dup_str(sub);
        if (!e->caption || !e->image || !e->category || !e->subcategory) {
            vlp_set_error("%s: emoji.json entry %d (%s): invalid UTF-8 or out of memory", src, i, name);
            goto done;
        }
        if (strpbrk(e->caption, "\t\n\r") || strpbrk(sub, "\t\n\r")) {
            vlp_set_error("%s: emoji.json entry %d (%s): tab or newline in the name", src, i, name);
            goto done;
        }
        e->sort_order = (int64_t)json_integer_value(so);
        e->held = ((e->sort_order % 10) + 10) % 10 == 7;
        e->cat = strcmp(cat, "Component") ? -2 : -1;
        for (int k = 0; k < 9; k++)
            if (!strcmp(cat, emoji_cat_names[k])) e->cat = k;
        for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
            char key[32];
            snprintf(key, sizeof key, "has_img_%s", vlp_emoji_vendor_name(v));
            e->has_img[v] = json_is_true(json_object_get(o, key));
            e->slot[v] = -1;
        }
        json_t *sv = json_object_get(o, "skin_variations");
        if (!sv || json_is_null(sv)) continue;
        if (!json_is_object(sv)) {
            vlp_set_error("%s: emoji.json entry %d (%s): skin_variations is not an object", src, i, name);
            goto done;
        }
        e->vars = calloc(json_object_size(sv) + 1, sizeof *e->vars);
        if (!e->vars) {
            vlp_set_error("%s: out of memory", src);
            rc = VLP_ERR_NOMEM;
            goto done;
        }
        const char *key;
        json_t *var;
        json_object_foreach(sv, key, var) { /* jansson keeps the file's key order */
            emoji_var *s = &e->vars[e->nvars++];
            const char *vimg = json_string_value(json_object_get(var, "image"));
            if (!vimg || !safe_image_name(vimg)) {
                vlp_set_error("%s: emoji.json entry %d (%s): skin variation %s: missing or bad image", src, i, name,
                              key);
                goto done;
            }
            /* Modifiers: one or two of 1F3FB..1F3FF joined by '-'. */
            const char *p = key;
            while (*p) {
                int t = -1;
                for (int k = 0; k < 5; k++)
                    if (!strncmp(p, tone_codes[k], 5) && (p[5] == 0 || p[5] == '-')) t = k;
                if (t < 0 || s->ntones == 2) {
                    vlp_set_error("%s: emoji.json entry %d (%s): skin variation key '%s' is not one or two of "
                                  "1F3FB..1F3FF",
                                  src, i, name, key);
                    goto done;
                }
                s->tone[s->ntones++] = t;
                p += p[5] ? 6 : 5;
            }
            s->key = dup_str(key);
            s->image = dup_str(vimg);
            size_t cn = strlen(e->caption) + 80;
            s->caption = malloc(cn);
            if (!s->key || !s->image || !s->caption) {
                vlp_set_error("%s: out of memory", src);
                rc = VLP_ERR_NOMEM;
                goto done;
            }
            if (s->ntones == 1)
                snprintf(s->caption, cn, "%s, %s skin tone", e->caption, emoji_tone_words[s->tone[0]]);
            else
                snprintf(s->caption, cn, "%s, %s skin tone and %s skin tone", e->caption, emoji_tone_words[s->tone[0]],
                         emoji_tone_words[s->tone[1]]);
            for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
                char hk[32];
                snprintf(hk, sizeof hk, "has_img_%s", vlp_emoji_vendor_name(v));
                s->has_img[v] = json_is_true(json_object_get(var, hk));
                s->slot[v] = -1;
            }
        }
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- image tables ------------------------------------------------------------------------- */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int find_slot(const emoji_images *T, const char *name) {
    char *const *hit = bsearch(&name, T->names, (size_t)T->n, sizeof *T->names, cmp_str);
    return hit ? (int)(hit - T->names) : -1;
}

static void free_images(emoji_images *T) {
    for (int s = 0; s < T->n; s++) {
        if (T->png) free(T->png[s]);
        if (T->rgb) free(T->rgb[s]);
    }
    free(T->names), free(T->needed), free(T->png), free(T->png_size), free(T->rgb);
    memset(T, 0, sizeof *T);
}

static void release_pixels(emoji_images *T) {
    for (int s = 0; s < T->n; s++) {
        free(T->png[s]), free(T->rgb[s]);
        T->png[s] = NULL, T->rgb[s] = NULL;
    }
}

/* Which images each command writes: the pairs of emoji.md; for the tasks also the
 * single-modifier tone items of the twitter groups. */
static void mark(emoji_images *T, int slot, int bit) {
    if (slot >= 0) T->needed[slot] |= (unsigned char)bit;
}

static int build_tables(emoji_ctx *c) {
    for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
        emoji_images *T = &c->img[v];
        int cap = 0;
        for (int i = 0; i < c->n; i++) cap += 1 + c->e[i].nvars;
        T->names = malloc(sizeof *T->names * (size_t)cap);
        if (!T->names) goto oom;
        for (int i = 0; i < c->n; i++) {
            emoji_entry *e = &c->e[i];
            if (e->has_img[v]) T->names[T->n++] = e->image;
            for (int j = 0; j < e->nvars; j++)
                if (e->vars[j].has_img[v]) T->names[T->n++] = e->vars[j].image;
        }
        qsort(T->names, (size_t)T->n, sizeof *T->names, cmp_str);
        int u = 0;
        for (int s = 0; s < T->n; s++)
            if (!u || strcmp(T->names[u - 1], T->names[s])) T->names[u++] = T->names[s];
        T->n = u;
        size_t m = (size_t)(T->n ? T->n : 1);
        T->needed = calloc(m, 1);
        T->png = calloc(m, sizeof *T->png);
        T->png_size = calloc(m, sizeof *T->png_size);
        T->rgb = calloc(m, sizeof *T->rgb);
        if (!T->needed || !T->png || !T->png_size || !T->rgb) goto oom;
        for (int i = 0; i < c->n; i++) {
            emoji_entry *e = &c->e[i];
            if (e->has_img[v]) e->slot[v] = find_slot(T, e->image);
            for (int j = 0; j < e->nvars; j++)
                if (e->vars[j].has_img[v]) e->vars[j].slot[v] = find_slot(T, e->vars[j].image);
        }
        for (int i = 0; i < c->n; i++) {
            emoji_entry *e = &c->e[i];
            if (v < 3) {
                if (e->held) continue;
                mark(T, e->slot[v], NEED_PAIRS);
                for (int j = 0; j < e->nvars; j++) mark(T, e->vars[j].slot[v], NEED_PAIRS);
            } else {
                mark(T, e->slot[v], NEED_PAIRS);
                if (c->tasks && e->cat != -1)
                    for (int j = 0; j < e->nvars; j++)
                        if (e->vars[j].ntones == 1) mark(T, e->vars[j].slot[v], NEED_TONES);
            }
        }
    }
    return 0;
oom:
    vlp_set_error("emoji: out of memory");
    return VLP_ERR_NOMEM;
}

/* ---- tarballs ------------------------------------------------------------------------------ */
static int read_entry(struct archive *a, struct archive_entry *ent, const char *tgz, uint8_t **data, size_t *n) {
    int64_t sz = archive_entry_size(ent);
    if (sz < 0 || sz > (64 << 20)) {
        vlp_set_error("%s: %s: unexpected size %lld", tgz, archive_entry_pathname(ent), (long long)sz);
        return VLP_ERR_IO;
    }
    uint8_t *p = malloc((size_t)sz + 1);
    if (!p) {
        vlp_set_error("%s: out of memory", tgz);
        return VLP_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < (size_t)sz) {
        la_ssize_t k = archive_read_data(a, p + got, (size_t)sz - got);
        if (k <= 0) {
            vlp_set_error("%s: %s: %s", tgz, archive_entry_pathname(ent),
                          k < 0 ? archive_error_string(a) : "truncated entry");
            free(p);
            return VLP_ERR_IO;
        }
        got += (size_t)k;
    }
    p[sz] = 0;
    *data = p;
    *n = (size_t)sz;
    return 0;
}

/* Reads package/emoji.json and, with T, the needed package/img/<vendor>/64/ PNGs. */
static int read_package(const emoji_package *pk, int v, emoji_images *T, uint8_t **json, size_t *json_n) {
    struct archive *a = archive_read_new();
    if (!a) {
        vlp_set_error("%s: out of memory", pk->tgz);
        return VLP_ERR_NOMEM;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    char prefix[64];
    int np = snprintf(prefix, sizeof prefix, "package/img/%s/64/", vlp_emoji_vendor_name(v));
    int rc = 0;
    *json = NULL;
    if (archive_read_open_filename(a, pk->tgz, 1 << 16) != ARCHIVE_OK) {
        vlp_set_error("%s: %s", pk->tgz, archive_error_string(a));
        rc = VLP_ERR_IO;
    }
    struct archive_entry *ent;
    int r = ARCHIVE_OK;
    while (!rc && (r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *path = archive_entry_pathname(ent);
        if (!path) continue;
        if (!strcmp(path, "package/emoji.json") && !*json) {
            rc = read_entry(a, ent, pk->tgz, json, json_n);
            if (!rc && !T) break; /* only emoji.json wanted */
        } else if (T && !strncmp(path, prefix, (size_t)np)) {
            int s = find_slot(T, path + np);
            if (s >= 0 && T->needed[s] && !T->png[s]) rc = read_entry(a, ent, pk->tgz, &T->png[s], &T->png_size[s]);
        }
    }
    if (!rc && r != ARCHIVE_OK && r != ARCHIVE_EOF) {
        vlp_set_error("%s: %s (damaged tarball: delete it to fetch it again)", pk->tgz, archive_error_string(a));
        rc = VLP_ERR_IO;
    }
    if (!rc && !*json) {
        vlp_set_error("%s: no package/emoji.json", pk->tgz);
        rc = VLP_ERR_IO;
    }
    archive_read_free(a);
    if (rc) {
        free(*json);
        *json = NULL;
    }
    return rc;
}

/* Decodes, composites over white and writes every needed image of vendor v. */
static int process_images(emoji_ctx *c, int v) {
    emoji_images *T = &c->img[v];
    const emoji_package *pk = &c->pk[v];
    char dir[EMOJI_PATH + 64];
    snprintf(dir, sizeof dir, "%s/images/%s", c->out, vlp_emoji_vendor_name(v));
    if (emoji_mkdirs(dir)) return VLP_ERR_IO;
    for (int s = 0; s < T->n; s++)
        if (T->needed[s] && !T->png[s]) {
            vlp_set_error("%s: emoji.json lists package/img/%s/64/%s but the tarball lacks it", pk->tgz,
                          vlp_emoji_vendor_name(v), T->names[s]);
            return VLP_ERR_IO;
        }
    int failed = 0, done = 0, total = 0, written = 0;
    char err[600] = "";
    for (int s = 0; s < T->n; s++) total += T->needed[s] != 0;
    char what[64];
    snprintf(what, sizeof what, "images %s", vlp_emoji_vendor_name(v));
#pragma omp parallel num_threads(vlp_get_threads())
    {
        emoji_png_enc *enc = emoji_png_enc_new(); /* one deflate state per thread, reused */
#pragma omp for schedule(dynamic, 8)
        for (int s = 0; s < T->n; s++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (!T->needed[s] || stop) continue;
            char name[EMOJI_PATH + 300];
            snprintf(name, sizeof name, "%s:package/img/%s/64/%s", pk->tgz, vlp_emoji_vendor_name(v), T->names[s]);
            vlp_image im;
            int rc = vlp_image_decode(T->png[s], T->png_size[s], name, NULL, &im);
            uint8_t *rgba = NULL, *rgb = NULL;
            if (!rc && (im.width != IMG || im.height != IMG)) {
                vlp_set_error("%s: %dx%d, expected %dx%d", name, im.width, im.height, IMG, IMG);
                rc = VLP_ERR_IO;
            }
            if (!rc) {
                rgba = malloc(IMG * IMG * 4);
                rgb = malloc(IMG * IMG * 3);
                if (!rgba || !rgb) {
                    vlp_set_error("%s: out of memory", name);
                    rc = VLP_ERR_NOMEM;
                }
            }
            if (!rc) rc = vlp_image_to_rgba(&im, rgba);
            if (!rc) {
                /* emoji.md: out = (c*a + 255*(255 - a) + 127) div 255, Pillow's alpha_composite over white */
                for (int p = 0; p < IMG * IMG; p++) {
                    unsigned a = rgba[4 * p + 3];
                    for (int ch = 0; ch < 3; ch++)
                        rgb[3 * p + ch] = (uint8_t)((rgba[4 * p + ch] * a + 255u * (255u - a) + 127u) / 255u);
                }
                /* The pair images are already in DIR when the other builder finished there. */
                if (!(c->pairs_present && (T->needed[s] & NEED_PAIRS))) {
                    char path[EMOJI_PATH + 300];
                    snprintf(path, sizeof path, "%s/%s", dir, T->names[s]);
                    rc = emoji_write_png_rgb(enc, path, IMG, IMG, rgb);
#pragma omp atomic
                    written++;
                }
            }
            vlp_image_free(&im);
            free(rgba);
            free(T->png[s]);
            T->png[s] = NULL;
            if (rc) {
                free(rgb);
#pragma omp critical(emoji_err)
                {
                    if (!failed) snprintf(err, sizeof err, "%s", vlp_last_error());
                    failed = 1;
                }
            } else {
                T->rgb[s] = rgb;
                int d;
#pragma omp atomic capture
                d = ++done;
                if (omp_get_thread_num() == 0 && c->opt->progress)
                    c->opt->progress(c->opt->progress_ctx, what, d, total);
            }
        }
        emoji_png_enc_free(enc);
    }
    if (failed) {
        vlp_set_error("%s", err);
        return VLP_ERR_IO;
    }
    if (c->opt->progress) c->opt->progress(c->opt->progress_ctx, what, total, total);
    c->rep->images += written;
    return 0;
}

/* ---- outputs of emoji.md --------------------------------------------------------------------- */
static int write_splits(emoji_ctx *c) {
    for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
        emoji_buf b = {0};
        emoji_buf_add(&b, "filepath\ttitle\n", 15);
        char rel[EMOJI_PATH];
        int v0 = p == 0 ? 0 : 3, v1 = p == 0 ? 2 : 3;
        for (int v = v0; v <= v1; v++)
            for (int i = 0; i < c->n; i++) {
                emoji_entry *e = &c->e[i];
                if (e->held != (p == 2)) continue;
                if (e->has_img[v]) {
                    emoji_image_relpath(v, e->image, rel, sizeof rel);
                    emoji_buf_printf(&b, "%s\t%s\n", rel, e->caption);
                    c->rep->pairs[p][v]++;
                }
                if (p) continue; /* style and unseen: base entries only */
                for (int j = 0; j < e->nvars; j++)
                    if (e->vars[j].has_img[v]) {
                        emoji_image_relpath(v, e->vars[j].image, rel, sizeof rel);
                        emoji_buf_printf(&b, "%s\t%s\n", rel, e->vars[j].caption);
                        c->rep->pairs[p][v]++;
                    }
            }
        char path[EMOJI_PATH + 32];
        snprintf(path, sizeof path, "%s/%s", c->out, split_files[p]);
        int rc = b.oom ? (vlp_set_error("%s: out of memory", path), VLP_ERR_NOMEM) : emoji_write_atomic(path, b.p, b.n);
        emoji_buf_free(&b);
        if (rc) return rc;
    }
    return 0;
}

static int write_json(const char *path, json_t *root) {
    if (!root) {
        vlp_set_error("%s: out of memory", path);
        return VLP_ERR_NOMEM;
    }
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        vlp_set_error("%s: out of memory", path);
        return VLP_ERR_NOMEM;
    }
    size_t n = strlen(s);
    emoji_buf b = {0};
    emoji_buf_add(&b, s, n);
    emoji_buf_add(&b, "\n", 1);
    free(s);
    int rc = b.oom ? (vlp_set_error("%s: out of memory", path), VLP_ERR_NOMEM) : emoji_write_atomic(path, b.p, b.n);
    emoji_buf_free(&b);
    return rc;
}

/* Zero-shot classification on style: classes = categories except Component, lowercased:
 * the nine of emoji-tasks.md in its order, any other after them by first sort_order; the
 * labelled style images (Component left out). */
static int write_zeroshot(emoji_ctx *c) {
    const char *cls[64];
    int64_t first[64];
    int ncls = 0;
    for (int i = 0; i < c->n; i++) {
        emoji_entry *e = &c->e[i];
        if (!strcmp(e->category, "Component")) continue;
        int k = 0;
        while (k < ncls && strcmp(cls[k], e->category)) k++;
        if (k == ncls) {
            if (ncls == 64) {
                vlp_set_error("emoji.json: more than 64 categories");
                return VLP_ERR_IO;
            }
            cls[ncls] = e->category, first[ncls++] = e->sort_order;
        } else if (e->sort_order < first[k]) {
            first[k] = e->sort_order;
        }
    }
    for (int k = 0; k < ncls; k++) /* the known nine first */
        for (int j = 0; j < 9; j++)
            if (!strcmp(cls[k], emoji_cat_names[j])) first[k] = INT64_MIN + j;
    int order[64];
    for (int k = 0; k < ncls; k++) order[k] = k;
    for (int a = 1; a < ncls; a++)
        for (int b = a; b > 0 && first[order[b]] < first[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    json_t *root = json_object(), *classes = json_array(), *templates = json_array(), *images = json_array();
    for (int k = 0; k < ncls; k++) {
        char *lc = lower_utf8(cls[order[k]]);
        json_array_append_new(classes, json_string(lc ? lc : cls[order[k]]));
        free(lc);
    }
    json_array_append_new(templates, json_string("an emoji of {}"));
    json_array_append_new(templates, json_string("a {} emoji"));
    char rel[EMOJI_PATH];
    c->rep->zeroshot_images = 0;
    for (int i = 0; i < c->n; i++) {
        emoji_entry *e = &c->e[i];
        if (e->held || !e->has_img[3] || !strcmp(e->category, "Component")) continue;
        int label = 0;
        while (strcmp(cls[order[label]], e->category)) label++;
        emoji_image_relpath(3, e->image, rel, sizeof rel);
        json_t *o = json_object();
        json_object_set_new(o, "filepath", json_string(rel));
        json_object_set_new(o, "label", json_integer(label));
        json_array_append_new(images, o);
        c->rep->zeroshot_images++;
    }
    c->rep->zeroshot_classes = ncls;
    json_object_set_new(root, "task", json_string("zero-shot category classification (shared/datasets/emoji.md)"));
    json_object_set_new(root, "split", json_string("style"));
    json_object_set_new(root, "classes", classes);
    json_object_set_new(root, "templates", templates);
    json_object_set_new(root, "template_note",
                        json_string("{} is replaced by the class name; text embeddings "
                                    "are averaged per class, then renormalised"));
    json_object_set_new(root, "images", images);
    char path[EMOJI_PATH + 32];
    snprintf(path, sizeof path, "%s/zeroshot.json", c->out);
    return write_json(path, root);
}

static json_t *packages_json(const emoji_ctx *c) {
    json_t *a = json_array();
    for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
        const emoji_package *p = &c->pk[v];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(p->name));
        json_object_set_new(o, "version", json_string(p->version));
        json_object_set_new(o, "size", json_integer(p->size));
        json_object_set_new(o, "shasum", json_string(p->shasum));
        json_object_set_new(o, "integrity", json_string(p->integrity));
        json_array_append_new(a, o);
    }
    return a;
}

static int write_manifest(emoji_ctx *c) {
    json_t *root = json_object(), *splits = json_object();
    json_object_set_new(root, "dataset", json_string("emoji"));
    json_object_set_new(root, "format", json_integer(EMOJI_FORMAT));
    json_object_set_new(root, "spec", json_string("shared/datasets/emoji.md"));
    json_object_set_new(root, "version", json_string(c->pk[0].version));
    json_object_set_new(root, "packages", packages_json(c));
    json_object_set_new(root, "emoji_json_entries", json_integer(c->n));
    for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
        json_t *o = json_object(), *vend = json_object();
        int64_t tot = 0;
        for (int v = 0; v < VLP_EMOJI_NVENDORS; v++)
            if (c->rep->pairs[p][v]) {
                json_object_set_new(vend, vlp_emoji_vendor_name(v), json_integer(c->rep->pairs[p][v]));
                tot += c->rep->pairs[p][v];
            }
        json_object_set_new(o, "file", json_string(split_files[p]));
        json_object_set_new(o, "pairs", json_integer(tot));
        json_object_set_new(o, "vendors", vend);
        json_object_set_new(splits, part_names[p], o);
    }
    json_object_set_new(root, "splits", splits);
    json_t *zs = json_object();
    json_object_set_new(zs, "file", json_string("zeroshot.json"));
    json_object_set_new(zs, "classes", json_integer(c->rep->zeroshot_classes));
    json_object_set_new(zs, "images", json_integer(c->rep->zeroshot_images));
    json_object_set_new(root, "zeroshot", zs);
    json_object_set_new(root, "images", json_integer(c->rep->images));
    char path[EMOJI_PATH + 32];
    snprintf(path, sizeof path, "%s/manifest.json", c->out);
    return write_json(path, root);
}

/* manifest.json present, of this format and version, with its files: nothing to do. */
static int emoji_up_to_date(emoji_ctx *c, const char *version, int fill_report) {
    char path[EMOJI_PATH + 32];
    snprintf(path, sizeof path, "%s/manifest.json", c->out);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return 0;
    int ok = json_integer_value(json_object_get(root, "format")) == EMOJI_FORMAT &&
             emoji_json_str_eq(json_object_get(root, "dataset"), "emoji") &&
             emoji_json_str_eq(json_object_get(root, "version"), version);
    json_t *splits = json_object_get(root, "splits");
    vlp_emoji_report r = {0};
    for (int p = 0; ok && p < VLP_EMOJI_NPARTS; p++) {
        json_t *s = json_object_get(splits, part_names[p]);
        snprintf(path, sizeof path, "%s/%s", c->out, split_files[p]);
        ok = s && emoji_file_exists(path);
        const char *k;
        json_t *val;
        json_object_foreach(json_object_get(s, "vendors"), k, val) {
            for (int v = 0; v < VLP_EMOJI_NVENDORS; v++)
                if (!strcmp(k, vlp_emoji_vendor_name(v))) r.pairs[p][v] = json_integer_value(val);
        }
    }
    snprintf(path, sizeof path, "%s/zeroshot.json", c->out);
    ok = ok && emoji_file_exists(path);
    if (ok && fill_report) {
        json_t *zs = json_object_get(root, "zeroshot");
        r.zeroshot_classes = (int)json_integer_value(json_object_get(zs, "classes"));
        r.zeroshot_images = json_integer_value(json_object_get(zs, "images"));
        memcpy(c->rep->pairs, r.pairs, sizeof r.pairs);
        c->rep->zeroshot_classes = r.zeroshot_classes;
        c->rep->zeroshot_images = r.zeroshot_images;
    }
    json_decref(root);
    return ok;
}

/* ---- driver ------------------------------------------------------------------------------------ */
static int run(const vlp_emoji_options *opt, vlp_emoji_report *rep, int tasks) {
    vlp_emoji_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    const char *fn = tasks ? "vlp_emoji_tasks_build" : "vlp_emoji_build";
    if (!opt || !opt->out_dir || !*opt->out_dir) {
        vlp_set_error("%s: no output directory", fn);
        return VLP_ERR_ARG;
    }
    emoji_ctx c;
    memset(&c, 0, sizeof c);
    c.opt = opt, c.rep = rep, c.tasks = tasks;
    if (snprintf(c.out, sizeof c.out, "%s", opt->out_dir) >= (int)sizeof c.out - 300) {
        vlp_set_error("%s: output path too long", fn);
        return VLP_ERR_ARG;
    }
    const char *version = opt->version ? opt->version : VLP_EMOJI_VERSION;
    char last[EMOJI_PATH + 32]; /* the file written last marks a complete build */
    snprintf(last, sizeof last, "%s/%s", c.out, tasks ? "tasks/summary.json" : "manifest.json");
    if (!opt->force) {
        int done = tasks ? emoji_tasks_up_to_date(&c, version, 1) : emoji_up_to_date(&c, version, 1);
        if (done) {
            rep->up_to_date = 1;
            return 0;
        }
    }
    int rc = emoji_prepare_packages(opt, c.pk, rep);
    if (rc) return rc;
    double t0 = now_seconds();
    if ((rc = emoji_mkdirs(c.out))) return rc;
    if (unlink(last) && errno != ENOENT) {
        vlp_set_error("%s: cannot remove: %s", last, strerror(errno));
        return VLP_ERR_IO;
    }
    c.pairs_present = tasks ? emoji_up_to_date(&c, version, 0) : emoji_tasks_up_to_date(&c, version, 0);
    uint8_t *json0 = NULL;
    size_t json0_n = 0;
    if ((rc = read_package(&c.pk[0], 0, NULL, &json0, &json0_n))) goto out;
    if ((rc = parse_db(&c, (const char *)json0, json0_n, c.pk[0].tgz))) goto out;
    if ((rc = build_tables(&c))) goto out;
    if (tasks && (rc = emoji_tasks_begin(&c))) goto out;
    for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
        uint8_t *json = NULL;
        size_t jn = 0;
        if ((rc = read_package(&c.pk[v], v, &c.img[v], &json, &jn))) goto out;
        /* One emoji.json for all: the concepts and splits must not depend on the vendor. */
        int same = jn == json0_n && !memcmp(json, json0, jn);
        free(json);
        if (!same) {
            vlp_set_error("%s: package/emoji.json differs from the one in %s", c.pk[v].tgz, c.pk[0].tgz);
            rc = VLP_ERR_IO;
            goto out;
        }
        if ((rc = process_images(&c, v))) goto out;
        if (tasks && (rc = emoji_tasks_vendor(&c, v))) goto out;
        release_pixels(&c.img[v]);
    }
    if (tasks) {
        rc = emoji_tasks_finish(&c);
    } else {
        if (!(rc = write_splits(&c)) && !(rc = write_zeroshot(&c))) rc = write_manifest(&c);
    }
out:
    if (tasks) emoji_tasks_free(&c);
    free(json0);
    for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) free_images(&c.img[v]);
    free_db(&c);
    rep->build_seconds = now_seconds() - t0;
    return rc;
}

int vlp_emoji_build(const vlp_emoji_options *opt, vlp_emoji_report *rep) { return run(opt, rep, 0); }
int vlp_emoji_tasks_build(const vlp_emoji_options *opt, vlp_emoji_report *rep) { return run(opt, rep, 1); }

json_t *emoji_packages_json(const emoji_ctx *c) { return packages_json(c); }
int emoji_write_json(const char *path, json_t *root) { return write_json(path, root); }
int emoji_json_str_eq(const json_t *j, const char *s) { return json_is_string(j) && !strcmp(json_string_value(j), s); }
