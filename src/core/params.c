/* Parameter store: named tensors over one flat data buffer and one flat
 * gradient buffer (optimiser state and checkpoints are flat arrays too). */
#include "internal.h"

#include <math.h>

struct vlp_params {
    vlp_tensor **t;
    int n, cap;
    int64_t numel;
    float *data, *grad;
    int allocated;
};

vlp_params *vlp_params_new(void) {
    vlp_params *p = vlp_calloc(1, sizeof *p);
    if (!p) vlp_set_error("vlp_params_new: out of memory");
    return p;
}

void vlp_params_free(vlp_params *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) vlp_free(p->t[i]);
    vlp_free(p->t);
    vlp_free(p->data);
    vlp_free(p->grad);
    vlp_free(p);
}

vlp_tensor *vlp_params_add(vlp_params *p, const char *name, int ndim, const int64_t *shape, int flags) {
    if (!p || !name || (ndim > 0 && !shape)) {
        vlp_set_error("vlp_params_add: NULL argument (params %p, name %p, shape %p)", (void *)p,
                      (const void *)name, (const void *)shape);
        return NULL;
    }
    if (p->allocated) {
        vlp_set_error("vlp_params_add(%s): store already allocated; declare every parameter first", name);
        return NULL;
    }
    if (ndim < 0 || ndim > VLP_MAX_DIMS) {
        vlp_set_error("vlp_params_add(%s): ndim %d out of range 0..%d", name, ndim, VLP_MAX_DIMS);
        return NULL;
    }
    if (vlp_params_find(p, name)) {
        vlp_set_error("vlp_params_add: duplicate parameter name '%s'", name);
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            vlp_set_error("vlp_params_add(%s): dim %d is %lld", name, i, (long long)shape[i]);
            return NULL;
        }
        numel *= shape[i];
    }
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        vlp_tensor **nt = realloc(p->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            vlp_set_error("vlp_params_add: out of memory");
            return NULL;
        }
        p->t = nt;
        p->cap = cap;
    }
    vlp_tensor *t = vlp_calloc(1, sizeof *t);
    if (!t) {
        vlp_set_error("vlp_params_add: out of memory");
        return NULL;
    }
    t->dtype = VLP_F32;
    t->ndim = ndim;
    t->numel = numel;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = stride;
        stride *= shape[i];
    }
    t->flags = VLP_FLAG_PARAM | (flags & (VLP_FLAG_NO_DECAY | VLP_FLAG_FROZEN));
    if (!(t->flags & VLP_FLAG_FROZEN)) t->flags |= VLP_FLAG_REQUIRES_GRAD;
    t->id = -1;
    /* Offsets are rounded up to 16 floats so every tensor starts 64-byte aligned. */
    t->off_data = (size_t)p->numel;
    p->numel += (numel + 15) / 16 * 16;
    snprintf(t->name, sizeof t->name, "%s", name);
    p->t[p->n++] = t;
    return t;
}

int vlp_params_alloc(vlp_params *p) {
    if (!p) {
        vlp_set_error("vlp_params_alloc: NULL store");
        return VLP_ERR_ARG;
    }
    if (p->allocated) return VLP_OK;
    size_t bytes = (size_t)(p->numel ? p->numel : 16) * sizeof(float);
    p->data = vlp_aligned_alloc(bytes);
    p->grad = vlp_aligned_alloc(bytes);
    if (!p->data || !p->grad) {
        vlp_set_error("vlp_params_alloc: out of memory for %lld parameters", (long long)p->numel);
        return VLP_ERR_NOMEM;
    }
    memset(p->data, 0, bytes);
    memset(p->grad, 0, bytes);
    for (int i = 0; i < p->n; i++) {
        p->t[i]->data = p->data + p->t[i]->off_data;
        p->t[i]->grad = (p->t[i]->flags & VLP_FLAG_REQUIRES_GRAD) ? p->grad + p->t[i]->off_data : NULL;
    }
    p->allocated = 1;
    return VLP_OK;
}

int vlp_params_count(const vlp_params *p) { return p ? p->n : 0; }
vlp_tensor *vlp_params_get(const vlp_params *p, int i) { return p && i >= 0 && i < p->n ? p->t[i] : NULL; }
int64_t vlp_params_numel(const vlp_params *p) { return p ? p->numel : 0; }
float *vlp_params_data(const vlp_params *p) { return p ? p->data : NULL; }
float *vlp_params_grad(const vlp_params *p) { return p ? p->grad : NULL; }

vlp_tensor *vlp_params_find(const vlp_params *p, const char *name) {
    if (!p || !name) return NULL;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i]->name, name)) return p->t[i];
    return NULL;
}

void vlp_params_zero_grad(vlp_params *p) {
    if (p && p->grad) memset(p->grad, 0, (size_t)p->numel * sizeof(float));
}

/* ---- initialisers ---- */
void vlp_init_normal(vlp_tensor *t, float mean, float std, uint64_t seed) {
    if (!t || !t->data) return;
    float *x = vlp_f(t);
    uint64_t key = vlp_mix64(seed);
    for (int64_t i = 0; i < t->numel; i++) {
        /* Box-Muller on two counter-based uniforms. */
        float u1 = vlp_u01(key, 2 * (uint64_t)i), u2 = vlp_u01(key, 2 * (uint64_t)i + 1);
        if (u1 < 1e-12f) u1 = 1e-12f;
        x[i] = mean + std * sqrtf(-2.0f * logf(u1)) * cosf(6.283185307f * u2);
    }
}

void vlp_init_uniform(vlp_tensor *t, float lo, float hi, uint64_t seed) {
    if (!t || !t->data) return;
    float *x = vlp_f(t);
    uint64_t key = vlp_mix64(seed);
    for (int64_t i = 0; i < t->numel; i++) x[i] = lo + (hi - lo) * vlp_u01(key, (uint64_t)i);
}

void vlp_init_const(vlp_tensor *t, float value) {
    if (!t || !t->data) return;
    float *x = vlp_f(t);
    for (int64_t i = 0; i < t->numel; i++) x[i] = value;
}
