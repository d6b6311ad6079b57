/* PyTorch parity of whole fusion models, forward and backward: a tiny ALBEF (dual_stream: ViT,
 * post-LN BERT text layers, then non-causal BERT fusion layers with cross-attention to the image
 * tokens over right-padded text) and a tiny VLMo (mome: shared self-attention, FFN experts routed
 * by modality, the vision-language expert in the top layers). Fixtures come from
 * tests/tools/gen_albef_fixture.py and gen_vlmo_fixture.py (float64 PyTorch from the float32
 * weights); this test never runs PyTorch.
 *
 * Each runs the pre-training composition of vlp_vl_pretrain_graph (ITC on the unimodal encoders,
 * ITM with vlp_vl_itm_loss on ALBEF's 3B pairs, MLM through vlp_vl_mlm_loss on compacted rows)
 * with the ITM negatives made deterministic (-inf scores everywhere but the chosen pair), and
 * compares the unimodal encoders, ITC features, ITM logits, the MLM pass's fused states, the
 * three losses and the gradient of itc + itm + mlm for every parameter and for the pixels. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "vlp.h"
#include "vlp_safetensors.h"
#include "vlp_vl.h"
#include "test_ref.h"

/* outputs and gradients: max |vlp - ref| / max |ref| (floored) per tensor */
#define TOL 1e-4

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *npy(const char *fx, const char *name, vlp_dtype want, int64_t *shape, int64_t *numel) {
    char dir[256], file[128];
    snprintf(dir, sizeof dir, FIXTURE("%s"), fx);
    snprintf(file, sizeof file, "%s.npy", name);
    return ref_npy(dir, file, want, shape, numel);
}

/* parameters these objectives do not use (MIM's), so absent from the fixtures */
static int unused_param(const char *name) {
    return !strcmp(name, "vision.mask_token") || !strncmp(name, "mim_head", 8);
}

enum { R_IMG, R_TXT, R_FUSED, R_ITM, R_FI, R_FT, R_LOSS, NREF };
static const char *ref_names[NREF] = {"img_enc", "txt_enc", "fused", "itm_logits", "img_feat", "txt_feat", "losses"};

static void test_fixture(const char *fx) {
    double t0 = now();
    char path[512];
    vlp_safetensors *st, *gs;
    snprintf(path, sizeof path, FIXTURE("%s"), fx);
    vlp_vl *m = ref_open_vl(path, &st, &gs);
    vlp_vl_config c = {0};
    if (m) c = m->cfg;
    int64_t spx[4], sid[4], nrow = 0;
    float *px = npy(fx, "pixels", VLP_F32, spx, NULL);
    int32_t *idv = npy(fx, "ids", VLP_I32, sid, NULL), *mv = npy(fx, "mask", VLP_I32, NULL, NULL),
            *mlmv = npy(fx, "mlm_ids", VLP_I32, NULL, NULL), *rowv = npy(fx, "mlm_rows", VLP_I32, NULL, &nrow),
            *labv = npy(fx, "mlm_labels", VLP_I32, NULL, NULL), *nimg = npy(fx, "neg_img", VLP_I32, NULL, NULL),
            *ntxt = npy(fx, "neg_txt", VLP_I32, NULL, NULL);
    float *ref[NREF] = {0};
    int64_t nref[NREF];
    int ok = m && st && gs && px && idv && mv && mlmv && rowv && labv && nimg && ntxt;
    for (int i = 0; i < NREF; i++) ok &= (ref[i] = npy(fx, ref_names[i], VLP_F32, NULL, &nref[i])) != NULL;
    vlp_graph *g = NULL;
    if (!ok) {
        CHECK(0, "%s fixture: %s", fx, vlp_last_error());
        goto out;
    }
    /* every fixture tensor fills a model tensor; every used model tensor is in the fixture */
    int loaded = 0, missing = 0;
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        int k = vlp_st_find(st, t->name);
        if (k < 0) {
            if (!unused_param(t->name)) {
                CHECK(0, "%s: parameter %s is not in the fixture", fx, t->name);
                missing++;
            }
            continue;
        }
        loaded += vlp_st_read_f32(st, k, (float *)t->data, t->numel) == 0;
    }
    CHECK(loaded == vlp_st_count(st) && !missing, "%s: %d of %d fixture tensors loaded, %d missing: %s", fx, loaded,
          vlp_st_count(st), missing, vlp_last_error());
    int B = (int)sid[0], T = (int)sid[1], P = (int)nrow, S = c.image_size;
    g = vlp_graph_new();
    int64_t s4[4] = {B, 3, S, S}, s2[2] = {B, T}, sbb[2] = {B, B}, sp[1] = {P}, s3b[1] = {3 * B};
    vlp_tensor *gpx = vlp_input_grad(g, "pixels", 4, s4), *ids = vlp_input(g, "ids", VLP_I32, 2, s2),
               *mask = vlp_input(g, "mask", VLP_I32, 2, s2), *mids = vlp_input(g, "mlm_ids", VLP_I32, 2, s2),
               *rows = vlp_input(g, "mlm_rows", VLP_I32, 1, sp), *labs = vlp_input(g, "mlm_labels", VLP_I32, 1, sp),
               *sc = vlp_input(g, "scores", VLP_F32, 2, sbb), *sct = vlp_input(g, "scores_t", VLP_F32, 2, sbb),
               *itm_lab = vlp_input(g, "itm_labels", VLP_I32, 1, s3b);
    /* as vlp_vl_pretrain_graph composes it */
    vlp_tensor *ie = vlp_vl_embed_image(g, m, gpx, NULL, NULL), *te = vlp_vl_embed_text(g, m, ids);
    vlp_tensor *ienc = vlp_keep(vlp_vl_encode_image(g, m, ie)), *tenc = vlp_keep(vlp_vl_encode_text(g, m, te, mask));
    vlp_tensor *fi = NULL, *ft = NULL;
    vlp_vl_itc_features(g, m, ienc, tenc, &fi, &ft);
    vlp_keep(fi), vlp_keep(ft);
    vlp_tensor *itc = vlp_keep(vlp_itc_loss(g, fi, ft, m->logit_scale, NULL, VLP_ITC_CLIP));
    int emb = vlp_vl_fuses_embeddings(m);
    vlp_tensor *fimg = emb ? ie : ienc, *ftxt = emb ? te : tenc, *ni = NULL, *nt = NULL;
    vlp_tensor *itm = vlp_keep(vlp_vl_itm_loss(g, m, fimg, ftxt, mask, sc, sct, itm_lab, &ni, &nt));
    /* the ITM logits [3B, 2]: the cross-entropy's input */
    vlp_tensor *itm_lg = itm ? vlp_keep(itm->src[0]) : NULL;
    CHECK(itm_lg && itm_lg->ndim == 2 && itm_lg->shape[0] == 3 * B && itm_lg->shape[1] == 2,
          "%s: the ITM loss reads logits [3B, 2]", fx);
    vlp_tensor *mt = vlp_vl_embed_text(g, m, mids);
    if (!emb) mt = vlp_vl_encode_text(g, m, mt, mask);
    vlp_tensor *fused = vlp_keep(vlp_vl_fuse(g, m, fimg, mt, mask, NULL));
    vlp_tensor *mlm = vlp_keep(vlp_vl_mlm_loss(g, m, fused, rows, labs));
    vlp_tensor *loss = vlp_add(g, vlp_add(g, itc, itm), mlm);
    int rc = vlp_graph_error(g) || !loss || !itm_lg ? -1 : vlp_graph_build(g, loss, VLP_BUILD_TRAIN);
    CHECK(rc == 0, "%s: graph: %s", fx, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    if (rc) goto out;
    memcpy(gpx->data, px, (size_t)gpx->numel * sizeof(float));
    memcpy(ids->data, idv, (size_t)B * T * sizeof(int32_t));
    memcpy(mask->data, mv, (size_t)B * T * sizeof(int32_t));
    memcpy(mids->data, mlmv, (size_t)B * T * sizeof(int32_t));
    memcpy(rows->data, rowv, (size_t)P * sizeof(int32_t));
    memcpy(labs->data, labv, (size_t)P * sizeof(int32_t));
    /* the fixture's negatives: the only finite score of each row (the diagonal is never drawn) */
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            ((float *)sc->data)[i * B + j] = j == ntxt[i] ? 0.0f : -INFINITY;
            ((float *)sct->data)[i * B + j] = j == nimg[i] ? 0.0f : -INFINITY;
        }
    for (int i = 0; i < 3 * B; i++) ((int32_t *)itm_lab->data)[i] = i < B;
    vlp_params_zero_grad(m->params);
    CHECK(vlp_graph_forward(g) == 0 && vlp_graph_backward(g, NULL) == 0, "%s: forward/backward: %s", fx,
          vlp_last_error());
    int same_neg = 1;
    for (int i = 0; i < B; i++) same_neg &= ((int32_t *)ni->data)[i] == nimg[i] && ((int32_t *)nt->data)[i] == ntxt[i];
    CHECK(same_neg, "%s: ITM drew the fixture's negatives", fx);
    /* outputs */
    vlp_tensor *out[R_LOSS] = {ienc, tenc, fused, itm_lg, fi, ft};
    double e_out[R_LOSS];
    for (int i = 0; i < R_LOSS; i++) {
        if (out[i]->numel != nref[i]) {
            CHECK(0, "%s: %s has %lld values, PyTorch %lld", fx, ref_names[i], (long long)out[i]->numel,
                  (long long)nref[i]);
            e_out[i] = INFINITY;
            continue;
        }
        e_out[i] = rel_err(out[i]->data, ref[i], nref[i], 1e-3);
        CHECK(e_out[i] < TOL, "%s: %s off PyTorch by %.3g (relative to its largest entry)", fx, ref_names[i], e_out[i]);
    }
    vlp_tensor *ls[3] = {itc, itm, mlm};
    static const char *lnames[3] = {"itc", "itm", "mlm"};
    double worst_loss = 0;
    for (int i = 0; i < 3; i++) {
        double v = *(float *)ls[i]->data, r = ref[R_LOSS][i], e = fabs(v - r) / fabs(r);
        CHECK(e < TOL, "%s: %s loss %.7f, PyTorch %.7f", fx, lnames[i], v, r);
        worst_loss = fmax(worst_loss, e);
    }
    /* gradients: every tensor of grads.safetensors */
    double worst = 0;
    const char *worst_name = "";
    int ng = 0, n_zero = 0;
    for (int k = 0; k < vlp_st_count(gs); k++) {
        const char *name = vlp_st_name(gs, k);
        vlp_tensor *t = !strcmp(name, "pixels") ? gpx : vlp_params_find(m->params, name);
        if (!t || !t->grad || vlp_st_numel(gs, k) != t->numel) {
            CHECK(0, "%s: gradient of %s: no such tensor of that size", fx, name);
            continue;
        }
        float *r = malloc((size_t)t->numel * sizeof(float));
        if (!r || vlp_st_read_f32(gs, k, r, t->numel)) {
            CHECK(0, "%s: gradient of %s: %s", fx, name, vlp_last_error());
            free(r);
            continue;
        }
        double e = rel_err(t->grad, r, t->numel, 1e-4), floor = zero_grad_scale(gs, name, r, t->numel);
        if (floor > 0) { /* zero in exact arithmetic: vlp's rounding against its weight's gradient */
            e = rel_err(t->grad, r, t->numel, floor);
            n_zero++;
        }
        CHECK(e<TOL, "%s: gradient of %s off PyTorch by %.3g (relative to its largest entry%s)", fx, name, e, floor> 0
                  ? ", zero here: to its weight's"
                  : "");
        if (e > worst) worst = e, worst_name = t->name;
        ng++;
        free(r);
    }
    CHECK(ng == vlp_st_count(gs) && ng == loaded + 1, "%s: %d gradients compared (%d parameters + pixels)", fx, ng,
          loaded);
    /* the key biases of the separate-projection BERT attention (ALBEF) are the only such tensors */
    CHECK(n_zero == (c.family == VLP_VL_DUAL ? c.layers + c.fusion_layers : 0), "%s: %d gradients are zero in PyTorch",
          fx, n_zero);
    printf("%s: PyTorch parity: image enc %.1e, text enc %.1e, fused %.1e, ITM logits %.1e, features %.1e/%.1e, "
           "losses %.1e; %d gradients (%d zero), worst %.1e (%s); %.2f s\n",
           fx, e_out[R_IMG], e_out[R_TXT], e_out[R_FUSED], e_out[R_ITM], e_out[R_FI], e_out[R_FT], worst_loss, ng,
           n_zero, worst, worst_name, now() - t0);
out:
    vlp_graph_free(g);
    vlp_st_close(st);
    vlp_st_close(gs);
    for (int i = 0; i < NREF; i++) free(ref[i]);
    free(px), free(idv), free(mv), free(mlmv), free(rowv), free(labv), free(nimg), free(ntxt);
    vlp_vl_free(m);
}

int main(void) {
    vlp_set_threads(1); /* tiny shapes */
    test_fixture("albef");
    test_fixture("vlmo");
    return test_finish();
}
