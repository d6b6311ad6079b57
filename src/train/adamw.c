/* AdamW (Loshchilov & Hutter: decoupled weight decay, as torch.optim.AdamW),
 * global-norm gradient clipping, and the warm-up + cosine schedule.
 * Parameter groups are flags on the tensors: VLP_FLAG_NO_DECAY skips decay,
 * VLP_FLAG_FROZEN skips the update. */
#include "../core/internal.h"

#include <math.h>

struct vlp_adamw {
    vlp_params *p;
    vlp_adamw_config cfg;
    float *m, *v;
    int64_t t;
};

vlp_adamw *vlp_adamw_new(vlp_params *p, const vlp_adamw_config *cfg) {
    if (!p || !cfg || !vlp_params_data(p)) {
        vlp_set_error("vlp_adamw_new: %s", !p || !cfg ? "NULL argument" : "parameters not allocated");
        return NULL;
    }
    if (!(cfg->lr >= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
        !(cfg->eps > 0) || !(cfg->weight_decay >= 0)) {
        vlp_set_error("vlp_adamw_new: bad hyper-parameters lr=%g beta1=%g beta2=%g eps=%g weight_decay=%g",
                      (double)cfg->lr, (double)cfg->beta1, (double)cfg->beta2, (double)cfg->eps,
                      (double)cfg->weight_decay);
        return NULL;
    }
    vlp_adamw *o = vlp_calloc(1, sizeof *o);
    int64_t n = vlp_params_numel(p);
    if (o) {
        o->m = vlp_aligned_alloc((size_t)(n ? n : 1) * sizeof(float));
        o->v = vlp_aligned_alloc((size_t)(n ? n : 1) * sizeof(float));
    }
    if (!o || !o->m || !o->v) {
        vlp_adamw_free(o);
        vlp_set_error("vlp_adamw_new: out of memory for %lld moments", (long long)n);
        return NULL;
    }
    memset(o->m, 0, (size_t)n * sizeof(float));
    memset(o->v, 0, (size_t)n * sizeof(float));
    o->p = p;
    o->cfg = *cfg;
    return o;
}

void vlp_adamw_free(vlp_adamw *o) {
    if (!o) return;
    vlp_free(o->m);
    vlp_free(o->v);
    vlp_free(o);
}

int64_t vlp_adamw_steps(const vlp_adamw *o) { return o ? o->t : 0; }
float *vlp_adamw_m(vlp_adamw *o) { return o ? o->m : NULL; }
float *vlp_adamw_v(vlp_adamw *o) { return o ? o->v : NULL; }
void vlp_adamw_set_steps(vlp_adamw *o, int64_t t) {
    if (o) o->t = t;
}

/* Sum of squares of all trainable gradients, in a fixed order (per tensor,
 * chunked, double accumulation): the same for any thread count. */
static double grad_sumsq(vlp_params *p) {
    double total = 0;
    for (int i = 0; i < vlp_params_count(p); i++) {
        vlp_tensor *t = vlp_params_get(p, i);
        if (!t->grad) continue;
        const float *gr = t->grad;
        int64_t n = t->numel, nch = (n + 65535) / 65536;
        double part[64];
        for (int64_t c0 = 0; c0 < nch; c0 += 64) {
            int64_t c1 = c0 + 64 < nch ? c0 + 64 : nch;
            VLP_PARFOR(vlp_get_threads(), n > 131072, (int64_t c = c0; c < c1; c++), {
                double s = 0;
                int64_t e = (c + 1) * 65536 < n ? (c + 1) * 65536 : n;
                for (int64_t j = c * 65536; j < e; j++) s += (double)gr[j] * gr[j];
                part[c - c0] = s;
            });
            for (int64_t c = c0; c < c1; c++) total += part[c - c0];
        }
    }
    return total;
}

float vlp_clip_grad_norm(vlp_params *p, float max_norm) {
    if (!p) return 0;
    float norm = (float)sqrt(grad_sumsq(p));
    if (max_norm > 0 && norm > max_norm && isfinite(norm)) {
        float k = max_norm / (norm + 1e-6f); /* torch.nn.utils.clip_grad_norm_ */
        float *gr = vlp_params_grad(p);
        int64_t n = vlp_params_numel(p);
        VLP_PARFOR(vlp_get_threads(), n > 65536, (int64_t i = 0; i < n; i++), { gr[i] *= k; });
    }
    return norm;
}

int vlp_adamw_step(vlp_adamw *o, float lr, float grad_scale, float *grad_norm) {
    if (!o) {
        vlp_set_error("vlp_adamw_step: optimiser is NULL");
        return VLP_ERR_ARG;
    }
    vlp_params *p = o->p;
    if (grad_scale != 1.0f) {
        float *gr = vlp_params_grad(p);
        int64_t n = vlp_params_numel(p);
        VLP_PARFOR(vlp_get_threads(), n > 65536, (int64_t i = 0; i < n; i++), { gr[i] *= grad_scale; });
    }
    float norm = vlp_clip_grad_norm(p, o->cfg.clip_norm);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) {
        vlp_set_error("vlp_adamw_step: gradient norm is %s at step %lld; parameters left unchanged",
                      isnan(norm) ? "NaN" : "Inf", (long long)o->t + 1);
        return VLP_ERR_NUMERIC;
    }
    o->t++;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float bc1 = 1.0f - powf(b1, (float)o->t), bc2 = 1.0f - powf(b2, (float)o->t);
    const float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2);
    for (int i = 0; i < vlp_params_count(p); i++) {
        vlp_tensor *t = vlp_params_get(p, i);
        if (!t->grad) continue; /* frozen */
        float *w = vlp_f(t), *gr = t->grad, *m = o->m + t->off_data, *v = o->v + t->off_data;
        const float decay = (t->flags & VLP_FLAG_NO_DECAY) ? 1.0f : 1.0f - lr * o->cfg.weight_decay;
        int64_t n = t->numel;
        VLP_PARFOR(vlp_get_threads(), n > 65536, (int64_t j = 0; j < n; j++), {
            float gj = gr[j];
            m[j] = b1 * m[j] + (1.0f - b1) * gj;
            v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
            w[j] = w[j] * decay - step * m[j] / (sqrtf(v[j]) * rbc2 + eps);
        });
    }
    return VLP_OK;
}

float vlp_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float base_lr, float min_lr) {
    if (step < warmup) return base_lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return min_lr;
    double progress = (double)(step - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    return min_lr + (base_lr - min_lr) * 0.5f * (float)(1.0 + cos(3.14159265358979323846 * progress));
}
