/* Dataset internals shared by the readers in src/data. Not installed. */
#ifndef VLP_DATA_INTERNAL_H
#define VLP_DATA_INTERNAL_H

#include "internal.h" /* vlp_set_error */
#include "vlp_data.h"
#include "vlp_image.h"

#include <stddef.h>
#include <stdint.h>

enum { DS_TAR = 1, DS_CSV, DS_FOLDER };

/* Strings live in chunks freed together with the dataset: millions of small captions
 * and keys would otherwise cost one malloc each. */
typedef struct ds_chunk {
    struct ds_chunk *next;
    size_t used, cap;
    char data[];
} ds_chunk;

typedef struct {
    const char *key;     /* tar key, CSV path as written, folder relative path */
    const char *caption;
    const char *path;    /* CSV/folder: file to read; tar: NULL */
    int64_t offset;      /* tar: data offset in the shard (plain tar) */
    int64_t size;        /* tar: member size */
    uint8_t *mem;        /* tar, compressed shard: the member's bytes */
    int32_t shard;       /* tar: index into shards */
} ds_item;

struct vlp_dataset {
    int kind;
    ds_item *items;
    int64_t n, cap;
    char **shards;
    int nshards;
    int64_t skipped;
    ds_chunk *chunks;
};

/* Copies len bytes (+ NUL) into the dataset's string chunks; NULL when out of memory. */
char *ds_strndup(vlp_dataset *ds, const char *s, size_t len);
char *ds_strdup(vlp_dataset *ds, const char *s);
/* Appends an item (copied); 0 or VLP_ERR_NOMEM. */
int ds_push(vlp_dataset *ds, const ds_item *it);
/* Caption cleanup shared by the readers: drops NUL bytes and trailing CR/LF, in place;
 * returns the new length. */
size_t ds_clean_caption(char *s, size_t len);
/* Image file name extensions the readers accept (case-insensitive, without the dot). */
int ds_is_image_ext(const char *ext);
/* The last path component, for messages. */
const char *ds_basename(const char *path);
/* Reads a whole file into a malloc'd NUL-terminated buffer; 0 or a status (message set). */
int ds_read_file(const char *path, char **data, size_t *size);

/* Most names one spec may expand to (1,000,000; the fuzzer lowers it). */
extern int64_t ds_expand_limit;
/* Expands "::"-joined brace patterns into *out (malloc'd array of malloc'd strings). */
int ds_expand_braces(const char *pattern, char ***out, int64_t *n);
void ds_free_strings(char **s, int64_t n);

int ds_open_tar(vlp_dataset *ds, char **shards, int64_t nshards);
int ds_open_csv(vlp_dataset *ds, const char *path, const vlp_dataset_options *opt);
int ds_open_folder(vlp_dataset *ds, const char *dir);
int ds_read_tar_image(const vlp_dataset *ds, const ds_item *it, uint8_t **data, size_t *size);

/* RandomResizedCrop(size, scale=(scale_min, 1), ratio=(3/4, 4/3), bicubic) + to RGB +
 * normalise into out[3][size][size], drawing from the splitmix64 stream *rng. */
int data_random_resized_crop(const vlp_image *img, const vlp_preprocess_config *cfg, float scale_min,
                             uint64_t *rng, float *out);
uint64_t data_splitmix64(uint64_t *state);

#endif
