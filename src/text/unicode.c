/* UTF-8 and the Unicode properties the CLIP tokenizer needs, on top of utf8proc
 * (Unicode 15.0; Python 3.11's unicodedata is 14.0, the difference never reaches text
 * written before 2022). */
#include "text_internal.h"

#include "vlp.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void u32s_free(u32s *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

static int u32s_reserve(u32s *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 16;
    while (cap < b->n + extra) cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) {
        b->oom = 1;
        return 0;
    }
    b->v = v;
    b->cap = cap;
    return 1;
}

void u32s_push(u32s *b, uint32_t c) {
    if (u32s_reserve(b, 1)) b->v[b->n++] = c;
}

void u32s_append(u32s *b, const uint32_t *c, size_t n) {
    if (n && u32s_reserve(b, n)) {
        memcpy(b->v + b->n, c, n * sizeof *c);
        b->n += n;
    }
}

void u32s_append_utf8(u32s *b, const char *s) { utf8_decode((const uint8_t *)s, strlen(s), b); }

void u32s_swap(u32s *a, u32s *b) {
    u32s t = *a;
    *a = *b;
    *b = t;
}

int u32s_eq(const u32s *a, const u32s *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

size_t utf8_decode(const uint8_t *s, size_t n, u32s *out) {
    size_t bad = 0, i = 0;
    if (!u32s_reserve(out, n)) return 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            out->v[out->n++] = c;
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            out->v[out->n++] = 0xFFFD;
            bad++;
            i++;
            continue;
        }
        size_t j = i + 1;
        int k;
        for (k = 1; k < len; k++, j++) {
            if (j >= n) break;
            uint8_t d = s[j];
            if (d < lo || d > hi) break;
            lo = 0x80, hi = 0xBF;
            cp = cp << 6 | (d & 0x3F);
        }
        if (k == len) out->v[out->n++] = cp;
        else out->v[out->n++] = 0xFFFD, bad++;
        i = j;
    }
    return bad;
}

int utf8_put(uint32_t c, uint8_t *o) {
    if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
    if (c < 0x80) return o[0] = (uint8_t)c, 1;
    if (c < 0x800) return o[0] = (uint8_t)(0xC0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    if (c > 0x10FFFF) c = 0xFFFD;
    o[0] = (uint8_t)(0xF0 | c >> 18), o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

size_t utf8_encode(const uint32_t *c, size_t n, uint8_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8_put(c[i], out + k);
    return k;
}

int uni_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int cat(uint32_t c) { return c > 0x10FFFF ? UTF8PROC_CATEGORY_CN : (int)utf8proc_category((utf8proc_int32_t)c); }

int uni_is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int uni_is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

int uni_is_word(uint32_t c) { return c == '_' || uni_is_letter(c) || uni_is_number(c); }

/* DerivedCoreProperties Cased: Lu, Ll, Lt, Other_Lowercase, Other_Uppercase. */
static int is_cased(uint32_t c) {
    int k = cat(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    static const uint32_t other[][2] = {
        {0xAA, 0xAA}, {0xBA, 0xBA}, {0x2B0, 0x2B8}, {0x2C0, 0x2C1}, {0x2E0, 0x2E4}, {0x345, 0x345},
        {0x37A, 0x37A}, {0x10FC, 0x10FC}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DBF},
        {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2160, 0x217F}, {0x24B6, 0x24E9},
        {0x2C7C, 0x2C7D}, {0xA69C, 0xA69D}, {0xA770, 0xA770}, {0xA7F2, 0xA7F4}, {0xA7F8, 0xA7F9},
        {0xAB5C, 0xAB5F}, {0xAB69, 0xAB69}, {0x10780, 0x10780}, {0x10783, 0x107BA},
        {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (c >= other[i][0] && c <= other[i][1]) return 1;
    return 0;
}

/* DerivedCoreProperties Case_Ignorable: Mn, Me, Cf, Lm, Sk, Word_Break MidLetter,
 * MidNumLet, Single_Quote. */
static int is_case_ignorable(uint32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
        return 1;
    }
    int k = cat(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

void uni_lower(const u32s *in, u32s *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c < 0x80) {
            u32s_push(out, c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (c == 0x130) { /* SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE */
            u32s_push(out, 'i');
            u32s_push(out, 0x307);
        } else if (c == 0x3A3) { /* Python's Final_Sigma rule (unicodeobject.c handle_capital_sigma) */
            size_t j = i;
            uint32_t d = 0;
            int found = 0;
            while (j > 0) {
                d = in->v[--j];
                if (!is_case_ignorable(d)) { found = 1; break; }
            }
            int fin = found && is_cased(d);
            if (fin) {
                size_t k;
                for (k = i + 1; k < in->n; k++)
                    if (!is_case_ignorable(in->v[k])) break;
                fin = k == in->n || !is_cased(in->v[k]);
            }
            u32s_push(out, fin ? 0x3C2 : 0x3C3);
        } else {
            u32s_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
}

int uni_nfc(u32s *b) {
    if (b->oom) return VLP_ERR_NOMEM;
    int ascii = 1;
    for (size_t i = 0; i < b->n && ascii; i++) ascii = b->v[i] < 0x300; /* < U+0300: NFC is identity */
    if (ascii) return 0;
    uint8_t *tmp = malloc(b->n * 4 + 1);
    if (!tmp) return VLP_ERR_NOMEM;
    size_t len = utf8_encode(b->v, b->n, tmp);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map(tmp, (utf8proc_ssize_t)len, &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(tmp);
    if (r < 0) {
        free(dst);
        return r == UTF8PROC_ERROR_NOMEM ? VLP_ERR_NOMEM : VLP_ERR_ARG;
    }
    b->n = 0;
    utf8_decode(dst, (size_t)r, b);
    free(dst);
    return b->oom ? VLP_ERR_NOMEM : 0;
}
