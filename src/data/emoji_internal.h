/* Internals shared by the emoji builders (emoji_fetch.c, emoji.c, emoji_tasks.c). */
#ifndef VLP_EMOJI_INTERNAL_H
#define VLP_EMOJI_INTERNAL_H

#include "vlp_emoji.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EMOJI_PATH 4096

/* ---- packages (emoji_fetch.c) -------------------------------------------------------- */
typedef struct {
    char name[64]; /* emoji-datasource-apple */
    char version[64];
    char tgz[EMOJI_PATH]; /* cache/NAME-VERSION.tgz */
    int64_t size;         /* from `npm pack --json` */
    char shasum[41];      /* SHA-1 hex, from `npm pack --json` */
    char integrity[160];  /* npm's sha512-... */
} emoji_package;

/* Fetches (unless offline) and verifies the four tarballs. */
int emoji_prepare_packages(const vlp_emoji_options *opt, emoji_package pk[VLP_EMOJI_NVENDORS], vlp_emoji_report *rep);
/* SHA-1 of a file as 40 hex digits (exposed for the tests). */
int emoji_sha1_file(const char *path, char hex[41]);
void emoji_sha1(const void *data, size_t n, char hex[41]);

/* ---- emoji.json ---------------------------------------------------------------------- */
typedef struct {
    char *key; /* skin_variations key: "1F3FB" or "1F3FB-1F3FC" */
    char *image;
    int has_img[VLP_EMOJI_NVENDORS];
    int slot[VLP_EMOJI_NVENDORS]; /* index in the vendor's image table, -1 without image */
    int ntones, tone[2];          /* modifiers, 0..4 = 1F3FB..1F3FF */
    char *caption;                /* base caption + ", " + tone words */
} emoji_var;

typedef struct {
    char *caption; /* name, lowercased */
    char *image, *category, *subcategory;
    int64_t sort_order;
    int held; /* sort_order % 10 == 7 */
    int cat;  /* index in the task phrase order C0..C8; -1 Component; -2 other */
    int has_img[VLP_EMOJI_NVENDORS];
    int slot[VLP_EMOJI_NVENDORS];
    emoji_var *vars; /* in the key order of the file */
    int nvars;
} emoji_entry;

/* One vendor's images: unique file names, sorted; the PNG bytes while reading and the
 * composited RGB (64x64x3) after decoding. */
typedef struct {
    char **names;
    int n;
    unsigned char *needed; /* 0: not used; bits NEED_PAIRS, NEED_TONES (emoji.c) */
    uint8_t **png;
    size_t *png_size;
    uint8_t **rgb;
} emoji_images;

typedef struct emoji_ctx {
    const vlp_emoji_options *opt;
    vlp_emoji_report *rep;
    emoji_package pk[VLP_EMOJI_NVENDORS];
    emoji_entry *e;
    int n;
    emoji_images img[VLP_EMOJI_NVENDORS];
    char out[EMOJI_PATH];
    int tasks;         /* building the tasks: tone items and canvases too */
    int pairs_present; /* the other builder finished in DIR: the pair images are there */
    void *task_state;
} emoji_ctx;

extern const char *const emoji_tone_words[5];  /* "light" ... "dark" */
extern const char *const emoji_cat_names[9];   /* "Smileys & Emotion" ... "Flags" */
extern const char *const emoji_cat_phrases[9]; /* "a smiley or emotion" ... */

/* Path of an item image relative to DIR: images/<vendor>/<image>. */
void emoji_image_relpath(int vendor, const char *image, char *buf, size_t n);

/* ---- files ----------------------------------------------------------------------------- */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} emoji_buf;
void emoji_buf_add(emoji_buf *b, const char *s, size_t n);
void emoji_buf_printf(emoji_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void emoji_buf_free(emoji_buf *b);

int emoji_mkdirs(const char *path);
/* Writes data to path.tmp and renames it to path. */
int emoji_write_atomic(const char *path, const void *data, size_t n);
/* RGB PNG writer (emoji_png.c); one encoder per thread, reused across files. */
typedef struct emoji_png_enc emoji_png_enc;
emoji_png_enc *emoji_png_enc_new(void);
void emoji_png_enc_free(emoji_png_enc *e);
/* Encodes and writes atomically; enc NULL: a temporary encoder. */
int emoji_write_png_rgb(emoji_png_enc *enc, const char *path, int w, int h, const uint8_t *rgb);
int emoji_file_exists(const char *path);

/* JSON helpers shared by the manifest and the task summary (emoji.c). */
json_t *emoji_packages_json(const emoji_ctx *c);
/* Writes root (indented, key order kept) atomically and releases it. */
int emoji_write_json(const char *path, json_t *root);
int emoji_json_str_eq(const json_t *j, const char *s);

/* ---- tasks (emoji_tasks.c), called by the driver in emoji.c ------------------------- */
/* tasks/summary.json present, of this version, with all its files (fill_report: copy the
 * row counts into c->rep). */
int emoji_tasks_up_to_date(emoji_ctx *c, const char *version, int fill_report);
int emoji_tasks_begin(emoji_ctx *c);
/* After vendor v's images are decoded (c->img[v].rgb valid): its rows and canvases. */
int emoji_tasks_vendor(emoji_ctx *c, int v);
int emoji_tasks_finish(emoji_ctx *c);
void emoji_tasks_free(emoji_ctx *c);

#endif
