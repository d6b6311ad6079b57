/* A VL model's tokenizer: its config names the kind (WordPiece or CLIP BPE); the vocabulary
 * file travels in the model directory (vocab.txt, or merges.txt[.gz] for BPE) unless the
 * built-in one was used. Every command that opens a model gets its tokenizer here, so a model
 * trained on either tokenizer evaluates, captions and fine-tunes with the same one. */
#include "vlp_vl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

int vlp_vl_config_set_tokenizer(vlp_vl_config *c, const vlp_tokenizer *t, const char *vocab) {
    if (!c || !t) {
        vlp_set_error("vlp_vl_config_set_tokenizer: NULL argument");
        return VLP_ERR_ARG;
    }
    (void)vocab; /* the WordPiece tokenizer knows its file; CLIP BPE has every role */
    if (vlp_tokenizer_wordpiece(t) &&
        vlp_wordpiece_require_specials(vlp_tokenizer_wordpiece(t), VLP_WP_VL_SPECIALS, "vision-language models"))
        return VLP_ERR_ARG;
    c->tokenizer = vlp_tokenizer_kind(t);
    c->vocab_size = vlp_tokenizer_vocab_size(t);
    c->pad_id = vlp_tokenizer_special_id(t, VLP_WP_PAD);
    c->cls_id = c->bos_id = vlp_tokenizer_special_id(t, VLP_WP_CLS); /* [CLS] starts a caption */
    c->sep_id = c->eos_id = vlp_tokenizer_special_id(t, VLP_WP_SEP); /* [SEP] ends it */
    c->mask_id = vlp_tokenizer_special_id(t, VLP_WP_MASK);
    return VLP_OK;
}

static int readable(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && access(p, R_OK) == 0;
}

/* The directory of a model given as a directory or as its .safetensors file. */
static void model_dir(const char *model, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", model ? model : ".");
    size_t L = strlen(dir);
    if (L > 12 && !strcmp(dir + L - 12, ".safetensors")) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, cap, ".");
    }
}

const char *vlp_vl_tokenizer_file(int kind, const char *src) {
    if (kind != VLP_TOKENIZER_CLIP_BPE) return "vocab.txt";
    size_t L = src ? strlen(src) : 0;
    return L > 3 && !strcmp(src + L - 3, ".gz") ? "merges.txt.gz" : "merges.txt";
}

int vlp_vl_tokenizer_path(const vlp_vl_config *c, const char *model, char *out, size_t cap) {
    char dir[4096];
    if (cap) out[0] = 0;
    if (!c || !model) return 0;
    model_dir(model, dir, sizeof dir);
    const char *cand[2] = {"vocab.txt", NULL};
    if (c->tokenizer == VLP_TOKENIZER_CLIP_BPE) cand[0] = "merges.txt.gz", cand[1] = "merges.txt";
    for (int i = 0; i < 2 && cand[i]; i++) {
        snprintf(out, cap, "%s/%s", dir, cand[i]);
        if (readable(out)) return 1;
    }
    if (cap) out[0] = 0;
    return 0;
}

vlp_tokenizer *vlp_vl_tokenizer_load(const vlp_vl_config *c, const char *model, const char *vocab) {
    if (!c) {
        vlp_set_error("vlp_vl_tokenizer_load: NULL config");
        return NULL;
    }
    char path[4200];
    const char *use = vocab; /* else the model's own file, else the built-in vocabulary */
    if (!use && vlp_vl_tokenizer_path(c, model, path, sizeof path)) use = path;
    vlp_tokenizer *t = vlp_tokenizer_load(c->tokenizer, use);
    if (t && vlp_tokenizer_vocab_size(t) != c->vocab_size) {
        vlp_set_error("%s: the %s tokenizer has %d tokens, the model's vocabulary %d (%s)",
                      use ? use : "(built-in vocabulary)", vlp_tokenizer_kind_name(c->tokenizer),
                      vlp_tokenizer_vocab_size(t), c->vocab_size,
                      vocab ? "a --vocab for another model?" : "the model was trained with another vocabulary");
        vlp_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int vlp_vl_tokenizer_save(int kind, const char *vocab, const char *model) {
    if (!vocab || !vocab[0]) return VLP_OK; /* built in: nothing to carry */
    char dir[4096], dst[4200];
    model_dir(model, dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/%s", dir, vlp_vl_tokenizer_file(kind, vocab));
    if (!strcmp(dst, vocab)) return VLP_OK;
    FILE *in = fopen(vocab, "rb");
    if (!in) {
        vlp_set_error("%s: %s", vocab, strerror(errno));
        return VLP_ERR_IO;
    }
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst); /* atomic: a reader never sees half a vocabulary */
    FILE *o = fopen(tmp, "wb");
    int bad = !o;
    char buf[65536];
    size_t n;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, o) != n;
    bad |= ferror(in);
    fclose(in);
    if (o && fclose(o)) bad = 1;
    if (bad || rename(tmp, dst)) {
        vlp_set_error("cannot copy %s to %s: %s", vocab, dst, strerror(errno));
        remove(tmp);
        return VLP_ERR_IO;
    }
    return VLP_OK;
}
