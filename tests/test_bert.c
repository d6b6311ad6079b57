/* BERT text encoder parity: tests/fixtures/bert_model/{post,pre,cross} (tiny random BERTs and
 * the outputs of a PyTorch re-implementation of Hugging Face BertModel, written by
 * tests/tools/gen_bert_fixture.py) must be reproduced within 1e-4 x the row norm, padded
 * positions included. Also: the same weights declared inside another store under a prefix,
 * save/load round trip, config inference, gradients through the whole model against finite
 * differences, dropout, and bad inputs / checkpoints. */
#include "test.h"
#include "vlp_fusion.h"
#include "vlp_safetensors.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_BERT FIXTURE("bert_model")
#define TOL 1e-4

static void *load_npy(const char *variant, const char *name, int64_t *shape, vlp_dtype want) {
    char path[512];
    snprintf(path, sizeof path, DIR_BERT "/%s/%s", variant, name);
    void *data = NULL;
    int nd;
    vlp_dtype dt;
    if (vlp_npy_load(path, &dt, &nd, shape, &data)) {
        CHECK(0, "%s", vlp_last_error());
        return NULL;
    }
    CHECK(dt == want, "%s: dtype", path);
    return data;
}

/* max over rows of max|a - r| / ||r||. */
static double row_err(const float *a, const float *r, int64_t rows, int64_t dim) {
    double worst = 0;
    for (int64_t i = 0; i < rows; i++) {
        double n2 = 0, md = 0;
        for (int64_t k = 0; k < dim; k++) {
            n2 += (double)r[i * dim + k] * r[i * dim + k];
            double d = fabs((double)a[i * dim + k] - r[i * dim + k]);
            md = d > md ? d : md;
        }
        double e = md / (sqrt(n2) > 0 ? sqrt(n2) : 1);
        worst = e > worst ? e : worst;
    }
    return worst;
}

typedef struct {
    int32_t *ids, *types, *mask, *enc_mask;
    float *enc, *hidden, *pooled;
    int64_t B, T, Tk, E, D;
} fixture;

static int load_fixture(const char *v, fixture *f) {
    memset(f, 0, sizeof *f);
    int64_t s[4];
    f->ids = load_npy(v, "input_ids.npy", s, VLP_I32);
    f->B = s[0], f->T = s[1];
    f->types = load_npy(v, "token_type_ids.npy", s, VLP_I32);
    f->mask = load_npy(v, "attention_mask.npy", s, VLP_I32);
    f->hidden = load_npy(v, "last_hidden_state.npy", s, VLP_F32);
    f->D = s[2];
    if (strcmp(v, "cross")) {
        f->pooled = load_npy(v, "pooler_output.npy", s, VLP_F32);
    } else {
        f->enc = load_npy(v, "encoder_hidden_states.npy", s, VLP_F32);
        f->Tk = s[1], f->E = s[2];
        f->enc_mask = load_npy(v, "encoder_attention_mask.npy", s, VLP_I32);
    }
    return f->ids && f->types && f->mask && f->hidden ? 0 : -1;
}

static void free_fixture(fixture *f) {
    free(f->ids), free(f->types), free(f->mask), free(f->enc_mask), free(f->enc), free(f->hidden), free(f->pooled);
}

/* Runs m on the fixture's inputs; returns the worst hidden / pooled error. */
static int run(const vlp_bert *m, const fixture *f, const char *tag, double *eh, double *ep, float *hidden_out) {
    vlp_graph *g = vlp_graph_new();
    int64_t s2[2] = {f->B, f->T}, se[3] = {f->B, f->Tk, f->E}, sm[2] = {f->B, f->Tk};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, s2), *types = vlp_input(g, "types", VLP_I32, 2, s2),
               *mask = vlp_input(g, "mask", VLP_I32, 2, s2), *enc = NULL, *enc_mask = NULL;
    if (f->enc) {
        enc = vlp_input(g, "enc", VLP_F32, 3, se);
        enc_mask = vlp_input(g, "enc_mask", VLP_I32, 2, sm);
    }
    vlp_tensor *pooled = NULL;
    vlp_bert_states st;
    vlp_tensor *h = vlp_bert_forward(g, m, ids, types, mask, enc, enc_mask, f->pooled ? &pooled : NULL, &st);
    if (h && pooled) vlp_keep(h);
    int rc = vlp_graph_build(g, pooled ? pooled : h, VLP_BUILD_INFERENCE);
    CHECK(rc == 0, "%s: build: %s", tag, vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
    if (rc) {
        vlp_graph_free(g);
        return -1;
    }
    memcpy(ids->data, f->ids, sizeof(int32_t) * (size_t)(f->B * f->T));
    memcpy(types->data, f->types, sizeof(int32_t) * (size_t)(f->B * f->T));
    memcpy(mask->data, f->mask, sizeof(int32_t) * (size_t)(f->B * f->T));
    if (enc) {
        memcpy(enc->data, f->enc, sizeof(float) * (size_t)(f->B * f->Tk * f->E));
        memcpy(enc_mask->data, f->enc_mask, sizeof(int32_t) * (size_t)(f->B * f->Tk));
    }
    rc = vlp_graph_forward(g);
    CHECK(rc == 0, "%s: forward: %s", tag, vlp_last_error());
    CHECK(st.n_hidden == m->cfg.num_hidden_layers + 1, "%s: %d hidden states", tag, st.n_hidden);
    *eh = row_err(h->data, f->hidden, f->B * f->T, f->D);
    *ep = pooled ? row_err(pooled->data, f->pooled, f->B, f->D) : 0;
    if (hidden_out) memcpy(hidden_out, h->data, sizeof(float) * (size_t)(f->B * f->T * f->D));
    vlp_graph_free(g);
    return rc;
}

static void parity(const char *v) {
    fixture f;
    if (load_fixture(v, &f)) {
        free_fixture(&f);
        return;
    }
    char dir[256];
    snprintf(dir, sizeof dir, DIR_BERT "/%s", v);
    vlp_bert *m = vlp_bert_load(dir);
    CHECK(m != NULL, "%s: load: %s", v, vlp_last_error());
    if (m) {
        CHECK(m->cfg.pre_ln == !strcmp(v, "pre") && m->cfg.pooler == !!f.pooled && m->cfg.causal == !!f.enc &&
                  m->cfg.cross_attention_from == (f.enc ? 1 : -1) && m->cfg.num_attention_heads == 4,
              "%s: config read from config.json", v);
        double eh = 1, ep = 1;
        if (!run(m, &f, v, &eh, &ep, NULL)) {
            CHECK(eh <= TOL, "%s: last_hidden_state err %.3g > %g x row norm", v, eh, TOL);
            CHECK(ep <= TOL, "%s: pooler_output err %.3g > %g x row norm", v, ep, TOL);
            printf("%-6s last_hidden_state %.2e, pooler_output %.2e (x row norm)\n", v, eh, ep);
        }
        /* the same weights inside a bigger store, under a prefix, loaded by name search */
        vlp_params *p = vlp_params_new();
        int64_t one = 1;
        vlp_params_add(p, "other.thing", 1, &one, 0);
        vlp_bert sub;
        int rc = vlp_bert_declare(p, "text.", &m->cfg, &sub);
        CHECK(rc == 0 && vlp_params_alloc(p) == 0, "%s: declare in a store: %s", v, vlp_last_error());
        CHECK(vlp_params_find(p, "text.embeddings.word_embeddings.weight") == sub.word_emb, "%s: prefixed names", v);
        vlp_safetensors *st = NULL;
        if (!rc) {
            char file[300];
            snprintf(file, sizeof file, "%s/model.safetensors", dir);
            st = vlp_st_open(file);
            rc = st ? vlp_bert_load_weights(&sub, st, NULL) : -1;
            CHECK(rc == 0, "%s: load_weights: %s", v, vlp_last_error());
        }
        if (!rc) {
            double eh2 = 1, ep2 = 1;
            run(&sub, &f, v, &eh2, &ep2, NULL);
            CHECK(eh2 == eh && ep2 == ep, "%s: prefixed model differs (%.3g vs %.3g)", v, eh2, eh);
            CHECK(vlp_bert_param_count(&sub) == vlp_bert_param_count(m) &&
                      vlp_params_numel(p) >= vlp_bert_param_count(m) + 1,
                  "%s: parameter counts", v);
        }
        vlp_st_close(st);
        vlp_params_free(p);
        vlp_bert_free(m);
    }
    free_fixture(&f);
}

/* Save, reload (with and without config.json), compare weights and config. */
static void round_trip(void) {
    vlp_bert *m = vlp_bert_load(DIR_BERT "/cross");
    CHECK(m != NULL, "load cross: %s", vlp_last_error());
    if (!m) return;
    char dir[] = "/tmp/vlp_bert_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(vlp_bert_save(m, dir) == 0, "save: %s", vlp_last_error());
    vlp_bert *r = vlp_bert_load(dir);
    CHECK(r != NULL, "reload: %s", vlp_last_error());
    if (r) {
        CHECK(!memcmp(&r->cfg, &m->cfg, sizeof m->cfg), "config survives the round trip");
        CHECK(vlp_params_numel(r->params) == vlp_params_numel(m->params) &&
                  !memcmp(vlp_params_data(r->params), vlp_params_data(m->params),
                          sizeof(float) * (size_t)vlp_params_numel(m->params)),
              "weights survive the round trip");
        vlp_bert_free(r);
    }
    /* without config.json: shapes give everything but the head count (hidden / 64) */
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    r = vlp_bert_load(path);
    CHECK(r != NULL, "load without config: %s", vlp_last_error());
    if (r) {
        const vlp_bert_config *c = &r->cfg;
        CHECK(c->vocab_size == 64 && c->hidden_size == 32 && c->num_hidden_layers == 2 && c->intermediate_size == 48 &&
                  c->max_position_embeddings == 16 && c->type_vocab_size == 2 && c->cross_attention_from == 1 &&
                  c->encoder_width == 24 && !c->pooler && !c->pre_ln && c->num_attention_heads == 1,
              "config inferred from shapes");
        vlp_bert_free(r);
    }
    unlink(path);
    rmdir(dir);
    vlp_bert_free(m);
}

/* Gradients through the whole model (post-LN, cross, pooler) against central differences:
 * loss = sum(hidden * R1) + sum(pooled * R2), for a sample of weights of every kind. */
static double loss_of(vlp_graph *g, vlp_tensor *h, vlp_tensor *pooled, const float *R1, const float *R2) {
    vlp_graph_forward(g);
    double l = 0;
    for (int64_t i = 0; i < h->numel; i++) l += (double)((float *)h->data)[i] * R1[i];
    for (int64_t i = 0; i < pooled->numel; i++) l += (double)((float *)pooled->data)[i] * R2[i];
    return l;
}

static void gradients(void) {
    vlp_bert_config c;
    vlp_bert_config_default(&c);
    c.vocab_size = 20, c.hidden_size = 8, c.num_hidden_layers = 2, c.num_attention_heads = 2;
    c.intermediate_size = 12, c.max_position_embeddings = 8, c.hidden_dropout = 0;
    c.cross_attention_from = 1, c.encoder_width = 6;
    for (int pre = 0; pre < 2; pre++) {
        c.pre_ln = pre;
        vlp_bert *m = vlp_bert_new(&c, 7);
        CHECK(m != NULL, "new: %s", vlp_last_error());
        if (!m) return;
        /* larger weights than the 0.02 init, so every path matters */
        float *w = vlp_params_data(m->params);
        uint64_t s = 99;
        for (int64_t i = 0; i < vlp_params_numel(m->params); i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            w[i] += 0.3f * (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        }
        vlp_graph *g = vlp_graph_new();
        int64_t s2[2] = {2, 5}, se[3] = {2, 3, 6};
        vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, s2), *types = vlp_input(g, "types", VLP_I32, 2, s2),
                   *mask = vlp_input(g, "mask", VLP_I32, 2, s2), *enc = vlp_input_grad(g, "enc", 3, se);
        vlp_tensor *pooled = NULL;
        vlp_tensor *h = vlp_bert_forward(g, m, ids, types, mask, enc, NULL, &pooled, NULL);
        vlp_tensor *l1 = vlp_sum(g, vlp_mul(g, h, vlp_input(g, "R1", VLP_F32, 3, h ? h->shape : s2)));
        vlp_tensor *R2 = vlp_input(g, "R2", VLP_F32, 2, pooled ? pooled->shape : s2);
        vlp_tensor *loss = vlp_add(g, l1, vlp_sum(g, vlp_mul(g, pooled, R2)));
        vlp_keep(h), vlp_keep(pooled);
        int rc = vlp_graph_build(g, loss, VLP_BUILD_TRAIN);
        CHECK(rc == 0, "grad build: %s", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        if (rc) {
            vlp_graph_free(g);
            vlp_bert_free(m);
            return;
        }
        int32_t idv[10] = {1, 5, 9, 13, 2, 1, 7, 3, 0, 0}, tv[10] = {0, 0, 1, 1, 1, 0, 0, 1, 0, 0},
                mv[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
        memcpy(ids->data, idv, sizeof idv), memcpy(types->data, tv, sizeof tv), memcpy(mask->data, mv, sizeof mv);
        vlp_tensor *R1t = l1->src[0]->src[1];
        float *R1 = R1t->data, *R2v = R2->data;
        for (int64_t i = 0; i < R1t->numel; i++) R1[i] = (float)sin(0.7 * (double)i + 0.3);
        for (int64_t i = 0; i < R2->numel; i++) R2v[i] = (float)cos(0.9 * (double)i);
        for (int64_t i = 0; i < enc->numel; i++) ((float *)enc->data)[i] = (float)sin(1.3 * (double)i);
        vlp_params_zero_grad(m->params);
        vlp_graph_forward(g);
        vlp_graph_backward(g, NULL);
        /* every tensor kind: embeddings, LayerNorms, attention, cross-attention, MLP, pooler, enc */
        vlp_tensor *check[] = {m->word_emb,          m->pos_emb,           m->type_emb,          m->emb_ln_w,
                               m->layers[0].q_w,      m->layers[0].k_b,     m->layers[0].v_w,     m->layers[0].ao_w,
                               m->layers[0].ao_ln_b,  m->layers[1].xq_w,    m->layers[1].xk_w,    m->layers[1].xv_b,
                               m->layers[1].xo_ln_w,  m->layers[1].inter_w, m->layers[1].out_w,   m->layers[1].out_ln_w,
                               pre ? m->final_ln_w : m->layers[0].out_ln_b, m->pool_w, m->pool_b, enc};
        double worst = 0;
        for (size_t k = 0; k < sizeof check / sizeof check[0]; k++) {
            vlp_tensor *t = check[k];
            float *x = t->data, *gr = t->grad;
            double num_max = 0, diff_max = 0;
            for (int64_t j = 0; j < t->numel && j < 24; j++) {
                int64_t i = (j * 7919) % t->numel;
                float keep = x[i];
                const double hh = 2e-2; /* float32 loss: smaller steps drown in roundoff */
                x[i] = keep + (float)hh;
                double lp = loss_of(g, h, pooled, R1, R2v);
                x[i] = keep - (float)hh;
                double lm = loss_of(g, h, pooled, R1, R2v);
                x[i] = keep;
                double num = (lp - lm) / (2 * hh);
                num_max = fmax(num_max, fabs(num));
                diff_max = fmax(diff_max, fabs(num - gr[i]));
            }
            /* wiring errors show as O(1); float32 differences leave ~1e-2 (key biases have ~0 gradient) */
            double e = diff_max / fmax(num_max, 1e-2);
            CHECK(e <= 3e-2, "%s grad %s: err %.3g", pre ? "pre-LN" : "post-LN", t->name, e);
            worst = fmax(worst, e);
        }
        printf("gradients %s: worst relative error %.2e over %zu tensors (float32 central differences)\n",
               pre ? "pre-LN " : "post-LN", worst, sizeof check / sizeof check[0]);
        vlp_graph_free(g);
        vlp_bert_free(m);
    }
}

static void dropout_and_errors(void) {
    vlp_bert_config c;
    vlp_bert_config_default(&c);
    c.vocab_size = 10, c.hidden_size = 8, c.num_hidden_layers = 1, c.num_attention_heads = 2;
    c.intermediate_size = 8, c.max_position_embeddings = 4, c.hidden_dropout = 0.5f;
    vlp_bert *m = vlp_bert_new(&c, 1);
    CHECK(m != NULL, "new: %s", vlp_last_error());
    if (!m) return;
    CHECK(vlp_bert_param_count(m) == 10 * 8 + 4 * 8 + 2 * 8 + 2 * 8 + 4 * (8 * 8 + 8) + 2 * 8 + 8 * 8 + 8 + 8 * 8 + 8 +
                                         2 * 8 + 8 * 8 + 8,
          "param count %lld", (long long)vlp_bert_param_count(m));
    CHECK(((float *)m->word_emb->data)[3] == 0 && ((float *)m->word_emb->data)[8] != 0, "padding row zeroed");
    /* dropout: identity at inference, active while training */
    vlp_graph *g = vlp_graph_new();
    int64_t s2[2] = {1, 4};
    vlp_tensor *ids = vlp_input(g, "ids", VLP_I32, 2, s2);
    vlp_tensor *h = vlp_bert_forward(g, m, ids, NULL, NULL, NULL, NULL, NULL, NULL);
    CHECK(vlp_graph_build(g, h, VLP_BUILD_INFERENCE) == 0, "build: %s", vlp_graph_error(g));
    int32_t iv[4] = {1, 2, 3, 4};
    memcpy(ids->data, iv, sizeof iv);
    float a[32], b[32];
    vlp_graph_forward(g);
    memcpy(a, h->data, sizeof a);
    vlp_graph_set_training(g, 1, 1);
    vlp_graph_forward(g);
    memcpy(b, h->data, sizeof b);
    CHECK(memcmp(a, b, sizeof a) != 0, "dropout changes the output while training");
    vlp_graph_set_training(g, 0, 0);
    vlp_graph_forward(g);
    CHECK(!memcmp(a, h->data, sizeof a), "no dropout at inference");
    vlp_graph_free(g);
    /* too many tokens */
    g = vlp_graph_new();
    int64_t s5[2] = {1, 5};
    CHECK(vlp_bert_forward(g, m, vlp_input(g, "ids", VLP_I32, 2, s5), NULL, NULL, NULL, NULL, NULL, NULL) == NULL &&
              strstr(vlp_graph_error(g), "max_position_embeddings"),
          "5 tokens > 4 positions: %s", vlp_graph_error(g) ? vlp_graph_error(g) : "(none)");
    vlp_graph_free(g);
    vlp_bert_free(m);
    /* a cross-attention layer without encoder states */
    c.cross_attention_from = 0;
    m = vlp_bert_new(&c, 1);
    g = vlp_graph_new();
    CHECK(m && vlp_bert_forward(g, m, vlp_input(g, "ids", VLP_I32, 2, s2), NULL, NULL, NULL, NULL, NULL, NULL) == NULL &&
              strstr(vlp_graph_error(g), "cross-attention"),
          "cross without enc: %s", vlp_graph_error(g) ? vlp_graph_error(g) : "(none)");
    vlp_graph_free(g);
    vlp_bert_free(m);
    /* bad configs */
    vlp_bert_config bad = c;
    bad.num_attention_heads = 3;
    CHECK(vlp_bert_config_validate(&bad) < 0 && strstr(vlp_last_error(), "num_attention_heads"), "heads");
    bad = c, bad.cross_attention_from = 5;
    CHECK(vlp_bert_config_validate(&bad) < 0 && strstr(vlp_last_error(), "cross_attention_from"), "cross from");
    bad = c, bad.layer_norm_eps = 0;
    CHECK(vlp_bert_new(&bad, 0) == NULL && strstr(vlp_last_error(), "layer_norm_eps"), "eps");
    /* config files: unreadable, malformed, duplicate keys (the second would silently win), not an object */
    CHECK(vlp_bert_config_load("/nonexistent/config.json", &bad) == VLP_ERR_IO &&
              strstr(vlp_last_error(), "/nonexistent/config.json"),
          "missing config: %s", vlp_last_error());
    const char *bad_json[][2] = {{"{\"hidden_size\": 32,", "line"},
                                 {"{\"hidden_size\": 32, \"hidden_size\": 64}", "duplicate"},
                                 {"[1, 2]", "JSON object"}};
    char cdir[] = "/tmp/vlp_bert_cfg_XXXXXX";
    if (mkdtemp(cdir)) {
        char cpath[300];
        snprintf(cpath, sizeof cpath, "%s/config.json", cdir);
        for (int i = 0; i < 3; i++) {
            FILE *f = fopen(cpath, "w");
            if (f) fputs(bad_json[i][0], f), fclose(f);
            int rc = vlp_bert_config_load(cpath, &bad);
            CHECK(rc < 0 && strstr(vlp_last_error(), cpath) && strstr(vlp_last_error(), bad_json[i][1]),
                  "config %s refused naming the file and '%s': %s", bad_json[i][0], bad_json[i][1], vlp_last_error());
        }
        remove(cpath);
        rmdir(cdir);
    }
    /* a prefix that makes names too long */
    vlp_params *p = vlp_params_new();
    vlp_bert sub;
    CHECK(vlp_bert_declare(p, "a_rather_long_prefix.", &c, &sub) < 0 && strstr(vlp_last_error(), "longer"),
          "long prefix: %s", vlp_last_error());
    vlp_params_free(p);
    /* bad checkpoints */
    CHECK(vlp_bert_load("/nonexistent/bert") == NULL && strstr(vlp_last_error(), "/nonexistent/bert"), "missing: %s",
          vlp_last_error());
    CHECK(vlp_bert_load(FIXTURE("clip/model-tiny")) == NULL && strstr(vlp_last_error(), "not a BERT"),
          "CLIP is not BERT: %s", vlp_last_error());
    /* a checkpoint missing one tensor, and one with a wrong shape */
    vlp_bert *src = vlp_bert_load(DIR_BERT "/post");
    char dir[] = "/tmp/vlp_bert_bad_XXXXXX";
    if (src && mkdtemp(dir)) {
        vlp_st_entry e[2] = {{.name = "embeddings.word_embeddings.weight", .data = src->word_emb->data, .ndim = 2,
                              .shape = {64, 32}, .store_as = VLP_ST_F32},
                             {.name = "embeddings.position_embeddings.weight", .data = src->pos_emb->data, .ndim = 2,
                              .shape = {16, 32}, .store_as = VLP_ST_F32}};
        char path[300];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(vlp_st_save(path, e, 2, NULL) == 0, "save partial");
        vlp_bert_config pc = src->cfg;
        vlp_bert part;
        vlp_params *pp = vlp_params_new();
        vlp_bert_declare(pp, NULL, &pc, &part);
        vlp_params_alloc(pp);
        vlp_safetensors *st = vlp_st_open(path);
        CHECK(st && vlp_bert_load_weights(&part, st, NULL) < 0 &&
                  strstr(vlp_last_error(), "embeddings.token_type_embeddings.weight"),
              "missing tensor named: %s", vlp_last_error());
        vlp_st_close(st);
        e[1].shape[0] = 8, e[1].shape[1] = 64; /* same count, wrong shape */
        CHECK(vlp_st_save(path, e, 2, NULL) == 0, "save wrong shape");
        st = vlp_st_open(path);
        CHECK(st && vlp_bert_load_weights(&part, st, "") < 0 && strstr(vlp_last_error(), "[8, 64]"),
              "wrong shape named: %s", vlp_last_error());
        vlp_st_close(st);
        vlp_params_free(pp);
        unlink(path);
        rmdir(dir);
    }
    vlp_bert_free(src);
}

int main(void) {
    parity("post");
    parity("pre");
    parity("cross");
    round_trip();
    gradients();
    dropout_and_errors();
    return test_finish();
}
