/* The CLIP byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py), in C.
 *
 * Symbols are token ids from the start: a piece's UTF-8 bytes map to the ids of their
 * byte-to-unicode characters (the first 256 tokens), the last one to its "</w>" twin (+256);
 * a merge of the pair (a, b) yields the id of the string a+b. Pairs live in an open-addressing
 * hash (pair -> rank, result); finished pieces in a cache (piece bytes -> ids). */
#include "vlp_text.h"

#include "internal.h"
#include "text_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

extern const unsigned char vlp_bpe_vocab_gz[], vlp_bpe_vocab_gz_end[];

#define NMERGES_CLIP (49152 - 256 - 2)

typedef struct {
    uint64_t key; /* left << 32 | right, UINT64_MAX = empty */
    int32_t rank, result;
} pair_slot;

typedef struct {
    uint64_t hash;
    uint32_t off, len;     /* piece bytes in cache_bytes */
    uint32_t ids_off, nids; /* ids in cache_ids; len == 0 marks an empty slot */
} cache_slot;

struct vlp_bpe {
    int nvocab;
    char *tok_bytes;  /* every token's bytes (byte-decoded; "</w>" kept literally) */
    uint32_t *tok_off; /* nvocab + 1 offsets */
    int32_t byte_id[256];
    pair_slot *pairs;
    size_t pair_mask;
    /* piece cache */
    pthread_mutex_t mu;
    cache_slot *cache;
    size_t cache_mask, cache_used;
    uint8_t *cache_bytes;
    size_t cb_n, cb_cap;
    int32_t *cache_ids;
    size_t ci_n, ci_cap;
};

static uint64_t fnv1a(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29) ^ (h >> 47); /* FNV's low bits alone index tables poorly */
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* ---- loading ------------------------------------------------------------------------- */

/* Inflates gzip data; stops early once max_lines lines are out (CLIP reads 48,895 of the
 * file's 262,145 lines: this keeps the load in a few milliseconds). */
static int gunzip(const uint8_t *src, size_t n, size_t max_lines, uint8_t **out, size_t *outn) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return VLP_ERR_NOMEM;
    size_t cap = 1 << 20, len = 0, lines = 0;
    uint8_t *buf = malloc(cap);
    int rc = Z_OK;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    while (buf) {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb, cap *= 2;
        }
        size_t chunk = cap - len < (1 << 16) ? cap - len : (1 << 16), before = len;
        z.next_out = buf + len;
        z.avail_out = (uInt)chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        len += chunk - z.avail_out;
        if (max_lines) {
            for (size_t i = before; i < len; i++) lines += buf[i] == '\n';
            if (lines >= max_lines && rc != Z_STREAM_END && (rc == Z_OK || rc == Z_BUF_ERROR)) {
                rc = Z_STREAM_END; /* enough */
                break;
            }
        }
        if (rc == Z_STREAM_END) {
            /* concatenated gzip members */
            if (z.avail_in == 0) break;
            if (inflateReset(&z) != Z_OK) break;
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) break;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    inflateEnd(&z);
    if (!buf) return VLP_ERR_NOMEM;
    if (rc != Z_STREAM_END) {
        free(buf);
        vlp_set_error("vlp_bpe_load: corrupt gzip data (%s)", z.msg ? z.msg : "truncated");
        return VLP_ERR_IO;
    }
    *out = buf, *outn = len;
    return 0;
}

/* GPT-2/CLIP bytes_to_unicode(): byte -> code point, and the order of the first 256 tokens. */
static void bytes_to_unicode(uint32_t cp_of_byte[256], int order[256]) {
    int k = 0, extra = 0;
    int is_bs[256] = {0};
    for (int b = '!'; b <= '~'; b++) is_bs[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) is_bs[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) is_bs[b] = 1;
    for (int b = 0; b < 256; b++)
        if (is_bs[b]) order[k++] = b, cp_of_byte[b] = (uint32_t)b;
    for (int b = 0; b < 256; b++)
        if (!is_bs[b]) order[k++] = b, cp_of_byte[b] = 256 + (uint32_t)extra++;
}

typedef struct {
    uint64_t hash;
    const char *s;
    uint32_t len;
    int32_t id;
} str_slot;

static int32_t *str_find(str_slot *t, size_t mask, const char *s, uint32_t len, int insert, int32_t id) {
    uint64_t h = fnv1a(s, len);
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (!t[i].s) {
            if (!insert) return NULL;
            t[i].hash = h, t[i].s = s, t[i].len = len, t[i].id = id;
            return &t[i].id;
        }
        if (t[i].hash == h && t[i].len == len && !memcmp(t[i].s, s, len)) {
            if (insert) t[i].id = id; /* later entries win, as in Python's dict(zip(vocab, ...)) */
            return &t[i].id;
        }
    }
}

static pair_slot *pair_find(const vlp_bpe *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = (size_t)mix64(key) & t->pair_mask;; i = (i + 1) & t->pair_mask) {
        if (t->pairs[i].key == key) return &t->pairs[i];
        if (t->pairs[i].key == UINT64_MAX) return NULL;
    }
}

static vlp_bpe *build(const char *txt, size_t n) {
    /* split lines */
    size_t nlines = 0;
    for (size_t i = 0; i < n && nlines <= NMERGES_CLIP + 1; i++) nlines += txt[i] == '\n';
    nlines++;
    const char **ls = malloc(nlines * sizeof *ls);
    uint32_t *ll = malloc(nlines * sizeof *ll);
    vlp_bpe *t = calloc(1, sizeof *t);
    str_slot *map = NULL;
    char *arena = NULL;
    if (!ls || !ll || !t) goto nomem;
    size_t nl = 0;
    for (size_t i = 0, st = 0; i <= n && nl < nlines; i++)
        if (i == n || txt[i] == '\n') {
            size_t e = i;
            if (e > st && txt[e - 1] == '\r') e--;
            ls[nl] = txt + st, ll[nl++] = (uint32_t)(e - st);
            st = i + 1;
        }
    while (nl > 0 && ll[nl - 1] == 0) nl--; /* trailing empty lines */
    /* merges = lines[1 : 49152-256-2+1] (CLIP's slice); fewer lines: all of them */
    size_t nmerge = nl > 1 ? nl - 1 : 0;
    if (nmerge > NMERGES_CLIP) nmerge = NMERGES_CLIP;
    if (nmerge == 0) {
        vlp_set_error("vlp_bpe_load: no merges in the vocabulary file");
        goto fail;
    }
    for (size_t r = 0; r < nmerge; r++) {
        const char *sp = memchr(ls[r + 1], ' ', ll[r + 1]);
        if (!sp || sp == ls[r + 1] || sp + 1 == ls[r + 1] + ll[r + 1] ||
            memchr(sp + 1, ' ', (size_t)(ls[r + 1] + ll[r + 1] - sp - 1))) {
            vlp_set_error("vlp_bpe_load: line %zu is not \"left right\": '%.*s'", r + 2, (int)(ll[r + 1] > 60 ? 60 : ll[r + 1]),
                          ls[r + 1]);
            goto fail;
        }
    }
    int nvocab = 512 + (int)nmerge + 2;
    t->nvocab = nvocab;
    /* vocabulary strings (byte-to-unicode form, UTF-8) in one arena */
    uint32_t cp_of_byte[256];
    int order[256];
    bytes_to_unicode(cp_of_byte, order);
    size_t asize = 256 * 2 * (2 + 4) + n + 64;
    arena = malloc(asize);
    uint32_t *voff = malloc(((size_t)nvocab + 1) * sizeof *voff);
    t->tok_off = voff;
    if (!arena || !voff) goto nomem;
    size_t an = 0;
    for (int k = 0; k < 512; k++) {
        voff[k] = (uint32_t)an;
        an += (size_t)utf8_put(cp_of_byte[order[k & 255]], (uint8_t *)arena + an);
        if (k >= 256) memcpy(arena + an, "</w>", 4), an += 4;
    }
    for (size_t r = 0; r < nmerge; r++) {
        voff[512 + r] = (uint32_t)an;
        const char *sp = memchr(ls[r + 1], ' ', ll[r + 1]);
        size_t l1 = (size_t)(sp - ls[r + 1]), l2 = ll[r + 1] - l1 - 1;
        memcpy(arena + an, ls[r + 1], l1), an += l1;
        memcpy(arena + an, sp + 1, l2), an += l2;
    }
    voff[nvocab - 2] = (uint32_t)an;
    memcpy(arena + an, "<|startoftext|>", 15), an += 15;
    voff[nvocab - 1] = (uint32_t)an;
    memcpy(arena + an, "<|endoftext|>", 13), an += 13;
    voff[nvocab] = (uint32_t)an;
    /* string -> id (last wins) */
    size_t mmask = 1;
    while (mmask < (size_t)nvocab * 2) mmask <<= 1;
    map = calloc(mmask, sizeof *map);
    if (!map) goto nomem;
    mmask--;
    for (int k = 0; k < nvocab; k++) str_find(map, mmask, arena + voff[k], voff[k + 1] - voff[k], 1, k);
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int l = utf8_put(cp_of_byte[b], u);
        t->byte_id[b] = *str_find(map, mmask, (const char *)u, (uint32_t)l, 0, 0);
    }
    /* pair -> (rank, result) (last wins, as dict(zip(merges, range(len(merges))))) */
    t->pair_mask = 1;
    while (t->pair_mask < nmerge * 2) t->pair_mask <<= 1;
    t->pairs = malloc(t->pair_mask * sizeof *t->pairs);
    if (!t->pairs) goto nomem;
    for (size_t i = 0; i < t->pair_mask; i++) t->pairs[i].key = UINT64_MAX;
    t->pair_mask--;
    for (size_t r = 0; r < nmerge; r++) {
        const char *sp = memchr(ls[r + 1], ' ', ll[r + 1]);
        uint32_t l1 = (uint32_t)(sp - ls[r + 1]), l2 = ll[r + 1] - l1 - 1;
        int32_t *a = str_find(map, mmask, ls[r + 1], l1, 0, 0), *b = str_find(map, mmask, sp + 1, l2, 0, 0);
        if (!a || !b) {
            vlp_set_error("vlp_bpe_load: merge %zu '%.*s' uses a symbol not made by earlier merges", r + 1,
                          (int)(ll[r + 1] > 60 ? 60 : ll[r + 1]), ls[r + 1]);
            goto fail;
        }
        int32_t res = *str_find(map, mmask, arena + voff[512 + r], voff[513 + r] - voff[512 + r], 0, 0);
        uint64_t key = (uint64_t)(uint32_t)*a << 32 | (uint32_t)*b;
        size_t i = (size_t)mix64(key) & t->pair_mask;
        while (t->pairs[i].key != UINT64_MAX && t->pairs[i].key != key) i = (i + 1) & t->pair_mask;
        t->pairs[i].key = key, t->pairs[i].rank = (int32_t)r, t->pairs[i].result = res;
    }
    /* token bytes for decode: byte-decode every vocabulary string */
    int32_t byte_of_cp[512];
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of_byte[b]] = b;
    t->tok_bytes = malloc(an + 1);
    if (!t->tok_bytes) goto nomem;
    {
        u32s cps = {0};
        size_t o = 0;
        for (int k = 0; k < nvocab; k++) {
            cps.n = 0;
            utf8_decode((const uint8_t *)arena + voff[k], voff[k + 1] - voff[k], &cps);
            if (cps.oom) {
                u32s_free(&cps);
                goto nomem;
            }
            voff[k] = (uint32_t)o;
            for (size_t i = 0; i < cps.n; i++) {
                uint32_t c = cps.v[i];
                t->tok_bytes[o++] = c < 512 ? (char)byte_of_cp[c] : '?';
            }
        }
        voff[nvocab] = (uint32_t)o;
        u32s_free(&cps);
    }
    free(map), free(arena), free(ls), free(ll);
    pthread_mutex_init(&t->mu, NULL);
    return t;
nomem:
    vlp_set_error("vlp_bpe_load: out of memory");
fail:
    free(map), free(arena), free(ls), free(ll);
    if (t) {
        free(t->tok_off), free(t->pairs), free(t->tok_bytes);
        free(t);
    }
    return NULL;
}

vlp_bpe *vlp_bpe_load(const char *path) {
    uint8_t *data = NULL, *txt = NULL;
    size_t n = 0, tn = 0;
    if (!path) {
        if (gunzip(vlp_bpe_vocab_gz, (size_t)(vlp_bpe_vocab_gz_end - vlp_bpe_vocab_gz), NMERGES_CLIP + 2, &txt, &tn))
            return NULL;
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) {
            vlp_set_error("vlp_bpe_load: cannot open '%s'", path);
            return NULL;
        }
        size_t cap = 1 << 20;
        data = malloc(cap);
        while (data) {
            size_t r = fread(data + n, 1, cap - n, f);
            n += r;
            if (n < cap) break;
            uint8_t *nd = realloc(data, cap * 2);
            if (!nd) {
                free(data);
                data = NULL;
                break;
            }
            data = nd, cap *= 2;
        }
        int err = ferror(f);
        fclose(f);
        if (!data) {
            vlp_set_error("vlp_bpe_load: out of memory reading '%s'", path);
            return NULL;
        }
        if (err) {
            free(data);
            vlp_set_error("vlp_bpe_load: read error on '%s'", path);
            return NULL;
        }
        if (n >= 2 && data[0] == 0x1F && data[1] == 0x8B) {
            int rc = gunzip(data, n, NMERGES_CLIP + 2, &txt, &tn);
            free(data);
            if (rc) {
                if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_bpe_load: out of memory");
                return NULL;
            }
        } else {
            txt = data, tn = n;
        }
    }
    vlp_bpe *t = build((const char *)txt, tn);
    free(txt);
    return t;
}

void vlp_bpe_free(vlp_bpe *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t->tok_bytes), free(t->tok_off), free(t->pairs);
    free(t->cache), free(t->cache_bytes), free(t->cache_ids);
    free(t);
}

int vlp_bpe_vocab_size(const vlp_bpe *t) { return t ? t->nvocab : 0; }

/* ---- text cleaning: basic_clean + whitespace_clean + lower ---------------------------- */

static int clean(const char *utf8, size_t len, u32s *out) {
    u32s a = {0}, b = {0};
    int rc = 0;
    utf8_decode((const uint8_t *)utf8, len, &a);
    if ((rc = ftfy_fix_text(&a, &b))) goto done;
    /* html.unescape(html.unescape(text)) */
    for (int k = 0; k < 2; k++) {
        int amp = 0;
        for (size_t i = 0; i < b.n && !amp; i++) amp = b.v[i] == '&';
        if (!amp) break;
        a.n = 0;
        html_unescape(b.v, b.n, &a);
        u32s_swap(&a, &b);
    }
    /* strip, whitespace runs -> ' ', strip */
    a.n = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (uni_isspace(b.v[i])) {
            while (i + 1 < b.n && uni_isspace(b.v[i + 1])) i++;
            if (a.n && i + 1 < b.n) u32s_push(&a, ' ');
        } else {
            u32s_push(&a, b.v[i]);
        }
    }
    uni_lower(&a, out);
    if (a.oom || b.oom || out->oom) rc = VLP_ERR_NOMEM;
done:
    u32s_free(&a), u32s_free(&b);
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_bpe: out of memory");
    return rc;
}

char *vlp_bpe_clean_text(const char *utf8) {
    if (!utf8) {
        vlp_set_error("vlp_bpe_clean_text: text is NULL");
        return NULL;
    }
    u32s c = {0};
    if (clean(utf8, strlen(utf8), &c)) return u32s_free(&c), NULL;
    char *s = malloc(c.n * 4 + 1);
    if (s) s[utf8_encode(c.v, c.n, (uint8_t *)s)] = 0;
    else vlp_set_error("vlp_bpe: out of memory");
    u32s_free(&c);
    return s;
}

/* ---- BPE of one piece ----------------------------------------------------------------- */

/* ids of the piece's bytes -> merged ids, in place; returns the new count */
static int bpe_merge(const vlp_bpe *t, int32_t *w, int n) {
    while (n > 1) {
        int32_t best = INT32_MAX, a = 0, b = 0, res = 0;
        for (int i = 0; i + 1 < n; i++) {
            const pair_slot *p = pair_find(t, w[i], w[i + 1]);
            if (p && p->rank < best) best = p->rank, a = w[i], b = w[i + 1], res = p->result;
        }
        if (best == INT32_MAX) break;
        int m = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && w[i] == a && w[i + 1] == b) w[m++] = res, i += 2;
            else w[m++] = w[i++];
        }
        n = m;
    }
    return n;
}

static void cache_clear(vlp_bpe *t) {
    if (t->cache) memset(t->cache, 0, (t->cache_mask + 1) * sizeof *t->cache);
    t->cache_used = 0, t->cb_n = 0, t->ci_n = 0;
}

/* Looks the piece up; copies its ids to out (up to cap) and returns the count, or -1. */
static int cache_get(vlp_bpe *t, const uint8_t *s, uint32_t len, uint64_t h, int32_t *out, int cap) {
    if (!t->cache) return -1;
    for (size_t i = (size_t)h & t->cache_mask;; i = (i + 1) & t->cache_mask) {
        cache_slot *c = &t->cache[i];
        if (!c->len) return -1;
        if (c->hash == h && c->len == len && !memcmp(t->cache_bytes + c->off, s, len)) {
            int n = (int)c->nids;
            memcpy(out, t->cache_ids + c->ids_off, (size_t)(n < cap ? n : cap) * sizeof *out);
            return n;
        }
    }
}

static void cache_put(vlp_bpe *t, const uint8_t *s, uint32_t len, uint64_t h, const int32_t *ids, int n) {
    if (len == 0 || len > 256) return;
    if (t->cb_n > (64u << 20)) cache_clear(t); /* bounded: start over */
    if (!t->cache) {
        t->cache_mask = (1u << 14) - 1;
        t->cache = calloc(t->cache_mask + 1, sizeof *t->cache);
        if (!t->cache) return;
    }
    if ((t->cache_used + 1) * 2 > t->cache_mask + 1) {
        if (t->cache_mask + 1 >= (1u << 20) || t->cb_n > (64u << 20)) {
            cache_clear(t); /* bounded: start over */
        } else {
            size_t nm = (t->cache_mask + 1) * 2 - 1;
            cache_slot *nc = calloc(nm + 1, sizeof *nc);
            if (!nc) return;
            for (size_t i = 0; i <= t->cache_mask; i++)
                if (t->cache[i].len) {
                    size_t j = (size_t)t->cache[i].hash & nm;
                    while (nc[j].len) j = (j + 1) & nm;
                    nc[j] = t->cache[i];
                }
            free(t->cache);
            t->cache = nc, t->cache_mask = nm;
        }
    }
    if (t->cb_n + len > t->cb_cap) {
        size_t cap = t->cb_cap ? t->cb_cap : 1 << 16;
        while (cap < t->cb_n + len) cap *= 2;
        uint8_t *nb = realloc(t->cache_bytes, cap);
        if (!nb) return;
        t->cache_bytes = nb, t->cb_cap = cap;
    }
    if (t->ci_n + (size_t)n > t->ci_cap) {
        size_t cap = t->ci_cap ? t->ci_cap : 1 << 14;
        while (cap < t->ci_n + (size_t)n) cap *= 2;
        int32_t *ni = realloc(t->cache_ids, cap * sizeof *ni);
        if (!ni) return;
        t->cache_ids = ni, t->ci_cap = cap;
    }
    size_t i = (size_t)h & t->cache_mask;
    while (t->cache[i].len) i = (i + 1) & t->cache_mask;
    cache_slot *c = &t->cache[i];
    c->hash = h, c->len = len, c->off = (uint32_t)t->cb_n, c->ids_off = (uint32_t)t->ci_n, c->nids = (uint32_t)n;
    memcpy(t->cache_bytes + t->cb_n, s, len), t->cb_n += len;
    memcpy(t->cache_ids + t->ci_n, ids, (size_t)n * sizeof *ids), t->ci_n += (size_t)n;
    t->cache_used++;
}

/* ---- the split regex ------------------------------------------------------------------ */

static uint32_t fold(uint32_t c) { return c == 0x17F ? 's' : c == 0x212A ? 'k' : c; } /* IGNORECASE */

static int match_lit(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || fold(s[i + k]) != (uint8_t)lit[k]) return 0;
    return (int)k;
}

/* Length of the piece at s[i] (0: none, skip one character); *special gets 49406/49407. */
static size_t next_piece(const uint32_t *s, size_t n, size_t i, int *special) {
    *special = 0;
    uint32_t c = s[i];
    if (c == '<') {
        if (match_lit(s, n, i, "<|startoftext|>")) return *special = VLP_BPE_SOT, 15;
        if (match_lit(s, n, i, "<|endoftext|>")) return *special = VLP_BPE_EOT, 13;
    }
    if (c == '\'' && i + 1 < n) {
        static const char *const contr[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
        for (int k = 0; k < 7; k++) {
            int l = match_lit(s, n, i, contr[k]);
            if (l) return (size_t)l;
        }
    }
    if (uni_is_letter(c)) {
        size_t k = i + 1;
        while (k < n && uni_is_letter(s[k])) k++;
        return k - i;
    }
    if (uni_is_number(c)) return 1;
    if (uni_isspace(c)) return 0;
    size_t k = i + 1;
    while (k < n && !uni_isspace(s[k]) && !uni_is_letter(s[k]) && !uni_is_number(s[k])) k++;
    return k - i;
}

/* ---- encode --------------------------------------------------------------------------- */

static int encode_u32(vlp_bpe *t, const u32s *txt, int32_t *ids, int cap) {
    long total = 0;
    int32_t stack[512];
    uint8_t bstack[4 * 128];
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < txt->n;) {
        int special;
        size_t len = next_piece(txt->v, txt->n, i, &special);
        if (!len) {
            i++;
            continue;
        }
        if (special) {
            if (total < cap) ids[total] = special;
            total++;
            i += len;
            continue;
        }
        uint8_t *bytes = len <= 128 ? bstack : malloc(len * 4);
        if (!bytes) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        size_t nb = utf8_encode(txt->v + i, len, bytes);
        i += len;
        uint64_t h = fnv1a(bytes, nb);
        int room = total < cap ? (int)(cap - total) : 0;
        int32_t *dst = room ? ids + total : stack;
        int got = cache_get(t, bytes, (uint32_t)nb, h, dst, room);
        if (got < 0) {
            int32_t *w = nb <= 512 ? stack : malloc(nb * sizeof *w);
            if (!w) {
                if (bytes != bstack) free(bytes);
                rc = VLP_ERR_NOMEM;
                break;
            }
            for (size_t k = 0; k < nb; k++) w[k] = t->byte_id[bytes[k]];
            w[nb - 1] += 256; /* "</w>" on the last symbol */
            got = bpe_merge(t, w, (int)nb);
            cache_put(t, bytes, (uint32_t)nb, h, w, got);
            if (room) memcpy(ids + total, w, (size_t)(got < room ? got : room) * sizeof *w);
            if (w != stack) free(w);
        }
        if (bytes != bstack) free(bytes);
        total += got;
        if (total > INT32_MAX / 2) {
            rc = VLP_ERR_ARG;
            vlp_set_error("vlp_bpe_encode: text too long (over %d tokens)", INT32_MAX / 2);
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_bpe_encode: out of memory");
    return rc ? rc : (int)total;
}

int vlp_bpe_encode(vlp_bpe *t, const char *utf8, int32_t *ids, int cap) {
    return vlp_bpe_encode_n(t, utf8, utf8 ? strlen(utf8) : 0, ids, cap);
}

int vlp_bpe_encode_n(vlp_bpe *t, const char *utf8, size_t len, int32_t *ids, int cap) {
    if (!t || !utf8) {
        vlp_set_error("vlp_bpe_encode: %s is NULL", !t ? "tokenizer" : "text");
        return VLP_ERR_ARG;
    }
    if (cap < 0 || (cap > 0 && !ids)) {
        vlp_set_error("vlp_bpe_encode: ids is NULL or cap (%d) is negative", cap);
        return VLP_ERR_ARG;
    }
    u32s c = {0};
    int rc = clean(utf8, len, &c);
    if (!rc) rc = encode_u32(t, &c, ids, cap);
    u32s_free(&c);
    return rc;
}

int vlp_bpe_tokenize(vlp_bpe *t, const char *utf8, int context, int truncate, int32_t *out) {
    return vlp_bpe_tokenize_n(t, utf8, utf8 ? strlen(utf8) : 0, context, truncate, out);
}

int vlp_bpe_tokenize_n(vlp_bpe *t, const char *utf8, size_t len, int context, int truncate, int32_t *out) {
    if (!t || !utf8 || !out) {
        vlp_set_error("vlp_bpe_tokenize: %s is NULL", !t ? "tokenizer" : !utf8 ? "text" : "out");
        return VLP_ERR_ARG;
    }
    if (context < 2) {
        vlp_set_error("vlp_bpe_tokenize: context %d is too short (at least 2: start and end tokens)", context);
        return VLP_ERR_ARG;
    }
    memset(out, 0, (size_t)context * sizeof *out);
    out[0] = VLP_BPE_SOT;
    int n = vlp_bpe_encode_n(t, utf8, len, out + 1, context - 1);
    if (n < 0) return n;
    if (n + 2 > context) {
        if (!truncate) {
            memset(out, 0, (size_t)context * sizeof *out);
            vlp_set_error("vlp_bpe_tokenize: input is %d tokens with start and end tokens, too long for context length %d",
                          n + 2, context);
            return VLP_ERR_ARG;
        }
        out[context - 1] = VLP_BPE_EOT;
        return context;
    }
    out[n + 1] = VLP_BPE_EOT;
    return n + 2;
}

int vlp_bpe_decode(vlp_bpe *t, const int32_t *ids, int n, char *out, size_t cap) {
    if (!t || (n > 0 && !ids) || (cap > 0 && !out)) {
        vlp_set_error("vlp_bpe_decode: %s is NULL", !t ? "tokenizer" : (n > 0 && !ids) ? "ids" : "out");
        return VLP_ERR_ARG;
    }
    if (n < 0) {
        vlp_set_error("vlp_bpe_decode: negative count %d", n);
        return VLP_ERR_ARG;
    }
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->nvocab) {
            vlp_set_error("vlp_bpe_decode: id %d at position %d is outside the vocabulary (0..%d)", ids[i], i,
                          t->nvocab - 1);
            return VLP_ERR_ARG;
        }
        len += t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
    }
    uint8_t *raw = malloc(len + 1);
    if (!raw) {
        vlp_set_error("vlp_bpe_decode: out of memory");
        return VLP_ERR_NOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        uint32_t a = t->tok_off[ids[i]], b = t->tok_off[ids[i] + 1];
        memcpy(raw + k, t->tok_bytes + a, b - a), k += b - a;
    }
    /* .decode("utf-8", "replace").replace("</w>", " ") */
    u32s cps = {0};
    utf8_decode(raw, k, &cps);
    free(raw);
    if (cps.oom) {
        u32s_free(&cps);
        vlp_set_error("vlp_bpe_decode: out of memory");
        return VLP_ERR_NOMEM;
    }
    size_t m = 0, total = 0, written = 0;
    int full = 0;
    for (size_t i = 0; i < cps.n; i++) {
        if (cps.v[i] == '<' && i + 3 < cps.n && cps.v[i + 1] == '/' && cps.v[i + 2] == 'w' && cps.v[i + 3] == '>') {
            cps.v[m++] = ' ';
            i += 3;
        } else {
            cps.v[m++] = cps.v[i];
        }
    }
    for (size_t i = 0; i < m; i++) {
        uint8_t u[4];
        int l = utf8_put(cps.v[i], u);
        if (!full && written + (size_t)l < cap) memcpy(out + written, u, (size_t)l), written += (size_t)l;
        else full = 1; /* stop at a character boundary */
        total += (size_t)l;
    }
    if (cap) out[written] = 0;
    u32s_free(&cps);
    if (total > INT32_MAX) {
        vlp_set_error("vlp_bpe_decode: output too long");
        return VLP_ERR_ARG;
    }
    return (int)total;
}
