/* CLIP BPE tokenizer: every row of tests/fixtures/clip/tokenizer.jsonl (ids and context77
 * from openai/CLIP with ftfy 6.3.1), errors, decode. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline, clock_gettime */
#endif
#include "test.h"
#include "vlp_text.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static void print_ids(const char *label, const int32_t *ids, int n) {
    printf("    %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

static void fixture_rows(vlp_bpe *t) {
    FILE *f = fopen(FIXTURE("clip/tokenizer.jsonl"), "r");
    CHECK(f != NULL, "cannot open the fixture");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int rows = 0, bad_ids = 0, bad_ctx = 0, shown = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!o) {
            CHECK(0, "row %d: bad JSON: %s", rows + 1, je.text);
            continue;
        }
        const char *text = json_string_value(json_object_get(o, "text"));
        size_t tlen = json_string_length(json_object_get(o, "text"));
        json_t *jids = json_object_get(o, "ids"), *jctx = json_object_get(o, "context77");
        size_t ne = json_array_size(jids);
        int32_t *exp = malloc((ne + 1) * sizeof *exp), got[4096], ctx[77], ectx[77];
        for (size_t i = 0; i < ne; i++) exp[i] = (int32_t)json_integer_value(json_array_get(jids, i));
        for (int i = 0; i < 77; i++) ectx[i] = (int32_t)json_integer_value(json_array_get(jctx, (size_t)i));
        int n = vlp_bpe_encode_n(t, text, tlen, got, 4096);
        int ok = n == (int)ne && !memcmp(got, exp, ne * sizeof *exp);
        int nc = vlp_bpe_tokenize_n(t, text, tlen, 77, 1, ctx);
        int okc = nc > 0 && !memcmp(ctx, ectx, sizeof ctx);
        bad_ids += !ok, bad_ctx += !okc;
        if ((!ok || !okc) && shown++ < 8) {
            printf("  mismatch row %d: %s\n", rows + 1, text);
            char *cl = vlp_bpe_clean_text(text);
            printf("    cleaned: '%s'\n", cl ? cl : "(null)");
            free(cl);
            print_ids("expected", exp, (int)ne);
            print_ids("got     ", got, n < 4096 ? n : 4096);
        }
        free(exp);
        json_decref(o);
        rows++;
    }
    free(line);
    fclose(f);
    printf("fixture: %d rows, %d ids mismatches, %d context77 mismatches\n", rows, bad_ids, bad_ctx);
    CHECK(rows == 2167, "fixture rows %d", rows);
    CHECK(bad_ids == 0, "%d rows with wrong ids", bad_ids);
    CHECK(bad_ctx == 0, "%d rows with wrong context77", bad_ctx);
}

static void errors(vlp_bpe *t) {
    int32_t out[77], ids[8];
    char buf[2000];
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 100; i++) memcpy(buf + 5 * i, "word ", 5);
    int r = vlp_bpe_tokenize(t, buf, 77, 0, out);
    CHECK(r < 0, "too long without truncate should fail, got %d", r);
    CHECK(strstr(vlp_last_error(), "102") && strstr(vlp_last_error(), "77"), "error names lengths: %s",
          vlp_last_error());
    r = vlp_bpe_tokenize(t, buf, 77, 1, out);
    CHECK(r == 77 && out[0] == VLP_BPE_SOT && out[76] == VLP_BPE_EOT, "truncate: %d %d %d", r, out[0], out[76]);
    r = vlp_bpe_tokenize(t, "a dog", 77, 0, out);
    CHECK(r == 4 && out[3] == VLP_BPE_EOT && out[4] == 0, "short text %d", r);
    CHECK(vlp_bpe_tokenize(t, "a", 1, 1, out) < 0, "context 1");
    CHECK(vlp_bpe_encode(NULL, "a", ids, 8) < 0 && strstr(vlp_last_error(), "NULL"), "NULL tokenizer");
    CHECK(vlp_bpe_encode(t, NULL, ids, 8) < 0 && strstr(vlp_last_error(), "text"), "NULL text");
    CHECK(vlp_bpe_encode(t, "a", NULL, 8) < 0, "NULL ids");
    CHECK(vlp_bpe_tokenize(t, "a", 77, 1, NULL) < 0, "NULL out");
    CHECK(vlp_bpe_encode(t, "", ids, 8) == 0, "empty text");
    CHECK(vlp_bpe_encode(t, " \t\n", NULL, 0) == 0, "whitespace text");
    /* count beyond cap */
    r = vlp_bpe_encode(t, "a photo of a dog", ids, 2);
    CHECK(r == 5, "count beyond cap %d", r);
    /* invalid UTF-8: read as U+FFFD, no crash */
    const char *badu[] = {"\xff", "caf\xc3", "\xed\xa0\x80x", "\xc0\x80", "a\xf4\x90\x80\x80z", "\xe2\x82"};
    for (size_t i = 0; i < sizeof badu / sizeof *badu; i++) {
        r = vlp_bpe_encode(t, badu[i], ids, 8);
        CHECK(r > 0, "invalid UTF-8 %zu: %d", i, r);
    }
    int a = vlp_bpe_encode(t, "\xff", ids, 8), b;
    int32_t ids2[8];
    b = vlp_bpe_encode(t, "\xef\xbf\xbd", ids2, 8);
    CHECK(a == b && !memcmp(ids, ids2, (size_t)a * 4), "invalid byte == U+FFFD");
    CHECK(vlp_bpe_load("/nonexistent/vocab.txt") == NULL && strstr(vlp_last_error(), "/nonexistent"),
          "missing vocab file: %s", vlp_last_error());
    CHECK(vlp_bpe_vocab_size(t) == 49408, "vocab size %d", vlp_bpe_vocab_size(t));
    int32_t badid = 49408;
    CHECK(vlp_bpe_decode(t, &badid, 1, buf, sizeof buf) < 0, "decode id out of range");
}

static void decode(vlp_bpe *t) {
    const char *txt = "a photo of a dog, it's 42 degrees! (x_y) ok";
    int32_t ids[64];
    char out[256];
    int n = vlp_bpe_encode(t, txt, ids, 64);
    int m = vlp_bpe_decode(t, ids, n, out, sizeof out);
    /* SimpleTokenizer.decode puts a space after every word end */
    const char *want = "a photo of a dog , it 's 4 2 degrees ! ( x _ y ) ok ";
    CHECK(m == (int)strlen(want) && !strcmp(out, want), "decode: '%s'", out);
    char small[8];
    m = vlp_bpe_decode(t, ids, n, small, sizeof small);
    CHECK(m == (int)strlen(want) && strlen(small) == 7 && !strncmp(small, want, 7), "decode truncation '%s'", small);
    int32_t sp[2] = {VLP_BPE_SOT, VLP_BPE_EOT};
    m = vlp_bpe_decode(t, sp, 2, out, sizeof out);
    CHECK(!strcmp(out, "<|startoftext|><|endoftext|>"), "decode specials '%s'", out);
}

/* ftfy behaviours beyond the fixture (examples from ftfy's documentation) */
static void cleaning(void) {
    static const char *const cases[][2] = {
        {"u\xc3\x8c\xcb\x86nicode", "\xc3\xbcnicode"},                          /* uÌˆnicode -> ünicode */
        {"This \xc3\xa2\xe2\x82\xac\xe2\x80\x9d should", "this \xe2\x80\x94 should"}, /* â€” -> em dash */
        {"&macr;\\_(\xc3\xa3\xc2\x83\xc2\x84)_/&macr;", "\xc2\xaf\\_(\xe3\x83\x84)_/\xc2\xaf"}, /* kaomoji */
        {"The more you know \xc3\xb0\xc5\xb8\xc5\x92\xc2\xa0", "the more you know \xf0\x9f\x8c\xa0"}, /* restore A0 */
        {"&EACUTE;t&eacute;", "\xc3\xa9t\xc3\xa9"},
        {"<b>&amp;amp;</b>", "<b>&</b>"},
        {"\xef\xbc\xac\xef\xbc\xaf\xe3\x80\x80x", "lo x"},
        {"\xc5\x89", "'n"},
        {"\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83"}, /* final sigma */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *c = vlp_bpe_clean_text(cases[i][0]);
        CHECK(c && !strcmp(c, cases[i][1]), "clean '%s' -> '%s', want '%s'", cases[i][0], c ? c : "(null)", cases[i][1]);
        free(c);
    }
}

int main(void) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vlp_bpe *t = vlp_bpe_load(NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t != NULL, "load built-in vocabulary: %s", vlp_last_error());
    if (!t) return test_finish();
    printf("built-in vocabulary loaded in %.1f ms\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
    vlp_bpe *t2 = vlp_bpe_load("assets/bpe_simple_vocab_16e6.txt.gz");
    CHECK(t2 != NULL, "load from file: %s", vlp_last_error());
    if (t2) {
        int32_t a[16], b[16];
        int na = vlp_bpe_encode(t, "hello world", a, 16), nb = vlp_bpe_encode(t2, "hello world", b, 16);
        CHECK(na == nb && na == 2 && !memcmp(a, b, 8), "file vocab == built-in");
        vlp_bpe_free(t2);
    }
    fixture_rows(t);
    errors(t);
    decode(t);
    cleaning();
    vlp_bpe_free(t);
    return test_finish();
}
