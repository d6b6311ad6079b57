/* Batched CLIP embedding: one inference graph per tower for a fixed batch size,
 * built on first use and replayed per batch; image files are decoded and
 * preprocessed by a worker thread one batch ahead of the model. */
#include "vlp_clip.h"

#include "core/internal.h"
#include "vlp_image.h"
#include "vlp_text.h"

#include <pthread.h>

struct vlp_clip_runner {
    const vlp_clip *m;
    int batch;
    vlp_graph *gi, *gt;
    vlp_tensor *pixels, *img_out, *ids, *txt_out;
};

vlp_clip_runner *vlp_clip_runner_new(const vlp_clip *m, int batch) {
    if (!m || batch <= 0) {
        vlp_set_error("vlp_clip_runner_new: %s", m ? "batch must be positive" : "model is NULL");
        return NULL;
    }
    vlp_clip_runner *r = calloc(1, sizeof *r);
    if (!r) {
        vlp_set_error("out of memory");
        return NULL;
    }
    r->m = m;
    r->batch = batch;
    return r;
}

void vlp_clip_runner_free(vlp_clip_runner *r) {
    if (!r) return;
    vlp_graph_free(r->gi);
    vlp_graph_free(r->gt);
    free(r);
}

/* The runner's weights are fixed for its lifetime: pack them once for the GEMM (VLP_PACK=0
 * skips this, e.g. to measure what it saves). */
static int pack_weights(vlp_graph *g) {
    const char *env = getenv("VLP_PACK");
    return env && !strcmp(env, "0") ? VLP_OK : vlp_graph_pack_weights(g);
}

static int build_image_graph(vlp_clip_runner *r) {
    if (r->gi) return VLP_OK;
    int S = r->m->cfg.image_size;
    int64_t sh[4] = {r->batch, 3, S, S};
    r->gi = vlp_graph_new();
    r->pixels = vlp_input(r->gi, "pixels", VLP_F32, 4, sh);
    r->img_out = vlp_clip_encode_image(r->gi, r->m, r->pixels, NULL);
    if (!r->img_out || vlp_graph_build(r->gi, r->img_out, VLP_BUILD_INFERENCE)) {
        if (vlp_graph_error(r->gi)) vlp_set_error("%s", vlp_graph_error(r->gi));
        vlp_graph_free(r->gi);
        r->gi = NULL;
        return VLP_ERR_ARG;
    }
    return pack_weights(r->gi);
}

static int build_text_graph(vlp_clip_runner *r) {
    if (r->gt) return VLP_OK;
    int64_t sh[2] = {r->batch, r->m->cfg.context_length};
    r->gt = vlp_graph_new();
    r->ids = vlp_input(r->gt, "ids", VLP_I32, 2, sh);
    r->txt_out = vlp_clip_encode_text(r->gt, r->m, r->ids, NULL);
    if (!r->txt_out || vlp_graph_build(r->gt, r->txt_out, VLP_BUILD_INFERENCE)) {
        if (vlp_graph_error(r->gt)) vlp_set_error("%s", vlp_graph_error(r->gt));
        vlp_graph_free(r->gt);
        r->gt = NULL;
        return VLP_ERR_ARG;
    }
    return pack_weights(r->gt);
}

static void finish_rows(const float *src, int n, int E, int normalize, float *out) {
    memcpy(out, src, sizeof(float) * (size_t)n * (size_t)E);
    if (normalize) vlp_l2_normalize_rows(out, n, E);
}

int vlp_clip_embed_pixels(vlp_clip_runner *r, const float *pixels, int n, int normalize, float *out) {
    if (!r || (n > 0 && (!pixels || !out))) {
        vlp_set_error("vlp_clip_embed_pixels: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc = build_image_graph(r);
    if (rc) return rc;
    size_t per = (size_t)3 * r->m->cfg.image_size * r->m->cfg.image_size;
    int E = r->m->cfg.embed_dim;
    for (int i0 = 0; i0 < n; i0 += r->batch) {
        int k = n - i0 < r->batch ? n - i0 : r->batch;
        memcpy(r->pixels->data, pixels + (size_t)i0 * per, sizeof(float) * per * (size_t)k);
        if (k < r->batch) memset(vlp_f(r->pixels) + per * (size_t)k, 0, sizeof(float) * per * (size_t)(r->batch - k));
        if ((rc = vlp_graph_forward(r->gi))) return rc;
        finish_rows(r->img_out->data, k, E, normalize, out + (size_t)i0 * E);
    }
    return VLP_OK;
}

int vlp_clip_embed_tokens(vlp_clip_runner *r, const int32_t *ids, int n, int normalize, float *out) {
    if (!r || (n > 0 && (!ids || !out))) {
        vlp_set_error("vlp_clip_embed_tokens: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc = build_text_graph(r);
    if (rc) return rc;
    size_t T = (size_t)r->m->cfg.context_length;
    int E = r->m->cfg.embed_dim;
    for (int i0 = 0; i0 < n; i0 += r->batch) {
        int k = n - i0 < r->batch ? n - i0 : r->batch;
        memcpy(r->ids->data, ids + (size_t)i0 * T, sizeof(int32_t) * T * (size_t)k);
        if (k < r->batch) memset(vlp_i(r->ids) + T * (size_t)k, 0, sizeof(int32_t) * T * (size_t)(r->batch - k));
        if ((rc = vlp_graph_forward(r->gt))) return rc;
        finish_rows(r->txt_out->data, k, E, normalize, out + (size_t)i0 * E);
    }
    return VLP_OK;
}

int vlp_clip_embed_texts(vlp_clip_runner *r, vlp_tokenizer *tok, const char *const *texts, int n, int normalize,
                         float *out) {
    if (!r || !tok || (n > 0 && (!texts || !out))) {
        vlp_set_error("vlp_clip_embed_texts: NULL argument");
        return VLP_ERR_ARG;
    }
    int T = r->m->cfg.context_length;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T * (size_t)(n ? n : 1));
    if (!ids) {
        vlp_set_error("out of memory");
        return VLP_ERR_NOMEM;
    }
    int rc = VLP_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (!texts[i]) {
            vlp_set_error("vlp_clip_embed_texts: text %d is NULL", i);
            rc = VLP_ERR_ARG;
        } else if (vlp_clip_tokenize(tok, texts[i], T, ids + (size_t)i * T) < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", vlp_last_error());
            vlp_set_error("text %d: %s", i, msg);
            rc = VLP_ERR_ARG;
        }
    }
    if (!rc) rc = vlp_clip_embed_tokens(r, ids, n, normalize, out);
    free(ids);
    return rc;
}

/* ---- image files: a worker decodes batch k+1 while the model runs batch k ---------- */

typedef struct {
    const char *const *paths;
    int i0, k, size;
    vlp_preprocess_config pre;
    float *pixels; /* k * 3 * size * size */
    int *ok;
    char (*msg)[512];
} decode_job;

static void *decode_batch(void *arg) {
    decode_job *j = arg;
    size_t per = (size_t)3 * j->size * j->size;
    for (int i = 0; i < j->k; i++) {
        vlp_image img;
        float *dst = j->pixels + per * (size_t)i;
        j->ok[i] = vlp_image_load(j->paths[j->i0 + i], NULL, &img) == 0;
        if (j->ok[i]) {
            j->ok[i] = vlp_image_preprocess(&img, &j->pre, dst) == 0;
            vlp_image_free(&img);
        }
        if (!j->ok[i]) {
            snprintf(j->msg[i], sizeof j->msg[i], "%s", vlp_last_error());
            memset(dst, 0, sizeof(float) * per);
        }
    }
    return NULL;
}

int vlp_clip_embed_image_files(vlp_clip_runner *r, const char *const *paths, int n, int normalize, float *out,
                               int *ok, vlp_image_error_fn on_error, void *ctx,
                               void (*on_progress)(void *ctx, int done), void *progress_ctx) {
    if (!r || (n > 0 && (!paths || !out))) {
        vlp_set_error("vlp_clip_embed_image_files: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc = build_image_graph(r);
    if (rc) return rc;
    const vlp_clip_config *c = &r->m->cfg;
    int B = r->batch, S = c->image_size, E = c->embed_dim, embedded = 0;
    size_t per = (size_t)3 * S * S;
    decode_job jobs[2];
    for (int b = 0; b < 2; b++) {
        memset(&jobs[b], 0, sizeof jobs[b]);
        jobs[b].paths = paths;
        jobs[b].size = S;
        jobs[b].pre = vlp_preprocess_clip(S);
        memcpy(jobs[b].pre.mean, c->mean, sizeof c->mean);
        memcpy(jobs[b].pre.std, c->std, sizeof c->std);
        jobs[b].pixels = malloc(sizeof(float) * per * (size_t)B);
        jobs[b].ok = calloc((size_t)B, sizeof(int));
        jobs[b].msg = calloc((size_t)B, sizeof *jobs[b].msg);
        if (!jobs[b].pixels || !jobs[b].ok || !jobs[b].msg) rc = VLP_ERR_NOMEM;
    }
    pthread_t worker;
    int cur = 0, running = 0;
    if (!rc && n > 0) { /* first batch decoded up front */
        jobs[0].i0 = 0;
        jobs[0].k = n < B ? n : B;
        decode_batch(&jobs[0]);
    }
    for (int i0 = 0; !rc && i0 < n; i0 += B) {
        decode_job *j = &jobs[cur], *next = &jobs[1 - cur];
        if (i0 + B < n) { /* start decoding the next batch */
            next->i0 = i0 + B;
            next->k = n - next->i0 < B ? n - next->i0 : B;
            running = pthread_create(&worker, NULL, decode_batch, next) == 0;
            if (!running) decode_batch(next);
        }
        memcpy(r->pixels->data, j->pixels, sizeof(float) * per * (size_t)j->k);
        if (j->k < B) memset(vlp_f(r->pixels) + per * (size_t)j->k, 0, sizeof(float) * per * (size_t)(B - j->k));
        rc = vlp_graph_forward(r->gi);
        if (running) pthread_join(worker, NULL);
        running = 0;
        if (rc) break;
        for (int i = 0; i < j->k; i++) {
            float *dst = out + (size_t)(i0 + i) * E;
            if (ok) ok[i0 + i] = j->ok[i];
            if (j->ok[i]) {
                finish_rows(vlp_f(r->img_out) + (size_t)i * E, 1, E, normalize, dst);
                embedded++;
            } else {
                memset(dst, 0, sizeof(float) * (size_t)E);
                if (on_error) on_error(ctx, i0 + i, j->msg[i]);
            }
        }
        if (on_progress) on_progress(progress_ctx, i0 + j->k);
        cur = 1 - cur;
    }
    for (int b = 0; b < 2; b++) {
        free(jobs[b].pixels);
        free(jobs[b].ok);
        free(jobs[b].msg);
    }
    if (rc == VLP_ERR_NOMEM) vlp_set_error("out of memory");
    return rc ? rc : embedded;
}
