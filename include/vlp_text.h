/* vlp text: the CLIP byte-level BPE tokenizer.
 *
 * Reproduces OpenAI CLIP's SimpleTokenizer and clip.tokenize() id for id: ftfy.fix_text
 * (ftfy 6.3.1 defaults: mojibake, C1 controls, HTML entities unless the text holds a '<',
 * terminal escapes, control characters, Latin ligatures, fullwidth forms, curly quotes,
 * NFC), html.unescape twice, whitespace runs to one space, Python str.lower(), the CLIP
 * split regex, then byte-level BPE over the 49,408-token vocabulary. "<|startoftext|>" and
 * "<|endoftext|>" written in the text become ids 49406 and 49407.
 *
 * Input is UTF-8. Invalid UTF-8 is not an error: each maximal ill-formed subsequence is
 * read as U+FFFD, exactly as Python's bytes.decode("utf-8", "replace") does, so the ids
 * are those CLIP gives for that decoded string.
 *
 * Errors follow vlp.h: negative vlp_status with the message in vlp_last_error().
 * A vlp_bpe may be shared by threads: encode/tokenize lock its word cache. */
#ifndef VLP_TEXT_H
#define VLP_TEXT_H

#include "vlp.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define VLP_BPE_SOT 49406 /* <|startoftext|> */
#define VLP_BPE_EOT 49407 /* <|endoftext|> */

typedef struct vlp_bpe vlp_bpe;

/* A merges file (.txt, or gzip'd .txt.gz: "#version" line, then "left right" per line, as
 * bpe_simple_vocab_16e6.txt.gz); NULL = the CLIP vocabulary built into libvlp. Returns NULL
 * on error. */
vlp_bpe *vlp_bpe_load(const char *path);
void vlp_bpe_free(vlp_bpe *t);

/* Token ids of text (no start/end tokens, no truncation) = SimpleTokenizer().encode(text).
 * Writes at most cap ids; returns the full count (may exceed cap) or <0 on error. Empty or
 * all-whitespace text gives 0. ids may be NULL when cap is 0. */
int vlp_bpe_encode(vlp_bpe *t, const char *utf8, int32_t *ids, int cap);

/* CLIP model input = clip.tokenize(text, context_length=context, truncate=...):
 * 49406, ids..., 49407, then zeros up to `context` ids in out. Too long: with truncate=1 the
 * ids are cut so that out[context-1] is 49407; with truncate=0 it is an error naming both
 * lengths. Returns the number of non-pad tokens (<= context) or <0. context >= 2. */
int vlp_bpe_tokenize(vlp_bpe *t, const char *utf8, int context, int truncate, int32_t *out);

/* ids -> text as SimpleTokenizer().decode: "</w>" becomes a space, bytes that are not UTF-8
 * become U+FFFD. Writes a NUL-terminated string of at most cap bytes; returns the full length
 * (excluding the NUL, like snprintf) or <0 (an id out of range). */
/* The same for text of len bytes that may hold NUL characters (removed, as ftfy does). */
int vlp_bpe_encode_n(vlp_bpe *t, const char *utf8, size_t len, int32_t *ids, int cap);
int vlp_bpe_tokenize_n(vlp_bpe *t, const char *utf8, size_t len, int context, int truncate, int32_t *out);

int vlp_bpe_decode(vlp_bpe *t, const int32_t *ids, int n, char *out, size_t cap);

int vlp_bpe_vocab_size(const vlp_bpe *t); /* 49408 for CLIP */

/* The cleaned text the BPE sees (ftfy, html.unescape x2, whitespace, lower), NUL-terminated
 * and malloc'd (free with free()); NULL on error. For debugging. */
char *vlp_bpe_clean_text(const char *utf8);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
