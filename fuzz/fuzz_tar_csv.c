/* libFuzzer target for the dataset readers (src/data): the first byte picks the reader,
 *   0: the rest is a tar shard (plain or compressed: libarchive sniffs the filter);
 *      every pair must have a key and caption, and its image must read back with the
 *      indexed size;
 *   1: the rest (after an options byte) is a CSV/TSV file; pairs must have key, caption
 *      and path (images are not read: their paths come from the input);
 *   2: the rest is a brace pattern for ds_expand_braces.
 * Readers work on files, so the input is written to a per-process temporary directory.
 *
 * make BUILD=build fuzz FUZZ_TARGETS=tar_csv   (or by hand:)
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc -Isrc/core \
 *     fuzz/fuzz_tar_csv.c src/data/{dataset,tar,csv,folder}.c src/core/error.c -larchive -ljansson \
 *     -o /tmp/fuzz_tar_csv
 * Seeds: the tar shards and CSV/TSV files of tests/fixtures/data with the mode byte in
 * front (fuzz/run.sh). libarchive and jansson are not instrumented, so coverage guides
 * only vlp's indexing and parsing code. */
#include "../src/data/data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void cleanup(void) {
    char p[128];
    const char *names[] = {"in.tar", "in.csv", "in.tsv"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static const char *write_input(const char *name, const uint8_t *d, size_t n) {
    static char path[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_tar_csv_XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        const char *p = write_input("in.tar", data, size);
        vlp_dataset *ds = vlp_dataset_open(p, NULL);
        if (!ds) {
            if (!strstr(vlp_last_error(), "in.tar")) abort(); /* every rejection names the shard */
            return 0;
        }
        for (int64_t i = 0; i < vlp_dataset_size(ds); i++) {
            if (!vlp_dataset_key(ds, i) || !vlp_dataset_caption(ds, i)) abort();
            uint8_t *img;
            size_t n;
            if (vlp_dataset_read_image(ds, i, &img, &n)) abort(); /* the file has not changed */
            if (n != (size_t)ds->items[i].size) abort();
            free(img);
        }
        vlp_dataset_free(ds);
    } else if (mode == 1) {
        if (size < 1) return 0;
        uint8_t o = data[0];
        const char seps[4] = {0, ',', '\t', ';'};
        vlp_dataset_options opt = {.csv_img_key = (o & 4) ? "a" : NULL, .csv_caption_key = (o & 8) ? "b" : NULL,
                                   .csv_separator = seps[o & 3]};
        const char *p = write_input((o & 16) ? "in.tsv" : "in.csv", data + 1, size - 1);
        vlp_dataset *ds = vlp_dataset_open(p, &opt);
        if (!ds) {
            if (!strstr(vlp_last_error(), "in.")) abort();
            return 0;
        }
        for (int64_t i = 0; i < vlp_dataset_size(ds); i++)
            if (!vlp_dataset_key(ds, i)[0] || !vlp_dataset_caption(ds, i) || !ds->items[i].path) abort();
        vlp_dataset_free(ds);
    } else {
        if (size > 200) return 0;
        ds_expand_limit = 20000; /* the full million is slow under ASan, not more interesting */
        char pat[201];
        memcpy(pat, data, size);
        pat[size] = 0;
        char **out;
        int64_t n;
        if (ds_expand_braces(pat, &out, &n) == 0) {
            if (n < 1) abort();
            for (int64_t i = 0; i < n; i++)
                if (!out[i]) abort();
            ds_free_strings(out, n);
        }
    }
    return 0;
}
