/* Internals of the text pipeline (src/text): code point buffers, UTF-8, the Unicode
 * properties the CLIP tokenizer needs, ftfy.fix_text and html.unescape. Not installed. */
#ifndef VLP_TEXT_INTERNAL_H
#define VLP_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* A growable array of code points. `oom` is set (and pushes become no-ops) when an
 * allocation fails, so callers check once at the end. */
typedef struct {
    uint32_t *v;
    size_t n, cap;
    int oom;
} u32s;

void u32s_free(u32s *b);
void u32s_push(u32s *b, uint32_t c);
void u32s_append(u32s *b, const uint32_t *c, size_t n);
void u32s_append_utf8(u32s *b, const char *s); /* NUL-terminated valid UTF-8 */
void u32s_swap(u32s *a, u32s *b);
int u32s_eq(const u32s *a, const u32s *b);

/* UTF-8 -> code points. Invalid sequences become U+FFFD, one per maximal ill-formed
 * subpart, exactly as Python's bytes.decode("utf-8", "replace"). Returns the number of
 * replacements (0: the input was valid UTF-8). */
size_t utf8_decode(const uint8_t *s, size_t n, u32s *out);
/* Encodes code points (surrogates become U+FFFD). Returns bytes written; out needs 4*n. */
size_t utf8_encode(const uint32_t *c, size_t n, uint8_t *out);
int utf8_put(uint32_t c, uint8_t *out);

/* Python str.isspace() (== `regex` \s for the characters that reach it). */
int uni_isspace(uint32_t c);
int uni_is_letter(uint32_t c); /* \p{L} */
int uni_is_number(uint32_t c); /* \p{N} */
int uni_is_word(uint32_t c);   /* Python re \w */
/* Python str.lower() of the whole buffer (full mapping, final sigma), in place into out. */
void uni_lower(const u32s *in, u32s *out);
/* Unicode NFC. Returns 0 or a negative vlp_status. */
int uni_nfc(u32s *b);

/* Python html.unescape(). */
void html_unescape(const uint32_t *s, size_t n, u32s *out);
/* ftfy.fix_text(text) with ftfy 6.3.1's default configuration. Returns 0 or <0. */
int ftfy_fix_text(const u32s *in, u32s *out);
/* ftfy.badness.is_bad */
int ftfy_is_bad(const uint32_t *s, size_t n);

#endif
