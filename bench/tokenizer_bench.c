/* CLIP BPE tokenizer throughput over the fixture texts (tests/fixtures/clip/tokenizer.jsonl)
 * repeated: vocabulary load time, then cold cache (a fresh tokenizer, first pass) and warm
 * cache (later passes). Prints one JSON line. Run from the repository root:
 *   build/bench/tokenizer_bench [repeats]                                              */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline, clock_gettime */
#endif
#include "vlp.h"
#include "vlp_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (reps < 1) reps = 1;
    FILE *f = fopen("tests/fixtures/clip/tokenizer.jsonl", "r");
    if (!f) {
        fprintf(stderr, "tokenizer_bench: run from the repository root (tests/fixtures/clip/tokenizer.jsonl)\n");
        return 1;
    }
    char **texts = NULL, *line = NULL;
    size_t *lens = NULL, cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, JSON_ALLOW_NUL, NULL);
        if (!o) continue;
        json_t *s = json_object_get(o, "text");
        texts = realloc(texts, (size_t)(n + 1) * sizeof *texts);
        lens = realloc(lens, (size_t)(n + 1) * sizeof *lens);
        lens[n] = json_string_length(s);
        texts[n] = malloc(lens[n] + 1);
        memcpy(texts[n], json_string_value(s), lens[n] + 1);
        n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    double t0 = now();
    vlp_bpe *t = vlp_bpe_load(NULL);
    double load_ms = (now() - t0) * 1e3;
    if (!t) {
        fprintf(stderr, "tokenizer_bench: %s\n", vlp_last_error());
        return 1;
    }
    int32_t ids[8192];
    long tok_cold = 0, tok_warm = 0;
    t0 = now();
    for (int i = 0; i < n; i++) tok_cold += vlp_bpe_encode_n(t, texts[i], lens[i], ids, 8192);
    double cold = now() - t0;
    t0 = now();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < n; i++) tok_warm += vlp_bpe_encode_n(t, texts[i], lens[i], ids, 8192);
    double warm = now() - t0;
    /* context-77 model inputs, warm */
    t0 = now();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < n; i++) vlp_bpe_tokenize_n(t, texts[i], lens[i], 77, 1, ids);
    double ctx = now() - t0;
    printf("{\"bench\": \"clip_bpe_tokenizer\", \"texts\": %d, \"repeats\": %d, \"load_ms\": %.2f, "
           "\"cold_tokens_per_s\": %.0f, \"cold_texts_per_s\": %.0f, \"warm_tokens_per_s\": %.0f, "
           "\"warm_texts_per_s\": %.0f, \"context77_texts_per_s\": %.0f}\n",
           n, reps, load_ms, tok_cold / cold, n / cold, tok_warm / warm, (double)n * reps / warm,
           (double)n * reps / ctx);
    vlp_bpe_free(t);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts), free(lens);
    return 0;
}
