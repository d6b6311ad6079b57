/* vlp image decoding and CLIP preprocessing.
 *
 * Decoders (the format is sniffed from the magic bytes, never the file name):
 *   PNG  (libpng)          every colour type and bit depth, interlaced, palette + tRNS
 *   JPEG (libjpeg-turbo)   default decompression (islow IDCT, fancy upsampling), like Pillow;
 *                          EXIF orientation is NOT applied (Pillow does not by default)
 *   WebP (libwebp)         lossy, lossless, with alpha; animated WebP is refused
 *   GIF  (giflib)          first frame, palette mode P with its transparent index
 *   BMP  (stb_image)       decoded to RGB (or RGBA when the file has alpha)
 *
 * Images keep the mode Pillow 9.4 opens them in (P with its palette, 1, L, LA, RGB,
 * RGBA, CMYK), because the CLIP transform resizes in that mode (P and 1: nearest
 * neighbour on the stored values; RGBA and LA: premultiplied) and converts to RGB
 * only after the crop. vlp_image_preprocess() reproduces
 * clip.clip._transform(n) (torchvision Resize(n, BICUBIC) + CenterCrop(n) +
 * convert("RGB") + ToTensor + Normalize) with Pillow 9.4's integer arithmetic.
 *
 * Differences from Pillow 9.4, on purpose:
 *   - 16-bit greyscale PNG: Pillow opens it as mode "I" and convert("RGB") clips
 *     every value above 255 to white; vlp keeps the high byte (mode L), like the
 *     16-bit RGB/RGBA/LA PNGs (where Pillow also keeps the high byte).
 *   - BMP: decoded by stb_image to RGB/RGBA; Pillow keeps palette BMPs in mode P
 *     (nearest-neighbour resize) and reads 32-bit BI_RGB BMPs as RGB (stb_image: RGBA
 *     unless every alpha byte is 0). 24-bit BMPs match Pillow.
 *   - Animated WebP is refused (Pillow decodes the first frame with libwebpdemux).
 * As Pillow does: 16-bit grey+alpha PNG opens as RGBA; 1-bit grey PNG as mode 1 (nearest
 * resize); 2/4-bit grey as L; a GIF whose palette is the grey ramp as L; CMYK/YCCK JPEG as
 * CMYK with Adobe's inverted polarity, converted to RGB with Pillow's cmyk2rgb; tRNS colour
 * keys of grey/RGB PNGs are ignored; a GIF's first frame is placed on a canvas of index
 * (transparency or 0), grown to hold a frame that reaches past the logical screen.
 *
 * Errors: functions return 0 or a negative vlp_status with the message (naming the
 * file and the problem) in vlp_last_error(); nothing is printed.
 */
#ifndef VLP_IMAGE_H
#define VLP_IMAGE_H

#include "vlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    VLP_IMG_L = 1,    /* 8-bit grey, 1 byte per pixel */
    VLP_IMG_LA = 2,   /* grey + alpha, 2 bytes */
    VLP_IMG_RGB = 3,  /* 3 bytes */
    VLP_IMG_RGBA = 4, /* 4 bytes, straight (not premultiplied) alpha */
    VLP_IMG_P = 5,    /* palette indices, 1 byte; palette[] and palette_alpha[] */
    VLP_IMG_1 = 6,    /* bilevel (1-bit grey PNG), 1 byte per pixel, values 0 or 255 */
    VLP_IMG_CMYK = 7, /* CMYK JPEG, 4 bytes (C, M, Y, K; 255 = full ink) */
} vlp_image_mode;

typedef enum {
    VLP_FMT_UNKNOWN = 0,
    VLP_FMT_PNG,
    VLP_FMT_JPEG,
    VLP_FMT_WEBP,
    VLP_FMT_GIF,
    VLP_FMT_BMP,
} vlp_image_format;

/* Pillow raises DecompressionBombError above 2 x 89,478,485 pixels; so does vlp. */
#define VLP_IMAGE_DEFAULT_MAX_PIXELS 178956970ull

typedef struct {
    /* Refuse images with more pixels than this, checked from the header before any
     * pixel buffer is allocated. 0: VLP_IMAGE_DEFAULT_MAX_PIXELS. */
    uint64_t max_pixels;
} vlp_image_options;

typedef struct {
    int width, height;
    int channels;          /* bytes per pixel in pixels[] (see vlp_image_mode) */
    vlp_image_mode mode;
    vlp_image_format format;
    uint8_t *pixels;       /* height * width * channels, row-major, malloc'd */
    /* Mode P: 256 RGB entries. Entries past palette_size are Pillow's grey ramp (i, i, i). */
    uint8_t palette[256 * 3];
    int palette_size;
    /* Mode P: per-index alpha (255 unless the file marks the index transparent). */
    uint8_t palette_alpha[256];
    int has_transparency;  /* P: some palette_alpha < 255 */
} vlp_image;

/* Identifies the format from the first bytes (at least 12 are needed for WebP). */
vlp_image_format vlp_image_sniff(const void *data, size_t size);
const char *vlp_image_format_name(vlp_image_format f);
const char *vlp_image_mode_name(vlp_image_mode m);

/* Decodes an image held in memory. name_for_errors (may be NULL) names it in messages.
 * opt may be NULL (defaults). On error *out is zeroed. */
int vlp_image_decode(const void *data, size_t size, const char *name_for_errors,
                     const vlp_image_options *opt, vlp_image *out);
/* Reads and decodes a file. */
int vlp_image_load(const char *path, const vlp_image_options *opt, vlp_image *out);
void vlp_image_free(vlp_image *img);

/* Pillow's convert("RGB") (composite_white = 0: alpha and transparency dropped) or
 * alpha composited over white (composite_white = 1) into out[h*w*3]. */
int vlp_image_to_rgb(const vlp_image *img, int composite_white, uint8_t *out);
/* Pillow's convert("RGBA") into out[h*w*4] (P: palette_alpha; no alpha: 255). */
int vlp_image_to_rgba(const vlp_image *img, uint8_t *out);

typedef struct {
    int size;             /* n: shorter side resized to n, then an n x n centre crop */
    float mean[3], std[3];
    int composite_white;  /* 1: composite alpha over white instead of dropping it */
} vlp_preprocess_config;

/* CLIP's transform at resolution n: OpenAI mean/std, alpha dropped. */
vlp_preprocess_config vlp_preprocess_clip(int size);

/* clip.clip._transform(cfg->size) of img into out[3][size][size] (CHW, float32). */
int vlp_image_preprocess(const vlp_image *img, const vlp_preprocess_config *cfg, float *out);

/* The resize + centre crop alone, in the image's own mode: *out gets a size x size
 * image of img's mode (palette copied). Exposed for tests and other transforms. */
int vlp_image_resize_crop(const vlp_image *img, int size, vlp_image *out);

#ifdef __cplusplus
}
#endif
#endif
