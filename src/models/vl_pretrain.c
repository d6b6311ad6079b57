/* The pre-training graph of a VL model: every objective with a weight > 0 in the config,
 * summed with those weights, and the host-side filling of its inputs (masks drawn from a
 * seed, so a step is reproducible). */
#include "vlp_vl.h"

#include "core/internal.h"

#include <math.h>

static void vlp_l2_rows(float *x, int64_t rows, int64_t dim) {
    for (int64_t r = 0; r < rows; r++) {
        double n = 0;
        for (int64_t i = 0; i < dim; i++) n += (double)x[r * dim + i] * x[r * dim + i];
        float inv = n > 0 ? (float)(1.0 / sqrt(n)) : 0.0f;
        for (int64_t i = 0; i < dim; i++) x[r * dim + i] *= inv;
    }
}

static vlp_tensor *in(vlp_graph *g, const char *name, vlp_dtype dt, int nd, int64_t a, int64_t b, int64_t c,
                      int64_t d) {
    int64_t s[4] = {a, b, c, d};
    return vlp_input(g, name, dt, nd, s);
}

static vlp_tensor *weighted(vlp_graph *g, vlp_tensor *total, vlp_tensor *l, float w) {
    if (!l) return total;
    vlp_tensor *t = w == 1.0f ? l : vlp_scale(g, l, w);
    return total ? vlp_add(g, total, t) : t;
}

/* ITC against the momentum teacher: positives and (queue_size) extra negatives are teacher
 * features; targets (1 - a) one-hot + a softmax(teacher sims). Temperature 0.07. *t_fimg gets
 * the teacher's image states as its fusion consumes them (for MLM distillation). */
static vlp_tensor *itc_momentum(vlp_graph *g, const vlp_vl *m, const vlp_vl *teacher, vlp_vl_pretrain *p,
                                vlp_tensor *fi, vlp_tensor *ft, vlp_tensor **t_fimg) {
    const vlp_vl_config *c = &m->cfg;
    int64_t B = p->batch, E = c->embed_dim, K = c->queue_size;
    const float inv_t = 1.0f / 0.07f;
    vlp_tensor *tie = vlp_vl_embed_image(g, teacher, p->pixels, NULL, NULL), *ti = vlp_vl_encode_image(g, teacher, tie);
    *t_fimg = vlp_vl_fuses_embeddings(teacher) ? tie : ti;
    vlp_tensor *tt = vlp_vl_encode_text(g, teacher, vlp_vl_embed_text(g, teacher, p->ids), p->mask);
    vlp_tensor *fim = NULL, *ftm = NULL;
    if (vlp_vl_itc_features(g, teacher, ti, tt, &fim, &ftm)) return NULL;
    p->mom_img = fim = vlp_keep(vlp_l2norm(g, fim, 1e-12f));
    p->mom_txt = ftm = vlp_keep(vlp_l2norm(g, ftm, 1e-12f));
    vlp_tensor *all_i = fim, *all_t = ftm;
    if (K > 0) {
        int64_t s[2] = {K, E};
        p->img_queue = vlp_input(g, "img_queue", VLP_F32, 2, s);
        p->txt_queue = vlp_input(g, "txt_queue", VLP_F32, 2, s);
        all_i = vlp_concat(g, fim, p->img_queue, 0);
        all_t = vlp_concat(g, ftm, p->txt_queue, 0);
    }
    int64_t sb[1] = {B};
    p->itc_targets = vlp_input(g, "itc_targets", VLP_I32, 1, sb);
    vlp_tensor *a = vlp_l2norm(g, fi, 1e-12f), *b = vlp_l2norm(g, ft, 1e-12f);
    vlp_tensor *s_i2t = vlp_scale(g, vlp_matmul(g, a, all_t, 0, 1), inv_t);
    vlp_tensor *s_t2i = vlp_scale(g, vlp_matmul(g, b, all_i, 0, 1), inv_t);
    vlp_tensor *l1 = vlp_cross_entropy(g, s_i2t, p->itc_targets, -100);
    vlp_tensor *l2 = vlp_cross_entropy(g, s_t2i, p->itc_targets, -100);
    float al = c->distill_alpha;
    if (al > 0) {
        vlp_tensor *q1 = vlp_softmax(g, vlp_scale(g, vlp_matmul(g, fim, all_t, 0, 1), inv_t));
        vlp_tensor *q2 = vlp_softmax(g, vlp_scale(g, vlp_matmul(g, ftm, all_i, 0, 1), inv_t));
        l1 = vlp_add(g, vlp_scale(g, l1, 1 - al), vlp_scale(g, vlp_soft_cross_entropy(g, s_i2t, q1), al));
        l2 = vlp_add(g, vlp_scale(g, l2, 1 - al), vlp_scale(g, vlp_soft_cross_entropy(g, s_t2i, q2), al));
    }
    return vlp_scale(g, vlp_add(g, l1, l2), 0.5f);
}

/* ALBEF's distilled MLM: (1 - a) CE(labels) + a softCE(teacher's softmax) over the labelled
 * rows. The teacher fuses its own image states (t_fimg) with the same masked text. The
 * padding rows of mlm_rows get zero soft targets and the labelled ones weight P / labelled
 * (mlm_soft_w, filled per step), so the soft term is a mean over the labelled rows. */
static vlp_tensor *mlm_distill(vlp_graph *g, const vlp_vl *m, const vlp_vl *teacher, vlp_vl_pretrain *p,
                               vlp_tensor *fused, vlp_tensor *t_fimg) {
    const vlp_vl_config *c = &m->cfg;
    int64_t P = p->mlm_rows->numel, s2[2] = {(int64_t)p->batch * p->text_len, c->width}, sw[2] = {2, c->vocab_size};
    vlp_tensor *logits = vlp_vl_lm_logits(g, m, vlp_embedding(g, p->mlm_rows, vlp_reshape(g, fused, 2, s2)));
    vlp_tensor *ce = vlp_cross_entropy(g, logits, p->mlm_row_labels, -100);
    vlp_tensor *tm = vlp_vl_embed_text(g, teacher, p->mlm_ids);
    if (c->family == VLP_VL_DUAL) tm = vlp_vl_encode_text(g, teacher, tm, p->mask);
    vlp_tensor *tf = vlp_vl_fuse(g, teacher, t_fimg, tm, p->mask, NULL);
    vlp_tensor *tl = vlp_vl_lm_logits(g, teacher, vlp_embedding(g, p->mlm_rows, vlp_reshape(g, tf, 2, s2)));
    p->mlm_soft_sel = vlp_input(g, "mlm_soft_sel", VLP_I32, 1, &P);
    p->mlm_soft_w = vlp_input(g, "mlm_soft_w", VLP_F32, 2, sw);
    vlp_tensor *q = vlp_mul(g, vlp_softmax(g, tl), vlp_embedding(g, p->mlm_soft_sel, p->mlm_soft_w));
    float a = c->distill_alpha;
    return vlp_add(g, vlp_scale(g, ce, 1 - a), vlp_scale(g, vlp_soft_cross_entropy(g, logits, q), a));
}

int vlp_vl_pretrain_graph(vlp_graph *g, const vlp_vl *m, const vlp_vl *teacher, int B, int T, vlp_vl_pretrain *p) {
    if (!g || !m || !p || B < 1 || T < 2) {
        vlp_set_error("vlp_vl_pretrain_graph: bad arguments");
        return VLP_ERR_ARG;
    }
    const vlp_vl_config *c = &m->cfg;
    memset(p, 0, sizeof *p);
    p->queue_pos = -1;
    if (c->momentum > 0 && (!teacher || memcmp(&teacher->cfg, c, sizeof *c))) {
        vlp_set_error("vlp_vl_pretrain_graph: momentum %g needs its teacher (vlp_vl_momentum_teacher of the model)",
                      (double)c->momentum);
        return VLP_ERR_ARG;
    }
    if (c->w_itm > 0 && B < 2) {
        vlp_set_error("vlp_vl_pretrain_graph: ITM needs a batch of at least 2 (got %d)", B);
        return VLP_ERR_ARG;
    }
    if (T > c->max_text_len) {
        vlp_set_error("vlp_vl_pretrain_graph: text length %d is over max_text_len %d", T, c->max_text_len);
        return VLP_ERR_ARG;
    }
    int fam = c->family, S = c->image_size, P = c->patch_size, G = S / P, N = G * G;
    int IW = fam == VLP_VL_DUAL || fam == VLP_VL_CAPTION ? c->vision_width : c->width;
    p->batch = B;
    p->text_len = T;
    p->n_patches = N;
    p->pixels = in(g, "pixels", VLP_F32, 4, B, 3, S, S);
    p->ids = in(g, "ids", VLP_I32, 2, B, T, 0, 0);
    p->mask = in(g, "mask", VLP_I32, 2, B, T, 0, 0);
    vlp_tensor *img_emb = vlp_vl_embed_image(g, m, p->pixels, NULL, NULL);
    vlp_tensor *txt_emb = vlp_vl_embed_text(g, m, p->ids);
    int need_uni = c->w_itc > 0 || (c->w_itm > 0 && fam != VLP_VL_SINGLE);
    int vit = fam == VLP_VL_DUAL || fam == VLP_VL_CAPTION;
    vlp_tensor *img_enc = NULL, *txt_enc = NULL;
    if (need_uni || vit) img_enc = vlp_vl_encode_image(g, m, img_emb);
    if (need_uni || fam == VLP_VL_DUAL) txt_enc = vlp_vl_encode_text(g, m, txt_emb, p->mask);
    int emb = fam == VLP_VL_SINGLE || fam == VLP_VL_MOME;
    vlp_tensor *fimg = emb ? img_emb : img_enc, *ftxt = emb ? txt_emb : txt_enc;
    vlp_tensor *total = NULL, *fi = NULL, *ft = NULL, *t_fimg = NULL;
    if (need_uni && vlp_vl_itc_features(g, m, img_enc, txt_enc, &fi, &ft)) goto out;
    if (c->w_itc > 0) {
        p->loss_itc = vlp_keep(c->momentum > 0 ? itc_momentum(g, m, teacher, p, fi, ft, &t_fimg)
                                               : vlp_itc_loss(g, fi, ft, m->logit_scale, NULL, VLP_ITC_CLIP));
        total = weighted(g, total, p->loss_itc, c->w_itc);
    }
    if (c->w_itm > 0) {
        vlp_tensor *s, *st;
        if (fam == VLP_VL_SINGLE) { /* no unimodal encoders: uniform negatives */
            p->itm_scores = s = st = in(g, "itm_scores", VLP_F32, 2, B, B, 0, 0);
        } else {
            vlp_tensor *a = vlp_l2norm(g, fi, 1e-12f), *b = vlp_l2norm(g, ft, 1e-12f);
            s = vlp_matmul(g, a, b, 0, 1);
            st = vlp_matmul(g, b, a, 0, 1);
            if (c->itm_exclude_same_text) { /* same-text pairs: symmetric, so one matrix serves both */
                p->itm_exclude = in(g, "itm_exclude", VLP_F32, 2, B, B, 0, 0);
                s = vlp_add(g, s, p->itm_exclude);
                st = vlp_add(g, st, p->itm_exclude);
            }
        }
        p->itm_labels = in(g, "itm_labels", VLP_I32, 1, 3 * B, 0, 0, 0);
        p->loss_itm =
            vlp_keep(vlp_vl_itm_loss(g, m, fimg, ftxt, p->mask, s, st, p->itm_labels, &p->neg_img, &p->neg_txt));
        total = weighted(g, total, p->loss_itm, c->w_itm);
    }
    if (c->w_mlm > 0) {
        p->mlm_ids = in(g, "mlm_ids", VLP_I32, 2, B, T, 0, 0);
        p->mlm_labels = vlp_keep(in(g, "mlm_labels", VLP_I32, 1, (int64_t)B * T, 0, 0, 0));
        /* room for twice the expected share of labelled positions plus the one per row that is
         * always drawn: with BERT's 15%, a third of the positions (a binomial draw beyond twice
         * its mean over thousands of positions does not happen; vlp_vl_pretrain_fill fails if it
         * does). Whole words have no such bound (one word may be many tokens): every position. */
        int64_t P = (int64_t)ceil(2.0 * c->mlm_prob * (double)B * T) + B;
        if (c->mlm_whole_word || P > (int64_t)B * T) P = (int64_t)B * T;
        p->mlm_rows = in(g, "mlm_rows", VLP_I32, 1, P, 0, 0, 0);
        p->mlm_row_labels = in(g, "mlm_row_labels", VLP_I32, 1, P, 0, 0, 0);
        vlp_tensor *mt = vlp_vl_embed_text(g, m, p->mlm_ids);
        if (fam == VLP_VL_DUAL) mt = vlp_vl_encode_text(g, m, mt, p->mask);
        vlp_tensor *fused = vlp_vl_fuse(g, m, fimg, mt, p->mask, NULL);
        p->loss_mlm = vlp_keep(t_fimg && c->distill_alpha > 0
                                   ? mlm_distill(g, m, teacher, p, fused, t_fimg)
                                   : vlp_vl_mlm_loss(g, m, fused, p->mlm_rows, p->mlm_row_labels));
        total = weighted(g, total, p->loss_mlm, c->w_mlm);
    }
    if (c->w_mim > 0) {
        int k = (int)lroundf(c->mim_ratio * (float)N);
        p->mim_masked = k < 1 ? 1 : k > N ? N : k;
        p->mim_keep = in(g, "mim_keep", VLP_F32, 3, B, N, IW, 0);
        p->mim_drop = in(g, "mim_drop", VLP_F32, 3, B, N, IW, 0);
        p->mim_target = in(g, "mim_target", VLP_F32, 3, B, N, 3 * P * P, 0);
        p->mim_sel = in(g, "mim_sel", VLP_F32, 3, B, N, 3 * P * P, 0);
        vlp_tensor *me = vlp_vl_embed_image(g, m, p->pixels, p->mim_keep, p->mim_drop), *io = NULL;
        if (emb) {
            vlp_vl_fuse(g, m, me, ftxt, p->mask, &io);
        } else {
            io = vlp_vl_encode_image(g, m, me);
            if (c->co_attention) vlp_vl_fuse(g, m, io, ftxt, p->mask, &io);
        }
        vlp_tensor *patches = io ? vlp_slice(g, io, 1, 1, N) : NULL;
        p->loss_mim = vlp_keep(vlp_vl_mim_loss(g, m, patches, p->mim_target, p->mim_sel, p->mim_masked));
        total = weighted(g, total, p->loss_mim, c->w_mim);
    }
    if (c->w_lm > 0) {
        p->lm_labels = in(g, "lm_labels", VLP_I32, 1, (int64_t)B * T, 0, 0, 0);
        /* CoCa (captioning with ITC): the multimodal layers continue from the ITC pass's unimodal
         * states instead of running the unimodal layers a second time */
        vlp_tensor *lg = fam == VLP_VL_CAPTION && txt_enc ? vlp_vl_caption_decode(g, m, img_enc, txt_enc, p->mask)
                                                          : NULL;
        int64_t s2[2] = {(int64_t)B * T, c->vocab_size};
        p->loss_lm = vlp_keep(lg ? vlp_cross_entropy(g, vlp_reshape(g, lg, 2, s2), p->lm_labels, -100)
                                 : vlp_vl_lm_loss(g, m, img_enc, p->ids, p->mask, p->lm_labels));
        total = weighted(g, total, p->loss_lm, c->w_lm);
    }
    p->loss = total;
out:
    if (vlp_graph_error(g) || !p->loss) {
        vlp_set_error("%s", vlp_graph_error(g) ? vlp_graph_error(g) : "vlp_vl_pretrain_graph: no loss");
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* itm_exclude_same_text: excl[i][j] = -1e4 where text j (ids and mask rows) equals text i,
 * j != i, so the sampler (softmax of the scaled scores) never draws a duplicate caption as
 * the negative; finite, so nothing becomes NaN. A row whose every other text is a duplicate
 * stays all 0: the old draw, rather than a negative that is certainly a match anyway. */
static void exclude_same_text(float *excl, const int32_t *ids, const int32_t *mask, int B, int T) {
    memset(excl, 0, (size_t)B * B * sizeof(float));
    for (int i = 0; i < B; i++) {
        int n = 0;
        for (int j = 0; j < B; j++)
            if (j != i && !memcmp(ids + (size_t)i * T, ids + (size_t)j * T, (size_t)T * sizeof(int32_t)) &&
                !memcmp(mask + (size_t)i * T, mask + (size_t)j * T, (size_t)T * sizeof(int32_t))) {
                excl[(size_t)i * B + j] = -1e4f;
                n++;
            }
        if (n == B - 1) memset(excl + (size_t)i * B, 0, (size_t)B * sizeof(float));
    }
}

int vlp_vl_pretrain_fill(const vlp_vl *m, vlp_vl_pretrain *p, const float *pixels, const int32_t *ids,
                         const int32_t *mask, const uint8_t *is_cont, uint64_t seed) {
    if (!m || !p || !p->pixels || !pixels || !ids || !mask || !p->pixels->data) {
        vlp_set_error("vlp_vl_pretrain_fill: NULL argument or graph not built");
        return VLP_ERR_ARG;
    }
    const vlp_vl_config *c = &m->cfg;
    int B = p->batch, T = p->text_len;
    memcpy(p->pixels->data, pixels, (size_t)p->pixels->numel * sizeof(float));
    memcpy(p->ids->data, ids, (size_t)B * T * sizeof(int32_t));
    memcpy(p->mask->data, mask, (size_t)B * T * sizeof(int32_t));
    if (p->itm_scores) memset(p->itm_scores->data, 0, (size_t)B * B * sizeof(float));
    /* single_stream: its uniform scores take the exclusion directly */
    float *excl = p->itm_exclude                                ? p->itm_exclude->data
                  : c->itm_exclude_same_text && p->itm_scores ? p->itm_scores->data
                                                              : NULL;
    if (excl) exclude_same_text(excl, ids, mask, B, T);
    if (p->itm_labels)
        for (int i = 0; i < 3 * B; i++) ((int32_t *)p->itm_labels->data)[i] = i < B;
    if (p->mlm_ids) {
        int mx = c->pad_id;
        int sp[5] = {c->cls_id, c->sep_id, c->mask_id, c->bos_id, c->eos_id};
        for (int i = 0; i < 5; i++) mx = sp[i] > mx ? sp[i] : mx;
        /* BERT's vocabulary: random replacements from the first ordinary token on */
        int first = c->vocab_size >= 30000 && mx < 999 ? 999 : mx + 1;
        if (vlp_mlm_mask(c, ids, mask, B, T, is_cont, first, seed ^ 0x4D4C4Dull, p->mlm_ids->data,
                         p->mlm_labels->data) < 0)
            return VLP_ERR_ARG;
        int dropped = vlp_mlm_compact(p->mlm_labels->data, (int64_t)B * T, p->mlm_rows->data,
                                      p->mlm_row_labels->data, (int)p->mlm_rows->numel);
        if (dropped) {
            vlp_set_error("vlp_vl_pretrain_fill: MLM drew %d more labelled positions than the %lld rows the "
                          "graph holds (mlm_prob %.3f)", dropped, (long long)p->mlm_rows->numel, (double)c->mlm_prob);
            return VLP_ERR_ARG;
        }
        if (p->mlm_soft_sel) { /* distillation: weights that make the soft term a mean over labelled rows */
            int64_t P = p->mlm_rows->numel, V = p->mlm_soft_w->shape[1], nl = 0;
            const int32_t *rl = p->mlm_row_labels->data;
            for (int64_t i = 0; i < P; i++) nl += rl[i] != -100;
            for (int64_t i = 0; i < P; i++) ((int32_t *)p->mlm_soft_sel->data)[i] = rl[i] != -100;
            float *w = p->mlm_soft_w->data, wl = nl ? (float)((double)P / (double)nl) : 0.0f;
            for (int64_t v = 0; v < V; v++) w[v] = 0.0f, w[V + v] = wl;
        }
    }
    if (p->mim_keep) {
        int N = p->n_patches, IW = (int)p->mim_keep->shape[2], D = (int)p->mim_target->shape[2];
        uint8_t *mk = malloc((size_t)B * N);
        if (!mk) {
            vlp_set_error("out of memory");
            return VLP_ERR_NOMEM;
        }
        if (vlp_mim_mask(B, N, c->mim_ratio, seed ^ 0x4D494Dull, mk) < 0) {
            free(mk);
            return VLP_ERR_ARG;
        }
        float *keep = p->mim_keep->data, *drop = p->mim_drop->data, *tg = p->mim_target->data,
              *sel = p->mim_sel->data;
        vlp_mim_targets(pixels, B, c->image_size, c->patch_size, tg);
        for (int64_t i = 0; i < (int64_t)B * N; i++) {
            for (int k = 0; k < IW; k++) {
                keep[i * IW + k] = mk[i] ? 0.0f : 1.0f;
                drop[i * IW + k] = mk[i] ? 1.0f : 0.0f;
            }
            for (int k = 0; k < D; k++) {
                sel[i * D + k] = mk[i] ? 1.0f : 0.0f;
                if (!mk[i]) tg[i * D + k] = 0.0f;
            }
        }
        free(mk);
    }
    if (p->lm_labels) vlp_lm_labels(ids, mask, B, T, p->lm_labels->data);
    if (p->itc_targets)
        for (int i = 0; i < B; i++) ((int32_t *)p->itc_targets->data)[i] = i;
    if (p->img_queue && p->queue_pos < 0) { /* random unit vectors until real features arrive (ALBEF) */
        int64_t K = p->img_queue->shape[0], E = p->img_queue->shape[1];
        for (int q = 0; q < 2; q++) {
            float *d = (q ? p->txt_queue : p->img_queue)->data;
            uint64_t key = vlp_mix64(seed ^ (0x51554555ull + (uint64_t)q));
            for (int64_t i = 0; i < K * E; i++) {
                /* Box-Muller normals: unit vectors uniform on the sphere */
                float u1 = vlp_u01(key, 2 * (uint64_t)i) + 1e-7f, u2 = vlp_u01(key, 2 * (uint64_t)i + 1);
                d[i] = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
            }
            vlp_l2_rows(d, K, E);
        }
        p->queue_pos = 0;
    }
    return VLP_OK;
}

int vlp_vl_pretrain_after_step(vlp_vl_pretrain *p, vlp_vl *teacher, const vlp_vl *m) {
    if (!p || !m) {
        vlp_set_error("vlp_vl_pretrain_after_step: NULL argument");
        return VLP_ERR_ARG;
    }
    const vlp_vl_config *c = &m->cfg;
    if (!(c->momentum > 0)) return VLP_OK;
    if (!teacher || vlp_params_numel(teacher->params) != vlp_params_numel(m->params)) {
        vlp_set_error("vlp_vl_pretrain_after_step: momentum needs the model's teacher");
        return VLP_ERR_ARG;
    }
    if (p->img_queue && p->mom_img && p->queue_pos >= 0) {
        int64_t K = p->img_queue->shape[0], E = p->img_queue->shape[1];
        for (int64_t b = 0; b < p->batch; b++) {
            int64_t row = (p->queue_pos + b) % K;
            memcpy((float *)p->img_queue->data + row * E, (float *)p->mom_img->data + b * E, (size_t)E * sizeof(float));
            memcpy((float *)p->txt_queue->data + row * E, (float *)p->mom_txt->data + b * E, (size_t)E * sizeof(float));
        }
        p->queue_pos = (int)((p->queue_pos + p->batch) % K);
    }
    float mo = c->momentum, *t = vlp_params_data(teacher->params);
    const float *s = vlp_params_data(m->params);
    int64_t n = vlp_params_numel(m->params);
    for (int64_t i = 0; i < n; i++) t[i] = mo * t[i] + (1.0f - mo) * s[i];
    return VLP_OK;
}
