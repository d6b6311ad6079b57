/* Fusion and generative VL models (include/vlp_vl.h): configs, parameters, forward
 * functions of the four families, checkpoints. The BERT parts (DUAL's text encoder,
 * CAPTION's decoder) are vlp_bert (src/nn/bert.c) declared inside this model's store
 * under "text."; everything else is pre-LN (ViT / ViLT / VLMo layout). */
#include "vlp_vl.h"

#include "core/internal.h"
#include "io/json_file.h"
#include "vlp_image.h"
#include "vlp_safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *family_names[] = {"single_stream", "dual_stream", "mome", "captioning"};

const char *vlp_vl_family_name(int f) { return f >= 0 && f <= 3 ? family_names[f] : "?"; }

/* ---- configs ------------------------------------------------------------------------- */

static void base_config(vlp_vl_config *c) {
    memset(c, 0, sizeof *c);
    c->image_size = 224;
    c->patch_size = 16;
    c->vocab_size = 30522;
    c->max_text_len = 40;
    c->tokenizer = VLP_TOKENIZER_WORDPIECE;
    c->act = VLP_ACT_GELU;
    c->ln_eps = 1e-12f;
    /* BERT uncased: [PAD] 0, [CLS] 101, [SEP] 102, [MASK] 103; captions start at [CLS] as in BLIP's
     * [DEC] stand-in and end at [SEP] */
    c->pad_id = 0;
    c->cls_id = 101;
    c->sep_id = 102;
    c->mask_id = 103;
    c->bos_id = 101;
    c->eos_id = 102;
    c->mlm_prob = 0.15f;
    c->mim_ratio = 0.4f;
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(c->mean, mean, sizeof mean);
    memcpy(c->std, std, sizeof std);
}

static void set_stack(vlp_vl_config *c, int w, int l, int h) {
    c->width = w;
    c->layers = l;
    c->heads = h;
    c->mlp = 4 * w;
}
static void set_vit(vlp_vl_config *c, int w, int l, int h) {
    c->vision_width = w;
    c->vision_layers = l;
    c->vision_heads = h;
    c->vision_mlp = 4 * w;
}

int vlp_vl_preset(const char *name, vlp_vl_config *c) {
    if (!name || !c) {
        vlp_set_error("vlp_vl_preset: NULL argument");
        return VLP_ERR_ARG;
    }
    base_config(c);
    size_t n = strlen(name);
    int tiny = n > 5 && !strcmp(name + n - 5, "-tiny");
    char base[64];
    snprintf(base, sizeof base, "%.*s", (int)(tiny ? n - 5 : n), name);
    if (tiny) { /* shapes for tests: 32x32 images, 8x8 patches, vocabulary 64 */
        c->image_size = 32;
        c->patch_size = 8;
        c->vocab_size = 64;
        c->max_text_len = 16;
        c->pad_id = 0;
        c->cls_id = 1;
        c->sep_id = 2;
        c->mask_id = 3;
        c->bos_id = 1;
        c->eos_id = 2;
        c->ln_eps = 1e-6f;
        set_stack(c, 32, 2, 2);
        set_vit(c, 32, 2, 2);
        c->fusion_layers = 1;
        c->embed_dim = 16;
    }
    if (!strcmp(base, "vilt")) {
        c->family = VLP_VL_SINGLE;
        if (!tiny) {
            c->patch_size = 32;
            c->image_size = 384;
            set_stack(c, 768, 12, 12);
            set_vit(c, 768, 0, 12);
        }
        c->embed_dim = 0; /* no unimodal encoders: no ITC */
        c->w_itm = c->w_mlm = 1;
    } else if (!strcmp(base, "albef") || !strcmp(base, "albef-coattn")) {
        c->family = VLP_VL_DUAL;
        if (!tiny) {
            set_stack(c, 768, 12, 12);
            set_vit(c, 768, 12, 12);
            c->fusion_layers = 6;
            c->embed_dim = 256;
        }
        c->co_attention = !strcmp(base, "albef-coattn");
        c->w_itc = c->w_itm = c->w_mlm = 1;
    } else if (!strcmp(base, "vlmo")) {
        c->family = VLP_VL_MOME;
        if (!tiny) {
            set_stack(c, 768, 12, 12);
            c->fusion_layers = 2;
            c->embed_dim = 768;
        }
        c->vision_width = c->width;
        c->w_itc = c->w_itm = c->w_mlm = 1;
    } else if (!strcmp(base, "blip")) {
        c->family = VLP_VL_CAPTION;
        if (!tiny) {
            set_stack(c, 768, 12, 12);
            set_vit(c, 768, 12, 12);
            c->image_size = 384;
        }
        c->fusion_layers = 0;
        c->embed_dim = 0;
        c->w_lm = 1;
    } else {
        vlp_set_error("unknown VL preset '%s' (vilt, albef, albef-coattn, vlmo, blip, each also as -tiny)", name);
        return VLP_ERR_ARG;
    }
    if (c->family == VLP_VL_SINGLE || c->family == VLP_VL_MOME) {
        c->vision_width = c->width;
        c->vision_heads = c->heads;
        c->vision_layers = 0;
        c->vision_mlp = c->mlp;
    }
    return VLP_OK;
}

/* CoCa: a captioning decoder whose lower layers are unimodal and which has ITC heads. With
 * fusion_layers 0 or == layers (every layer cross-attends, as before) or embed_dim 0 the
 * model has exactly the tensors it had without this option, so old checkpoints load. */
static int caption_itc(const vlp_vl_config *c) {
    return c->family == VLP_VL_CAPTION && c->embed_dim > 0 && c->fusion_layers > 0 && c->fusion_layers < c->layers;
}
/* first decoder layer with cross-attention */
static int caption_from(const vlp_vl_config *c) {
    return c->fusion_layers > 0 && c->fusion_layers < c->layers ? c->layers - c->fusion_layers : 0;
}

static int img_width(const vlp_vl_config *c) {
    return c->family == VLP_VL_DUAL || c->family == VLP_VL_CAPTION ? c->vision_width : c->width;
}

int vlp_vl_config_validate(const vlp_vl_config *c) {
    if (!c) {
        vlp_set_error("VL config is NULL");
        return VLP_ERR_ARG;
    }
    if (c->family < VLP_VL_SINGLE || c->family > VLP_VL_CAPTION) {
        vlp_set_error("VL config: family %d is not one of single_stream, dual_stream, mome, captioning", c->family);
        return VLP_ERR_ARG;
    }
#define POS(f)                                                               \
    if (c->f <= 0) {                                                         \
        vlp_set_error("VL config: %s must be positive (got %d)", #f, c->f); \
        return VLP_ERR_ARG;                                                  \
    }
    POS(image_size) POS(patch_size) POS(vocab_size) POS(max_text_len) POS(width) POS(layers) POS(heads) POS(mlp)
#undef POS
    int vit = c->family == VLP_VL_DUAL || c->family == VLP_VL_CAPTION;
    if (vit && (c->vision_width <= 0 || c->vision_layers <= 0 || c->vision_heads <= 0 || c->vision_mlp <= 0 ||
                c->vision_width % c->vision_heads)) {
        vlp_set_error("VL config: %s needs a ViT: vision_width %d, vision_layers %d, vision_heads %d, vision_mlp %d "
                      "(positive, width divisible by heads)",
                      vlp_vl_family_name(c->family), c->vision_width, c->vision_layers, c->vision_heads,
                      c->vision_mlp);
        return VLP_ERR_ARG;
    }
    if (c->image_size % c->patch_size) {
        vlp_set_error("VL config: image_size %d is not a multiple of patch_size %d", c->image_size, c->patch_size);
        return VLP_ERR_ARG;
    }
    if (c->width % c->heads) {
        vlp_set_error("VL config: width %d is not divisible by heads %d", c->width, c->heads);
        return VLP_ERR_ARG;
    }
    if (c->layers > VLP_BERT_MAX_LAYERS || c->vision_layers > 64) {
        vlp_set_error("VL config: at most %d layers (got %d, vision %d)", VLP_BERT_MAX_LAYERS, c->layers,
                      c->vision_layers);
        return VLP_ERR_ARG;
    }
    if ((c->family == VLP_VL_DUAL && (c->fusion_layers <= 0 || c->fusion_layers > c->layers)) ||
        (c->family == VLP_VL_DUAL && c->fusion_layers == c->layers && (c->w_itc > 0 || c->w_itm > 0)) ||
        (c->family == VLP_VL_MOME && (c->fusion_layers < 0 || c->fusion_layers > c->layers)) ||
        (c->family == VLP_VL_CAPTION && (c->fusion_layers < 0 || c->fusion_layers > c->layers))) {
        vlp_set_error("VL config: fusion_layers %d does not fit %d layers (dual_stream: 1..layers, and below layers "
                      "when ITC/ITM need a text encoder; mome, captioning: 0..layers)",
                      c->fusion_layers, c->layers);
        return VLP_ERR_ARG;
    }
    if (c->co_attention && c->family != VLP_VL_DUAL) {
        vlp_set_error("VL config: co_attention is a dual_stream option");
        return VLP_ERR_ARG;
    }
    if (c->co_attention && c->vision_width % c->vision_heads) {
        vlp_set_error("VL config: co_attention needs vision_width divisible by vision_heads");
        return VLP_ERR_ARG;
    }
    if (c->tokenizer != VLP_TOKENIZER_WORDPIECE && c->tokenizer != VLP_TOKENIZER_CLIP_BPE) {
        vlp_set_error("VL config: tokenizer %d is neither wordpiece nor clip_bpe", c->tokenizer);
        return VLP_ERR_ARG;
    }
    int ids[6] = {c->pad_id, c->cls_id, c->sep_id, c->mask_id, c->bos_id, c->eos_id};
    for (int i = 0; i < 6; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            vlp_set_error("VL config: special token id %d is outside the vocabulary of %d", ids[i], c->vocab_size);
            return VLP_ERR_ARG;
        }
    float w[5] = {c->w_itc, c->w_itm, c->w_mlm, c->w_mim, c->w_lm};
    for (int i = 0; i < 5; i++)
        if (!(w[i] >= 0) || !isfinite(w[i])) {
            vlp_set_error("VL config: objective weights must be finite and >= 0");
            return VLP_ERR_ARG;
        }
    const char *fam = vlp_vl_family_name(c->family);
    /* objectives the family cannot serve first: they are the mistake, not embed_dim */
    if (c->family == VLP_VL_CAPTION && (c->w_itm > 0 || c->w_mlm > 0)) {
        int both = c->w_itm > 0 && c->w_mlm > 0;
        vlp_set_error("VL config: objective%s %s need%s a fusion family (single_stream, dual_stream or mome), not "
                      "captioning (a captioning model trains lm, itc with unimodal layers, and mim)", both ? "s" : "",
                      both ? "'itm' and 'mlm'" : c->w_itm > 0 ? "'itm'" : "'mlm'", both ? "" : "s");
        return VLP_ERR_ARG;
    }
    if (c->family != VLP_VL_CAPTION && c->w_lm > 0) {
        vlp_set_error("VL config: objective 'lm' needs the captioning family, not %s (it has no causal decoder)", fam);
        return VLP_ERR_ARG;
    }
    if (c->w_itc > 0 && c->family == VLP_VL_SINGLE) {
        vlp_set_error("VL config: objective 'itc' needs unimodal encoders, which the single_stream family lacks "
                      "(ITC and ITM hard negatives: dual_stream, mome or captioning with embed_dim > 0)");
        return VLP_ERR_ARG;
    }
    if ((c->w_itc > 0 || (c->w_itm > 0 && c->family != VLP_VL_SINGLE)) && c->embed_dim <= 0) {
        vlp_set_error("VL config: objective '%s' of the %s family needs embed_dim > 0 (ITC%s)",
                      c->w_itc > 0 ? "itc" : "itm", fam, c->w_itc > 0 ? " projections" : " hard negatives");
        return VLP_ERR_ARG;
    }
    if (c->family == VLP_VL_CAPTION && c->w_itc > 0 && !caption_itc(c)) {
        vlp_set_error("VL config: captioning ITC (CoCa) reads the text after unimodal decoder layers: fusion_layers "
                      "must be in 1..layers-1 (got %d of %d layers)", c->fusion_layers, c->layers);
        return VLP_ERR_ARG;
    }
    if (c->w_itc + c->w_itm + c->w_mlm + c->w_mim + c->w_lm <= 0) {
        vlp_set_error("VL config: no objective has a weight > 0");
        return VLP_ERR_ARG;
    }
    if (!(c->momentum >= 0 && c->momentum < 1) || c->queue_size < 0 ||
        !(c->distill_alpha >= 0 && c->distill_alpha <= 1) ||
        ((c->queue_size > 0 || c->distill_alpha > 0) && !(c->momentum > 0)) || (c->momentum > 0 && !(c->w_itc > 0))) {
        vlp_set_error("VL config: momentum in [0, 1), queue_size >= 0, distill_alpha in [0, 1]; the queue and "
                      "distillation need momentum > 0, and momentum needs the itc objective");
        return VLP_ERR_ARG;
    }
    if (c->itm_exclude_same_text != 0 && c->itm_exclude_same_text != 1) {
        vlp_set_error("VL config: itm_exclude_same_text must be 0 or 1 (got %d)", c->itm_exclude_same_text);
        return VLP_ERR_ARG;
    }
    if (!(c->mlm_prob > 0 && c->mlm_prob < 1) || !(c->mim_ratio > 0 && c->mim_ratio < 1)) {
        vlp_set_error("VL config: mlm_prob and mim_ratio must be in (0, 1)");
        return VLP_ERR_ARG;
    }
    if (!(c->ln_eps > 0) || !(c->dropout >= 0 && c->dropout < 1) || c->act < 0 || c->act > 2) {
        vlp_set_error("VL config: ln_eps must be > 0, dropout in [0, 1), act one of the VLP_ACT_* values");
        return VLP_ERR_ARG;
    }
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0)) {
            vlp_set_error("VL config: std[%d] must be > 0", i);
            return VLP_ERR_ARG;
        }
    return VLP_OK;
}

/* ---- parameters ------------------------------------------------------------------------ */

void vlp_vl_free(vlp_vl *m) {
    if (!m) return;
    vlp_params_free(m->params);
    free(m->vit);
    free(m->layers);
    free(m->co_layers);
    free(m->text); /* declared into m->params: nothing else to free */
    free(m);
}

typedef struct {
    vlp_params *P;
    int bad;
} decl;

static vlp_tensor *add(decl *d, int flags, int nd, int64_t a, int64_t b, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static vlp_tensor *add(decl *d, int flags, int nd, int64_t a, int64_t b, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t s[4] = {a, b, 0, 0};
    vlp_tensor *t = vlp_params_add(d->P, name, nd, s, flags);
    if (!t) d->bad = 1;
    return t;
}

static void declare_ffn(decl *d, vlp_vl_ffn *f, int64_t W, int64_t F, const char *p) {
    const int ND = VLP_FLAG_NO_DECAY;
    f->ln_w = add(d, ND, 1, W, 0, "%s.ln.weight", p);
    f->ln_b = add(d, ND, 1, W, 0, "%s.ln.bias", p);
    f->fc1_w = add(d, 0, 2, F, W, "%s.fc1.weight", p);
    f->fc1_b = add(d, ND, 1, F, 0, "%s.fc1.bias", p);
    f->fc2_w = add(d, 0, 2, W, F, "%s.fc2.weight", p);
    f->fc2_b = add(d, ND, 1, W, 0, "%s.fc2.bias", p);
}

/* kv_width > 0 adds cross-attention reading states of that width. */
static void declare_layer(decl *d, vlp_vl_layer *L, int64_t W, int64_t F, int64_t kv_width, int n_ffn,
                          const char *p) {
    const int ND = VLP_FLAG_NO_DECAY;
    L->ln1_w = add(d, ND, 1, W, 0, "%s.ln1.weight", p);
    L->ln1_b = add(d, ND, 1, W, 0, "%s.ln1.bias", p);
    L->qkv_w = add(d, 0, 2, 3 * W, W, "%s.attn.qkv.weight", p);
    L->qkv_b = add(d, ND, 1, 3 * W, 0, "%s.attn.qkv.bias", p);
    L->out_w = add(d, 0, 2, W, W, "%s.attn.out.weight", p);
    L->out_b = add(d, ND, 1, W, 0, "%s.attn.out.bias", p);
    if (kv_width > 0) {
        L->lnx_w = add(d, ND, 1, W, 0, "%s.xattn.ln.weight", p);
        L->lnx_b = add(d, ND, 1, W, 0, "%s.xattn.ln.bias", p);
        L->xq_w = add(d, 0, 2, W, W, "%s.xattn.q.weight", p);
        L->xq_b = add(d, ND, 1, W, 0, "%s.xattn.q.bias", p);
        L->xkv_w = add(d, 0, 2, 2 * W, kv_width, "%s.xattn.kv.weight", p);
        L->xkv_b = add(d, ND, 1, 2 * W, 0, "%s.xattn.kv.bias", p);
        L->xo_w = add(d, 0, 2, W, W, "%s.xattn.out.weight", p);
        L->xo_b = add(d, ND, 1, W, 0, "%s.xattn.out.bias", p);
    }
    static const char *names[3] = {"ffn_l", "ffn_v", "ffn_vl"};
    L->n_ffn = n_ffn;
    for (int i = 0; i < n_ffn; i++) {
        char q[160];
        snprintf(q, sizeof q, "%s.%s", p, n_ffn == 1 ? "mlp" : names[i]);
        declare_ffn(d, &L->ffn[i], W, F, q);
    }
}

static vlp_transformer_config vit_cfg(const vlp_vl_config *c) {
    vlp_transformer_config t = {.width = c->vision_width,
                                .heads = c->vision_heads,
                                .layers = c->vision_layers,
                                .mlp_dim = c->vision_mlp,
                                .act = c->act,
                                .ln_eps = c->ln_eps,
                                .causal = 0};
    return t;
}

static void bert_cfg(const vlp_vl_config *c, vlp_bert_config *b) {
    vlp_bert_config_default(b);
    b->vocab_size = c->vocab_size;
    b->hidden_size = c->width;
    b->num_hidden_layers = c->layers;
    b->num_attention_heads = c->heads;
    b->intermediate_size = c->mlp;
    b->max_position_embeddings = c->max_text_len;
    b->type_vocab_size = 2;
    b->layer_norm_eps = c->ln_eps;
    b->hidden_dropout = c->dropout;
    b->hidden_act = c->act;
    b->pre_ln = c->text_pre_ln;
    b->pooler = 0;
    b->causal = c->family == VLP_VL_CAPTION;
    b->cross_attention_from = c->family == VLP_VL_CAPTION ? caption_from(c) : c->layers - c->fusion_layers;
    b->encoder_width = c->vision_width;
}

static vlp_vl *declare(const vlp_vl_config *c) {
    if (vlp_vl_config_validate(c)) return NULL;
    vlp_vl *m = calloc(1, sizeof *m);
    if (!m) {
        vlp_set_error("out of memory");
        return NULL;
    }
    m->cfg = *c;
    m->params = vlp_params_new();
    decl d = {m->params, !m->params};
    const int ND = VLP_FLAG_NO_DECAY;
    int fam = c->family, vit = fam == VLP_VL_DUAL || fam == VLP_VL_CAPTION;
    int64_t IW = img_width(c), W = c->width, P = c->patch_size, N = (int64_t)(c->image_size / P) * (c->image_size / P);
    int64_t s_patch[4] = {IW, 3, P, P};
    if (!d.bad) {
        m->patch_w = vlp_params_add(m->params, "vision.patch_embed.weight", 4, s_patch, 0);
        d.bad |= !m->patch_w;
    }
    m->patch_b = add(&d, ND, 1, IW, 0, "vision.patch_embed.bias");
    m->vis_cls = add(&d, ND, 1, IW, 0, "vision.class_embedding");
    m->vis_pos = add(&d, ND, 2, N + 1, IW, "vision.pos_embed");
    m->mask_token = add(&d, ND, 1, IW, 0, "vision.mask_token");
    if (vit && !d.bad) {
        vlp_transformer_config vt = vit_cfg(c);
        m->vit = calloc((size_t)c->vision_layers, sizeof *m->vit);
        d.bad |= !m->vit || vlp_transformer_declare(m->params, "vision.blocks", &vt, m->vit);
        m->vit_ln_w = add(&d, ND, 1, IW, 0, "vision.ln.weight");
        m->vit_ln_b = add(&d, ND, 1, IW, 0, "vision.ln.bias");
    }
    if (!vit && !d.bad) {
        m->word_emb = add(&d, ND, 2, c->vocab_size, W, "text.word_embeddings");
        m->txt_pos = add(&d, ND, 2, c->max_text_len, W, "text.pos_embed");
        m->type_emb = add(&d, ND, 2, 2, W, "type_embed");
        m->emb_ln_w = add(&d, ND, 1, W, 0, "text.emb_ln.weight");
        m->emb_ln_b = add(&d, ND, 1, W, 0, "text.emb_ln.bias");
        m->layers = calloc((size_t)c->layers, sizeof *m->layers);
        d.bad |= !m->layers;
        for (int l = 0; l < c->layers && !d.bad; l++) {
            char p[64];
            snprintf(p, sizeof p, "blocks.%d", l);
            int nf = fam == VLP_VL_SINGLE ? 1 : l >= c->layers - c->fusion_layers ? 3 : 2;
            declare_layer(&d, &m->layers[l], W, c->mlp, 0, nf, p);
        }
        m->final_ln_w = add(&d, ND, 1, W, 0, "final_ln.weight");
        m->final_ln_b = add(&d, ND, 1, W, 0, "final_ln.bias");
    }
    if (vit && !d.bad) {
        vlp_bert_config bc;
        bert_cfg(c, &bc);
        m->text = calloc(1, sizeof *m->text);
        d.bad |= !m->text || vlp_bert_declare(m->params, "text.", &bc, m->text);
    }
    if (c->co_attention && !d.bad) {
        m->co_layers = calloc((size_t)c->fusion_layers, sizeof *m->co_layers);
        d.bad |= !m->co_layers;
        for (int l = 0; l < c->fusion_layers && !d.bad; l++) {
            char p[64];
            snprintf(p, sizeof p, "vision.co_blocks.%d", l);
            declare_layer(&d, &m->co_layers[l], IW, c->vision_mlp, W, 1, p);
        }
        m->co_ln_w = add(&d, ND, 1, IW, 0, "vision.co_ln.weight");
        m->co_ln_b = add(&d, ND, 1, IW, 0, "vision.co_ln.bias");
    }
    /* heads */
    int64_t V = c->vocab_size;
    if (fam != VLP_VL_CAPTION) {
        m->pool_w = add(&d, 0, 2, W, W, "pooler.weight");
        m->pool_b = add(&d, ND, 1, W, 0, "pooler.bias");
        m->itm_w = add(&d, 0, 2, 2, W, "itm_head.weight");
        m->itm_b = add(&d, ND, 1, 2, 0, "itm_head.bias");
    }
    m->head_w = add(&d, 0, 2, W, W, "lm_head.dense.weight");
    m->head_b = add(&d, ND, 1, W, 0, "lm_head.dense.bias");
    m->head_ln_w = add(&d, ND, 1, W, 0, "lm_head.ln.weight");
    m->head_ln_b = add(&d, ND, 1, W, 0, "lm_head.ln.bias");
    m->head_bias = add(&d, ND, 1, V, 0, "lm_head.bias");
    m->mim_w = add(&d, 0, 2, 3 * P * P, IW, "mim_head.weight");
    m->mim_b = add(&d, ND, 1, 3 * P * P, 0, "mim_head.bias");
    if (c->embed_dim > 0 && (fam == VLP_VL_DUAL || fam == VLP_VL_MOME)) {
        m->vis_proj = add(&d, 0, 2, c->embed_dim, IW, "vision_proj.weight");
        m->txt_proj = add(&d, 0, 2, c->embed_dim, W, "text_proj.weight");
        m->logit_scale = add(&d, ND, 0, 0, 0, "logit_scale");
    }
    if (caption_itc(c)) {
        m->vis_proj = add(&d, 0, 2, c->embed_dim, IW, "vision_proj.weight");
        m->txt_proj = add(&d, 0, 2, c->embed_dim, W, "text_proj.weight");
        m->logit_scale = add(&d, ND, 0, 0, 0, "logit_scale");
        m->itc_tok = add(&d, ND, 1, W, 0, "text_itc.token");
        m->itc_ln_w = add(&d, ND, 1, W, 0, "text_itc.ln.weight");
        m->itc_ln_b = add(&d, ND, 1, W, 0, "text_itc.ln.bias");
    }
    if (d.bad || vlp_params_alloc(m->params)) {
        vlp_vl_free(m);
        return NULL;
    }
    return m;
}

vlp_vl *vlp_vl_momentum_teacher(const vlp_vl *m) {
    if (!m) {
        vlp_set_error("vlp_vl_momentum_teacher: model is NULL");
        return NULL;
    }
    vlp_vl *t = declare(&m->cfg);
    if (!t) return NULL;
    memcpy(vlp_params_data(t->params), vlp_params_data(m->params), (size_t)vlp_params_numel(m->params) * sizeof(float));
    for (int i = 0; i < vlp_params_count(t->params); i++) {
        vlp_tensor *p = vlp_params_get(t->params, i);
        p->flags = (p->flags | VLP_FLAG_FROZEN) & ~VLP_FLAG_REQUIRES_GRAD;
    }
    return t;
}

int64_t vlp_vl_param_count(const vlp_vl *m) { return m ? vlp_params_numel(m->params) : 0; }

vlp_tensor *vlp_vl_word_embeddings(const vlp_vl *m) { return m->text ? m->text->word_emb : m->word_emb; }

int vlp_vl_image_tokens(const vlp_vl *m) {
    int g = m->cfg.image_size / m->cfg.patch_size;
    return g * g + 1;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* BERT's N(0, 0.02) is tuned for width 768: a weight's gain is 0.02 * sqrt(fan_in). At a narrow
 * width the same 0.02 makes every attention/MLP update O(0.02^2 * width) against the unit-norm
 * LayerNormed residual, so the post-LN text encoder's [CLS] ignores the other tokens and ITC
 * text features are the same for every caption (the loss sits at ln B). Linear weights with
 * fan-in under 768 keep BERT-base's gain instead; embeddings (patch embedding too) stay at 0.02. */
static float init_std(const vlp_tensor *t) {
    if (t->ndim < 2 || strstr(t->name, "embed")) return 0.02f;
    int64_t fan_in = t->numel / t->shape[0];
    return fan_in < 768 ? 0.02f * sqrtf(768.0f / (float)fan_in) : 0.02f;
}

/* BERT / ViT init for every tensor by its role: N(0, 0.02) embeddings, N(0, init_std) weights,
 * zero biases, unit LayerNorm gains; the temperature at 1/0.07. */
vlp_vl *vlp_vl_new(const vlp_vl_config *c, uint64_t seed) {
    vlp_vl *m = declare(c);
    if (!m) return NULL;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 7919u + 1;
        if (t == m->logit_scale) vlp_init_const(t, logf(1.0f / 0.07f));
        else if (t == m->vis_cls || t == m->mask_token || t == m->itc_tok || t->ndim >= 2)
            vlp_init_normal(t, 0, init_std(t), s);
        else if (t->ndim == 1 && ends_with(t->name, ".weight")) vlp_init_const(t, 1.0f);
        else vlp_init_const(t, 0.0f);
    }
    return m;
}

/* ---- forward ---------------------------------------------------------------------------- */

static vlp_tensor *ffn(vlp_graph *g, const vlp_vl_config *c, const vlp_vl_ffn *f, vlp_tensor *x) {
    vlp_tensor *h = vlp_layernorm(g, x, f->ln_w, f->ln_b, c->ln_eps);
    h = vlp_activation(g, vlp_linear(g, h, f->fc1_w, f->fc1_b), c->act);
    h = vlp_linear(g, h, f->fc2_w, f->fc2_b);
    if (c->dropout > 0) h = vlp_dropout(g, h, c->dropout);
    return vlp_add(g, x, h);
}

enum { FFN_L = 0, FFN_V = 1, FFN_VL = 2, FFN_SPLIT = 3 };

/* One pre-LN layer. mode picks the FFN expert; FFN_SPLIT sends the first split_t tokens to
 * the language expert and the rest to the vision expert (MoME fusion, lower layers). */
static vlp_tensor *layer_forward(vlp_graph *g, const vlp_vl_config *c, const vlp_vl_layer *L, int heads,
                                 vlp_tensor *x, vlp_tensor *mask, vlp_tensor *enc, vlp_tensor *enc_mask, int mode,
                                 int64_t split_t) {
    if (!x) return NULL;
    int64_t W = x->shape[2];
    vlp_tensor *h = vlp_layernorm(g, x, L->ln1_w, L->ln1_b, c->ln_eps);
    vlp_tensor *qkv = vlp_linear(g, h, L->qkv_w, L->qkv_b);
    vlp_tensor *a = vlp_attention(g, vlp_view_cols(g, qkv, 0, W), vlp_view_cols(g, qkv, W, W),
                                  vlp_view_cols(g, qkv, 2 * W, W), heads, 0, mask);
    a = vlp_linear(g, a, L->out_w, L->out_b);
    if (c->dropout > 0) a = vlp_dropout(g, a, c->dropout);
    x = vlp_add(g, x, a);
    if (L->xq_w && enc) {
        h = vlp_layernorm(g, x, L->lnx_w, L->lnx_b, c->ln_eps);
        vlp_tensor *q = vlp_linear(g, h, L->xq_w, L->xq_b), *kv = vlp_linear(g, enc, L->xkv_w, L->xkv_b);
        a = vlp_attention(g, q, vlp_view_cols(g, kv, 0, W), vlp_view_cols(g, kv, W, W), heads, 0, enc_mask);
        a = vlp_linear(g, a, L->xo_w, L->xo_b);
        if (c->dropout > 0) a = vlp_dropout(g, a, c->dropout);
        x = vlp_add(g, x, a);
    }
    if (!x) return NULL;
    if (mode == FFN_SPLIT) {
        int64_t T = x->shape[1];
        vlp_tensor *xt = ffn(g, c, &L->ffn[FFN_L], vlp_slice(g, x, 1, 0, split_t));
        vlp_tensor *xi = ffn(g, c, &L->ffn[FFN_V], vlp_slice(g, x, 1, split_t, T - split_t));
        return vlp_concat(g, xt, xi, 1);
    }
    return ffn(g, c, &L->ffn[L->n_ffn == 1 ? 0 : mode], x);
}

static vlp_tensor *type_row(vlp_graph *g, const vlp_vl *m, int which) {
    int64_t s[1] = {m->cfg.width};
    return vlp_reshape(g, vlp_slice(g, m->type_emb, 0, which, 1), 1, s);
}

vlp_tensor *vlp_vl_embed_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *pixels, vlp_tensor *keep,
                               vlp_tensor *drop) {
    if (!m) {
        vlp_graph_fail(g, "vlp_vl_embed_image: model is NULL");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    if (pixels && (pixels->ndim != 4 || pixels->shape[1] != 3 || pixels->shape[2] != c->image_size ||
                   pixels->shape[3] != c->image_size)) {
        char b[96];
        vlp_graph_fail(g, "vlp_vl_embed_image: pixels %s, the model takes [B, 3, %d, %d]",
                       vlp_shape_str(pixels, b, sizeof b), c->image_size, c->image_size);
        return NULL;
    }
    vlp_tensor *x = vlp_patch_embed(g, pixels, m->patch_w, m->patch_b);
    if (keep || drop) {
        if (!keep || !drop) {
            vlp_graph_fail(g, "vlp_vl_embed_image: give both mim_keep and mim_drop, or neither");
            return NULL;
        }
        x = vlp_add(g, vlp_mul(g, x, keep), vlp_mul(g, drop, m->mask_token));
    }
    x = vlp_add(g, vlp_prepend_token(g, x, m->vis_cls), m->vis_pos);
    if (c->family == VLP_VL_SINGLE || c->family == VLP_VL_MOME) x = vlp_add(g, x, type_row(g, m, 1));
    return x;
}

vlp_tensor *vlp_vl_embed_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *ids) {
    if (!m) {
        vlp_graph_fail(g, "vlp_vl_embed_text: model is NULL");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    if (ids && (ids->dtype != VLP_I32 || ids->ndim != 2 || ids->shape[1] > c->max_text_len)) {
        char b[96];
        vlp_graph_fail(g, "vlp_vl_embed_text: ids %s, the model takes i32 [B, T] with T <= %d",
                       vlp_shape_str(ids, b, sizeof b), c->max_text_len);
        return NULL;
    }
    if (m->text) return vlp_bert_embed(g, m->text, ids, NULL);
    int64_t T = ids ? ids->shape[1] : 1;
    vlp_tensor *pos = T == c->max_text_len ? m->txt_pos : vlp_slice(g, m->txt_pos, 0, 0, T);
    vlp_tensor *x = vlp_add(g, vlp_add(g, vlp_embedding(g, ids, m->word_emb), pos), type_row(g, m, 0));
    x = vlp_layernorm(g, x, m->emb_ln_w, m->emb_ln_b, c->ln_eps);
    if (c->dropout > 0) x = vlp_dropout(g, x, c->dropout);
    return x;
}

static vlp_tensor *mome_stack(vlp_graph *g, const vlp_vl *m, vlp_tensor *x, vlp_tensor *mask, int mode,
                              int64_t split_t) {
    const vlp_vl_config *c = &m->cfg;
    for (int l = 0; l < c->layers; l++) {
        int md = mode;
        if (mode == FFN_SPLIT && l >= c->layers - c->fusion_layers) md = FFN_VL;
        x = layer_forward(g, c, &m->layers[l], c->heads, x, mask, NULL, NULL, md, split_t);
    }
    return vlp_layernorm(g, x, m->final_ln_w, m->final_ln_b, c->ln_eps);
}

vlp_tensor *vlp_vl_encode_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *x) {
    if (!m || !x) {
        vlp_graph_fail(g, "vlp_vl_encode_image: NULL argument");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    if (c->family == VLP_VL_SINGLE) return x;
    if (c->family == VLP_VL_MOME) return mome_stack(g, m, x, NULL, FFN_V, 0);
    vlp_transformer_config vt = vit_cfg(c);
    x = vlp_transformer_forward(g, &vt, m->vit, x, NULL);
    return vlp_layernorm(g, x, m->vit_ln_w, m->vit_ln_b, c->ln_eps);
}

vlp_tensor *vlp_vl_encode_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *x, vlp_tensor *mask) {
    if (!m || !x) {
        vlp_graph_fail(g, "vlp_vl_encode_text: NULL argument");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    if (c->family == VLP_VL_MOME) return mome_stack(g, m, x, mask, FFN_L, 0);
    if (c->family == VLP_VL_DUAL && c->layers > c->fusion_layers)
        return vlp_bert_encode_layers(g, m->text, x, mask, NULL, NULL, 0, c->layers - c->fusion_layers, NULL);
    if (c->family == VLP_VL_CAPTION && caption_from(c) > 0) {
        /* CoCa's ITC token goes after the text (behind any padding), not at the last real token
         * ([SEP]): one fixed row to read for every text, no per-text index, and under the causal
         * mask the text rows never see it, so the LM and cached decoding are unchanged by it.
         * It attends to every real token (the mask covers the first T keys; its own key is
         * always attended). Embedded as a word without position: LN(token). */
        if (m->itc_tok) {
            /* LayerNorm reads the [W] vector as one row: no reshape view of a parameter, which
             * inference graphs' buffer planning does not take */
            vlp_tensor *tok = vlp_layernorm(g, m->itc_tok, m->text->emb_ln_w, m->text->emb_ln_b, c->ln_eps);
            /* a [B, 1, W] copy of the token per row: prepend it to one row of x, keep that row */
            vlp_tensor *col = vlp_slice(g, vlp_prepend_token(g, vlp_slice(g, x, 1, 0, 1), tok), 1, 0, 1);
            x = vlp_concat(g, x, col, 1);
        }
        return vlp_bert_encode_layers(g, m->text, x, mask, NULL, NULL, 0, caption_from(c), NULL);
    }
    return x;
}

int vlp_vl_fuses_embeddings(const vlp_vl *m) { return m->cfg.family == VLP_VL_SINGLE || m->cfg.family == VLP_VL_MOME; }

vlp_tensor *vlp_vl_fuse(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *mask,
                        vlp_tensor **img_out) {
    if (img_out) *img_out = NULL;
    if (!m || !img || !txt) {
        vlp_graph_fail(g, "vlp_vl_fuse: NULL argument");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    int64_t T = txt->shape[1], Ni = img->shape[1];
    if (c->family == VLP_VL_CAPTION) {
        vlp_graph_fail(g, "vlp_vl_fuse: captioning models decode (vlp_vl_caption_logits), they do not fuse");
        return NULL;
    }
    if (c->family == VLP_VL_DUAL) {
        int L = c->layers, from = L - c->fusion_layers;
        if (!c->co_attention) {
            if (img_out) *img_out = img;
            return vlp_bert_encode_layers(g, m->text, txt, mask, img, NULL, from, L, NULL);
        }
        /* co-attention: both streams step together, each reading the other's previous layer */
        vlp_tensor *x = txt, *y = img;
        for (int l = from; l < L && x && y; l++) {
            vlp_tensor *xn = vlp_bert_layer_forward(g, m->text, l, x, mask, y, NULL);
            y = layer_forward(g, c, &m->co_layers[l - from], c->vision_heads, y, NULL, x, mask, FFN_L, 0);
            x = xn;
        }
        if (c->text_pre_ln) x = vlp_layernorm(g, x, m->text->final_ln_w, m->text->final_ln_b, c->ln_eps);
        y = vlp_layernorm(g, y, m->co_ln_w, m->co_ln_b, c->ln_eps);
        if (img_out) *img_out = y;
        return x;
    }
    /* joint sequence [text; image]: the text mask covers the first T keys, image keys are never padded */
    vlp_tensor *x = vlp_concat(g, txt, img, 1);
    if (c->family == VLP_VL_SINGLE) {
        for (int l = 0; l < c->layers; l++) x = layer_forward(g, c, &m->layers[l], c->heads, x, mask, NULL, NULL, 0, 0);
        x = vlp_layernorm(g, x, m->final_ln_w, m->final_ln_b, c->ln_eps);
    } else {
        x = mome_stack(g, m, x, mask, FFN_SPLIT, T);
    }
    if (img_out) *img_out = vlp_slice(g, x, 1, T, Ni);
    return vlp_slice(g, x, 1, 0, T);
}

vlp_tensor *vlp_vl_caption_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *ids,
                                  vlp_tensor *mask) {
    if (!m || m->cfg.family != VLP_VL_CAPTION) {
        vlp_graph_fail(g, "vlp_vl_caption_logits: needs a captioning model");
        return NULL;
    }
    vlp_tensor *h = vlp_bert_forward(g, m->text, ids, NULL, mask, img, NULL, NULL, NULL);
    return vlp_vl_lm_logits(g, m, h);
}

vlp_tensor *vlp_vl_caption_decode(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *x, vlp_tensor *mask) {
    if (!m || m->cfg.family != VLP_VL_CAPTION || !img || !x) {
        vlp_graph_fail(g, "vlp_vl_caption_decode: needs a captioning model, image tokens and text states");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    int from = caption_from(c);
    if (from > 0 && m->itc_tok) x = vlp_slice(g, x, 1, 0, x->shape[1] - 1); /* drop the ITC token */
    return vlp_vl_lm_logits(g, m, vlp_bert_encode_layers(g, m->text, x, mask, img, NULL, from, c->layers, NULL));
}

static vlp_tensor *first_token(vlp_graph *g, vlp_tensor *x) {
    if (!x) return NULL;
    int64_t s[2] = {x->shape[0], x->shape[2]};
    return vlp_reshape(g, vlp_slice(g, x, 1, 0, 1), 2, s);
}

vlp_tensor *vlp_vl_pool(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused) {
    if (!m->pool_w) {
        vlp_graph_fail(g, "vlp_vl_pool: this model has no pooler");
        return NULL;
    }
    return vlp_tanh_act(g, vlp_linear(g, first_token(g, fused), m->pool_w, m->pool_b));
}

vlp_tensor *vlp_vl_itm_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused) {
    if (!m->itm_w) {
        vlp_graph_fail(g, "vlp_vl_itm_logits: this model has no ITM head");
        return NULL;
    }
    return vlp_linear(g, vlp_vl_pool(g, m, fused), m->itm_w, m->itm_b);
}

vlp_tensor *vlp_vl_lm_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *states) {
    const vlp_vl_config *c = &m->cfg;
    vlp_tensor *h = vlp_activation(g, vlp_linear(g, states, m->head_w, m->head_b), c->act);
    h = vlp_layernorm(g, h, m->head_ln_w, m->head_ln_b, c->ln_eps);
    return vlp_linear(g, h, vlp_vl_word_embeddings(m), m->head_bias);
}

static int has_itc(vlp_graph *g, const vlp_vl *m, const char *fn) {
    if (m->vis_proj) return 1;
    vlp_graph_fail(g, "%s: this model has no ITC projections (embed_dim)", fn);
    return 0;
}

vlp_tensor *vlp_vl_itc_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *img_enc) {
    return has_itc(g, m, "vlp_vl_itc_image") ? vlp_linear(g, first_token(g, img_enc), m->vis_proj, NULL) : NULL;
}

vlp_tensor *vlp_vl_itc_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *txt_enc) {
    if (!has_itc(g, m, "vlp_vl_itc_text")) return NULL;
    if (m->itc_tok) { /* CoCa: the ITC token after the text (vlp_vl_encode_text), LayerNorm, projection */
        if (!txt_enc || txt_enc->ndim != 3) {
            vlp_graph_fail(g, "vlp_vl_itc_text: text states must be [B, T + 1, W]");
            return NULL;
        }
        int64_t s[2] = {txt_enc->shape[0], txt_enc->shape[2]};
        vlp_tensor *last = vlp_reshape(g, vlp_slice(g, txt_enc, 1, txt_enc->shape[1] - 1, 1), 2, s);
        return vlp_linear(g, vlp_layernorm(g, last, m->itc_ln_w, m->itc_ln_b, m->cfg.ln_eps), m->txt_proj, NULL);
    }
    return vlp_linear(g, first_token(g, txt_enc), m->txt_proj, NULL);
}

int vlp_vl_itc_features(vlp_graph *g, const vlp_vl *m, vlp_tensor *img_enc, vlp_tensor *txt_enc,
                        vlp_tensor **fi, vlp_tensor **ft) {
    *fi = vlp_vl_itc_image(g, m, img_enc);
    *ft = vlp_vl_itc_text(g, m, txt_enc);
    return vlp_graph_error(g) ? VLP_ERR_ARG : VLP_OK;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static json_t *config_json(const vlp_vl_config *c) {
    static const char *acts[] = {"quick_gelu", "gelu", "gelu_tanh"};
    json_t *obj = json_array();
    const char *onames[5] = {"itc", "itm", "mlm", "mim", "lm"};
    float w[5] = {c->w_itc, c->w_itm, c->w_mlm, c->w_mim, c->w_lm};
    for (int i = 0; i < 5; i++)
        if (w[i] > 0) json_array_append_new(obj, json_string(onames[i]));
    json_t *r = json_object();
    json_object_set_new(r, "format", json_string("vlp-vl"));
    json_object_set_new(r, "family", json_string(vlp_vl_family_name(c->family)));
    json_object_set_new(r, "objectives", obj);
#define I(f) json_object_set_new(r, #f, json_integer(c->f));
#define F(f) json_object_set_new(r, #f, json_real((double)c->f));
    I(image_size) I(patch_size) I(vision_width) I(vision_layers) I(vision_heads) I(vision_mlp) I(vocab_size)
    I(max_text_len) I(width) I(layers) I(heads) I(mlp) I(fusion_layers) I(co_attention) I(text_pre_ln)
    I(embed_dim) F(ln_eps) F(dropout) I(pad_id) I(cls_id) I(sep_id) I(mask_id) I(bos_id) I(eos_id) F(w_itc)
    F(w_itm) F(w_mlm) F(w_mim) F(w_lm) F(mlm_prob) I(mlm_whole_word) F(mim_ratio) F(momentum) F(distill_alpha) I(queue_size) I(itm_exclude_same_text)
#undef I
#undef F
    json_object_set_new(r, "act", json_string(acts[c->act]));
    json_object_set_new(r, "tokenizer", json_string(vlp_tokenizer_kind_name(c->tokenizer)));
    json_t *mean = json_array(), *std = json_array();
    for (int i = 0; i < 3; i++) {
        json_array_append_new(mean, json_real((double)c->mean[i]));
        json_array_append_new(std, json_real((double)c->std[i]));
    }
    json_object_set_new(r, "mean", mean);
    json_object_set_new(r, "std", std);
    return r;
}

char *vlp_vl_config_dumps(const vlp_vl_config *c) {
    if (!c) {
        vlp_set_error("vlp_vl_config_dumps: NULL argument");
        return NULL;
    }
    json_t *j = config_json(c);
    char *s = j ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    if (!s) vlp_set_error("vlp_vl_config_dumps: out of memory");
    return s;
}

int vlp_vl_config_load(const char *path, vlp_vl_config *c) {
    if (!c) {
        vlp_set_error("vlp_vl_config_load: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc;
    json_t *root = vlp_json_load_config(path, "vlp_vl_config_load", &rc);
    if (!root) return rc;
    base_config(c);
    json_t *fam = json_object_get(root, "family");
    c->family = -1;
    for (int i = 0; fam && json_is_string(fam) && i < 4; i++)
        if (!strcmp(json_string_value(fam), family_names[i])) c->family = i;
    if (c->family < 0) {
        vlp_set_error("%s: not a vlp VL config (want a \"family\" of single_stream, dual_stream, mome, captioning)",
                      path);
        json_decref(root);
        return VLP_ERR_ARG;
    }
    struct {
        const char *k;
        int *i;
        float *f;
    } fields[] = {
#define I(f) {#f, &c->f, NULL},
#define F(f) {#f, NULL, &c->f},
        I(image_size) I(patch_size) I(vision_width) I(vision_layers) I(vision_heads) I(vision_mlp) I(vocab_size)
        I(max_text_len) I(width) I(layers) I(heads) I(mlp) I(fusion_layers) I(co_attention) I(text_pre_ln)
        I(embed_dim) F(ln_eps) F(dropout) I(pad_id) I(cls_id) I(sep_id) I(mask_id) I(bos_id) I(eos_id) F(w_itc)
        F(w_itm) F(w_mlm) F(w_mim) F(w_lm) F(mlm_prob) I(mlm_whole_word) F(mim_ratio) F(momentum) F(distill_alpha) I(queue_size) I(itm_exclude_same_text)
#undef I
#undef F
    };
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        /* "finetune": the task head of a fine-tuned checkpoint (vlp_finetune.h); not the backbone's */
        if (!strcmp(key, "format") || !strcmp(key, "family") || !strcmp(key, "objectives") ||
            !strcmp(key, "finetune"))
            continue;
        if (!strcmp(key, "tokenizer")) { /* absent in models written before it: WordPiece */
            if ((c->tokenizer = vlp_tokenizer_kind_parse(json_is_string(v) ? json_string_value(v) : NULL)) < 0) {
                vlp_set_error("%s: field 'tokenizer' must be \"wordpiece\" or \"clip_bpe\"", path);
                rc = VLP_ERR_ARG;
                break;
            }
            continue;
        }
        if (!strcmp(key, "act")) {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            c->act = !strcmp(s, "quick_gelu") ? VLP_ACT_QUICK_GELU
                     : !strcmp(s, "gelu")     ? VLP_ACT_GELU
                     : !strcmp(s, "gelu_tanh") ? VLP_ACT_GELU_TANH
                                               : -1;
            if (c->act < 0) {
                vlp_set_error("%s: field 'act' must be quick_gelu, gelu or gelu_tanh", path);
                rc = VLP_ERR_ARG;
                break;
            }
            continue;
        }
        if (!strcmp(key, "mean") || !strcmp(key, "std")) {
            float *dst = key[0] == 'm' ? c->mean : c->std;
            if (!json_is_array(v) || json_array_size(v) != 3) rc = VLP_ERR_ARG;
            for (int i = 0; !rc && i < 3; i++) {
                json_t *e = json_array_get(v, (size_t)i);
                if (!json_is_number(e)) rc = VLP_ERR_ARG;
                else dst[i] = (float)json_number_value(e);
            }
            if (rc) {
                vlp_set_error("%s: field '%s' must be an array of 3 numbers", path, key);
                break;
            }
            continue;
        }
        size_t k = 0, nf = sizeof fields / sizeof fields[0];
        while (k < nf && strcmp(fields[k].k, key)) k++;
        if (k == nf) {
            vlp_set_error("%s: unknown field '%s'", path, key);
            rc = VLP_ERR_ARG;
            break;
        }
        if (fields[k].i) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24)) {
                vlp_set_error("%s: field '%s' must be a non-negative integer", path, key);
                rc = VLP_ERR_ARG;
                break;
            }
            *fields[k].i = (int)json_integer_value(v);
        } else {
            if (!json_is_number(v)) {
                vlp_set_error("%s: field '%s' must be a number", path, key);
                rc = VLP_ERR_ARG;
                break;
            }
            *fields[k].f = (float)json_number_value(v);
        }
    }
    json_decref(root);
    if (!rc && vlp_vl_config_validate(c)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: %s", path, msg);
        rc = VLP_ERR_ARG;
    }
    return rc;
}

/* mkdir -p */
static int make_dirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (!is_dir(p) && mkdir(p, 0777) && errno != EEXIST) return -1;
        *s = '/';
    }
    return !is_dir(p) && mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
}

int vlp_vl_save(const vlp_vl *m, const char *dir) {
    if (!m || !dir) {
        vlp_set_error("vlp_vl_save: NULL argument");
        return VLP_ERR_ARG;
    }
    if (make_dirs(dir)) {
        vlp_set_error("%s: cannot create directory: %s", dir, strerror(errno));
        return VLP_ERR_IO;
    }
    int n = vlp_params_count(m->params);
    vlp_st_entry *e = calloc((size_t)n, sizeof *e);
    if (!e) {
        vlp_set_error("out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        e[i].name = t->name;
        e[i].data = vlp_f(t);
        e[i].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) e[i].shape[k] = t->shape[k];
        e[i].store_as = VLP_ST_F32;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", "producer", "vlp " VLP_VERSION, "family", vlp_vl_family_name(m->cfg.family),
                          NULL};
    int rc = vlp_st_save(path, e, n, meta);
    free(e);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    return vlp_json_save_atomic(config_json(&m->cfg), path);
}

vlp_vl *vlp_vl_load(const char *path) {
    if (!path) {
        vlp_set_error("vlp_vl_load: path is NULL");
        return NULL;
    }
    char file[4096], dir[4096], cfgpath[4200];
    if (access(path, F_OK)) {
        vlp_set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(file, sizeof file, "%s/model.safetensors", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    vlp_vl_config cfg;
    if (vlp_vl_config_load(cfgpath, &cfg)) return NULL;
    vlp_safetensors *st = vlp_st_open(file);
    if (!st) return NULL;
    vlp_vl *m = declare(&cfg);
    for (int i = 0; m && i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        int idx = vlp_st_find(st, t->name), nd = 0, same;
        vlp_st_dtype dt;
        int64_t shape[8];
        if (idx < 0) {
            vlp_set_error("%s: missing tensor '%s'", file, t->name);
            goto fail;
        }
        vlp_st_info(st, idx, &dt, &nd, shape);
        same = nd == t->ndim;
        for (int k = 0; same && k < nd; k++) same = shape[k] == t->shape[k];
        if (!same) {
            char b[96];
            vlp_set_error("%s: tensor '%s' has a shape other than the config's %s", file, t->name,
                          vlp_shape_str(t, b, sizeof b));
            goto fail;
        }
        if (vlp_st_read_f32(st, idx, vlp_f(t), t->numel)) goto fail;
    }
    vlp_st_close(st);
    return m;
fail:
    vlp_vl_free(m);
    vlp_st_close(st);
    return NULL;
}

int vlp_vl_load_pixels(const vlp_vl *m, const char *path, float *out) {
    if (!m || !path || !out) {
        vlp_set_error("vlp_vl_load_pixels: NULL argument");
        return VLP_ERR_ARG;
    }
    vlp_image img;
    vlp_preprocess_config pc = {.size = m->cfg.image_size, .composite_white = 0};
    memcpy(pc.mean, m->cfg.mean, sizeof pc.mean);
    memcpy(pc.std, m->cfg.std, sizeof pc.std);
    int rc = vlp_image_load(path, NULL, &img);
    if (rc) return rc; /* the message names the file */
    rc = vlp_image_preprocess(&img, &pc, out);
    vlp_image_free(&img);
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: %s", path, msg);
    }
    return rc;
}
