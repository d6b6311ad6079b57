/* RGB PNG files for the emoji builders. A tiny encoder instead of libpng: the builders
 * write tens of thousands of small files, and libpng sets up (and frees) a fresh deflate
 * state per file, which glibc hands back to the kernel each time (~40k brk calls and as
 * much system time as encoding). Here each thread keeps one z_stream and resets it.
 * Every row uses the Paeth filter; deflate level 3 (measured: about half the time of
 * libpng's defaults on the 3x3 canvases, files ~8% larger). vlp_image_decode (libpng)
 * reads the files back in the tests. */
#include "emoji_internal.h"
#include "internal.h"

#include <errno.h>
#include <unistd.h>
#include <zlib.h>

struct emoji_png_enc {
    z_stream z;
    int ready;
    uint8_t *filt, *out;
    size_t filt_cap, out_cap;
};

emoji_png_enc *emoji_png_enc_new(void) {
    emoji_png_enc *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    if (deflateInit2(&e->z, 3, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(e);
        return NULL;
    }
    e->ready = 1;
    return e;
}

void emoji_png_enc_free(emoji_png_enc *e) {
    if (!e) return;
    if (e->ready) deflateEnd(&e->z);
    free(e->filt), free(e->out);
    free(e);
}

static int grow(uint8_t **p, size_t *cap, size_t n) {
    if (*cap >= n) return 0;
    uint8_t *q = realloc(*p, n);
    if (!q) return -1;
    *p = q, *cap = n;
    return 0;
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A chunk: length, type, data (already at p + 8), CRC over type and data. */
static size_t chunk(uint8_t *p, const char *type, size_t n) {
    be32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    be32(p + 8 + n, (uint32_t)crc32(crc32(0, Z_NULL, 0), p + 4, (uInt)(n + 4)));
    return n + 12;
}

static uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

static int encode(emoji_png_enc *e, int w, int h, const uint8_t *rgb, size_t *len) {
    size_t stride = (size_t)w * 3, raw = (size_t)h * (stride + 1);
    if (grow(&e->filt, &e->filt_cap, raw)) return VLP_ERR_NOMEM;
    for (int y = 0; y < h; y++) {
        const uint8_t *cur = rgb + (size_t)y * stride, *up = y ? cur - stride : NULL;
        uint8_t *d = e->filt + (size_t)y * (stride + 1);
        *d++ = 4; /* Paeth */
        for (size_t x = 0; x < stride; x++) {
            int a = x >= 3 ? cur[x - 3] : 0, b = up ? up[x] : 0, c = up && x >= 3 ? up[x - 3] : 0;
            d[x] = (uint8_t)(cur[x] - paeth(a, b, c));
        }
    }
    size_t bound = deflateBound(&e->z, (uLong)raw);
    if (grow(&e->out, &e->out_cap, bound + 8 + 25 + 12 + 12)) return VLP_ERR_NOMEM;
    uint8_t *o = e->out;
    memcpy(o, "\x89PNG\r\n\x1a\n", 8);
    size_t pos = 8;
    uint8_t *ih = o + pos + 8;
    be32(ih, (uint32_t)w), be32(ih + 4, (uint32_t)h);
    ih[8] = 8, ih[9] = 2, ih[10] = 0, ih[11] = 0, ih[12] = 0; /* 8-bit RGB, no interlace */
    pos += chunk(o + pos, "IHDR", 13);
    if (deflateReset(&e->z) != Z_OK) return VLP_ERR_STATE;
    e->z.next_in = e->filt;
    e->z.avail_in = (uInt)raw;
    e->z.next_out = o + pos + 8;
    e->z.avail_out = (uInt)bound;
    if (deflate(&e->z, Z_FINISH) != Z_STREAM_END) return VLP_ERR_STATE;
    pos += chunk(o + pos, "IDAT", e->z.total_out);
    pos += chunk(o + pos, "IEND", 0);
    *len = pos;
    return 0;
}

int emoji_write_png_rgb(emoji_png_enc *enc, const char *path, int w, int h, const uint8_t *rgb) {
    emoji_png_enc *own = enc ? NULL : emoji_png_enc_new();
    emoji_png_enc *e = enc ? enc : own;
    size_t n = 0;
    int rc = e ? encode(e, w, h, rgb, &n) : VLP_ERR_NOMEM;
    if (rc)
        vlp_set_error("%s: PNG encoding failed (%s)", path, rc == VLP_ERR_NOMEM ? "out of memory" : "zlib");
    else
        rc = emoji_write_atomic(path, e->out, n);
    emoji_png_enc_free(own);
    return rc;
}
