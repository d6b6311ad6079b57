/* Helpers shared by the training and evaluation tests: small BMP files on disk, a toy tokenizer
 * for the tiny presets, stopping a run at a step, and the losses a run logged. Header-only
 * (static inline) so each test stays one file; unused helpers cost nothing. */
#ifndef VLP_TEST_UTIL_H
#define VLP_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vlp_train.h"

/* Channel c (0 blue, 1 green, 2 red, BMP order) of pixel x in stored row y (rows bottom-up). */
typedef unsigned char (*test_px_fn)(void *ctx, int x, int y, int c);

/* A 24-bit W x H BMP whose pixels px gives; 0 or -1 if the file cannot be written. */
static inline int test_write_bmp(const char *path, int W, int H, test_px_fn px, void *ctx) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int row = (W * 3 + 3) & ~3, size = 54 + row * H;
    unsigned char h[54] = {'B', 'M'};
    h[2] = (unsigned char)size, h[3] = (unsigned char)(size >> 8), h[4] = (unsigned char)(size >> 16);
    h[10] = 54, h[14] = 40, h[26] = 1, h[28] = 24;
    h[18] = (unsigned char)W, h[19] = (unsigned char)(W >> 8), h[22] = (unsigned char)H, h[23] = (unsigned char)(H >> 8);
    fwrite(h, 1, 54, f);
    for (int y = 0; y < H; y++)
        for (int b = 0; b < row; b++) fputc(b < W * 3 ? px(ctx, b / 3, y, b % 3) : 0, f);
    return fclose(f) ? -1 : 0;
}

/* [CLS]=1, one id per non-space character (4 + c % 60), [SEP]=2, padded with 0: ids inside the
 * tiny presets' vocabulary of 64. A vlp loader tokenizer callback. */
static inline int test_tiny_tok(void *ctx, const char *text, int T, int32_t *ids) {
    (void)ctx;
    memset(ids, 0, (size_t)T * sizeof *ids);
    ids[0] = 1;
    int n = 1;
    for (const char *p = text; *p && n < T - 1; p++)
        if (*p != ' ') ids[n++] = 4 + (*p % 60);
    ids[n] = 2;
    return 0;
}

/* vlp_run_options.on_step that stops the run after step *(int *)ctx (as Ctrl-C or --stop-after). */
static inline int test_stop_on_step(void *ctx, const vlp_train_stats *st, double pps, double wait) {
    (void)pps, (void)wait;
    return st->step == *(const int *)ctx;
}

/* The "loss_last" text of every line of RUN/metrics.jsonl, by step (1..cap), into out; the count
 * read, or -1 if there is no log. Text, so that equal means bit-equal as printed. */
static inline int test_read_losses(const char *run, char out[][32], int cap) {
    char p[512];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *s = strstr(line, "\"step\":"), *l = strstr(line, "\"loss_last\":");
        if (!s || !l) continue;
        int step = atoi(s + 7);
        if (step >= 1 && step <= cap) {
            sscanf(l + 12, "%31[^,}]", out[step - 1]);
            n++;
        }
    }
    fclose(f);
    return n;
}

#endif
