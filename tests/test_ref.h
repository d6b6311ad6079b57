/* Comparisons against PyTorch fixtures, shared by the tests that check a model's outputs and
 * gradients (test_fusion.c's CoCa, test_fusion_ref.c's ALBEF and VLMo). */
#ifndef VLP_TEST_REF_H
#define VLP_TEST_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "vlp.h"
#include "vlp_safetensors.h"
#include "vlp_vl.h"

/* A VL fixture directory: the model of DIR/config.json with DIR/model.safetensors (*st) and the
 * reference gradients DIR/grads.safetensors (*gs) open; NULLs after a failed load (the caller's
 * CHECK reports it). Returns the model. */
static vlp_vl *ref_open_vl(const char *dir, vlp_safetensors **st, vlp_safetensors **gs) {
    char path[600];
    vlp_vl_config c;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(vlp_vl_config_load(path, &c) == 0, "%s: %s", path, vlp_last_error());
    vlp_vl *m = vlp_vl_new(&c, 1);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    *st = m ? vlp_st_open(path) : NULL;
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    *gs = *st ? vlp_st_open(path) : NULL;
    return m;
}

/* DIR/FILE, a .npy of dtype want (a failed CHECK otherwise): the data (free), its shape (first 4
 * dims, may be NULL) and element count (may be NULL). */
static void *ref_npy(const char *dir, const char *file, vlp_dtype want, int64_t *shape, int64_t *numel) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    void *data = NULL;
    int nd = 0;
    vlp_dtype dt;
    int64_t s[8] = {0}, n = 1;
    if (vlp_npy_load(path, &dt, &nd, s, &data) || dt != want) {
        CHECK(0, "%s: %s", path, data ? "unexpected dtype" : vlp_last_error());
        free(data);
        return NULL;
    }
    for (int i = 0; i < nd; i++) n *= s[i];
    if (shape) memcpy(shape, s, sizeof(int64_t) * 4);
    if (numel) *numel = n;
    return data;
}

/* max |a - r| / max(max |r|, floor) */
static double rel_err(const float *a, const float *r, int64_t n, double floor) {
    double md = 0, mr = floor;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - r[i]));
        mr = fmax(mr, fabs((double)r[i]));
    }
    return md / mr;
}

/* A key bias adds q . b_k to every score of a query: softmax ignores it, so its gradient is zero
 * in exact arithmetic (PyTorch's float64: ~1e-16) and vlp's float32 one is rounding, which the
 * relative criterion would divide by its floor alone. Such a tensor (every reference entry under
 * 1e-10) is measured against the largest gradient entry of its weight (same name, ".weight"):
 * returns that scale, or 0 for an ordinary tensor. */
static double zero_grad_scale(vlp_safetensors *gs, const char *name, const float *r, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabs(r[i]) >= 1e-10) return 0;
    char w[200];
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 5, ".bias") || len >= sizeof w - 8) return 0;
    snprintf(w, sizeof w, "%.*s.weight", (int)(len - 5), name);
    int k = vlp_st_find(gs, w);
    if (k < 0) return 0;
    int64_t m = vlp_st_numel(gs, k);
    float *x = malloc((size_t)m * sizeof(float));
    double mx = 0;
    if (x && !vlp_st_read_f32(gs, k, x, m))
        for (int64_t i = 0; i < m; i++) mx = fmax(mx, fabs((double)x[i]));
    free(x);
    return mx;
}

#endif
