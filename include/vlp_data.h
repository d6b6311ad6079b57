/* vlp_data.h: image-text datasets and the batch loader.
 *
 * A dataset is an indexed list of (image, caption) pairs read from
 *   - WebDataset tar shards: "dir/{000000..000009}.tar" (brace ranges expand), members
 *     KEY.jpg|jpeg|png|webp|gif|bmp + KEY.txt or KEY.json (caption field "caption", then "text");
 *   - CSV/TSV files (".csv", ".tsv"): header row, image path and caption columns chosen by
 *     name (open_clip's --csv-img-key/--csv-caption-key; defaults "filepath" and "title");
 *     relative image paths are relative to the file's directory;
 *   - a folder of images with same-named .txt captions.
 * The loader decodes, preprocesses (CLIP preprocessing; random resized crop as an option),
 * tokenises and assembles batches on worker threads ahead of compute. The order of pairs
 * depends only on (seed, epoch), and rank/world split every epoch's order across
 * data-parallel ranks.
 *
 * Several specs can be joined with "::" ("a/{00..09}.tar::b/{00..03}.tar"); brace
 * patterns are ranges {000..123} (zero-padded to the wider bound when one is written with a
 * leading zero) or lists {a,b,c}, nested and repeated. A spec that is a directory is a
 * folder, one ending in .csv/.tsv is a CSV/TSV, anything else is tar shards (plain, or
 * compressed with any filter libarchive knows: .tar.gz, .tar.zst, ...).
 *
 * Pairs come in a fixed order: tar shards in pattern order, members in archive order
 * (a key's position is its first member); CSV rows in file order; folder images sorted
 * by relative path (byte order; subfolders are walked, hidden entries skipped).
 * Samples without both an image and a caption (a tar key lacking one, a folder image
 * without its .txt) are skipped and counted (vlp_dataset_skipped). Captions lose trailing
 * CR/LF and any NUL bytes. Plain tar members are indexed at open and read with pread
 * at their data offset; members of compressed shards are held in memory. A plain shard
 * that ends without its end-of-archive blocks is refused as truncated.
 *
 * Errors: functions return NULL or a negative vlp_status with the message (naming the file
 * and the problem) in vlp_last_error(); nothing is printed.
 */
#ifndef VLP_DATA_H
#define VLP_DATA_H

#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(default)

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vlp_dataset vlp_dataset;

typedef struct {
    const char *csv_img_key;     /* CSV/TSV image column; NULL: "filepath" */
    const char *csv_caption_key; /* CSV/TSV caption column; NULL: "title" */
    char csv_separator;          /* 0: from the extension (',' for .csv, '\t' for .tsv) */
} vlp_dataset_options;

/* spec: a tar pattern, a .csv/.tsv file or a folder (see above). opt may be NULL. */
vlp_dataset *vlp_dataset_open(const char *spec, const vlp_dataset_options *opt);
void vlp_dataset_free(vlp_dataset *ds);
int64_t vlp_dataset_size(const vlp_dataset *ds);
const char *vlp_dataset_caption(const vlp_dataset *ds, int64_t i);
/* A name for messages and outputs: the tar key, the CSV path or the file name. */
const char *vlp_dataset_key(const vlp_dataset *ds, int64_t i);
/* The tar shard pair i comes from; NULL for other kinds. */
const char *vlp_dataset_shard(const vlp_dataset *ds, int64_t i);
/* The encoded image bytes of pair i (malloc'd; the caller frees *data). Thread-safe. */
int vlp_dataset_read_image(const vlp_dataset *ds, int64_t i, uint8_t **data, size_t *size);
/* Samples left out at open for lacking an image or a caption. */
int64_t vlp_dataset_skipped(const vlp_dataset *ds);
/* "tar", "csv" or "folder". */
const char *vlp_dataset_kind(const vlp_dataset *ds);

/* Turns a caption into context_length ids (padded with 0); returns 0 or a negative status.
 * Default (NULL): the CLIP BPE with start/end tokens, truncated keeping the end token. */
typedef int (*vlp_tokenize_fn)(void *ctx, const char *text, int context_length, int32_t *ids);
/* The loader calls it from its worker threads at the same time: it must be thread-safe. */

typedef struct {
    int batch_size;
    int image_size;          /* CLIP preprocessing at this size */
    int context_length;
    uint64_t seed;
    int shuffle;             /* 1: a permutation per epoch from (seed, epoch) */
    int drop_last;           /* 1: every batch is full; the epoch's remainder is skipped */
    int workers;             /* decode threads; 0: 2 */
    int prefetch;            /* batches prepared ahead; 0: 2 */
    int rank, world;         /* data-parallel split; world 0 or 1: no split */
    int random_resized_crop; /* 1: RandomResizedCrop(scale 0.9..1, ratio 3/4..4/3) instead of resize+crop
                                (bicubic in float: close to, not bit-equal with, torchvision) */
    float rrc_scale_min;     /* 0: 0.9 */
    vlp_tokenize_fn tokenize;
    void *tokenize_ctx;
    int skip_bad_images;     /* 1: a pair whose image fails to read/decode is dropped from its
                                batch (n shrinks) and counted; 0: vlp_loader_next fails */
    int index_only;          /* 1: batches carry only their dataset indices (pixels and tokens
                                are left unset): the order without the decoding cost */
    int replace_bad_images;  /* 1: such a pair is replaced by another one drawn from (seed, epoch,
                                its index), so batches stay full (training's static graphs need
                                that); counted as skipped. Wins over skip_bad_images */
} vlp_loader_options;

/* Order and split. Epoch e's order is a Fisher-Yates permutation driven by a splitmix64
 * stream seeded from (seed, e) (identity without shuffle). The order is cut into global
 * batches of batch_size (drop_last: only full ones); rank r takes global batches
 * r, r + world, r + 2 world, ... (every world-th batch), so the ranks together cover the
 * epoch exactly once. With drop_last every rank gets the same count (the last
 * global-batches % world full batches are skipped too); without it ranks may differ by
 * one batch. Random resized crop is seeded per (seed, epoch, dataset index), so batches do
 * not depend on workers, prefetch or timing. */

typedef struct {
    int n;                   /* pairs in this batch (batch_size unless the last, with drop_last 0) */
    float *pixels;           /* n x 3 x image_size x image_size, normalised */
    int32_t *tokens;         /* n x context_length */
    int64_t *index;          /* n dataset indices */
    int64_t epoch, batch;    /* position: batch number inside the epoch */
} vlp_batch;

typedef struct vlp_loader vlp_loader;

vlp_loader *vlp_loader_new(const vlp_dataset *ds, const vlp_loader_options *opt);
/* Blocks until the next batch is ready; the buffers stay valid until the next call.
 * Returns 0, or a negative status (a bad image is an error naming its key and the batch;
 * the call after it returns the following batch). Epochs roll over. Workers start
 * preparing batches in vlp_loader_new. */
int vlp_loader_next(vlp_loader *ld, vlp_batch *out);
/* Positions the loader so that the next batch is (epoch, batch): exact resume. Batches in
 * flight are discarded; the buffers of the last returned batch become invalid. */
int vlp_loader_seek(vlp_loader *ld, int64_t epoch, int64_t batch);
int64_t vlp_loader_batches_per_epoch(const vlp_loader *ld);
/* One epoch of an unshuffled loader over all n pairs, in dataset order, for evaluation: calls
 * fn(ctx, batch, first) with first = the dataset index of the batch's first row. Fails (an
 * error naming `who`) when the loader skips or reorders a pair, or delivers other than n;
 * returns fn's first non-zero status. */
int vlp_loader_each_in_order(vlp_loader *ld, int64_t n, const char *who,
                             int (*fn)(void *ctx, const vlp_batch *b, int64_t first), void *ctx);
/* Seconds vlp_loader_next spent waiting for data since the last call of this function. */
double vlp_loader_take_wait_seconds(vlp_loader *ld);
/* Pairs dropped so far with skip_bad_images, and the message of the last one ("" if none). */
int64_t vlp_loader_skipped(const vlp_loader *ld);
const char *vlp_loader_last_skip_error(vlp_loader *ld);
void vlp_loader_free(vlp_loader *ld);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

#endif
