/* Loader throughput: pairs/s that vlp_loader_next delivers (the consumer does nothing)
 * from a WebDataset shard of 64x64 RGB PNGs with short captions, written to /tmp first.
 * Each pair: pread from the tar, PNG decode, CLIP preprocessing at --size, CLIP BPE.
 *
 * make BUILD=build && gcc -O2 -Iinclude bench/data_loader.c build/libvlp.a \
 *     -fopenmp -lutf8proc -ljansson -lpng -ljpeg -lwebp -lgif -larchive -lpthread -lz -lm \
 *     -o /tmp/data_loader && /tmp/data_loader [pairs=2048] [size=224] [batch=64]
 */
#include "vlp_data.h"
#include "vlp.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A 64x64 RGB PNG: smooth gradients plus a little noise, so it compresses like a photo
 * thumbnail rather than like noise or a flat colour. */
static uint8_t *make_png(int w, uint32_t seed, size_t *size) {
    int h = w;
    size_t raw_n = (size_t)h * (1 + 3 * (size_t)w);
    uint8_t *raw = malloc(raw_n);
    uint32_t s = seed * 2654435761u + 1;
    for (int y = 0, k = 0; y < h; y++) {
        raw[k++] = 0;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                s = s * 1664525u + 1013904223u;
                raw[k++] = (uint8_t)(((x * (c + 1) * 3 + y * (3 - c) * 2 + (int)seed * 7) & 255) ^ (s >> 29));
            }
    }
    uLongf zn = compressBound(raw_n);
    uint8_t *z = malloc(zn);
    compress2(z, &zn, raw, raw_n, 6);
    uint8_t *png = malloc(8 + 3 * 12 + 13 + zn);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    size_t k = 8;
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    memcpy(ihdr + 8, "\x08\x02\x00\x00\x00", 5);
    const char *types[3] = {"IHDR", "IDAT", "IEND"};
    const uint8_t *data[3] = {ihdr, z, NULL};
    size_t lens[3] = {13, zn, 0};
    for (int c = 0; c < 3; c++) {
        put32(png + k, (uint32_t)lens[c]);
        memcpy(png + k + 4, types[c], 4);
        if (lens[c]) memcpy(png + k + 8, data[c], lens[c]);
        put32(png + k + 8 + lens[c], (uint32_t)crc32(0, png + k + 4, (uInt)(4 + lens[c])));
        k += 12 + lens[c];
    }
    free(raw);
    free(z);
    *size = k;
    return png;
}

static void add(struct archive *a, const char *name, const void *d, size_t n) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, d, n);
    archive_entry_free(e);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2048, size = argc > 2 ? atoi(argv[2]) : 224, bs = argc > 3 ? atoi(argv[3]) : 64;
    char path[64];
    snprintf(path, sizeof path, "/tmp/vlp_loader_bench_%d.tar", (int)getpid());
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    static const char *words[] = {"a photo of", "a red", "dog", "cat", "on the beach", "in a city", "at night"};
    for (int i = 0; i < n; i++) {
        char name[32], cap[128];
        size_t sz;
        uint8_t *png = make_png(64, (uint32_t)i, &sz);
        snprintf(name, sizeof name, "%06d.png", i);
        add(a, name, png, sz);
        free(png);
        snprintf(cap, sizeof cap, "%s %s %s %s number %d", words[i % 7], words[(i / 7) % 7], words[(i / 3) % 7],
                 words[(i / 5) % 7], i);
        snprintf(name, sizeof name, "%06d.txt", i);
        add(a, name, cap, strlen(cap));
    }
    archive_write_close(a);
    archive_write_free(a);

    double t0 = now();
    vlp_dataset *ds = vlp_dataset_open(path, NULL);
    if (!ds) {
        fprintf(stderr, "%s\n", vlp_last_error());
        return 1;
    }
    printf("indexed %lld pairs in %.3f s; 64x64 PNG -> %dx%d, batch %d, context 77\n", (long long)vlp_dataset_size(ds),
           now() - t0, size, size, bs);
    for (int workers = 1; workers <= 2; workers++) {
        vlp_loader_options o = {.batch_size = bs, .image_size = size, .context_length = 77, .seed = 1, .shuffle = 1,
                                .drop_last = 1, .workers = workers, .prefetch = 2};
        vlp_loader *ld = vlp_loader_new(ds, &o);
        if (!ld) {
            fprintf(stderr, "%s\n", vlp_last_error());
            return 1;
        }
        vlp_batch b;
        vlp_loader_next(ld, &b); /* warm-up: first batch, BPE cache */
        int64_t nb = vlp_loader_batches_per_epoch(ld), pairs = 0;
        t0 = now();
        for (int64_t k = 1; k < nb; k++) {
            if (vlp_loader_next(ld, &b)) {
                fprintf(stderr, "%s\n", vlp_last_error());
                return 1;
            }
            pairs += b.n;
        }
        double dt = now() - t0;
        printf("workers %d: %lld pairs in %.3f s = %.0f pairs/s (consumer waited %.3f s)\n", workers,
               (long long)pairs, dt, pairs / dt, vlp_loader_take_wait_seconds(ld));
        vlp_loader_free(ld);
    }
    vlp_dataset_free(ds);
    unlink(path);
    return 0;
}
