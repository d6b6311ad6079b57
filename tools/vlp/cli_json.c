/* Helpers shared by the commands that read run configs and task files (vlp train, finetune,
 * eval --task, score): config messages name the command, the file or section, and the key. */
#include "cli.h"
#include "vlp_train.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int cli_json_num(const char *cmd, json_t *o, const char *k, double *out, const char *where) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_number(v)) {
        fprintf(stderr, "vlp %s: %s: '%s' must be a number\n", cmd, where, k);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int cli_json_str(const char *cmd, json_t *o, const char *k, char *out, size_t cap, const char *where) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_string(v)) {
        fprintf(stderr, "vlp %s: %s: '%s' must be a string\n", cmd, where, k);
        return -1;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

int cli_json_check_keys(const char *cmd, json_t *o, const char *const *known, const char *where) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (!ok) {
            fprintf(stderr, "vlp %s: %s: unknown field '%s'\n", cmd, where, key);
            return -1;
        }
    }
    return 0;
}

void cli_report_bad_rows(const char *cmd, const vlp_task_set *s) {
    if (!s || !s->n_bad) return;
    static const char *const why[VLP_TASK_BAD_COUNT] = {"not JSON", "missing/mistyped field", "out of range",
                                                        "unreadable image", "duplicate"};
    fprintf(stderr, "vlp %s: %s: %lld of %lld rows skipped (", cmd, s->path, (long long)s->n_bad, (long long)s->n_rows);
    for (int i = 0, first = 1; i < VLP_TASK_BAD_COUNT; i++)
        if (s->bad[i]) {
            fprintf(stderr, "%s%s %lld", first ? "" : ", ", why[i], (long long)s->bad[i]);
            first = 0;
        }
    fprintf(stderr, ")\n");
    for (int i = 0; i < s->n_messages && i < 10; i++) fprintf(stderr, "  %s\n", s->messages[i]);
    if (s->n_bad > 10) fprintf(stderr, "  ...\n");
}

void cli_task_split(const char *path, const char *task, char *out, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t tl = strlen(task);
    if (!strncmp(base, task, tl) && base[tl] == '-') base += tl + 1;
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* "optimizer" {name, lr, betas, eps, weight_decay} and "schedule" {name, warmup, min_lr}. */
int cli_json_optimizer(const char *cmd, json_t *root, const char *path, vlp_train_config *t) {
    static const char *kopt[] = {"name", "lr", "betas", "eps", "weight_decay", NULL};
    static const char *ksch[] = {"name", "warmup", "min_lr", NULL};
    int rc = 0;
    double x;
#define NUM(obj, key, field, type)                             \
    if (!rc) {                                                 \
        x = (double)t->field;                                  \
        rc = cli_json_num(cmd, obj, key, &x, path);            \
        t->field = (type)x;                                    \
    }
    json_t *o = json_object_get(root, "optimizer");
    if (o) {
        rc = json_is_object(o) ? cli_json_check_keys(cmd, o, kopt, path) : -1;
        NUM(o, "lr", lr, float)
        NUM(o, "eps", eps, float)
        NUM(o, "weight_decay", weight_decay, float)
        json_t *b = json_object_get(o, "betas");
        if (!rc && b) {
            if (!json_is_array(b) || json_array_size(b) != 2 || !json_is_number(json_array_get(b, 0)) ||
                !json_is_number(json_array_get(b, 1))) {
                fprintf(stderr, "vlp %s: %s: optimizer.betas must be [beta1, beta2]\n", cmd, path);
                rc = -1;
            } else {
                t->beta1 = (float)json_number_value(json_array_get(b, 0));
                t->beta2 = (float)json_number_value(json_array_get(b, 1));
            }
        }
    }
    json_t *s = json_object_get(root, "schedule");
    if (!rc && s) {
        rc = json_is_object(s) ? cli_json_check_keys(cmd, s, ksch, path) : -1;
        NUM(s, "warmup", warmup, int64_t)
        NUM(s, "min_lr", min_lr, float)
    }
#undef NUM
    return rc;
}
