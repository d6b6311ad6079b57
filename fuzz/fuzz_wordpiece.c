/* libFuzzer target: the BERT WordPiece tokenizer (cleaning, lowercasing and accent stripping,
 * punctuation and CJK splitting, greedy longest-match pieces) on arbitrary bytes: single texts,
 * pairs (the input split at its first 0xff byte) with truncation, and decoding of what it made.
 * Also loads the input as a vocabulary file (duplicates, missing specials, odd whitespace).
 * Build and run from the repository root (or make fuzz FUZZ_TARGETS=wordpiece):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -Isrc/core \
 *     fuzz/fuzz_wordpiece.c src/text/[a-z]*.c src/core/error.c -lutf8proc -lz -lpthread -o /tmp/fuzz_wp
 *   /tmp/fuzz_wp -max_total_time=180 -max_len=4096                                      */
#include "vlp_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static vlp_wordpiece *tok;

static void check_vocab_file(const uint8_t *data, size_t size) {
    char path[] = "/tmp/fuzz_wp_vocab_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    vlp_wordpiece *v = vlp_wordpiece_load(path);
    unlink(path);
    if (!v) return; /* a clear error is fine */
    int32_t ids[32];
    int n = vlp_wordpiece_encode(v, "hello, world! unaffable", ids, 32);
    int V = vlp_wordpiece_vocab_size(v);
    if (n < 0) abort();
    for (int i = 0; i < n && i < 32; i++)
        if (ids[i] < 0 || ids[i] >= V) abort();
    vlp_wordpiece_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) tok = vlp_wordpiece_load(NULL);
    if (!tok) abort();
    const int V = vlp_wordpiece_vocab_size(tok);
    int32_t ids[64];
    int n = vlp_wordpiece_encode_n(tok, (const char *)data, size, ids, 64);
    if (n < 0) abort();
    for (int i = 0; i < n && i < 64; i++)
        if (ids[i] < 0 || ids[i] >= V) abort();
    char out[1024];
    if (vlp_wordpiece_decode(tok, ids, n < 64 ? n : 64, 1, out, sizeof out) < 0) abort();

    /* a pair: split at the first 0xff (never valid UTF-8, so it cannot hide inside a character) */
    const uint8_t *cut = memchr(data, 0xff, size);
    size_t alen = cut ? (size_t)(cut - data) : size;
    const char *b = cut ? (const char *)cut + 1 : NULL;
    size_t blen = cut ? size - alen - 1 : 0;
    const int L = 3 + (int)(size % 40);
    int32_t in[43], ty[43], mk[43];
    int m = vlp_wordpiece_encode_pair_n(tok, (const char *)data, alen, b, blen, L, in, ty, mk);
    if (m < 2 || m > L) abort();
    const int cls = vlp_wordpiece_special_id(tok, VLP_WP_CLS), sep = vlp_wordpiece_special_id(tok, VLP_WP_SEP),
              pad = vlp_wordpiece_special_id(tok, VLP_WP_PAD);
    if (in[0] != cls || in[m - 1] != sep) abort();
    for (int i = 0; i < L; i++) {
        if (in[i] < 0 || in[i] >= V || (mk[i] != (i < m)) || (i >= m && (in[i] != pad || ty[i] != 0))) abort();
        if (ty[i] != 0 && ty[i] != 1) abort();
    }
    if (size < 512 && data[0] == '[') check_vocab_file(data, size); /* vocab-like inputs only: file I/O is slow */
    return 0;
}
