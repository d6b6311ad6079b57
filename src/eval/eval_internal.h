/* Helpers shared by src/eval (task readers, metrics, report). Not installed. */
#ifndef VLP_EVAL_INTERNAL_H
#define VLP_EVAL_INTERNAL_H

#include "internal.h"
#include "vlp_eval.h"

#include <stdarg.h>
#include <stddef.h>

/* A growable string; on allocation failure it keeps failed = 1 and drops further text. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} ev_buf;

void ev_buf_put(ev_buf *b, const char *s, size_t n);
void ev_buf_puts(ev_buf *b, const char *s);
void ev_buf_printf(ev_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* HTML-escaped text (&, <, >, ", '). */
void ev_buf_html(ev_buf *b, const char *s);

/* Reads a whole file (malloc'd, NUL-terminated); NULL with the error set. */
char *ev_read_file(const char *path, size_t *size);
/* dir + "/" + p unless p is absolute or dir is empty (malloc'd). */
char *ev_path_join(const char *dir, const char *p);
/* The directory part of path ("." when none), malloc'd. */
char *ev_dirname(const char *path);
char *ev_strdup(const char *s);
/* "image PATH: reason" (malloc'd) from a decoder message err, its leading "PATH: " dropped
 * (task_images.c; finetune.c uses it for the same messages). */
char *ev_image_problem(const char *path, const char *err);

#endif
