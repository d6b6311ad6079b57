// libFuzzer target: decode arbitrary bytes (any format vlp sniffs) and run the CLIP
// preprocessing at 64 on whatever decodes. Errors are fine; crashes, leaks, UB and
// out-of-bounds reads are not.
//
// Build (from the repository root):
//   clang -g -O1 -march=x86-64-v3 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -Isrc/core -I/usr/include/stb \
//     fuzz/fuzz_image.c src/image/*.c src/core/error.c -lpng -ljpeg -lwebp -lgif -lz -lm -o /tmp/fuzz_img
// Seed corpus: the fixture images.
//   mkdir -p /tmp/corpus && cp tests/fixtures/clip/images/*.png tests/fixtures/clip/images/*.jpg \
//     tests/fixtures/images/*.png tests/fixtures/images/*.jpg tests/fixtures/images/*.webp \
//     tests/fixtures/images/*.gif tests/fixtures/images/*.bmp /tmp/corpus/
//   /tmp/fuzz_img -max_total_time=180 -max_len=30000 -rss_limit_mb=2048 /tmp/corpus
// (-march=x86-64-v3 covers the AVX2 resampling path the library is built with; drop it for the scalar one)
#include "vlp_image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a small pixel limit keeps each run fast; the bomb guard itself is under test */
    vlp_image_options opt = {.max_pixels = 1u << 20};
    vlp_image img;
    if (vlp_image_decode(data, size, "fuzz", &opt, &img)) return 0;
    static float out[3 * 64 * 64];
    vlp_preprocess_config cfg = vlp_preprocess_clip(64);
    vlp_image_preprocess(&img, &cfg, out);
    cfg.composite_white = 1;
    vlp_image_preprocess(&img, &cfg, out);
    uint8_t *rgba = malloc((size_t)img.width * img.height * 4);
    if (rgba) vlp_image_to_rgba(&img, rgba);
    free(rgba);
    vlp_image_free(&img);
    return 0;
}
