/* NumPy .npy reader and writer (format 1.0/2.0/3.0, little-endian, C order).
 * Reads float32, int32 and int64 (narrowed to int32 with a range check), and
 * float64 (narrowed to float32), since fixtures come in all of these. */
#include "internal.h"

#include <errno.h>
#include <limits.h>

static int fail(const char *path, const char *what) {
    vlp_set_error("%s: %s", path, what);
    return VLP_ERR_IO;
}

/* Finds `'key':` in the header dict and returns a pointer just past the colon. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

int vlp_npy_load(const char *path, vlp_dtype *dtype, int *ndim, int64_t *shape, void **out) {
    if (!path || !dtype || !ndim || !shape || !out) {
        vlp_set_error("vlp_npy_load: NULL argument");
        return VLP_ERR_ARG;
    }
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("%s: cannot open: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    unsigned char pre[12];
    int rc = VLP_OK;
    char *hdr = NULL;
    void *buf = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        rc = fail(path, "not a .npy file (bad magic)");
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            rc = fail(path, "truncated header");
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        rc = fail(path, "unsupported .npy version");
        goto done;
    }
    if (hlen > (1u << 20)) {
        rc = fail(path, "header too long");
        goto done;
    }
    hdr = vlp_malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
        rc = fail(path, "truncated header");
        goto done;
    }
    hdr[hlen] = 0;
    const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *sh = dict_value(hdr, "shape");
    if (!d || !fo || !sh) {
        rc = fail(path, "header lacks descr, fortran_order or shape");
        goto done;
    }
    int src_kind; /* 0 f4, 1 i4, 2 i8, 3 f8 */
    if (!strncmp(d, "'<f4'", 5))
        src_kind = 0;
    else if (!strncmp(d, "'<i4'", 5))
        src_kind = 1;
    else if (!strncmp(d, "'<i8'", 5))
        src_kind = 2;
    else if (!strncmp(d, "'<f8'", 5))
        src_kind = 3;
    else {
        rc = fail(path, "unsupported dtype (want <f4, <f8, <i4 or <i8)");
        goto done;
    }
    int fortran = !strncmp(fo, "True", 4);
    if (!fortran && strncmp(fo, "False", 5)) {
        rc = fail(path, "malformed fortran_order");
        goto done;
    }
    if (*sh != '(') {
        rc = fail(path, "malformed shape");
        goto done;
    }
    sh++;
    int nd = 0;
    int64_t numel = 1;
    while (1) {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(sh, &end, 10);
        if (end == sh || errno || v < 0 || nd == VLP_MAX_DIMS || (v && numel > INT64_MAX / 16 / v)) {
            rc = fail(path, nd == VLP_MAX_DIMS ? "too many dims" : "malformed shape");
            goto done;
        }
        shape[nd++] = v;
        numel *= v;
        sh = end;
    }
    size_t esz = src_kind >= 2 ? 8 : 4;
    buf = vlp_malloc((size_t)numel * esz + 1);
    if (!buf) {
        rc = fail(path, "out of memory");
        goto done;
    }
    if (fread(buf, esz, (size_t)numel, f) != (size_t)numel) {
        rc = fail(path, "truncated data");
        goto done;
    }
    if (src_kind == 2) { /* int64 -> int32 */
        int64_t *s64 = buf;
        int32_t *d32 = buf;
        for (int64_t i = 0; i < numel; i++) {
            if (s64[i] < INT32_MIN || s64[i] > INT32_MAX) {
                rc = fail(path, "int64 value does not fit int32");
                goto done;
            }
            d32[i] = (int32_t)s64[i];
        }
    } else if (src_kind == 3) { /* float64 -> float32 */
        double *s64 = buf;
        float *d32 = buf;
        for (int64_t i = 0; i < numel; i++) d32[i] = (float)s64[i];
    }
    if (fortran && nd > 1) { /* column-major (e.g. a saved transpose): reorder to row-major */
        uint32_t *src = (uint32_t *)buf, *dst = vlp_malloc((size_t)numel * 4 + 1);
        if (!dst) {
            rc = fail(path, "out of memory");
            goto done;
        }
        int64_t idx[VLP_MAX_DIMS] = {0};
        for (int64_t c = 0; c < numel; c++) { /* c walks row-major; find the column-major offset */
            int64_t f = 0, st = 1;
            for (int k = 0; k < nd; k++) {
                f += idx[k] * st;
                st *= shape[k];
            }
            dst[c] = src[f];
            for (int k = nd - 1; k >= 0 && ++idx[k] == shape[k]; k--) idx[k] = 0;
        }
        vlp_free(buf);
        buf = dst;
    }
    *dtype = (src_kind == 1 || src_kind == 2) ? VLP_I32 : VLP_F32;
    *ndim = nd;
    *out = buf;
    buf = NULL;
done:
    vlp_free(buf);
    vlp_free(hdr);
    fclose(f);
    return rc;
}

int vlp_npy_save(const char *path, vlp_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    if (!path || (ndim && !shape) || !data || ndim < 0 || ndim > VLP_MAX_DIMS) {
        vlp_set_error("vlp_npy_save: bad argument");
        return VLP_ERR_ARG;
    }
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == VLP_I32 ? "<i4" : "<f4");
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        numel *= shape[i];
    }
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "), }");
    int total = 10 + k + 1;
    int pad = (64 - total % 64) % 64;
    for (int i = 0; i < pad; i++) hdr[k++] = ' ';
    hdr[k++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) {
        vlp_set_error("%s: cannot create: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)k, f) == (size_t)k &&
             fwrite(data, 4, (size_t)numel, f) == (size_t)numel;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        vlp_set_error("%s: write failed", path);
        return VLP_ERR_IO;
    }
    return VLP_OK;
}
