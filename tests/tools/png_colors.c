/* Colour statistics of an image, for tests/test_report.sh: checks that a headless Chromium
 * screenshot is not blank and that given colours (those of the embedded fixture images) were
 * drawn. Decodes with vlp's own image module.
 *   png_colors SHOT.png [R,G,B ...]
 * prints "WIDTHxHEIGHT distinct=N", then per colour "R,G,B count=N" (pixels within 3 levels). */
#include "vlp.h"
#include "vlp_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: png_colors IMAGE [R,G,B ...]\n");
        return 2;
    }
    vlp_image img;
    if (vlp_image_load(argv[1], NULL, &img)) {
        fprintf(stderr, "png_colors: %s\n", vlp_last_error());
        return 1;
    }
    size_t n = (size_t)img.width * img.height;
    uint8_t *rgb = malloc(n * 3 + 1);
    uint32_t *px = malloc(n * sizeof *px + 1);
    if (!rgb || !px || vlp_image_to_rgb(&img, 1, rgb)) {
        fprintf(stderr, "png_colors: cannot convert %s\n", argv[1]);
        return 1;
    }
    for (size_t i = 0; i < n; i++) px[i] = (uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2];
    qsort(px, n, sizeof *px, cmp_u32);
    size_t distinct = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) distinct += px[i] != px[i - 1];
    printf("%dx%d distinct=%zu\n", img.width, img.height, distinct);
    for (int a = 2; a < argc; a++) {
        int c[3];
        if (sscanf(argv[a], "%d,%d,%d", &c[0], &c[1], &c[2]) != 3) {
            fprintf(stderr, "png_colors: '%s' is not R,G,B\n", argv[a]);
            return 2;
        }
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            int ok = 1;
            for (int k = 0; k < 3; k++) ok &= abs((int)rgb[3 * i + k] - c[k]) <= 3;
            count += ok;
        }
        printf("%d,%d,%d count=%zu\n", c[0], c[1], c[2], count);
    }
    free(rgb);
    free(px);
    vlp_image_free(&img);
    return 0;
}
