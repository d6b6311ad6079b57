/* Image decoding: PNG (libpng), JPEG (libjpeg-turbo), WebP (libwebp), GIF (giflib),
 * BMP (stb_image). Images keep the mode Pillow 9.4 opens them in; see vlp_image.h.
 * Library error handlers never print and never exit: libpng and libjpeg errors
 * longjmp back here and become a vlp error naming the file. */
#include "internal.h"
#include "vlp_image.h"

#include <errno.h>
#include <setjmp.h>

#include <gif_lib.h>
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

int vlp__bmp_info(const uint8_t *data, size_t size, int *w, int *h, int *comp);
uint8_t *vlp__bmp_decode(const uint8_t *data, size_t size, int *w, int *h, int *comp, const char **why);
void vlp__bmp_free(void *p);

#define NAME(n) ((n) ? (n) : "<memory>")

const char *vlp_image_format_name(vlp_image_format f) {
    switch (f) {
    case VLP_FMT_PNG: return "PNG";
    case VLP_FMT_JPEG: return "JPEG";
    case VLP_FMT_WEBP: return "WebP";
    case VLP_FMT_GIF: return "GIF";
    case VLP_FMT_BMP: return "BMP";
    default: return "unknown";
    }
}

const char *vlp_image_mode_name(vlp_image_mode m) {
    switch (m) {
    case VLP_IMG_L: return "L";
    case VLP_IMG_LA: return "LA";
    case VLP_IMG_RGB: return "RGB";
    case VLP_IMG_RGBA: return "RGBA";
    case VLP_IMG_P: return "P";
    case VLP_IMG_1: return "1";
    case VLP_IMG_CMYK: return "CMYK";
    default: return "?";
    }
}

vlp_image_format vlp_image_sniff(const void *data, size_t size) {
    const uint8_t *p = (const uint8_t *)data;
    if (!p) return VLP_FMT_UNKNOWN;
    if (size >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return VLP_FMT_PNG;
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return VLP_FMT_JPEG;
    if (size >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return VLP_FMT_WEBP;
    if (size >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return VLP_FMT_GIF;
    if (size >= 2 && p[0] == 'B' && p[1] == 'M') return VLP_FMT_BMP;
    return VLP_FMT_UNKNOWN;
}

static const char *guess_other(const uint8_t *p, size_t n) {
    if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return "TIFF";
    if (n >= 12 && !memcmp(p + 4, "ftyp", 4)) return "ISO media (HEIF/AVIF/MP4)";
    if (n >= 4 && !memcmp(p, "\0\0\1\0", 4)) return "ICO";
    if (n >= 4 && !memcmp(p, "8BPS", 4)) return "PSD";
    if (n >= 5 && !memcmp(p, "%PDF-", 5)) return "PDF";
    if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7') return "PNM";
    if (n >= 5 && (!memcmp(p, "<?xml", 5) || !memcmp(p, "<svg", 4))) return "SVG/XML";
    return NULL;
}

static void image_init(vlp_image *img, int w, int h, vlp_image_mode mode, vlp_image_format fmt) {
    memset(img, 0, sizeof *img);
    img->width = w;
    img->height = h;
    img->mode = mode;
    img->format = fmt;
    img->channels = mode == VLP_IMG_LA ? 2 : mode == VLP_IMG_RGB ? 3 : (mode == VLP_IMG_RGBA || mode == VLP_IMG_CMYK) ? 4 : 1;
    for (int i = 0; i < 256; i++) { /* Pillow's default palette: a grey ramp, opaque */
        img->palette[3 * i] = img->palette[3 * i + 1] = img->palette[3 * i + 2] = (uint8_t)i;
        img->palette_alpha[i] = 255;
    }
}

/* Checks the size against the limit before anything is allocated. */
static int check_size(const char *name, const char *fmt, uint64_t w, uint64_t h, const vlp_image_options *opt) {
    uint64_t maxp = opt && opt->max_pixels ? opt->max_pixels : VLP_IMAGE_DEFAULT_MAX_PIXELS;
    if (w == 0 || h == 0) {
        vlp_set_error("%s: %s image has an empty size (%llux%llu)", NAME(name), fmt, (unsigned long long)w,
                      (unsigned long long)h);
        return VLP_ERR_IO;
    }
    if (w > 0x7fffffff || h > 0x7fffffff || w * h > maxp) {
        vlp_set_error("%s: %s image of %llux%llu = %llu pixels exceeds the limit of %llu pixels "
                      "(possible decompression bomb; raise vlp_image_options.max_pixels to allow it)",
                      NAME(name), fmt, (unsigned long long)w, (unsigned long long)h,
                      (unsigned long long)(w * h), (unsigned long long)maxp);
        return VLP_ERR_IO;
    }
    return 0;
}

static int alloc_pixels(vlp_image *img, const char *name) {
    size_t n = (size_t)img->width * (size_t)img->height * (size_t)img->channels;
    img->pixels = (uint8_t *)malloc(n ? n : 1);
    if (!img->pixels) {
        vlp_set_error("%s: out of memory for a %dx%d image", NAME(name), img->width, img->height);
        return VLP_ERR_NOMEM;
    }
    return 0;
}

/* ---- PNG ------------------------------------------------------------------------------ */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
    vlp_image *img;
    png_bytep *rows;
} png_ctx;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    png_ctx *c = (png_ctx *)png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "truncated file (unexpected end of data)");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}
static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = (png_ctx *)png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static int decode_png(const uint8_t *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *img) {
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.size = size;
    c.img = img;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    if (!png) {
        vlp_set_error("%s: out of memory (libpng)", NAME(name));
        return VLP_ERR_NOMEM;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        vlp_set_error("%s: out of memory (libpng)", NAME(name));
        return VLP_ERR_NOMEM;
    }
    /* c lives in this frame and is only read after the longjmp: its members are not
     * register-cached locals, so they keep their values. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(c.rows);
        free(img->pixels);
        img->pixels = NULL;
        vlp_set_error("%s: corrupt or truncated PNG: %s", NAME(name), c.msg);
        return VLP_ERR_IO;
    }
#ifdef PNG_SKIP_sRGB_CHECK_PROFILE
    png_set_option(png, PNG_SKIP_sRGB_CHECK_PROFILE, PNG_OPTION_ON);
#endif
    png_set_read_fn(png, &c, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    int rc = check_size(name, "PNG", w, h, opt);
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    vlp_image_mode mode;
    switch (ctype) {
    case PNG_COLOR_TYPE_PALETTE: mode = VLP_IMG_P; break;
    case PNG_COLOR_TYPE_GRAY: mode = depth == 1 ? VLP_IMG_1 : VLP_IMG_L; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: mode = depth == 16 ? VLP_IMG_RGBA : VLP_IMG_LA; break; /* Pillow: "LA;16B" -> RGBA */
    case PNG_COLOR_TYPE_RGB: mode = VLP_IMG_RGB; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: mode = VLP_IMG_RGBA; break;
    default:
        png_destroy_read_struct(&png, &info, NULL);
        vlp_set_error("%s: PNG colour type %d is not valid", NAME(name), ctype);
        return VLP_ERR_IO;
    }
    image_init(img, (int)w, (int)h, mode, VLP_FMT_PNG);
    if (mode == VLP_IMG_P) {
        png_colorp pal = NULL;
        int npal = 0;
        if (png_get_PLTE(png, info, &pal, &npal) && pal) {
            if (npal > 256) npal = 256;
            for (int i = 0; i < npal; i++) {
                img->palette[3 * i] = pal[i].red;
                img->palette[3 * i + 1] = pal[i].green;
                img->palette[3 * i + 2] = pal[i].blue;
            }
            img->palette_size = npal;
        }
        png_bytep trans = NULL;
        int ntrans = 0;
        if (png_get_tRNS(png, info, &trans, &ntrans, NULL) && trans) {
            for (int i = 0; i < ntrans && i < 256; i++) {
                img->palette_alpha[i] = trans[i];
                if (trans[i] < 255) img->has_transparency = 1;
            }
        }
        if (depth < 8) png_set_packing(png); /* one index per byte */
    } else {
        /* Grey 1/2/4 bits scaled to 0..255 as Pillow's "1", "L;2", "L;4" unpackers do;
         * 16 bits: the high byte (Pillow's ";16B" unpackers). tRNS colour keys of grey
         * and RGB images are ignored, as convert("RGB") ignores them. */
        if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (depth == 16) png_set_strip_16(png);
        if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA && depth == 16) png_set_gray_to_rgb(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)img->channels) {
        png_destroy_read_struct(&png, &info, NULL);
        vlp_set_error("%s: PNG row layout not understood (%zu bytes per row for width %u)", NAME(name), rowbytes,
                      (unsigned)w);
        return VLP_ERR_IO;
    }
    rc = alloc_pixels(img, name);
    if (!rc) {
        c.rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
        if (!c.rows) {
            free(img->pixels);
            img->pixels = NULL;
            vlp_set_error("%s: out of memory", NAME(name));
            rc = VLP_ERR_NOMEM;
        }
    }
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    for (png_uint_32 y = 0; y < h; y++) c.rows[y] = img->pixels + (size_t)y * rowbytes;
    png_read_image(png, c.rows);
    /* Pillow does not require the chunks after the image data (IEND) to be intact. */
    png_destroy_read_struct(&png, &info, NULL);
    free(c.rows);
    return 0;
}

/* ---- JPEG ----------------------------------------------------------------------------- */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int eof;
} jpeg_err;

static void jpeg_on_error(j_common_ptr ci) {
    jpeg_err *e = (jpeg_err *)ci->err;
    ci->err->format_message(ci, e->msg);
    longjmp(e->jb, 1);
}
static void jpeg_on_message(j_common_ptr ci, int level) {
    jpeg_err *e = (jpeg_err *)ci->err;
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
}
static void jpeg_on_output(j_common_ptr ci) { (void)ci; }
static void jpeg_on_progress(j_common_ptr ci) {
    /* Progressive files with thousands of tiny scans take minutes: refuse them. */
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (ci->is_decompressor && d->input_scan_number > 1000) {
        jpeg_err *e = (jpeg_err *)ci->err;
        snprintf(e->msg, sizeof e->msg, "more than 1000 progressive scans");
        longjmp(e->jb, 1);
    }
}

typedef struct {
    struct jpeg_decompress_struct ci;
    jpeg_err err;
    struct jpeg_progress_mgr prog;
    JSAMPROW row;
} jpeg_ctx;

static int decode_jpeg(const uint8_t *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *img) {
    jpeg_ctx *c = (jpeg_ctx *)calloc(1, sizeof *c);
    if (!c) {
        vlp_set_error("%s: out of memory", NAME(name));
        return VLP_ERR_NOMEM;
    }
    c->ci.err = jpeg_std_error(&c->err.pub);
    c->err.pub.error_exit = jpeg_on_error;
    c->err.pub.emit_message = jpeg_on_message;
    c->err.pub.output_message = jpeg_on_output;
    if (setjmp(c->err.jb)) {
        jpeg_destroy_decompress(&c->ci);
        free(img->pixels);
        img->pixels = NULL;
        vlp_set_error("%s: corrupt JPEG: %s", NAME(name), c->err.msg);
        free(c);
        return VLP_ERR_IO;
    }
    jpeg_create_decompress(&c->ci);
    c->prog.progress_monitor = jpeg_on_progress;
    c->ci.progress = &c->prog;
    jpeg_mem_src(&c->ci, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&c->ci, TRUE);
    if (c->err.eof) {
        jpeg_destroy_decompress(&c->ci);
        free(c);
        vlp_set_error("%s: truncated JPEG (data ends inside the header)", NAME(name));
        return VLP_ERR_IO;
    }
    int rc = check_size(name, "JPEG", c->ci.image_width, c->ci.image_height, opt);
    if (rc) {
        jpeg_destroy_decompress(&c->ci);
        free(c);
        return rc;
    }
    vlp_image_mode mode;
    switch (c->ci.jpeg_color_space) {
    case JCS_GRAYSCALE: mode = VLP_IMG_L; c->ci.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: mode = VLP_IMG_CMYK; c->ci.out_color_space = JCS_CMYK; break;
    default: mode = VLP_IMG_RGB; c->ci.out_color_space = JCS_RGB; break;
    }
    image_init(img, (int)c->ci.image_width, (int)c->ci.image_height, mode, VLP_FMT_JPEG);
    jpeg_start_decompress(&c->ci);
    if ((int)c->ci.output_width != img->width || (int)c->ci.output_height != img->height ||
        c->ci.output_components != img->channels) {
        jpeg_destroy_decompress(&c->ci);
        free(c);
        vlp_set_error("%s: unexpected JPEG output layout", NAME(name));
        return VLP_ERR_IO;
    }
    rc = alloc_pixels(img, name);
    if (rc) {
        jpeg_destroy_decompress(&c->ci);
        free(c);
        return rc;
    }
    size_t stride = (size_t)img->width * img->channels;
    while (c->ci.output_scanline < c->ci.output_height && !c->err.eof) {
        c->row = img->pixels + (size_t)c->ci.output_scanline * stride;
        jpeg_read_scanlines(&c->ci, &c->row, 1);
    }
    int eof = c->err.eof;
    unsigned done = c->ci.output_scanline;
    jpeg_destroy_decompress(&c->ci); /* no finish: data after the last scanline is not needed */
    free(c);
    if (eof) {
        free(img->pixels);
        img->pixels = NULL;
        vlp_set_error("%s: truncated JPEG (data ends before the image is complete, near row %u of %d)", NAME(name),
                      done, img->height);
        return VLP_ERR_IO;
    }
    if (mode == VLP_IMG_CMYK) { /* Pillow reads CMYK JPEGs as "CMYK;I" (Adobe's inverted polarity) */
        size_t n = stride * img->height;
        for (size_t i = 0; i < n; i++) img->pixels[i] = (uint8_t)(255 - img->pixels[i]);
    }
    return 0;
}

/* ---- WebP ----------------------------------------------------------------------------- */
static const char *webp_status(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated file (not enough data)";
    default: return "unknown error";
    }
}

static int decode_webp(const uint8_t *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *img) {
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st != VP8_STATUS_OK) {
        vlp_set_error("%s: corrupt or truncated WebP: %s", NAME(name), webp_status(st));
        return VLP_ERR_IO;
    }
    if (f.has_animation) {
        vlp_set_error("%s: animated WebP is not supported", NAME(name));
        return VLP_ERR_IO;
    }
    int rc = check_size(name, "WebP", (uint64_t)(f.width > 0 ? f.width : 0), (uint64_t)(f.height > 0 ? f.height : 0), opt);
    if (rc) return rc;
    image_init(img, f.width, f.height, f.has_alpha ? VLP_IMG_RGBA : VLP_IMG_RGB, VLP_FMT_WEBP);
    if ((rc = alloc_pixels(img, name))) return rc;
    size_t stride = (size_t)img->width * img->channels, total = stride * img->height;
    uint8_t *r = f.has_alpha ? WebPDecodeRGBAInto(data, size, img->pixels, total, (int)stride)
                             : WebPDecodeRGBInto(data, size, img->pixels, total, (int)stride);
    if (!r) {
        free(img->pixels);
        img->pixels = NULL;
        WebPDecoderConfig cfg;
        const char *why = "corrupt or truncated data";
        if (WebPInitDecoderConfig(&cfg)) {
            cfg.output.colorspace = MODE_RGBA;
            st = WebPDecode(data, size, &cfg);
            if (st != VP8_STATUS_OK) why = webp_status(st);
            WebPFreeDecBuffer(&cfg.output);
        }
        vlp_set_error("%s: corrupt or truncated WebP: %s", NAME(name), why);
        return VLP_ERR_IO;
    }
    return 0;
}

/* ---- GIF ------------------------------------------------------------------------------ */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
} gif_mem;

static int gif_read_mem(GifFileType *g, GifByteType *out, int n) {
    gif_mem *m = (gif_mem *)g->UserData;
    if (n < 0) return 0;
    size_t k = (size_t)n;
    if (k > m->size - m->pos) k = m->size - m->pos;
    memcpy(out, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int gif_fail(const char *name, GifFileType *g, int err, const char *what) {
    const char *s = GifErrorString(err);
    vlp_set_error("%s: corrupt or truncated GIF: %s%s%s", NAME(name), what, s ? ": " : "", s ? s : "");
    if (g) DGifCloseFile(g, NULL);
    return VLP_ERR_IO;
}

/* Palette entries equal to a grey ramp: Pillow drops such a palette and opens mode L. */
static int gif_palette_needed(const ColorMapObject *cm) {
    for (int i = 0; i < cm->ColorCount; i++) {
        const GifColorType *e = &cm->Colors[i];
        if (!(e->Red == i && e->Green == i && e->Blue == i)) return 1;
    }
    return 0;
}

static int decode_gif(const uint8_t *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *img) {
    gif_mem m = {data, size, 0};
    int err = 0;
    GifFileType *g = DGifOpen(&m, gif_read_mem, &err);
    if (!g) return gif_fail(name, NULL, err, "header");
    int transparency = -1;
    uint8_t *line = NULL;
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) return gif_fail(name, g, g->Error, "record");
        if (rt == TERMINATE_RECORD_TYPE) {
            DGifCloseFile(g, NULL);
            vlp_set_error("%s: GIF has no image", NAME(name));
            return VLP_ERR_IO;
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = NULL;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) return gif_fail(name, g, g->Error, "extension");
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4) {
                transparency = (ext[1] & 1) ? ext[4] : -1;
            }
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) return gif_fail(name, g, g->Error, "extension");
            }
            continue;
        }
        if (rt != IMAGE_DESC_RECORD_TYPE) continue;
        if (DGifGetImageDesc(g) == GIF_ERROR) return gif_fail(name, g, g->Error, "image descriptor");
        GifImageDesc *d = &g->Image;
        int64_t x0 = d->Left, y0 = d->Top, fw = d->Width, fh = d->Height;
        /* Pillow grows the canvas to hold a first frame that reaches past the screen */
        int64_t cw = g->SWidth > x0 + fw ? g->SWidth : x0 + fw;
        int64_t ch = g->SHeight > y0 + fh ? g->SHeight : y0 + fh;
        int rc = check_size(name, "GIF", (uint64_t)cw, (uint64_t)ch, opt);
        if (rc) {
            DGifCloseFile(g, NULL);
            return rc;
        }
        const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
        int use_palette = cm && cm->Colors && gif_palette_needed(cm);
        image_init(img, (int)cw, (int)ch, use_palette ? VLP_IMG_P : VLP_IMG_L, VLP_FMT_GIF);
        if (use_palette) {
            int n = cm->ColorCount > 256 ? 256 : cm->ColorCount;
            for (int i = 0; i < n; i++) {
                img->palette[3 * i] = cm->Colors[i].Red;
                img->palette[3 * i + 1] = cm->Colors[i].Green;
                img->palette[3 * i + 2] = cm->Colors[i].Blue;
            }
            img->palette_size = n;
        }
        if (transparency >= 0) {
            img->palette_alpha[transparency] = 0;
            img->has_transparency = 1;
        }
        if ((rc = alloc_pixels(img, name))) {
            DGifCloseFile(g, NULL);
            return rc;
        }
        memset(img->pixels, transparency >= 0 ? transparency : 0, (size_t)cw * (size_t)ch);
        line = (uint8_t *)malloc((size_t)(fw > 0 ? fw : 1));
        if (!line) {
            DGifCloseFile(g, NULL);
            vlp_image_free(img);
            vlp_set_error("%s: out of memory", NAME(name));
            return VLP_ERR_NOMEM;
        }
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        int passes = d->Interlace ? 4 : 1;
        for (int p = 0; p < passes; p++) {
            int y = d->Interlace ? start[p] : 0, dy = d->Interlace ? step[p] : 1;
            for (; y < fh; y += dy) {
                if (fw > 0 && DGifGetLine(g, line, (int)fw) == GIF_ERROR) {
                    free(line);
                    vlp_image_free(img);
                    return gif_fail(name, g, g->Error, "image data");
                }
                memcpy(img->pixels + (size_t)(y0 + y) * (size_t)cw + (size_t)x0, line, (size_t)fw);
            }
        }
        free(line);
        DGifCloseFile(g, NULL);
        return 0;
    }
}

/* ---- BMP ------------------------------------------------------------------------------ */
static int decode_bmp(const uint8_t *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *img) {
    int w = 0, h = 0, comp = 0;
    if (!vlp__bmp_info(data, size, &w, &h, &comp)) {
        vlp_set_error("%s: corrupt or unsupported BMP header", NAME(name));
        return VLP_ERR_IO;
    }
    int rc = check_size(name, "BMP", (uint64_t)(w > 0 ? w : 0), (uint64_t)(h > 0 ? h : 0), opt);
    if (rc) return rc;
    /* stb_image reads past the end of a truncated file as zeros; Pillow refuses it. */
    if (size >= 30) {
        uint32_t off = data[10] | data[11] << 8 | data[12] << 16 | (uint32_t)data[13] << 24;
        uint32_t hsz = data[14] | data[15] << 8 | data[16] << 16 | (uint32_t)data[17] << 24;
        uint32_t bpp = hsz == 12 ? (uint32_t)(data[24] | data[25] << 8) : (uint32_t)(data[28] | data[29] << 8);
        uint32_t comp_ = hsz >= 40 && size >= 34 ? (data[30] | data[31] << 8 | data[32] << 16 | (uint32_t)data[33] << 24) : 0;
        if ((comp_ == 0 || comp_ == 3) && bpp > 0 && bpp <= 32) {
            uint64_t need = off + (((uint64_t)w * bpp + 31) / 32 * 4) * (uint64_t)h;
            if (need > size) {
                vlp_set_error("%s: truncated BMP (%zu bytes, the pixel data needs %llu)", NAME(name), size,
                              (unsigned long long)need);
                return VLP_ERR_IO;
            }
        }
    }
    const char *why = "unknown error";
    uint8_t *p = vlp__bmp_decode(data, size, &w, &h, &comp, &why);
    if (!p) {
        vlp_set_error("%s: corrupt or truncated BMP: %s", NAME(name), why ? why : "unknown error");
        return VLP_ERR_IO;
    }
    image_init(img, w, h, comp == 4 ? VLP_IMG_RGBA : VLP_IMG_RGB, VLP_FMT_BMP);
    if ((rc = alloc_pixels(img, name))) {
        vlp__bmp_free(p);
        return rc;
    }
    memcpy(img->pixels, p, (size_t)w * h * comp);
    vlp__bmp_free(p);
    return 0;
}

/* ---- entry points --------------------------------------------------------------------- */
int vlp_image_decode(const void *data, size_t size, const char *name, const vlp_image_options *opt, vlp_image *out) {
    if (!out) {
        vlp_set_error("vlp_image_decode: out is NULL");
        return VLP_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!data && size) {
        vlp_set_error("vlp_image_decode: data is NULL");
        return VLP_ERR_ARG;
    }
    if (size == 0) {
        vlp_set_error("%s: empty file (0 bytes)", NAME(name));
        return VLP_ERR_IO;
    }
    const uint8_t *p = (const uint8_t *)data;
    int rc;
    switch (vlp_image_sniff(p, size)) {
    case VLP_FMT_PNG: rc = decode_png(p, size, name, opt, out); break;
    case VLP_FMT_JPEG: rc = decode_jpeg(p, size, name, opt, out); break;
    case VLP_FMT_WEBP: rc = decode_webp(p, size, name, opt, out); break;
    case VLP_FMT_GIF: rc = decode_gif(p, size, name, opt, out); break;
    case VLP_FMT_BMP: rc = decode_bmp(p, size, name, opt, out); break;
    default: {
        const char *other = guess_other(p, size);
        if (other)
            vlp_set_error("%s: unsupported image format (%s); supported: PNG, JPEG, WebP, GIF, BMP", NAME(name), other);
        else
            vlp_set_error("%s: not a recognised image (unknown signature %02x %02x %02x %02x); supported: PNG, "
                          "JPEG, WebP, GIF, BMP",
                          NAME(name), p[0], size > 1 ? p[1] : 0, size > 2 ? p[2] : 0, size > 3 ? p[3] : 0);
        return VLP_ERR_IO;
    }
    }
    if (rc) {
        free(out->pixels);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int vlp_image_load(const char *path, const vlp_image_options *opt, vlp_image *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) {
        vlp_set_error("vlp_image_load: %s is NULL", path ? "out" : "path");
        return VLP_ERR_ARG;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("%s: cannot open: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = (uint8_t *)realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                vlp_set_error("%s: out of memory reading the file", path);
                return VLP_ERR_NOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        vlp_set_error("%s: read error", path);
        return VLP_ERR_IO;
    }
    int rc = vlp_image_decode(buf, n, path, opt, out);
    free(buf);
    return rc;
}

void vlp_image_free(vlp_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}
