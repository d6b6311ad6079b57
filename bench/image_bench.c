/* Decode + CLIP preprocess throughput on one core: one JSON line per image.
 * Build: make build/bench/image_bench; run from the repository root:
 *   build/bench/image_bench [seconds per image, default 2] */
#include "vlp_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    const char *files[] = {"tests/fixtures/clip/images/coffee.jpg", "tests/fixtures/clip/images/astronaut.png"};
    const int size = 224;
    float *out = malloc(sizeof(float) * 3 * size * size);
    vlp_preprocess_config cfg = vlp_preprocess_clip(size);
    for (int f = 0; f < 2; f++) {
        size_t n = 0;
        unsigned char *data = read_all(files[f], &n);
        if (!data) {
            fprintf(stderr, "cannot read %s (run from the repository root)\n", files[f]);
            return 1;
        }
        double t_dec = 0, t_pre = 0;
        long iters = 0;
        int w = 0, h = 0;
        double t0 = now();
        while (now() - t0 < secs || iters < 3) {
            vlp_image img;
            double a = now();
            if (vlp_image_decode(data, n, files[f], NULL, &img)) {
                fprintf(stderr, "%s\n", vlp_last_error());
                return 1;
            }
            double b = now();
            if (vlp_image_preprocess(&img, &cfg, out)) {
                fprintf(stderr, "%s\n", vlp_last_error());
                return 1;
            }
            double c = now();
            w = img.width, h = img.height;
            vlp_image_free(&img);
            t_dec += b - a;
            t_pre += c - b;
            iters++;
        }
        const char *base = strrchr(files[f], '/') + 1;
        printf("{\"bench\": \"image_decode_preprocess\", \"image\": \"%s\", \"width\": %d, \"height\": %d, "
               "\"size\": %d, \"threads\": 1, \"images_per_s\": %.1f, \"decode_ms\": %.3f, \"preprocess_ms\": %.3f, "
               "\"iters\": %ld}\n",
               base, w, h, size, iters / (t_dec + t_pre), 1e3 * t_dec / iters, 1e3 * t_pre / iters, iters);
        free(data);
    }
    free(out);
    return 0;
}
