/* BERT WordPiece tokenizer: every row of tests/fixtures/bert/tokenizer.jsonl (tokens, ids and
 * the pair128 model inputs of google-research/bert), the built-in vocabulary against the
 * fixture's vocab.txt, special ids, decode, errors, and a throughput figure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline, clock_gettime */
#endif
#include "test.h"
#include "vlp_text.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Process CPU time: the tokenizer is single-threaded, and wall time on a shared machine is noise. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    printf("    %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

static int int_array(json_t *a, int32_t *out, int cap) {
    int n = (int)json_array_size(a);
    for (int i = 0; i < n && i < cap; i++) out[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return n;
}

typedef struct {
    char **texts;
    size_t *lens;
    int n;
    long tokens;
} corpus;

static void fixture_rows(vlp_wordpiece *t, corpus *cp) {
    FILE *f = fopen(FIXTURE("bert/tokenizer.jsonl"), "r");
    CHECK(f != NULL, "cannot open the fixture");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int rows = 0, pairs = 0, bad_ids = 0, bad_tokens = 0, bad_pair = 0, shown = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!o) {
            CHECK(0, "row %d: bad JSON: %s", rows + 1, je.text);
            continue;
        }
        json_t *jt = json_object_get(o, "text");
        const char *text = json_string_value(jt);
        size_t tlen = json_string_length(jt);
        json_t *jids = json_object_get(o, "ids"), *jtok = json_object_get(o, "tokens");
        int ne = (int)json_array_size(jids);
        int32_t *exp = malloc(((size_t)ne + 1) * sizeof *exp), *got = malloc(((size_t)ne + 64) * sizeof *got);
        int_array(jids, exp, ne);
        int n = vlp_wordpiece_encode_n(t, text, tlen, got, ne + 64);
        int ok = n == ne && !memcmp(got, exp, (size_t)ne * sizeof *exp);
        int okt = (int)json_array_size(jtok) == ne;
        for (int i = 0; okt && i < ne && i < n; i++) {
            const char *s = vlp_wordpiece_id_token(t, got[i]);
            okt = s && !strcmp(s, json_string_value(json_array_get(jtok, (size_t)i)));
        }
        bad_ids += !ok, bad_tokens += !okt;
        if (!ok && shown++ < 8) {
            printf("  mismatch row %d: %s\n", rows + 1, text);
            print_ids("expected", exp, ne);
            print_ids("got     ", got, n < ne + 64 ? n : ne + 64);
        }
        json_t *p = json_object_get(o, "pair128");
        if (p) {
            pairs++;
            int32_t ei[128], es[128], em[128], gi[128], gs[128], gm[128];
            int l1 = int_array(json_object_get(p, "input_ids"), ei, 128);
            int l2 = int_array(json_object_get(p, "segment_ids"), es, 128);
            int l3 = int_array(json_object_get(p, "input_mask"), em, 128);
            json_t *jb = json_object_get(p, "text_b");
            const char *tb = json_string_value(jb);
            int np = vlp_wordpiece_encode_pair_n(t, text, tlen, tb, json_string_length(jb), 128, gi, gs, gm);
            int real = 0;
            for (int i = 0; i < 128; i++) real += em[i];
            int okp = l1 == 128 && l2 == 128 && l3 == 128 && np == real && !memcmp(gi, ei, sizeof gi) &&
                      !memcmp(gs, es, sizeof gs) && !memcmp(gm, em, sizeof gm);
            bad_pair += !okp;
            if (!okp && shown++ < 8) {
                printf("  pair128 mismatch row %d: %s | %s\n", rows + 1, text, tb ? tb : "(null)");
                print_ids("expected", ei, 128);
                print_ids("got     ", gi, 128);
            }
        }
        if (cp) {
            char **nt = realloc(cp->texts, (size_t)(cp->n + 1) * sizeof *nt);
            size_t *nl = realloc(cp->lens, (size_t)(cp->n + 1) * sizeof *nl);
            if (nt) cp->texts = nt;
            if (nl) cp->lens = nl;
            char *copy = malloc(tlen + 1);
            if (nt && nl && copy) {
                memcpy(copy, text, tlen + 1);
                cp->texts[cp->n] = copy, cp->lens[cp->n] = tlen, cp->n++;
                cp->tokens += ne;
            } else {
                free(copy);
            }
        }
        free(exp), free(got);
        json_decref(o);
        rows++;
    }
    free(line);
    fclose(f);
    printf("fixture: %d rows (%d pair128), %d ids / %d tokens / %d pair128 mismatches\n", rows, pairs, bad_ids,
           bad_tokens, bad_pair);
    CHECK(rows == 4049, "expected 4049 rows, read %d", rows);
    CHECK(pairs == 269, "expected 269 pair128 rows, read %d", pairs);
    CHECK(bad_ids == 0, "%d rows with wrong ids", bad_ids);
    CHECK(bad_tokens == 0, "%d rows with wrong tokens", bad_tokens);
    CHECK(bad_pair == 0, "%d rows with wrong pair128 inputs", bad_pair);
}

static void vocab_and_specials(vlp_wordpiece *t) {
    CHECK(vlp_wordpiece_vocab_size(t) == 30522, "vocab size %d", vlp_wordpiece_vocab_size(t));
    CHECK(vlp_wordpiece_special_id(t, VLP_WP_PAD) == 0, "[PAD]");
    CHECK(vlp_wordpiece_special_id(t, VLP_WP_UNK) == 100, "[UNK]");
    CHECK(vlp_wordpiece_special_id(t, VLP_WP_CLS) == 101, "[CLS]");
    CHECK(vlp_wordpiece_special_id(t, VLP_WP_SEP) == 102, "[SEP]");
    CHECK(vlp_wordpiece_special_id(t, VLP_WP_MASK) == 103, "[MASK]");
    CHECK(vlp_wordpiece_special_id(t, 99) == -1, "unknown special");
    CHECK(vlp_wordpiece_token_id(t, "##s") == 2015, "##s -> %d", vlp_wordpiece_token_id(t, "##s"));
    CHECK(vlp_wordpiece_token_id(t, "no-such-token") == -1, "missing token");
    CHECK(vlp_wordpiece_id_token(t, 30522) == NULL && vlp_wordpiece_id_token(t, -1) == NULL, "id out of range");

    /* the built-in vocabulary is the fixture's vocab.txt, line for line */
    vlp_wordpiece *f = vlp_wordpiece_load(FIXTURE("bert/vocab.txt"));
    CHECK(f != NULL, "load vocab.txt: %s", vlp_last_error());
    if (!f) return;
    int same = vlp_wordpiece_vocab_size(f) == vlp_wordpiece_vocab_size(t);
    for (int i = 0; same && i < vlp_wordpiece_vocab_size(t); i++)
        same = !strcmp(vlp_wordpiece_id_token(f, i), vlp_wordpiece_id_token(t, i));
    CHECK(same, "built-in vocabulary differs from tests/fixtures/bert/vocab.txt");
    vlp_wordpiece_free(f);
}

static void decode_and_edges(vlp_wordpiece *t) {
    int32_t ids[64];
    int n = vlp_wordpiece_encode(t, "Unaffable tokenization, isn't it?", ids, 64);
    char buf[256];
    int len = vlp_wordpiece_decode(t, ids, n, 0, buf, sizeof buf);
    CHECK(len > 0 && !strcmp(buf, "unaffable tokenization , isn ' t it ?"), "decode: '%s'", buf);
    /* snprintf contract: the full length comes back, the output is cut and terminated */
    char small[6];
    int l2 = vlp_wordpiece_decode(t, ids, n, 0, small, sizeof small);
    CHECK(l2 == len && strlen(small) == 5 && !strncmp(small, buf, 5), "truncated decode '%s' %d", small, l2);
    int32_t p[16], s[16], m[16];
    int np = vlp_wordpiece_encode_pair(t, "hello world", NULL, 16, p, s, m);
    CHECK(np == 4 && p[0] == 101 && p[3] == 102 && p[4] == 0 && m[3] == 1 && m[4] == 0 && s[3] == 0, "single");
    len = vlp_wordpiece_decode(t, p, 16, 1, buf, sizeof buf);
    CHECK(!strcmp(buf, "hello world"), "skip_special decode: '%s'", buf);
    len = vlp_wordpiece_decode(t, p, np, 0, buf, sizeof buf);
    CHECK(!strcmp(buf, "[CLS] hello world [SEP]"), "decode with specials: '%s'", buf);
    np = vlp_wordpiece_encode_pair(t, "a b c d", "e f g", 7, p, s, m);
    /* 7 - 3 = 4 tokens for A and B: A drops to 2, then B (equal lengths) to 2 */
    CHECK(np == 7 && p[1] == vlp_wordpiece_token_id(t, "a") && p[3] == 102 && p[4] == vlp_wordpiece_token_id(t, "e") &&
              s[3] == 0 && s[4] == 1 && s[6] == 1 && p[6] == 102,
          "pair truncation");
    /* NUL inside text is deleted, joining its neighbours (as the reference's _clean_text) */
    int32_t a[8], b[8];
    int na = vlp_wordpiece_encode_n(t, "he\0llo", 6, a, 8), nb = vlp_wordpiece_encode(t, "hello", b, 8);
    CHECK(na == nb && na > 0 && !memcmp(a, b, (size_t)na * sizeof *a), "NUL joins neighbours");
    /* invalid UTF-8 reads as U+FFFD, which is deleted */
    na = vlp_wordpiece_encode(t, "he\xff" "llo", a, 8);
    CHECK(na == nb && !memcmp(a, b, (size_t)na * sizeof *a), "invalid UTF-8");
    /* counting mode and a small buffer: the full count comes back */
    CHECK(vlp_wordpiece_encode(t, "a b c d e", NULL, 0) == 5, "count only");
    CHECK(vlp_wordpiece_encode(t, "a b c d e", a, 2) == 5 && a[1] == vlp_wordpiece_token_id(t, "b"), "cap 2");
    CHECK(vlp_wordpiece_encode(t, "", a, 8) == 0 && vlp_wordpiece_encode(t, " \t\n", a, 8) == 0, "empty");
    /* max chars: 101 'a's are one word; Hugging Face's 100 makes it [UNK] */
    char word[102];
    memset(word, 'a', 101);
    word[101] = 0;
    int32_t big[128];
    int nbig = vlp_wordpiece_encode(t, word, big, 128);
    CHECK(nbig > 1, "101-char word split into pieces (%d)", nbig);
    CHECK(vlp_wordpiece_set_max_chars(t, 100) == 0, "set max chars");
    nbig = vlp_wordpiece_encode(t, word, big, 128);
    CHECK(nbig == 1 && big[0] == 100, "101-char word is [UNK] at max 100 (%d)", nbig);
    CHECK(vlp_wordpiece_set_max_chars(t, 200) == 0, "reset max chars");
    CHECK(vlp_wordpiece_set_max_chars(t, 0) < 0, "max chars 0 rejected");
}

static void errors(vlp_wordpiece *t) {
    /* the shipped vocabulary has every special token a VL model needs, and says where it is from */
    CHECK(vlp_wordpiece_require_specials(t, VLP_WP_VL_SPECIALS, "vision-language models") == 0,
          "built-in specials: %s", vlp_last_error());
    CHECK(strstr(vlp_wordpiece_source(t), "built-in") != NULL, "built-in source: %s", vlp_wordpiece_source(t));
    CHECK(vlp_wordpiece_load("/nonexistent/vocab.txt") == NULL && strstr(vlp_last_error(), "/nonexistent/vocab.txt"),
          "missing file: %s", vlp_last_error());
    char path[] = "/tmp/vlp_wp_vocab_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        const char *v = "[PAD]\nhello\n";
        CHECK(write(fd, v, strlen(v)) == (ssize_t)strlen(v), "write");
        close(fd);
        CHECK(vlp_wordpiece_load(path) == NULL && strstr(vlp_last_error(), "[UNK]") && strstr(vlp_last_error(), path),
              "no [UNK], named with the file: %s", vlp_last_error());
        /* lines are stripped; [CLS]/[SEP] missing */
        FILE *f = fopen(path, "w");
        fputs("[UNK]\nhello\n  x \r\nworld\n##lo\nhel", f);
        fclose(f);
        vlp_wordpiece *s = vlp_wordpiece_load(path);
        CHECK(s != NULL, "small vocab: %s", vlp_last_error());
        if (s) {
            CHECK(vlp_wordpiece_vocab_size(s) == 6, "6 lines (%d)", vlp_wordpiece_vocab_size(s));
            CHECK(vlp_wordpiece_token_id(s, "hello") == 1 && vlp_wordpiece_token_id(s, "x") == 2, "strip");
            int32_t ids[8];
            int n = vlp_wordpiece_encode(s, "Hello world", ids, 8);
            CHECK(n == 2 && ids[0] == 1 && ids[1] == 3, "ids by line");
            n = vlp_wordpiece_encode(s, "hello helo", ids, 8);
            CHECK(n == 2 && ids[1] == 0, "helo -> [UNK] (no ##o)");
            CHECK(vlp_wordpiece_encode_pair(s, "a", NULL, 8, ids, NULL, NULL) < 0 && strstr(vlp_last_error(), "[CLS]"),
                  "pair without [CLS]");
            /* a VL model needs [PAD], [CLS], [SEP] and [MASK]: each missing one is named, with the file */
            CHECK(vlp_wordpiece_require_specials(s, VLP_WP_VL_SPECIALS, "vision-language models") != 0 &&
                      strstr(vlp_last_error(), path) && strstr(vlp_last_error(), "lacks the special tokens [PAD], [CLS], "
                                                                              "[SEP], [MASK] (vision-language models"),
                  "VL specials missing: %s", vlp_last_error());
            CHECK(vlp_wordpiece_require_specials(s, 1u << VLP_WP_UNK, "x") == 0, "[UNK] present");
            CHECK(strstr(vlp_wordpiece_source(s), path) != NULL, "source names the file: %s", vlp_wordpiece_source(s));
            vlp_wordpiece_free(s);
        }
        f = fopen(path, "w");
        fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", f); /* only [MASK] missing */
        fclose(f);
        s = vlp_wordpiece_load(path);
        CHECK(s && vlp_wordpiece_require_specials(s, VLP_WP_VL_SPECIALS, "vision-language models") != 0 &&
                  strstr(vlp_last_error(), "lacks the special token [MASK] (") && strstr(vlp_last_error(), path),
              "only [MASK] missing: %s", vlp_last_error());
        vlp_wordpiece_free(s);
        /* duplicates (after stripping) are refused, naming the file, the token and both lines */
        static const struct {
            const char *text, *want;
        } dups[] = {{"[UNK]\nhello\nx\nhello\n", "duplicate token 'hello' on lines 2 and 4"},
                    {"[UNK]\n x\nhello\nx \r\n", "duplicate token 'x' on lines 2 and 4"},
                    {"[UNK]\n[UNK]", "duplicate token '[UNK]' on lines 1 and 2"},
                    {"[UNK]\n\nfoo\n  \n", "duplicate empty token (blank lines 2 and 4"}};
        for (size_t k = 0; k < sizeof dups / sizeof dups[0]; k++) {
            f = fopen(path, "w");
            fputs(dups[k].text, f);
            fclose(f);
            s = vlp_wordpiece_load(path);
            CHECK(!s && strstr(vlp_last_error(), dups[k].want) && strstr(vlp_last_error(), path),
                  "duplicate %zu refused with '%s': %s", k, dups[k].want, s ? "(loaded)" : vlp_last_error());
            vlp_wordpiece_free(s);
        }
        unlink(path);
    }
    int32_t ids[4];
    CHECK(vlp_wordpiece_encode(NULL, "x", ids, 4) < 0, "NULL tokenizer");
    CHECK(vlp_wordpiece_encode(t, "x", NULL, 4) < 0, "NULL ids with cap");
    CHECK(vlp_wordpiece_encode_pair(t, "x", NULL, 2, ids, NULL, NULL) < 0, "max_len 2");
    int32_t bad = 40000;
    char buf[8];
    CHECK(vlp_wordpiece_decode(t, &bad, 1, 0, buf, sizeof buf) < 0 && strstr(vlp_last_error(), "40000"), "bad id");
}

static void throughput(vlp_wordpiece *t, corpus *cp) {
    if (!cp->n) return;
    int32_t *buf = malloc((1 << 14) * sizeof(int32_t));
    long toks = 0;
    double t0 = now();
    int reps = 0;
    do {
        for (int i = 0; i < cp->n; i++) toks += vlp_wordpiece_encode_n(t, cp->texts[i], cp->lens[i], buf, 1 << 14);
        reps++;
    } while (now() - t0 < 0.5);
    double dt = now() - t0;
    /* cold: a fresh tokenizer each pass, so every word misses the cache */
    vlp_wordpiece *c = vlp_wordpiece_load(NULL);
    double t1 = now();
    long ctoks = 0;
    for (int i = 0; c && i < cp->n; i++) ctoks += vlp_wordpiece_encode_n(c, cp->texts[i], cp->lens[i], buf, 1 << 14);
    double dc = now() - t1;
    vlp_wordpiece_free(c);
    printf("throughput (CPU time): %.2f M tokens/s warm cache (%d passes over the fixture), %.2f M tokens/s cold\n",
           (double)toks / dt * 1e-6, reps, (double)ctoks / dc * 1e-6);
    CHECK(toks == (long)reps * cp->tokens, "token count");
    free(buf);
}

/* Inputs the fuzzer found (fuzz/fuzz_wordpiece.c). A lone combining mark (U+05A5) is a word
 * that accent stripping empties: it has no ids, and caching that empty result did arithmetic
 * on NULL (clang's UBSan in make fuzz reports it; gcc's does not, so this checks the results). */
static void fuzz_regressions(void) {
    vlp_wordpiece *t = vlp_wordpiece_load(NULL); /* fresh: an empty id list, nothing cached yet */
    CHECK(t != NULL, "load: %s", vlp_last_error());
    if (!t) return;
    int32_t ids[8];
    int n = vlp_wordpiece_encode(t, "\xd6\xa5", ids, 8);
    CHECK(n == 0, "a lone combining mark gives no ids (got %d)", n);
    n = vlp_wordpiece_encode(t, "\xd6\xa5 hello \xd6\xa5", ids, 8);
    CHECK(n == 1 && ids[0] == vlp_wordpiece_token_id(t, "hello"), "marks around a word: only the word (got %d)", n);
    int32_t in[8], ty[8], mk[8];
    n = vlp_wordpiece_encode_pair_n(t, "\xd6\xd6\xd6\xa5", 4, "d", 1, 8, in, ty, mk);
    CHECK(n == 4 && in[1] == vlp_wordpiece_special_id(t, VLP_WP_SEP) && ty[3] == 1,
          "pair with an empty first text: [CLS] [SEP] d [SEP] (got %d)", n);
    vlp_wordpiece_free(t);
}

int main(void) {
    double t0 = now();
    vlp_wordpiece *t = vlp_wordpiece_load(NULL);
    CHECK(t != NULL, "load built-in: %s", vlp_last_error());
    if (!t) return test_finish();
    printf("load built-in vocabulary: %.1f ms CPU\n", (now() - t0) * 1e3);
    corpus cp = {0};
    fixture_rows(t, &cp);
    vocab_and_specials(t);
    decode_and_edges(t);
    errors(t);
    fuzz_regressions();
    throughput(t, &cp);
    for (int i = 0; i < cp.n; i++) free(cp.texts[i]);
    free(cp.texts), free(cp.lens);
    vlp_wordpiece_free(t);
    return test_finish();
}
