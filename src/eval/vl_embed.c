/* A VL model's ITC heads as a dual encoder: images (ITC image feature of the encoded image) and
 * texts ([CLS] text [SEP] through the text encoder, its ITC feature) embedded separately, L2
 * normalised, one inference graph per side built once and replayed per batch. The zero-shot
 * task protocols of the CLIP dual encoder (downstream.c) run on it unchanged. */
#include "eval_internal.h"
#include "vl_embed.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

struct vl_itc_runner {
    const vlp_vl *m;
    vlp_tokenizer *tok;
    int batch, T, S, E;
    vlp_graph *gi, *gt;
    vlp_tensor *px, *ids, *mask, *oi, *ot;
    int32_t *mbuf;
};

vl_itc_runner *vl_itc_runner_new(const vlp_vl *m, vlp_tokenizer *tok, int batch) {
    if (!m || !tok || m->cfg.embed_dim <= 0 || !m->vis_proj) {
        vlp_set_error("%s", !m || !tok ? "vl_itc_runner_new: NULL argument"
                                       : "this model has no ITC heads (embed_dim 0) to embed images and texts with");
        return NULL;
    }
    vl_itc_runner *r = calloc(1, sizeof *r);
    if (!r) {
        vlp_set_error("out of memory");
        return NULL;
    }
    r->m = m, r->tok = tok, r->batch = batch > 0 ? batch : 64;
    r->T = m->cfg.max_text_len, r->S = m->cfg.image_size, r->E = m->cfg.embed_dim;
    return r;
}

void vl_itc_runner_free(vl_itc_runner *r) {
    if (!r) return;
    vlp_graph_free(r->gi);
    vlp_graph_free(r->gt);
    free(r->mbuf);
    free(r);
}

static int built(vlp_graph *g, vlp_tensor *out, const char *side) {
    if (!out || vlp_graph_error(g)) {
        vlp_set_error("ITC %s features: %s", side, vlp_graph_error(g) ? vlp_graph_error(g) : "cannot build the graph");
        return VLP_ERR_ARG;
    }
    return vlp_graph_build(g, out, VLP_BUILD_INFERENCE);
}

static int image_graph(vl_itc_runner *r) {
    if (r->gi) return VLP_OK;
    if (!(r->gi = vlp_graph_new())) return VLP_ERR_NOMEM;
    int64_t sp[4] = {r->batch, 3, r->S, r->S};
    r->px = vlp_input(r->gi, "pixels", VLP_F32, 4, sp);
    vlp_tensor *enc = vlp_vl_encode_image(r->gi, r->m, vlp_vl_embed_image(r->gi, r->m, r->px, NULL, NULL));
    r->oi = vlp_l2norm(r->gi, vlp_vl_itc_image(r->gi, r->m, enc), 1e-12f);
    return built(r->gi, r->oi, "image");
}

static int text_graph(vl_itc_runner *r) {
    if (r->gt) return VLP_OK;
    if (!(r->gt = vlp_graph_new()) || !(r->mbuf = malloc((size_t)r->batch * r->T * sizeof *r->mbuf)))
        return VLP_ERR_NOMEM;
    int64_t st[2] = {r->batch, r->T};
    r->ids = vlp_input(r->gt, "ids", VLP_I32, 2, st);
    r->mask = vlp_input(r->gt, "mask", VLP_I32, 2, st);
    vlp_tensor *enc = vlp_vl_encode_text(r->gt, r->m, vlp_vl_embed_text(r->gt, r->m, r->ids), r->mask);
    r->ot = vlp_l2norm(r->gt, vlp_vl_itc_text(r->gt, r->m, enc), 1e-12f);
    return built(r->gt, r->ot, "text");
}

int vl_itc_embed_pixels(vl_itc_runner *r, const float *px, int n, float *out) {
    int rc = image_graph(r);
    size_t per = (size_t)3 * r->S * r->S;
    for (int i0 = 0; !rc && i0 < n; i0 += r->batch) {
        int k = n - i0 < r->batch ? n - i0 : r->batch;
        memcpy(r->px->data, px + per * i0, per * k * sizeof(float));
        if (k < r->batch) memset((float *)r->px->data + per * k, 0, per * (size_t)(r->batch - k) * sizeof(float));
        if (!(rc = vlp_graph_forward(r->gi)))
            memcpy(out + (size_t)i0 * r->E, r->oi->data, (size_t)k * r->E * sizeof(float));
    }
    return rc;
}

int vl_itc_embed_texts(vl_itc_runner *r, const char *const *texts, int n, float *out) {
    int rc = text_graph(r);
    for (int i0 = 0; !rc && i0 < n; i0 += r->batch) {
        int k = n - i0 < r->batch ? n - i0 : r->batch;
        int32_t *ids = r->ids->data;
        memset(ids, 0, (size_t)r->batch * r->T * sizeof *ids);
        memset(r->mbuf, 0, (size_t)r->batch * r->T * sizeof *r->mbuf);
        for (int j = 0; j < r->batch; j++) { /* pad rows: one [CLS] [SEP] text, never read back */
            int32_t *row = ids + (size_t)j * r->T, *mrow = r->mbuf + (size_t)j * r->T;
            if (vlp_tokenizer_encode_pair(r->tok, j < k ? texts[i0 + j] : "", NULL, r->T, row, NULL, mrow) < 0) {
                rc = VLP_ERR_ARG;
                break;
            }
        }
        /* a graph that never reads the mask (no padded-key attention) leaves it unallocated */
        if (!rc && r->mask->data) memcpy(r->mask->data, r->mbuf, (size_t)r->batch * r->T * sizeof *r->mbuf);
        if (!rc && !(rc = vlp_graph_forward(r->gt)))
            memcpy(out + (size_t)i0 * r->E, r->ot->data, (size_t)k * r->E * sizeof(float));
    }
    return rc;
}

float vl_itc_scale(const vl_itc_runner *r) {
    return r->m->logit_scale ? expf(((const float *)r->m->logit_scale->data)[0]) : 1.0f;
}
