/* JSON files: configs read strictly, and written the way checkpoints need them (all or nothing). */
#ifndef VLP_JSON_FILE_H
#define VLP_JSON_FILE_H

#include <jansson.h>

/* Writes root (indented, keys in insertion order) to path through a temporary file in the same
 * directory, fsync'd, then renamed over path, so a reader sees the old file or the new one.
 * Takes the reference to root (NULL: an out-of-memory error). 0 or a negative vlp_status. */
int vlp_json_save_atomic(json_t *root, const char *path);

/* Reads a config file that must be one JSON object, duplicate keys refused (the second would
 * silently win). NULL with the error set: "fn: NULL argument", "path: parse error (line n)"
 * (*rc VLP_ERR_IO) or "path: a config must be a JSON object" (*rc VLP_ERR_ARG). */
json_t *vlp_json_load_config(const char *path, const char *fn, int *rc);

#endif
