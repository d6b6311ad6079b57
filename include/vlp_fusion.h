/* vlp fusion: BERT-style text encoders (and the fusion models built on them).
 *
 * BERT (Devlin et al.) as forward functions on the vlp graph, parameters named as
 * Hugging Face BertModel's state dict so its safetensors load directly:
 *
 *   embeddings.{word_embeddings,position_embeddings,token_type_embeddings}.weight
 *   embeddings.LayerNorm.{weight,bias}
 *   encoder.layer.N.attention.self.{query,key,value}.{weight,bias}
 *   encoder.layer.N.attention.output.dense.{weight,bias}
 *   encoder.layer.N.attention.output.LayerNorm.{weight,bias}
 *   encoder.layer.N.crossattention.*        (same names; layers with cross-attention)
 *   encoder.layer.N.intermediate.dense.{weight,bias}
 *   encoder.layer.N.output.dense.{weight,bias}
 *   encoder.layer.N.output.LayerNorm.{weight,bias}
 *   pooler.dense.{weight,bias}                (cfg.pooler)
 *
 * Post-LN (BERT):  x = LN(x + drop(out(attn(x))));  x = LN(x + drop(out2(act(inter(x)))))
 * Pre-LN (cfg.pre_ln, Hugging Face RobertaPreLayerNorm's layout):
 *                  x = x + drop(out(attn(LN_a(x))));  x = x + drop(out2(act(inter(LN_i(x)))))
 *   with LN_a = encoder.layer.N.attention.LayerNorm, LN_i = encoder.layer.N.intermediate.LayerNorm
 *   (and crossattention.LayerNorm), plus a final LayerNorm.{weight,bias} after the last layer.
 *   The embedding LayerNorm is kept in both.
 * Cross-attention (ALBEF / BLIP text encoders): layers l >= cfg.cross_attention_from get a
 * second attention block between self-attention and the MLP whose queries come from x and
 * keys/values from encoder states [B, Tk, encoder_width].
 * Attention-probability dropout is not applied (vlp_attention is fused); hidden dropout is.
 *
 * Masks are I32 [B, T], 1 = real token, 0 = padding (vlp_attention's key_mask): padded keys
 * get no weight, as Hugging Face's additive mask does. Rows of padded positions are computed
 * but meaningless.
 *
 * Errors follow vlp.h: NULL / negative vlp_status with the message in vlp_last_error(); graph
 * functions record failures on the graph (vlp_graph_error). */
#ifndef VLP_FUSION_H
#define VLP_FUSION_H

#include "vlp.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

#define VLP_BERT_MAX_LAYERS 64

typedef struct {
    int vocab_size;              /* 30522 for bert-base-uncased */
    int hidden_size;             /* 768 */
    int num_hidden_layers;       /* 12 */
    int num_attention_heads;     /* 12 */
    int intermediate_size;       /* 3072 */
    int max_position_embeddings; /* 512 */
    int type_vocab_size;         /* 2 */
    float layer_norm_eps;        /* 1e-12 */
    float hidden_dropout;        /* 0.1; only active while the graph is training */
    int hidden_act;              /* VLP_ACT_GELU (erf), as BERT */
    int pre_ln;                  /* 0: post-LN BERT; 1: pre-LN with a final LayerNorm */
    int pooler;                  /* 1: pooler.dense (+tanh) over [CLS] exists */
    int causal;                  /* 1: causal self-attention (text decoders) */
    int cross_attention_from;    /* first layer with cross-attention; -1 = none */
    int encoder_width;           /* width of the states cross-attention reads; 0 = hidden_size */
} vlp_bert_config;

/* bert-base-uncased (post-LN, pooler, no cross-attention). */
void vlp_bert_config_default(vlp_bert_config *cfg);
/* Hugging Face BertConfig config.json (hidden_size, num_hidden_layers, ...; "add_cross_attention"
 * + "fusion_layer"/"cross_attention_from", "encoder_width" as ALBEF writes them; "pre_ln" or
 * model_type "roberta-prelayernorm" for pre-LN). Missing fields keep the defaults above. */
int vlp_bert_config_load(const char *path, vlp_bert_config *cfg);
int vlp_bert_config_validate(const vlp_bert_config *cfg); /* message names the first bad field */

typedef struct {
    /* self-attention */
    vlp_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *ao_w, *ao_b, *ao_ln_w, *ao_ln_b;
    /* cross-attention: all NULL unless the layer has it; k/v weights are [D, encoder_width] */
    vlp_tensor *xq_w, *xq_b, *xk_w, *xk_b, *xv_w, *xv_b, *xo_w, *xo_b, *xo_ln_w, *xo_ln_b;
    /* MLP */
    vlp_tensor *inter_w, *inter_b, *out_w, *out_b, *out_ln_w, *out_ln_b;
} vlp_bert_layer;
/* In post-LN the *_ln are the LayerNorms after each residual (attention.output.LayerNorm,
 * crossattention.output.LayerNorm, output.LayerNorm); in pre-LN the ones before each block
 * (attention.LayerNorm, crossattention.LayerNorm, intermediate.LayerNorm). */

typedef struct vlp_bert vlp_bert;
struct vlp_bert {
    vlp_bert_config cfg;
    vlp_params *params;   /* the store holding the tensors below */
    int owns_params;      /* 1: vlp_bert_free frees params */
    char prefix[64];      /* name prefix of every tensor ("" or e.g. "text_encoder.") */
    vlp_tensor *word_emb, *pos_emb, *type_emb, *emb_ln_w, *emb_ln_b;
    vlp_bert_layer layers[VLP_BERT_MAX_LAYERS];
    vlp_tensor *final_ln_w, *final_ln_b; /* pre_ln only */
    vlp_tensor *pool_w, *pool_b;         /* cfg.pooler only */
};

/* ---- building ------------------------------------------------------------------ */
/* Declares every tensor in an existing store, names prefixed with `prefix` (may be NULL or
 * ""), so a fusion model can hold BERT inside its own store. m->params = p, not owned. Call
 * vlp_params_alloc(p) afterwards, then vlp_bert_init or a loader. Full names must fit
 * vlp_tensor.name (63 bytes): the longest BERT name has 55, so prefixes of up to 8 bytes are
 * always safe; a longer one is an error naming the parameter. */
int vlp_bert_declare(vlp_params *p, const char *prefix, const vlp_bert_config *cfg, vlp_bert *m);
/* BERT init: weights N(0, 0.02), biases 0, LayerNorm gains 1; deterministic in seed. */
void vlp_bert_init(vlp_bert *m, uint64_t seed);
/* A standalone model in its own store, initialised. */
vlp_bert *vlp_bert_new(const vlp_bert_config *cfg, uint64_t seed);
void vlp_bert_free(vlp_bert *m); /* frees the store only if owned */
int64_t vlp_bert_param_count(const vlp_bert *m);

/* ---- checkpoints ----------------------------------------------------------------- */
/* path: a directory with model.safetensors + config.json, or a .safetensors file (config.json
 * read from the same directory when present, else the config is inferred from tensor shapes:
 * heads = hidden / 64; pre-LN, pooler and cross-attention from which tensors exist). Tensor names
 * may carry a prefix: "bert.", "roberta_prelayernorm.", "text_encoder.bert." or "text_encoder."
 * (the first that has embeddings.word_embeddings.weight). F32/F16/BF16 converted; extra tensors
 * (cls.*, position_ids) ignored; a missing tensor or a wrong shape is an error naming it.
 * Positions always count from 0 (BERT; RoBERTa's padding offset is not applied). */
vlp_bert *vlp_bert_load(const char *path);
/* Fills every tensor of m from an open safetensors (struct vlp_safetensors *) whose names are
 * `st_prefix` + the BertModel name (st_prefix NULL: the first of the prefixes above that
 * matches). For fusion models loading a BERT that lives inside a bigger checkpoint. */
struct vlp_safetensors;
int vlp_bert_load_weights(vlp_bert *m, const struct vlp_safetensors *st, const char *st_prefix);
/* dir/model.safetensors (BertModel names, F32) + dir/config.json, atomically. */
int vlp_bert_save(const vlp_bert *m, const char *dir);

/* ---- forward ------------------------------------------------------------------------ */
/* Optional intermediate outputs (kept in the graph, readable after forward). vlp_bert_forward
 * resets n_hidden; vlp_bert_encode_layers appends at hidden[n_hidden] (zero st first). In
 * pre-LN the states are taken before the final LayerNorm (as Hugging Face's hidden_states). */
typedef struct {
    vlp_tensor *hidden[VLP_BERT_MAX_LAYERS + 1]; /* embeddings output, then each layer */
    int n_hidden;
} vlp_bert_states;

/* ids, type_ids I32 [B, T] (T <= max_position_embeddings; type_ids NULL = all 0) ->
 * LN(word + position(0..T-1) + token_type), dropout: [B, T, D]. */
vlp_tensor *vlp_bert_embed(vlp_graph *g, const vlp_bert *m, vlp_tensor *ids, vlp_tensor *type_ids);
/* One layer l: x [B, T, D], mask I32 [B, T] or NULL; enc [B, Tk, encoder_width] and enc_mask
 * I32 [B, Tk] (or NULL) for a layer with cross-attention (enc must be given there and is
 * ignored elsewhere). */
vlp_tensor *vlp_bert_layer_forward(vlp_graph *g, const vlp_bert *m, int l, vlp_tensor *x, vlp_tensor *mask,
                                   vlp_tensor *enc, vlp_tensor *enc_mask);
/* Layers [from, to) in order (ALBEF: text layers 0..fusion-1, then fusion layers with enc).
 * Pre-LN: the final LayerNorm is applied when to == num_hidden_layers. st may be NULL. */
vlp_tensor *vlp_bert_encode_layers(vlp_graph *g, const vlp_bert *m, vlp_tensor *x, vlp_tensor *mask,
                                   vlp_tensor *enc, vlp_tensor *enc_mask, int from, int to,
                                   vlp_bert_states *st);
/* hidden [B, T, D] -> [B, D]: the [CLS] (first) row, then tanh(pooler.dense(.)) if cfg.pooler. */
vlp_tensor *vlp_bert_pool(vlp_graph *g, const vlp_bert *m, vlp_tensor *hidden);
/* The whole model (BertModel.forward): returns last_hidden_state [B, T, D]; *pooled (if not
 * NULL) gets vlp_bert_pool of it. enc/enc_mask as for vlp_bert_layer_forward. */
vlp_tensor *vlp_bert_forward(vlp_graph *g, const vlp_bert *m, vlp_tensor *ids, vlp_tensor *type_ids,
                             vlp_tensor *mask, vlp_tensor *enc, vlp_tensor *enc_mask, vlp_tensor **pooled,
                             vlp_bert_states *st);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
