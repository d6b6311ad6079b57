/* CLIP model: parameters, forward functions, and the mapping between vlp's
 * parameters and the two checkpoint layouts in use (Hugging Face CLIPModel and the
 * OpenAI / open_clip state dict). q, k and v live fused in one [3W, W] projection,
 * as in OpenAI's in_proj_weight; Hugging Face's separate q/k/v_proj are rows of it. */
#include "vlp_clip.h"

#include "core/internal.h"
#include "io/json_file.h"
#include "vlp_safetensors.h"
#include "vlp_vl.h" /* vlp_vl_tokenizer_save: a model's vocabulary file */

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- configs ------------------------------------------------------------------- */

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static void base_config(vlp_clip_config *c) {
    memset(c, 0, sizeof *c);
    c->context_length = 77;
    c->vocab_size = 49408;
    c->tokenizer = VLP_TOKENIZER_CLIP_BPE;
    c->eos_id = 49407;
    c->vision_act = c->text_act = VLP_ACT_QUICK_GELU;
    c->ln_eps = 1e-5f;
    c->logit_scale_init = logf(1.0f / 0.07f);
    memcpy(c->mean, clip_mean, sizeof c->mean);
    memcpy(c->std, clip_std, sizeof c->std);
}

int vlp_clip_preset(const char *name, vlp_clip_config *c) {
    if (!name || !c) {
        vlp_set_error("vlp_clip_preset: NULL argument");
        return VLP_ERR_ARG;
    }
    base_config(c);
    /* embed, image, patch, v-width, v-layers, t-width, t-layers */
    static const struct {
        const char *name;
        int e, img, p, vw, vl, tw, tl;
    } presets[] = {
        {"ViT-B-32", 512, 224, 32, 768, 12, 512, 12},  {"ViT-B-16", 512, 224, 16, 768, 12, 512, 12},
        {"ViT-L-14", 768, 224, 14, 1024, 24, 768, 12}, {"tiny", 32, 64, 16, 128, 2, 64, 2},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name)) continue;
        c->embed_dim = presets[i].e;
        c->image_size = presets[i].img;
        c->patch_size = presets[i].p;
        c->vision_width = presets[i].vw;
        c->vision_layers = presets[i].vl;
        c->vision_heads = presets[i].vw / 64;
        c->text_width = presets[i].tw;
        c->text_layers = presets[i].tl;
        c->text_heads = presets[i].tw / 64;
        if (!strcmp(name, "tiny")) c->text_heads = 2; /* the fixture: 2 heads of 32 */
        c->vision_mlp = 4 * c->vision_width;
        c->text_mlp = 4 * c->text_width;
        return VLP_OK;
    }
    vlp_set_error("unknown CLIP preset '%s' (known: ViT-B-32, ViT-B-16, ViT-L-14, tiny)", name);
    return VLP_ERR_ARG;
}

int vlp_clip_config_validate(const vlp_clip_config *c) {
    if (!c) {
        vlp_set_error("CLIP config is NULL");
        return VLP_ERR_ARG;
    }
#define POS(f)                                                          \
    if (c->f <= 0) {                                                    \
        vlp_set_error("CLIP config: %s must be positive (got %d)", #f, c->f); \
        return VLP_ERR_ARG;                                             \
    }
    POS(embed_dim) POS(image_size) POS(patch_size) POS(vision_width) POS(vision_layers) POS(vision_heads)
    POS(vision_mlp) POS(context_length) POS(vocab_size) POS(text_width) POS(text_layers) POS(text_heads)
    POS(text_mlp)
#undef POS
    if (c->image_size % c->patch_size) {
        vlp_set_error("CLIP config: image_size %d is not a multiple of patch_size %d", c->image_size, c->patch_size);
        return VLP_ERR_ARG;
    }
    if (c->vision_width % c->vision_heads || c->text_width % c->text_heads) {
        vlp_set_error("CLIP config: widths (%d, %d) must be multiples of the head counts (%d, %d)", c->vision_width,
                      c->text_width, c->vision_heads, c->text_heads);
        return VLP_ERR_ARG;
    }
    if (c->vision_layers > 64 || c->text_layers > 64) {
        vlp_set_error("CLIP config: at most 64 layers per tower (got %d, %d)", c->vision_layers, c->text_layers);
        return VLP_ERR_ARG;
    }
    if (c->tokenizer && c->tokenizer != VLP_TOKENIZER_CLIP_BPE && c->tokenizer != VLP_TOKENIZER_WORDPIECE) {
        vlp_set_error("CLIP config: tokenizer %d is neither clip_bpe nor wordpiece", c->tokenizer);
        return VLP_ERR_ARG;
    }
    if (c->tokenizer == VLP_TOKENIZER_WORDPIECE && (c->eos_id < 0 || c->eos_id >= c->vocab_size)) {
        vlp_set_error("CLIP config: eos_id %d (the [SEP] text is pooled at) is outside the vocabulary of %d",
                      c->eos_id, c->vocab_size);
        return VLP_ERR_ARG;
    }
    if (!(c->ln_eps > 0) || !isfinite(c->logit_scale_init)) {
        vlp_set_error("CLIP config: ln_eps must be > 0 and logit_scale_init finite");
        return VLP_ERR_ARG;
    }
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0)) {
            vlp_set_error("CLIP config: std[%d] must be > 0", i);
            return VLP_ERR_ARG;
        }
    return VLP_OK;
}

static int parse_act(const char *s, int *act, const char *field) {
    if (!strcmp(s, "quick_gelu")) *act = VLP_ACT_QUICK_GELU;
    else if (!strcmp(s, "gelu")) *act = VLP_ACT_GELU;
    else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_tanh"))
        *act = VLP_ACT_GELU_TANH;
    else {
        vlp_set_error("%s: unsupported activation '%s' (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)", field, s);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* Reads an integer field; missing is an error only if required. */
static int get_int(json_t *obj, const char *key, int *out, int required, const char *where) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (!required) return VLP_OK;
        vlp_set_error("%s: missing field '%s'", where, key);
        return VLP_ERR_ARG;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 24)) {
        vlp_set_error("%s: field '%s' must be a positive integer", where, key);
        return VLP_ERR_ARG;
    }
    *out = (int)json_integer_value(v);
    return VLP_OK;
}

static int get_float(json_t *obj, const char *key, float *out, const char *where) {
    json_t *v = json_object_get(obj, key);
    if (!v) return VLP_OK;
    if (!json_is_number(v)) {
        vlp_set_error("%s: field '%s' must be a number", where, key);
        return VLP_ERR_ARG;
    }
    *out = (float)json_number_value(v);
    return VLP_OK;
}

static int get_floats3(json_t *obj, const char *key, float *out, const char *where) {
    json_t *v = json_object_get(obj, key);
    if (!v) return VLP_OK;
    if (!json_is_array(v) || json_array_size(v) != 3) {
        vlp_set_error("%s: field '%s' must be an array of 3 numbers", where, key);
        return VLP_ERR_ARG;
    }
    for (int i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e)) {
            vlp_set_error("%s: field '%s' must be an array of 3 numbers", where, key);
            return VLP_ERR_ARG;
        }
        out[i] = (float)json_number_value(e);
    }
    return VLP_OK;
}

static int config_from_hf(json_t *root, vlp_clip_config *c, const char *path) {
    json_t *tc = json_object_get(root, "text_config"), *vc = json_object_get(root, "vision_config");
    if (!json_is_object(tc) || !json_is_object(vc)) {
        vlp_set_error("%s: text_config and vision_config must be objects", path);
        return VLP_ERR_ARG;
    }
    char wt[600], wv[600];
    snprintf(wt, sizeof wt, "%s: text_config", path);
    snprintf(wv, sizeof wv, "%s: vision_config", path);
    int rc = get_int(root, "projection_dim", &c->embed_dim, 1, path);
    if (!rc) rc = get_int(tc, "hidden_size", &c->text_width, 1, wt);
    if (!rc) rc = get_int(tc, "intermediate_size", &c->text_mlp, 1, wt);
    if (!rc) rc = get_int(tc, "num_attention_heads", &c->text_heads, 1, wt);
    if (!rc) rc = get_int(tc, "num_hidden_layers", &c->text_layers, 1, wt);
    if (!rc) rc = get_int(tc, "max_position_embeddings", &c->context_length, 0, wt);
    if (!rc) rc = get_int(tc, "vocab_size", &c->vocab_size, 0, wt);
    if (!rc) rc = get_int(vc, "hidden_size", &c->vision_width, 1, wv);
    if (!rc) rc = get_int(vc, "intermediate_size", &c->vision_mlp, 1, wv);
    if (!rc) rc = get_int(vc, "num_attention_heads", &c->vision_heads, 1, wv);
    if (!rc) rc = get_int(vc, "num_hidden_layers", &c->vision_layers, 1, wv);
    if (!rc) rc = get_int(vc, "patch_size", &c->patch_size, 1, wv);
    if (!rc) rc = get_int(vc, "image_size", &c->image_size, 1, wv);
    if (!rc) rc = get_float(tc, "layer_norm_eps", &c->ln_eps, wt);
    if (!rc) rc = get_float(root, "logit_scale_init_value", &c->logit_scale_init, path);
    int ch = 3;
    if (!rc) rc = get_int(vc, "num_channels", &ch, 0, wv);
    if (!rc && ch != 3) {
        vlp_set_error("%s: num_channels %d is not supported (3)", wv, ch);
        return VLP_ERR_ARG;
    }
    json_t *a, *tk = json_object_get(root, "tokenizer_class");
    if (!rc && tk) { /* Hugging Face's name of the model's tokenizer: CLIPTokenizer(Fast) or BertTokenizer(Fast) */
        const char *k = json_string_value(tk);
        if (k && !strncmp(k, "Bert", 4)) {
            c->tokenizer = VLP_TOKENIZER_WORDPIECE;
            rc = get_int(tc, "eos_token_id", &c->eos_id, 1, wt); /* the [SEP] text is pooled at */
        } else if (!k || strncmp(k, "CLIP", 4)) {
            vlp_set_error("%s: tokenizer_class %s is not supported (CLIPTokenizer or BertTokenizer)", path,
                          k ? k : "(not a string)");
            rc = VLP_ERR_ARG;
        }
    }
    if (!rc && (a = json_object_get(tc, "hidden_act")) && json_is_string(a)) rc = parse_act(json_string_value(a), &c->text_act, wt);
    if (!rc && (a = json_object_get(vc, "hidden_act")) && json_is_string(a)) rc = parse_act(json_string_value(a), &c->vision_act, wv);
    return rc;
}

static int config_from_open_clip(json_t *mc, json_t *pre, vlp_clip_config *c, const char *path) {
    json_t *vc = json_object_get(mc, "vision_cfg"), *tc = json_object_get(mc, "text_cfg");
    if (!json_is_object(vc) || !json_is_object(tc)) {
        vlp_set_error("%s: vision_cfg and text_cfg must be objects", path);
        return VLP_ERR_ARG;
    }
    char wt[600], wv[600];
    snprintf(wt, sizeof wt, "%s: text_cfg", path);
    snprintf(wv, sizeof wv, "%s: vision_cfg", path);
    int head_width = 64, rc = get_int(mc, "embed_dim", &c->embed_dim, 1, path);
    float vratio = 4, tratio = 4;
    if (!rc) rc = get_int(vc, "image_size", &c->image_size, 1, wv);
    if (!rc) rc = get_int(vc, "layers", &c->vision_layers, 1, wv);
    if (!rc) rc = get_int(vc, "width", &c->vision_width, 1, wv);
    if (!rc) rc = get_int(vc, "patch_size", &c->patch_size, 1, wv);
    if (!rc) rc = get_int(vc, "head_width", &head_width, 0, wv);
    if (!rc) rc = get_float(vc, "mlp_ratio", &vratio, wv);
    if (!rc) rc = get_int(tc, "context_length", &c->context_length, 0, wt);
    if (!rc) rc = get_int(tc, "vocab_size", &c->vocab_size, 0, wt);
    if (!rc) rc = get_int(tc, "width", &c->text_width, 1, wt);
    if (!rc) rc = get_int(tc, "heads", &c->text_heads, 1, wt);
    if (!rc) rc = get_int(tc, "layers", &c->text_layers, 1, wt);
    if (!rc) rc = get_float(tc, "mlp_ratio", &tratio, wt);
    if (rc) return rc;
    if (json_is_array(json_object_get(vc, "layers"))) {
        vlp_set_error("%s: ResNet image towers are not supported (ViT only)", path);
        return VLP_ERR_ARG;
    }
    c->vision_heads = c->vision_width / head_width;
    c->vision_mlp = (int)(c->vision_width * vratio);
    c->text_mlp = (int)(c->text_width * tratio);
    json_t *q = json_object_get(mc, "quick_gelu");
    c->vision_act = c->text_act = (q && json_is_true(q)) ? VLP_ACT_QUICK_GELU : VLP_ACT_GELU;
    if (json_is_object(pre)) {
        rc = get_floats3(pre, "mean", c->mean, path);
        if (!rc) rc = get_floats3(pre, "std", c->std, path);
    }
    return rc;
}

/* vlp's own flat format: strict, every key known. */
static int config_from_flat(json_t *root, vlp_clip_config *c, const char *path) {
    static const char *known[] = {"preset", "embed_dim", "image_size", "patch_size", "vision_width", "vision_layers",
                                  "vision_heads", "vision_mlp", "context_length", "vocab_size", "text_width",
                                  "text_layers", "text_heads", "text_mlp", "act", "ln_eps", "logit_scale_init",
                                  "mean", "std", "tokenizer", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (!ok) {
            vlp_set_error("%s: unknown field '%s'", path, key);
            return VLP_ERR_ARG;
        }
    }
    json_t *preset = json_object_get(root, "preset");
    if (preset) {
        if (!json_is_string(preset)) {
            vlp_set_error("%s: field 'preset' must be a string", path);
            return VLP_ERR_ARG;
        }
        if (vlp_clip_preset(json_string_value(preset), c)) return VLP_ERR_ARG;
    }
    json_t *tk = json_object_get(root, "tokenizer");
    if (tk) { /* WordPiece: bert-base-uncased's size and [SEP] unless vocab_size says otherwise */
        int kind = vlp_tokenizer_kind_parse(json_string_value(tk));
        if (kind < 0) {
            vlp_set_error("%s: field 'tokenizer' must be \"clip_bpe\" or \"wordpiece\"", path);
            return VLP_ERR_ARG;
        }
        c->tokenizer = kind;
        if (kind == VLP_TOKENIZER_WORDPIECE) c->vocab_size = 30522, c->eos_id = 102;
    }
    int rc = VLP_OK, req = !preset;
    struct {
        const char *k;
        int *f;
    } ints[] = {{"embed_dim", &c->embed_dim},       {"image_size", &c->image_size},
                {"patch_size", &c->patch_size},     {"vision_width", &c->vision_width},
                {"vision_layers", &c->vision_layers}, {"vision_heads", &c->vision_heads},
                {"context_length", &c->context_length}, {"vocab_size", &c->vocab_size},
                {"text_width", &c->text_width},     {"text_layers", &c->text_layers},
                {"text_heads", &c->text_heads}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = get_int(root, ints[i].k, ints[i].f, req && strcmp(ints[i].k, "context_length") &&
                                                     strcmp(ints[i].k, "vocab_size"), path);
    int vm = 0, tm = 0;
    if (!rc) rc = get_int(root, "vision_mlp", &vm, 0, path);
    if (!rc) rc = get_int(root, "text_mlp", &tm, 0, path);
    c->vision_mlp = vm ? vm : 4 * c->vision_width;
    c->text_mlp = tm ? tm : 4 * c->text_width;
    if (!rc) rc = get_float(root, "ln_eps", &c->ln_eps, path);
    if (!rc) rc = get_float(root, "logit_scale_init", &c->logit_scale_init, path);
    if (!rc) rc = get_floats3(root, "mean", c->mean, path);
    if (!rc) rc = get_floats3(root, "std", c->std, path);
    json_t *a = json_object_get(root, "act");
    if (!rc && a) {
        if (!json_is_string(a)) {
            vlp_set_error("%s: field 'act' must be a string", path);
            return VLP_ERR_ARG;
        }
        rc = parse_act(json_string_value(a), &c->vision_act, path);
        c->text_act = c->vision_act;
    }
    return rc;
}

int vlp_clip_config_load(const char *path, vlp_clip_config *c) {
    if (!c) {
        vlp_set_error("vlp_clip_config_load: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc;
    json_t *root = vlp_json_load_config(path, "vlp_clip_config_load", &rc);
    if (!root) return rc;
    base_config(c);
    if (json_object_get(root, "text_config") || json_object_get(root, "vision_config")) {
        rc = config_from_hf(root, c, path);
    } else if (json_object_get(root, "model_cfg")) {
        rc = config_from_open_clip(json_object_get(root, "model_cfg"), json_object_get(root, "preprocess_cfg"), c, path);
    } else if (json_object_get(root, "vision_cfg")) {
        rc = config_from_open_clip(root, NULL, c, path);
    } else {
        rc = config_from_flat(root, c, path);
    }
    json_decref(root);
    if (!rc && vlp_clip_config_validate(c)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: %s", path, msg);
        rc = VLP_ERR_ARG;
    }
    return rc;
}

/* ---- parameters -------------------------------------------------------------------- */

void vlp_clip_free(vlp_clip *m) {
    if (!m) return;
    vlp_params_free(m->params);
    free(m->vis_blocks);
    free(m->txt_blocks);
    free(m);
}

static vlp_transformer_config tower_cfg(const vlp_clip_config *c, int text) {
    vlp_transformer_config t = {.width = text ? c->text_width : c->vision_width,
                                .heads = text ? c->text_heads : c->vision_heads,
                                .layers = text ? c->text_layers : c->vision_layers,
                                .mlp_dim = text ? c->text_mlp : c->vision_mlp,
                                .act = text ? c->text_act : c->vision_act,
                                .ln_eps = c->ln_eps,
                                .causal = text};
    return t;
}

static vlp_clip *declare(const vlp_clip_config *c) {
    if (vlp_clip_config_validate(c)) return NULL;
    vlp_clip *m = calloc(1, sizeof *m);
    if (!m) {
        vlp_set_error("out of memory");
        return NULL;
    }
    m->cfg = *c;
    m->params = vlp_params_new();
    m->vis_blocks = calloc((size_t)c->vision_layers, sizeof *m->vis_blocks);
    m->txt_blocks = calloc((size_t)c->text_layers, sizeof *m->txt_blocks);
    if (!m->params || !m->vis_blocks || !m->txt_blocks) {
        vlp_clip_free(m);
        vlp_set_error("out of memory");
        return NULL;
    }
    vlp_params *P = m->params;
    int64_t W = c->vision_width, T = c->text_width, E = c->embed_dim, p = c->patch_size;
    int64_t np = (int64_t)(c->image_size / p) * (c->image_size / p) + 1;
    int64_t s_patch[] = {W, 3, p, p}, s_w[] = {W}, s_vpos[] = {np, W}, s_vproj[] = {E, W};
    int64_t s_tok[] = {c->vocab_size, T}, s_tpos[] = {c->context_length, T}, s_t[] = {T}, s_tproj[] = {E, T};
    const int ND = VLP_FLAG_NO_DECAY;
    m->patch_w = vlp_params_add(P, "vision.patch_embed.weight", 4, s_patch, 0);
    m->class_emb = vlp_params_add(P, "vision.class_embedding", 1, s_w, ND);
    m->vis_pos = vlp_params_add(P, "vision.pos_embed", 2, s_vpos, ND);
    m->ln_pre_w = vlp_params_add(P, "vision.ln_pre.weight", 1, s_w, ND);
    m->ln_pre_b = vlp_params_add(P, "vision.ln_pre.bias", 1, s_w, ND);
    vlp_transformer_config vt = tower_cfg(c, 0), tt = tower_cfg(c, 1);
    int rc = vlp_transformer_declare(P, "vision.blocks", &vt, m->vis_blocks);
    m->ln_post_w = vlp_params_add(P, "vision.ln_post.weight", 1, s_w, ND);
    m->ln_post_b = vlp_params_add(P, "vision.ln_post.bias", 1, s_w, ND);
    m->vis_proj = vlp_params_add(P, "vision.proj", 2, s_vproj, 0);
    m->tok_emb = vlp_params_add(P, "text.token_embedding", 2, s_tok, ND);
    m->txt_pos = vlp_params_add(P, "text.pos_embed", 2, s_tpos, ND);
    if (!rc) rc = vlp_transformer_declare(P, "text.blocks", &tt, m->txt_blocks);
    m->ln_final_w = vlp_params_add(P, "text.ln_final.weight", 1, s_t, ND);
    m->ln_final_b = vlp_params_add(P, "text.ln_final.bias", 1, s_t, ND);
    m->txt_proj = vlp_params_add(P, "text.proj", 2, s_tproj, 0);
    m->logit_scale = vlp_params_add(P, "logit_scale", 0, NULL, ND);
    if (rc || !m->patch_w || !m->class_emb || !m->vis_pos || !m->ln_pre_w || !m->ln_pre_b || !m->ln_post_w ||
        !m->ln_post_b || !m->vis_proj || !m->tok_emb || !m->txt_pos || !m->ln_final_w || !m->ln_final_b ||
        !m->txt_proj || !m->logit_scale || vlp_params_alloc(P)) {
        vlp_clip_free(m);
        return NULL;
    }
    return m;
}

int64_t vlp_clip_param_count(const vlp_clip *m) {
    int64_t n = 0;
    for (int i = 0; m && i < vlp_params_count(m->params); i++) n += vlp_params_get(m->params, i)->numel;
    return n;
}

/* OpenAI's initialisation (clip/model.py initialize_parameters), applied to both towers. */
vlp_clip *vlp_clip_new(const vlp_clip_config *c, uint64_t seed) {
    vlp_clip *m = declare(c);
    if (!m) return NULL;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    float vs = 1.0f / sqrtf((float)c->vision_width);
    float fan = 3.0f * c->patch_size * c->patch_size;
    vlp_init_uniform(m->patch_w, -1.0f / sqrtf(fan), 1.0f / sqrtf(fan), s++);
    vlp_init_normal(m->class_emb, 0, vs, s++);
    vlp_init_normal(m->vis_pos, 0, vs, s++);
    vlp_init_normal(m->vis_proj, 0, vs, s++);
    vlp_init_normal(m->tok_emb, 0, 0.02f, s++);
    vlp_init_normal(m->txt_pos, 0, 0.01f, s++);
    vlp_init_normal(m->txt_proj, 0, 1.0f / sqrtf((float)c->text_width), s++);
    vlp_init_const(m->ln_pre_w, 1);
    vlp_init_const(m->ln_post_w, 1);
    vlp_init_const(m->ln_final_w, 1);
    vlp_init_const(m->logit_scale, c->logit_scale_init);
    for (int tower = 0; tower < 2; tower++) {
        int W = tower ? c->text_width : c->vision_width, L = tower ? c->text_layers : c->vision_layers;
        vlp_block_params *bl = tower ? m->txt_blocks : m->vis_blocks;
        float attn_std = 1.0f / sqrtf((float)W), proj_std = attn_std / sqrtf(2.0f * L),
              fc_std = 1.0f / sqrtf(2.0f * W);
        for (int l = 0; l < L; l++) {
            vlp_init_const(bl[l].ln1_w, 1);
            vlp_init_const(bl[l].ln2_w, 1);
            vlp_init_normal(bl[l].qkv_w, 0, attn_std, s++);
            vlp_init_normal(bl[l].out_w, 0, proj_std, s++);
            vlp_init_normal(bl[l].fc1_w, 0, fc_std, s++);
            vlp_init_normal(bl[l].fc2_w, 0, proj_std, s++);
        }
    }
    snprintf(m->source, sizeof m->source, "init");
    return m;
}

/* ---- checkpoint layouts ------------------------------------------------------------------ */
/* One binding = one checkpoint tensor that fills rows [row0, row0 + rows) of a vlp
 * parameter (all rows when rows == 0), optionally transposed. */
typedef struct {
    vlp_tensor *dst;
    int64_t row0, rows;
    int transpose;
    char name[160];
} binding;

typedef struct {
    binding *b;
    int n, cap;
} bindings;

static int bind(bindings *bs, vlp_tensor *dst, int64_t row0, int64_t rows, int transpose, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int bind(bindings *bs, vlp_tensor *dst, int64_t row0, int64_t rows, int transpose, const char *fmt, ...) {
    if (bs->n == bs->cap) {
        int cap = bs->cap ? bs->cap * 2 : 256;
        binding *nb = realloc(bs->b, (size_t)cap * sizeof *nb);
        if (!nb) return VLP_ERR_NOMEM;
        bs->b = nb;
        bs->cap = cap;
    }
    binding *b = &bs->b[bs->n++];
    b->dst = dst;
    b->row0 = row0;
    b->rows = rows;
    b->transpose = transpose;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->name, sizeof b->name, fmt, ap);
    va_end(ap);
    return VLP_OK;
}

enum { LAYOUT_HF = 0, LAYOUT_OPENAI = 1 };

static void make_bindings(const vlp_clip *m, int layout, bindings *bs) {
    const vlp_clip_config *c = &m->cfg;
    if (layout == LAYOUT_HF) {
        bind(bs, m->patch_w, 0, 0, 0, "vision_model.embeddings.patch_embedding.weight");
        bind(bs, m->class_emb, 0, 0, 0, "vision_model.embeddings.class_embedding");
        bind(bs, m->vis_pos, 0, 0, 0, "vision_model.embeddings.position_embedding.weight");
        bind(bs, m->ln_pre_w, 0, 0, 0, "vision_model.pre_layrnorm.weight");
        bind(bs, m->ln_pre_b, 0, 0, 0, "vision_model.pre_layrnorm.bias");
        bind(bs, m->ln_post_w, 0, 0, 0, "vision_model.post_layernorm.weight");
        bind(bs, m->ln_post_b, 0, 0, 0, "vision_model.post_layernorm.bias");
        bind(bs, m->vis_proj, 0, 0, 0, "visual_projection.weight");
        bind(bs, m->tok_emb, 0, 0, 0, "text_model.embeddings.token_embedding.weight");
        bind(bs, m->txt_pos, 0, 0, 0, "text_model.embeddings.position_embedding.weight");
        bind(bs, m->ln_final_w, 0, 0, 0, "text_model.final_layer_norm.weight");
        bind(bs, m->ln_final_b, 0, 0, 0, "text_model.final_layer_norm.bias");
        bind(bs, m->txt_proj, 0, 0, 0, "text_projection.weight");
    } else {
        bind(bs, m->patch_w, 0, 0, 0, "visual.conv1.weight");
        bind(bs, m->class_emb, 0, 0, 0, "visual.class_embedding");
        bind(bs, m->vis_pos, 0, 0, 0, "visual.positional_embedding");
        bind(bs, m->ln_pre_w, 0, 0, 0, "visual.ln_pre.weight");
        bind(bs, m->ln_pre_b, 0, 0, 0, "visual.ln_pre.bias");
        bind(bs, m->ln_post_w, 0, 0, 0, "visual.ln_post.weight");
        bind(bs, m->ln_post_b, 0, 0, 0, "visual.ln_post.bias");
        bind(bs, m->vis_proj, 0, 0, 1, "visual.proj");
        bind(bs, m->tok_emb, 0, 0, 0, "token_embedding.weight");
        bind(bs, m->txt_pos, 0, 0, 0, "positional_embedding");
        bind(bs, m->ln_final_w, 0, 0, 0, "ln_final.weight");
        bind(bs, m->ln_final_b, 0, 0, 0, "ln_final.bias");
        bind(bs, m->txt_proj, 0, 0, 1, "text_projection");
    }
    bind(bs, m->logit_scale, 0, 0, 0, "logit_scale");
    for (int tower = 0; tower < 2; tower++) {
        int L = tower ? c->text_layers : c->vision_layers;
        int64_t W = tower ? c->text_width : c->vision_width;
        const vlp_block_params *bl = tower ? m->txt_blocks : m->vis_blocks;
        for (int l = 0; l < L; l++) {
            const vlp_block_params *b = &bl[l];
            char p[96];
            if (layout == LAYOUT_HF) {
                snprintf(p, sizeof p, "%s_model.encoder.layers.%d.", tower ? "text" : "vision", l);
                bind(bs, b->ln1_w, 0, 0, 0, "%slayer_norm1.weight", p);
                bind(bs, b->ln1_b, 0, 0, 0, "%slayer_norm1.bias", p);
                const char *qkv[3] = {"q", "k", "v"};
                for (int i = 0; i < 3; i++) {
                    bind(bs, b->qkv_w, i * W, W, 0, "%sself_attn.%s_proj.weight", p, qkv[i]);
                    bind(bs, b->qkv_b, i * W, W, 0, "%sself_attn.%s_proj.bias", p, qkv[i]);
                }
                bind(bs, b->out_w, 0, 0, 0, "%sself_attn.out_proj.weight", p);
                bind(bs, b->out_b, 0, 0, 0, "%sself_attn.out_proj.bias", p);
                bind(bs, b->ln2_w, 0, 0, 0, "%slayer_norm2.weight", p);
                bind(bs, b->ln2_b, 0, 0, 0, "%slayer_norm2.bias", p);
                bind(bs, b->fc1_w, 0, 0, 0, "%smlp.fc1.weight", p);
                bind(bs, b->fc1_b, 0, 0, 0, "%smlp.fc1.bias", p);
                bind(bs, b->fc2_w, 0, 0, 0, "%smlp.fc2.weight", p);
                bind(bs, b->fc2_b, 0, 0, 0, "%smlp.fc2.bias", p);
            } else {
                snprintf(p, sizeof p, "%stransformer.resblocks.%d.", tower ? "" : "visual.", l);
                bind(bs, b->ln1_w, 0, 0, 0, "%sln_1.weight", p);
                bind(bs, b->ln1_b, 0, 0, 0, "%sln_1.bias", p);
                bind(bs, b->qkv_w, 0, 0, 0, "%sattn.in_proj_weight", p);
                bind(bs, b->qkv_b, 0, 0, 0, "%sattn.in_proj_bias", p);
                bind(bs, b->out_w, 0, 0, 0, "%sattn.out_proj.weight", p);
                bind(bs, b->out_b, 0, 0, 0, "%sattn.out_proj.bias", p);
                bind(bs, b->ln2_w, 0, 0, 0, "%sln_2.weight", p);
                bind(bs, b->ln2_b, 0, 0, 0, "%sln_2.bias", p);
                bind(bs, b->fc1_w, 0, 0, 0, "%smlp.c_fc.weight", p);
                bind(bs, b->fc1_b, 0, 0, 0, "%smlp.c_fc.bias", p);
                bind(bs, b->fc2_w, 0, 0, 0, "%smlp.c_proj.weight", p);
                bind(bs, b->fc2_b, 0, 0, 0, "%smlp.c_proj.bias", p);
            }
        }
    }
}

/* Shape a binding expects in the file. */
static int expected_shape(const binding *b, int64_t *shape) {
    const vlp_tensor *d = b->dst;
    int nd = d->ndim;
    for (int i = 0; i < nd; i++) shape[i] = d->shape[i];
    if (b->rows) shape[0] = b->rows;
    if (b->transpose && nd == 2) {
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
    }
    return nd;
}

static const char *shape_text(int nd, const int64_t *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)s[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static int load_bindings(vlp_clip *m, vlp_safetensors *st, int layout, const char *path) {
    bindings bs = {0};
    make_bindings(m, layout, &bs);
    int rc = VLP_OK;
    float *tmp = NULL;
    size_t tmp_cap = 0;
    for (int i = 0; i < bs.n && !rc; i++) {
        binding *b = &bs.b[i];
        int idx = vlp_st_find(st, b->name);
        if (idx < 0) {
            vlp_set_error("%s: missing tensor '%s'", path, b->name);
            rc = VLP_ERR_IO;
            break;
        }
        vlp_st_dtype dt;
        int nd;
        int64_t shape[8], want[8];
        vlp_st_info(st, idx, &dt, &nd, shape);
        int wnd = expected_shape(b, want);
        /* a scalar may be stored as [] or [1] */
        int same = nd == wnd || (b->dst->numel == 1 && nd <= 1);
        for (int k = 0; same && k < nd && k < wnd; k++) same = shape[k] == want[k];
        if (!same) {
            char s1[96], s2[96];
            vlp_set_error("%s: tensor '%s' has shape %s, the config needs %s", path, b->name,
                          shape_text(nd, shape, s1, sizeof s1), shape_text(wnd, want, s2, sizeof s2));
            rc = VLP_ERR_ARG;
            break;
        }
        int64_t cols = b->dst->ndim >= 2 ? b->dst->numel / b->dst->shape[0] : 1;
        int64_t n = b->rows ? b->rows * cols : b->dst->numel;
        float *dst = vlp_f(b->dst) + b->row0 * cols;
        if (!b->transpose) {
            rc = vlp_st_read_f32(st, idx, dst, n);
        } else {
            if ((size_t)n > tmp_cap) {
                free(tmp);
                tmp = malloc((size_t)n * sizeof *tmp);
                tmp_cap = tmp ? (size_t)n : 0;
            }
            if (!tmp) {
                vlp_set_error("out of memory");
                rc = VLP_ERR_NOMEM;
                break;
            }
            rc = vlp_st_read_f32(st, idx, tmp, n);
            int64_t R = b->dst->shape[0], C = b->dst->shape[1]; /* dst [R, C] = file [C, R]^T */
            for (int64_t r = 0; !rc && r < R; r++)
                for (int64_t cc = 0; cc < C; cc++) dst[r * C + cc] = tmp[cc * R + r];
        }
    }
    free(tmp);
    free(bs.b);
    return rc;
}

static int count_prefixed(const vlp_safetensors *st, const char *fmt) {
    int n = 0;
    char name[160];
    for (;; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (vlp_st_find(st, name) < 0) return n;
    }
}

static int dim_of(const vlp_safetensors *st, const char *name, int axis, int64_t *out) {
    int i = vlp_st_find(st, name);
    vlp_st_dtype dt;
    int nd;
    int64_t shape[8];
    if (i < 0 || vlp_st_info(st, i, &dt, &nd, shape) || axis >= nd) return -1;
    *out = shape[axis];
    return 0;
}

/* OpenAI's build_model: the config from tensor shapes, heads = width / 64. */
static int infer_openai(const vlp_safetensors *st, vlp_clip_config *c, const char *path) {
    base_config(c);
    int64_t vw, p, npos, e, ctx, vocab, tw;
    if (vlp_st_find(st, "visual.layer1.0.conv1.weight") >= 0) {
        vlp_set_error("%s: ResNet image towers are not supported (ViT only)", path);
        return VLP_ERR_ARG;
    }
    if (dim_of(st, "visual.conv1.weight", 0, &vw) || dim_of(st, "visual.conv1.weight", 3, &p) ||
        dim_of(st, "visual.positional_embedding", 0, &npos) || dim_of(st, "text_projection", 1, &e) ||
        dim_of(st, "positional_embedding", 0, &ctx) || dim_of(st, "token_embedding.weight", 0, &vocab) ||
        dim_of(st, "ln_final.weight", 0, &tw)) {
        vlp_set_error("%s: not an OpenAI/open_clip CLIP state dict (visual.conv1.weight, text_projection, ... "
                      "missing)", path);
        return VLP_ERR_ARG;
    }
    int64_t grid = (int64_t)llround(sqrt((double)(npos - 1)));
    c->vision_width = (int)vw;
    c->patch_size = (int)p;
    c->image_size = (int)(grid * p);
    c->vision_layers = count_prefixed(st, "visual.transformer.resblocks.%d.attn.in_proj_weight");
    c->vision_heads = (int)(vw / 64);
    c->embed_dim = (int)e;
    c->context_length = (int)ctx;
    c->vocab_size = (int)vocab;
    c->text_width = (int)tw;
    c->text_heads = (int)(tw / 64);
    c->text_layers = count_prefixed(st, "transformer.resblocks.%d.attn.in_proj_weight");
    int64_t vm = 4 * vw, tm = 4 * tw;
    dim_of(st, "visual.transformer.resblocks.0.mlp.c_fc.weight", 0, &vm);
    dim_of(st, "transformer.resblocks.0.mlp.c_fc.weight", 0, &tm);
    c->vision_mlp = (int)vm;
    c->text_mlp = (int)tm;
    return vlp_clip_config_validate(c);
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static int exists(const char *p) { return access(p, R_OK) == 0; }

vlp_clip *vlp_clip_load(const char *path) {
    if (!path) {
        vlp_set_error("vlp_clip_load: path is NULL");
        return NULL;
    }
    char file[4096], dir[4096], cfgpath[4200];
    if (is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (!exists(file)) snprintf(file, sizeof file, "%s/open_clip_model.safetensors", path);
        if (!exists(file)) {
            vlp_set_error("%s: no model.safetensors or open_clip_model.safetensors in this directory", path);
            return NULL;
        }
    } else {
        if (!exists(path)) {
            vlp_set_error("%s: %s", path, strerror(errno));
            return NULL;
        }
        snprintf(file, sizeof file, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    vlp_safetensors *st = vlp_st_open(file);
    if (!st) return NULL;
    int layout = vlp_st_find(st, "text_model.embeddings.token_embedding.weight") >= 0 ? LAYOUT_HF
                 : vlp_st_find(st, "token_embedding.weight") >= 0                  ? LAYOUT_OPENAI
                                                                                    : -1;
    vlp_clip_config cfg;
    int rc = VLP_OK;
    if (layout < 0) {
        vlp_set_error("%s: not a CLIP checkpoint (neither Hugging Face CLIPModel nor OpenAI tensor names)", file);
        rc = VLP_ERR_ARG;
    } else if (layout == LAYOUT_HF) {
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
        if (!exists(cfgpath)) {
            vlp_set_error("%s: Hugging Face layout needs %s beside it", file, cfgpath);
            rc = VLP_ERR_IO;
        } else {
            rc = vlp_clip_config_load(cfgpath, &cfg);
        }
    } else {
        snprintf(cfgpath, sizeof cfgpath, "%s/open_clip_config.json", dir);
        rc = exists(cfgpath) ? vlp_clip_config_load(cfgpath, &cfg) : infer_openai(st, &cfg, file);
    }
    vlp_clip *m = rc ? NULL : declare(&cfg);
    if (m && load_bindings(m, st, layout, file)) {
        vlp_clip_free(m);
        m = NULL;
    }
    if (m) snprintf(m->source, sizeof m->source, "%s", layout == LAYOUT_HF ? "hf" : "openai");
    if (m && cfg.tokenizer == VLP_TOKENIZER_WORDPIECE) { /* its own vocabulary travels beside it */
        char voc[4200];
        snprintf(voc, sizeof voc, "%s/vocab.txt", dir);
        size_t n = strlen(voc);
        if (exists(voc) && n < sizeof m->vocab) memcpy(m->vocab, voc, n + 1); /* a longer path: built-in */
    }
    vlp_st_close(st);
    return m;
}

/* ---- saving (Hugging Face layout) ----------------------------------------------------------- */

static int write_config(const vlp_clip *m, const char *path) {
    const vlp_clip_config *c = &m->cfg;
    static const char *acts[] = {"quick_gelu", "gelu", "gelu_pytorch_tanh"};
    int wp = c->tokenizer == VLP_TOKENIZER_WORDPIECE; /* HF pools at the first eos_token_id unless it is 2 */
    json_t *tc = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:i}", "model_type",
                           "clip_text_model", "hidden_size", c->text_width, "intermediate_size", c->text_mlp,
                           "num_attention_heads", c->text_heads, "num_hidden_layers", c->text_layers,
                           "max_position_embeddings", c->context_length, "vocab_size", c->vocab_size, "hidden_act",
                           acts[c->text_act], "layer_norm_eps", (double)c->ln_eps,
                           "eos_token_id", wp ? c->eos_id : 49407, "projection_dim", c->embed_dim);
    if (tc && !wp) json_object_set_new(tc, "bos_token_id", json_integer(49406));
    json_t *vc = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i}", "model_type",
                           "clip_vision_model", "hidden_size", c->vision_width, "intermediate_size", c->vision_mlp,
                           "num_attention_heads", c->vision_heads, "num_hidden_layers", c->vision_layers,
                           "patch_size", c->patch_size, "image_size", c->image_size, "num_channels", 3,
                           "hidden_act", acts[c->vision_act], "layer_norm_eps", (double)c->ln_eps,
                           "projection_dim", c->embed_dim);
    json_t *root = json_pack("{s:[s], s:s, s:i, s:f, s:o, s:o, s:s}", "architectures", "CLIPModel", "model_type",
                             "clip", "projection_dim", c->embed_dim, "logit_scale_init_value",
                             (double)c->logit_scale_init, "text_config", tc, "vision_config", vc, "torch_dtype",
                             "float32");
    if (root && wp) json_object_set_new(root, "tokenizer_class", json_string("BertTokenizer"));
    return vlp_json_save_atomic(root, path); /* NULL root: out-of-memory error */
}

int vlp_clip_save(const vlp_clip *m, const char *dir) {
    if (!m || !dir) {
        vlp_set_error("vlp_clip_save: NULL argument");
        return VLP_ERR_ARG;
    }
    if (!is_dir(dir) && mkdir(dir, 0777) && errno != EEXIST) {
        vlp_set_error("%s: cannot create directory: %s", dir, strerror(errno));
        return VLP_ERR_IO;
    }
    bindings bs = {0};
    make_bindings(m, LAYOUT_HF, &bs);
    vlp_st_entry *e = calloc((size_t)bs.n, sizeof *e);
    if (!e) {
        free(bs.b);
        vlp_set_error("out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < bs.n; i++) { /* HF layout needs no transposes: every entry points into the store */
        binding *b = &bs.b[i];
        int64_t cols = b->dst->ndim >= 2 ? b->dst->numel / b->dst->shape[0] : 1;
        e[i].name = b->name;
        e[i].data = vlp_f(b->dst) + b->row0 * cols;
        e[i].ndim = expected_shape(b, e[i].shape);
        e[i].store_as = VLP_ST_F32;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", "producer", "vlp " VLP_VERSION, NULL};
    int rc = vlp_st_save(path, e, bs.n, meta);
    free(e);
    free(bs.b);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = write_config(m, path))) return rc;
    /* a WordPiece model's own vocabulary travels with it (the built-in one needs no file) */
    return m->cfg.tokenizer == VLP_TOKENIZER_WORDPIECE ? vlp_vl_tokenizer_save(VLP_TOKENIZER_WORDPIECE, m->vocab, dir)
                                                       : VLP_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

vlp_tensor *vlp_clip_encode_image(vlp_graph *g, const vlp_clip *m, vlp_tensor *pixels, vlp_clip_states *st) {
    if (!m) {
        vlp_graph_fail(g, "vlp_clip_encode_image: model is NULL");
        return NULL;
    }
    const vlp_clip_config *c = &m->cfg;
    if (pixels && (pixels->ndim != 4 || pixels->shape[1] != 3 || pixels->shape[2] != c->image_size ||
                   pixels->shape[3] != c->image_size)) {
        char b[96];
        vlp_graph_fail(g, "vlp_clip_encode_image: pixels %s, the model takes [B, 3, %d, %d]",
                       vlp_shape_str(pixels, b, sizeof b), c->image_size, c->image_size);
        return NULL;
    }
    vlp_transformer_config vt = tower_cfg(c, 0);
    vlp_tensor *x = vlp_patch_embed(g, pixels, m->patch_w, NULL);
    x = vlp_add(g, vlp_prepend_token(g, x, m->class_emb), m->vis_pos);
    x = vlp_layernorm(g, x, m->ln_pre_w, m->ln_pre_b, c->ln_eps);
    if (st) {
        st->hidden[0] = vlp_keep(x);
        st->n_hidden = c->vision_layers + 1;
    }
    x = vlp_transformer_forward_states(g, &vt, m->vis_blocks, x, NULL, st ? st->hidden + 1 : NULL);
    int64_t B = pixels ? pixels->shape[0] : 1, s2[2] = {B, c->vision_width};
    vlp_tensor *cls = vlp_reshape(g, vlp_slice(g, x, 1, 0, 1), 2, s2);
    cls = vlp_layernorm(g, cls, m->ln_post_w, m->ln_post_b, c->ln_eps);
    if (st) st->pooled = vlp_keep(cls);
    return vlp_linear(g, cls, m->vis_proj, NULL);
}

vlp_tensor *vlp_clip_encode_text(vlp_graph *g, const vlp_clip *m, vlp_tensor *ids, vlp_clip_states *st) {
    if (!m) {
        vlp_graph_fail(g, "vlp_clip_encode_text: model is NULL");
        return NULL;
    }
    const vlp_clip_config *c = &m->cfg;
    if (ids && (ids->ndim != 2 || ids->shape[1] > c->context_length || ids->dtype != VLP_I32)) {
        char b[96];
        vlp_graph_fail(g, "vlp_clip_encode_text: ids %s, the model takes i32 [B, T] with T <= %d",
                       vlp_shape_str(ids, b, sizeof b), c->context_length);
        return NULL;
    }
    vlp_transformer_config tt = tower_cfg(c, 1);
    int64_t T = ids ? ids->shape[1] : 1;
    vlp_tensor *pos = T == c->context_length ? m->txt_pos : vlp_slice(g, m->txt_pos, 0, 0, T);
    vlp_tensor *x = vlp_add(g, vlp_embedding(g, ids, m->tok_emb), pos);
    if (st) {
        st->hidden[0] = vlp_keep(x);
        st->n_hidden = c->text_layers + 1;
    }
    x = vlp_transformer_forward_states(g, &tt, m->txt_blocks, x, NULL, st ? st->hidden + 1 : NULL);
    /* LayerNorm is per token, so pooling first and normalising the pooled rows only is the same */
    vlp_tensor *at = c->tokenizer == VLP_TOKENIZER_WORDPIECE ? vlp_find_first(g, ids, c->eos_id) : vlp_argmax(g, ids);
    vlp_tensor *pooled = vlp_gather_rows(g, x, at);
    pooled = vlp_layernorm(g, pooled, m->ln_final_w, m->ln_final_b, c->ln_eps);
    if (st) st->pooled = vlp_keep(pooled);
    return vlp_linear(g, pooled, m->txt_proj, NULL);
}

void vlp_l2_normalize_rows(float *x, int rows, int dim) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int i = 0; i < dim; i++) s += (double)x[r * dim + i] * x[r * dim + i];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int i = 0; i < dim; i++) x[r * dim + i] *= inv;
    }
}

void vlp_clip_logits(const vlp_clip *m, const float *img, int ni, const float *txt, int nt, float *out) {
    int E = m->cfg.embed_dim;
    float scale = expf(*(const float *)m->logit_scale->data);
    for (int i = 0; i < ni; i++) {
        double ni2 = 0;
        for (int k = 0; k < E; k++) ni2 += (double)img[i * E + k] * img[i * E + k];
        for (int j = 0; j < nt; j++) {
            double nt2 = 0, dot = 0;
            for (int k = 0; k < E; k++) {
                nt2 += (double)txt[j * E + k] * txt[j * E + k];
                dot += (double)img[i * E + k] * txt[j * E + k];
            }
            double den = sqrt(ni2) * sqrt(nt2);
            out[i * nt + j] = den > 0 ? (float)(scale * dot / den) : 0.0f;
        }
    }
}
