/* Hugging Face safetensors: strict reader (mmap, read fallback) and atomic writer.
 *
 * Reader: every check happens in vlp_st_open*, before a handle is returned, so
 * the accessors can trust offsets. Allocations are proportional to the header
 * (names, metadata, the tensor table), never to sizes the file declares.
 * Writer: the reference layout (dtype alignment descending, then name), written
 * to a temporary file, fsync'd and renamed over the target.
 */
#include "internal.h"
#include "vlp_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dtypes ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
    int rank; /* position in the reference implementation's Dtype enum (alignment order) */
} dtypes[VLP_ST_DTYPE_COUNT] = {
    [VLP_ST_F32] = {"F32", 4, 15},        [VLP_ST_F16] = {"F16", 2, 11},
    [VLP_ST_BF16] = {"BF16", 2, 12},      [VLP_ST_F64] = {"F64", 8, 17},
    [VLP_ST_I64] = {"I64", 8, 18},        [VLP_ST_I32] = {"I32", 4, 13},
    [VLP_ST_I16] = {"I16", 2, 9},         [VLP_ST_I8] = {"I8", 1, 5},
    [VLP_ST_U8] = {"U8", 1, 4},           [VLP_ST_BOOL] = {"BOOL", 1, 0},
    [VLP_ST_U16] = {"U16", 2, 10},        [VLP_ST_U32] = {"U32", 4, 14},
    [VLP_ST_U64] = {"U64", 8, 19},        [VLP_ST_F8_E5M2] = {"F8_E5M2", 1, 6},
    [VLP_ST_F8_E4M3] = {"F8_E4M3", 1, 7}, [VLP_ST_F8_E8M0] = {"F8_E8M0", 1, 8},
    [VLP_ST_C64] = {"C64", 8, 16},
};

static int dtype_ok(vlp_st_dtype d) { return (unsigned)d < VLP_ST_DTYPE_COUNT; }

const char *vlp_st_dtype_name(vlp_st_dtype d) { return dtype_ok(d) ? dtypes[d].name : "?"; }
size_t vlp_st_dtype_size(vlp_st_dtype d) { return dtype_ok(d) ? dtypes[d].size : 0; }

int vlp_st_dtype_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < VLP_ST_DTYPE_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) return i;
    return -1;
}

static int is_float_dtype(vlp_st_dtype d) {
    return d == VLP_ST_F32 || d == VLP_ST_F16 || d == VLP_ST_BF16 || d == VLP_ST_F64;
}

/* ---- IEEE conversions ---------------------------------------------------------- */

static inline uint32_t f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}
static inline float bits_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

float vlp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        e = 113; /* subnormal: normalise */
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        return bits_f32(sign | e << 23 | (m & 0x3ff) << 13);
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | m << 13); /* inf, nan (payload kept) */
    return bits_f32(sign | (e + 112) << 23 | m << 13);
}

uint16_t vlp_f32_to_f16(float f) {
    uint32_t x = f32_bits(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* quiet nan */
    if (ax >= 0x477ff000u) return sign | 0x7c00;  /* >= 65520 rounds to inf (and inf) */
    if (ax >= 0x38800000u) {                      /* normal half */
        uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
        return sign | (uint16_t)h;
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25: rounds to (signed) zero */
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, shift = 126 - e; /* 14..24 */
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | (uint16_t)r;
}

float vlp_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t vlp_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* Little-endian loads from unaligned bytes. */
static inline uint16_t ld16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld64(const unsigned char *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

/* ---- reader -------------------------------------------------------------------- */

typedef struct {
    char *name;
    vlp_st_dtype dtype;
    int ndim;
    int64_t shape[VLP_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* relative to the data buffer */
} st_tensor;

struct vlp_safetensors {
    char *path;
    const unsigned char *base; /* whole file */
    size_t size;
    void *map;    /* mmap'd region (munmap on close), or NULL */
    void *owned;  /* read fallback buffer, or NULL */
    const unsigned char *data; /* data buffer (after the header) */
    uint64_t data_len;
    int n;
    st_tensor *t;   /* in offset order */
    int *by_name;   /* indices sorted by name, for vlp_st_find */
    int nmeta;
    char **meta;    /* key, value, key, value, ... */
};

/* Names in messages are bounded; long paths keep their tail (the file name). */
#define NAME_FMT "%.160s"
static const char *ptail(const char *path) {
    size_t n = strlen(path);
    return n > 200 ? path + n - 200 : path;
}

static int st_fail(const vlp_safetensors *st, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int st_fail(const vlp_safetensors *st, int status, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vlp_set_error("%s: %s", st && st->path ? ptail(st->path) : "(safetensors)", msg);
    return status;
}

void vlp_st_close(vlp_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->t);
    free(st->by_name);
    free(st->meta);
    if (st->map) munmap(st->map, st->size);
    free(st->owned);
    free(st->path);
    free(st);
}

static int cmp_offsets(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* qsort has no context argument in C11. */
static _Thread_local const st_tensor *tl_sort_base;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(tl_sort_base[*(const int *)a].name, tl_sort_base[*(const int *)b].name);
}

/* Non-negative JSON integer, or -1. */
static int64_t json_uint(const json_t *v) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 ? -1 : (int64_t)x;
}

static int parse_tensor(vlp_safetensors *st, const char *name, json_t *v, st_tensor *t) {
    if (!json_is_object(v)) return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': entry is not a JSON object", name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': entry lacks %s", name,
                       !jd ? "\"dtype\"" : !js ? "\"shape\"" : "\"data_offsets\"");
    if (!json_is_string(jd)) return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': dtype is not a string", name);
    int d = vlp_st_dtype_from_name(json_string_value(jd));
    if (d < 0)
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': unknown dtype \"%.32s\"", name, json_string_value(jd));
    t->dtype = (vlp_st_dtype)d;
    if (!json_is_array(js)) return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': shape is not an array", name);
    size_t nd = json_array_size(js);
    if (nd > VLP_ST_MAX_DIMS)
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': shape has %zu dims, more than the %d supported", name, nd,
                       VLP_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t k = 0; k < nd; k++) {
        json_t *e = json_array_get(js, k);
        if (!json_is_integer(e))
            return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': shape dim %zu is not an integer", name, k);
        int64_t x = json_uint(e);
        if (x < 0)
            return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': shape dim %zu is negative (%lld)", name, k,
                           (long long)json_integer_value(e));
        t->shape[k] = x;
        if (__builtin_mul_overflow(numel, (uint64_t)x, &numel)) overflow = 1;
    }
    uint64_t nbytes = 0;
    if (overflow || numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)dtypes[d].size, &nbytes))
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': shape product overflows", name);
    t->numel = (int64_t)numel;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': data_offsets is not an array of two integers", name);
    int64_t b = json_uint(json_array_get(jo, 0)), e = json_uint(json_array_get(jo, 1));
    if (b < 0 || e < 0) return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': data_offsets are negative", name);
    if (b > e)
        return st_fail(st, VLP_ERR_IO, "tensor '" NAME_FMT "': data_offsets begin %lld > end %lld", name, (long long)b,
                       (long long)e);
    if ((uint64_t)e > st->data_len)
        return st_fail(st, VLP_ERR_IO,
                       "tensor '" NAME_FMT "': data_offsets end %lld is beyond the data buffer (%llu bytes; file truncated?)",
                       name, (long long)e, (unsigned long long)st->data_len);
    if ((uint64_t)(e - b) != nbytes)
        return st_fail(st, VLP_ERR_IO,
                       "tensor '" NAME_FMT "': size mismatch: data_offsets span %lld bytes but %s shape holds %llu bytes",
                       name, (long long)(e - b), dtypes[d].name, (unsigned long long)nbytes);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    return 0;
}

static int parse_metadata(vlp_safetensors *st, json_t *v) {
    if (!json_is_object(v)) return st_fail(st, VLP_ERR_IO, "__metadata__ is not a JSON object");
    size_t n = json_object_size(v);
    st->meta = calloc(2 * n + 1, sizeof *st->meta);
    if (!st->meta) return st_fail(st, VLP_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (!json_is_string(x))
            return st_fail(st, VLP_ERR_IO, "__metadata__ value for key '" NAME_FMT "' is not a string", k);
        st->meta[2 * st->nmeta] = strdup(k);
        st->meta[2 * st->nmeta + 1] = strdup(json_string_value(x));
        st->nmeta++;
        if (!st->meta[2 * st->nmeta - 2] || !st->meta[2 * st->nmeta - 1])
            return st_fail(st, VLP_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* Validates st->base[0..size) and fills the tables. */
static int parse(vlp_safetensors *st) {
    if (st->size == 0) return st_fail(st, VLP_ERR_IO, "empty file (0 bytes): truncated, no header length");
    if (st->size < 8)
        return st_fail(st, VLP_ERR_IO, "truncated: %zu bytes, shorter than the 8-byte header length", st->size);
    uint64_t hlen = ld64(st->base);
    if (hlen == 0) return st_fail(st, VLP_ERR_IO, "header length is 0");
    if (hlen > VLP_ST_MAX_HEADER)
        return st_fail(st, VLP_ERR_IO, "header length %llu is too large (limit %llu bytes)", (unsigned long long)hlen,
                       VLP_ST_MAX_HEADER);
    if (hlen > st->size - 8)
        return st_fail(st, VLP_ERR_IO, "header length %llu goes beyond the end of the file (%zu bytes): truncated",
                       (unsigned long long)hlen, st->size);
    st->data = st->base + 8 + hlen;
    st->data_len = st->size - 8 - hlen;
    const char *hdr = (const char *)st->base + 8;
    if (hdr[0] != '{') return st_fail(st, VLP_ERR_IO, "header is not a JSON object (does not start with '{')");

    if (memchr(hdr, 0, (size_t)hlen)) return st_fail(st, VLP_ERR_IO, "header is not valid JSON: it contains a NUL byte");
    json_error_t jerr;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return st_fail(st, VLP_ERR_IO, "duplicate key in header (a tensor name or key appears twice): %.200s", jerr.text);
        return st_fail(st, VLP_ERR_IO, "header is not valid JSON: %.200s (at byte %d)", jerr.text, jerr.position);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = st_fail(st, VLP_ERR_IO, "header is not a JSON object");
        goto done;
    }
    size_t nkeys = json_object_size(root);
    if (nkeys > INT_MAX / 2) {
        rc = st_fail(st, VLP_ERR_IO, "header has too many tensors");
        goto done;
    }
    st->t = calloc(nkeys + 1, sizeof *st->t);
    if (!st->t) {
        rc = st_fail(st, VLP_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if ((rc = parse_metadata(st, v))) goto done;
            continue;
        }
        st_tensor *t = &st->t[st->n];
        if ((rc = parse_tensor(st, key, v, t))) goto done;
        if (!(t->name = strdup(key))) {
            rc = st_fail(st, VLP_ERR_NOMEM, "out of memory");
            goto done;
        }
        st->n++;
    }
    /* The data offsets must tile the data buffer: no gap, no overlap, nothing after. */
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_offsets);
    uint64_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        const st_tensor *t = &st->t[i];
        if (t->begin < pos) {
            rc = st_fail(st, VLP_ERR_IO,
                         "tensor '" NAME_FMT "': data_offsets [%llu, %llu] overlap the previous tensor '" NAME_FMT "' (ends at %llu)",
                         t->name, (unsigned long long)t->begin, (unsigned long long)t->end, st->t[i - 1].name,
                         (unsigned long long)pos);
            goto done;
        }
        if (t->begin > pos) {
            rc = st_fail(st, VLP_ERR_IO,
                         "tensor '" NAME_FMT "': gap in the data buffer: data_offsets begin at %llu, previous data ends at %llu "
                         "(tensors must cover the buffer contiguously)",
                         t->name, (unsigned long long)t->begin, (unsigned long long)pos);
            goto done;
        }
        pos = t->end;
    }
    if (pos != st->data_len) {
        rc = st_fail(st, VLP_ERR_IO,
                     "data buffer has %llu bytes but the tensors cover %llu: trailing bytes after the last tensor",
                     (unsigned long long)st->data_len, (unsigned long long)pos);
        goto done;
    }
    st->by_name = malloc(((size_t)st->n + 1) * sizeof *st->by_name);
    if (!st->by_name) {
        rc = st_fail(st, VLP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < st->n; i++) st->by_name[i] = i;
    tl_sort_base = st->t;
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name_idx);
done:
    json_decref(root);
    return rc;
}

static vlp_safetensors *st_new(const char *name) {
    vlp_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(name))) {
        free(st);
        vlp_set_error("%s: out of memory", ptail(name));
        return NULL;
    }
    return st;
}

vlp_safetensors *vlp_st_open_memory(const void *data, size_t size, const char *name) {
    if (!name) name = "(memory)";
    if (!data && size) {
        vlp_set_error("vlp_st_open_memory: data is NULL");
        return NULL;
    }
    vlp_safetensors *st = st_new(name);
    if (!st) return NULL;
    st->base = data ? data : (const unsigned char *)"";
    st->size = size;
    if (parse(st)) {
        vlp_st_close(st);
        return NULL;
    }
    return st;
}

vlp_safetensors *vlp_st_open(const char *path) {
    if (!path) {
        vlp_set_error("vlp_st_open: path is NULL");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO must not hang us */
    if (fd < 0) {
        vlp_set_error("%s: cannot open: %s", ptail(path), strerror(errno));
        return NULL;
    }
    vlp_safetensors *st = st_new(path);
    if (!st) {
        close(fd);
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        st_fail(st, VLP_ERR_IO, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_fail(st, VLP_ERR_IO, "not a regular file");
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        st_fail(st, VLP_ERR_IO, "file too large to map");
        goto fail;
    }
    st->size = (size_t)sb.st_size;
    if (st->size > 0) {
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            st->map = m;
            st->base = m;
        } else { /* e.g. a filesystem without mmap: read the file (its real size, not a declared one) */
            st->owned = malloc(st->size);
            if (!st->owned) {
                st_fail(st, VLP_ERR_NOMEM, "out of memory reading %zu bytes", st->size);
                goto fail;
            }
            size_t got = 0;
            while (got < st->size) {
                ssize_t r = pread(fd, (char *)st->owned + got, st->size - got, (off_t)got);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) {
                    st_fail(st, VLP_ERR_IO, "read error: %s", r < 0 ? strerror(errno) : "file shrank while reading");
                    goto fail;
                }
                got += (size_t)r;
            }
            st->base = st->owned;
        }
    } else {
        st->base = (const unsigned char *)"";
    }
    close(fd);
    fd = -1;
    if (parse(st)) goto fail;
    return st;
fail:
    if (fd >= 0) close(fd);
    vlp_st_close(st);
    return NULL;
}

/* ---- accessors ----------------------------------------------------------------- */

static const st_tensor *get(const vlp_safetensors *st, int i, const char *fn) {
    if (!st) {
        vlp_set_error("%s: NULL handle", fn);
        return NULL;
    }
    if (i < 0 || i >= st->n) {
        st_fail(st, VLP_ERR_ARG, "%s: tensor index %d out of range [0, %d)", fn, i, st->n);
        return NULL;
    }
    return &st->t[i];
}

int vlp_st_count(const vlp_safetensors *st) {
    if (!st) {
        vlp_set_error("vlp_st_count: NULL handle");
        return VLP_ERR_ARG;
    }
    return st->n;
}

const char *vlp_st_name(const vlp_safetensors *st, int i) {
    const st_tensor *t = get(st, i, "vlp_st_name");
    return t ? t->name : NULL;
}

int vlp_st_find(const vlp_safetensors *st, const char *name) {
    if (!st || !name) return -1;
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->t[st->by_name[mid]].name);
        if (!c) return st->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

int vlp_st_info(const vlp_safetensors *st, int i, vlp_st_dtype *dtype, int *ndim, int64_t shape[VLP_ST_MAX_DIMS]) {
    const st_tensor *t = get(st, i, "vlp_st_info");
    if (!t) return VLP_ERR_ARG;
    if (dtype) *dtype = t->dtype;
    if (ndim) *ndim = t->ndim;
    if (shape)
        for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
    return 0;
}

int64_t vlp_st_numel(const vlp_safetensors *st, int i) {
    const st_tensor *t = get(st, i, "vlp_st_numel");
    return t ? t->numel : VLP_ERR_ARG;
}

const void *vlp_st_data(const vlp_safetensors *st, int i, size_t *nbytes) {
    const st_tensor *t = get(st, i, "vlp_st_data");
    if (!t) return NULL;
    if (nbytes) *nbytes = (size_t)(t->end - t->begin);
    return st->data + t->begin;
}

int vlp_st_read_f32(const vlp_safetensors *st, int i, float *out, int64_t numel) {
    const st_tensor *t = get(st, i, "vlp_st_read_f32");
    if (!t) return VLP_ERR_ARG;
    if (!is_float_dtype(t->dtype))
        return st_fail(st, VLP_ERR_ARG, "tensor '" NAME_FMT "' has dtype %s, not a float type (F32, F16, BF16, F64)",
                       t->name, dtypes[t->dtype].name);
    if (numel != t->numel)
        return st_fail(st, VLP_ERR_ARG, "tensor '" NAME_FMT "' has %lld elements, caller expects %lld", t->name,
                       (long long)t->numel, (long long)numel);
    if (!out && numel) return st_fail(st, VLP_ERR_ARG, "vlp_st_read_f32: out is NULL");
    const unsigned char *p = st->data + t->begin;
    size_t n = (size_t)numel;
    switch (t->dtype) {
    case VLP_ST_F32:
        for (size_t k = 0; k < n; k++) out[k] = bits_f32(ld32(p + 4 * k));
        break;
    case VLP_ST_F16:
        for (size_t k = 0; k < n; k++) out[k] = vlp_f16_to_f32(ld16(p + 2 * k));
        break;
    case VLP_ST_BF16:
        for (size_t k = 0; k < n; k++) out[k] = vlp_bf16_to_f32(ld16(p + 2 * k));
        break;
    default: /* F64 */
        for (size_t k = 0; k < n; k++) {
            uint64_t b = ld64(p + 8 * k);
            double d;
            memcpy(&d, &b, 8);
            out[k] = (float)d;
        }
        break;
    }
    return 0;
}

const char *vlp_st_metadata(const vlp_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

int vlp_st_metadata_count(const vlp_safetensors *st) {
    if (!st) {
        vlp_set_error("vlp_st_metadata_count: NULL handle");
        return VLP_ERR_ARG;
    }
    return st->nmeta;
}

const char *vlp_st_metadata_key(const vlp_safetensors *st, int i) {
    if (!st || i < 0 || i >= st->nmeta) return NULL;
    return st->meta[2 * i];
}

/* ---- writer -------------------------------------------------------------------- */

typedef struct {
    const vlp_st_entry *e;
    uint64_t numel, nbytes;
} save_item;

static int cmp_save_layout(const void *a, const void *b) {
    const save_item *x = a, *y = b;
    int rx = dtypes[x->e->store_as].rank, ry = dtypes[y->e->store_as].rank;
    if (rx != ry) return ry - rx; /* descending alignment */
    return strcmp(x->e->name, y->e->name);
}

static int cmp_save_name(const void *a, const void *b) {
    return strcmp((*(const save_item *const *)a)->e->name, (*(const save_item *const *)b)->e->name);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_tensor(int fd, const save_item *it, unsigned char *buf, size_t bufsz) {
    const float *x = it->e->data;
    size_t esz = dtypes[it->e->store_as].size, per = bufsz / esz, n = (size_t)it->numel;
    for (size_t k0 = 0; k0 < n; k0 += per) {
        size_t m = n - k0 < per ? n - k0 : per;
        unsigned char *q = buf;
        for (size_t k = k0; k < k0 + m; k++) {
            uint64_t v;
            switch (it->e->store_as) {
            case VLP_ST_F16: v = vlp_f32_to_f16(x[k]); break;
            case VLP_ST_BF16: v = vlp_f32_to_bf16(x[k]); break;
            case VLP_ST_F64: {
                double d = x[k];
                memcpy(&v, &d, 8);
                break;
            }
            default: v = f32_bits(x[k]); break;
            }
            for (size_t b = 0; b < esz; b++) *q++ = (unsigned char)(v >> (8 * b));
        }
        if (write_all(fd, buf, m * esz)) return -1;
    }
    return 0;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static atomic_uint tmp_counter;

int vlp_st_save(const char *path, const vlp_st_entry *entries, int n, const char *const *meta_kv) {
    if (!path || !*path) {
        vlp_set_error("vlp_st_save: path is NULL or empty");
        return VLP_ERR_ARG;
    }
    if (n < 0 || (n > 0 && !entries)) {
        vlp_set_error("%s: vlp_st_save: bad entries (n = %d, entries %s)", ptail(path), n, entries ? "set" : "NULL");
        return VLP_ERR_ARG;
    }
    const char *P = ptail(path);
    int rc = VLP_ERR_ARG, fd = -1;
    save_item *items = calloc((size_t)n + 1, sizeof *items);
    save_item **by_name = calloc((size_t)n + 1, sizeof *by_name);
    json_t *root = json_object();
    char *hdr = NULL, *tmp = NULL, *dir = NULL;
    unsigned char *buf = NULL;
    if (!items || !by_name || !root) {
        vlp_set_error("%s: out of memory", P);
        rc = VLP_ERR_NOMEM;
        goto out;
    }
    /* Check every entry before touching the disk. */
    for (int i = 0; i < n; i++) {
        const vlp_st_entry *e = &entries[i];
        items[i].e = e;
        by_name[i] = &items[i];
        if (!e->name) {
            vlp_set_error("%s: entry %d has a NULL name", P, i);
            goto out;
        }
        if (!strcmp(e->name, "__metadata__")) {
            vlp_set_error("%s: entry %d: the name \"__metadata__\" is reserved", P, i);
            goto out;
        }
        if (!is_float_dtype(e->store_as)) {
            vlp_set_error("%s: tensor '" NAME_FMT "': cannot store as %s (F32, F16, BF16 or F64 only)", P, e->name,
                          vlp_st_dtype_name(e->store_as));
            goto out;
        }
        if (e->ndim < 0 || e->ndim > VLP_ST_MAX_DIMS) {
            vlp_set_error("%s: tensor '" NAME_FMT "': ndim %d out of range [0, %d]", P, e->name, e->ndim,
                          VLP_ST_MAX_DIMS);
            goto out;
        }
        uint64_t numel = 1;
        for (int k = 0; k < e->ndim; k++) {
            if (e->shape[k] < 0) {
                vlp_set_error("%s: tensor '" NAME_FMT "': shape dim %d is negative (%lld)", P, e->name, k,
                              (long long)e->shape[k]);
                goto out;
            }
            if (__builtin_mul_overflow(numel, (uint64_t)e->shape[k], &numel) || numel > (uint64_t)INT64_MAX / 8) {
                vlp_set_error("%s: tensor '" NAME_FMT "': shape product overflows", P, e->name);
                goto out;
            }
        }
        items[i].numel = numel;
        items[i].nbytes = numel * dtypes[e->store_as].size;
        if (numel && !e->data) {
            vlp_set_error("%s: tensor '" NAME_FMT "': data is NULL", P, e->name);
            goto out;
        }
    }
    qsort(by_name, (size_t)n, sizeof *by_name, cmp_save_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(by_name[i - 1]->e->name, by_name[i]->e->name)) {
            vlp_set_error("%s: duplicate tensor name '" NAME_FMT "'", P, by_name[i]->e->name);
            goto out;
        }
    qsort(items, (size_t)n, sizeof *items, cmp_save_layout);

    /* Header: "__metadata__" first, then tensors in layout order (jansson keeps insertion order). */
    if (meta_kv && meta_kv[0]) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            vlp_set_error("%s: out of memory", P);
            rc = VLP_ERR_NOMEM;
            goto out;
        }
        for (int k = 0; meta_kv[k]; k += 2) {
            const char *key = meta_kv[k], *val = meta_kv[k + 1];
            if (!val) {
                vlp_set_error("%s: metadata key '" NAME_FMT "' has no value (odd-length meta_kv)", P, key);
                goto out;
            }
            if (json_object_get(m, key)) {
                vlp_set_error("%s: duplicate metadata key '" NAME_FMT "'", P, key);
                goto out;
            }
            json_t *s = json_string(val);
            if (!s || json_object_set_new(m, key, s)) {
                vlp_set_error("%s: metadata entry '" NAME_FMT "' is not valid UTF-8", P, key);
                goto out;
            }
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const vlp_st_entry *e = items[i].e;
        uint64_t end;
        if (__builtin_add_overflow(off, items[i].nbytes, &end) || end > (uint64_t)INT64_MAX) {
            vlp_set_error("%s: total data size overflows", P);
            goto out;
        }
        json_t *shape = json_array(), *info = NULL;
        int bad = !shape;
        for (int k = 0; !bad && k < e->ndim; k++) bad = json_array_append_new(shape, json_integer(e->shape[k]));
        if (bad) {
            json_decref(shape);
        } else { /* "o" steals shape, also on failure */
            info = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtypes[e->store_as].name, "shape", shape,
                             "data_offsets", (json_int_t)off, (json_int_t)end);
        }
        if (!info) {
            vlp_set_error("%s: out of memory", P);
            rc = VLP_ERR_NOMEM;
            goto out;
        }
        if (json_object_set_new(root, e->name, info)) {
            vlp_set_error("%s: tensor name '" NAME_FMT "' is not valid UTF-8", P, e->name);
            goto out;
        }
        off = end;
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        vlp_set_error("%s: cannot encode the header", P);
        rc = VLP_ERR_NOMEM;
        goto out;
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    if (padded > VLP_ST_MAX_HEADER) {
        vlp_set_error("%s: header of %zu bytes exceeds the %llu-byte limit readers accept", P, padded,
                      VLP_ST_MAX_HEADER);
        goto out;
    }
    size_t bufsz = 1 << 16;
    buf = malloc(bufsz);
    size_t tlen = strlen(path) + 48;
    tmp = malloc(tlen);
    dir = dir_of(path);
    if (!buf || !tmp || !dir) {
        vlp_set_error("%s: out of memory", P);
        rc = VLP_ERR_NOMEM;
        goto out;
    }

    /* Temporary file next to the target (same filesystem, so rename is atomic). */
    rc = VLP_ERR_IO;
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    for (int tries = 0; (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0; tries++) {
        if (errno != EEXIST || tries >= 100) {
            vlp_set_error("%s: cannot create temporary file %s: %s", P, strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp, strerror(errno));
            goto out;
        }
        /* Another thread of this process is saving the same path, or a stale file. */
        snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1) + 1);
    }
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) (void)fchmod(fd, old.st_mode & 07777); /* keep its permissions */
    const char *tmpname = strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp;
    unsigned char len8[8];
    for (int b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    int werr = write_all(fd, len8, 8) || write_all(fd, hdr, hlen);
    if (!werr && padded > hlen) werr = write_all(fd, "        ", padded - hlen);
    for (int i = 0; !werr && i < n; i++) werr = write_tensor(fd, &items[i], buf, bufsz);
    if (werr) {
        vlp_set_error("%s: write to %.120s failed: %s", P, tmpname, strerror(errno));
        goto out_unlink;
    }
    if (fsync(fd)) {
        vlp_set_error("%s: fsync of %.120s failed: %s", P, tmpname, strerror(errno));
        goto out_unlink;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd)) {
        vlp_set_error("%s: close of %.120s failed: %s", P, tmpname, strerror(errno));
        goto out_unlink;
    }
    if (rename(tmp, path)) {
        vlp_set_error("%s: cannot rename %.120s over it: %s", P, tmpname, strerror(errno));
        goto out_unlink;
    }
    /* Make the rename durable. Filesystems that cannot fsync a directory say EINVAL. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int r = fsync(dfd), err = errno;
        close(dfd);
        if (r && err != EINVAL && err != ENOTSUP && err != EROFS) {
            vlp_set_error("%s: written and renamed, but fsync of its directory failed: %s", P, strerror(err));
            goto out;
        }
    }
    rc = VLP_OK;
    goto out;
out_unlink:
    if (fd >= 0) close(fd);
    fd = -1;
    unlink(tmp);
out:
    if (fd >= 0) close(fd);
    json_decref(root);
    free(hdr);
    free(items);
    free(by_name);
    free(buf);
    free(tmp);
    free(dir);
    return rc;
}
