/* Writing JSON files the way checkpoints need them: all or nothing. */
#ifndef VLP_JSON_FILE_H
#define VLP_JSON_FILE_H

#include <jansson.h>

/* Writes root (indented, keys in insertion order) to path through a temporary file in the same
 * directory, fsync'd, then renamed over path, so a reader sees the old file or the new one.
 * Takes the reference to root (NULL: an out-of-memory error). 0 or a negative vlp_status. */
int vlp_json_save_atomic(json_t *root, const char *path);

#endif
