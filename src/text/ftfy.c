/* ftfy.fix_text (ftfy 6.3.1, default configuration) and Python's html.unescape, on code
 * point arrays: the cleaning the CLIP tokenizer applies before BPE.
 *
 * Implemented from ftfy 6.3.1: per line, repeat until nothing changes: unescape_html
 * (unless the text holds a '<'), fix_encoding (mojibake: re-encode as one of ftfy's ten
 * single-byte codecs and decode as UTF-8 when ftfy.badness.is_bad() says the text looks
 * like mojibake; restore_byte_a0, replace_lossy_sequences, utf-8-variants; Latin-1 read as
 * Windows-1252), fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes,
 * fix_line_breaks, remove_terminal_escapes, remove_control_chars, NFC; decode_inconsistent_utf8
 * with its character classes (UTF8_CLUES) derived from the codecs rather than copied (see
 * tests/tools/gen_text_tables.py). fix_surrogates is moot: decoded UTF-8 holds no surrogates. */
#include "text_internal.h"

#include "vlp.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "ftfy_tables.inc"
#include "html_entities.inc"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- html.unescape ------------------------------------------------------------------ */

static int ent_cmp(const char *key, size_t klen, const char *name) {
    int r = strncmp(key, name, klen);
    if (r) return r;
    return name[klen] ? -1 : 0;
}

static const char *html5_lookup(const char *key, size_t klen) {
    size_t lo = 0, hi = NELEM(html5_entities);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = ent_cmp(key, klen, html5_entities[mid].name);
        if (!r) return html5_entities[mid].value;
        if (r < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

static const char *ftfy_upper_lookup(const char *key, size_t klen) {
    size_t lo = 0, hi = NELEM(ftfy_upper_entities);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = ent_cmp(key, klen, ftfy_upper_entities[mid].name);
        if (!r) return ftfy_upper_entities[mid].value;
        if (r < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

static int html_invalid_codepoint(uint32_t c) {
    return (c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
           (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

static int is_hex(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* Python html._replace_charref for a numeric reference. */
static void numeric_ref(u32s *out, uint32_t num) {
    for (size_t k = 0; k < NELEM(html_invalid_charref); k++)
        if (html_invalid_charref[k][0] == num) {
            u32s_push(out, html_invalid_charref[k][1]);
            return;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) u32s_push(out, 0xFFFD);
    else if (!html_invalid_codepoint(num)) u32s_push(out, num);
}

void html_unescape(const uint32_t *s, size_t n, u32s *out) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            u32s_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && s[j] == '#') { /* &#[0-9]+;? | &#[xX][0-9a-fA-F]+;? */
            size_t k = j + 1;
            int hex = 0;
            if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') && is_hex(s[k + 1])) hex = 1, k++;
            if (!hex && !(k < n && s[k] >= '0' && s[k] <= '9')) {
                u32s_push(out, s[i++]);
                continue;
            }
            uint32_t num = 0;
            for (; k < n && (hex ? is_hex(s[k]) : (s[k] >= '0' && s[k] <= '9')); k++) {
                uint32_t d = s[k] <= '9' ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10;
                num = num > 0x110000 ? 0x110001 : num * (hex ? 16 : 10) + d;
            }
            if (k < n && s[k] == ';') k++;
            numeric_ref(out, num);
            i = k;
            continue;
        }
        /* [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        char key[34];
        while (k < n && k - j < 32) {
            uint32_t c = s[k];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
            key[k - j] = c < 0x80 ? (char)c : '\x01';
            k++;
        }
        if (k == j) {
            u32s_push(out, s[i++]);
            continue;
        }
        if (k < n && s[k] == ';') key[k - j] = ';', k++;
        size_t len = k - j; /* in code points == bytes of key */
        const char *v = html5_lookup(key, len);
        if (v) {
            u32s_append_utf8(out, v);
        } else {
            size_t x;
            for (x = len - 1; x >= 2 && x < len; x--)
                if ((v = html5_lookup(key, x))) break;
            if (v && x >= 2 && x < len) {
                u32s_append_utf8(out, v);
                u32s_append(out, s + j + x, len - x);
            } else {
                u32s_append(out, s + i, k - i);
            }
        }
        i = k;
    }
}

/* ---- ftfy.fixes.unescape_html: &#?[0-9A-Za-z]{1,24}; ---------------------------------- */

static int is_alnum_ascii(uint32_t c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static void ftfy_unescape(const u32s *in, u32s *out) {
    const uint32_t *s = in->v;
    size_t n = in->n, i = 0;
    out->n = 0;
    while (i < n) {
        if (s[i] != '&') {
            u32s_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1, k;
        int numeric = j < n && s[j] == '#';
        if (numeric) j++;
        for (k = j; k < n && k - j < 25 && is_alnum_ascii(s[k]); k++) {}
        if (k == j || k - j > 24 || k >= n || s[k] != ';') {
            u32s_push(out, s[i++]);
            continue;
        }
        k++; /* past ';' */
        char key[40];
        size_t kl = 0;
        for (size_t t = i + 1; t < k; t++) key[kl++] = (char)s[t];
        const char *v = NULL;
        if (!numeric) {
            v = html5_lookup(key, kl);
            if (!v) v = ftfy_upper_lookup(key, kl);
            if (v) u32s_append_utf8(out, v);
            else u32s_append(out, s + i, k - i);
        } else {
            u32s tmp = {0};
            html_unescape(s + i, k - i, &tmp);
            int semi = 0;
            for (size_t t = 0; t < tmp.n; t++) semi |= tmp.v[t] == ';';
            if (semi || tmp.oom) u32s_append(out, s + i, k - i);
            else u32s_append(out, tmp.v, tmp.n);
            u32s_free(&tmp);
        }
        i = k;
    }
}

/* ---- ftfy.badness.is_bad -------------------------------------------------------------- */

static uint32_t mbcat(int64_t c) {
    if (c < 0xA0) return c >= 0x80 ? MB_C1 : 0;
    size_t lo = 0, hi = NELEM(mojibake_cats);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mojibake_cats[mid].cp == (uint32_t)c) return mojibake_cats[mid].mask;
        if (mojibake_cats[mid].cp < (uint32_t)c) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* c is one of the code points of the UTF-8 string set */
static int in_set(int64_t c, const char *set) {
    if (c < 0) return 0;
    const uint8_t *p = (const uint8_t *)set;
    while (*p) {
        utf8proc_int32_t d;
        utf8proc_ssize_t r = utf8proc_iterate(p, -1, &d);
        if (r <= 0) return 0;
        if (d == c) return 1;
        p += r;
    }
    return 0;
}

static int az(int64_t c) { return c >= 'a' && c <= 'z'; }
static int azAZ(int64_t c) { return c >= 0 && c < 128 && ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

int ftfy_is_bad(const uint32_t *s, size_t n) {
    enum {
        C1 = MB_C1, BAD = MB_BAD, LAW = MB_LAW, CUR = MB_CURRENCY, SP = MB_START_PUNCTUATION,
        EP = MB_END_PUNCTUATION, NUM = MB_NUMERIC, KAO = MB_KAOMOJI, UA = MB_UPPER_ACCENTED,
        LA = MB_LOWER_ACCENTED, UC = MB_UPPER_COMMON, LC = MB_LOWER_COMMON, BOX = MB_BOX, COM = MB_COMMON
    };
    for (size_t i = 0; i < n; i++) {
        int64_t c[6];
        uint32_t m[6];
        for (int k = 0; k < 6; k++) {
            c[k] = i + k < n ? (int64_t)s[i + k] : -1;
            m[k] = c[k] >= 0 ? mbcat(c[k]) : 0;
        }
        /* quick reject: no alternative starts with this character */
        if (c[0] >= 0x80 && !m[0] && !uni_isspace((uint32_t)c[0]) && !in_set(c[0], "ÂÃÎÐØÙà√≈‚вВГРСβΒΓΞΟāŒœ×"))
            continue;
        if (m[0] & C1) return 1;
        if ((m[0] & (BAD | LA | UA | BOX | SP | EP | CUR | NUM | LAW)) && (m[1] & BAD)) return 1;
        if (azAZ(c[0]) && (m[1] & (LC | UC)) && (m[2] & BAD)) return 1;
        if ((m[0] & BAD) && (m[1] & (LA | UA | BOX | SP | EP | CUR | NUM | LAW))) return 1;
        if ((m[0] & (LA | LC | BOX | EP | CUR | NUM)) && (m[1] & UA)) return 1;
        if ((m[0] & (BOX | EP | CUR | NUM)) && (m[1] & LA)) return 1;
        if ((m[0] & (LA | BOX | EP)) && (m[1] & CUR)) return 1;
        if (c[0] >= 0 && uni_isspace((uint32_t)c[0]) && (m[1] & UA) && (m[2] & CUR)) return 1;
        if ((m[0] & (UA | BOX)) && (m[1] & (NUM | LAW))) return 1;
        if ((m[0] & (LA | UA | BOX | CUR | EP)) && (m[1] & SP) && (m[2] & NUM)) return 1;
        if ((m[0] & (LA | UA | CUR | NUM | BOX | LAW)) && (m[1] & EP) && (m[2] & SP)) return 1;
        if ((m[0] & (CUR | NUM | BOX)) && (m[1] & SP)) return 1;
        if (az(c[0]) && (m[1] & UA) && (m[2] & (SP | CUR))) return 1;
        if ((m[0] & BOX) && (m[1] & KAO)) return 1;
        if ((m[0] & (LA | UA | CUR | NUM | SP | EP | LAW)) && (m[1] & BOX)) return 1;
        if ((m[0] & BOX) && (m[1] & EP)) return 1;
        if ((m[0] & (LA | UA)) && (m[1] & (SP | EP)) && c[2] >= 0 && uni_is_word((uint32_t)c[2])) return 1;
        if ((c[0] == 0x152 || c[0] == 0x153) && c[1] >= 0 && !azAZ(c[1])) return 1;
        if ((m[0] & UA) && c[1] == 0xB0) return 1;
        if (in_set(c[0], "ÂÃÎÐ") && (in_set(c[1], "€œŠš¢£Ÿž\xc2\xa0\xc2\xad®©°·»–—´") || (m[1] & (SP | EP)))) return 1;
        if (c[0] == 0xD7 && in_set(c[1], "²³")) return 1;
        if (in_set(c[0], "ØÙ") && ((m[1] & (COM | CUR | BAD | NUM | SP)) || in_set(c[1], "ŸŠ®°µ»")) &&
            in_set(c[2], "ØÙ") && ((m[3] & (COM | CUR | BAD | NUM | SP)) || in_set(c[3], "ŸŠ®°µ»")))
            return 1;
        if (c[0] == 0xE0 && in_set(c[1], "²µ¹¼½¾")) return 1;
        if (c[0] == 0x221A && in_set(c[1], "±∂†≠®™´≤≥¥µø")) return 1;
        if (c[0] == 0x2248 && in_set(c[1], "°¢")) return 1;
        if (c[0] == 0x201A && c[1] == 0xC4 && in_set(c[2], "ìîïòôúùû†°¢π")) return 1;
        if (c[0] == 0x201A && in_set(c[1], "âó") && in_set(c[2], "àä°ê")) return 1;
        if (c[0] == 0x432 && c[1] == 0x402) return 1;
        if (in_set(c[0], "ВГРС") && ((m[1] & (C1 | BAD | SP | EP | CUR)) || in_set(c[1], "°µ")) && in_set(c[2], "ВГРС"))
            return 1;
        if (c[0] == 0x413 && c[1] == 0x45E && c[2] == 0x412 && c[3] == 0x402 && c[4] == 0x412 && c[5] >= 0 &&
            c[5] != '\n' && i + 6 < n && (azAZ(s[i + 6]) || s[i + 6] == ' '))
            return 1;
        if (c[0] == 0xC3 && (c[1] == 0xA0 || c[1] == 0xA1)) return 1;
        if (az(c[0]) && ((c[1] >= 0 && uni_isspace((uint32_t)c[1]) && (c[2] == 0xC3 || c[2] == 0xC2) && c[3] == ' ') ||
                         ((c[1] == 0xC3 || c[1] == 0xC2) && c[2] == ' ')))
            return 1;
        if (i == 0 && (c[0] == 0xC3 || c[0] == 0xC2) && c[1] == ' ') return 1;
        if ((az(c[0]) || in_set(c[0], ".,?!") || (m[0] & EP)) && c[1] == 0xC2 && (c[2] == ' ' || (m[2] & (SP | EP))))
            return 1;
        if (c[0] == 0x3B2 && c[1] == 0x20AC && in_set(c[2], "™\xc2\xa0Ά\xc2\xad®°")) return 1;
        if (in_set(c[0], "ΒΓΞΟ") && ((m[1] & (C1 | BAD | SP | EP | CUR)) || c[1] == 0xB0) && in_set(c[2], "ΒΓΞΟ"))
            return 1;
        if (c[0] == 0x101 && c[1] == 0x20AC) return 1;
    }
    return 0;
}

/* ---- fix_encoding --------------------------------------------------------------------- */

static int enc_byte(int e, uint32_t c) {
    if (c < 0x80 && c != 0x1A) return (int)c;
    const uint16_t *t = ftfy_charmap[e];
    if (t[0x1A] == c) return 0x1A;
    for (int b = 0x80; b < 0x100; b++)
        if (t[b] == c) return b;
    return -1;
}

/* Strict UTF-8 (variants = ftfy's utf-8-variants: CESU-8 surrogate pairs, C0 80). */
static int decode_utf8_strict(const uint8_t *b, size_t n, int variants, u32s *out) {
    out->n = 0;
    size_t i = 0;
    while (i < n) {
        if (variants) {
            if (i + 1 < n && b[i] == 0xC0 && b[i + 1] == 0x80) {
                u32s_push(out, 0);
                i += 2;
                continue;
            }
            if (i + 5 < n && b[i] == 0xED && b[i + 1] >= 0xA0 && b[i + 1] <= 0xAF && b[i + 2] >= 0x80 &&
                b[i + 2] <= 0xBF && b[i + 3] == 0xED && b[i + 4] >= 0xB0 && b[i + 4] <= 0xBF && b[i + 5] >= 0x80 &&
                b[i + 5] <= 0xBF) {
                uint32_t hi = 0xD000 | (uint32_t)(b[i + 1] & 0x3F) << 6 | (b[i + 2] & 0x3F);
                uint32_t lo = 0xD000 | (uint32_t)(b[i + 4] & 0x3F) << 6 | (b[i + 5] & 0x3F);
                u32s_push(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                i += 6;
                continue;
            }
        }
        size_t start = out->n;
        size_t len = b[i] < 0x80 ? 1 : b[i] < 0xE0 ? 2 : b[i] < 0xF0 ? 3 : 4;
        if (i + len > n) return 0;
        if (utf8_decode(b + i, len, out) || out->n != start + 1) return 0;
        i += len;
    }
    return !out->oom;
}

static int altered_utf8_at(const uint8_t *b, size_t n, size_t i, size_t *mlen) {
#define R(x, lo, hi) ((x) >= (lo) && (x) <= (hi))
#define CONT2(x) (R(x, 0x80, 0x84) || R(x, 0x86, 0x9F) || R(x, 0xA1, 0xBF))
    uint8_t c = b[i];
    uint8_t c1 = i + 1 < n ? b[i + 1] : 0, c2 = i + 2 < n ? b[i + 2] : 0, c3 = i + 3 < n ? b[i + 3] : 0;
    if ((c == 0xC2 || c == 0xC3 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9) && c1 == ' ') return *mlen = 2, 1;
    if ((c == 0xE2 || c == 0xE3) && c1 == ' ' && i + 2 < n && CONT2(c2)) return *mlen = 3, 1;
    if (R(c, 0xE0, 0xE3) && i + 1 < n && CONT2(c1) && c2 == ' ') return *mlen = 3, 1;
    if (c == 0xF0 && i + 3 < n) {
        int a = c1 == ' ' || R(c1, 0x80, 0xBF), bb = c2 == ' ' || R(c2, 0x80, 0xBF), d = c3 == ' ' || R(c3, 0x80, 0xBF);
        int spaces = (c1 == ' ') + (c2 == ' ') + (c3 == ' ');
        if (a && bb && d && spaces == 1) return *mlen = 4, 1;
    }
    return 0;
#undef CONT2
}

/* fixes.restore_byte_a0 */
static size_t restore_byte_a0(uint8_t *b, size_t n, uint8_t *tmp) {
    /* A_GRAVE_WORD_RE = b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 " */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == 0xC3 && i + 1 < n && b[i + 1] == ' ') {
            const uint8_t *r = b + i + 2;
            size_t left = n - i - 2;
            int neg = (left >= 1 && r[0] == ' ') || (left >= 5 && (!memcmp(r, "quele", 5) || !memcmp(r, "quela", 5) ||
                                                                   !memcmp(r, "quilo", 5))) ||
                      (left >= 2 && r[0] == 's' && r[1] == ' ');
            if (!neg) {
                tmp[k++] = 0xC3, tmp[k++] = 0xA0, tmp[k++] = ' ';
                i++;
                continue;
            }
        }
        tmp[k++] = b[i];
    }
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        size_t ml;
        if (altered_utf8_at(tmp, k, i, &ml)) {
            for (size_t t = 0; t < ml; t++) b[m++] = tmp[i + t] == ' ' ? 0xA0 : tmp[i + t];
            i += ml;
        } else {
            b[m++] = tmp[i++];
        }
    }
    return m;
}

/* fixes.replace_lossy_sequences: LOSSY_UTF8_RE matches -> EF BF BD */
static size_t lossy_at(const uint8_t *b, size_t n, size_t i) {
#define Q(x) ((x) == 0x1A || (x) == '?')
#define C(x) ((x) == 0x1A || R(x, 0x80, 0xBF))
    uint8_t c = b[i];
    size_t left = n - i;
    if (R(c, 0xC2, 0xDF) && left >= 2 && b[i + 1] == 0x1A) return 2;
    if (R(c, 0xC2, 0xC3) && left >= 2 && b[i + 1] == '?') return 2;
    if (c == 0xED && left >= 6 && R(b[i + 1], 0xA0, 0xAF) && b[i + 3] == 0xED && R(b[i + 4], 0xB0, 0xBF)) {
        if (Q(b[i + 2]) && (Q(b[i + 5]) || R(b[i + 5], 0x80, 0xBF))) return 6;
        if ((Q(b[i + 2]) || R(b[i + 2], 0x80, 0xBF)) && Q(b[i + 5])) return 6;
    }
    if (R(c, 0xE0, 0xEF) && left >= 3) {
        if (Q(b[i + 1]) && C(b[i + 2])) return 3;
        if (C(b[i + 1]) && Q(b[i + 2])) return 3;
    }
    if (R(c, 0xF0, 0xF4) && left >= 4) {
        if (Q(b[i + 1]) && C(b[i + 2]) && C(b[i + 3])) return 4;
        if (C(b[i + 1]) && Q(b[i + 2]) && C(b[i + 3])) return 4;
        if (C(b[i + 1]) && C(b[i + 2]) && Q(b[i + 3])) return 4;
    }
    if (c == 0x1A) return 1;
    return 0;
#undef Q
#undef C
#undef R
}

static size_t replace_lossy(const uint8_t *b, size_t n, uint8_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = lossy_at(b, n, i);
        if (l) {
            out[k++] = 0xEF, out[k++] = 0xBF, out[k++] = 0xBD;
            i += l;
        } else {
            out[k++] = b[i++];
        }
    }
    return k;
}

static int in_sorted(uint32_t c, const uint32_t *a, size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] == c) return 1;
        if (a[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}
#define IN_CLUE(c, set) in_sorted((c), set, NELEM(set))

/* chardata.UTF8_DETECTOR_RE at s[i]: length of the match or 0 */
static size_t utf8_clue_at(const uint32_t *s, size_t n, size_t i) {
    /* alternatives in order: a char in several lead sets tries the shorter form first */
    for (size_t want = 1; want <= 3; want++) {
        const uint32_t *set = want == 1 ? utf8_first_of_2 : want == 2 ? utf8_first_of_3 : utf8_first_of_4;
        size_t setn = want == 1 ? NELEM(utf8_first_of_2) : want == 2 ? NELEM(utf8_first_of_3) : NELEM(utf8_first_of_4);
        if (!in_sorted(s[i], set, setn) || i + want >= n) continue;
        size_t k;
        for (k = 1; k <= want; k++)
            if (!IN_CLUE(s[i + k], utf8_continuation)) break;
        if (k > want) return want + 1;
    }
    return 0;
}

static void fix_encoding_full(u32s *t, int depth);

/* fixes.decode_inconsistent_utf8: fix each UTF-8-looking run that is_bad on its own. */
static int decode_inconsistent_utf8(const u32s *t, u32s *out, int depth) {
    int found = 0;
    out->n = 0;
    for (size_t i = 0; i < t->n;) {
        size_t l = utf8_clue_at(t->v, t->n, i);
        if (l && l < t->n && ftfy_is_bad(t->v + i, l) && depth < 4) {
            u32s sub = {0};
            u32s_append(&sub, t->v + i, l);
            fix_encoding_full(&sub, depth + 1);
            u32s_append(out, sub.v, sub.n);
            if (sub.oom) out->oom = 1;
            u32s_free(&sub);
            found = 1;
            i += l;
        } else if (l) {
            u32s_append(out, t->v + i, l);
            i += l;
        } else {
            u32s_push(out, t->v[i++]);
        }
    }
    return found;
}

static int utf8_detector_search(const u32s *t) {
    for (size_t i = 0; i < t->n; i++)
        if (utf8_clue_at(t->v, t->n, i)) return 1;
    return 0;
}

/* One step of fixes._fix_encoding_one_step_and_explain. Returns 1 if out holds a new text. */
static int fix_encoding_step(const u32s *t, u32s *out, int depth) {
    int ascii = 1;
    for (size_t i = 0; i < t->n && ascii; i++) ascii = t->v[i] < 0x80;
    if (!t->n || ascii || !ftfy_is_bad(t->v, t->n)) return 0;
    size_t cap = t->n * 3 + 16; /* restore_byte_a0 grows by at most 1 byte per 2; lossy by 3 per 1 */
    uint8_t *b = malloc(cap), *tmp = malloc(cap * 2);
    int latin1 = 0, done = 0;
    if (!b || !tmp) {
        free(b), free(tmp);
        return 0;
    }
    for (int e = 0; e < FTFY_NENC && !done; e++) {
        size_t n = 0;
        int ok = 1;
        for (size_t i = 0; i < t->n && ok; i++) {
            int x = enc_byte(e, t->v[i]);
            if (x < 0) ok = 0;
            else b[n++] = (uint8_t)x;
        }
        if (!ok) continue;
        if (e == 0) latin1 = 1;
        for (size_t i = 0, ml; i < n; i++)
            if (altered_utf8_at(b, n, i, &ml)) {
                n = restore_byte_a0(b, n, tmp);
                break;
            }
        if (!strncmp(ftfy_enc_names[e], "sloppy", 6)) {
            size_t m = replace_lossy(b, n, tmp);
            memcpy(b, tmp, m);
            n = m;
        }
        int variants = memchr(b, 0xED, n) || memchr(b, 0xC0, n);
        if (decode_utf8_strict(b, n, variants, out)) done = 1;
    }
    if (!done && utf8_detector_search(t)) {
        if (decode_inconsistent_utf8(t, out, depth) && !u32s_eq(t, out)) done = 1;
    }
    if (!done && latin1) {
        /* Latin-1 meant as Windows-1252 (strict: bytes 81 8D 8F 90 9D do not decode) */
        int ok = 1, changed = 0;
        out->n = 0;
        for (size_t i = 0; i < t->n && ok; i++) {
            uint32_t c = t->v[i];
            if (c >= 0x80 && c < 0xA0) {
                c = cp1252_strict[c - 0x80];
                ok = c != 0;
                changed = 1;
            }
            u32s_push(out, c);
        }
        done = ok && changed;
    }
    if (!done) {
        int c1 = 0;
        for (size_t i = 0; i < t->n && !c1; i++) c1 = t->v[i] >= 0x80 && t->v[i] < 0xA0;
        if (c1) {
            out->n = 0;
            for (size_t i = 0; i < t->n; i++) {
                uint32_t c = t->v[i];
                u32s_push(out, c >= 0x80 && c < 0xA0 ? ftfy_charmap[1][c] : c);
            }
            done = 1;
        }
    }
    free(b), free(tmp);
    return done && !u32s_eq(t, out);
}

/* fixes.fix_encoding: one step at a time until nothing changes */
static void fix_encoding_full(u32s *t, int depth) {
    u32s o = {0};
    for (int step = 0; step < 16 && fix_encoding_step(t, &o, depth); step++) u32s_swap(t, &o);
    if (o.oom) t->oom = 1;
    u32s_free(&o);
}

/* ---- the simple fixers ---------------------------------------------------------------- */

static const char *table_lookup(uint32_t c) {
    if (c == 0x3000 || (c >= 0xFF01 && c < 0xFFF0)) {
        for (size_t k = 0; k < NELEM(ftfy_width_map); k++)
            if (ftfy_width_map[k].from == c) return ftfy_width_map[k].to;
    }
    for (size_t k = 0; k < NELEM(ftfy_ligatures); k++)
        if (ftfy_ligatures[k].from == c) return ftfy_ligatures[k].to;
    return NULL;
}

static int is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static int is_nd(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

/* fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
 * remove_terminal_escapes, remove_control_chars, in ftfy's order (each is a per-character
 * map or a removal, so they compose into passes). */
static void simple_fixes(const u32s *in, u32s *out) {
    u32s a = {0};
    /* c1 controls, then ligatures and widths, then quotes (a C1 character can become a
     * curly quote, a ligature can expand to U+02BC) */
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c >= 0x80 && c < 0xA0) c = ftfy_charmap[1][c];
        const char *to = c >= 0x100 ? table_lookup(c) : NULL;
        size_t st = a.n;
        if (to) u32s_append_utf8(&a, to);
        else u32s_push(&a, c);
        for (size_t k = st; k < a.n; k++) {
            uint32_t d = a.v[k];
            if (d == 0x2BC || (d >= 0x2018 && d <= 0x201B)) a.v[k] = '\'';
            else if (d >= 0x201C && d <= 0x201F) a.v[k] = '"';
        }
    }
    /* line breaks */
    u32s b = {0};
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.v[i];
        if (c == '\r') {
            if (i + 1 < a.n && a.v[i + 1] == '\n') i++;
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        u32s_push(&b, c);
    }
    /* terminal escapes: \033\[((?:\d|;)*)([a-zA-Z]) */
    out->n = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (b.v[i] == 0x1B && i + 1 < b.n && b.v[i + 1] == '[') {
            size_t k = i + 2;
            while (k < b.n && (b.v[k] == ';' || is_nd(b.v[k]))) k++;
            if (k < b.n && azAZ(b.v[k])) {
                i = k;
                continue;
            }
        }
        if (!is_removed_control(b.v[i])) u32s_push(out, b.v[i]);
    }
    if (a.oom || b.oom) out->oom = 1;
    u32s_free(&a);
    u32s_free(&b);
}

static int fix_segment(const uint32_t *s, size_t n, int unescape, u32s *out) {
    u32s t = {0}, o = {0}, prev = {0};
    int rc = 0;
    u32s_append(&t, s, n);
    for (int iter = 0; iter < 16; iter++) {
        prev.n = 0;
        u32s_append(&prev, t.v, t.n);
        if (unescape) {
            ftfy_unescape(&t, &o);
            u32s_swap(&t, &o);
        }
        fix_encoding_full(&t, 0);
        simple_fixes(&t, &o);
        u32s_swap(&t, &o);
        if ((rc = uni_nfc(&t))) break;
        if (t.oom || o.oom || prev.oom) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        if (u32s_eq(&t, &prev)) break;
    }
    if (!rc) u32s_append(out, t.v, t.n);
    u32s_free(&t), u32s_free(&o), u32s_free(&prev);
    return rc;
}

int ftfy_fix_text(const u32s *in, u32s *out) {
    int unescape = 1;
    size_t pos = 0;
    out->n = 0;
    while (pos < in->n) {
        size_t end = pos;
        while (end < in->n && in->v[end] != '\n') end++;
        if (end < in->n) end++;
        for (size_t i = pos; i < end && unescape; i++)
            if (in->v[i] == '<') unescape = 0;
        int rc = fix_segment(in->v + pos, end - pos, unescape, out);
        if (rc) return rc;
        pos = end;
    }
    return out->oom ? VLP_ERR_NOMEM : 0;
}
