/* The tokenizer of a CLIP dual encoder. OpenAI's CLIP is fed by its byte-level BPE and pools
 * text at <|endoftext|>; the same towers fed by WordPiece take [CLS] text [SEP] and pool at the
 * first [SEP] (the config's eos_id). The kind is part of the model's config, so every command
 * that embeds text gets the model's own tokenizer here. */
#include "vlp_clip.h"

#include <stdio.h>
#include <string.h>

#include "core/internal.h"

int vlp_clip_config_set_tokenizer(vlp_clip_config *c, const vlp_tokenizer *t) {
    if (!c || !t) {
        vlp_set_error("vlp_clip_config_set_tokenizer: NULL argument");
        return VLP_ERR_ARG;
    }
    vlp_wordpiece *wp = vlp_tokenizer_wordpiece(t);
    if (!wp) { /* CLIP BPE: its own ids, zero padded (no [MASK]/[PAD] rows); a wider table is kept */
        int n = vlp_bpe_vocab_size(vlp_tokenizer_bpe(t));
        c->tokenizer = VLP_TOKENIZER_CLIP_BPE;
        if (c->vocab_size < n) c->vocab_size = n;
        c->eos_id = VLP_BPE_EOT;
        return VLP_OK;
    }
    unsigned need = (1u << VLP_WP_CLS) | (1u << VLP_WP_SEP) | (1u << VLP_WP_PAD);
    if (vlp_wordpiece_require_specials(wp, need, "a CLIP text tower (pooled at [SEP])")) return VLP_ERR_ARG;
    c->tokenizer = VLP_TOKENIZER_WORDPIECE;
    c->vocab_size = vlp_wordpiece_vocab_size(wp);
    c->eos_id = vlp_wordpiece_special_id(wp, VLP_WP_SEP);
    return VLP_OK;
}

vlp_tokenizer *vlp_clip_tokenizer_load(const vlp_clip *m, const char *vocab) {
    if (!m) {
        vlp_set_error("vlp_clip_tokenizer_load: NULL model");
        return NULL;
    }
    const vlp_clip_config *c = &m->cfg;
    int kind = c->tokenizer == VLP_TOKENIZER_WORDPIECE ? VLP_TOKENIZER_WORDPIECE : VLP_TOKENIZER_CLIP_BPE;
    const char *use = vocab ? vocab : m->vocab[0] ? m->vocab : NULL;
    vlp_tokenizer *t = vlp_tokenizer_load(kind, kind == VLP_TOKENIZER_WORDPIECE ? use : vocab);
    if (!t) return NULL;
    vlp_clip_config want = *c;
    const char *src = use ? use : "(built-in vocabulary)";
    const char *hint = vocab ? "a vocabulary for another model?" : "the model was trained with another vocabulary";
    int bad = vlp_clip_config_set_tokenizer(&want, t); /* names the missing specials */
    int n = kind == VLP_TOKENIZER_WORDPIECE ? vlp_tokenizer_vocab_size(t) : vlp_bpe_vocab_size(vlp_tokenizer_bpe(t));
    /* BPE ids must index the table (a wider table is harmless); WordPiece's must be the model's */
    if (!bad && (kind == VLP_TOKENIZER_WORDPIECE ? n != c->vocab_size : n > c->vocab_size)) {
        vlp_set_error("%s: the %s tokenizer has %d tokens, the model's vocabulary %d (%s)", src,
                      vlp_tokenizer_kind_name(kind), n, c->vocab_size, hint);
        bad = 1;
    } else if (!bad && kind == VLP_TOKENIZER_WORDPIECE && want.eos_id != c->eos_id) {
        vlp_set_error("%s: [SEP] is id %d, the model pools text at id %d (%s)", src, want.eos_id, c->eos_id, hint);
        bad = 1;
    }
    if (bad) {
        vlp_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int vlp_clip_tokenize(vlp_tokenizer *t, const char *text, int T, int32_t *ids) {
    if (!t || !text || !ids) {
        vlp_set_error("vlp_clip_tokenize: NULL argument");
        return VLP_ERR_ARG;
    }
    if (vlp_tokenizer_bpe(t)) return vlp_bpe_tokenize(vlp_tokenizer_bpe(t), text, T, 1, ids) < 0 ? VLP_ERR_ARG : 0;
    return vlp_tokenizer_encode_pair(t, text, NULL, T, ids, NULL, NULL) < 0 ? VLP_ERR_ARG : 0;
}
