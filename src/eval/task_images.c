/* Rows whose images cannot be decoded (include/vlp_eval.h: vlp_task_check_images). Apart from
 * tasks.c, which stays free of the image decoders (fuzz/fuzz_tasks links it alone). */
#include "eval_internal.h"
#include "vlp.h"
#include "vlp_image.h"

#include <stdlib.h>
#include <string.h>

char *ev_image_problem(const char *path, const char *err) {
    size_t pl = strlen(path);
    if (!err || !err[0]) err = "cannot be decoded";
    /* the decoder's messages start with the path: said once */
    if (!strncmp(err, path, pl) && err[pl] == ':' && err[pl + 1] == ' ') err += pl + 2;
    size_t n = pl + strlen(err) + 16;
    char *m = malloc(n);
    if (m) snprintf(m, n, "image %s: %s", path, err);
    return m;
}

typedef struct {
    const char *s;
    int64_t i; /* example index; + n for nlvr's right image */
} img_ref;

static int cmp_img_ref(const void *a, const void *b) {
    const img_ref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

int vlp_task_check_images(vlp_task_set *s, int strict) {
    if (!s) {
        vlp_set_error("vlp_task_check_images: NULL set");
        return VLP_ERR_ARG;
    }
    int64_t n = s->n, nref = 0, nd = 0;
    if (!n) return 0;
    img_ref *refs = malloc((size_t)n * 2 * sizeof *refs);
    int64_t *first = malloc((size_t)n * 2 * sizeof *first); /* distinct image -> its first ref */
    char **why_img = NULL;
    const char **why = calloc((size_t)n, sizeof *why);
    int rc = 0;
    if (!refs || !first || !why) goto oom;
    for (int64_t i = 0; i < n; i++) {
        refs[nref++] = (img_ref){s->ex[i].image, i};
        if (s->ex[i].image2) refs[nref++] = (img_ref){s->ex[i].image2, n + i};
    }
    /* each distinct path once: many rows share an image */
    qsort(refs, (size_t)nref, sizeof *refs, cmp_img_ref);
    for (int64_t r = 0; r < nref; r++)
        if (r == 0 || strcmp(refs[r].s, refs[r - 1].s)) first[nd++] = r;
    if (!(why_img = calloc((size_t)(nd ? nd : 1), sizeof *why_img))) goto oom;
    int nomem = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(vlp_get_threads())
    for (int64_t d = 0; d < nd; d++) {
        const char *path = refs[first[d]].s;
        vlp_image im;
        if (vlp_image_load(path, NULL, &im)) {
            if (!(why_img[d] = ev_image_problem(path, vlp_last_error()))) {
#pragma omp atomic write
                nomem = 1;
            }
        } else {
            vlp_image_free(&im);
        }
    }
    if (nomem) goto oom;
    for (int64_t d = 0; d < nd; d++) {
        if (!why_img[d]) continue;
        int64_t end = d + 1 < nd ? first[d + 1] : nref;
        for (int64_t r = first[d]; r < end; r++) {
            int64_t i = refs[r].i % n;
            if (!why[i]) why[i] = why_img[d];
        }
    }
    rc = vlp_task_drop(s, why, VLP_TASK_BAD_IMAGE, strict);
    goto done;
oom:
    vlp_set_error("%s: out of memory checking the images", s->path);
    rc = VLP_ERR_NOMEM;
done:
    if (why_img)
        for (int64_t d = 0; d < nd; d++) free(why_img[d]);
    free(why_img);
    free(why);
    free(first);
    free(refs);
    return rc;
}
