/* vlp text: the CLIP byte-level BPE tokenizer and the BERT WordPiece tokenizer (below).
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

/* ---- BERT WordPiece ----------------------------------------------------------------------
 * Reproduces google-research/bert's FullTokenizer(vocab, do_lower_case=True) token for token
 * (tests/fixtures/bert/README.md): delete NUL, U+FFFD, Cc/Cf (but tab/LF/CR); whitespace and
 * Zs become spaces; spaces around CJK ideographs; split on whitespace; per word Python
 * str.lower(), NFD, drop Mn, split off punctuation (Unicode P* and ASCII symbols); then greedy
 * longest-match-first WordPiece ("##" continuations); a word longer than max_chars code points
 * (200, as the reference; Hugging Face uses 100) or with no match at some position is [UNK].
 * Special tokens written in the text are never matched. Invalid UTF-8 reads as U+FFFD, which
 * is then deleted. A vlp_wordpiece may be shared by threads (its word cache is locked). */
typedef struct vlp_wordpiece vlp_wordpiece;

/* vocab.txt (one token per line, id = line number, lines stripped of whitespace); NULL =
 * bert-base-uncased built into libvlp. The vocabulary must contain [UNK] and no token twice (a
 * duplicate is an error naming the file, the token and both lines). NULL on error. */
vlp_wordpiece *vlp_wordpiece_load(const char *path);
void vlp_wordpiece_free(vlp_wordpiece *t);
int vlp_wordpiece_vocab_size(const vlp_wordpiece *t); /* 30522 for bert-base-uncased */
/* Words longer than n code points become [UNK] (default 200; 100 matches Hugging Face). */
int vlp_wordpiece_set_max_chars(vlp_wordpiece *t, int n);

/* Token ids of text, no special tokens, no truncation (= convert_tokens_to_ids(tokenize)).
 * Writes at most cap ids; returns the full count (may exceed cap) or <0. ids may be NULL
 * when cap is 0. _n: text of len bytes (NUL characters are deleted, as the reference). */
int vlp_wordpiece_encode(vlp_wordpiece *t, const char *utf8, int32_t *ids, int cap);
int vlp_wordpiece_encode_n(vlp_wordpiece *t, const char *utf8, size_t len, int32_t *ids, int cap);

/* BERT model input (run_classifier.py convert_single_example) of length max_len >= 3:
 * [CLS] A [SEP] for one text (b NULL, or b tokenizes to nothing), [CLS] A [SEP] B [SEP] for a
 * pair. Too long: a single text keeps its first max_len - 2 tokens; for a pair the last token
 * of the longer side (B when equal) is dropped until both fit. input_ids gets the ids padded
 * with [PAD]; type_ids (may be NULL) 0 up to the first [SEP], 1 after, 0 in padding; mask (may
 * be NULL) 1 for tokens, 0 for padding. Returns the number of tokens (<= max_len) or <0. */
int vlp_wordpiece_encode_pair(vlp_wordpiece *t, const char *a, const char *b, int max_len, int32_t *input_ids,
                              int32_t *type_ids, int32_t *mask);
/* The same for texts of alen / blen bytes that may hold NUL characters (b NULL: blen ignored). */
int vlp_wordpiece_encode_pair_n(vlp_wordpiece *t, const char *a, size_t alen, const char *b, size_t blen,
                                int max_len, int32_t *input_ids, int32_t *type_ids, int32_t *mask);

/* ids -> text as the tokens joined with spaces, "##" continuations glued to the previous
 * piece. skip_special drops [PAD], [CLS], [SEP] and [MASK]. Writes a NUL-terminated string of
 * at most cap bytes; returns the full length (excluding the NUL, like snprintf) or <0 (an id
 * out of range). */
int vlp_wordpiece_decode(const vlp_wordpiece *t, const int32_t *ids, int n, int skip_special, char *out, size_t cap);

/* Vocabulary lookups: the id of a token string (exact, no normalisation) or -1; the token of
 * an id or NULL. */
int vlp_wordpiece_token_id(const vlp_wordpiece *t, const char *token);
const char *vlp_wordpiece_id_token(const vlp_wordpiece *t, int id);
enum { VLP_WP_PAD = 0, VLP_WP_UNK, VLP_WP_CLS, VLP_WP_SEP, VLP_WP_MASK };
/* The id of a special token (VLP_WP_*) or -1 if the vocabulary lacks it. */
int vlp_wordpiece_special_id(const vlp_wordpiece *t, int which);
/* Where the vocabulary came from, for messages: "'path'" or the built-in's description. */
const char *vlp_wordpiece_source(const vlp_wordpiece *t);
/* VLP_OK if the vocabulary has every special token of `which` (bits 1 << VLP_WP_*), else an
 * error naming the source and each missing token ("who need ..." says what needs them). */
int vlp_wordpiece_require_specials(const vlp_wordpiece *t, unsigned which, const char *who);
#define VLP_WP_VL_SPECIALS ((1u << VLP_WP_PAD) | (1u << VLP_WP_CLS) | (1u << VLP_WP_SEP) | (1u << VLP_WP_MASK))

/* ---- either tokenizer behind one interface ------------------------------------------------
 * So that any text model can be fed by either tokenizer (a VL model's config names its own).
 * WORDPIECE is the BERT input of vlp_wordpiece_*; CLIP_BPE lays BPE ids out the same way with
 * <|startoftext|> as [CLS], <|endoftext|> as [SEP], and two ids past the BPE vocabulary as
 * [MASK] and [PAD] (vocabulary 49408 + 2 for CLIP's); it has no [UNK]. */
typedef struct vlp_tokenizer vlp_tokenizer;
enum { VLP_TOKENIZER_WORDPIECE = 1, VLP_TOKENIZER_CLIP_BPE = 2 };
/* "wordpiece" / "clip_bpe" -> kind, or -1; and back. */
int vlp_tokenizer_kind_parse(const char *name);
const char *vlp_tokenizer_kind_name(int kind);
/* path: the WordPiece vocab.txt or BPE merges file; NULL = the built-in bert-base-uncased / CLIP. */
vlp_tokenizer *vlp_tokenizer_load(int kind, const char *path);
/* Takes ownership of wp. */
vlp_tokenizer *vlp_tokenizer_from_wordpiece(vlp_wordpiece *wp);
void vlp_tokenizer_free(vlp_tokenizer *t);
int vlp_tokenizer_kind(const vlp_tokenizer *t);
vlp_wordpiece *vlp_tokenizer_wordpiece(const vlp_tokenizer *t); /* NULL for BPE */
vlp_bpe *vlp_tokenizer_bpe(const vlp_tokenizer *t);             /* NULL for WordPiece */
int vlp_tokenizer_vocab_size(const vlp_tokenizer *t);
int vlp_tokenizer_special_id(const vlp_tokenizer *t, int which); /* VLP_WP_*; -1 if absent */
/* As vlp_wordpiece_encode(_n) / _encode_pair(_n) / _decode, for either kind. */
int vlp_tokenizer_encode(vlp_tokenizer *t, const char *utf8, int32_t *ids, int cap);
int vlp_tokenizer_encode_n(vlp_tokenizer *t, const char *utf8, size_t len, int32_t *ids, int cap);
int vlp_tokenizer_encode_pair(vlp_tokenizer *t, const char *a, const char *b, int max_len, int32_t *ids,
                              int32_t *type_ids, int32_t *mask);
int vlp_tokenizer_encode_pair_n(vlp_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                                int max_len, int32_t *ids, int32_t *type_ids, int32_t *mask);
int vlp_tokenizer_decode(const vlp_tokenizer *t, const int32_t *ids, int n, int skip_special, char *out, size_t cap);
/* One id as text (a WordPiece token, "##" kept; a BPE token decoded): snprintf's contract. */
int vlp_tokenizer_id_text(const vlp_tokenizer *t, int id, char *out, size_t cap);
/* Per id (vocab_size bytes, malloc'd): VLP_TOKEN_CONTINUES for a token that continues the word
 * before it (WordPiece "##"), VLP_TOKEN_CONTINUED for one the next token continues (BPE without
 * "</w>"): whole-word masking groups a word's tokens by either. */
enum { VLP_TOKEN_CONTINUES = 1, VLP_TOKEN_CONTINUED = 2 };
uint8_t *vlp_tokenizer_word_flags(const vlp_tokenizer *t);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
