/* CLIP: the dual encoder (ViT image tower + causal text transformer + learnable
 * temperature), written as forward functions on the vlp graph so the same code
 * runs inference and training. Loads Hugging Face CLIPModel and OpenAI/open_clip
 * safetensors directly; saves the Hugging Face layout. */
#ifndef VLP_CLIP_H
#define VLP_CLIP_H

#include "vlp.h"
#include "vlp_text.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct {
    int embed_dim;
    /* image tower */
    int image_size, patch_size, vision_width, vision_layers, vision_heads, vision_mlp;
    int vision_act; /* VLP_ACT_* */
    /* text tower */
    int context_length, vocab_size, text_width, text_layers, text_heads, text_mlp;
    int text_act;
    /* the tokenizer that feeds the text tower: VLP_TOKENIZER_CLIP_BPE (0 means it too; pooled at
     * <|endoftext|>, the largest id: argmax, as OpenAI CLIP) or VLP_TOKENIZER_WORDPIECE (pooled at
     * the first eos_id, [SEP]; Hugging Face CLIPTextModel's eos_token_id rule) */
    int tokenizer, eos_id;
    float ln_eps;
    float logit_scale_init; /* ln(1 / 0.07) for a new model */
    /* preprocessing the checkpoint expects */
    float mean[3], std[3];
} vlp_clip_config;

/* Fills the OpenAI CLIP defaults for a named preset: "ViT-B-32", "ViT-B-16", "ViT-L-14",
 * "tiny" (the fixture's shape). Returns VLP_ERR_ARG for an unknown name. */
int vlp_clip_preset(const char *name, vlp_clip_config *cfg);
/* Reads a config: Hugging Face config.json (text_config / vision_config), open_clip's
 * model config (model_cfg or the bare object), or vlp's flat format (the preset keys,
 * strict: unknown fields are errors). */
int vlp_clip_config_load(const char *path, vlp_clip_config *cfg);
/* Checks every field; the message names the first bad one. */
int vlp_clip_config_validate(const vlp_clip_config *cfg);

typedef struct vlp_clip vlp_clip;
struct vlp_clip {
    vlp_clip_config cfg;
    vlp_params *params;
    /* image tower */
    vlp_tensor *patch_w, *class_emb, *vis_pos, *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b, *vis_proj;
    vlp_block_params *vis_blocks;
    /* text tower */
    vlp_tensor *tok_emb, *txt_pos, *ln_final_w, *ln_final_b, *txt_proj;
    vlp_block_params *txt_blocks;
    vlp_tensor *logit_scale;
    char source[64]; /* "hf", "openai" or "init": where the weights came from */
    /* a WordPiece model's vocabulary file ("" = the built-in bert-base-uncased): set by
     * vlp_clip_load from the model's vocab.txt, or by the caller for a new model; vlp_clip_save
     * copies it into the model directory */
    char vocab[1024];
};

/* A model with freshly initialised weights (OpenAI's initialisation), seeded. */
vlp_clip *vlp_clip_new(const vlp_clip_config *cfg, uint64_t seed);
void vlp_clip_free(vlp_clip *m);
/* Loads weights. path: a directory (model.safetensors + config.json, or
 * open_clip_model.safetensors + open_clip_config.json), or a .safetensors file
 * (the config of its layout is read from the same directory; an OpenAI state dict
 * without one is inferred from tensor shapes with heads = width / 64). F32, F16 and
 * BF16 tensors are converted; extra tensors (position_ids, ...) are ignored; a
 * missing tensor or a shape that does not fit the config is an error naming it. */
vlp_clip *vlp_clip_load(const char *path);
/* Writes dir/model.safetensors (Hugging Face CLIPModel names, F32) and
 * dir/config.json (a WordPiece model: "tokenizer_class": "BertTokenizer" and the [SEP] id as
 * text_config.eos_token_id), each atomically, and the vocabulary (vocab.txt) of m->vocab. */
int vlp_clip_save(const vlp_clip *m, const char *dir);
int64_t vlp_clip_param_count(const vlp_clip *m);

/* ---- the tokenizer (any tokenizer feeds the text tower, by config) ---------------------- */
/* Makes cfg take t's ids: the tokenizer kind; WordPiece: its vocab_size and [SEP] as eos_id (the
 * vocabulary must have [CLS], [SEP] and [PAD]); CLIP BPE: vocab_size at least the BPE's 49408. */
int vlp_clip_config_set_tokenizer(vlp_clip_config *cfg, const vlp_tokenizer *t);
/* The model's tokenizer: vocab (a vocab.txt) if given, else m->vocab, else the built-in one of
 * its kind; its vocabulary size must be the model's (an error names the file otherwise). */
vlp_tokenizer *vlp_clip_tokenizer_load(const vlp_clip *m, const char *vocab);
/* One text -> the T ids the text tower takes, truncated to T with the end token kept: CLIP BPE
 * as clip.tokenize(truncate=True) (zero padded), WordPiece as [CLS] text [SEP] [PAD]... Thread-safe. */
int vlp_clip_tokenize(vlp_tokenizer *t, const char *text, int T, int32_t *ids);

/* Optional intermediate outputs for parity checks (kept in the graph). */
typedef struct {
    vlp_tensor *hidden[65]; /* embeddings (after ln_pre for images), then each block */
    int n_hidden;
    vlp_tensor *pooled;     /* ln_post(class token) / ln_final(end-of-text token), before projection */
} vlp_clip_states;

/* pixels [B, 3, S, S] (normalised) -> image features [B, embed_dim] (not normalised). */
vlp_tensor *vlp_clip_encode_image(vlp_graph *g, const vlp_clip *m, vlp_tensor *pixels, vlp_clip_states *st);
/* ids i32 [B, T] (T <= context_length, vlp_clip_tokenize's rows) -> text features
 * [B, embed_dim]; pooled at each row's first end-of-text token (argmax for CLIP BPE, the first
 * eos_id for WordPiece). */
vlp_tensor *vlp_clip_encode_text(vlp_graph *g, const vlp_clip *m, vlp_tensor *ids, vlp_clip_states *st);
/* Host-side: out[i * nt + j] = exp(logit_scale) * cos(img_i, txt_j), features of
 * width m->cfg.embed_dim (as CLIP's logits_per_image). */
void vlp_clip_logits(const vlp_clip *m, const float *img, int ni, const float *txt, int nt, float *out);
/* Scales each row to unit L2 norm in place. */
void vlp_l2_normalize_rows(float *x, int rows, int dim);

/* ---- batched embedding (what `vlp embed`, `classify` and `similarity` use) ---------- */
/* A runner holds the inference graphs of one model for a fixed batch size, built on
 * first use and replayed for every batch (no allocation per batch). */
typedef struct vlp_clip_runner vlp_clip_runner;
vlp_clip_runner *vlp_clip_runner_new(const vlp_clip *m, int batch);
void vlp_clip_runner_free(vlp_clip_runner *r);
/* n preprocessed images [n, 3, S, S] -> features [n, embed_dim], any n (batched inside). */
int vlp_clip_embed_pixels(vlp_clip_runner *r, const float *pixels, int n, int normalize, float *out);
/* n token rows [n, context_length] (vlp_clip_tokenize output) -> features [n, embed_dim]. */
int vlp_clip_embed_tokens(vlp_clip_runner *r, const int32_t *ids, int n, int normalize, float *out);
/* Tokenises (vlp_clip_tokenize, truncating at the context length) and embeds n texts; tok is
 * the model's (vlp_clip_tokenizer_load). */
int vlp_clip_embed_texts(vlp_clip_runner *r, vlp_tokenizer *tok, const char *const *texts, int n, int normalize,
                         float *out);
/* Decodes, preprocesses and embeds image files; decoding of the next batch overlaps
 * the model's work on the current one. ok[i] (may be NULL) is set to 1 for images
 * that were embedded, 0 for ones that failed (their row is zero); on_error (may be
 * NULL) hears about each failure. Returns the number embedded, or < 0 on a model error. */
typedef void (*vlp_image_error_fn)(void *ctx, int index, const char *message);
int vlp_clip_embed_image_files(vlp_clip_runner *r, const char *const *paths, int n, int normalize, float *out,
                               int *ok, vlp_image_error_fn on_error, void *ctx,
                               void (*on_progress)(void *ctx, int done), void *progress_ctx);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
