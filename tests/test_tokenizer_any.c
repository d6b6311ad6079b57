/* vlp_tokenizer: WordPiece and CLIP BPE behind one interface (src/text/tokenizer.c). WordPiece
 * must pass through unchanged; BPE must give the BERT layout with its own special ids. */
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "vlp_text.h"
#include "vlp_vl.h"

static void test_wordpiece_passthrough(void) {
    vlp_tokenizer *t = vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, NULL);
    vlp_wordpiece *w = vlp_wordpiece_load(NULL);
    CHECK(t && w, "load: %s", vlp_last_error());
    if (!t || !w) return;
    CHECK(vlp_tokenizer_vocab_size(t) == 30522 && vlp_tokenizer_special_id(t, VLP_WP_MASK) == 103 &&
              vlp_tokenizer_special_id(t, VLP_WP_UNK) == 100,
          "bert-base-uncased sizes and ids");
    const char *a = "A man in a tuxedo, unaffable!", *b = "what skin tone?";
    int32_t x[16], y[16], tx[16], ty[16], mx[16], my[16];
    int n1 = vlp_tokenizer_encode_pair(t, a, b, 16, x, tx, mx), n2 = vlp_wordpiece_encode_pair(w, a, b, 16, y, ty, my);
    CHECK(n1 == n2 && !memcmp(x, y, sizeof x) && !memcmp(tx, ty, sizeof tx) && !memcmp(mx, my, sizeof mx),
          "pair input identical to vlp_wordpiece (%d vs %d tokens)", n1, n2);
    char s1[128], s2[128];
    vlp_tokenizer_decode(t, x, n1, 1, s1, sizeof s1);
    vlp_wordpiece_decode(w, y, n2, 1, s2, sizeof s2);
    CHECK(!strcmp(s1, s2), "decode identical: '%s' vs '%s'", s1, s2);
    uint8_t *f = vlp_tokenizer_word_flags(t);
    int id = vlp_wordpiece_token_id(w, "##able"), id2 = vlp_wordpiece_token_id(w, "able");
    CHECK(f && id > 0 && id2 > 0 && f[id] == VLP_TOKEN_CONTINUES && f[id2] == 0, "## continuation flags");
    free(f);
    vlp_tokenizer_free(t);
    vlp_wordpiece_free(w);
}

static void test_bpe(void) {
    vlp_tokenizer *t = vlp_tokenizer_load(VLP_TOKENIZER_CLIP_BPE, NULL);
    vlp_bpe *b = vlp_bpe_load(NULL);
    CHECK(t && b, "load: %s", vlp_last_error());
    if (!t || !b) return;
    int V = vlp_tokenizer_vocab_size(t), pad = vlp_tokenizer_special_id(t, VLP_WP_PAD),
        mask = vlp_tokenizer_special_id(t, VLP_WP_MASK);
    CHECK(V == 49410 && mask == 49408 && pad == 49409 && vlp_tokenizer_special_id(t, VLP_WP_CLS) == VLP_BPE_SOT &&
              vlp_tokenizer_special_id(t, VLP_WP_SEP) == VLP_BPE_EOT && vlp_tokenizer_special_id(t, VLP_WP_UNK) == -1,
          "BPE roles: vocab %d, mask %d, pad %d", V, mask, pad);
    const char *a = "a photo of a cat", *q = "is it a dog?";
    int32_t ea[16], eq[16];
    int na = vlp_bpe_encode(b, a, ea, 16), nq = vlp_bpe_encode(b, q, eq, 16);
    int32_t ids[16], ty[16], m[16];
    int n = vlp_tokenizer_encode_pair(t, a, NULL, 16, ids, ty, m);
    int ok = n == na + 2 && ids[0] == VLP_BPE_SOT && ids[na + 1] == VLP_BPE_EOT && !memcmp(ids + 1, ea, na * 4);
    for (int i = n; i < 16; i++) ok &= ids[i] == pad && m[i] == 0 && ty[i] == 0;
    for (int i = 0; i < n; i++) ok &= m[i] == 1 && ty[i] == 0;
    CHECK(ok, "single text: [SOT] ids [EOT] then [PAD] (%d tokens)", n);
    n = vlp_tokenizer_encode_pair(t, q, a, 16, ids, ty, m);
    ok = n == nq + na + 3 && ids[nq + 1] == VLP_BPE_EOT && ids[n - 1] == VLP_BPE_EOT &&
         !memcmp(ids + nq + 2, ea, na * 4) && ty[nq + 1] == 0 && ty[nq + 2] == 1 && ty[n - 1] == 1 && ty[n] == 0;
    CHECK(ok, "pair: [SOT] A [EOT] B [EOT], type ids 1 on B");
    /* truncation: BERT's rule, the longer side loses its last token first (B when equal) */
    n = vlp_tokenizer_encode_pair(t, a, NULL, 4, ids, NULL, NULL);
    CHECK(n == 4 && ids[1] == ea[0] && ids[2] == ea[1] && ids[3] == VLP_BPE_EOT, "single text cut to fit, ends [EOT]");
    n = vlp_tokenizer_encode_pair(t, q, a, 9, ids, NULL, NULL); /* 6 ids of room: nq=5?, na=5 -> 3 + 3 */
    int kq = 0, ka = 0;
    {
        int x = nq, y = na;
        while (x + y > 6) (y >= x ? y-- : x--);
        kq = x, ka = y;
    }
    CHECK(n == 9 && ids[kq + 1] == VLP_BPE_EOT && ids[8] == VLP_BPE_EOT && !memcmp(ids + 1, eq, kq * 4) &&
              !memcmp(ids + kq + 2, ea, ka * 4),
          "pair cut to fit (%d + %d of %d + %d)", kq, ka, nq, na);
    /* decode: text back, specials named unless skipped */
    char s[200];
    n = vlp_tokenizer_encode_pair(t, a, NULL, 10, ids, NULL, NULL);
    ids[3] = mask;
    vlp_tokenizer_decode(t, ids, 10, 1, s, sizeof s);
    CHECK(!strcmp(s, "a photo a cat"), "decode, specials skipped: '%s'", s);
    vlp_tokenizer_decode(t, ids, 9, 0, s, sizeof s);
    CHECK(!strcmp(s, "<|startoftext|> a photo [MASK] a cat <|endoftext|> [PAD] [PAD]"), "decode with specials: '%s'", s);
    int need = vlp_tokenizer_decode(t, ids, 9, 0, s, 5);
    CHECK(need == 62 && strlen(s) == 4, "decode reports the full length when cut (%d)", need);
    ids[0] = V;
    CHECK(vlp_tokenizer_decode(t, ids, 1, 0, s, sizeof s) < 0, "an id past the vocabulary is an error");
    CHECK(vlp_tokenizer_id_text(t, ea[1], s, sizeof s) > 0 && !strcmp(s, "photo"), "one id as text: '%s'", s);
    /* whole words: every piece but a word's last is continued by the next */
    int32_t w[16];
    int nw = vlp_bpe_encode(b, "unaffable", w, 16);
    uint8_t *f = vlp_tokenizer_word_flags(t);
    ok = f && nw >= 2;
    for (int i = 0; ok && i < nw; i++) ok &= (f[w[i]] == VLP_TOKEN_CONTINUED) == (i < nw - 1);
    CHECK(ok, "BPE word flags over the %d pieces of 'unaffable'", nw);
    CHECK(f && f[VLP_BPE_SOT] == 0 && f[VLP_BPE_EOT] == 0 && f[mask] == 0 && f[pad] == 0, "specials never join words");
    /* whole-word MLM over BPE: the pieces of "unaffable" are masked together or not at all */
    vlp_vl_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V, c.pad_id = pad, c.cls_id = c.bos_id = VLP_BPE_SOT, c.sep_id = c.eos_id = VLP_BPE_EOT;
    c.mask_id = mask, c.mlm_prob = 0.3f, c.mlm_whole_word = 1;
    int32_t row[16], out[16], lab[16];
    n = vlp_tokenizer_encode_pair(t, "unaffable dogs eat unaffable cats", NULL, 16, row, NULL, NULL);
    int together = 1, some = 0, split = 0;
    for (uint64_t seed = 1; seed <= 200 && f; seed++) {
        vlp_mlm_mask(&c, row, NULL, 1, 16, f, 0, seed, out, lab);
        for (int s0 = 1; s0 + nw <= n; s0++) {
            if (memcmp(row + s0, w, nw * 4)) continue;
            int k = 0;
            for (int i = 0; i < nw; i++) k += lab[s0 + i] != -100;
            together &= k == 0 || k == nw;
            some += k == nw;
        }
    }
    /* without the flags the same rows do split the word: the check can fail */
    for (uint64_t seed = 1; seed <= 200; seed++) {
        vlp_mlm_mask(&c, row, NULL, 1, 16, NULL, 0, seed, out, lab);
        int k = 0;
        for (int i = 0; i < nw; i++) k += lab[1 + i] != -100;
        split += k > 0 && k < nw;
    }
    CHECK(together && some > 0 && split > 0, "whole-word MLM on BPE: together %d, whole picks %d, split without flags %d",
          together, some, split);
    free(f);
    vlp_tokenizer_free(t);
    vlp_bpe_free(b);
}

int main(void) {
    CHECK(vlp_tokenizer_kind_parse("wordpiece") == VLP_TOKENIZER_WORDPIECE &&
              vlp_tokenizer_kind_parse("clip_bpe") == VLP_TOKENIZER_CLIP_BPE && vlp_tokenizer_kind_parse("bpe") < 0 &&
              !strcmp(vlp_tokenizer_kind_name(VLP_TOKENIZER_CLIP_BPE), "clip_bpe"),
          "kind names");
    CHECK(!vlp_tokenizer_load(7, NULL) && strstr(vlp_last_error(), "wordpiece or clip_bpe"), "unknown kind: %s",
          vlp_last_error());
    CHECK(!vlp_tokenizer_load(VLP_TOKENIZER_WORDPIECE, "/nonexistent/vocab.txt") &&
              strstr(vlp_last_error(), "/nonexistent/vocab.txt"),
          "missing vocabulary named: %s", vlp_last_error());
    test_wordpiece_passthrough();
    test_bpe();
    return test_finish();
}
