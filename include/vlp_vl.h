/* vlp VL: fusion and generative vision-language models on the vlp engine.
 *
 * One model type (vlp_vl) with a family switch:
 *   VLP_VL_SINGLE   single-stream (ViLT): linear patch embedding + BERT-style text
 *                   embeddings + modality-type embeddings, concatenated [text; image]
 *                   into one pre-LN transformer; pooler (dense + tanh) on the first token.
 *   VLP_VL_DUAL     dual-stream (ALBEF): ViT image encoder; BERT text encoder (vlp_bert,
 *                   include/vlp_fusion.h) whose last `fusion_layers` layers add
 *                   cross-attention to the image tokens. co_attention: the image stream
 *                   also gets `fusion_layers` layers that cross-attend to the text.
 *   VLP_VL_MOME     mixture of modality experts (VLMo): shared self-attention; every layer
 *                   has a language FFN and a vision FFN, the top `fusion_layers` also a
 *                   vision-language FFN. Runs as image encoder (V experts), text encoder
 *                   (L experts) or fusion encoder ([text; image], modality experts below,
 *                   the VL expert in the top layers).
 *   VLP_VL_CAPTION  captioning (BLIP/CoCa decoder): ViT image encoder + causal BERT text
 *                   decoder with cross-attention to the image tokens in every layer; LM head.
 *                   CoCa: with 0 < fusion_layers < layers only the top `fusion_layers` are
 *                   multimodal; the layers below are unimodal (causal self-attention only), and
 *                   with embed_dim > 0 a learned ITC token appended after the text is read at
 *                   their output (LayerNorm + text_proj) for ITC against the image [CLS].
 *
 * Objectives (weights in the config; 0 = off): ITC (dual, MoME, CoCa captioning), ITM with in-batch hard
 * negatives (SINGLE uses uniform negatives), MLM conditioned on the image, MIM (regression
 * of normalised pixels of masked patches), captioning LM with teacher forcing.
 * The MLM/LM head is dense + act + LayerNorm, decoder tied to the word embeddings.
 *
 * Generation (src/models/decode.c): greedy, beam search and nucleus sampling with a
 * key/value cache, outside the graph (plain loops + the engine's GEMM).
 *
 * Checkpoints: dir/model.safetensors (vlp's parameter names) + dir/config.json with
 * "family" and "objectives" fields. */
#ifndef VLP_VL_H
#define VLP_VL_H

#include "vlp.h"
#include "vlp_fusion.h"
#include "vlp_text.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

enum { VLP_VL_SINGLE = 0, VLP_VL_DUAL = 1, VLP_VL_MOME = 2, VLP_VL_CAPTION = 3 };
/* family name: "single_stream", "dual_stream", "mome", "captioning" */
const char *vlp_vl_family_name(int family);

typedef struct {
    int family;
    /* image */
    int image_size, patch_size;
    int vision_width, vision_layers, vision_heads, vision_mlp; /* ViT of DUAL / CAPTION; SINGLE and
                                                                  MOME embed patches at `width` */
    /* text / fusion / decoder stack */
    int vocab_size, max_text_len;
    int width, layers, heads, mlp;
    int fusion_layers; /* DUAL: top text layers with cross-attention; MOME: top layers with the VL FFN;
                          CAPTION: top decoder layers with cross-attention (0 = every layer) */
    int co_attention;  /* DUAL only */
    int text_pre_ln;   /* DUAL / CAPTION BERT layout: 0 = post-LN (BERT), 1 = pre-LN */
    int embed_dim;     /* ITC projection width (DUAL, MOME, CAPTION); 0 = no ITC heads */
    int act;           /* VLP_ACT_* */
    float ln_eps, dropout;
    int pad_id, cls_id, sep_id, mask_id, bos_id, eos_id;
    int tokenizer; /* VLP_TOKENIZER_* (vlp_text.h) feeding the text side: WordPiece (default) or CLIP BPE */
    /* objectives: weight of each loss in the sum; 0 = not trained */
    float w_itc, w_itm, w_mlm, w_mim, w_lm;
    float mlm_prob;     /* 0.15 */
    int mlm_whole_word; /* mask whole WordPiece words (## continuations) */
    float mim_ratio;    /* fraction of patches masked for MIM */
    /* ALBEF options for ITC (DUAL / MOME): an EMA teacher (momentum > 0, e.g. 0.995) whose
     * features are the positives and, with distill_alpha > 0, soft targets
     * ((1 - a) one-hot + a softmax(teacher sims)); a queue of queue_size earlier teacher
     * features as extra negatives (MoCo). With momentum, ITC uses temperature 0.07. With
     * distill_alpha > 0 MLM is distilled too: (1 - a) CE(labels) + a softCE(teacher's softmax),
     * the teacher fusing its own image states with the same masked text. */
    float momentum, distill_alpha;
    int queue_size;
    /* 1: an ITM negative is never a pair whose text (ids and mask rows) equals the positive's
     * (a duplicate caption is a match, not a negative; BLIP masks same-id pairs alike) */
    int itm_exclude_same_text;
    float mean[3], std[3];
} vlp_vl_config;

/* The tokenizer of a model (vlp_text.h): set_tokenizer takes the kind, vocabulary size and
 * special ids from t (vocab: its file, for messages; an error names the missing specials);
 * tokenizer_load opens the one cfg names, from vocab if given, else the model directory's
 * vocab.txt / merges.txt[.gz], else the built-in vocabulary, and checks its size against cfg;
 * tokenizer_save copies vocab (NULL: built-in, nothing to copy) into the model directory under
 * vlp_vl_tokenizer_file's name. model: a directory or its .safetensors file. */
int vlp_vl_config_set_tokenizer(vlp_vl_config *cfg, const vlp_tokenizer *t, const char *vocab);
vlp_tokenizer *vlp_vl_tokenizer_load(const vlp_vl_config *cfg, const char *model, const char *vocab);
/* The model directory's own vocabulary file for cfg's tokenizer into out: 1, or 0 (built in, out ""). */
int vlp_vl_tokenizer_path(const vlp_vl_config *cfg, const char *model, char *out, size_t cap);
int vlp_vl_tokenizer_save(int kind, const char *vocab, const char *model);
const char *vlp_vl_tokenizer_file(int kind, const char *vocab);

/* Presets: "vilt", "albef", "vlmo", "blip" (base sizes, BERT vocabulary) and the tiny
 * "vilt-tiny", "albef-tiny", "albef-coattn-tiny", "vlmo-tiny", "blip-tiny" for tests. */
int vlp_vl_preset(const char *name, vlp_vl_config *cfg);
int vlp_vl_config_validate(const vlp_vl_config *cfg);
/* vlp's config.json (as written by vlp_vl_save): flat, strict, "family" required. */
int vlp_vl_config_load(const char *path, vlp_vl_config *cfg);
/* The config as the JSON object vlp_vl_save writes to config.json (malloc'd, free with free()). */
char *vlp_vl_config_dumps(const vlp_vl_config *cfg);

typedef struct {
    vlp_tensor *ln_w, *ln_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vlp_vl_ffn;
/* A pre-LN layer: self-attention, optional cross-attention, one to three FFN experts. */
typedef struct {
    vlp_tensor *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b;
    vlp_tensor *lnx_w, *lnx_b, *xq_w, *xq_b, *xkv_w, *xkv_b, *xo_w, *xo_b; /* NULL without cross-attention */
    vlp_vl_ffn ffn[3]; /* SINGLE / co-attention: [0]; MOME: [0] language, [1] vision, [2] vision-language */
    int n_ffn;
} vlp_vl_layer;

typedef struct vlp_vl vlp_vl;
struct vlp_vl {
    vlp_vl_config cfg;
    vlp_params *params;
    /* image embedding */
    vlp_tensor *patch_w, *patch_b, *vis_cls, *vis_pos, *mask_token;
    vlp_block_params *vit; /* DUAL, CAPTION: vision_layers blocks, then vit_ln */
    vlp_tensor *vit_ln_w, *vit_ln_b;
    /* SINGLE, MOME: own text embeddings and layer stack */
    vlp_tensor *word_emb, *txt_pos, *type_emb, *emb_ln_w, *emb_ln_b;
    vlp_vl_layer *layers;
    vlp_tensor *final_ln_w, *final_ln_b;
    /* DUAL: BERT encoder with cross-attention from layers - fusion_layers; CAPTION: causal decoder */
    vlp_bert *text;
    vlp_vl_layer *co_layers; /* DUAL co_attention: image-side fusion layers */
    vlp_tensor *co_ln_w, *co_ln_b;
    /* heads */
    vlp_tensor *pool_w, *pool_b, *itm_w, *itm_b;
    vlp_tensor *head_w, *head_b, *head_ln_w, *head_ln_b, *head_bias; /* MLM / LM */
    vlp_tensor *mim_w, *mim_b;
    vlp_tensor *vis_proj, *txt_proj, *logit_scale;
    vlp_tensor *itc_tok, *itc_ln_w, *itc_ln_b; /* CAPTION with unimodal layers and embed_dim: CoCa's ITC token */
};

vlp_vl *vlp_vl_new(const vlp_vl_config *cfg, uint64_t seed);
void vlp_vl_free(vlp_vl *m);
int64_t vlp_vl_param_count(const vlp_vl *m);
/* The word-embedding table the heads decode with ([vocab, width]). */
vlp_tensor *vlp_vl_word_embeddings(const vlp_vl *m);
int vlp_vl_save(const vlp_vl *m, const char *dir);
/* dir (model.safetensors + config.json) or the .safetensors file (config.json beside it). */
vlp_vl *vlp_vl_load(const char *path);
/* Number of image tokens (patches + class token). */
int vlp_vl_image_tokens(const vlp_vl *m);

/* ---- forward (graph) ------------------------------------------------------------------ */
/* pixels [B, 3, S, S] -> [B, N + 1, W]: patch embedding (masked patches replaced by the mask
 * token where mim_keep/mim_drop [B, N, W] are given: x * keep + drop * mask_token), class
 * token, positions (+ image type embedding for SINGLE / MOME). keep/drop may be NULL. */
vlp_tensor *vlp_vl_embed_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *pixels, vlp_tensor *mim_keep,
                               vlp_tensor *mim_drop);
/* ids i32 [B, T] -> [B, T, width] (word + position (+ text type), LayerNorm). */
vlp_tensor *vlp_vl_embed_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *ids);
/* Unimodal encoders: DUAL / CAPTION: ViT + LayerNorm; MOME: every layer with V experts + final
 * LayerNorm; SINGLE: the embeddings unchanged. */
vlp_tensor *vlp_vl_encode_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *img_emb);
/* DUAL: BERT layers below the fusion layers; MOME: L experts + final LayerNorm; SINGLE: the
 * embeddings unchanged; CAPTION: the unimodal decoder layers (none: the embeddings unchanged),
 * with ITC heads on [text; ITC token]: [B, T + 1, width]. mask i32 [B, T]. */
vlp_tensor *vlp_vl_encode_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *txt_emb, vlp_tensor *mask);
/* What the fusion consumes: encoder outputs for DUAL, embeddings for SINGLE / MOME. */
int vlp_vl_fuses_embeddings(const vlp_vl *m);
/* Fusion -> text-side states [B, T, width] (first row: [CLS]); *img_out (may be NULL) gets the
 * image-side states [B, N + 1, w] (SINGLE / MOME: the image part of the joint sequence; DUAL:
 * the co-attention image stream, or img itself). Not for CAPTION. */
vlp_tensor *vlp_vl_fuse(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *mask,
                        vlp_tensor **img_out);
/* CAPTION: image tokens (encode_image output) + ids i32 [B, T] (bos first) -> logits [B, T, V]. */
vlp_tensor *vlp_vl_caption_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *ids,
                                  vlp_tensor *mask);
/* CAPTION: the multimodal layers on vlp_vl_encode_text's states (its ITC token dropped) + LM
 * head -> logits [B, T, V]; equal to vlp_vl_caption_logits on the same ids. */
vlp_tensor *vlp_vl_caption_decode(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *txt_enc,
                                  vlp_tensor *mask);
/* heads */
vlp_tensor *vlp_vl_pool(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused);       /* [B, W]: tanh(dense(first)) */
vlp_tensor *vlp_vl_itm_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused); /* [B, 2] */
vlp_tensor *vlp_vl_lm_logits(vlp_graph *g, const vlp_vl *m, vlp_tensor *states); /* [B, T, V] */
/* ITC features [B, embed_dim] (not normalised) from the first token of each encoder output
 * (CAPTION text: the last row, its ITC token, through itc_ln). */
int vlp_vl_itc_features(vlp_graph *g, const vlp_vl *m, vlp_tensor *img_enc, vlp_tensor *txt_enc,
                        vlp_tensor **img_feat, vlp_tensor **txt_feat);
/* The same, one side at a time (embedding images or texts alone). */
vlp_tensor *vlp_vl_itc_image(vlp_graph *g, const vlp_vl *m, vlp_tensor *img_enc);
vlp_tensor *vlp_vl_itc_text(vlp_graph *g, const vlp_vl *m, vlp_tensor *txt_enc);

/* ---- objectives (src/objectives) -------------------------------------------------------- */
/* ITM: samples one negative text per image from scores [B, B] (image x text) and one negative
 * image per text from scores_t (text x image; softmax over the other items, in-graph, seeded
 * by the graph),
 * fuses the B positive and 2B negative pairs and returns the cross-entropy of the ITM head.
 * img, txt: fusion inputs; labels i32 [3B] = B ones then 2B zeros. *neg_img (for each text)
 * and *neg_txt (for each image) get the sampled indices (i32 [B], kept). */
vlp_tensor *vlp_vl_itm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *mask,
                            vlp_tensor *scores, vlp_tensor *scores_t, vlp_tensor *labels, vlp_tensor **neg_img,
                            vlp_tensor **neg_txt);
/* MLM: fused states of (image, masked text) -> cross-entropy on labels i32 [B * T] (-100 = not masked). */
/* rows: i32 [P] positions of fused ([B, T, D] flattened to [B*T, D]) that carry a label, then
 * labels [P]: the vocabulary-wide head runs on those P rows only (BERT-style MLM runs it on all
 * B*T, ~85% of them unlabelled). rows NULL: labels [B*T] over every position. Same loss; the
 * head's weight gradient sums fewer rows, so its last bits may differ. */
vlp_tensor *vlp_vl_mlm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *fused, vlp_tensor *rows, vlp_tensor *labels);
/* Compacts labels [n] (-100: none) into rows/row_labels [cap] in position order, padding with
 * (0, -100); returns how many labelled positions did not fit (dropped). */
int vlp_mlm_compact(const int32_t *labels, int64_t n, int32_t *rows, int32_t *row_labels, int cap);
/* BERT masking of n rows of T ids: picks each maskable token (not pad/cls/sep/bos/eos, mask
 * != 0) with probability prob (at least one per row that has any), then 80% -> mask_id,
 * 10% -> a random id in [first_random, vocab), 10% unchanged. is_cont (may be NULL; vocab
 * entries) marks WordPiece "##" continuations: with whole_word a word is picked or not as a
 * whole. Writes out_ids (n*T) and labels (n*T: the original id where picked, else -100).
 * Returns the number of picked tokens. */
int vlp_mlm_mask(const vlp_vl_config *cfg, const int32_t *ids, const int32_t *mask, int n, int T,
                 const uint8_t *is_cont, int first_random, uint64_t seed, int32_t *out_ids, int32_t *labels);
/* is_cont[i] = 1 for vocab.txt lines starting with "##"; *n gets the vocabulary size. */
uint8_t *vlp_wordpiece_continuations(const char *vocab_path, int *n);
/* MIM: picks exactly round(ratio * N) of the N patches of each of B images (mask[b*N + i] = 1). */
int vlp_mim_mask(int B, int N, float ratio, uint64_t seed, uint8_t *mask);
/* Per-patch normalised pixels (MAE's norm_pix_loss): out [B, N, 3*P*P] (channel, row, col
 * order as the patch-embedding weight). */
void vlp_mim_targets(const float *pixels, int B, int S, int P, float *out);
/* pred [B, N, 3PP] from patch states; sel [B, N, 3PP] 1 on masked patches; target zero on
 * unmasked ones; masked per image = the fixed count. Mean squared error over masked patches. */
vlp_tensor *vlp_vl_mim_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *patch_states, vlp_tensor *target,
                            vlp_tensor *sel, int masked_per_image);
/* LM labels for teacher forcing: labels[b, t] = ids[b, t + 1] where mask[b, t + 1], else -100. */
void vlp_lm_labels(const int32_t *ids, const int32_t *mask, int n, int T, int32_t *labels);
vlp_tensor *vlp_vl_lm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *ids, vlp_tensor *mask,
                           vlp_tensor *labels);

/* ---- the pre-training graph: every enabled objective, weighted ----------------------------- */
typedef struct {
    int batch, text_len, n_patches, mim_masked;
    /* inputs (vlp_vl_pretrain_fill fills them) */
    vlp_tensor *pixels, *ids, *mask;
    vlp_tensor *itm_scores, *itm_labels;                   /* itm_scores: SINGLE only (zeros) */
    vlp_tensor *itm_exclude; /* itm_exclude_same_text (not SINGLE): [B, B] 0 / -1e4 added to the ITM scores */
    vlp_tensor *mlm_ids, *mlm_labels;                      /* mlm: labels [B*T], kept for inspection */
    vlp_tensor *mlm_rows, *mlm_row_labels;                 /* mlm: the labelled positions, [P] */
    vlp_tensor *mim_keep, *mim_drop, *mim_target, *mim_sel; /* mim */
    vlp_tensor *lm_labels;                                 /* lm */
    vlp_tensor *itc_targets, *img_queue, *txt_queue;       /* momentum / queue */
    vlp_tensor *mlm_soft_sel, *mlm_soft_w; /* MLM distillation: i32 [P] 1 on labelled rows; f32 [2, V]
                                              row weights (0, P / labelled) of the teacher's softmax */
    int queue_pos;                                         /* next queue row; -1 until filled */
    /* outputs (kept) */
    vlp_tensor *loss, *loss_itc, *loss_itm, *loss_mlm, *loss_mim, *loss_lm;
    vlp_tensor *neg_img, *neg_txt;
    vlp_tensor *mom_img, *mom_txt; /* the teacher's normalised ITC features [B, E] */
} vlp_vl_pretrain;
/* Declares the inputs and the weighted loss on g (build it with VLP_BUILD_TRAIN on p->loss).
 * teacher: the momentum model (vlp_vl_momentum_teacher) when cfg.momentum > 0, else NULL. */
int vlp_vl_pretrain_graph(vlp_graph *g, const vlp_vl *m, const vlp_vl *teacher, int batch, int text_len,
                          vlp_vl_pretrain *p);
/* Fills every input from a batch: pixels [B, 3, S, S] (normalised), ids / mask i32 [B, T];
 * masks drawn from seed (the queue, on first use, gets random unit vectors from it too).
 * is_cont: see vlp_mlm_mask. */
int vlp_vl_pretrain_fill(const vlp_vl *m, vlp_vl_pretrain *p, const float *pixels, const int32_t *ids,
                         const int32_t *mask, const uint8_t *is_cont, uint64_t seed);
/* After each optimiser step: pushes this step's teacher features into the queue, then moves
 * the teacher towards the model (t = momentum * t + (1 - momentum) * m). No-op without momentum. */
int vlp_vl_pretrain_after_step(vlp_vl_pretrain *p, vlp_vl *teacher, const vlp_vl *m);
/* A frozen copy of m (no gradients) to serve as the momentum teacher. */
vlp_vl *vlp_vl_momentum_teacher(const vlp_vl *m);

/* ---- generation (CAPTION) ------------------------------------------------------------------ */
typedef struct {
    int max_len, min_len; /* tokens generated, bos excluded */
    int beam;             /* 1 = greedy (unless sampling) */
    float length_penalty; /* beam score = sum log p / len^length_penalty */
    int sample;           /* nucleus sampling */
    float top_p, temperature;
    uint64_t seed;
} vlp_vl_gen_config;
void vlp_vl_gen_defaults(vlp_vl_gen_config *gc);

/* Key/value cache over `rows` sequences (images x beams) of up to max_len positions. */
typedef struct vlp_vl_kv vlp_vl_kv;
vlp_vl_kv *vlp_vl_kv_new(const vlp_vl *m, int rows, int max_len);
void vlp_vl_kv_free(vlp_vl_kv *kv);
/* Image tokens [n_img, N + 1, vision_width] (encode_image output); row r reads image row_img[r]
 * (NULL: row r reads image r). Resets every row to length 0. */
int vlp_vl_kv_set_images(vlp_vl_kv *kv, const float *img, int n_img, const int *row_img);
/* One position for every row: tokens [rows] -> logits [rows, vocab]; costs one step. logits
 * NULL: the position enters the cache but the vocabulary-wide head (most of a step) is skipped,
 * for prefix tokens whose prediction is not needed. */
int vlp_vl_kv_step(vlp_vl_kv *kv, const int32_t *tokens, float *logits);
/* Row r takes the history of row parent[r] (beam search). */
int vlp_vl_kv_reorder(vlp_vl_kv *kv, const int *parent);
int vlp_vl_kv_len(const vlp_vl_kv *kv);

/* Captions n_img images given as image tokens: out [n_img, gc->max_len] (eos included when
 * produced, then pad_id), lens [n_img]. */
int vlp_vl_generate(const vlp_vl *m, const float *img, int n_img, const vlp_vl_gen_config *gc, int32_t *out,
                    int *lens);
/* As vlp_vl_generate, each image's rows continuing from its own prefix: prefix [n_img, P] token
 * ids (the first usually bos_id; the rest condition the output, e.g. "[CLS] question [SEP]"),
 * P + gc->max_len <= max_text_len; prefix NULL means bos alone (P = 1). out holds the continuation
 * only. logp (optional) [n_img]: the summed log-probability of each output (eos included; after
 * the min_len mask; -inf when a beam search kept nothing). */
int vlp_vl_generate_prefix(const vlp_vl *m, const float *img, int n_img, const int32_t *prefix, int P,
                           const vlp_vl_gen_config *gc, int32_t *out, int *lens, float *logp);
/* Beam search for any beam size (vlp_vl_generate uses it for beam > 1 without sampling;
 * beam 1 gives the greedy captions). */
int vlp_vl_beam_search(const vlp_vl *m, const float *img, int n_img, const vlp_vl_gen_config *gc, int32_t *out,
                       int *lens);
/* Image tokens of n preprocessed images [n, 3, S, S] -> out [n, N + 1, vision_width]. */
int vlp_vl_image_features(const vlp_vl *m, const float *pixels, int n, float *out);
/* An image file as the model's input: decoded, resized and center-cropped to image_size,
 * normalised with the config's mean/std -> out [3, S, S]. The error names the file. Thread-safe. */
int vlp_vl_load_pixels(const vlp_vl *m, const char *path, float *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
