/* vlp safetensors: a strict reader and an atomic writer for Hugging Face
 * .safetensors files.
 *
 * Format: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (an object
 * mapping tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} plus
 * an optional "__metadata__" object of string -> string), then the data buffer;
 * offsets are relative to the first byte after the header.
 *
 * The reader validates everything before returning a handle, with the same rules
 * as the reference (Rust) implementation: header 1..100,000,000 bytes and inside
 * the file, a JSON object, known dtypes, non-negative integer dims whose product
 * (times the dtype size) does not overflow and equals end - begin, and data
 * offsets that tile the data buffer exactly: sorted by begin, the tensors start
 * at 0, leave no gap, do not overlap and end at the end of the file (the
 * reference rejects holes and trailing bytes too). In addition, duplicate keys
 * anywhere in the header are rejected (the reference would silently keep one),
 * and tensors may have at most VLP_ST_MAX_DIMS dims. Unknown keys inside a tensor
 * entry are ignored, as in the reference. Every error names the file and, where
 * there is one, the tensor.
 *
 * Functions returning int return 0 (or a count/index) on success and a negative
 * vlp_status on error, with the message in vlp_last_error().
 */
#ifndef VLP_SAFETENSORS_H
#define VLP_SAFETENSORS_H

#include "vlp.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libvlp is built with hidden visibility; everything declared here is exported. */
#pragma GCC visibility push(default)

#define VLP_ST_MAX_DIMS 8
#define VLP_ST_MAX_HEADER 100000000ull /* bytes, as in the reference implementation */

/* Every dtype of the reference implementation that has a whole-byte element. */
typedef enum {
    VLP_ST_F32 = 0,
    VLP_ST_F16,
    VLP_ST_BF16,
    VLP_ST_F64,
    VLP_ST_I64,
    VLP_ST_I32,
    VLP_ST_I16,
    VLP_ST_I8,
    VLP_ST_U8,
    VLP_ST_BOOL,
    VLP_ST_U16,
    VLP_ST_U32,
    VLP_ST_U64,
    VLP_ST_F8_E5M2,
    VLP_ST_F8_E4M3,
    VLP_ST_F8_E8M0,
    VLP_ST_C64,
    VLP_ST_DTYPE_COUNT
} vlp_st_dtype;

typedef struct vlp_safetensors vlp_safetensors;

/* Maps the file read-only (falls back to reading it) and validates it fully.
 * NULL on error. Note: like any mmap reader, a file truncated by another process
 * while it is open can fault on access. */
vlp_safetensors *vlp_st_open(const char *path);
/* Same over a caller's buffer, which is NOT copied and must outlive the handle.
 * `name` (may be NULL) is used in error messages in place of a path. */
vlp_safetensors *vlp_st_open_memory(const void *data, size_t size, const char *name);
void vlp_st_close(vlp_safetensors *st);

/* Tensors are numbered 0..count-1 in file (data offset) order. */
int vlp_st_count(const vlp_safetensors *st);
const char *vlp_st_name(const vlp_safetensors *st, int i); /* NULL if i is out of range */
int vlp_st_find(const vlp_safetensors *st, const char *name); /* index or -1 (no error set) */
/* Any output pointer may be NULL; shape gets ndim (<= VLP_ST_MAX_DIMS) dims. */
int vlp_st_info(const vlp_safetensors *st, int i, vlp_st_dtype *dtype, int *ndim, int64_t shape[VLP_ST_MAX_DIMS]);
int64_t vlp_st_numel(const vlp_safetensors *st, int i); /* < 0 on error */
/* The tensor's raw little-endian bytes inside the file (not aligned in general:
 * copy with memcpy). NULL on error; a tensor with no elements gives a non-NULL
 * pointer and *nbytes = 0. */
const void *vlp_st_data(const vlp_safetensors *st, int i, size_t *nbytes);

const char *vlp_st_dtype_name(vlp_st_dtype dtype); /* "F32", ...; "?" if unknown */
size_t vlp_st_dtype_size(vlp_st_dtype dtype);      /* bytes; 0 if unknown */
/* Parses "F32", "BF16", ... (exact, upper case); -1 if unknown. */
int vlp_st_dtype_from_name(const char *name);

/* Converts an F32/F16/BF16/F64 tensor to float32 into out (numel floats). Errors,
 * naming the tensor, if its element count differs from numel or its dtype is not
 * a float type. F16 and BF16 widen exactly (subnormals, inf, nan); F64 rounds to
 * nearest. */
int vlp_st_read_f32(const vlp_safetensors *st, int i, float *out, int64_t numel);

/* "__metadata__" entries. NULL if absent. */
const char *vlp_st_metadata(const vlp_safetensors *st, const char *key);
int vlp_st_metadata_count(const vlp_safetensors *st);
const char *vlp_st_metadata_key(const vlp_safetensors *st, int i); /* header order */

/* IEEE conversions used by the reader and writer (round to nearest even; nan
 * stays nan, overflow goes to inf). */
float vlp_f16_to_f32(uint16_t h);
uint16_t vlp_f32_to_f16(float f);
float vlp_bf16_to_f32(uint16_t h);
uint16_t vlp_f32_to_bf16(float f);

/* Writer. Tensors are given as float32 arrays and stored as store_as: F32, F16,
 * BF16 or F64. The layout is the reference writer's: tensors sorted by dtype
 * alignment (descending: F64, F32, BF16, F16) then by name (byte order), data
 * contiguous from offset 0, "__metadata__" first in the header, compact JSON,
 * header padded with spaces to a multiple of 8 bytes.
 *
 * The write is atomic: data goes to "<path>.tmp.<pid>", is fsync'd, renamed over
 * path, and the directory is fsync'd. On any error (bad argument, disk full, ...)
 * the temporary file is removed and a file already at path is left untouched.
 * meta_kv: key, value, key, value, ..., NULL (or NULL for no metadata). Names and
 * metadata must be valid UTF-8; duplicate names or keys are an error. */
typedef struct {
    const char *name;
    const float *data; /* numel floats; may be NULL when numel == 0 */
    int ndim;          /* 0..VLP_ST_MAX_DIMS; 0 = scalar */
    int64_t shape[VLP_ST_MAX_DIMS];
    vlp_st_dtype store_as;
} vlp_st_entry;
int vlp_st_save(const char *path, const vlp_st_entry *entries, int n, const char *const *meta_kv);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
