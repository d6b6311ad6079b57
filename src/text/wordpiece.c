/* BERT WordPiece tokenizer (google-research/bert tokenization.py FullTokenizer with
 * do_lower_case=True), in C. The reference pipeline is described step by step in
 * tests/fixtures/bert/README.md; this file follows it, with two speed-ups that do not change
 * the result: the vocabulary sits in two hash tables (word-initial tokens, and "##" tokens
 * keyed without the "##"), so no "##" strings are built while matching, and whole
 * whitespace-separated words are cached (word bytes -> ids): everything after the split
 * depends only on the word itself (Final_Sigma looks only inside the word). */
#include "vlp_text.h"

#include "internal.h"
#include "text_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

extern const unsigned char vlp_wordpiece_vocab_txt[], vlp_wordpiece_vocab_txt_end[];

#define WP_DEFAULT_MAX_CHARS 200
#define WP_CACHE_MAX_WORD 256     /* longer words are not cached */
#define WP_CACHE_MAX_BYTES (32u << 20)

typedef struct {
    uint64_t hash;
    uint32_t off, len; /* key bytes in key_bytes */
    int32_t id1;       /* id + 1; 0 marks an empty slot (so calloc'd pages stay untouched) */
} vocab_slot;

typedef struct {
    vocab_slot *slots;
    size_t mask;
    int max_chars; /* longest key in code points: no longer substring can match */
} vocab_table;

typedef struct {
    uint64_t hash;
    uint32_t off, len;      /* word bytes in cache_bytes */
    uint32_t ids_off, nids; /* ids in cache_ids */
    int used;
} cache_slot;

struct vlp_wordpiece {
    int nvocab;
    char *tok_bytes;   /* every line's token, NUL-terminated, in id order */
    uint32_t *tok_off; /* nvocab offsets into tok_bytes */
    vocab_table init, cont;
    int special[5];
    int max_chars;
    char name[520]; /* "'path'" or the built-in vocabulary's description, for messages */
    pthread_mutex_t mu;
    cache_slot *cache;
    size_t cache_mask, cache_used;
    uint8_t *cache_bytes;
    size_t cb_n, cb_cap;
    int32_t *cache_ids;
    size_t ci_n, ci_cap;
};

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull; /* FNV's low bits alone index tables poorly */
    return h ^ (h >> 29);
}

/* ---- vocabulary ------------------------------------------------------------------------ */

static int utf8_count(const uint8_t *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += (s[i] & 0xC0) != 0x80;
    return k;
}

static int table_init(vocab_table *tb, int n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2 + 2) cap *= 2;
    tb->slots = calloc(cap, sizeof *tb->slots);
    if (!tb->slots) return VLP_ERR_NOMEM;
    tb->mask = cap - 1;
    tb->max_chars = 0;
    return 0;
}

/* Inserts the key; returns -1, or the id of an earlier equal key (which is kept: a vocabulary
 * with duplicates is refused, since its ids would not round-trip through the tokens). */
static int32_t table_put(vocab_table *tb, const char *base, uint32_t off, uint32_t len, int32_t id) {
    uint64_t h = hash_bytes(base + off, len);
    for (size_t i = (size_t)h & tb->mask;; i = (i + 1) & tb->mask) {
        vocab_slot *s = &tb->slots[i];
        if (!s->id1) {
            s->hash = h, s->off = off, s->len = len, s->id1 = id + 1;
            int nc = utf8_count((const uint8_t *)base + off, len);
            if (nc > tb->max_chars) tb->max_chars = nc;
            return -1;
        }
        if (s->hash == h && s->len == len && !memcmp(base + s->off, base + off, len)) return s->id1 - 1;
    }
}

static int32_t table_get(const vocab_table *tb, const char *base, const uint8_t *key, size_t len) {
    uint64_t h = hash_bytes(key, len);
    for (size_t i = (size_t)h & tb->mask;; i = (i + 1) & tb->mask) {
        const vocab_slot *s = &tb->slots[i];
        if (!s->id1) return -1;
        if (s->hash == h && s->len == len && !memcmp(base + s->off, key, len)) return s->id1 - 1;
    }
}

static vlp_wordpiece *build(const uint8_t *txt, size_t n, const char *name) {
    vlp_wordpiece *t = calloc(1, sizeof *t);
    u32s line = {0};
    if (!t) goto nomem;
    snprintf(t->name, sizeof t->name, "%s", name);
    /* Lines split on '\n'; a final '\n' does not start another line (Python readline). */
    size_t nlines = 0;
    for (size_t i = 0; i < n; i++) nlines += txt[i] == '\n';
    if (n && txt[n - 1] != '\n') nlines++;
    if (nlines == 0) {
        vlp_set_error("vlp_wordpiece_load: %s: empty vocabulary", name);
        goto fail;
    }
    if (nlines > (1u << 24)) {
        vlp_set_error("vlp_wordpiece_load: %s: %zu lines, more than 2^24 tokens", name, nlines);
        goto fail;
    }
    t->nvocab = (int)nlines;
    t->tok_off = malloc(nlines * sizeof *t->tok_off);
    t->tok_bytes = malloc(n * 4 + nlines + 1); /* invalid bytes may grow to U+FFFD */
    if (!t->tok_off || !t->tok_bytes) goto nomem;
    size_t ncont = 0;
    for (size_t i = 0; i + 2 < n; i++) ncont += txt[i] == '#' && txt[i + 1] == '#' && (i == 0 || txt[i - 1] == '\n');
    if (table_init(&t->init, t->nvocab) || table_init(&t->cont, (int)ncont)) goto nomem;
    size_t o = 0, pos = 0;
    for (size_t k = 0; k < nlines; k++) {
        size_t e = pos;
        while (e < n && txt[e] != '\n') e++;
        /* token.strip(): Python whitespace at both ends */
        t->tok_off[k] = (uint32_t)o;
        size_t len, j = pos;
        while (j < e && txt[j] < 0x80) j++;
        if (j == e) { /* ASCII line: no decoding needed */
            size_t a = pos, b = e;
            while (a < b && uni_isspace(txt[a])) a++;
            while (b > a && uni_isspace(txt[b - 1])) b--;
            len = b - a;
            memcpy(t->tok_bytes + o, txt + a, len);
        } else {
            line.n = 0;
            utf8_decode(txt + pos, e - pos, &line);
            if (line.oom) goto nomem;
            size_t a = 0, b = line.n;
            while (a < b && uni_isspace(line.v[a])) a++;
            while (b > a && uni_isspace(line.v[b - 1])) b--;
            len = utf8_encode(line.v + a, b - a, (uint8_t *)t->tok_bytes + o);
        }
        t->tok_bytes[o + len] = 0;
        int32_t first = table_put(&t->init, t->tok_bytes, (uint32_t)o, (uint32_t)len, (int32_t)k);
        if (first >= 0) { /* lines count from 1, as editors show them */
            if (len)
                vlp_set_error("vlp_wordpiece_load: %s: duplicate token '%.80s%s' on lines %d and %zu (each token must "
                              "appear once)", name, t->tok_bytes + o, len > 80 ? "..." : "", first + 1, k + 1);
            else
                vlp_set_error("vlp_wordpiece_load: %s: duplicate empty token (blank lines %d and %zu; each token must "
                              "appear once)", name, first + 1, k + 1);
            goto fail;
        }
        if (len >= 2 && t->tok_bytes[o] == '#' && t->tok_bytes[o + 1] == '#')
            table_put(&t->cont, t->tok_bytes, (uint32_t)o + 2, (uint32_t)len - 2, (int32_t)k);
        o += len + 1;
        pos = e + 1;
    }
    u32s_free(&line);
    static const char *const names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++)
        t->special[i] = table_get(&t->init, t->tok_bytes, (const uint8_t *)names[i], strlen(names[i]));
    if (t->special[VLP_WP_UNK] < 0) {
        vlp_set_error("vlp_wordpiece_load: %s: the vocabulary has no [UNK] token", name);
        goto fail;
    }
    t->max_chars = WP_DEFAULT_MAX_CHARS;
    pthread_mutex_init(&t->mu, NULL);
    return t;
nomem:
    vlp_set_error("vlp_wordpiece_load: out of memory reading %s", name);
fail:
    u32s_free(&line);
    if (t) {
        free(t->tok_off), free(t->tok_bytes), free(t->init.slots), free(t->cont.slots);
        free(t);
    }
    return NULL;
}

vlp_wordpiece *vlp_wordpiece_load(const char *path) {
    if (!path)
        return build(vlp_wordpiece_vocab_txt, (size_t)(vlp_wordpiece_vocab_txt_end - vlp_wordpiece_vocab_txt),
                     "the built-in bert-base-uncased vocabulary");
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("vlp_wordpiece_load: cannot open '%s'", path);
        return NULL;
    }
    size_t n = 0, cap = 1 << 20;
    uint8_t *data = malloc(cap);
    while (data) {
        n += fread(data + n, 1, cap - n, f);
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
        vlp_set_error("vlp_wordpiece_load: out of memory reading '%s'", path);
        return NULL;
    }
    if (err) {
        free(data);
        vlp_set_error("vlp_wordpiece_load: read error on '%s'", path);
        return NULL;
    }
    char name[512];
    snprintf(name, sizeof name, "'%s'", path);
    vlp_wordpiece *t = build(data, n, name);
    free(data);
    return t;
}

void vlp_wordpiece_free(vlp_wordpiece *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t->tok_off), free(t->tok_bytes), free(t->init.slots), free(t->cont.slots);
    free(t->cache), free(t->cache_bytes), free(t->cache_ids);
    free(t);
}

int vlp_wordpiece_vocab_size(const vlp_wordpiece *t) { return t ? t->nvocab : 0; }

static void cache_clear(vlp_wordpiece *t) {
    if (t->cache) memset(t->cache, 0, (t->cache_mask + 1) * sizeof *t->cache);
    t->cache_used = 0, t->cb_n = 0, t->ci_n = 0;
}

int vlp_wordpiece_set_max_chars(vlp_wordpiece *t, int n) {
    if (!t || n < 1) {
        vlp_set_error("vlp_wordpiece_set_max_chars: %s", t ? "n must be >= 1" : "tokenizer is NULL");
        return VLP_ERR_ARG;
    }
    pthread_mutex_lock(&t->mu);
    if (t->max_chars != n) cache_clear(t);
    t->max_chars = n;
    pthread_mutex_unlock(&t->mu);
    return VLP_OK;
}

int vlp_wordpiece_token_id(const vlp_wordpiece *t, const char *token) {
    if (!t || !token) return -1;
    return table_get(&t->init, t->tok_bytes, (const uint8_t *)token, strlen(token));
}

const char *vlp_wordpiece_id_token(const vlp_wordpiece *t, int id) {
    if (!t || id < 0 || id >= t->nvocab) return NULL;
    return t->tok_bytes + t->tok_off[id];
}

int vlp_wordpiece_special_id(const vlp_wordpiece *t, int which) {
    if (!t || which < 0 || which > VLP_WP_MASK) return -1;
    return t->special[which];
}

const char *vlp_wordpiece_source(const vlp_wordpiece *t) { return t ? t->name : ""; }

int vlp_wordpiece_require_specials(const vlp_wordpiece *t, unsigned which, const char *who) {
    static const char *const names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (!t) {
        vlp_set_error("vlp_wordpiece_require_specials: NULL tokenizer");
        return VLP_ERR_ARG;
    }
    char miss[64] = "", need[64] = "";
    int nmiss = 0;
    for (int i = 0; i < 5; i++) {
        if (!(which & (1u << i))) continue;
        snprintf(need + strlen(need), sizeof need - strlen(need), "%s%s", need[0] ? ", " : "", names[i]);
        if (t->special[i] >= 0) continue;
        nmiss++;
        snprintf(miss + strlen(miss), sizeof miss - strlen(miss), "%s%s", miss[0] ? ", " : "", names[i]);
    }
    if (!nmiss) return VLP_OK;
    vlp_set_error("%s: the vocabulary lacks the special token%s %s (%s need%s %s)", t->name, nmiss > 1 ? "s" : "",
                  miss, who && who[0] ? who : "this use", who && who[0] ? "" : "s", need);
    return VLP_ERR_ARG;
}

/* ---- word cache ------------------------------------------------------------------------- */

/* A growable id array; `oom` makes later pushes no-ops (checked once at the end). */
typedef struct {
    int32_t *v;
    size_t n, cap;
    int oom;
} i32s;

static int i32s_reserve(i32s *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    int32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) {
        b->oom = 1;
        return 0;
    }
    b->v = v, b->cap = cap;
    return 1;
}

static void i32s_push(i32s *b, int32_t x) {
    if (i32s_reserve(b, 1)) b->v[b->n++] = x;
}

/* Appends the cached ids of word s to out; 1 if found. Caller holds t->mu. */
static int cache_get(vlp_wordpiece *t, const uint8_t *s, uint32_t len, uint64_t h, i32s *out) {
    if (!t->cache) return 0;
    for (size_t i = (size_t)h & t->cache_mask;; i = (i + 1) & t->cache_mask) {
        cache_slot *c = &t->cache[i];
        if (!c->used) return 0;
        if (c->hash == h && c->len == len && !memcmp(t->cache_bytes + c->off, s, len)) {
            if (c->nids && i32s_reserve(out, c->nids)) { /* a word of only accents has no ids */
                memcpy(out->v + out->n, t->cache_ids + c->ids_off, c->nids * sizeof *out->v);
                out->n += c->nids;
            }
            return 1;
        }
    }
}

/* Best effort: an allocation failure just leaves the word uncached. Caller holds t->mu. */
static void cache_put(vlp_wordpiece *t, const uint8_t *s, uint32_t len, uint64_t h, const int32_t *ids, size_t n) {
    if (t->cb_n + len > WP_CACHE_MAX_BYTES || t->ci_n + n > WP_CACHE_MAX_BYTES / 4) cache_clear(t); /* bounded */
    if (!t->cache) {
        t->cache_mask = (1u << 14) - 1;
        t->cache = calloc(t->cache_mask + 1, sizeof *t->cache);
        if (!t->cache) return;
    }
    if ((t->cache_used + 1) * 2 > t->cache_mask + 1) { /* grow and rehash */
        size_t nmask = t->cache_mask * 2 + 1;
        cache_slot *nc = calloc(nmask + 1, sizeof *nc);
        if (!nc) return;
        for (size_t i = 0; i <= t->cache_mask; i++) {
            if (!t->cache[i].used) continue;
            size_t j = (size_t)t->cache[i].hash & nmask;
            while (nc[j].used) j = (j + 1) & nmask;
            nc[j] = t->cache[i];
        }
        free(t->cache);
        t->cache = nc, t->cache_mask = nmask;
    }
    if (t->cb_n + len > t->cb_cap) {
        size_t cap = t->cb_cap ? t->cb_cap * 2 : 1 << 16;
        while (cap < t->cb_n + len) cap *= 2;
        uint8_t *nb = realloc(t->cache_bytes, cap);
        if (!nb) return;
        t->cache_bytes = nb, t->cb_cap = cap;
    }
    if (t->ci_n + n > t->ci_cap) {
        size_t cap = t->ci_cap ? t->ci_cap * 2 : 1 << 14;
        while (cap < t->ci_n + n) cap *= 2;
        int32_t *ni = realloc(t->cache_ids, cap * sizeof *ni);
        if (!ni) return;
        t->cache_ids = ni, t->ci_cap = cap;
    }
    size_t i = (size_t)h & t->cache_mask;
    while (t->cache[i].used) i = (i + 1) & t->cache_mask;
    cache_slot *c = &t->cache[i];
    c->hash = h, c->off = (uint32_t)t->cb_n, c->len = len, c->ids_off = (uint32_t)t->ci_n, c->nids = (uint32_t)n;
    c->used = 1;
    memcpy(t->cache_bytes + t->cb_n, s, len);
    if (n) memcpy(t->cache_ids + t->ci_n, ids, n * sizeof *ids);
    t->cb_n += len, t->ci_n += n, t->cache_used++;
}

/* ---- character classes ---------------------------------------------------------------- */

static int category(uint32_t c) { return c > 0x10FFFF ? UTF8PROC_CATEGORY_CN : (int)utf8proc_category((utf8proc_int32_t)c); }

/* The reference's _is_chinese_char: CJK Unified Ideographs blocks and compatibility ideographs. */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ASCII 33-47, 58-64, 91-96, 123-126 (symbols included, as the reference), or Unicode P*. */
static int is_punct(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    int k = category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* Step 1-3 of the pipeline for one code point: 0 = part of a word, 1 = deleted,
 * 2 = separator, 3 = a word of its own (CJK). */
static int char_class(uint32_t c) {
    if (c < 0x80) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 2;
        return (c < 0x20 || c == 0x7F) ? 1 : 0;
    }
    if (c == 0xFFFD) return 1;
    if (is_cjk(c)) return 3;
    int k = category(c);
    if (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF) return 1;
    if (k == UTF8PROC_CATEGORY_ZS || c == 0x2028 || c == 0x2029) return 2; /* Python str.split() */
    return 0;
}

/* ---- encoding ---------------------------------------------------------------------------- */

typedef struct {
    u32s low, norm;
    utf8proc_int32_t *nfd;
    size_t nfd_cap;
    uint8_t *bytes; /* UTF-8 of the current word / piece */
    size_t bytes_cap;
    uint32_t *offs; /* byte offset of each code point of the piece, plus the end */
    size_t offs_cap;
    int oom;
} wp_work;

static void work_free(wp_work *w) {
    u32s_free(&w->low), u32s_free(&w->norm);
    free(w->nfd), free(w->bytes), free(w->offs);
}

static int work_bytes(wp_work *w, size_t nchars) {
    size_t need = nchars * 4 + 8;
    if (need > w->bytes_cap) {
        uint8_t *b = realloc(w->bytes, need);
        if (!b) return w->oom = 1, 0;
        w->bytes = b, w->bytes_cap = need;
    }
    if (nchars + 1 > w->offs_cap) {
        uint32_t *o = realloc(w->offs, (nchars + 1) * sizeof *o);
        if (!o) return w->oom = 1, 0;
        w->offs = o, w->offs_cap = nchars + 1;
    }
    return 1;
}

/* Greedy longest-match-first WordPiece of one punctuation-free piece. */
static void wordpiece(const vlp_wordpiece *t, wp_work *w, const uint32_t *c, size_t m, i32s *out) {
    if (m > (size_t)t->max_chars) {
        i32s_push(out, t->special[VLP_WP_UNK]);
        return;
    }
    if (!work_bytes(w, m)) return;
    size_t o = 0;
    for (size_t i = 0; i < m; i++) {
        w->offs[i] = (uint32_t)o;
        o += (size_t)utf8_put(c[i], w->bytes + o);
    }
    w->offs[m] = (uint32_t)o;
    size_t mark = out->n, start = 0;
    while (start < m) {
        const vocab_table *tb = start ? &t->cont : &t->init;
        size_t end = start + (size_t)tb->max_chars < m ? start + (size_t)tb->max_chars : m;
        int32_t id = -1;
        for (; end > start; end--) {
            id = table_get(tb, t->tok_bytes, w->bytes + w->offs[start], w->offs[end] - w->offs[start]);
            if (id >= 0) break;
        }
        if (id < 0) { /* no piece fits here: the whole word is [UNK] */
            out->n = mark;
            i32s_push(out, t->special[VLP_WP_UNK]);
            return;
        }
        i32s_push(out, id);
        start = end;
    }
}

/* Step 4-6 for one whitespace-separated word c[0..n). */
static void word_ids(const vlp_wordpiece *t, wp_work *w, const uint32_t *c, size_t n, i32s *out) {
    u32s *norm = &w->norm;
    norm->n = 0;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = c[i] < 0x80;
    if (ascii) {
        for (size_t i = 0; i < n; i++) u32s_push(norm, c[i] >= 'A' && c[i] <= 'Z' ? c[i] + 32 : c[i]);
    } else {
        const u32s in = {(uint32_t *)c, n, n, 0};
        uni_lower(&in, &w->low); /* Python str.lower(): full mapping, Final_Sigma inside the word */
        if (w->low.oom) return (void)(w->oom = 1);
        int plain = 1; /* below U+00C0 nothing decomposes and nothing is Mn */
        for (size_t i = 0; i < w->low.n && plain; i++) plain = w->low.v[i] < 0xC0;
        if (plain) {
            u32s_append(norm, w->low.v, w->low.n);
        } else {
            if (!work_bytes(w, w->low.n)) return;
            size_t len = utf8_encode(w->low.v, w->low.n, w->bytes);
            const int opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
            utf8proc_ssize_t r = 0;
            for (;;) { /* NFD; the first call may report a bigger size */
                r = utf8proc_decompose(w->bytes, (utf8proc_ssize_t)len, w->nfd, (utf8proc_ssize_t)w->nfd_cap, opts);
                if (r < 0) return (void)(w->oom = 1);
                if ((size_t)r <= w->nfd_cap) break;
                utf8proc_int32_t *nb = realloc(w->nfd, (size_t)r * sizeof *nb);
                if (!nb) return (void)(w->oom = 1);
                w->nfd = nb, w->nfd_cap = (size_t)r;
            }
            for (utf8proc_ssize_t i = 0; i < r; i++) /* strip accents: drop every Mn */
                if (category((uint32_t)w->nfd[i]) != UTF8PROC_CATEGORY_MN) u32s_push(norm, (uint32_t)w->nfd[i]);
        }
    }
    if (norm->oom) return (void)(w->oom = 1);
    /* Punctuation characters become words of their own. */
    size_t s = 0;
    for (size_t i = 0; i < norm->n; i++) {
        if (!is_punct(norm->v[i])) continue;
        if (i > s) wordpiece(t, w, norm->v + s, i - s, out);
        wordpiece(t, w, norm->v + i, 1, out);
        s = i + 1;
    }
    if (norm->n > s) wordpiece(t, w, norm->v + s, norm->n - s, out);
}

static void word_cached(vlp_wordpiece *t, wp_work *w, const uint32_t *c, size_t n, i32s *out) {
    if (n * 4 > WP_CACHE_MAX_WORD) {
        word_ids(t, w, c, n, out);
        return;
    }
    uint8_t key[WP_CACHE_MAX_WORD + 4];
    size_t len = utf8_encode(c, n, key);
    uint64_t h = hash_bytes(key, len);
    pthread_mutex_lock(&t->mu);
    int hit = cache_get(t, key, (uint32_t)len, h, out);
    pthread_mutex_unlock(&t->mu);
    if (hit) return;
    size_t mark = out->n;
    word_ids(t, w, c, n, out);
    if (w->oom || out->oom) return;
    pthread_mutex_lock(&t->mu);
    /* a word may give no ids (out->v still NULL): no pointer arithmetic on NULL */
    cache_put(t, key, (uint32_t)len, h, out->n > mark ? out->v + mark : NULL, out->n - mark);
    pthread_mutex_unlock(&t->mu);
}

/* Appends the ids of text to out. */
static int encode(vlp_wordpiece *t, const char *utf8, size_t len, i32s *out) {
    u32s text = {0};
    wp_work w = {0};
    utf8_decode((const uint8_t *)utf8, len, &text);
    size_t s = 0, e = 0; /* the current word is text[s..e), compacted in place */
    for (size_t i = 0; i < text.n && !text.oom; i++) {
        uint32_t c = text.v[i];
        int k = char_class(c);
        if (k == 0) {
            text.v[e++] = c;
            continue;
        }
        if (k == 1) continue; /* deleted: joins its neighbours */
        if (e > s) word_cached(t, &w, text.v + s, e - s, out);
        if (k == 3) word_cached(t, &w, &c, 1, out);
        s = e;
    }
    if (e > s && !text.oom) word_cached(t, &w, text.v + s, e - s, out);
    int oom = text.oom || w.oom || out->oom;
    u32s_free(&text);
    work_free(&w);
    if (oom) {
        vlp_set_error("vlp_wordpiece_encode: out of memory");
        return VLP_ERR_NOMEM;
    }
    return 0;
}

int vlp_wordpiece_encode_n(vlp_wordpiece *t, const char *utf8, size_t len, int32_t *ids, int cap) {
    if (!t || (!utf8 && len) || (!ids && cap > 0) || cap < 0) {
        vlp_set_error("vlp_wordpiece_encode: %s", !t ? "tokenizer is NULL" : "bad text or id buffer");
        return VLP_ERR_ARG;
    }
    i32s out = {0};
    int rc = encode(t, utf8 ? utf8 : "", len, &out);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (out.n > (size_t)INT32_MAX) {
        free(out.v);
        vlp_set_error("vlp_wordpiece_encode: more than 2^31 tokens");
        return VLP_ERR_ARG;
    }
    if (cap > 0 && out.n) memcpy(ids, out.v, (out.n < (size_t)cap ? out.n : (size_t)cap) * sizeof *ids);
    free(out.v);
    return (int)out.n;
}

int vlp_wordpiece_encode(vlp_wordpiece *t, const char *utf8, int32_t *ids, int cap) {
    return vlp_wordpiece_encode_n(t, utf8, utf8 ? strlen(utf8) : 0, ids, cap);
}

int vlp_wordpiece_encode_pair(vlp_wordpiece *t, const char *a, const char *b, int max_len, int32_t *input_ids,
                              int32_t *type_ids, int32_t *mask) {
    return vlp_wordpiece_encode_pair_n(t, a, a ? strlen(a) : 0, b, b ? strlen(b) : 0, max_len, input_ids, type_ids,
                                       mask);
}

int vlp_wordpiece_encode_pair_n(vlp_wordpiece *t, const char *a, size_t alen, const char *b, size_t blen,
                                int max_len, int32_t *input_ids, int32_t *type_ids, int32_t *mask) {
    if (!t || !a || !input_ids || max_len < 3) {
        vlp_set_error("vlp_wordpiece_encode_pair: %s", !t ? "tokenizer is NULL"
                                                       : !a || !input_ids ? "NULL text or id buffer"
                                                                          : "max_len must be >= 3");
        return VLP_ERR_ARG;
    }
    int cls = t->special[VLP_WP_CLS], sep = t->special[VLP_WP_SEP], pad = t->special[VLP_WP_PAD];
    if (cls < 0 || sep < 0) {
        vlp_set_error("vlp_wordpiece_encode_pair: the vocabulary has no %s token", cls < 0 ? "[CLS]" : "[SEP]");
        return VLP_ERR_ARG;
    }
    if (pad < 0) pad = 0; /* run_classifier.py pads with 0 */
    i32s ta = {0}, tb = {0};
    int rc = encode(t, a, alen, &ta);
    if (!rc && b) rc = encode(t, b, blen, &tb);
    if (rc) {
        free(ta.v), free(tb.v);
        return rc;
    }
    size_t na = ta.n, nb = tb.n;
    if (nb == 0) { /* no B tokens: a single text */
        if (na > (size_t)max_len - 2) na = (size_t)max_len - 2;
    } else {
        while (na + nb > (size_t)max_len - 3) { /* _truncate_seq_pair */
            if (na > nb) na--;
            else nb--;
        }
    }
    int n = 0;
    for (int i = 0; i < max_len; i++) {
        input_ids[i] = pad;
        if (type_ids) type_ids[i] = 0;
        if (mask) mask[i] = 0;
    }
    input_ids[n++] = cls;
    for (size_t i = 0; i < na; i++) input_ids[n++] = ta.v[i];
    input_ids[n++] = sep;
    int first_b = n;
    if (nb) {
        for (size_t i = 0; i < nb; i++) input_ids[n++] = tb.v[i];
        input_ids[n++] = sep;
    }
    for (int i = 0; i < n; i++) {
        if (type_ids) type_ids[i] = i >= first_b;
        if (mask) mask[i] = 1;
    }
    free(ta.v), free(tb.v);
    return n;
}

int vlp_wordpiece_decode(const vlp_wordpiece *t, const int32_t *ids, int n, int skip_special, char *out, size_t cap) {
    if (!t || (!ids && n > 0) || n < 0 || (!out && cap > 0)) {
        vlp_set_error("vlp_wordpiece_decode: %s", !t ? "tokenizer is NULL" : "bad id or output buffer");
        return VLP_ERR_ARG;
    }
    size_t len = 0;
    int any = 0;
#define EMIT(s, k)                                                              \
    do {                                                                        \
        size_t k_ = (k);                                                        \
        if (len < cap) memcpy(out + len, s, len + k_ < cap ? k_ : cap - len);   \
        len += k_;                                                              \
    } while (0)
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->nvocab) {
            vlp_set_error("vlp_wordpiece_decode: id %d at position %d is out of range (vocabulary of %d)", (int)ids[i],
                          i, t->nvocab);
            return VLP_ERR_ARG;
        }
        if (skip_special && (ids[i] == t->special[VLP_WP_PAD] || ids[i] == t->special[VLP_WP_CLS] ||
                             ids[i] == t->special[VLP_WP_SEP] || ids[i] == t->special[VLP_WP_MASK]))
            continue;
        const char *s = t->tok_bytes + t->tok_off[ids[i]];
        size_t k = strlen(s);
        if (any && k >= 2 && s[0] == '#' && s[1] == '#') s += 2, k -= 2; /* " ##" -> "" */
        else if (any) EMIT(" ", 1);
        EMIT(s, k);
        any = 1;
    }
#undef EMIT
    if (cap) out[len < cap ? len : cap - 1] = 0;
    if (len > (size_t)INT32_MAX) {
        vlp_set_error("vlp_wordpiece_decode: text longer than 2^31 bytes");
        return VLP_ERR_ARG;
    }
    return (int)len;
}
