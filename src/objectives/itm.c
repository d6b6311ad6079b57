/* Image-text matching with in-batch hard negatives (ALBEF): for each text one negative
 * image, for each image one negative text, drawn inside the forward pass from the
 * current ITC similarities (vlp_sample_negatives: softmax over the other items, never
 * the positive). The B positive and 2B negative pairs go through the fusion encoder
 * together; the ITM head classifies the fused first token. */
#include "vlp_vl.h"

#include "core/internal.h"

/* x [B, ...] -> x[idx] [B, ...]; the rows are gathered as one embedding lookup so
 * gradients flow back to the chosen rows (f32) and masks gather the same way (i32). */
static vlp_tensor *gather(vlp_graph *g, vlp_tensor *x, vlp_tensor *idx) {
    if (!x || !idx) return NULL;
    int64_t B = x->shape[0], rest = x->numel / (B ? B : 1), s2[2] = {B, rest};
    vlp_tensor *flat = x->ndim == 2 ? x : vlp_reshape(g, x, 2, s2);
    vlp_tensor *r = vlp_embedding(g, idx, flat);
    return x->ndim == 2 ? r : vlp_reshape(g, r, x->ndim, x->shape);
}

static vlp_tensor *cat3(vlp_graph *g, vlp_tensor *a, vlp_tensor *b, vlp_tensor *c) {
    return vlp_concat(g, vlp_concat(g, a, b, 0), c, 0);
}

vlp_tensor *vlp_vl_itm_loss(vlp_graph *g, const vlp_vl *m, vlp_tensor *img, vlp_tensor *txt, vlp_tensor *mask,
                            vlp_tensor *scores, vlp_tensor *scores_t, vlp_tensor *labels, vlp_tensor **neg_img,
                            vlp_tensor **neg_txt) {
    if (!m || !img || !txt || !mask || !scores || !scores_t || !labels) {
        vlp_graph_fail(g, "vlp_vl_itm_loss: NULL argument");
        return NULL;
    }
    int64_t B = img->shape[0];
    if (B < 2 || txt->shape[0] != B || scores->ndim != 2 || scores->shape[0] != B || scores->shape[1] != B ||
        scores_t->ndim != 2 || scores_t->shape[0] != B || scores_t->shape[1] != B || labels->numel != 3 * B) {
        vlp_graph_fail(g, "vlp_vl_itm_loss: want a batch of at least 2 pairs, scores [%lld, %lld], labels [%lld]",
                       (long long)B, (long long)B, (long long)(3 * B));
        return NULL;
    }
    /* scores[i][j]: image i vs text j; row i draws a negative text for image i.
     * scores_t (its transpose) draws a negative image for each text. */
    /* ALBEF draws from softmax(sim / temperature): the ITC logits, not the raw cosines (whose
     * softmax over [-1, 1] is nearly uniform, so the negatives would not be hard) */
    vlp_tensor *nt = vlp_keep(vlp_sample_negatives_scaled(g, scores, m->logit_scale));
    vlp_tensor *ni = vlp_keep(vlp_sample_negatives_scaled(g, scores_t, m->logit_scale));
    if (neg_img) *neg_img = ni;
    if (neg_txt) *neg_txt = nt;
    vlp_tensor *imgs = cat3(g, img, gather(g, img, ni), img);
    vlp_tensor *txts = cat3(g, txt, txt, gather(g, txt, nt));
    vlp_tensor *masks = cat3(g, mask, mask, gather(g, mask, nt));
    vlp_tensor *fused = vlp_vl_fuse(g, m, imgs, txts, masks, NULL);
    return vlp_cross_entropy(g, vlp_vl_itm_logits(g, m, fused), labels, -100);
}
