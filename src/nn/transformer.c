/* Pre-LN transformer blocks (GPT-2 / CLIP layout), written as a plain forward
 * function on the graph: autograd supplies the backward pass.
 *   x = x + out(attn(ln1(x)));  x = x + fc2(act(fc1(ln2(x))))
 * q, k and v are column views of one fused projection, so no copies. */
#include "../core/internal.h"

#include <math.h>

static int check_cfg(const vlp_transformer_config *c, const char *fn) {
    if (!c || c->width <= 0 || c->heads <= 0 || c->width % c->heads || c->layers <= 0 || c->mlp_dim < 0 ||
        !(c->ln_eps > 0) || c->act < VLP_ACT_QUICK_GELU || c->act > VLP_ACT_GELU_TANH) {
        if (c)
            vlp_set_error("%s: bad config width=%d heads=%d layers=%d mlp_dim=%d ln_eps=%g act=%d", fn, c->width,
                          c->heads, c->layers, c->mlp_dim, (double)c->ln_eps, c->act);
        else
            vlp_set_error("%s: config is NULL", fn);
        return 0;
    }
    return 1;
}

int vlp_transformer_declare(vlp_params *p, const char *prefix, const vlp_transformer_config *cfg,
                            vlp_block_params *blocks) {
    if (!check_cfg(cfg, "vlp_transformer_declare")) return VLP_ERR_ARG;
    if (!p || !prefix || !blocks) {
        vlp_set_error("vlp_transformer_declare: NULL argument");
        return VLP_ERR_ARG;
    }
    int64_t D = cfg->width, F = cfg->mlp_dim ? cfg->mlp_dim : 4 * (int64_t)cfg->width;
    for (int l = 0; l < cfg->layers; l++) {
        vlp_block_params *b = &blocks[l];
        char name[128];
#define DECL(field, suffix, flags, ...)                                          \
    do {                                                                         \
        int64_t shp[] = {__VA_ARGS__};                                           \
        snprintf(name, sizeof name, "%s.%d.%s", prefix, l, suffix);              \
        b->field = vlp_params_add(p, name, (int)(sizeof shp / sizeof shp[0]), shp, flags); \
        if (!b->field) return VLP_ERR_ARG;                                       \
    } while (0)
        DECL(ln1_w, "ln1.weight", VLP_FLAG_NO_DECAY, D);
        DECL(ln1_b, "ln1.bias", VLP_FLAG_NO_DECAY, D);
        DECL(qkv_w, "attn.qkv.weight", 0, 3 * D, D);
        DECL(qkv_b, "attn.qkv.bias", VLP_FLAG_NO_DECAY, 3 * D);
        DECL(out_w, "attn.out.weight", 0, D, D);
        DECL(out_b, "attn.out.bias", VLP_FLAG_NO_DECAY, D);
        DECL(ln2_w, "ln2.weight", VLP_FLAG_NO_DECAY, D);
        DECL(ln2_b, "ln2.bias", VLP_FLAG_NO_DECAY, D);
        DECL(fc1_w, "mlp.fc1.weight", 0, F, D);
        DECL(fc1_b, "mlp.fc1.bias", VLP_FLAG_NO_DECAY, F);
        DECL(fc2_w, "mlp.fc2.weight", 0, D, F);
        DECL(fc2_b, "mlp.fc2.bias", VLP_FLAG_NO_DECAY, D);
#undef DECL
    }
    return VLP_OK;
}

void vlp_transformer_init(const vlp_transformer_config *cfg, vlp_block_params *blocks, uint64_t seed) {
    float proj_std = 0.02f / sqrtf(2.0f * (float)cfg->layers);
    for (int l = 0; l < cfg->layers; l++) {
        vlp_block_params *b = &blocks[l];
        uint64_t s = seed * 1000003u + (uint64_t)l * 16;
        vlp_init_const(b->ln1_w, 1.0f);
        vlp_init_const(b->ln1_b, 0.0f);
        vlp_init_normal(b->qkv_w, 0.0f, 0.02f, s + 1);
        vlp_init_const(b->qkv_b, 0.0f);
        vlp_init_normal(b->out_w, 0.0f, proj_std, s + 2);
        vlp_init_const(b->out_b, 0.0f);
        vlp_init_const(b->ln2_w, 1.0f);
        vlp_init_const(b->ln2_b, 0.0f);
        vlp_init_normal(b->fc1_w, 0.0f, 0.02f, s + 3);
        vlp_init_const(b->fc1_b, 0.0f);
        vlp_init_normal(b->fc2_w, 0.0f, proj_std, s + 4);
        vlp_init_const(b->fc2_b, 0.0f);
    }
}

vlp_tensor *vlp_transformer_forward(vlp_graph *g, const vlp_transformer_config *cfg,
                                    const vlp_block_params *blocks, vlp_tensor *x, vlp_tensor *key_mask) {
    return vlp_transformer_forward_states(g, cfg, blocks, x, key_mask, NULL);
}

vlp_tensor *vlp_transformer_forward_states(vlp_graph *g, const vlp_transformer_config *cfg,
                                           const vlp_block_params *blocks, vlp_tensor *x, vlp_tensor *key_mask,
                                           vlp_tensor **states) {
    if (!check_cfg(cfg, "vlp_transformer_forward")) {
        vlp_graph_fail(g, "%s", vlp_last_error());
        return NULL;
    }
    if (!blocks) {
        vlp_graph_fail(g, "vlp_transformer_forward: blocks is NULL");
        return NULL;
    }
    int64_t D = cfg->width;
    for (int l = 0; l < cfg->layers && x; l++) {
        const vlp_block_params *b = &blocks[l];
        vlp_tensor *h = vlp_layernorm(g, x, b->ln1_w, b->ln1_b, cfg->ln_eps);
        vlp_tensor *qkv = vlp_linear(g, h, b->qkv_w, b->qkv_b);
        vlp_tensor *q = vlp_view_cols(g, qkv, 0, D), *k = vlp_view_cols(g, qkv, D, D),
                   *v = vlp_view_cols(g, qkv, 2 * D, D);
        vlp_tensor *a = vlp_attention(g, q, k, v, cfg->heads, cfg->causal ? VLP_ATTN_CAUSAL : 0, key_mask);
        x = vlp_add(g, x, vlp_linear(g, a, b->out_w, b->out_b));
        h = vlp_layernorm(g, x, b->ln2_w, b->ln2_b, cfg->ln_eps);
        h = vlp_activation(g, vlp_linear(g, h, b->fc1_w, b->fc1_b), cfg->act);
        x = vlp_add(g, x, vlp_linear(g, h, b->fc2_w, b->fc2_b));
        if (states) states[l] = vlp_keep(x);
    }
    return x;
}
