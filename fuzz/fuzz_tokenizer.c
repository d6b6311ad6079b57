/* libFuzzer target: the CLIP tokenizer (ftfy-style cleaning, html.unescape, BPE) on arbitrary
 * bytes. Build and run from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -Isrc/core \
 *     fuzz/fuzz_tokenizer.c src/text/[a-z]*.c src/core/error.c -lutf8proc -lz -lpthread -o /tmp/fuzz_tok
 *   /tmp/fuzz_tok -max_total_time=180 -max_len=4096                                    */
#include "vlp_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static vlp_bpe *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) tok = vlp_bpe_load(NULL);
    if (!tok) abort();
    int32_t ids[64], ctx[77];
    int n = vlp_bpe_encode_n(tok, (const char *)data, size, ids, 64);
    if (n < 0) abort();
    int m = vlp_bpe_tokenize_n(tok, (const char *)data, size, 77, 1, ctx);
    if (m < 2 || m > 77 || ctx[0] != VLP_BPE_SOT) abort();
    if ((n + 2 <= 77 && m != n + 2) || (n + 2 > 77 && (m != 77 || ctx[76] != VLP_BPE_EOT))) abort();
    for (int i = 0; i < n && i < 64; i++)
        if (ids[i] < 0 || ids[i] >= 49408 || ids[i] != ctx[i + 1]) abort();
    char out[512];
    if (vlp_bpe_decode(tok, ids, n < 64 ? n : 64, out, sizeof out) < 0) abort();
    return 0;
}
