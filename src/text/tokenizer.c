/* One text tokenizer interface over BERT WordPiece and CLIP BPE, so that either can feed any
 * text model (a VL model's config names its tokenizer). WordPiece passes straight through to
 * wordpiece.c (the reference-exact BERT input). CLIP BPE gets the roles a fusion model needs:
 * <|startoftext|> is [CLS], <|endoftext|> is [SEP], and two ids past the BPE vocabulary are
 * [MASK] (MLM) and [PAD] (CLIP pads with id 0, which is the token "!", and fusion models
 * derive their attention mask from id != pad). There is no [UNK]: byte-level BPE encodes any
 * text. */
#include "vlp_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vlp_tokenizer {
    int kind;
    vlp_wordpiece *wp;
    vlp_bpe *bpe;
    int bpe_vocab; /* the BPE's own ids: 0 .. bpe_vocab-1; [MASK] = bpe_vocab, [PAD] = bpe_vocab + 1 */
};

int vlp_tokenizer_kind_parse(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "wordpiece")) return VLP_TOKENIZER_WORDPIECE;
    if (!strcmp(name, "clip_bpe")) return VLP_TOKENIZER_CLIP_BPE;
    return -1;
}

const char *vlp_tokenizer_kind_name(int kind) {
    return kind == VLP_TOKENIZER_WORDPIECE ? "wordpiece" : kind == VLP_TOKENIZER_CLIP_BPE ? "clip_bpe" : "?";
}

vlp_tokenizer *vlp_tokenizer_load(int kind, const char *path) {
    if (kind != VLP_TOKENIZER_WORDPIECE && kind != VLP_TOKENIZER_CLIP_BPE) {
        vlp_set_error("vlp_tokenizer_load: unknown tokenizer kind %d (wordpiece or clip_bpe)", kind);
        return NULL;
    }
    vlp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        vlp_set_error("vlp_tokenizer_load: out of memory");
        return NULL;
    }
    t->kind = kind;
    if (kind == VLP_TOKENIZER_WORDPIECE) {
        if (!(t->wp = vlp_wordpiece_load(path))) goto fail;
    } else {
        if (!(t->bpe = vlp_bpe_load(path))) {
            if (path && !strstr(vlp_last_error(), path)) { /* name the file (a vocab.txt given for BPE?) */
                char msg[512];
                snprintf(msg, sizeof msg, "%s", vlp_last_error());
                vlp_set_error("%s: not a CLIP BPE merges file: %s", path, msg);
            }
            goto fail;
        }
        t->bpe_vocab = vlp_bpe_vocab_size(t->bpe);
        if (t->bpe_vocab <= VLP_BPE_EOT) {
            vlp_set_error("%s: a BPE vocabulary of %d tokens has no <|startoftext|> / <|endoftext|> (ids %d, %d)",
                          path ? path : "(built-in)", t->bpe_vocab, VLP_BPE_SOT, VLP_BPE_EOT);
            goto fail;
        }
    }
    return t;
fail:
    vlp_tokenizer_free(t);
    return NULL;
}

vlp_tokenizer *vlp_tokenizer_from_wordpiece(vlp_wordpiece *wp) {
    vlp_tokenizer *t = wp ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        vlp_set_error("vlp_tokenizer_from_wordpiece: %s", wp ? "out of memory" : "NULL tokenizer");
        return NULL;
    }
    t->kind = VLP_TOKENIZER_WORDPIECE;
    t->wp = wp;
    return t;
}

void vlp_tokenizer_free(vlp_tokenizer *t) {
    if (!t) return;
    vlp_wordpiece_free(t->wp);
    vlp_bpe_free(t->bpe);
    free(t);
}

int vlp_tokenizer_kind(const vlp_tokenizer *t) { return t ? t->kind : -1; }
vlp_wordpiece *vlp_tokenizer_wordpiece(const vlp_tokenizer *t) { return t ? t->wp : NULL; }
vlp_bpe *vlp_tokenizer_bpe(const vlp_tokenizer *t) { return t ? t->bpe : NULL; }

int vlp_tokenizer_vocab_size(const vlp_tokenizer *t) {
    if (!t) return 0;
    return t->wp ? vlp_wordpiece_vocab_size(t->wp) : t->bpe_vocab + 2;
}

int vlp_tokenizer_special_id(const vlp_tokenizer *t, int which) {
    if (!t) return -1;
    if (t->wp) return vlp_wordpiece_special_id(t->wp, which);
    switch (which) {
    case VLP_WP_PAD: return t->bpe_vocab + 1;
    case VLP_WP_CLS: return VLP_BPE_SOT;
    case VLP_WP_SEP: return VLP_BPE_EOT;
    case VLP_WP_MASK: return t->bpe_vocab;
    default: return -1; /* no [UNK] */
    }
}

int vlp_tokenizer_encode_n(vlp_tokenizer *t, const char *utf8, size_t len, int32_t *ids, int cap) {
    if (!t) {
        vlp_set_error("vlp_tokenizer_encode: NULL tokenizer");
        return VLP_ERR_ARG;
    }
    return t->wp ? vlp_wordpiece_encode_n(t->wp, utf8, len, ids, cap) : vlp_bpe_encode_n(t->bpe, utf8, len, ids, cap);
}

int vlp_tokenizer_encode(vlp_tokenizer *t, const char *utf8, int32_t *ids, int cap) {
    return vlp_tokenizer_encode_n(t, utf8 ? utf8 : "", utf8 ? strlen(utf8) : 0, ids, cap);
}

/* The BERT layout over BPE ids: [CLS] A [SEP] (B [SEP]) with BERT's truncation (a single text
 * keeps its first max_len - 2 ids; a pair drops the last id of the longer side, B when equal,
 * until both fit), then [PAD]. */
static int bpe_pair(vlp_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                    int32_t *ids, int32_t *type_ids, int32_t *mask) {
    int na = vlp_bpe_encode_n(t->bpe, a, alen, NULL, 0), nb = b ? vlp_bpe_encode_n(t->bpe, b, blen, NULL, 0) : 0;
    if (na < 0 || nb < 0) return na < 0 ? na : nb;
    int32_t *buf = malloc(((size_t)na + nb + 1) * sizeof *buf);
    if (!buf) {
        vlp_set_error("vlp_tokenizer_encode_pair: out of memory");
        return VLP_ERR_NOMEM;
    }
    vlp_bpe_encode_n(t->bpe, a, alen, buf, na);
    if (nb) vlp_bpe_encode_n(t->bpe, b, blen, buf + na, nb);
    int ka = na, kb = nb;
    if (!nb) {
        if (ka > max_len - 2) ka = max_len - 2;
    } else {
        while (ka + kb > max_len - 3) {
            if (kb >= ka) kb--;
            else ka--;
        }
    }
    int n = 0;
    ids[n] = VLP_BPE_SOT, n++;
    for (int i = 0; i < ka; i++) ids[n++] = buf[i];
    ids[n++] = VLP_BPE_EOT;
    int first_sep = n;
    if (kb) {
        for (int i = 0; i < kb; i++) ids[n++] = buf[na + i];
        ids[n++] = VLP_BPE_EOT;
    }
    free(buf);
    for (int i = 0; i < max_len; i++) {
        if (i >= n) ids[i] = t->bpe_vocab + 1;
        if (type_ids) type_ids[i] = i >= first_sep && i < n;
        if (mask) mask[i] = i < n;
    }
    return n;
}

int vlp_tokenizer_encode_pair_n(vlp_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                                int max_len, int32_t *ids, int32_t *type_ids, int32_t *mask) {
    if (!t || !a || !ids || max_len < 3) {
        vlp_set_error("vlp_tokenizer_encode_pair: %s", max_len < 3 ? "max_len below 3" : "NULL argument");
        return VLP_ERR_ARG;
    }
    if (t->wp) return vlp_wordpiece_encode_pair_n(t->wp, a, alen, b, blen, max_len, ids, type_ids, mask);
    return bpe_pair(t, a, alen, b, blen, max_len, ids, type_ids, mask);
}

int vlp_tokenizer_encode_pair(vlp_tokenizer *t, const char *a, const char *b, int max_len, int32_t *ids,
                              int32_t *type_ids, int32_t *mask) {
    return vlp_tokenizer_encode_pair_n(t, a, a ? strlen(a) : 0, b, b ? strlen(b) : 0, max_len, ids, type_ids, mask);
}

/* Appends s to out[*len..cap) as snprintf would (counting what does not fit). */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n) {
    if (*len < cap) {
        size_t room = cap - *len - 1, k = n < room ? n : room;
        memcpy(out + *len, s, k);
        out[*len + k] = 0;
    }
    *len += n;
}

int vlp_tokenizer_decode(const vlp_tokenizer *t, const int32_t *ids, int n, int skip_special, char *out, size_t cap) {
    if (!t || (n > 0 && !ids) || (cap && !out)) {
        vlp_set_error("vlp_tokenizer_decode: NULL argument");
        return VLP_ERR_ARG;
    }
    if (t->wp) return vlp_wordpiece_decode(t->wp, ids, n, skip_special, out, cap);
    if (cap) out[0] = 0;
    size_t len = 0;
    int run0 = 0;
    char *piece = NULL;
    size_t pcap = 0;
    for (int i = 0; i <= n; i++) {
        int id = i < n ? ids[i] : -1;
        int special = i < n && (id == VLP_BPE_SOT || id == VLP_BPE_EOT || id >= t->bpe_vocab);
        if (i < n && (id < 0 || id >= t->bpe_vocab + 2)) {
            free(piece);
            vlp_set_error("vlp_tokenizer_decode: id %d out of range (vocabulary %d)", id, t->bpe_vocab + 2);
            return VLP_ERR_ARG;
        }
        if (i < n && !special) continue;
        if (i > run0) { /* the ordinary ids before this special (or the end) */
            int need = vlp_bpe_decode(t->bpe, ids + run0, i - run0, NULL, 0);
            if (need < 0) {
                free(piece);
                return need;
            }
            if ((size_t)need + 1 > pcap) {
                char *p = realloc(piece, (size_t)need + 1);
                if (!p) {
                    free(piece);
                    vlp_set_error("vlp_tokenizer_decode: out of memory");
                    return VLP_ERR_NOMEM;
                }
                piece = p, pcap = (size_t)need + 1;
            }
            vlp_bpe_decode(t->bpe, ids + run0, i - run0, piece, pcap);
            size_t k = (size_t)need;
            while (k && piece[k - 1] == ' ') k--; /* "</w>" leaves a space after the last word */
            if (len && k) put(out, cap, &len, " ", 1);
            put(out, cap, &len, piece, k);
        }
        if (special && !skip_special) {
            const char *s = id == VLP_BPE_SOT ? "<|startoftext|>"
                            : id == VLP_BPE_EOT ? "<|endoftext|>"
                            : id == t->bpe_vocab ? "[MASK]"
                                                 : "[PAD]";
            if (len) put(out, cap, &len, " ", 1);
            put(out, cap, &len, s, strlen(s));
        }
        run0 = i + 1;
    }
    free(piece);
    return len > 0x7fffffff ? 0x7fffffff : (int)len;
}

int vlp_tokenizer_id_text(const vlp_tokenizer *t, int id, char *out, size_t cap) {
    if (t && t->wp) {
        const char *s = vlp_wordpiece_id_token(t->wp, id);
        if (!s) {
            vlp_set_error("vlp_tokenizer_id_text: id %d out of range", id);
            return VLP_ERR_ARG;
        }
        return snprintf(out, cap, "%s", s);
    }
    int32_t one = id;
    return vlp_tokenizer_decode(t, &one, 1, 0, out, cap);
}

uint8_t *vlp_tokenizer_word_flags(const vlp_tokenizer *t) {
    int V = vlp_tokenizer_vocab_size(t);
    uint8_t *f = V > 0 ? calloc((size_t)V, 1) : NULL;
    if (!f) {
        vlp_set_error("vlp_tokenizer_word_flags: %s", V > 0 ? "out of memory" : "NULL tokenizer");
        return NULL;
    }
    char buf[256];
    for (int id = 0; id < V; id++) {
        if (t->wp) {
            const char *s = vlp_wordpiece_id_token(t->wp, id);
            if (s && s[0] == '#' && s[1] == '#' && s[2]) f[id] = VLP_TOKEN_CONTINUES;
        } else if (id < t->bpe_vocab && id != VLP_BPE_SOT && id != VLP_BPE_EOT) {
            int32_t one = id;
            int n = vlp_bpe_decode(t->bpe, &one, 1, buf, sizeof buf);
            /* a BPE token without "</w>" (decoded: no trailing space) is continued by the next */
            if (n > 0 && (size_t)n < sizeof buf && buf[n - 1] != ' ') f[id] = VLP_TOKEN_CONTINUED;
        }
    }
    return f;
}
