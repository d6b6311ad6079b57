/* The vlp_loader as a trainer batch source (kept apart from trainer.c so that programs
 * training from their own data do not link the image loader). */
#include "vlp_train.h"

#include <string.h>

static int ld_next(void *ctx, vlp_batch *out) { return vlp_loader_next(ctx, out); }
static int ld_seek(void *ctx, int64_t e, int64_t b) { return vlp_loader_seek(ctx, e, b); }
static double ld_wait(void *ctx) { return vlp_loader_take_wait_seconds(ctx); }

void vlp_batch_source_from_loader(vlp_batch_source *s, vlp_loader *ld) {
    memset(s, 0, sizeof *s);
    s->ctx = ld;
    s->next = ld_next;
    s->seek = ld_seek;
    s->take_wait_seconds = ld_wait;
    s->batches_per_epoch = vlp_loader_batches_per_epoch(ld);
}

