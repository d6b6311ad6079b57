/* Masked language modelling conditioned on the image: BERT's 15% selection with
 * 80% [MASK] / 10% random / 10% unchanged, optionally whole-word (a WordPiece word is
 * its first token plus the "##" continuations after it; a CLIP BPE word runs up to its
 * token with "</w>": is_cont holds vlp_tokenizer_word_flags). The masking runs on the host
 * (it decides inputs); the loss is the cross-entropy of the tied LM head on the fused
 * text states at the selected positions. */
#include "vlp_vl.h"
#include "vlp_text.h"

#include "core/internal.h"

static float u01(uint64_t seed, uint64_t a, uint64_t b) { return vlp_u01(vlp_mix64(seed ^ vlp_mix64(a)), b); }

int vlp_mlm_mask(const vlp_vl_config *c, const int32_t *ids, const int32_t *mask, int n, int T,
                 const uint8_t *is_cont, int first_random, uint64_t seed, int32_t *out_ids, int32_t *labels) {
    if (!c || !ids || !out_ids || !labels || n < 0 || T <= 0) {
        vlp_set_error("vlp_mlm_mask: bad arguments");
        return VLP_ERR_ARG;
    }
    int V = c->vocab_size;
    if (first_random < 0 || first_random >= V) first_random = 0;
    int picked = 0;
    for (int r = 0; r < n; r++) {
        const int32_t *row = ids + (int64_t)r * T;
        int32_t *orow = out_ids + (int64_t)r * T, *lrow = labels + (int64_t)r * T;
        uint64_t rs = vlp_mix64(seed + 0x9E37ull * (uint64_t)r);
        /* word[t]: index of the word token t belongs to (-1: not maskable) */
        int word[1024], nwords = 0, cand = 0;
        if (T > 1024) {
            vlp_set_error("vlp_mlm_mask: rows of %d tokens (at most 1024)", T);
            return VLP_ERR_ARG;
        }
        for (int t = 0; t < T; t++) {
            int32_t id = row[t];
            int ok = (!mask || mask[(int64_t)r * T + t]) && id != c->pad_id && id != c->cls_id && id != c->sep_id &&
                     id != c->bos_id && id != c->eos_id && id >= 0 && id < V;
            if (!ok) {
                word[t] = -1;
                continue;
            }
            cand++;
            int cont = c->mlm_whole_word && is_cont && t > 0 && word[t - 1] >= 0 &&
                       ((is_cont[id] & VLP_TOKEN_CONTINUES) || (is_cont[row[t - 1]] & VLP_TOKEN_CONTINUED));
            word[t] = cont ? word[t - 1] : nwords++;
        }
        /* pick words; at least one per row that has any */
        uint8_t pick[1024];
        int any = 0;
        for (int w = 0; w < nwords; w++) {
            pick[w] = u01(rs, 1, (uint64_t)w) < c->mlm_prob;
            any |= pick[w];
        }
        if (!any && nwords) pick[(int)(u01(rs, 2, 0) * (float)nwords) % nwords] = 1;
        for (int t = 0; t < T; t++) {
            orow[t] = row[t];
            lrow[t] = -100;
            if (word[t] < 0 || !pick[word[t]]) continue;
            lrow[t] = row[t];
            picked++;
            float u = u01(rs, 3, (uint64_t)t);
            if (u < 0.8f) orow[t] = c->mask_id;
            else if (u < 0.9f)
                orow[t] = first_random + (int32_t)(u01(rs, 4, (uint64_t)t) * (float)(V - first_random)) % (V - first_random);
        }
        (void)cand;
    }
    return picked;
}

int vlp_mlm_compact(const int32_t *labels, int64_t n, int32_t *rows, int32_t *row_labels, int cap) {
    int k = 0, dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] == -100) continue;
        if (k < cap) {
            rows[k] = (int32_t)i;
            row_labels[k++] = labels[i];
        } else {
            dropped++;
        }
    }
    for (; k < cap; k++) rows[k] = 0, row_labels[k] = -100; /* padding rows, ignored by the loss */
    return dropped;
}

uint8_t *vlp_wordpiece_continuations(const char *path, int *n) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        vlp_set_error("%s: cannot open the vocabulary", path ? path : "(null)");
        return NULL;
    }
    size_t cap = 1024, len = 0;
    uint8_t *out = malloc(cap);
    char line[1024];
    while (out && fgets(line, sizeof line, f)) {
        if (len == cap) {
            uint8_t *o = realloc(out, cap * 2);
            if (!o) {
                free(out);
                out = NULL;
                break;
            }
            out = o;
            cap *= 2;
        }
        out[len++] = line[0] == '#' && line[1] == '#';
        /* a line longer than the buffer: skip its rest */
        while (!strchr(line, '\n') && fgets(line, sizeof line, f)) {}
    }
    fclose(f);
    if (!out) {
        vlp_set_error("out of memory");
        return NULL;
    }
    if (n) *n = (int)len;
    return out;
}

vlp_tensor *vlp_vl_mlm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused, vlp_tensor *rows, vlp_tensor *labels) {
    if (!m || !fused || !labels) {
        vlp_graph_fail(g, "vlp_vl_mlm_loss: NULL argument");
        return NULL;
    }
    if (rows) { /* only the selected positions reach the vocabulary-wide head */
        int64_t s2[2] = {fused->shape[0] * fused->shape[1], fused->shape[2]};
        vlp_tensor *sel = vlp_embedding(g, rows, vlp_reshape(g, fused, 2, s2));
        if (!sel) return NULL;
        return vlp_cross_entropy(g, vlp_vl_lm_logits(g, m, sel), labels, -100);
    }
    vlp_tensor *logits = vlp_vl_lm_logits(g, m, fused);
    if (!logits) return NULL;
    int64_t s[2] = {logits->shape[0] * logits->shape[1], logits->shape[2]};
    return vlp_cross_entropy(g, vlp_reshape(g, logits, 2, s), labels, -100);
}
