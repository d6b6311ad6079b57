/* The emoji downstream tasks (shared/datasets/emoji-tasks.md): captioning, VQA, NLVR,
 * grounding on 2x2 and 3x3 grids, multiple choice; JSON Lines under DIR/tasks/, rows in
 * the order the spec defines. Rows are produced per vendor by the driver in emoji.c while
 * that vendor's composited images are in memory (the grounding canvases need them). */
#include "emoji_internal.h"
#include "internal.h"

#include <errno.h>
#include <omp.h>
#include <unistd.h>

enum { T_CAPTION, T_VQA, T_NLVR, T_GROUND2, T_GROUND3, T_MC };
enum { EMOJI_TASKS_FORMAT = 1, IMG = 64 };

static const char *const task_names[VLP_EMOJI_NTASKS] = {"caption", "vqa", "nlvr", "ground2", "ground3", "mc"};

const char *vlp_emoji_task_name(int t) { return t >= 0 && t < VLP_EMOJI_NTASKS ? task_names[t] : "?"; }

typedef struct {
    emoji_buf rows[VLP_EMOJI_NTASKS][VLP_EMOJI_NPARTS];
    int64_t canvases;
} task_state;

/* One JSON line; takes the reference to o. */
static int add_row(emoji_ctx *c, int task, int part, json_t *o) {
    task_state *ts = c->task_state;
    char *s = o ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s) {
        vlp_set_error("emoji tasks: out of memory");
        return VLP_ERR_NOMEM;
    }
    emoji_buf *b = &ts->rows[task][part];
    emoji_buf_add(b, s, strlen(s));
    emoji_buf_add(b, "\n", 1);
    free(s);
    if (b->oom) {
        vlp_set_error("emoji tasks: out of memory");
        return VLP_ERR_NOMEM;
    }
    c->rep->rows[task][part]++;
    return 0;
}

/* Item image path relative to DIR/tasks/. */
static json_t *item_path(int v, const char *image) {
    char rel[EMOJI_PATH], up[EMOJI_PATH + 4];
    emoji_image_relpath(v, image, rel, sizeof rel);
    snprintf(up, sizeof up, "../%s", rel);
    return json_string(up);
}

static json_t *obj(const char *k1, json_t *v1, const char *k2, json_t *v2) {
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, k1, v1);
        json_object_set_new(o, k2, v2);
    }
    return o;
}

int emoji_tasks_begin(emoji_ctx *c) {
    task_state *ts = calloc(1, sizeof *ts);
    if (!ts) {
        vlp_set_error("emoji tasks: out of memory");
        return VLP_ERR_NOMEM;
    }
    c->task_state = ts;
    char dir[EMOJI_PATH + 64];
    for (int g = 2; g <= 3; g++)
        for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
            snprintf(dir, sizeof dir, "%s/tasks/ground%d-%s", c->out, g, vlp_emoji_part_name(p));
            if (emoji_mkdirs(dir)) return VLP_ERR_IO;
        }
    for (int i = 0; i < c->n; i++)
        if (c->e[i].cat == -2) {
            vlp_set_error("emoji.json entry %d (%s): category '%s' is not one of the nine of emoji-tasks.md", i,
                          c->e[i].caption, c->e[i].category);
            return VLP_ERR_IO;
        }
    /* Captioning: the pairs of emoji.md, apple, google, facebook (train), then twitter. */
    for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
        int v0 = p == 0 ? 0 : 3, v1 = p == 0 ? 2 : 3;
        for (int v = v0; v <= v1; v++)
            for (int i = 0; i < c->n; i++) {
                emoji_entry *e = &c->e[i];
                if (e->held != (p == 2)) continue;
                int rc = 0;
                if (e->has_img[v])
                    rc = add_row(c, T_CAPTION, p,
                                 obj("image", item_path(v, e->image), "caption", json_string(e->caption)));
                for (int j = 0; !rc && p == 0 && j < e->nvars; j++)
                    if (e->vars[j].has_img[v])
                        rc = add_row(
                            c, T_CAPTION, p,
                            obj("image", item_path(v, e->vars[j].image), "caption", json_string(e->vars[j].caption)));
                if (rc) return rc;
            }
    }
    return 0;
}

static json_t *vqa(int v, const char *image, const char *q, const char *a, const char *type) {
    json_t *o = obj("image", item_path(v, image), "question", json_string(q));
    if (o) {
        json_object_set_new(o, "answer", json_string(a));
        json_object_set_new(o, "type", json_string(type));
    }
    return o;
}

/* The rows of one group: vendor v, part p. */
static int group(emoji_ctx *c, int v, int p) {
    int want_held = p == 2, N = 0, rc = 0;
    int *base = malloc(sizeof(int) * (size_t)(c->n ? c->n : 1));
    if (!base) {
        vlp_set_error("emoji tasks: out of memory");
        return VLP_ERR_NOMEM;
    }
    char q[256];
    /* VQA, in item order: a base item then its tone items (by modifier code point). */
    for (int x = 0; x < c->n && !rc; x++) {
        emoji_entry *e = &c->e[x];
        if (e->held != want_held || e->cat < 0) continue;
        if (e->has_img[v]) {
            int i = N;
            base[N++] = x;
            char lc[64]; /* the answer: the category lowercased (ASCII in the nine names) */
            snprintf(lc, sizeof lc, "%s", e->category);
            for (char *s = lc; *s; s++)
                if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
            rc = add_row(c, T_VQA, p, vqa(v, e->image, "what category is this emoji?", lc, "category"));
            if (!rc)
                rc = add_row(c, T_VQA, p,
                             vqa(v, e->image, "what subcategory is this emoji?", e->subcategory, "subcategory"));
            if (!rc) {
                snprintf(q, sizeof q, "is this %s?", emoji_cat_phrases[e->cat]);
                rc = add_row(c, T_VQA, p, vqa(v, e->image, q, "yes", "yesno"));
            }
            if (!rc) {
                snprintf(q, sizeof q, "is this %s?", emoji_cat_phrases[(e->cat + 1 + i % 8) % 9]);
                rc = add_row(c, T_VQA, p, vqa(v, e->image, q, "no", "yesno"));
            }
            if (!rc) rc = add_row(c, T_VQA, p, vqa(v, e->image, "what is this?", e->caption, "identify"));
        }
        for (int t = 0; t < 5 && !rc; t++)
            for (int j = 0; j < e->nvars && !rc; j++) {
                emoji_var *s = &e->vars[j];
                if (s->ntones == 1 && s->tone[0] == t && s->has_img[v])
                    rc = add_row(c, T_VQA, p,
                                 vqa(v, s->image, "what skin tone is shown?", emoji_tone_words[t], "skintone"));
            }
    }
    /* NLVR */
    for (int i = 0; i < N && N >= 2 && !rc; i++) {
        emoji_entry *x = &c->e[base[i]];
        int a = (i + 1) % N;
        for (int k = 1; k < N; k++)
            if (c->e[base[(i + k) % N]].cat == x->cat) {
                a = (i + k) % N;
                break;
            }
        int pair[2] = {a, (i + N / 2) % N};
        const char *ph = emoji_cat_phrases[x->cat];
        for (int r = 0; r < 2 && !rc; r++) {
            emoji_entry *y = &c->e[base[pair[r]]];
            char st[3][160];
            int lab[3] = {y->cat == x->cat, y->cat != x->cat, !strcmp(y->subcategory, x->subcategory)};
            snprintf(st[0], sizeof st[0], "both images show %s.", ph);
            snprintf(st[1], sizeof st[1], "exactly one image shows %s.", ph);
            snprintf(st[2], sizeof st[2], "the two images show the same kind of thing.");
            for (int k = 0; k < 3 && !rc; k++) {
                json_t *o = obj("left", item_path(v, x->image), "right", item_path(v, y->image));
                if (o) {
                    json_object_set_new(o, "statement", json_string(st[k]));
                    json_object_set_new(o, "label", json_boolean(lab[k]));
                }
                rc = add_row(c, T_NLVR, p, o);
            }
        }
    }
    /* Grounding: rows here, canvases below in parallel. */
    for (int g = 2; g <= 3 && !rc; g++) {
        int K = g * g;
        if (N < K) continue;
        for (int i = 0; i < N && !rc; i++) {
            int t = i % K;
            char rel[128];
            snprintf(rel, sizeof rel, "ground%d-%s/%s-%05d.png", g, vlp_emoji_part_name(p), vlp_emoji_vendor_name(v),
                     i);
            json_t *cells = json_array();
            for (int cell = 0; cell < K; cell++) {
                int j = (cell - t + K) % K; /* member m_j is drawn in cell (j + t) mod K */
                int m = (int)((i + (int64_t)j * N / K) % N);
                json_array_append_new(cells, item_path(v, c->e[base[m]].image));
            }
            json_t *o = obj("image", json_string(rel), "grid", json_integer(g));
            if (o) {
                json_object_set_new(o, "cells", cells);
                json_object_set_new(o, "query", json_string(c->e[base[i]].caption));
                json_object_set_new(o, "label", json_integer(t));
            } else {
                json_decref(cells);
            }
            rc = add_row(c, g == 2 ? T_GROUND2 : T_GROUND3, p, o);
        }
        if (rc) break;
        int failed = 0;
        char err[600] = "";
        emoji_images *T = &c->img[v];
#pragma omp parallel num_threads(vlp_get_threads())
        {
            int W = g * IMG;
            uint8_t *canvas = malloc((size_t)W * W * 3); /* per thread, reused */
            emoji_png_enc *enc = emoji_png_enc_new();
#pragma omp for schedule(dynamic, 8)
            for (int i = 0; i < N; i++) {
                int stop;
#pragma omp atomic read
                stop = failed;
                if (stop) continue;
                int t = i % K, r = 0;
                if (!canvas || !enc) {
                    vlp_set_error("emoji tasks: out of memory");
                    r = VLP_ERR_NOMEM;
                }
                for (int cell = 0; cell < K && !r; cell++) {
                    int j = (cell - t + K) % K;
                    int m = (int)((i + (int64_t)j * N / K) % N);
                    const uint8_t *src = T->rgb[c->e[base[m]].slot[v]];
                    int x0 = IMG * (cell % g), y0 = IMG * (cell / g);
                    for (int y = 0; y < IMG; y++)
                        memcpy(canvas + ((size_t)(y0 + y) * W + x0) * 3, src + (size_t)y * IMG * 3, IMG * 3);
                }
                if (!r) {
                    char path[EMOJI_PATH + 128];
                    snprintf(path, sizeof path, "%s/tasks/ground%d-%s/%s-%05d.png", c->out, g, vlp_emoji_part_name(p),
                             vlp_emoji_vendor_name(v), i);
                    r = emoji_write_png_rgb(enc, path, W, W, canvas);
                }
                if (r) {
#pragma omp critical(emoji_task_err)
                    {
                        if (!failed) snprintf(err, sizeof err, "%s", vlp_last_error());
                        failed = 1;
                    }
                }
            }
            free(canvas);
            emoji_png_enc_free(enc);
        }
        if (failed) {
            vlp_set_error("%s", err);
            rc = VLP_ERR_IO;
        }
        ((task_state *)c->task_state)->canvases += N;
        c->rep->images += N;
    }
    /* Multiple choice */
    for (int i = 0; i < N && N >= 4 && !rc; i++) {
        emoji_entry *x = &c->e[base[i]];
        int chosen[3], nc = 0;
        for (int pass = 0; pass < 3 && nc < 3; pass++)
            for (int k = 1; k < N && nc < 3; k++) {
                emoji_entry *y = &c->e[base[(i + k) % N]];
                if (pass == 0 && strcmp(y->subcategory, x->subcategory)) continue;
                if (pass == 1 && y->cat != x->cat) continue;
                int skip = !strcmp(y->caption, x->caption);
                for (int d = 0; d < nc && !skip; d++)
                    skip = chosen[d] == (i + k) % N || !strcmp(y->caption, c->e[base[chosen[d]]].caption);
                if (!skip) chosen[nc++] = (i + k) % N;
            }
        if (nc < 3) { /* N >= 4 distinct captions are not guaranteed */
            vlp_set_error("emoji tasks: %s/%s item %d (%s): fewer than 3 distractors with distinct captions",
                          vlp_emoji_part_name(p), vlp_emoji_vendor_name(v), i, x->caption);
            rc = VLP_ERR_IO;
            break;
        }
        int t = i % 4, d = 0;
        json_t *choices = json_array();
        for (int pos = 0; pos < 4; pos++)
            json_array_append_new(choices, json_string(pos == t ? x->caption : c->e[base[chosen[d++]]].caption));
        json_t *o = obj("image", item_path(v, x->image), "question", json_string("which description fits this emoji?"));
        if (o) {
            json_object_set_new(o, "choices", choices);
            json_object_set_new(o, "label", json_integer(t));
        } else {
            json_decref(choices);
        }
        rc = add_row(c, T_MC, p, o);
    }
    free(base);
    return rc;
}

int emoji_tasks_vendor(emoji_ctx *c, int v) {
    if (v < 3) return group(c, v, 0);
    int rc = group(c, v, 1);
    return rc ? rc : group(c, v, 2);
}

int emoji_tasks_finish(emoji_ctx *c) {
    task_state *ts = c->task_state;
    json_t *files = json_object();
    char name[64], path[EMOJI_PATH + 96];
    for (int p = 0; p < VLP_EMOJI_NPARTS; p++)
        for (int t = 0; t < VLP_EMOJI_NTASKS; t++) {
            snprintf(name, sizeof name, "%s-%s.jsonl", task_names[t], vlp_emoji_part_name(p));
            snprintf(path, sizeof path, "%s/tasks/%s", c->out, name);
            int rc = emoji_write_atomic(path, ts->rows[t][p].p ? ts->rows[t][p].p : "", ts->rows[t][p].n);
            if (rc) {
                json_decref(files);
                return rc;
            }
            json_object_set_new(files, name, json_integer(c->rep->rows[t][p]));
        }
    json_t *root = json_object();
    json_object_set_new(root, "dataset", json_string("emoji-tasks"));
    json_object_set_new(root, "format", json_integer(EMOJI_TASKS_FORMAT));
    json_object_set_new(root, "spec", json_string("shared/datasets/emoji-tasks.md"));
    json_object_set_new(root, "version", json_string(c->pk[0].version));
    json_object_set_new(root, "packages", emoji_packages_json(c));
    json_object_set_new(root, "files", files);
    json_object_set_new(root, "canvases", json_integer(ts->canvases));
    json_object_set_new(root, "images", json_integer(c->rep->images));
    snprintf(path, sizeof path, "%s/tasks/summary.json", c->out);
    return emoji_write_json(path, root);
}

void emoji_tasks_free(emoji_ctx *c) {
    task_state *ts = c->task_state;
    if (!ts) return;
    for (int t = 0; t < VLP_EMOJI_NTASKS; t++)
        for (int p = 0; p < VLP_EMOJI_NPARTS; p++) emoji_buf_free(&ts->rows[t][p]);
    free(ts);
    c->task_state = NULL;
}

int emoji_tasks_up_to_date(emoji_ctx *c, const char *version, int fill_report) {
    char path[EMOJI_PATH + 96], name[64];
    snprintf(path, sizeof path, "%s/tasks/summary.json", c->out);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return 0;
    int ok = json_integer_value(json_object_get(root, "format")) == EMOJI_TASKS_FORMAT &&
             emoji_json_str_eq(json_object_get(root, "dataset"), "emoji-tasks") &&
             emoji_json_str_eq(json_object_get(root, "version"), version);
    json_t *files = json_object_get(root, "files");
    int64_t rows[VLP_EMOJI_NTASKS][VLP_EMOJI_NPARTS];
    for (int p = 0; p < VLP_EMOJI_NPARTS && ok; p++)
        for (int t = 0; t < VLP_EMOJI_NTASKS && ok; t++) {
            snprintf(name, sizeof name, "%s-%s.jsonl", task_names[t], vlp_emoji_part_name(p));
            snprintf(path, sizeof path, "%s/tasks/%s", c->out, name);
            json_t *n = json_object_get(files, name);
            ok = json_is_integer(n) && emoji_file_exists(path);
            rows[t][p] = json_integer_value(n);
        }
    if (ok && fill_report) memcpy(c->rep->rows, rows, sizeof rows);
    json_decref(root);
    return ok;
}
