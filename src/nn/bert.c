/* BERT text encoder (include/vlp_fusion.h): config, parameters named as Hugging Face
 * BertModel's state dict, safetensors load/save, and the forward pass as plain graph
 * functions (autograd supplies backward). Post-LN (BERT) or pre-LN (RobertaPreLayerNorm's
 * layout), optional cross-attention layers (ALBEF / BLIP) and causal self-attention. */
#include "vlp_fusion.h"

#include "core/internal.h"
#include "io/json_file.h"
#include "vlp_safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- config ------------------------------------------------------------------------------ */

void vlp_bert_config_default(vlp_bert_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->intermediate_size = 3072;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->layer_norm_eps = 1e-12f;
    c->hidden_dropout = 0.1f;
    c->hidden_act = VLP_ACT_GELU;
    c->pre_ln = 0;
    c->pooler = 1;
    c->causal = 0;
    c->cross_attention_from = -1;
    c->encoder_width = 0;
}

int vlp_bert_config_validate(const vlp_bert_config *c) {
    if (!c) {
        vlp_set_error("BERT config is NULL");
        return VLP_ERR_ARG;
    }
#define POS(f)                                                                     \
    if (c->f <= 0 || c->f > (1 << 24)) {                                           \
        vlp_set_error("BERT config: %s must be in 1..2^24 (got %d)", #f, c->f);    \
        return VLP_ERR_ARG;                                                        \
    }
    POS(vocab_size) POS(hidden_size) POS(num_hidden_layers) POS(num_attention_heads) POS(intermediate_size)
    POS(max_position_embeddings) POS(type_vocab_size)
#undef POS
    if (c->num_hidden_layers > VLP_BERT_MAX_LAYERS) {
        vlp_set_error("BERT config: num_hidden_layers %d exceeds %d", c->num_hidden_layers, VLP_BERT_MAX_LAYERS);
        return VLP_ERR_ARG;
    }
    if (c->hidden_size % c->num_attention_heads) {
        vlp_set_error("BERT config: hidden_size %d is not a multiple of num_attention_heads %d", c->hidden_size,
                      c->num_attention_heads);
        return VLP_ERR_ARG;
    }
    if (!(c->layer_norm_eps > 0) || !isfinite(c->layer_norm_eps)) {
        vlp_set_error("BERT config: layer_norm_eps must be > 0 (got %g)", (double)c->layer_norm_eps);
        return VLP_ERR_ARG;
    }
    if (!(c->hidden_dropout >= 0 && c->hidden_dropout < 1)) {
        vlp_set_error("BERT config: hidden_dropout must be in [0, 1) (got %g)", (double)c->hidden_dropout);
        return VLP_ERR_ARG;
    }
    if (c->hidden_act < VLP_ACT_QUICK_GELU || c->hidden_act > VLP_ACT_GELU_TANH) {
        vlp_set_error("BERT config: unknown hidden_act %d", c->hidden_act);
        return VLP_ERR_ARG;
    }
    if ((c->pre_ln != 0 && c->pre_ln != 1) || (c->pooler != 0 && c->pooler != 1) || (c->causal != 0 && c->causal != 1)) {
        vlp_set_error("BERT config: pre_ln, pooler and causal must be 0 or 1");
        return VLP_ERR_ARG;
    }
    if (c->cross_attention_from < -1 || c->cross_attention_from > c->num_hidden_layers) {
        vlp_set_error("BERT config: cross_attention_from must be -1 (none) or 0..%d (got %d)", c->num_hidden_layers,
                      c->cross_attention_from);
        return VLP_ERR_ARG;
    }
    if (c->encoder_width < 0 || c->encoder_width > (1 << 24)) {
        vlp_set_error("BERT config: encoder_width must be >= 0 (got %d)", c->encoder_width);
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

static int has_cross(const vlp_bert_config *c, int l) {
    return c->cross_attention_from >= 0 && l >= c->cross_attention_from;
}

static int json_int(json_t *root, const char *key, int *out, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return VLP_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24)) {
        vlp_set_error("%s: field '%s' must be an integer in 0..2^24", path, key);
        return VLP_ERR_ARG;
    }
    *out = (int)json_integer_value(v);
    return VLP_OK;
}

static int json_float(json_t *root, const char *key, float *out, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return VLP_OK;
    if (!json_is_number(v)) {
        vlp_set_error("%s: field '%s' must be a number", path, key);
        return VLP_ERR_ARG;
    }
    *out = (float)json_number_value(v);
    return VLP_OK;
}

static int json_flag(json_t *root, const char *key, int *out, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return VLP_OK;
    if (!json_is_boolean(v)) {
        vlp_set_error("%s: field '%s' must be true or false", path, key);
        return VLP_ERR_ARG;
    }
    *out = json_is_true(v);
    return VLP_OK;
}

int vlp_bert_config_load(const char *path, vlp_bert_config *c) {
    if (!c) {
        vlp_set_error("vlp_bert_config_load: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc;
    json_t *root = vlp_json_load_config(path, "vlp_bert_config_load", &rc);
    if (!root) return rc;
    vlp_bert_config_default(c);
    rc = json_int(root, "vocab_size", &c->vocab_size, path);
    if (!rc) rc = json_int(root, "hidden_size", &c->hidden_size, path);
    if (!rc) rc = json_int(root, "num_hidden_layers", &c->num_hidden_layers, path);
    if (!rc) rc = json_int(root, "num_attention_heads", &c->num_attention_heads, path);
    if (!rc) rc = json_int(root, "intermediate_size", &c->intermediate_size, path);
    if (!rc) rc = json_int(root, "max_position_embeddings", &c->max_position_embeddings, path);
    if (!rc) rc = json_int(root, "type_vocab_size", &c->type_vocab_size, path);
    if (!rc) rc = json_float(root, "layer_norm_eps", &c->layer_norm_eps, path);
    if (!rc) rc = json_float(root, "hidden_dropout_prob", &c->hidden_dropout, path);
    if (!rc) rc = json_int(root, "encoder_width", &c->encoder_width, path);
    if (!rc) rc = json_flag(root, "pre_ln", &c->pre_ln, path);
    if (!rc) rc = json_flag(root, "pooler", &c->pooler, path);
    if (!rc) rc = json_flag(root, "is_decoder", &c->causal, path);
    int cross = 0, from = 0;
    if (!rc) rc = json_flag(root, "add_cross_attention", &cross, path);
    if (!rc) rc = json_int(root, "fusion_layer", &from, path); /* ALBEF */
    if (!rc) rc = json_int(root, "cross_attention_from", &from, path);
    if (!rc) c->cross_attention_from = cross ? from : -1;
    json_t *v;
    if (!rc && (v = json_object_get(root, "model_type")) && json_is_string(v) &&
        !strcmp(json_string_value(v), "roberta-prelayernorm"))
        c->pre_ln = 1;
    if (!rc && (v = json_object_get(root, "hidden_act")) && !json_is_null(v)) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(s, "gelu")) c->hidden_act = VLP_ACT_GELU;
        else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_tanh"))
            c->hidden_act = VLP_ACT_GELU_TANH;
        else if (!strcmp(s, "quick_gelu")) c->hidden_act = VLP_ACT_QUICK_GELU;
        else {
            vlp_set_error("%s: unsupported hidden_act '%s' (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu)", path, s);
            rc = VLP_ERR_ARG;
        }
    }
    if (!rc && (v = json_object_get(root, "position_embedding_type")) && json_is_string(v) &&
        strcmp(json_string_value(v), "absolute")) {
        vlp_set_error("%s: position_embedding_type '%s' is not supported (absolute)", path, json_string_value(v));
        rc = VLP_ERR_ARG;
    }
    json_decref(root);
    if (!rc) {
        rc = vlp_bert_config_validate(c);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", vlp_last_error());
            vlp_set_error("%s: %s", path, msg);
        }
    }
    return rc;
}

/* ---- parameters --------------------------------------------------------------------------- */

/* Every tensor of m with its Hugging Face name (without m->prefix), in declaration order. */
typedef struct {
    vlp_tensor **slot;
    char name[96];
    int ndim;
    int64_t shape[2];
    int flags;
} bert_entry;

typedef struct {
    bert_entry *e;
    int n, cap, oom;
} bert_list;

static void add(bert_list *bl, vlp_tensor **slot, int flags, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(bert_list *bl, vlp_tensor **slot, int flags, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (bl->oom) return;
    if (bl->n == bl->cap) {
        int cap = bl->cap ? bl->cap * 2 : 64;
        bert_entry *ne = realloc(bl->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            bl->oom = 1;
            return;
        }
        bl->e = ne, bl->cap = cap;
    }
    bert_entry *e = &bl->e[bl->n++];
    e->slot = slot;
    e->flags = flags;
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = d0, e->shape[1] = d1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
}

static void list_tensors(vlp_bert *m, bert_list *bl) {
    const vlp_bert_config *c = &m->cfg;
    int64_t D = c->hidden_size, F = c->intermediate_size, E = c->encoder_width ? c->encoder_width : D;
    const int ND = VLP_FLAG_NO_DECAY;
    /* embeddings skip weight decay, as every other vlp embedding (vlp_train.h's groups) */
    add(bl, &m->word_emb, ND, c->vocab_size, D, "embeddings.word_embeddings.weight");
    add(bl, &m->pos_emb, ND, c->max_position_embeddings, D, "embeddings.position_embeddings.weight");
    add(bl, &m->type_emb, ND, c->type_vocab_size, D, "embeddings.token_type_embeddings.weight");
    add(bl, &m->emb_ln_w, ND, D, 0, "embeddings.LayerNorm.weight");
    add(bl, &m->emb_ln_b, ND, D, 0, "embeddings.LayerNorm.bias");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        vlp_bert_layer *y = &m->layers[l];
        char p[48];
        snprintf(p, sizeof p, "encoder.layer.%d.", l);
        add(bl, &y->q_w, 0, D, D, "%sattention.self.query.weight", p);
        add(bl, &y->q_b, ND, D, 0, "%sattention.self.query.bias", p);
        add(bl, &y->k_w, 0, D, D, "%sattention.self.key.weight", p);
        add(bl, &y->k_b, ND, D, 0, "%sattention.self.key.bias", p);
        add(bl, &y->v_w, 0, D, D, "%sattention.self.value.weight", p);
        add(bl, &y->v_b, ND, D, 0, "%sattention.self.value.bias", p);
        add(bl, &y->ao_w, 0, D, D, "%sattention.output.dense.weight", p);
        add(bl, &y->ao_b, ND, D, 0, "%sattention.output.dense.bias", p);
        const char *aln = c->pre_ln ? "attention.LayerNorm" : "attention.output.LayerNorm";
        add(bl, &y->ao_ln_w, ND, D, 0, "%s%s.weight", p, aln);
        add(bl, &y->ao_ln_b, ND, D, 0, "%s%s.bias", p, aln);
        if (has_cross(c, l)) {
            add(bl, &y->xq_w, 0, D, D, "%scrossattention.self.query.weight", p);
            add(bl, &y->xq_b, ND, D, 0, "%scrossattention.self.query.bias", p);
            add(bl, &y->xk_w, 0, D, E, "%scrossattention.self.key.weight", p);
            add(bl, &y->xk_b, ND, D, 0, "%scrossattention.self.key.bias", p);
            add(bl, &y->xv_w, 0, D, E, "%scrossattention.self.value.weight", p);
            add(bl, &y->xv_b, ND, D, 0, "%scrossattention.self.value.bias", p);
            add(bl, &y->xo_w, 0, D, D, "%scrossattention.output.dense.weight", p);
            add(bl, &y->xo_b, ND, D, 0, "%scrossattention.output.dense.bias", p);
            const char *xln = c->pre_ln ? "crossattention.LayerNorm" : "crossattention.output.LayerNorm";
            add(bl, &y->xo_ln_w, ND, D, 0, "%s%s.weight", p, xln);
            add(bl, &y->xo_ln_b, ND, D, 0, "%s%s.bias", p, xln);
        }
        add(bl, &y->inter_w, 0, F, D, "%sintermediate.dense.weight", p);
        add(bl, &y->inter_b, ND, F, 0, "%sintermediate.dense.bias", p);
        add(bl, &y->out_w, 0, D, F, "%soutput.dense.weight", p);
        add(bl, &y->out_b, ND, D, 0, "%soutput.dense.bias", p);
        const char *oln = c->pre_ln ? "intermediate.LayerNorm" : "output.LayerNorm";
        add(bl, &y->out_ln_w, ND, D, 0, "%s%s.weight", p, oln);
        add(bl, &y->out_ln_b, ND, D, 0, "%s%s.bias", p, oln);
    }
    if (c->pre_ln) {
        add(bl, &m->final_ln_w, ND, D, 0, "LayerNorm.weight");
        add(bl, &m->final_ln_b, ND, D, 0, "LayerNorm.bias");
    }
    if (c->pooler) {
        add(bl, &m->pool_w, 0, D, D, "pooler.dense.weight");
        add(bl, &m->pool_b, ND, D, 0, "pooler.dense.bias");
    }
}

int vlp_bert_declare(vlp_params *p, const char *prefix, const vlp_bert_config *cfg, vlp_bert *m) {
    if (!p || !cfg || !m) {
        vlp_set_error("vlp_bert_declare: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc = vlp_bert_config_validate(cfg);
    if (rc) return rc;
    if (!prefix) prefix = "";
    memset(m, 0, sizeof *m);
    if (strlen(prefix) >= sizeof m->prefix) {
        vlp_set_error("vlp_bert_declare: prefix '%s' is longer than %zu bytes", prefix, sizeof m->prefix - 1);
        return VLP_ERR_ARG;
    }
    m->cfg = *cfg;
    m->params = p;
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    bert_list bl = {0};
    list_tensors(m, &bl);
    if (bl.oom) {
        free(bl.e);
        vlp_set_error("vlp_bert_declare: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < bl.n && !rc; i++) {
        bert_entry *e = &bl.e[i];
        char full[160];
        snprintf(full, sizeof full, "%s%s", prefix, e->name);
        if (strlen(full) >= sizeof((vlp_tensor *)0)->name) {
            vlp_set_error("vlp_bert_declare: parameter name '%s' is longer than %zu bytes (shorten the prefix '%s')",
                          full, sizeof((vlp_tensor *)0)->name - 1, prefix);
            rc = VLP_ERR_ARG;
            break;
        }
        *e->slot = vlp_params_add(p, full, e->ndim, e->shape, e->flags);
        if (!*e->slot) rc = VLP_ERR_ARG; /* vlp_params_add set the message */
    }
    free(bl.e);
    return rc;
}

void vlp_bert_init(vlp_bert *m, uint64_t seed) {
    if (!m) return;
    bert_list bl = {0};
    list_tensors(m, &bl);
    for (int i = 0; i < bl.n; i++) {
        vlp_tensor *t = *bl.e[i].slot;
        if (!t || !t->data) continue;
        const char *n = bl.e[i].name;
        size_t len = strlen(n);
        if (strstr(n, "LayerNorm.weight")) vlp_init_const(t, 1.0f);
        else if (len > 5 && !strcmp(n + len - 5, ".bias")) vlp_init_const(t, 0.0f);
        else vlp_init_normal(t, 0.0f, 0.02f, seed * 1000003u + (uint64_t)i);
    }
    free(bl.e);
    /* Hugging Face zeroes the padding row (pad_token_id 0) of the word embeddings. */
    if (m->word_emb && m->word_emb->data) memset(m->word_emb->data, 0, (size_t)m->cfg.hidden_size * sizeof(float));
}

vlp_bert *vlp_bert_new(const vlp_bert_config *cfg, uint64_t seed) {
    vlp_bert *m = calloc(1, sizeof *m);
    vlp_params *p = vlp_params_new();
    if (!m || !p) {
        free(m);
        vlp_params_free(p);
        vlp_set_error("vlp_bert_new: out of memory");
        return NULL;
    }
    if (vlp_bert_declare(p, "", cfg, m) || vlp_params_alloc(p)) {
        vlp_params_free(p);
        free(m);
        return NULL;
    }
    m->owns_params = 1;
    vlp_bert_init(m, seed);
    return m;
}

void vlp_bert_free(vlp_bert *m) {
    if (!m) return;
    if (m->owns_params) vlp_params_free(m->params);
    free(m);
}

int64_t vlp_bert_param_count(const vlp_bert *m) {
    if (!m) return 0;
    bert_list bl = {0};
    list_tensors((vlp_bert *)m, &bl);
    int64_t n = 0;
    for (int i = 0; i < bl.n; i++)
        if (*bl.e[i].slot) n += (*bl.e[i].slot)->numel;
    free(bl.e);
    return n;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

static const char *shape_text(int nd, const int64_t *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)s[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static const char *const auto_prefixes[] = {"", "bert.", "roberta_prelayernorm.", "text_encoder.bert.",
                                            "text_encoder."};

static const char *find_prefix(const vlp_safetensors *st) {
    for (size_t i = 0; i < sizeof auto_prefixes / sizeof auto_prefixes[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", auto_prefixes[i]);
        if (vlp_st_find(st, name) >= 0) return auto_prefixes[i];
    }
    return NULL;
}

int vlp_bert_load_weights(vlp_bert *m, const struct vlp_safetensors *st, const char *st_prefix) {
    if (!m || !st || !m->word_emb || !m->word_emb->data) {
        vlp_set_error("vlp_bert_load_weights: %s", !m || !st ? "NULL argument" : "parameters are not allocated");
        return VLP_ERR_ARG;
    }
    if (!st_prefix) {
        st_prefix = find_prefix(st);
        if (!st_prefix) {
            vlp_set_error("not a BERT checkpoint: no embeddings.word_embeddings.weight (also tried the bert., "
                          "roberta_prelayernorm., text_encoder.bert. and text_encoder. prefixes)");
            return VLP_ERR_ARG;
        }
    }
    bert_list bl = {0};
    list_tensors(m, &bl);
    int rc = bl.oom ? VLP_ERR_NOMEM : VLP_OK;
    if (rc) vlp_set_error("vlp_bert_load_weights: out of memory");
    for (int i = 0; i < bl.n && !rc; i++) {
        bert_entry *e = &bl.e[i];
        vlp_tensor *t = *e->slot;
        char name[200];
        snprintf(name, sizeof name, "%s%s", st_prefix, e->name);
        int idx = vlp_st_find(st, name);
        if (idx < 0) {
            vlp_set_error("missing tensor '%s'", name);
            rc = VLP_ERR_IO;
            break;
        }
        int nd;
        int64_t shape[VLP_ST_MAX_DIMS];
        vlp_st_info(st, idx, NULL, &nd, shape);
        int same = nd == t->ndim;
        for (int k = 0; same && k < nd; k++) same = shape[k] == t->shape[k];
        if (!same) {
            char s1[96], s2[96];
            vlp_set_error("tensor '%s' has shape %s, the config needs %s", name, shape_text(nd, shape, s1, sizeof s1),
                          shape_text(t->ndim, t->shape, s2, sizeof s2));
            rc = VLP_ERR_ARG;
            break;
        }
        rc = vlp_st_read_f32(st, idx, vlp_f(t), t->numel);
    }
    free(bl.e);
    return rc;
}

static int count_layers(const vlp_safetensors *st, const char *pre) {
    int n = 0;
    char name[200];
    for (;; n++) {
        snprintf(name, sizeof name, "%sencoder.layer.%d.attention.self.query.weight", pre, n);
        if (vlp_st_find(st, name) < 0) return n;
    }
}

static int dim_of(const vlp_safetensors *st, const char *pre, const char *name, int axis, int *out) {
    char full[200];
    snprintf(full, sizeof full, "%s%s", pre, name);
    int idx = vlp_st_find(st, full), nd;
    int64_t shape[VLP_ST_MAX_DIMS];
    if (idx < 0 || vlp_st_info(st, idx, NULL, &nd, shape) || axis >= nd || shape[axis] > (1 << 24)) {
        vlp_set_error("missing or malformed tensor '%s'", full);
        return VLP_ERR_ARG;
    }
    *out = (int)shape[axis];
    return VLP_OK;
}

static int has(const vlp_safetensors *st, const char *pre, const char *name) {
    char full[200];
    snprintf(full, sizeof full, "%s%s", pre, name);
    return vlp_st_find(st, full) >= 0;
}

/* Config from tensor shapes (no config.json): heads = hidden / 64. */
static int infer_config(const vlp_safetensors *st, const char *pre, vlp_bert_config *c) {
    vlp_bert_config_default(c);
    int rc = dim_of(st, pre, "embeddings.word_embeddings.weight", 0, &c->vocab_size);
    if (!rc) rc = dim_of(st, pre, "embeddings.word_embeddings.weight", 1, &c->hidden_size);
    if (!rc) rc = dim_of(st, pre, "embeddings.position_embeddings.weight", 0, &c->max_position_embeddings);
    if (!rc) rc = dim_of(st, pre, "embeddings.token_type_embeddings.weight", 0, &c->type_vocab_size);
    if (!rc) rc = dim_of(st, pre, "encoder.layer.0.intermediate.dense.weight", 0, &c->intermediate_size);
    if (rc) return rc;
    c->num_hidden_layers = count_layers(st, pre);
    c->num_attention_heads = c->hidden_size % 64 ? 1 : c->hidden_size / 64;
    c->pre_ln = has(st, pre, "encoder.layer.0.attention.LayerNorm.weight");
    c->cross_attention_from = -1;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        char name[96];
        snprintf(name, sizeof name, "encoder.layer.%d.crossattention.self.key.weight", l);
        if (has(st, pre, name)) {
            c->cross_attention_from = l;
            rc = dim_of(st, pre, name, 1, &c->encoder_width);
            break;
        }
    }
    return rc;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

vlp_bert *vlp_bert_load(const char *path) {
    if (!path) {
        vlp_set_error("vlp_bert_load: path is NULL");
        return NULL;
    }
    char file[4096], dir[4096], cfgpath[4200];
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
    if (access(file, R_OK)) {
        vlp_set_error("%s: %s", file, strerror(errno));
        return NULL;
    }
    vlp_safetensors *st = vlp_st_open(file);
    if (!st) return NULL;
    const char *pre = find_prefix(st);
    vlp_bert_config cfg;
    int rc = VLP_OK;
    if (!pre) {
        vlp_set_error("%s: not a BERT checkpoint (no embeddings.word_embeddings.weight)", file);
        rc = VLP_ERR_ARG;
    } else {
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
        if (!access(cfgpath, R_OK)) {
            rc = vlp_bert_config_load(cfgpath, &cfg);
            /* BertConfig does not say whether the pooler was saved: the file does. */
            if (!rc) cfg.pooler = has(st, pre, "pooler.dense.weight");
        } else {
            rc = infer_config(st, pre, &cfg);
            if (!rc) cfg.pooler = has(st, pre, "pooler.dense.weight");
            if (!rc) rc = vlp_bert_config_validate(&cfg);
        }
        if (rc) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", vlp_last_error());
            if (!strstr(msg, file) && !strstr(msg, cfgpath)) vlp_set_error("%s: %s", file, msg);
        }
    }
    vlp_bert *m = rc ? NULL : vlp_bert_new(&cfg, 0);
    if (m && vlp_bert_load_weights(m, st, pre)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: %s", file, msg);
        vlp_bert_free(m);
        m = NULL;
    }
    vlp_st_close(st);
    return m;
}

static int write_config(const vlp_bert *m, const char *path) {
    const vlp_bert_config *c = &m->cfg;
    static const char *acts[] = {"quick_gelu", "gelu", "gelu_pytorch_tanh"};
    json_t *root = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:s, s:s, s:i, s:b, s:b, s:b, s:s}",
        "architectures", "BertModel", "model_type", "bert", "vocab_size", c->vocab_size, "hidden_size",
        c->hidden_size, "num_hidden_layers", c->num_hidden_layers, "num_attention_heads", c->num_attention_heads,
        "intermediate_size", c->intermediate_size, "max_position_embeddings", c->max_position_embeddings,
        "type_vocab_size", c->type_vocab_size, "layer_norm_eps", (double)c->layer_norm_eps, "hidden_dropout_prob",
        (double)c->hidden_dropout, "attention_probs_dropout_prob", 0.0, "hidden_act", acts[c->hidden_act],
        "position_embedding_type", "absolute", "pad_token_id", 0, "pre_ln", c->pre_ln, "pooler", c->pooler,
        "is_decoder", c->causal, "torch_dtype", "float32");
    if (root && c->cross_attention_from >= 0) {
        json_object_set_new(root, "add_cross_attention", json_true());
        json_object_set_new(root, "cross_attention_from", json_integer(c->cross_attention_from));
        json_object_set_new(root, "encoder_width", json_integer(c->encoder_width ? c->encoder_width : c->hidden_size));
    }
    return vlp_json_save_atomic(root, path); /* NULL root: out-of-memory error */
}

int vlp_bert_save(const vlp_bert *m, const char *dir) {
    if (!m || !dir) {
        vlp_set_error("vlp_bert_save: NULL argument");
        return VLP_ERR_ARG;
    }
    if (!is_dir(dir) && mkdir(dir, 0777) && errno != EEXIST) {
        vlp_set_error("%s: cannot create directory: %s", dir, strerror(errno));
        return VLP_ERR_IO;
    }
    bert_list bl = {0};
    list_tensors((vlp_bert *)m, &bl);
    vlp_st_entry *e = calloc((size_t)bl.n + 1, sizeof *e);
    if (!e || bl.oom) {
        free(e), free(bl.e);
        vlp_set_error("vlp_bert_save: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < bl.n; i++) {
        vlp_tensor *t = *bl.e[i].slot;
        e[i].name = bl.e[i].name;
        e[i].data = vlp_f(t);
        e[i].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) e[i].shape[k] = t->shape[k];
        e[i].store_as = VLP_ST_F32;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", "producer", "vlp " VLP_VERSION, NULL};
    int rc = vlp_st_save(path, e, bl.n, meta);
    free(e), free(bl.e);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    return write_config(m, path);
}

/* ---- forward ---------------------------------------------------------------------------------- */

static int check_model(vlp_graph *g, const vlp_bert *m, const char *fn) {
    if (!m || !m->word_emb) {
        vlp_graph_fail(g, "%s: model is NULL or not declared", fn);
        return 0;
    }
    return 1;
}

static vlp_tensor *drop(vlp_graph *g, const vlp_bert *m, vlp_tensor *x) {
    return m->cfg.hidden_dropout > 0 ? vlp_dropout(g, x, m->cfg.hidden_dropout) : x;
}

vlp_tensor *vlp_bert_embed(vlp_graph *g, const vlp_bert *m, vlp_tensor *ids, vlp_tensor *type_ids) {
    if (!check_model(g, m, "vlp_bert_embed")) return NULL;
    if (!ids || ids->ndim != 2 || ids->dtype != VLP_I32) {
        vlp_graph_fail(g, "vlp_bert_embed: ids must be i32 [B, T]");
        return NULL;
    }
    int64_t B = ids->shape[0], T = ids->shape[1], D = m->cfg.hidden_size;
    if (T > m->cfg.max_position_embeddings) {
        vlp_graph_fail(g, "vlp_bert_embed: %lld tokens exceed max_position_embeddings %d", (long long)T,
                       m->cfg.max_position_embeddings);
        return NULL;
    }
    if (type_ids && (type_ids->ndim != 2 || type_ids->dtype != VLP_I32 || type_ids->shape[0] != B ||
                     type_ids->shape[1] != T)) {
        vlp_graph_fail(g, "vlp_bert_embed: type_ids must be i32 [%lld, %lld] like ids", (long long)B, (long long)T);
        return NULL;
    }
    /* Hugging Face order: (word + token_type) + position. */
    vlp_tensor *x = vlp_embedding(g, ids, m->word_emb);
    if (type_ids) {
        x = vlp_add(g, x, vlp_embedding(g, type_ids, m->type_emb));
    } else {
        int64_t d1[1] = {D};
        x = vlp_add(g, x, vlp_reshape(g, vlp_slice(g, m->type_emb, 0, 0, 1), 1, d1));
    }
    x = vlp_add(g, x, vlp_slice(g, m->pos_emb, 0, 0, T));
    x = vlp_layernorm(g, x, m->emb_ln_w, m->emb_ln_b, m->cfg.layer_norm_eps);
    return drop(g, m, x);
}

vlp_tensor *vlp_bert_layer_forward(vlp_graph *g, const vlp_bert *m, int l, vlp_tensor *x, vlp_tensor *mask,
                                   vlp_tensor *enc, vlp_tensor *enc_mask) {
    if (!check_model(g, m, "vlp_bert_layer_forward")) return NULL;
    const vlp_bert_config *c = &m->cfg;
    if (l < 0 || l >= c->num_hidden_layers) {
        vlp_graph_fail(g, "vlp_bert_layer_forward: layer %d out of range 0..%d", l, c->num_hidden_layers - 1);
        return NULL;
    }
    const vlp_bert_layer *y = &m->layers[l];
    int cross = has_cross(c, l);
    if (cross && !enc) {
        vlp_graph_fail(g, "vlp_bert_layer_forward: layer %d has cross-attention but no encoder states were given", l);
        return NULL;
    }
    float eps = c->layer_norm_eps;
    int heads = c->num_attention_heads;
    int flags = c->causal ? VLP_ATTN_CAUSAL : 0;
    if (!x) return NULL; /* a failed earlier op already recorded the error */
    if (!c->pre_ln) {
        vlp_tensor *q = vlp_linear(g, x, y->q_w, y->q_b), *k = vlp_linear(g, x, y->k_w, y->k_b),
                   *v = vlp_linear(g, x, y->v_w, y->v_b);
        vlp_tensor *h = vlp_linear(g, vlp_attention(g, q, k, v, heads, flags, mask), y->ao_w, y->ao_b);
        x = vlp_layernorm(g, vlp_add(g, drop(g, m, h), x), y->ao_ln_w, y->ao_ln_b, eps);
        if (cross) {
            q = vlp_linear(g, x, y->xq_w, y->xq_b), k = vlp_linear(g, enc, y->xk_w, y->xk_b);
            v = vlp_linear(g, enc, y->xv_w, y->xv_b);
            h = vlp_linear(g, vlp_attention(g, q, k, v, heads, 0, enc_mask), y->xo_w, y->xo_b);
            x = vlp_layernorm(g, vlp_add(g, drop(g, m, h), x), y->xo_ln_w, y->xo_ln_b, eps);
        }
        h = vlp_activation(g, vlp_linear(g, x, y->inter_w, y->inter_b), c->hidden_act);
        h = vlp_linear(g, h, y->out_w, y->out_b);
        return vlp_layernorm(g, vlp_add(g, drop(g, m, h), x), y->out_ln_w, y->out_ln_b, eps);
    }
    vlp_tensor *n = vlp_layernorm(g, x, y->ao_ln_w, y->ao_ln_b, eps);
    vlp_tensor *q = vlp_linear(g, n, y->q_w, y->q_b), *k = vlp_linear(g, n, y->k_w, y->k_b),
               *v = vlp_linear(g, n, y->v_w, y->v_b);
    vlp_tensor *h = vlp_linear(g, vlp_attention(g, q, k, v, heads, flags, mask), y->ao_w, y->ao_b);
    x = vlp_add(g, drop(g, m, h), x);
    if (cross) {
        n = vlp_layernorm(g, x, y->xo_ln_w, y->xo_ln_b, eps);
        q = vlp_linear(g, n, y->xq_w, y->xq_b), k = vlp_linear(g, enc, y->xk_w, y->xk_b);
        v = vlp_linear(g, enc, y->xv_w, y->xv_b);
        h = vlp_linear(g, vlp_attention(g, q, k, v, heads, 0, enc_mask), y->xo_w, y->xo_b);
        x = vlp_add(g, drop(g, m, h), x);
    }
    n = vlp_layernorm(g, x, y->out_ln_w, y->out_ln_b, eps);
    h = vlp_activation(g, vlp_linear(g, n, y->inter_w, y->inter_b), c->hidden_act);
    h = vlp_linear(g, h, y->out_w, y->out_b);
    return vlp_add(g, drop(g, m, h), x);
}

vlp_tensor *vlp_bert_encode_layers(vlp_graph *g, const vlp_bert *m, vlp_tensor *x, vlp_tensor *mask,
                                   vlp_tensor *enc, vlp_tensor *enc_mask, int from, int to, vlp_bert_states *st) {
    if (!check_model(g, m, "vlp_bert_encode_layers")) return NULL;
    int L = m->cfg.num_hidden_layers;
    if (from < 0 || to > L || from > to) {
        vlp_graph_fail(g, "vlp_bert_encode_layers: layer range [%d, %d) does not fit 0..%d", from, to, L);
        return NULL;
    }
    for (int l = from; l < to && x; l++) {
        x = vlp_bert_layer_forward(g, m, l, x, mask, enc, enc_mask);
        if (st && x && st->n_hidden < VLP_BERT_MAX_LAYERS + 1) st->hidden[st->n_hidden++] = vlp_keep(x);
    }
    if (m->cfg.pre_ln && to == L && x) x = vlp_layernorm(g, x, m->final_ln_w, m->final_ln_b, m->cfg.layer_norm_eps);
    return x;
}

vlp_tensor *vlp_bert_pool(vlp_graph *g, const vlp_bert *m, vlp_tensor *hidden) {
    if (!check_model(g, m, "vlp_bert_pool")) return NULL;
    if (!hidden) return NULL;
    if (hidden->ndim != 3) {
        vlp_graph_fail(g, "vlp_bert_pool: hidden must be [B, T, D]");
        return NULL;
    }
    int64_t shape[2] = {hidden->shape[0], hidden->shape[2]};
    vlp_tensor *cls = vlp_reshape(g, vlp_slice(g, hidden, 1, 0, 1), 2, shape);
    if (!m->cfg.pooler) return cls;
    return vlp_tanh_act(g, vlp_linear(g, cls, m->pool_w, m->pool_b));
}

vlp_tensor *vlp_bert_forward(vlp_graph *g, const vlp_bert *m, vlp_tensor *ids, vlp_tensor *type_ids,
                             vlp_tensor *mask, vlp_tensor *enc, vlp_tensor *enc_mask, vlp_tensor **pooled,
                             vlp_bert_states *st) {
    if (pooled) *pooled = NULL;
    if (!check_model(g, m, "vlp_bert_forward")) return NULL;
    if (st) st->n_hidden = 0;
    vlp_tensor *x = vlp_bert_embed(g, m, ids, type_ids);
    if (st && x) st->hidden[st->n_hidden++] = vlp_keep(x);
    x = vlp_bert_encode_layers(g, m, x, mask, enc, enc_mask, 0, m->cfg.num_hidden_layers, st);
    if (pooled && x) *pooled = vlp_bert_pool(g, m, x);
    return x;
}
