/* Image decoding and CLIP preprocessing against Pillow 9.4 + torchvision:
 * - every CLIP fixture image (tests/fixtures/clip/images): decoded pixels, RGBA, and
 *   clip.clip._transform(224 / 64) outputs;
 * - tests/fixtures/images (tests/tools/gen_image_fixtures.py): PNG of every colour type
 *   and depth, interlaced, palettes with tRNS, grey/CMYK/progressive JPEG, WebP lossy,
 *   lossless and with alpha, GIF (palette, transparency, interlaced, grey), BMP;
 * - errors: truncated PNG/JPEG/GIF/WebP, garbage, empty, missing, TIFF, a decompression bomb. */
#include "test.h"
#include "vlp_image.h"

#include <string.h>
#include <time.h>

/* Minimal .npy reader for uint8 and float32 (vlp_npy_load has no uint8). */
static void *load_npy(const char *path, char want /* 'u' or 'f' */, int *ndim, int64_t shape[4]) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        fclose(f);
        return NULL;
    }
    size_t hl = pre[8] | (pre[9] << 8);
    if (pre[6] >= 2) { /* 4-byte header length */
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) { fclose(f); return NULL; }
        hl = pre[8] | (pre[9] << 8) | (b[0] << 16) | ((size_t)b[1] << 24);
    }
    char *h = calloc(1, hl + 1);
    if (fread(h, 1, hl, f) != hl) { free(h); fclose(f); return NULL; }
    const char *descr = want == 'u' ? "'|u1'" : "'<f4'";
    if (!strstr(h, descr) || strstr(h, "'fortran_order': True")) { free(h); fclose(f); return NULL; }
    const char *s = strstr(h, "'shape': (");
    *ndim = 0;
    int64_t n = 1;
    if (s) {
        s += 10;
        while (*s && *s != ')' && *ndim < 4) {
            char *e;
            long long v = strtoll(s, &e, 10);
            if (e == s) break;
            shape[(*ndim)++] = v;
            n *= v;
            s = e;
            while (*s == ',' || *s == ' ') s++;
        }
    }
    free(h);
    size_t bytes = (size_t)n * (want == 'u' ? 1 : 4);
    void *d = malloc(bytes ? bytes : 1);
    if (fread(d, 1, bytes, f) != bytes) { free(d); d = NULL; }
    fclose(f);
    return d;
}

static const float MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Compares decoded pixels (conv = 3: RGB, 4: RGBA) with NAME.rgb/.rgba.npy; returns max diff or -1. */
static int compare_pixels(const vlp_image *img, const char *npy, int conv) {
    int nd = 0;
    int64_t sh[4];
    uint8_t *ref = load_npy(npy, 'u', &nd, sh);
    CHECK(ref != NULL, "cannot read %s", npy);
    if (!ref) return -1;
    CHECK(nd == 3 && sh[0] == img->height && sh[1] == img->width && sh[2] == conv, "%s: shape mismatch", npy);
    if (!(nd == 3 && sh[0] == img->height && sh[1] == img->width && sh[2] == conv)) {
        free(ref);
        return -1;
    }
    size_t n = (size_t)img->width * img->height * conv;
    uint8_t *got = malloc(n);
    int rc = conv == 3 ? vlp_image_to_rgb(img, 0, got) : vlp_image_to_rgba(img, got);
    CHECK(rc == 0, "convert: %s", vlp_last_error());
    int maxd = 0;
    size_t ndiff = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        if (d > maxd) maxd = d;
        ndiff += d != 0;
    }
    free(got);
    free(ref);
    return maxd;
}

/* Preprocess at n and compare with npy: returns max |diff| x std (un-normalised units), and
 * the number of elements that are not bit-identical in *nexact_diff. */
static double compare_pre(const vlp_image *img, int n, const char *npy, size_t *ndiff) {
    int nd = 0;
    int64_t sh[4];
    float *ref = load_npy(npy, 'f', &nd, sh);
    CHECK(ref != NULL, "cannot read %s", npy);
    if (!ref) return 1e9;
    CHECK(nd == 3 && sh[0] == 3 && sh[1] == n && sh[2] == n, "%s: shape", npy);
    float *got = malloc(sizeof(float) * 3 * n * n);
    vlp_preprocess_config cfg = vlp_preprocess_clip(n);
    int rc = vlp_image_preprocess(img, &cfg, got);
    CHECK(rc == 0, "preprocess %s: %s", npy, vlp_last_error());
    double maxd = 0;
    *ndiff = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < n * n; i++) {
            size_t k = (size_t)c * n * n + i;
            double d = fabs((double)got[k] - (double)ref[k]) * STD[c];
            if (d > maxd) maxd = d;
            if (memcmp(&got[k], &ref[k], 4)) (*ndiff)++;
        }
    free(got);
    free(ref);
    return maxd;
}

static void test_clip_fixtures(void) {
    static const char *names[] = {"astronaut.png", "coffee.jpg", "chelsea_p.png", "coins.png",
                                  "emoji_dog.png", "small.png",  "tall.png"};
    static const vlp_image_mode modes[] = {VLP_IMG_RGB, VLP_IMG_RGB,  VLP_IMG_P,  VLP_IMG_L,
                                           VLP_IMG_RGBA, VLP_IMG_RGB, VLP_IMG_RGB};
    printf("CLIP fixtures (max diff: decoded /255; pre x std x 255; non-identical elements)\n");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512], npy[600];
        snprintf(path, sizeof path, FIXTURE("clip/images/%s"), names[i]);
        vlp_image img;
        int rc = vlp_image_load(path, NULL, &img);
        CHECK(rc == 0, "load %s: %s", path, vlp_last_error());
        if (rc) continue;
        CHECK(img.mode == modes[i], "%s: mode %s", names[i], vlp_image_mode_name(img.mode));
        snprintf(npy, sizeof npy, "%s.rgb.npy", path);
        int drgb = compare_pixels(&img, npy, 3);
        int is_jpeg = strstr(names[i], ".jpg") != NULL;
        CHECK(drgb >= 0 && drgb <= (is_jpeg ? 2 : 0), "%s: decoded max diff %d", names[i], drgb);
        CHECK(drgb == 0, "%s: decoded pixels not identical (max diff %d)", names[i], drgb);
        int drgba = -2;
        if (img.mode == VLP_IMG_RGBA) {
            snprintf(npy, sizeof npy, "%s.rgba.npy", path);
            drgba = compare_pixels(&img, npy, 4);
            CHECK(drgba == 0, "%s: rgba max diff %d", names[i], drgba);
        }
        size_t nd224 = 0, nd64 = 0;
        snprintf(npy, sizeof npy, "%s.pre224.npy", path);
        double d224 = compare_pre(&img, 224, npy, &nd224);
        snprintf(npy, sizeof npy, "%s.pre64.npy", path);
        double d64 = compare_pre(&img, 64, npy, &nd64);
        CHECK(d224 <= 2.0 / 255 + 1e-7 && d64 <= 2.0 / 255 + 1e-7, "%s: pre224 %.3g pre64 %.3g (x255)", names[i],
              d224 * 255, d64 * 255);
        CHECK(nd224 == 0 && nd64 == 0, "%s: not bit-exact: %zu (224) %zu (64) elements differ", names[i], nd224, nd64);
        printf("  %-14s %-4s %3dx%-3d decoded %d%s  pre224 %.3g (%zu)  pre64 %.3g (%zu)\n", names[i],
               vlp_image_mode_name(img.mode), img.width, img.height, drgb, drgba >= 0 ? (drgba ? " rgba!" : " rgba 0") : "",
               d224 * 255, nd224, d64 * 255, nd64);
        vlp_image_free(&img);
    }
}

static vlp_image_mode mode_from(const char *s) {
    static const char *names[] = {"", "L", "LA", "RGB", "RGBA", "P", "1", "CMYK"};
    for (int i = 1; i < 8; i++)
        if (!strcmp(s, names[i])) return (vlp_image_mode)i;
    return (vlp_image_mode)0;
}

static void test_own_fixtures(void) {
    FILE *f = fopen(FIXTURE("images/manifest.txt"), "r");
    CHECK(f != NULL, "missing tests/fixtures/images/manifest.txt");
    if (!f) return;
    printf("format fixtures (tests/fixtures/images)\n");
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char name[128], mode[16], checks[128];
        int w, h;
        if (sscanf(line, "%127s %15s %d %d %127s", name, mode, &w, &h, checks) != 5) continue;
        char path[512], npy[600];
        snprintf(path, sizeof path, FIXTURE("images/%s"), name);
        vlp_image img;
        int rc = vlp_image_load(path, NULL, &img);
        CHECK(rc == 0, "load %s: %s", path, vlp_last_error());
        if (rc) continue;
        count++;
        CHECK(img.mode == mode_from(mode) && img.width == w && img.height == h, "%s: got %s %dx%d, want %s %dx%d", name,
              vlp_image_mode_name(img.mode), img.width, img.height, mode, w, h);
        printf("  %-30s %-4s", name, vlp_image_mode_name(img.mode));
        char *save = NULL;
        for (char *c = strtok_r(checks, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
            if (!strcmp(c, "rgb") || !strcmp(c, "rgba")) {
                snprintf(npy, sizeof npy, "%s.%s.npy", path, c);
                int d = compare_pixels(&img, npy, c[3] ? 4 : 3);
                CHECK(d == 0, "%s: %s max diff %d", name, c, d);
                printf("  %s %d", c, d);
            } else if (!strncmp(c, "pre", 3)) {
                int n = atoi(c + 3);
                size_t nd = 0;
                snprintf(npy, sizeof npy, "%s.%s.npy", path, c);
                double d = compare_pre(&img, n, npy, &nd);
                CHECK(d <= 2.0 / 255 + 1e-7, "%s: %s max diff %.3g/255", name, c, d * 255);
                CHECK(nd == 0, "%s: %s not bit-exact (%zu elements, max %.3g/255)", name, c, nd, d * 255);
                printf("  %s %.3g (%zu)", c, d * 255, nd);
            }
        }
        printf("\n");
        vlp_image_free(&img);
    }
    fclose(f);
    CHECK(count >= 25, "only %d format fixtures", count);
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? sz : 1);
    *n = fread(b, 1, sz, f);
    fclose(f);
    return b;
}

static void expect_error(const void *data, size_t n, const char *name, const char *want_substr, const char *what) {
    vlp_image img;
    memset(&img, 0x55, sizeof img);
    int rc = vlp_image_decode(data, n, name, NULL, &img);
    const char *e = vlp_last_error();
    CHECK(rc != 0, "%s: decoding succeeded", what);
    CHECK(img.pixels == NULL, "%s: pixels left set on error", what);
    CHECK(strstr(e, name) != NULL, "%s: error does not name the file: %s", what, e);
    CHECK(strstr(e, want_substr) != NULL, "%s: error '%s' lacks '%s'", what, e, want_substr);
    printf("  %-28s -> %s\n", what, e);
}

/* PNG chunk CRC (for the hand-made bomb header). */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}
static void put32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (uint8_t)v;
}

static void test_errors(void) {
    printf("errors\n");
    size_t n = 0;
    uint8_t *png = read_file(FIXTURE("clip/images/small.png"), &n);
    CHECK(png != NULL, "read small.png");
    if (png) {
        expect_error(png, n / 2, "small.png", "truncated", "truncated PNG");
        expect_error(png, 30, "small.png", "PNG", "PNG cut in the header");
        uint8_t *bad = malloc(n);
        memcpy(bad, png, n);
        bad[n / 2] ^= 0xff; /* damages IDAT: CRC error */
        expect_error(bad, n, "small.png", "PNG", "corrupt PNG (CRC)");
        free(bad);
        free(png);
    }
    uint8_t *jpg = read_file(FIXTURE("clip/images/coffee.jpg"), &n);
    CHECK(jpg != NULL, "read coffee.jpg");
    if (jpg) {
        expect_error(jpg, n / 2, "coffee.jpg", "truncated", "truncated JPEG");
        expect_error(jpg, 100, "coffee.jpg", "JPEG", "JPEG cut in the header");
        free(jpg);
    }
    uint8_t *gif = read_file(FIXTURE("images/gif_p_noninterlaced.gif"), &n);
    if (gif) {
        expect_error(gif, n / 2, "x.gif", "GIF", "truncated GIF");
        free(gif);
    }
    uint8_t *webp = read_file(FIXTURE("images/webp_lossy.webp"), &n);
    if (webp) {
        expect_error(webp, n / 2, "x.webp", "WebP", "truncated WebP");
        free(webp);
    }
    uint8_t *bmp = read_file(FIXTURE("images/bmp_rgb24.bmp"), &n);
    if (bmp) {
        expect_error(bmp, n / 2, "x.bmp", "BMP", "truncated BMP");
        free(bmp);
    }
    uint8_t garbage[4096];
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof garbage; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        garbage[i] = (uint8_t)(s >> 56);
    }
    garbage[0] = 0x42; /* not a known signature */
    expect_error(garbage, sizeof garbage, "garbage.bin", "not a recognised image", "random garbage");
    expect_error("", 0, "empty.png", "empty", "empty file");
    static const uint8_t tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_error(tiff, sizeof tiff, "scan.tiff", "TIFF", "TIFF header");
    /* signature right, rest garbage */
    uint8_t fake[64];
    memcpy(fake, "\x89PNG\r\n\x1a\n", 8);
    memcpy(fake + 8, garbage, sizeof fake - 8);
    expect_error(fake, sizeof fake, "fake.png", "PNG", "PNG signature + garbage");
    memcpy(fake, "\xff\xd8\xff", 3);
    expect_error(fake, sizeof fake, "fake.jpg", "JPEG", "JPEG signature + garbage");
    memcpy(fake, "GIF89a", 6);
    expect_error(fake, sizeof fake, "fake.gif", "GIF", "GIF signature + garbage");
    memcpy(fake, "RIFF\x30\0\0\0WEBPVP8 ", 16);
    expect_error(fake, sizeof fake, "fake.webp", "WebP", "WebP signature + garbage");

    vlp_image img;
    int rc = vlp_image_load("tests/fixtures/images/does-not-exist.png", NULL, &img);
    CHECK(rc == VLP_ERR_IO && strstr(vlp_last_error(), "does-not-exist.png") && strstr(vlp_last_error(), "No such file"),
          "missing file: %d %s", rc, vlp_last_error());
    printf("  %-28s -> %s\n", "missing file", vlp_last_error());

    /* Decompression bomb: a valid IHDR claiming 100000 x 100000, no image data. Must be
     * refused from the header (no 10 GB allocation; ASan would also flag it). */
    uint8_t bomb[8 + 25 + 12 + 12];
    memcpy(bomb, "\x89PNG\r\n\x1a\n", 8);
    put32(bomb + 8, 13);
    memcpy(bomb + 12, "IHDR", 4);
    put32(bomb + 16, 100000);
    put32(bomb + 20, 100000);
    bomb[24] = 8, bomb[25] = 2, bomb[26] = 0, bomb[27] = 0, bomb[28] = 0;
    put32(bomb + 29, crc32_png(bomb + 12, 17));
    put32(bomb + 33, 0); /* an empty IDAT: the reader stops at the first IDAT */
    memcpy(bomb + 37, "IDAT", 4);
    put32(bomb + 41, crc32_png(bomb + 37, 4));
    put32(bomb + 45, 0);
    memcpy(bomb + 49, "IEND", 4);
    put32(bomb + 53, crc32_png(bomb + 49, 4));
    expect_error(bomb, sizeof bomb, "bomb.png", "decompression bomb", "PNG bomb 100000x100000");
    /* the limit is configurable: a 41x40 image refused at 1000 pixels, accepted at 1640 */
    vlp_image_options lim = {.max_pixels = 1000};
    rc = vlp_image_load(FIXTURE("clip/images/small.png"), &lim, &img);
    CHECK(rc != 0 && strstr(vlp_last_error(), "1640 pixels"), "max_pixels 1000: %s", vlp_last_error());
    lim.max_pixels = 1640;
    rc = vlp_image_load(FIXTURE("clip/images/small.png"), &lim, &img);
    CHECK(rc == 0, "max_pixels 1640: %s", vlp_last_error());
    vlp_image_free(&img);
    /* JPEG bomb: SOF claiming 65000x65000 (header only) */
    uint8_t jbomb[2 + 69 + 13 + 10], *q = jbomb;
    *q++ = 0xFF, *q++ = 0xD8;                                     /* SOI */
    *q++ = 0xFF, *q++ = 0xDB, *q++ = 0, *q++ = 67, *q++ = 0;      /* DQT, table 0 */
    for (int i = 0; i < 64; i++) *q++ = 1;
    *q++ = 0xFF, *q++ = 0xC0, *q++ = 0, *q++ = 11, *q++ = 8;      /* SOF0, 8 bits */
    *q++ = 0xFD, *q++ = 0xE8, *q++ = 0xFD, *q++ = 0xE8;           /* 65000 x 65000 */
    *q++ = 1, *q++ = 1, *q++ = 0x11, *q++ = 0;                    /* 1 component */
    *q++ = 0xFF, *q++ = 0xDA, *q++ = 0, *q++ = 8, *q++ = 1, *q++ = 1, *q++ = 0, *q++ = 0, *q++ = 63, *q++ = 0;
    expect_error(jbomb, (size_t)(q - jbomb), "bomb.jpg", "decompression bomb", "JPEG bomb 65000x65000");

    /* argument checks */
    rc = vlp_image_decode(NULL, 10, "x", NULL, &img);
    CHECK(rc == VLP_ERR_ARG, "NULL data accepted");
    float out[3 * 8 * 8];
    vlp_preprocess_config cfg = vlp_preprocess_clip(8);
    rc = vlp_image_preprocess(NULL, &cfg, out);
    CHECK(rc == VLP_ERR_ARG, "NULL image accepted");
}

static void test_composite_and_api(void) {
    vlp_image img;
    int rc = vlp_image_load(FIXTURE("clip/images/emoji_dog.png"), NULL, &img);
    CHECK(rc == 0, "emoji: %s", vlp_last_error());
    if (rc) return;
    CHECK(img.format == VLP_FMT_PNG && img.channels == 4, "emoji format/channels");
    /* composite over white: transparent corner becomes white (1.0 before normalising) */
    vlp_preprocess_config cfg = vlp_preprocess_clip(64);
    cfg.composite_white = 1;
    float *o = malloc(sizeof(float) * 3 * 64 * 64);
    rc = vlp_image_preprocess(&img, &cfg, o);
    CHECK(rc == 0, "composite: %s", vlp_last_error());
    for (int c = 0; c < 3; c++) {
        float white = (1.0f - MEAN[c]) / STD[c];
        CHECK(fabsf(o[(size_t)c * 64 * 64] - white) < 1e-6f, "corner channel %d = %g, want white %g", c,
              o[(size_t)c * 64 * 64], white);
    }
    /* the resize/crop helper keeps the mode */
    vlp_image rc_img;
    rc = vlp_image_resize_crop(&img, 100, &rc_img);
    CHECK(rc == 0 && rc_img.mode == VLP_IMG_RGBA && rc_img.width == 100 && rc_img.height == 100, "resize_crop");
    vlp_image_free(&rc_img);
    free(o);
    vlp_image_free(&img);
    /* an extreme aspect ratio is refused instead of allocating a 67M-pixel row */
    vlp_image thin;
    memset(&thin, 0, sizeof thin);
    thin.width = 1, thin.height = 300000, thin.channels = 1, thin.mode = VLP_IMG_L;
    thin.pixels = calloc(300000, 1);
    float *o2 = malloc(sizeof(float) * 3 * 224 * 224);
    vlp_preprocess_config c224 = vlp_preprocess_clip(224), c64 = vlp_preprocess_clip(64);
    rc = vlp_image_preprocess(&thin, &c224, o2);
    CHECK(rc == VLP_ERR_ARG && strstr(vlp_last_error(), "1x300000"), "thin image: %d %s", rc, vlp_last_error());
    rc = vlp_image_preprocess(&thin, &c64, o2); /* 64 x 19.2M: allowed */
    CHECK(rc == 0, "thin image at 64: %s", vlp_last_error());
    thin.mode = VLP_IMG_1; /* nearest neighbour path */
    rc = vlp_image_preprocess(&thin, &c64, o2);
    CHECK(rc == 0, "thin bilevel image at 64: %s", vlp_last_error());
    free(o2);
    free(thin.pixels);
    /* sniffing ignores the extension */
    size_t n = 0;
    uint8_t *b = read_file(FIXTURE("clip/images/coffee.jpg"), &n);
    if (b) {
        CHECK(vlp_image_sniff(b, n) == VLP_FMT_JPEG, "sniff jpeg");
        rc = vlp_image_decode(b, n, "coffee.png", NULL, &img);
        CHECK(rc == 0 && img.format == VLP_FMT_JPEG, "JPEG named .png: %s", vlp_last_error());
        vlp_image_free(&img);
        free(b);
    }
}

int main(void) {
    test_clip_fixtures();
    test_own_fixtures();
    test_errors();
    test_composite_and_api();
    return test_finish();
}
