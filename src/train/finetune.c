/* Fine-tuning of fusion models on downstream tasks (include/vlp_finetune.h): the task heads,
 * the model store (backbone + head), task data prepared for the graph, prediction, and the
 * fine-tuning kind of the trainer's model table (the loop, AdamW, schedule, checkpoints and
 * resume are trainer.c's and checkpoint.c's). */
#include "vlp_finetune.h"

#include "core/internal.h"
#include "eval/eval_internal.h"
#include "finetune_internal.h"
#include "io/json_file.h"
#include "train_internal.h"
#include "vlp_image.h"
#include "vlp_safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- heads and parts ---------------------------------------------------------------------- */

static const char *head_names[VLP_FT_HEAD_COUNT] = {"answer_mlp", "itm", "pair_mlp", "cell", "lm"};

const char *vlp_ft_head_name(int head) {
    return head >= 0 && head < VLP_FT_HEAD_COUNT ? head_names[head] : "?";
}

static int task_head(vlp_task_kind task, int family) {
    if (family == VLP_VL_CAPTION) /* the decoder is the head: generative answers and captions */
        return task == VLP_TASK_VQA || task == VLP_TASK_CAPTION ? VLP_FT_HEAD_LM : -1;
    switch (task) {
    case VLP_TASK_VQA: return VLP_FT_HEAD_ANSWER_MLP;
    case VLP_TASK_MC: return VLP_FT_HEAD_ITM;
    case VLP_TASK_NLVR: return VLP_FT_HEAD_PAIR_MLP;
    case VLP_TASK_GROUND2:
    case VLP_TASK_GROUND3: return VLP_FT_HEAD_CELL;
    default: return -1;
    }
}

int vlp_ft_pick_head(vlp_task_kind task, const char *head, int family, int *out) {
    int want = task_head(task, family);
    if (want < 0 && family == VLP_VL_CAPTION && task_head(task, VLP_VL_DUAL) >= 0) {
        vlp_set_error("head '%s' (task %s) needs a fusion model (single_stream, dual_stream or mome), not a captioning "
                      "model: a captioning model fine-tunes its decoder (head lm) for caption and vqa only",
                      head_names[task_head(task, VLP_VL_DUAL)], vlp_task_name(task));
        return VLP_ERR_ARG;
    }
    if (want < 0) {
        vlp_set_error("task %s: fine-tuning has no head for it for a %s model (vqa: answer_mlp, mc: itm, nlvr: pair_mlp, "
                      "ground2/ground3: cell; a captioning model: lm for caption and vqa)",
                      (unsigned)task < VLP_TASK_COUNT ? vlp_task_name(task) : "?",
                      family == VLP_VL_CAPTION ? "captioning" : "fusion");
        return VLP_ERR_ARG;
    }
    int h = want;
    if (head && *head) {
        for (h = 0; h < VLP_FT_HEAD_COUNT && strcmp(head, head_names[h]); h++) {}
        if (h == VLP_FT_HEAD_COUNT) {
            vlp_set_error("unknown head '%s' (answer_mlp for vqa, itm for mc, pair_mlp for nlvr, cell for ground2/ground3; "
                          "lm for caption and vqa on a captioning model)", head);
            return VLP_ERR_ARG;
        }
        if ((h == VLP_FT_HEAD_LM) != (family == VLP_VL_CAPTION)) { /* the family decides before the task */
            if (h == VLP_FT_HEAD_LM)
                vlp_set_error("head 'lm' (task %s) needs a captioning model (its decoder is the head), not a %s model",
                              vlp_task_name(task), vlp_vl_family_name(family));
            else
                vlp_set_error("head '%s' (task %s) needs a fusion model (single_stream, dual_stream or mome), not a "
                              "captioning model: it reads the fused [CLS]; a captioning model fine-tunes head lm",
                              head, vlp_task_name(task));
            return VLP_ERR_ARG;
        }
        if (h != want) {
            vlp_set_error("head '%s' does not fit task %s (its head is %s)", head, vlp_task_name(task),
                          head_names[want]);
            return VLP_ERR_ARG;
        }
    }
    if (family != VLP_VL_SINGLE && family != VLP_VL_DUAL && family != VLP_VL_MOME && family != VLP_VL_CAPTION) {
        vlp_set_error("head '%s' (task %s) needs a fusion model (single_stream, dual_stream or mome), not a %s model: "
                      "it reads the fused [CLS]", head_names[h], vlp_task_name(task),
                      family == VLP_VL_CAPTION ? "captioning" : "non-VL");
        return VLP_ERR_ARG;
    }
    *out = h;
    return VLP_OK;
}

int vlp_ft_freeze_parse(const char *name, int *bits) {
    static const char *names[3] = {"vision", "text", "embeddings"};
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, names[i])) {
            *bits |= 1 << i;
            return VLP_OK;
        }
    vlp_set_error("freeze: unknown part '%s' (vision, text, embeddings)", name ? name : "(null)");
    return VLP_ERR_ARG;
}

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Whether the parameter `name` of a backbone is frozen for this task and freeze set. */
static int frozen(const vlp_vl_config *c, vlp_task_kind task, int freeze, const char *name) {
    /* not used by any head here: weight decay would otherwise shrink them for nothing */
    if (starts(name, "vision_proj") || starts(name, "text_proj") || !strcmp(name, "logit_scale") ||
        (starts(name, "lm_head.") && c->family != VLP_VL_CAPTION) || starts(name, "text_itc.") ||
        starts(name, "mim_head.") || starts(name, "vision.mask_token"))
        return 1;
    if (starts(name, "itm_head.") && task != VLP_TASK_MC) return 1;
    if (starts(name, "pooler.") && (task == VLP_TASK_GROUND2 || task == VLP_TASK_GROUND3)) return 1;
    int emb = starts(name, "vision.patch_embed") || starts(name, "vision.class_embedding") ||
              starts(name, "vision.pos_embed") || starts(name, "text.embeddings.") ||
              starts(name, "text.word_embeddings") || starts(name, "text.pos_embed") || starts(name, "text.emb_ln") ||
              starts(name, "type_embed");
    if ((freeze & VLP_FT_FREEZE_EMBEDDINGS) && emb) return 1;
    if ((freeze & VLP_FT_FREEZE_VISION) && (starts(name, "vision.") || strstr(name, ".ffn_v."))) return 1;
    if (freeze & VLP_FT_FREEZE_TEXT) {
        if (starts(name, "text.embeddings.") || starts(name, "text.word_embeddings") || starts(name, "text.pos_embed") ||
            starts(name, "text.emb_ln") || strstr(name, ".ffn_l."))
            return 1;
        int l;
        if (sscanf(name, "text.encoder.layer.%d.", &l) == 1 && l < c->layers - c->fusion_layers) return 1;
    }
    return 0;
}

/* ---- the model ---------------------------------------------------------------------------- */

static void free_answers(char **a, int n) {
    for (int i = 0; a && i < n; i++) free(a[i]);
    free(a);
}

void vlp_ft_free(vlp_ft_model *m) {
    if (!m) return;
    vlp_vl_free(m->vl); /* frees its own (unused) buffers; the tensors' data is in params */
    vlp_params_free(m->params);
    free_answers(m->answers, m->task == VLP_TASK_VQA ? m->classes : 0);
    free(m);
}

vlp_ft_model *vlp_ft_new(vlp_vl *vl, vlp_task_kind task, int head, int classes, const char *const *answers, int freeze,
                         uint64_t seed) {
    if (!vl) {
        vlp_set_error("vlp_ft_new: backbone is NULL");
        return NULL;
    }
    int h;
    if (head < 0 || head >= VLP_FT_HEAD_COUNT) {
        vlp_set_error("vlp_ft_new: %d is not a head", head);
        vlp_vl_free(vl);
        return NULL;
    }
    if (vlp_ft_pick_head(task, head_names[head], vl->cfg.family, &h)) {
        vlp_vl_free(vl);
        return NULL;
    }
    if (task == VLP_TASK_NLVR) classes = 2;
    if (head == VLP_FT_HEAD_LM) classes = vl->cfg.vocab_size, answers = NULL; /* scores over the vocabulary */
    int grid = (int)lround(sqrt((double)classes));
    if (head == VLP_FT_HEAD_CELL &&
        (grid * grid != classes || vl->cfg.image_size / vl->cfg.patch_size < grid || classes > 4096)) {
        vlp_set_error("vlp_ft_new: %d cells is not a g x g grid of at most %d x %d (the model's patch grid)", classes,
                      vl->cfg.image_size / vl->cfg.patch_size, vl->cfg.image_size / vl->cfg.patch_size);
        vlp_vl_free(vl);
        return NULL;
    }
    if (classes < 2 || classes > (1 << 20) || (task == VLP_TASK_VQA && head != VLP_FT_HEAD_LM && !answers)) {
        vlp_set_error("vlp_ft_new: task %s needs at least 2 %s (got %d)", vlp_task_name(task),
                      task == VLP_TASK_VQA ? "answers" : "choices", classes);
        vlp_vl_free(vl);
        return NULL;
    }
    vlp_ft_model *m = calloc(1, sizeof *m);
    if (!m) {
        vlp_set_error("vlp_ft_new: out of memory");
        vlp_vl_free(vl);
        return NULL;
    }
    m->vl = vl;
    m->task = task;
    m->head = head;
    m->classes = classes;
    m->freeze = freeze;
    if (task == VLP_TASK_VQA && answers) {
        if (!(m->answers = calloc((size_t)classes, sizeof *m->answers))) goto oom;
        for (int i = 0; i < classes; i++)
            if (!(m->answers[i] = strdup(answers[i] ? answers[i] : ""))) goto oom;
    }
    /* one store for backbone + head: the trainer's optimiser and checkpoints walk one store */
    if (!(m->params = vlp_params_new())) goto fail;
    vlp_params *P = m->params;
    int nb = vlp_params_count(vl->params);
    for (int i = 0; i < nb; i++) {
        vlp_tensor *t = vlp_params_get(vl->params, i);
        int fl = (t->flags & VLP_FLAG_NO_DECAY) | (frozen(&vl->cfg, task, freeze, t->name) ? VLP_FLAG_FROZEN : 0);
        if (!vlp_params_add(P, t->name, t->ndim, t->shape, fl)) goto fail;
    }
    if (head == VLP_FT_HEAD_CELL) {
        int64_t W = vl->cfg.width, IW = vl->cfg.family == VLP_VL_DUAL ? vl->cfg.vision_width : W;
        int64_t sq[2] = {W, W}, sk[2] = {W, IW}, sb[1] = {W};
        if (!(m->q_w = vlp_params_add(P, "ft.q.weight", 2, sq, 0)) ||
            !(m->q_b = vlp_params_add(P, "ft.q.bias", 1, sb, VLP_FLAG_NO_DECAY)) ||
            !(m->k_w = vlp_params_add(P, "ft.k.weight", 2, sk, 0)) ||
            !(m->k_b = vlp_params_add(P, "ft.k.bias", 1, sb, VLP_FLAG_NO_DECAY)))
            goto fail;
    } else if (head != VLP_FT_HEAD_ITM && head != VLP_FT_HEAD_LM) {
        int64_t W = vl->cfg.width, in = head == VLP_FT_HEAD_PAIR_MLP ? 2 * W : W, H = 2 * W;
        int64_t s1[2] = {H, in}, sh[1] = {H}, s2[2] = {classes, H}, sc[1] = {classes};
        const int ND = VLP_FLAG_NO_DECAY;
        if (!(m->fc1_w = vlp_params_add(P, "ft.fc1.weight", 2, s1, 0)) ||
            !(m->fc1_b = vlp_params_add(P, "ft.fc1.bias", 1, sh, ND)) ||
            !(m->ln_w = vlp_params_add(P, "ft.ln.weight", 1, sh, ND)) ||
            !(m->ln_b = vlp_params_add(P, "ft.ln.bias", 1, sh, ND)) ||
            !(m->fc2_w = vlp_params_add(P, "ft.fc2.weight", 2, s2, 0)) ||
            !(m->fc2_b = vlp_params_add(P, "ft.fc2.bias", 1, sc, ND)))
            goto fail;
    }
    if (vlp_params_alloc(P)) goto fail;
    for (int i = 0; i < nb; i++) { /* re-point the backbone's tensors into the shared store */
        vlp_tensor *b = vlp_params_get(vl->params, i), *t = vlp_params_get(P, i);
        memcpy(t->data, b->data, (size_t)b->numel * sizeof(float));
        b->data = t->data;
        b->grad = t->grad;
        b->flags = (b->flags & ~(VLP_FLAG_REQUIRES_GRAD | VLP_FLAG_FROZEN)) |
                   (t->flags & (VLP_FLAG_REQUIRES_GRAD | VLP_FLAG_FROZEN));
    }
    if (m->q_w) {
        vlp_init_normal(m->q_w, 0.0f, 0.02f, seed ^ 0x6674310003ull);
        vlp_init_normal(m->k_w, 0.0f, 0.02f, seed ^ 0x6674310004ull);
    }
    if (m->fc1_w) {
        vlp_init_normal(m->fc1_w, 0.0f, 0.02f, seed ^ 0x6674310001ull);
        vlp_init_normal(m->fc2_w, 0.0f, 0.02f, seed ^ 0x6674310002ull);
        vlp_init_const(m->ln_w, 1.0f);
    }
    return m;
oom:
    vlp_set_error("vlp_ft_new: out of memory");
fail:
    vlp_ft_free(m);
    return NULL;
}

static void model_dir(const char *path, char *dir, size_t cap) {
    struct stat sb;
    snprintf(dir, cap, "%s", path);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, cap, ".");
}

int vlp_ft_save(const vlp_ft_model *m, const char *dir) {
    if (!m || !dir) {
        vlp_set_error("vlp_ft_save: NULL argument");
        return VLP_ERR_ARG;
    }
    int rc = vlp_vl_save(m->vl, dir); /* config.json (+ the backbone's tensors, replaced below) */
    if (rc) return rc;
    int n = vlp_params_count(m->params);
    vlp_st_entry *e = calloc((size_t)n, sizeof *e);
    if (!e) {
        vlp_set_error("vlp_ft_save: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        e[i].name = t->name;
        e[i].data = t->data;
        e[i].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) e[i].shape[k] = t->shape[k];
        e[i].store_as = VLP_ST_F32;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", "producer", "vlp " VLP_VERSION, "family", vlp_vl_family_name(m->vl->cfg.family),
                          "finetune", vlp_task_name(m->task), NULL};
    rc = vlp_st_save(path, e, n, meta);
    free(e);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        vlp_set_error("%s: %s", path, je.text);
        return VLP_ERR_IO;
    }
    json_t *ft = json_object(), *fr = json_array();
    json_object_set_new(ft, "task", json_string(vlp_task_name(m->task)));
    json_object_set_new(ft, "head", json_string(head_names[m->head]));
    json_object_set_new(ft, "classes", json_integer(m->classes));
    static const char *parts[3] = {"vision", "text", "embeddings"};
    for (int i = 0; i < 3; i++)
        if (m->freeze & (1 << i)) json_array_append_new(fr, json_string(parts[i]));
    json_object_set_new(ft, "freeze", fr);
    if (m->answers) {
        json_t *a = json_array();
        for (int i = 0; i < m->classes; i++) json_array_append_new(a, json_string(m->answers[i]));
        json_object_set_new(ft, "answers", a);
    }
    json_object_set_new(root, "finetune", ft);
    return vlp_json_save_atomic(root, path);
}

static json_t *load_ft_json(const char *path, json_t **root, char *cfgpath, size_t cap) {
    char dir[4096];
    model_dir(path, dir, sizeof dir);
    snprintf(cfgpath, cap, "%s/config.json", dir);
    json_error_t je;
    *root = json_load_file(cfgpath, 0, &je);
    return *root ? json_object_get(*root, "finetune") : NULL;
}

int vlp_ft_is_finetuned(const char *path) {
    if (!path) return 0;
    char cp[4200];
    json_t *root, *ft = load_ft_json(path, &root, cp, sizeof cp);
    int r = json_is_object(ft);
    json_decref(root);
    return r;
}

vlp_ft_model *vlp_ft_load(const char *path) {
    if (!path) {
        vlp_set_error("vlp_ft_load: path is NULL");
        return NULL;
    }
    if (access(path, F_OK)) {
        vlp_set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    char cp[4200], file[4400], dir[4096];
    json_t *root, *ft = load_ft_json(path, &root, cp, sizeof cp);
    vlp_ft_model *m = NULL;
    char **answers = NULL;
    int na = 0;
    if (!json_is_object(ft)) {
        vlp_set_error("%s: not a fine-tuned model (no \"finetune\" in config.json; fine-tune it with vlp finetune)",
                      path);
        goto done;
    }
    const char *ts = json_string_value(json_object_get(ft, "task")), *hs = json_string_value(json_object_get(ft, "head"));
    json_t *cl = json_object_get(ft, "classes"), *an = json_object_get(ft, "answers"), *fr = json_object_get(ft, "freeze");
    vlp_task_kind task;
    int head = -1, freeze = 0;
    if (!ts || vlp_task_from_name(ts, &task) || !hs || !json_is_integer(cl)) {
        vlp_set_error("%s: \"finetune\" needs \"task\", \"head\" and \"classes\"", cp);
        goto done;
    }
    for (int i = 0; i < VLP_FT_HEAD_COUNT; i++)
        if (!strcmp(hs, head_names[i])) head = i;
    for (size_t i = 0; json_is_array(fr) && i < json_array_size(fr); i++)
        if (vlp_ft_freeze_parse(json_string_value(json_array_get(fr, i)), &freeze)) goto done;
    int classes = (int)json_integer_value(cl);
    if (task == VLP_TASK_VQA && head != VLP_FT_HEAD_LM) {
        if (!json_is_array(an) || (int)json_array_size(an) != classes) {
            vlp_set_error("%s: \"finetune\".\"answers\" must list the %d answers", cp, classes);
            goto done;
        }
        if (!(answers = calloc((size_t)classes, sizeof *answers))) goto done;
        na = classes;
        for (int i = 0; i < classes; i++) {
            const char *s = json_string_value(json_array_get(an, (size_t)i));
            if (!s || !(answers[i] = strdup(s))) {
                vlp_set_error("%s: answer %d is not a string", cp, i);
                goto done;
            }
        }
    }
    vlp_vl *vl = vlp_vl_load(path);
    if (!vl) goto done;
    if (!(m = vlp_ft_new(vl, task, head, classes, (const char *const *)answers, freeze, 0))) goto done;
    { /* the head's tensors ("ft.*") */
        model_dir(path, dir, sizeof dir);
        struct stat sb;
        if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s", path);
        else snprintf(file, sizeof file, "%s/model.safetensors", dir);
        vlp_safetensors *st = vlp_st_open(file);
        int rc = st ? VLP_OK : VLP_ERR_IO;
        for (int i = 0; !rc && i < vlp_params_count(m->params); i++) {
            vlp_tensor *h = vlp_params_get(m->params, i);
            if (strncmp(h->name, "ft.", 3)) continue;
            int idx = vlp_st_find(st, h->name), nd = 0;
            vlp_st_dtype dt;
            int64_t shape[8];
            if (idx < 0) {
                vlp_set_error("%s: missing tensor '%s'", file, h->name);
                rc = VLP_ERR_IO;
                break;
            }
            vlp_st_info(st, idx, &dt, &nd, shape);
            int same = nd == h->ndim;
            for (int k = 0; same && k < nd; k++) same = shape[k] == h->shape[k];
            if (!same) {
                vlp_set_error("%s: tensor '%s' does not fit the head of %d classes", file, h->name, classes);
                rc = VLP_ERR_IO;
                break;
            }
            rc = vlp_st_read_f32(st, idx, h->data, h->numel);
        }
        vlp_st_close(st);
        if (rc) {
            vlp_ft_free(m);
            m = NULL;
        }
    }
done:
    free_answers(answers, na);
    json_decref(root);
    return m;
}

/* ---- position embeddings at another image size ---------------------------------------------- */

/* torch's cubic convolution weights (A = -0.75) for the fraction t */
static void cubic_weights(double t, double w[4]) {
    const double A = -0.75;
    double x;
    x = t + 1;
    w[0] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    x = t;
    w[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 1 - t;
    w[2] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 2 - t;
    w[3] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

int vlp_pos_embed_resize(const float *src, int gin, int gout, int dim, float *dst) {
    if (!src || !dst || gin < 1 || gout < 1 || dim < 1) {
        vlp_set_error("vlp_pos_embed_resize: bad arguments (grid %d -> %d, dim %d)", gin, gout, dim);
        return VLP_ERR_ARG;
    }
    double scale = (double)gin / gout;
    for (int oy = 0; oy < gout; oy++)
        for (int ox = 0; ox < gout; ox++) {
            double sy = (oy + 0.5) * scale - 0.5, sx = (ox + 0.5) * scale - 0.5; /* align_corners = False */
            int y0 = (int)floor(sy), x0 = (int)floor(sx);
            double wy[4], wx[4];
            cubic_weights(sy - y0, wy);
            cubic_weights(sx - x0, wx);
            float *o = dst + ((size_t)oy * gout + ox) * dim;
            for (int d = 0; d < dim; d++) {
                double acc = 0;
                for (int i = 0; i < 4; i++) {
                    int yy = y0 - 1 + i < 0 ? 0 : y0 - 1 + i >= gin ? gin - 1 : y0 - 1 + i;
                    for (int j = 0; j < 4; j++) {
                        int xx = x0 - 1 + j < 0 ? 0 : x0 - 1 + j >= gin ? gin - 1 : x0 - 1 + j;
                        acc += wy[i] * wx[j] * src[((size_t)yy * gin + xx) * dim + d];
                    }
                }
                o[d] = (float)acc;
            }
        }
    return VLP_OK;
}

vlp_vl *vlp_ft_resize_image(const vlp_vl *m, int image_size) {
    if (!m) {
        vlp_set_error("vlp_ft_resize_image: model is NULL");
        return NULL;
    }
    const vlp_vl_config *c = &m->cfg;
    if (image_size < c->patch_size || image_size % c->patch_size) {
        vlp_set_error("image size %d is not a multiple of the model's patch size %d", image_size, c->patch_size);
        return NULL;
    }
    vlp_vl_config nc = *c;
    nc.image_size = image_size;
    vlp_vl *r = vlp_vl_new(&nc, 0);
    if (!r) return NULL;
    int gin = c->image_size / c->patch_size, gout = image_size / c->patch_size;
    for (int i = 0; i < vlp_params_count(r->params); i++) {
        vlp_tensor *t = vlp_params_get(r->params, i), *s = vlp_params_find(m->params, t->name);
        if (!s) {
            vlp_set_error("vlp_ft_resize_image: tensor '%s' missing from the source model", t->name);
            vlp_vl_free(r);
            return NULL;
        }
        if (t == r->vis_pos) { /* row 0: the class token; then the patch grid */
            int64_t dim = t->shape[1];
            memcpy(t->data, s->data, (size_t)dim * sizeof(float));
            vlp_pos_embed_resize((const float *)s->data + dim, gin, gout, (int)dim, (float *)t->data + dim);
        } else if (s->numel == t->numel) {
            memcpy(t->data, s->data, (size_t)t->numel * sizeof(float));
        } else {
            vlp_set_error("vlp_ft_resize_image: tensor '%s' changes size with the image", t->name);
            vlp_vl_free(r);
            return NULL;
        }
    }
    return r;
}

/* ---- graph -------------------------------------------------------------------------------- */

static vlp_tensor *mlp_head(vlp_graph *g, const vlp_ft_model *m, vlp_tensor *x) {
    vlp_tensor *h = vlp_linear(g, x, m->fc1_w, m->fc1_b);
    h = vlp_gelu(g, vlp_layernorm(g, h, m->ln_w, m->ln_b, m->vl->cfg.ln_eps));
    return vlp_linear(g, h, m->fc2_w, m->fc2_b);
}

int vlp_ft_graph_declare(vlp_graph *g, const vlp_ft_model *m, int batch, int train, vlp_ft_graph *o) {
    if (!g || !m || !o || batch < 1) {
        vlp_set_error("vlp_ft_graph_declare: bad arguments");
        return VLP_ERR_ARG;
    }
    memset(o, 0, sizeof *o);
    if (m->head == VLP_FT_HEAD_LM) return vlp_ft_lm_graph_declare(g, m, batch, train, o);
    const vlp_vl *vl = m->vl;
    const vlp_vl_config *c = &vl->cfg;
    int rows = m->head == VLP_FT_HEAD_ITM ? batch * m->classes : m->head == VLP_FT_HEAD_PAIR_MLP ? 2 * batch : batch;
    int64_t np = (int64_t)(c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    int64_t sp[4] = {rows, 3, c->image_size, c->image_size}, st[2] = {rows, c->max_text_len};
    o->batch = batch;
    o->rows = rows;
    o->pixels = vlp_input(g, "pixels", VLP_F32, 4, sp);
    o->ids = vlp_input(g, "ids", VLP_I32, 2, st);
    o->mask = vlp_input(g, "mask", VLP_I32, 2, st);
    if (m->head == VLP_FT_HEAD_CELL) { /* declared first: an inference graph may reuse the buffers of inputs
                                          declared after the nodes that run before their first reader */
        int64_t sc[2] = {np, m->classes};
        o->cells = vlp_input(g, "cells", VLP_F32, 2, sc);
    }
    vlp_tensor *ie = vlp_vl_embed_image(g, vl, o->pixels, NULL, NULL), *te = vlp_vl_embed_text(g, vl, o->ids);
    int emb = vlp_vl_fuses_embeddings(vl);
    vlp_tensor *img = emb ? ie : vlp_vl_encode_image(g, vl, ie), *txt = emb ? te : vlp_vl_encode_text(g, vl, te, o->mask);
    vlp_tensor *img_states = NULL, *s = NULL;
    vlp_tensor *fused = vlp_vl_fuse(g, vl, img, txt, o->mask, m->head == VLP_FT_HEAD_CELL ? &img_states : NULL);
    if (m->head == VLP_FT_HEAD_CELL) {
        /* <q, mean over the cell of k(patch)> / sqrt(W): q from the fused [CLS], k from the image tokens */
        int64_t W = c->width, s2[2] = {batch, W}, s3[3] = {batch, 1, W},
                sk[2] = {batch, m->classes};
        vlp_tensor *q = vlp_linear(g, vlp_reshape(g, vlp_slice(g, fused, 1, 0, 1), 2, s2), m->q_w, m->q_b);
        vlp_tensor *k = vlp_linear(g, img_states ? vlp_slice(g, img_states, 1, 1, np) : NULL, m->k_w, m->k_b);
        vlp_tensor *kc = vlp_matmul(g, k, o->cells, 1, 0); /* [B, W, cells] */
        s = vlp_scale(g, vlp_reshape(g, vlp_matmul(g, vlp_reshape(g, q, 3, s3), kc, 0, 0), 2, sk),
                      1.0f / sqrtf((float)W));
    } else if (m->head == VLP_FT_HEAD_ANSWER_MLP) {
        s = mlp_head(g, m, vlp_vl_pool(g, vl, fused));
    } else if (m->head == VLP_FT_HEAD_ITM) {
        /* the ITM log-odds of each (image, choice): log p(match) - log p(no match) */
        vlp_tensor *l = vlp_vl_itm_logits(g, vl, fused);
        vlp_tensor *d = vlp_add(g, vlp_slice(g, l, 1, 1, 1), vlp_scale(g, vlp_slice(g, l, 1, 0, 1), -1.0f));
        int64_t sh[2] = {batch, m->classes};
        s = vlp_reshape(g, d, 2, sh);
    } else {
        vlp_tensor *p = vlp_vl_pool(g, vl, fused); /* rows 0..B-1 left image, B..2B-1 right */
        s = mlp_head(g, m, vlp_concat(g, vlp_slice(g, p, 0, 0, batch), vlp_slice(g, p, 0, batch, batch), 1));
    }
    o->scores = vlp_keep(s);
    if (train) {
        int64_t sl[1] = {batch};
        o->labels = vlp_input(g, "labels", VLP_I32, 1, sl);
        o->loss = vlp_cross_entropy(g, s, o->labels, -1);
    }
    if (vlp_graph_error(g) || !o->scores || (train && !o->loss)) {
        vlp_set_error("fine-tuning graph (%s head): %s", head_names[m->head],
                      vlp_graph_error(g) ? vlp_graph_error(g) : "cannot build");
        return VLP_ERR_ARG;
    }
    return VLP_OK;
}

/* ---- data --------------------------------------------------------------------------------- */

/* struct vlp_ft_data: finetune_internal.h */

void vlp_ft_data_free(vlp_ft_data *d) {
    if (!d) return;
    free(d->img);
    free(d->img_a);
    free(d->img_b);
    free(d->ids);
    free(d->mask);
    free(d->label);
    free(d->lm);
    free(d->pre);
    free(d->pre_len);
    free(d);
}

int64_t vlp_ft_data_size(const vlp_ft_data *d) { return d ? d->n : 0; }
int64_t vlp_ft_data_labelled(const vlp_ft_data *d) { return d ? d->labelled : 0; }

typedef struct {
    const char *s;
    int64_t i;
} str_ref;

static int cmp_ref(const void *a, const void *b) {
    const str_ref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int load_rgb(const char *path, int S, uint8_t *out) {
    vlp_image im, r;
    int rc = vlp_image_load(path, NULL, &im);
    if (rc) return rc;
    rc = vlp_image_resize_crop(&im, S, &r);
    vlp_image_free(&im);
    if (rc) return rc;
    rc = vlp_image_to_rgb(&r, 0, out);
    vlp_image_free(&r);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void free_why(char **why_img, int64_t n_img, const char **why) {
    for (int64_t i = 0; why_img && i < n_img; i++) free(why_img[i]);
    free(why_img);
    free(why);
}

static int cmp_str_p(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* drop: rows whose images cannot be decoded leave s (vlp_task_drop) instead of failing; with
 * drop 0, s is only read. */
static vlp_ft_data *data_new(const vlp_ft_model *m, vlp_task_set *s, vlp_tokenizer *tok, int drop) {
    if (!m || !s || !tok) {
        vlp_set_error("vlp_ft_data_new: NULL argument");
        return NULL;
    }
    if (s->kind != m->task) {
        vlp_set_error("%s: a %s file, the model is fine-tuned for %s", s->path, vlp_task_name(s->kind),
                      vlp_task_name(m->task));
        return NULL;
    }
    if (vlp_tokenizer_vocab_size(tok) != m->vl->cfg.vocab_size) {
        vlp_set_error("the tokenizer has %d tokens, the model's vocabulary %d", vlp_tokenizer_vocab_size(tok),
                      m->vl->cfg.vocab_size);
        return NULL;
    }
    vlp_ft_data *d = calloc(1, sizeof *d);
    str_ref *refs = NULL;
    char **sorted = NULL, **why_img = NULL;
    const char **why = NULL;
    if (!d) goto oom;
    const vlp_vl_config *c = &m->vl->cfg;
    d->set = s;
    d->n = s->n;
    d->S = c->image_size;
    d->T = c->max_text_len;
    d->per = m->task == VLP_TASK_MC ? m->classes : 1;
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 256; v++) d->lut[ch][v] = ((float)v / 255.0f - c->mean[ch]) / c->std[ch];
    int two = m->task == VLP_TASK_NLVR;
    int64_t n = s->n, nref = n * (two ? 2 : 1), nt = n * d->per;
    d->img_a = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    d->img_b = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    d->ids = malloc((size_t)(nt ? nt : 1) * (size_t)d->T * sizeof(int32_t));
    d->mask = malloc((size_t)(nt ? nt : 1) * (size_t)d->T * sizeof(int32_t));
    d->label = malloc((size_t)(n ? n : 1) * sizeof(int));
    refs = malloc((size_t)(nref ? nref : 1) * sizeof *refs);
    if (!d->img_a || !d->img_b || !d->ids || !d->mask || !d->label || !refs) goto oom;
    /* each distinct image once: sort the paths, number the distinct ones */
    for (int64_t i = 0; i < n; i++) {
        refs[i] = (str_ref){s->ex[i].image, i};
        if (two) refs[n + i] = (str_ref){s->ex[i].image2, n + i};
    }
    qsort(refs, (size_t)nref, sizeof *refs, cmp_ref);
    for (int64_t i = 0; i < nref; i++) {
        if (i == 0 || strcmp(refs[i].s, refs[i - 1].s)) d->n_img++;
        int64_t k = refs[i].i, id = d->n_img - 1;
        if (k < n) d->img_a[k] = id;
        else d->img_b[k - n] = id;
    }
    size_t isz = (size_t)d->S * d->S * 3;
    if (!(d->img = malloc((d->n_img ? (size_t)d->n_img : 1) * isz))) goto oom;
    if (!(why_img = calloc((size_t)(d->n_img ? d->n_img : 1), sizeof *why_img)) ||
        !(why = calloc((size_t)(n ? n : 1), sizeof *why)))
        goto oom;
    int64_t n_unread = 0;
    for (int64_t i = 0, id = -1; i < nref; i++) {
        if (i && !strcmp(refs[i].s, refs[i - 1].s)) {
            if (why_img[id] && !why[refs[i].i % n]) why[refs[i].i % n] = why_img[id];
            continue;
        }
        id++;
        if (load_rgb(refs[i].s, d->S, d->img + (size_t)id * isz)) {
            /* the decoded pixels are the check: each distinct image is read once, here */
            int64_t k = refs[i].i % n;
            char *msg = ev_image_problem(refs[i].s, vlp_last_error());
            if (!msg) goto oom;
            why_img[id] = msg;
            if (!why[k]) why[k] = msg;
            n_unread++;
        }
    }
    if (n_unread && !drop) { /* the first such row in file order is the error */
        vlp_task_drop(s, why, VLP_TASK_BAD_IMAGE, 1);
        goto fail;
    }
    if (n_unread) { /* those rows leave the set; the kept rows keep their image ids, in order */
        int64_t j = 0;
        for (int64_t i = 0; i < n; i++)
            if (!why[i]) {
                d->img_a[j] = d->img_a[i];
                d->img_b[j] = d->img_b[i];
                j++;
            }
        if (vlp_task_drop(s, why, VLP_TASK_BAD_IMAGE, 0) < 0) goto fail;
        d->n = n = s->n;
    }
    /* texts */
    for (int64_t i = 0; i < n; i++) {
        const vlp_task_example *e = &s->ex[i];
        if (m->head == VLP_FT_HEAD_CELL && e->grid * e->grid != m->classes) {
            vlp_set_error("%s:%lld: a %d x %d grid, the model scores %d cells", s->path, (long long)e->line, e->grid,
                          e->grid, m->classes);
            goto fail;
        }
        if (m->task == VLP_TASK_MC && e->n_choices != m->classes) {
            vlp_set_error("%s:%lld: %d choices, the model scores %d per question", s->path, (long long)e->line,
                          e->n_choices, m->classes);
            goto fail;
        }
        for (int k = 0; k < d->per; k++) {
            const char *txt = m->task == VLP_TASK_MC ? e->choices[k] : e->text;
            size_t o = (size_t)(i * d->per + k) * (size_t)d->T;
            if (vlp_tokenizer_encode_pair(tok, txt ? txt : "", NULL, d->T, d->ids + o, NULL, d->mask + o) < 0) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", vlp_last_error());
                vlp_set_error("%s:%lld: %s", s->path, (long long)e->line, msg);
                goto fail;
            }
        }
    }
    /* labels */
    if (m->task == VLP_TASK_VQA && m->answers) {
        if (!(sorted = malloc((size_t)m->classes * sizeof *sorted))) goto oom;
        memcpy(sorted, m->answers, (size_t)m->classes * sizeof *sorted);
        qsort(sorted, (size_t)m->classes, sizeof *sorted, cmp_str_p);
    }
    for (int64_t i = 0; i < n; i++) {
        const vlp_task_example *e = &s->ex[i];
        d->label[i] = -1;
        if (m->head == VLP_FT_HEAD_LM) {
            d->label[i] = 0; /* generative: any answer is a target (vlp_ft_lm_prepare) */
        } else if (m->task == VLP_TASK_VQA) {
            char *a = vlp_answer_normalize(e->answer ? e->answer : "");
            if (!a) goto oom;
            char **hit = bsearch(&a, sorted, (size_t)m->classes, sizeof *sorted, cmp_str_p);
            free(a);
            if (hit)
                for (int k = 0; k < m->classes; k++)
                    if (m->answers[k] == *hit) d->label[i] = k;
        } else {
            d->label[i] = e->label;
            if (e->label < 0 || e->label >= m->classes) {
                vlp_set_error("%s:%lld: label %d is outside 0..%d", s->path, (long long)e->line, e->label,
                              m->classes - 1);
                goto fail;
            }
        }
        d->labelled += d->label[i] >= 0;
    }
    if (m->head == VLP_FT_HEAD_LM && vlp_ft_lm_prepare(m, d, tok)) goto fail;
    free(sorted);
    free(refs);
    free_why(why_img, d->n_img, why);
    return d;
oom:
    vlp_set_error("vlp_ft_data_new: out of memory");
fail:
    free(sorted);
    free(refs);
    free_why(why_img, d ? d->n_img : 0, why);
    vlp_ft_data_free(d);
    return NULL;
}

vlp_ft_data *vlp_ft_data_new(const vlp_ft_model *m, const vlp_task_set *s, vlp_tokenizer *tok) {
    return data_new(m, (vlp_task_set *)s, tok, 0); /* drop 0: s is only read */
}

vlp_ft_data *vlp_ft_data_new_ex(const vlp_ft_model *m, vlp_task_set *s, vlp_tokenizer *tok,
                                const vlp_task_read_options *opt) {
    return data_new(m, s, tok, !(opt && opt->strict));
}

static void put_image(const vlp_ft_data *d, int64_t id, float *out) {
    const uint8_t *rgb = d->img + (size_t)id * d->S * d->S * 3;
    size_t np = (size_t)d->S * d->S;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < np; i++) out[c * np + i] = d->lut[c][rgb[3 * i + c]];
}

int vlp_ft_data_fill(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *rows, int n, const vlp_ft_graph *g) {
    if (!m || !d || !rows || !g || n < 1 || n > g->batch) {
        vlp_set_error("vlp_ft_data_fill: bad arguments (%d examples for a batch of %d)", n, g ? g->batch : 0);
        return VLP_ERR_ARG;
    }
    if (m->head == VLP_FT_HEAD_LM) return vlp_ft_lm_fill(m, d, rows, n, g);
    int B = g->batch, T = d->T;
    size_t px = (size_t)3 * d->S * d->S;
    float *P = g->pixels->data;
    int32_t *I = g->ids->data, *M = g->mask->data, *L = g->labels ? g->labels->data : NULL;
    if (g->cells) { /* patch p (row-major patch grid) averages into the cell holding its centre */
        int gp = d->S / m->vl->cfg.patch_size, gc = (int)lround(sqrt((double)m->classes));
        float *A = g->cells->data;
        int cnt[64 * 64] = {0};
        memset(A, 0, (size_t)gp * gp * (size_t)m->classes * sizeof(float));
        for (int pass = 0; pass < 2; pass++)
            for (int p = 0; p < gp * gp; p++) {
                int cell = ((2 * (p / gp) + 1) * gc / (2 * gp)) * gc + (2 * (p % gp) + 1) * gc / (2 * gp);
                if (pass == 0) cnt[cell]++;
                else A[(size_t)p * m->classes + cell] = 1.0f / (float)cnt[cell];
            }
    }
    for (int r = 0; r < B; r++) {
        int64_t e = rows[r < n ? r : n - 1];
        if (e < 0 || e >= d->n) {
            vlp_set_error("vlp_ft_data_fill: example %lld is outside the %lld examples", (long long)e, (long long)d->n);
            return VLP_ERR_ARG;
        }
        int lab = r < n ? d->label[e] : -1;
        if (lab >= m->classes) {
            vlp_set_error("%s: example %lld: label %d is outside 0..%d", d->set->path, (long long)e, lab,
                          m->classes - 1);
            return VLP_ERR_ARG;
        }
        if (L) L[r] = lab;
        for (int k = 0; k < (m->head == VLP_FT_HEAD_ITM ? m->classes : 1); k++) {
            int row = m->head == VLP_FT_HEAD_ITM ? r * m->classes + k : r;
            put_image(d, d->img_a[e], P + (size_t)row * px);
            memcpy(I + (size_t)row * T, d->ids + (size_t)(e * d->per + k) * T, (size_t)T * sizeof(int32_t));
            memcpy(M + (size_t)row * T, d->mask + (size_t)(e * d->per + k) * T, (size_t)T * sizeof(int32_t));
        }
        if (m->head == VLP_FT_HEAD_PAIR_MLP) { /* the right image with the same statement */
            put_image(d, d->img_b[e], P + (size_t)(B + r) * px);
            memcpy(I + (size_t)(B + r) * T, d->ids + (size_t)e * T, (size_t)T * sizeof(int32_t));
            memcpy(M + (size_t)(B + r) * T, d->mask + (size_t)e * T, (size_t)T * sizeof(int32_t));
        }
    }
    return VLP_OK;
}

int vlp_ft_answers(const vlp_task_set *train, char ***answers, int *n) {
    if (!train || !answers || !n || train->kind != VLP_TASK_VQA) {
        vlp_set_error("vlp_ft_answers: needs a vqa task set");
        return VLP_ERR_ARG;
    }
    /* distinct normalised answers in order of first appearance: sort (answer, row), keep firsts */
    int64_t m = train->n;
    str_ref *r = malloc((size_t)(m ? m : 1) * sizeof *r);
    char **norm = calloc((size_t)(m ? m : 1), sizeof *norm), **out = NULL;
    int64_t *first = malloc((size_t)(m ? m : 1) * sizeof *first), k = 0;
    int rc = VLP_ERR_NOMEM;
    if (!r || !norm || !first) goto done;
    for (int64_t i = 0; i < m; i++) {
        if (!(norm[i] = vlp_answer_normalize(train->ex[i].answer ? train->ex[i].answer : ""))) goto done;
        r[i] = (str_ref){norm[i], i};
    }
    qsort(r, (size_t)m, sizeof *r, cmp_ref);
    for (int64_t i = 0; i < m; i++)
        if (i == 0 || strcmp(r[i].s, r[i - 1].s)) first[k++] = r[i].i;
    qsort(first, (size_t)k, sizeof *first, cmp_i64);
    if (k > (1 << 20) || !(out = calloc((size_t)(k ? k : 1), sizeof *out))) goto done;
    for (int64_t i = 0; i < k; i++) {
        out[i] = norm[first[i]];
        norm[first[i]] = NULL;
    }
    *answers = out;
    *n = (int)k;
    rc = VLP_OK;
done:
    if (rc) vlp_set_error("vlp_ft_answers: out of memory");
    for (int64_t i = 0; norm && i < m; i++) free(norm[i]);
    free(norm);
    free(r);
    free(first);
    return rc;
}

/* ---- prediction ----------------------------------------------------------------------------- */

int vlp_ft_predict(const vlp_ft_model *m, const vlp_ft_data *d, int batch, vlp_task_predictions **pred,
                   float **probs) {
    if (!m || !d || !pred) {
        vlp_set_error("vlp_ft_predict: NULL argument");
        return VLP_ERR_ARG;
    }
    *pred = NULL;
    if (probs) *probs = NULL;
    if (m->head == VLP_FT_HEAD_LM) return vlp_ft_lm_predict(m, d, batch, pred);
    int64_t n = d->n;
    int B = batch > 0 ? batch : 64, C = m->classes;
    if (B > n) B = n > 0 ? (int)n : 1;
    vlp_task_predictions *p = calloc(1, sizeof *p);
    float *pr = malloc((size_t)(n ? n : 1) * (size_t)C * sizeof(float));
    int64_t *rows = malloc((size_t)B * sizeof *rows);
    vlp_graph *g = vlp_graph_new();
    vlp_ft_graph fg;
    int rc = VLP_ERR_NOMEM;
    if (!p || !pr || !rows || !g) {
        vlp_set_error("vlp_ft_predict: out of memory");
        goto fail;
    }
    p->kind = d->set->kind;
    p->n = n;
    if (m->task == VLP_TASK_VQA ? !(p->text = calloc((size_t)(n ? n : 1), sizeof *p->text))
                                : !(p->label = calloc((size_t)(n ? n : 1), sizeof *p->label)))
        goto fail;
    if ((rc = vlp_ft_graph_declare(g, m, B, 0, &fg))) goto fail;
    if ((rc = vlp_graph_build(g, fg.scores, VLP_BUILD_INFERENCE))) goto fail;
    for (int64_t s = 0; s < n; s += B) {
        int k = n - s < B ? (int)(n - s) : B;
        for (int i = 0; i < k; i++) rows[i] = s + i;
        if ((rc = vlp_ft_data_fill(m, d, rows, k, &fg)) || (rc = vlp_graph_forward(g))) goto fail;
        const float *sc = fg.scores->data;
        for (int i = 0; i < k; i++) {
            const float *x = sc + (size_t)i * C;
            float *o = pr + (size_t)(s + i) * C, mx = x[0];
            int best = 0;
            for (int c = 1; c < C; c++)
                if (x[c] > x[best]) best = c;
            mx = x[best];
            double z = 0;
            for (int c = 0; c < C; c++) z += exp((double)x[c] - mx);
            for (int c = 0; c < C; c++) o[c] = (float)(exp((double)x[c] - mx) / z);
            if (p->text) {
                if (!(p->text[s + i] = strdup(m->answers[best]))) {
                    rc = VLP_ERR_NOMEM;
                    vlp_set_error("vlp_ft_predict: out of memory");
                    goto fail;
                }
            } else {
                p->label[s + i] = best;
            }
        }
    }
    vlp_graph_free(g);
    free(rows);
    *pred = p;
    if (probs) *probs = pr;
    else free(pr);
    return VLP_OK;
fail:
    vlp_graph_free(g);
    free(rows);
    free(pr);
    vlp_task_predictions_free(p);
    return rc ? rc : VLP_ERR_ARG;
}

double vlp_ft_accuracy(const vlp_ft_data *d, const vlp_task_predictions *p) {
    if (!d || !p || p->n != d->n || d->n == 0) return NAN;
    int64_t ok = 0;
    for (int64_t i = 0; i < d->n; i++) {
        const vlp_task_example *e = &d->set->ex[i];
        if (p->text) {
            char *a = vlp_answer_normalize(e->answer ? e->answer : ""), *b = vlp_answer_normalize(p->text[i]);
            ok += a && b && !strcmp(a, b);
            free(a);
            free(b);
        } else {
            ok += p->label[i] == e->label;
        }
    }
    return (double)ok / (double)d->n;
}

/* ---- the trainer's fine-tuning kind ----------------------------------------------------------- */

typedef struct {
    vlp_ft_model *m;
    const vlp_ft_data *d;
    vlp_ft_graph fg;
    float lr_decay;
    float *scale; /* per parameter of m->params (lr_decay < 1) */
    float *snap;  /* the parameters before the optimiser step */
    char kind[96];
} ft_ctx;

/* Depth of a backbone parameter in its stack: *layer (0-based) and *n (layers in that stack);
 * returns 0 for layers, 1 for embeddings, 2 for everything else (norms on top, heads). */
static int param_depth(const vlp_vl_config *c, const char *name, int *layer, int *n) {
    int l;
    if (sscanf(name, "vision.blocks.%d.", &l) == 1) {
        *layer = l, *n = c->vision_layers;
        return 0;
    }
    if (sscanf(name, "vision.co_blocks.%d.", &l) == 1) { /* the image stream's fusion layers sit on the ViT */
        *layer = c->vision_layers + l, *n = c->vision_layers + c->fusion_layers;
        return 0;
    }
    if (sscanf(name, "text.encoder.layer.%d.", &l) == 1 || sscanf(name, "blocks.%d.", &l) == 1) {
        *layer = l, *n = c->layers;
        return 0;
    }
    int vis = starts(name, "vision.patch_embed") || starts(name, "vision.class_embedding") ||
              starts(name, "vision.pos_embed");
    if (vis) {
        *n = c->family == VLP_VL_DUAL ? c->vision_layers + (c->co_attention ? c->fusion_layers : 0) : c->layers;
        return 1;
    }
    if (starts(name, "text.embeddings.") || starts(name, "text.word_embeddings") || starts(name, "text.pos_embed") ||
        starts(name, "text.emb_ln") || starts(name, "type_embed")) {
        *n = c->layers;
        return 1;
    }
    return 2;
}

float vlp_ft_lr_scale(const vlp_ft_model *m, int i, float d) {
    vlp_tensor *t = m ? vlp_params_get(m->params, i) : NULL;
    if (!t || !(d > 0) || d >= 1) return 1.0f;
    int layer = 0, n = 0, k = param_depth(&m->vl->cfg, t->name, &layer, &n);
    if (k == 2) return 1.0f;
    return powf(d, (float)(k == 1 ? n + 1 : n - layer));
}

static const char *ft_kind(const vlp_trainer *t) { return ((ft_ctx *)t->ext)->kind; }

static int ft_build(vlp_trainer *t) {
    ft_ctx *c = t->ext;
    int rc = vlp_ft_graph_declare(t->g, c->m, t->micro, 1, &c->fg);
    t->loss = rc ? NULL : c->fg.loss;
    return rc;
}

static int ft_fill(vlp_trainer *t, const vlp_batch *b, int k) {
    ft_ctx *c = t->ext;
    if (!b->index) {
        vlp_set_error("fine-tuning: the batch source gives no example indices (use vlp_ft_batch_source)");
        return VLP_ERR_ARG;
    }
    return vlp_ft_data_fill(c->m, c->d, b->index + (int64_t)k * t->micro, t->micro, &c->fg);
}

static void ft_before_step(vlp_trainer *t) {
    ft_ctx *c = t->ext;
    if (c->snap) memcpy(c->snap, vlp_params_data(t->params), (size_t)vlp_params_numel(t->params) * sizeof(float));
}

/* Layer-wise decay: AdamW at lr * s equals w + s * (w_adamw(lr) - w), decay term included. */
static float ft_after_step(vlp_trainer *t) {
    ft_ctx *c = t->ext;
    if (!c->snap) return 0.0f;
    for (int i = 0; i < vlp_params_count(t->params); i++) {
        vlp_tensor *p = vlp_params_get(t->params, i);
        float s = c->scale[i];
        if (!p->grad || s == 1.0f) continue;
        float *w = p->data;
        const float *w0 = c->snap + p->off_data;
        for (int64_t j = 0; j < p->numel; j++) w[j] = w0[j] + s * (w[j] - w0[j]);
    }
    return 0.0f;
}

static int ft_save(const vlp_trainer *t, const char *dir) { return vlp_ft_save(((ft_ctx *)t->ext)->m, dir); }

static int ft_load_params(vlp_trainer *t, const char *dir, float *dst) {
    ft_ctx *c = t->ext;
    vlp_ft_model *src = vlp_ft_load(dir);
    if (!src) return VLP_ERR_IO;
    int rc = VLP_OK;
    if (src->task != c->m->task || src->head != c->m->head || src->classes != c->m->classes ||
        src->vl->cfg.family != c->m->vl->cfg.family) {
        vlp_set_error("%s: the checkpoint fine-tunes a %s model for %s (%s head, %d classes), the run a %s model for %s "
                      "(%s head, %d classes)", dir, vlp_vl_family_name(src->vl->cfg.family), vlp_task_name(src->task),
                      head_names[src->head], src->classes, vlp_vl_family_name(c->m->vl->cfg.family),
                      vlp_task_name(c->m->task), head_names[c->m->head], c->m->classes);
        rc = VLP_ERR_ARG;
    }
    for (int i = 0; !rc && src->answers && i < src->classes; i++)
        if (strcmp(src->answers[i], c->m->answers[i])) {
            vlp_set_error("%s: the checkpoint's answer %d is '%s', the run's '%s'", dir, i, src->answers[i],
                          c->m->answers[i]);
            rc = VLP_ERR_ARG;
        }
    if (!rc) rc = vlp_train_same_params(t->params, src->params, dir);
    if (!rc) memcpy(dst, vlp_params_data(src->params), (size_t)vlp_params_numel(src->params) * sizeof(float));
    vlp_ft_free(src);
    return rc;
}

static void ft_free(vlp_trainer *t) {
    ft_ctx *c = t->ext;
    if (!c) return;
    free(c->scale);
    vlp_free(c->snap);
    free(c);
    t->ext = NULL;
}

static const vlp_train_model_ops ft_ops = {ft_kind, ft_build, ft_fill, ft_after_step, ft_save, ft_load_params, ft_free,
                                           ft_before_step, NULL};

vlp_trainer *vlp_trainer_new_ft(vlp_ft_model *m, const vlp_ft_data *train, const vlp_train_config *cfg,
                                float lr_decay) {
    if (!m || !train) {
        vlp_set_error("vlp_trainer_new_ft: NULL argument");
        return NULL;
    }
    if (!(lr_decay > 0) || lr_decay > 1) {
        vlp_set_error("vlp_trainer_new_ft: lr_decay %g must be in (0, 1]", (double)lr_decay);
        return NULL;
    }
    if (cfg && cfg->loss != VLP_ITC_CLIP) {
        vlp_set_error("vlp_trainer_new_ft: fine-tuning uses cross-entropy; loss must be left at clip");
        return NULL;
    }
    ft_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        vlp_set_error("vlp_trainer_new_ft: out of memory");
        return NULL;
    }
    c->m = m;
    c->d = train;
    c->lr_decay = lr_decay;
    snprintf(c->kind, sizeof c->kind, "ft/%s/%s/%s", vlp_task_name(m->task), head_names[m->head],
             vlp_vl_family_name(m->vl->cfg.family));
    if (lr_decay < 1) {
        int np = vlp_params_count(m->params);
        c->scale = malloc((size_t)np * sizeof(float));
        c->snap = vlp_aligned_alloc((size_t)vlp_params_numel(m->params) * sizeof(float));
        if (!c->scale || !c->snap) {
            vlp_set_error("vlp_trainer_new_ft: out of memory");
            free(c->scale);
            vlp_free(c->snap);
            free(c);
            return NULL;
        }
        for (int i = 0; i < np; i++) c->scale[i] = vlp_ft_lr_scale(m, i, lr_decay);
    }
    vlp_trainer *t = vlp_trainer_alloc(&ft_ops, m->params, cfg);
    if (!t) {
        free(c->scale);
        vlp_free(c->snap);
        free(c);
        return NULL;
    }
    t->ext = c;
    return vlp_trainer_finish(t);
}

vlp_ft_model *vlp_trainer_ft_model(vlp_trainer *t) {
    return t && t->ops == &ft_ops ? ((ft_ctx *)t->ext)->m : NULL;
}

/* ---- batch source ----------------------------------------------------------------------------- */

typedef struct {
    int64_t *lab, nl;  /* labelled examples */
    int64_t *perm, perm_epoch;
    int batch;
    uint64_t seed;
    int64_t epoch, next;
    float px;          /* placeholders: the trainer checks that a batch has pixels and tokens */
    int32_t tok;
} ft_src;

static void src_perm(ft_src *s, int64_t epoch) {
    memcpy(s->perm, s->lab, (size_t)s->nl * sizeof(int64_t));
    uint64_t x = vlp_mix64(s->seed ^ vlp_mix64((uint64_t)epoch + 0x9e37ull));
    for (int64_t i = s->nl - 1; i > 0; i--) { /* Fisher-Yates */
        x = vlp_mix64(x + 0x9e3779b97f4a7c15ull);
        int64_t j = (int64_t)(x % (uint64_t)(i + 1)), t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = epoch;
}

static int src_next(void *ctx, vlp_batch *out) {
    ft_src *s = ctx;
    int64_t bpe = s->nl / s->batch;
    if (s->next >= bpe) s->epoch++, s->next = 0;
    if (s->perm_epoch != s->epoch) src_perm(s, s->epoch);
    memset(out, 0, sizeof *out);
    out->n = s->batch;
    out->index = s->perm + s->next * s->batch;
    out->pixels = &s->px;
    out->tokens = &s->tok;
    out->epoch = s->epoch;
    out->batch = s->next++;
    return VLP_OK;
}

static int src_seek(void *ctx, int64_t epoch, int64_t batch) {
    ft_src *s = ctx;
    if (epoch < 0 || batch < 0 || batch > s->nl / s->batch) {
        vlp_set_error("fine-tuning data: cannot seek to epoch %lld, batch %lld", (long long)epoch, (long long)batch);
        return VLP_ERR_ARG;
    }
    s->epoch = epoch;
    s->next = batch;
    return VLP_OK;
}

int vlp_ft_batch_source(vlp_batch_source *bs, const vlp_ft_data *d, int batch, uint64_t seed) {
    if (!bs || !d || batch < 1) {
        vlp_set_error("vlp_ft_batch_source: bad arguments");
        return VLP_ERR_ARG;
    }
    memset(bs, 0, sizeof *bs);
    if (d->labelled < batch) {
        vlp_set_error("%s: %lld labelled examples, fewer than one batch of %d", d->set->path, (long long)d->labelled,
                      batch);
        return VLP_ERR_ARG;
    }
    ft_src *s = calloc(1, sizeof *s);
    if (s) {
        s->lab = malloc((size_t)d->labelled * sizeof(int64_t));
        s->perm = malloc((size_t)d->labelled * sizeof(int64_t));
    }
    if (!s || !s->lab || !s->perm) {
        if (s) free(s->lab), free(s->perm);
        free(s);
        vlp_set_error("vlp_ft_batch_source: out of memory");
        return VLP_ERR_NOMEM;
    }
    for (int64_t i = 0; i < d->n; i++)
        if (d->label[i] >= 0) s->lab[s->nl++] = i;
    s->batch = batch;
    s->seed = seed;
    s->perm_epoch = -1;
    bs->ctx = s;
    bs->next = src_next;
    bs->seek = src_seek;
    bs->batches_per_epoch = s->nl / batch;
    return VLP_OK;
}

void vlp_ft_batch_source_free(vlp_batch_source *bs) {
    if (!bs || !bs->ctx) return;
    ft_src *s = bs->ctx;
    free(s->lab);
    free(s->perm);
    free(s);
    bs->ctx = NULL;
}

/* ---- --dump-batches: the run's start for a re-implementation ---------------------------------- */

/* numpy's .npy for uint8 (vlp_npy_save writes f32 / i32 only) */
static int npy_save_u8(const char *path, int ndim, const int64_t *shape, const uint8_t *data) {
    char hdr[256], dims[160] = "";
    size_t o = 0, n = 1;
    for (int i = 0; i < ndim; i++) {
        o += (size_t)snprintf(dims + o, sizeof dims - o, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        n *= (size_t)shape[i];
    }
    int len = snprintf(hdr, sizeof hdr, "{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }", dims);
    int total = (10 + len + 1 + 63) / 64 * 64; /* magic + version + length + dict + '\n', 64-aligned */
    FILE *f = fopen(path, "wb");
    if (!f) {
        vlp_set_error("%s: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    uint16_t hl = (uint16_t)(total - 10);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len;
    for (int i = 10 + len; ok && i < total - 1; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, 1, n, f) == n;
    if (fclose(f)) ok = 0;
    if (!ok) vlp_set_error("%s: cannot write", path);
    return ok ? VLP_OK : VLP_ERR_IO;
}

static int dump_mkdir(const char *p) {
    if (mkdir(p, 0777) && errno != EEXIST) {
        vlp_set_error("%s: %s", p, strerror(errno));
        return VLP_ERR_IO;
    }
    return VLP_OK;
}

/* The examples of the first n steps: order, and each used example's inputs once. */
static int dump_examples(const vlp_ft_model *m, const vlp_ft_data *d, const int64_t *order, int64_t no,
                         const char *dir) {
    char p[4400];
    int64_t *rows = malloc((size_t)no * sizeof *rows), *ia = NULL, *ib = NULL, *imap = NULL, U = 0, K = 0;
    int32_t *ids = NULL, *mask = NULL, *lab = NULL;
    uint8_t *img = NULL;
    int rc = VLP_ERR_NOMEM, two = m->task == VLP_TASK_NLVR, T = d->T;
    size_t isz = (size_t)d->S * d->S * 3;
    if (!rows) goto done;
    memcpy(rows, order, (size_t)no * sizeof *rows);
    qsort(rows, (size_t)no, sizeof *rows, cmp_i64);
    for (int64_t i = 0; i < no; i++)
        if (i == 0 || rows[i] != rows[i - 1]) rows[U++] = rows[i];
    ia = malloc((size_t)U * sizeof *ia);
    ib = malloc((size_t)U * sizeof *ib);
    imap = malloc((size_t)(d->n_img ? d->n_img : 1) * sizeof *imap); /* the set's image id -> images.npy row */
    ids = malloc((size_t)U * (size_t)T * sizeof *ids);
    mask = malloc((size_t)U * (size_t)T * sizeof *mask);
    lab = malloc((size_t)U * sizeof *lab);
    if (!ia || !ib || !imap || !ids || !mask || !lab) goto done;
    for (int64_t i = 0; i < d->n_img; i++) imap[i] = -1;
    for (int64_t u = 0; u < U; u++)
        for (int s = 0; s <= two; s++) {
            int64_t id = s ? d->img_b[rows[u]] : d->img_a[rows[u]];
            if (imap[id] < 0) imap[id] = K++;
            (s ? ib : ia)[u] = imap[id];
        }
    if (!(img = malloc((size_t)(K ? K : 1) * isz))) goto done;
    for (int64_t i = 0; i < d->n_img; i++)
        if (imap[i] >= 0) memcpy(img + (size_t)imap[i] * isz, d->img + (size_t)i * isz, isz);
    for (int64_t u = 0; u < U; u++) {
        memcpy(ids + (size_t)u * T, d->ids + (size_t)rows[u] * T, (size_t)T * sizeof *ids);
        memcpy(mask + (size_t)u * T, d->mask + (size_t)rows[u] * T, (size_t)T * sizeof *mask);
        lab[u] = d->label[rows[u]];
    }
    int64_t su[1] = {U}, sut[2] = {U, T}, si[4] = {K, d->S, d->S, 3}, sl[2] = {3, 256};
    /* vlp_npy_save writes f32 / i32: the indices as i32 (task sets stay far below 2^31 rows) */
    int32_t *tmp = malloc((size_t)(no > U ? no : U) * sizeof *tmp);
    if (!tmp) goto done;
    rc = VLP_OK;
    struct { const char *name; const int64_t *v; int64_t n; } i64s[3] = {{"rows", rows, U}, {"img_a", ia, U}, {"img_b", ib, U}};
    for (int k = 0; k < 3 && !rc; k++) {
        if (k == 2 && !two) break;
        for (int64_t i = 0; i < i64s[k].n; i++) tmp[i] = (int32_t)i64s[k].v[i];
        snprintf(p, sizeof p, "%s/batches/%s.npy", dir, i64s[k].name);
        int64_t sh[1] = {i64s[k].n};
        rc = vlp_npy_save(p, VLP_I32, 1, sh, tmp);
    }
    free(tmp);
    snprintf(p, sizeof p, "%s/batches/ids.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, sut, ids);
    snprintf(p, sizeof p, "%s/batches/mask.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, sut, mask);
    snprintf(p, sizeof p, "%s/batches/labels.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_I32, 1, su, lab);
    snprintf(p, sizeof p, "%s/batches/lut.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_F32, 2, sl, d->lut);
    snprintf(p, sizeof p, "%s/batches/images.npy", dir);
    if (!rc) rc = npy_save_u8(p, 4, si, img);
done:
    if (rc == VLP_ERR_NOMEM) vlp_set_error("vlp_ft_dump_batches: out of memory");
    free(rows);
    free(ia);
    free(ib);
    free(imap);
    free(ids);
    free(mask);
    free(lab);
    free(img);
    return rc;
}

/* Step 0 as the trainer computes it: the first batch, forward + backward from m's weights. */
static int dump_probe(vlp_ft_model *m, const vlp_ft_data *d, const int64_t *rows, int B, const char *dir) {
    char p[4400];
    int n = vlp_params_count(m->params), ne = 0;
    vlp_graph *g = vlp_graph_new();
    vlp_st_entry *e = calloc((size_t)n, sizeof *e);
    vlp_ft_graph fg;
    int rc = g && e ? VLP_OK : VLP_ERR_NOMEM;
    if (rc) vlp_set_error("vlp_ft_dump_batches: out of memory");
    if (!rc) rc = vlp_ft_graph_declare(g, m, B, 1, &fg);
    if (!rc) rc = vlp_graph_build(g, fg.loss, VLP_BUILD_TRAIN);
    if (!rc) rc = vlp_ft_data_fill(m, d, rows, B, &fg);
    if (!rc) {
        vlp_graph_set_training(g, 1, 0); /* the trainer's first micro-batch */
        vlp_params_zero_grad(m->params);
        rc = vlp_graph_forward(g);
    }
    if (!rc) rc = vlp_graph_backward(g, NULL);
    for (int i = 0; !rc && i < n; i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        if (!t->grad) continue; /* frozen */
        e[ne].name = t->name;
        e[ne].data = t->grad;
        e[ne].ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) e[ne].shape[k] = t->shape[k];
        e[ne++].store_as = VLP_ST_F32;
    }
    snprintf(p, sizeof p, "%s/probe/grads.safetensors", dir);
    if (!rc) rc = vlp_st_save(p, e, ne, NULL);
    int64_t ss[2] = {B, m->classes};
    snprintf(p, sizeof p, "%s/probe/scores.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_F32, 2, ss, fg.scores->data);
    if (!rc) {
        json_t *o = json_object();
        json_object_set_new(o, "loss", json_real(*(float *)fg.loss->data));
        json_object_set_new(o, "batch", json_integer(B));
        json_object_set_new(o, "classes", json_integer(m->classes));
        snprintf(p, sizeof p, "%s/probe/losses.json", dir);
        rc = vlp_json_save_atomic(o, p);
    }
    if (m->params) vlp_params_zero_grad(m->params);
    vlp_graph_free(g);
    free(e);
    return rc;
}

int vlp_ft_dump_batches(vlp_ft_model *m, const vlp_ft_data *d, const vlp_train_config *cfg, float lr_decay, int n,
                        const char *dir) {
    if (!m || !d || !cfg || !dir || n < 1 || cfg->batch_size < 1) {
        vlp_set_error("vlp_ft_dump_batches: bad arguments (%d steps of batch %d)", n, cfg ? cfg->batch_size : 0);
        return VLP_ERR_ARG;
    }
    if (m->head != VLP_FT_HEAD_ANSWER_MLP && m->head != VLP_FT_HEAD_PAIR_MLP) {
        vlp_set_error("--dump-batches: the %s head (task %s) is not dumped; vqa (answer_mlp) and nlvr (pair_mlp) are",
                      head_names[m->head], vlp_task_name(m->task));
        return VLP_ERR_ARG;
    }
    if (cfg->accum_steps != 1) {
        vlp_set_error("--dump-batches: the probe is one pass over the batch; accum_steps must be 1, not %d",
                      cfg->accum_steps);
        return VLP_ERR_ARG;
    }
    char p[4400];
    int B = cfg->batch_size, rc = dump_mkdir(dir);
    snprintf(p, sizeof p, "%s/batches", dir);
    if (!rc) rc = dump_mkdir(p);
    snprintf(p, sizeof p, "%s/probe", dir);
    if (!rc) rc = dump_mkdir(p);
    snprintf(p, sizeof p, "%s/init", dir);
    if (!rc) rc = vlp_ft_save(m, p);
    if (rc) return rc;
    /* the batches exactly as the run's source gives them */
    vlp_batch_source src = {0};
    int64_t *order = malloc((size_t)n * (size_t)B * sizeof *order);
    if (!order) {
        vlp_set_error("vlp_ft_dump_batches: out of memory");
        return VLP_ERR_NOMEM;
    }
    rc = vlp_ft_batch_source(&src, d, B, cfg->seed);
    for (int k = 0; k < n && !rc; k++) {
        vlp_batch b;
        if (!(rc = src.next(src.ctx, &b))) memcpy(order + (size_t)k * B, b.index, (size_t)B * sizeof *order);
    }
    vlp_ft_batch_source_free(&src);
    /* order.npy as i32 (vlp_npy_save's integer type): example indices below 2^31 */
    int32_t *o32 = rc ? NULL : malloc((size_t)n * (size_t)B * sizeof *o32);
    if (!rc && !o32) {
        vlp_set_error("vlp_ft_dump_batches: out of memory");
        rc = VLP_ERR_NOMEM;
    }
    for (int64_t i = 0; !rc && i < (int64_t)n * B; i++) o32[i] = (int32_t)order[i];
    int64_t so[2] = {n, B};
    snprintf(p, sizeof p, "%s/batches/order.npy", dir);
    if (!rc) rc = vlp_npy_save(p, VLP_I32, 2, so, o32);
    free(o32);
    if (!rc) rc = dump_examples(m, d, order, (int64_t)n * B, dir);
    if (!rc) rc = dump_probe(m, d, order, B, dir);
    free(order);
    if (rc) return rc;
    /* the parameter groups: trainable (not frozen), weight decay, lr scale (layer decay) */
    snprintf(p, sizeof p, "%s/params.tsv", dir);
    FILE *f = fopen(p, "w");
    if (!f) {
        vlp_set_error("%s: %s", p, strerror(errno));
        return VLP_ERR_IO;
    }
    fprintf(f, "name\ttrainable\tdecay\tlr_scale\n");
    for (int i = 0; i < vlp_params_count(m->params); i++) {
        vlp_tensor *t = vlp_params_get(m->params, i);
        fprintf(f, "%s\t%d\t%d\t%.9g\n", t->name, !(t->flags & VLP_FLAG_FROZEN), !(t->flags & VLP_FLAG_NO_DECAY),
                (double)vlp_ft_lr_scale(m, i, lr_decay));
    }
    if (fclose(f)) {
        vlp_set_error("%s: cannot write", p);
        return VLP_ERR_IO;
    }
    json_t *o = json_object();
    json_object_set_new(o, "task", json_string(vlp_task_name(m->task)));
    json_object_set_new(o, "head", json_string(head_names[m->head]));
    json_object_set_new(o, "steps_dumped", json_integer(n));
    json_object_set_new(o, "batch_size", json_integer(B));
    json_object_set_new(o, "steps", json_integer(cfg->steps));
    json_object_set_new(o, "warmup", json_integer(cfg->warmup));
    json_object_set_new(o, "lr", json_real(cfg->lr));
    json_object_set_new(o, "min_lr", json_real(cfg->min_lr));
    json_object_set_new(o, "beta1", json_real(cfg->beta1));
    json_object_set_new(o, "beta2", json_real(cfg->beta2));
    json_object_set_new(o, "eps", json_real(cfg->eps));
    json_object_set_new(o, "weight_decay", json_real(cfg->weight_decay));
    json_object_set_new(o, "clip_norm", json_real(cfg->clip_norm));
    json_object_set_new(o, "layer_decay", json_real(lr_decay));
    json_object_set_new(o, "seed", json_integer((json_int_t)cfg->seed));
    snprintf(p, sizeof p, "%s/train.json", dir);
    return vlp_json_save_atomic(o, p);
}
