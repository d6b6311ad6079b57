/* libFuzzer target for the safetensors reader: opens the input from memory and,
 * when it validates, reads every tensor (raw bytes and, for float dtypes, as
 * float32) and every metadata entry.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -Isrc/core \
 *     fuzz/fuzz_safetensors.c src/io/safetensors.c src/core/error.c -ljansson -lm -o /tmp/fuzz_st
 * /tmp/fuzz_st -max_total_time=180 -rss_limit_mb=2048 -max_len=16384 CORPUS_DIR SEED_DIR
 *
 * Seeds that work well: each fixture's header with every dim clamped to 2 and the
 * offsets recomputed (valid ~9 KB files with real names), the fixtures cut just past
 * the header, and small files from vlp_st_save with every dtype, scalars, zero-size
 * tensors and metadata. A dictionary of the keys ("dtype", "shape", "data_offsets",
 * "__metadata__") and dtype names helps. Note that jansson itself is not
 * instrumented, so coverage guides only the validation code here.
 */
#include "vlp_safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vlp_safetensors *st = vlp_st_open_memory(data, size, "fuzz.safetensors");
    if (!st) {
        /* Every rejection names the input. */
        if (!strstr(vlp_last_error(), "fuzz.safetensors")) abort();
        return 0;
    }
    int n = vlp_st_count(st);
    volatile unsigned sink = 0;
    for (int i = 0; i < n; i++) {
        const char *name = vlp_st_name(st, i);
        if (!name || vlp_st_find(st, name) != i) abort();
        vlp_st_dtype d;
        int nd;
        int64_t shape[VLP_ST_MAX_DIMS];
        if (vlp_st_info(st, i, &d, &nd, shape)) abort();
        int64_t numel = vlp_st_numel(st, i);
        size_t nbytes = 0;
        const unsigned char *p = vlp_st_data(st, i, &nbytes);
        if (!p || nbytes != (size_t)numel * vlp_st_dtype_size(d)) abort();
        for (size_t k = 0; k < nbytes; k++) sink += p[k];
        if (d == VLP_ST_F32 || d == VLP_ST_F16 || d == VLP_ST_BF16 || d == VLP_ST_F64) {
            float *out = malloc((size_t)numel * sizeof(float) + 1);
            if (!out) abort();
            if (vlp_st_read_f32(st, i, out, numel)) abort();
            if (numel > 0 && vlp_st_read_f32(st, i, out, numel - 1) == 0) abort();
            free(out);
        } else if (vlp_st_read_f32(st, i, &(float){0}, numel) == 0) {
            abort();
        }
    }
    for (int i = 0; i < vlp_st_metadata_count(st); i++) {
        const char *k = vlp_st_metadata_key(st, i);
        if (!k || !vlp_st_metadata(st, k)) abort();
    }
    if (vlp_st_find(st, "\x01 not a name") >= 0 && n == 0) abort();
    vlp_st_close(st);
    (void)sink;
    return 0;
}
