/* Helpers shared by the commands that read run configs and task files (vlp train, finetune,
 * eval --task, score): config messages name the command, the file or section, and the key. */
#include "cli.h"

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

void cli_task_split(const char *path, const char *task, char *out, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t tl = strlen(task);
    if (!strncmp(base, task, tl) && base[tl] == '-') base += tl + 1;
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}
