/* Zero-shot classification: class weights from prompt templates (each text feature
 * normalised, averaged over templates, renormalised, as CLIP's zeroshot_classifier), and
 * top-1/top-5 accuracy of images against them. */
#include "vlp_train.h"

#include "core/internal.h"

#include <math.h>

static void normalise(float *x, int E) {
    double s = 0;
    for (int e = 0; e < E; e++) s += (double)x[e] * x[e];
    float k = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int e = 0; e < E; e++) x[e] *= k;
}

void vlp_zeroshot_weights(const float *txt, int C, int T, int E, float *w) {
    for (int c = 0; c < C; c++) {
        double acc[E > 0 ? E : 1];
        for (int e = 0; e < E; e++) acc[e] = 0;
        for (int t = 0; t < T; t++) {
            const float *x = txt + ((int64_t)c * T + t) * E;
            double s = 0;
            for (int e = 0; e < E; e++) s += (double)x[e] * x[e];
            double k = s > 0 ? 1.0 / sqrt(s) : 0.0;
            for (int e = 0; e < E; e++) acc[e] += x[e] * k;
        }
        for (int e = 0; e < E; e++) w[(int64_t)c * E + e] = (float)(acc[e] / (T > 0 ? T : 1));
        normalise(w + (int64_t)c * E, E);
    }
}

int vlp_zeroshot_eval(const float *img, int64_t n, const float *w, int C, int E, const int *labels, int *pred,
                      vlp_zeroshot_result *out) {
    if (!img || !w || !labels || !out || n < 0 || C <= 0 || E <= 0) {
        vlp_set_error("vlp_zeroshot_eval: bad arguments (%lld images, %d classes, dim %d)", (long long)n, C, E);
        return VLP_ERR_ARG;
    }
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= C) {
            vlp_set_error("vlp_zeroshot_eval: label %d of image %lld is outside 0..%d", labels[i], (long long)i, C - 1);
            return VLP_ERR_ARG;
        }
    memset(out, 0, sizeof *out);
    out->classes = C;
    int64_t h1 = 0, h5 = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = img + i * E;
        /* cosine up to the image's norm, which does not change the ranking of classes */
        int best = 0, above = 0;
        double bs = -INFINITY, ts = 0;
        double sc[C];
        for (int c = 0; c < C; c++) {
            double d = 0;
            for (int e = 0; e < E; e++) d += (double)x[e] * w[(int64_t)c * E + e];
            sc[c] = d;
            if (d > bs) bs = d, best = c; /* first maximum wins ties */
        }
        if (pred) pred[i] = best;
        if (labels[i] < 0) continue;
        out->n++;
        ts = sc[labels[i]];
        for (int c = 0; c < C; c++) above += sc[c] > ts || (sc[c] == ts && c < labels[i]);
        h1 += best == labels[i];
        h5 += above < 5;
    }
    out->top1 = out->n ? (double)h1 / (double)out->n : 0;
    out->top5 = out->n ? (double)h5 / (double)out->n : 0;
    return VLP_OK;
}

int vlp_format_prompt(const char *tmpl, const char *name, char *out, size_t cap) {
    if (!tmpl || !name || !out) return VLP_ERR_ARG;
    const char *open = strchr(tmpl, '{'), *close = open ? strchr(open, '}') : NULL;
    int n = close ? snprintf(out, cap, "%.*s%s%s", (int)(open - tmpl), tmpl, name, close + 1)
                  : snprintf(out, cap, "%s %s", tmpl, name);
    return n < 0 || (size_t)n >= cap ? VLP_ERR_ARG : n;
}

/* ---- from a zeroshot.json ----------------------------------------------------------------- */

#include "vlp_text.h"

#include <jansson.h>

static void first_error(void *ctx, int index, const char *message) {
    char *buf = ctx;
    (void)index;
    if (!buf[0]) snprintf(buf, 512, "%s", message);
}

int vlp_eval_zeroshot_file(const vlp_clip *m, const char *path, int batch, vlp_zeroshot_result *out) {
    if (!m || !path || !out) {
        vlp_set_error("vlp_eval_zeroshot_file: NULL argument");
        return VLP_ERR_ARG;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        vlp_set_error("%s: %s (line %d)", path, je.text, je.line);
        return VLP_ERR_IO;
    }
    json_t *cl = json_object_get(root, "classes"), *tp = json_object_get(root, "templates"),
           *im = json_object_get(root, "images");
    int C = json_is_array(cl) ? (int)json_array_size(cl) : 0, T = json_is_array(tp) ? (int)json_array_size(tp) : 0;
    int64_t n = json_is_array(im) ? (int64_t)json_array_size(im) : 0;
    if (!C || !T || !n) {
        vlp_set_error("%s: needs non-empty arrays 'classes', 'templates' and 'images'", path);
        json_decref(root);
        return VLP_ERR_ARG;
    }
    int E = m->cfg.embed_dim, rc = VLP_OK;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char **prompts = calloc((size_t)C * T, sizeof *prompts), **paths = calloc((size_t)n, sizeof *paths);
    int *labels = malloc((size_t)n * sizeof *labels), *ok = malloc((size_t)n * sizeof *ok);
    float *tf = malloc((size_t)C * T * E * sizeof(float)), *w = malloc((size_t)C * E * sizeof(float)),
          *imf = malloc((size_t)n * E * sizeof(float));
    if (!prompts || !paths || !labels || !ok || !tf || !w || !imf) {
        vlp_set_error("%s: out of memory", path);
        rc = VLP_ERR_NOMEM;
    }
    for (int c = 0; !rc && c < C; c++)
        for (int t = 0; !rc && t < T; t++) {
            const char *name = json_string_value(json_array_get(cl, (size_t)c)),
                       *tmpl = json_string_value(json_array_get(tp, (size_t)t));
            char buf[1024];
            if (!name || !tmpl || vlp_format_prompt(tmpl, name, buf, sizeof buf) < 0) {
                vlp_set_error("%s: class %d or template %d is not a string (or the prompt is too long)", path, c, t);
                rc = VLP_ERR_ARG;
            } else if (!(prompts[c * T + t] = strdup(buf))) {
                rc = VLP_ERR_NOMEM;
            }
        }
    for (int64_t i = 0; !rc && i < n; i++) {
        json_t *o = json_array_get(im, (size_t)i), *fp = json_object_get(o, "filepath"),
               *lb = json_object_get(o, "label");
        if (!json_is_string(fp) || !json_is_integer(lb) || json_integer_value(lb) < 0 ||
            json_integer_value(lb) >= C) {
            vlp_set_error("%s: images[%lld] needs a string 'filepath' and an integer 'label' in 0..%d", path,
                          (long long)i, C - 1);
            rc = VLP_ERR_ARG;
            break;
        }
        const char *f = json_string_value(fp);
        size_t len = strlen(dir) + strlen(f) + 2;
        if (!(paths[i] = malloc(len))) {
            rc = VLP_ERR_NOMEM;
            break;
        }
        if (f[0] == '/') snprintf(paths[i], len, "%s", f);
        else snprintf(paths[i], len, "%s/%s", dir, f);
        labels[i] = (int)json_integer_value(lb);
    }
    vlp_tokenizer *tok = rc ? NULL : vlp_clip_tokenizer_load(m, NULL);
    vlp_clip_runner *r = tok ? vlp_clip_runner_new(m, batch > 0 ? batch : 64) : NULL;
    if (!rc && !tok) rc = VLP_ERR_ARG; /* the message names the vocabulary */
    else if (!rc && !r) rc = VLP_ERR_NOMEM;
    if (!rc && vlp_clip_embed_texts(r, tok, (const char *const *)prompts, C * T, 1, tf) < 0) rc = VLP_ERR_STATE;
    char err[512] = "";
    if (!rc) {
        int got = vlp_clip_embed_image_files(r, (const char *const *)paths, (int)n, 1, imf, ok, first_error, err, NULL,
                                             NULL);
        if (got < 0) rc = VLP_ERR_STATE;
        else if (got < n) {
            vlp_set_error("%s: %lld of %lld images could not be read; first: %s", path, (long long)(n - got),
                          (long long)n, err);
            rc = VLP_ERR_IO;
        }
    }
    if (!rc) {
        vlp_zeroshot_weights(tf, C, T, E, w);
        rc = vlp_zeroshot_eval(imf, n, w, C, E, labels, NULL, out);
    }
    vlp_clip_runner_free(r);
    vlp_tokenizer_free(tok);
    for (int i = 0; prompts && i < C * T; i++) free(prompts[i]);
    for (int64_t i = 0; paths && i < n; i++) free(paths[i]);
    free(prompts);
    free(paths);
    free(labels);
    free(ok);
    free(tf);
    free(w);
    free(imf);
    json_decref(root);
    return rc;
}
