/* The batch loader: worker threads read, decode, preprocess and tokenise pairs into a
 * ring of prefetch + 1 batch slots (the consumer holds one, the others fill ahead).
 *
 * Work is handed out one pair at a time, oldest batch first, so every worker helps finish
 * the batch the consumer will ask for next. Which pairs a batch holds is decided by the
 * consumer thread alone, from (seed, epoch, batch, rank, world) (see vlp_data.h), and every
 * pair's pixels depend only on (seed, epoch, index): batches are the same whatever the
 * worker count, prefetch depth or timing, which is what makes vlp_loader_seek exact. */
#include "data_internal.h"
#include "vlp_text.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_HELD };

typedef struct {
    int state;
    int64_t seq;    /* hand-out order: the oldest filling slot first */
    int64_t epoch, batch;
    int n;          /* pairs in the batch */
    int next_j;     /* next pair to hand to a worker */
    int remaining;  /* pairs not finished yet */
    int status;     /* first error (lowest pair) */
    int err_j;
    char err[512];
    int replaced;       /* pairs replaced after a failure (replace_bad_images) */
    int rep_j;          /* the lowest of them */
    char rep_err[512];  /* the first of those failures */
    uint8_t *ok;
    float *pixels;
    int32_t *tokens;
    int64_t *index;
} slot;

struct vlp_loader {
    const vlp_dataset *ds;
    vlp_loader_options o;
    vlp_preprocess_config pre;
    vlp_bpe *bpe; /* the default tokenizer */
    int64_t n, global_batches, batches;
    int nslots;
    slot *slots;
    int64_t *perm;
    int64_t perm_epoch;
    int64_t fill_epoch, fill_batch; /* position the next assigned slot gets */
    int64_t take_seq, fill_seq;     /* sequence numbers: slot of seq s is slots[s % nslots] */
    int held;                       /* slot the consumer holds, -1: none */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t *threads;
    int nthreads, stop, inflight;
    double wait_s;
    int64_t skipped;
    char skip_err[512];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t s = a;
    uint64_t x = data_splitmix64(&s);
    s = x ^ (b * 0xD1B54A32D192ED03ull);
    x = data_splitmix64(&s);
    s = x ^ (c * 0x8CB92BA72F3D8DD7ull);
    return data_splitmix64(&s);
}

/* The epoch's order: identity, or Fisher-Yates with a splitmix64 stream from (seed, epoch). */
static void make_perm(vlp_loader *ld, int64_t epoch) {
    int64_t n = ld->n;
    for (int64_t i = 0; i < n; i++) ld->perm[i] = i;
    if (ld->o.shuffle) {
        uint64_t s = mix3(ld->o.seed, (uint64_t)epoch, 0x5368756666ull /* "Shuff" */);
        for (int64_t i = n - 1; i > 0; i--) {
            uint64_t bound = (uint64_t)i + 1, lim = UINT64_MAX - UINT64_MAX % bound, x;
            do x = data_splitmix64(&s);
            while (x >= lim);
            int64_t j = (int64_t)(x % bound), t = ld->perm[i];
            ld->perm[i] = ld->perm[j];
            ld->perm[j] = t;
        }
    }
    ld->perm_epoch = epoch;
}

/* Fills slot s's pair list for (epoch, batch). Consumer thread only; s is FREE, so no
 * worker reads it. */
static void assign(vlp_loader *ld, slot *s, int64_t epoch, int64_t batch) {
    if (ld->perm_epoch != epoch) make_perm(ld, epoch);
    int64_t world = ld->o.world, g = batch * world + ld->o.rank, start = g * ld->o.batch_size;
    int64_t n = ld->n - start < ld->o.batch_size ? ld->n - start : ld->o.batch_size;
    s->epoch = epoch;
    s->batch = batch;
    s->n = (int)n;
    s->next_j = 0;
    s->remaining = (int)n;
    s->status = 0;
    s->err_j = -1;
    s->err[0] = 0;
    s->replaced = 0;
    s->rep_err[0] = 0;
    for (int64_t j = 0; j < n; j++) s->index[j] = ld->perm[start + j];
}

/* Assigns every free slot ahead of the consumer, in order. Consumer thread only. */
static void refill(vlp_loader *ld) {
    int64_t oldest = ld->held >= 0 ? ld->take_seq - 1 : ld->take_seq;
    int added = 0;
    while (ld->fill_seq < oldest + ld->nslots) {
        slot *s = &ld->slots[ld->fill_seq % ld->nslots];
        assign(ld, s, ld->fill_epoch, ld->fill_batch);
        s->seq = ld->fill_seq;
        pthread_mutex_lock(&ld->mu);
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&ld->mu);
        ld->fill_seq++;
        if (++ld->fill_batch == ld->batches) {
            ld->fill_batch = 0;
            ld->fill_epoch++;
        }
        added = 1;
    }
    if (added) {
        pthread_mutex_lock(&ld->mu);
        pthread_cond_broadcast(&ld->work_cv);
        pthread_mutex_unlock(&ld->mu);
    }
}

/* Reads, decodes, preprocesses and tokenises pair j of s. Returns 0 or a status with the
 * message in this thread's vlp_last_error(). */
static int process(vlp_loader *ld, slot *s, int j) {
    if (ld->o.index_only) return 0;
    int64_t idx = s->index[j];
    const char *key = vlp_dataset_key(ld->ds, idx);
    int S = ld->o.image_size, ctx = ld->o.context_length;
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = vlp_dataset_read_image(ld->ds, idx, &data, &size);
    if (rc) return rc;
    vlp_image img;
    rc = vlp_image_decode(data, size, key, NULL, &img);
    free(data);
    const char *shard = vlp_dataset_shard(ld->ds, idx);
    if (rc && shard) { /* name the shard too: a key alone is hard to find among many */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("%s: %s", shard, msg);
    }
    if (rc) return rc;
    float *px = s->pixels + (size_t)j * 3 * S * S;
    if (ld->o.random_resized_crop) {
        uint64_t rng = mix3(ld->o.seed ^ 0x52524321ull /* "RRC!" */, (uint64_t)s->epoch, (uint64_t)idx);
        float smin = ld->o.rrc_scale_min > 0 ? ld->o.rrc_scale_min : 0.9f;
        rc = data_random_resized_crop(&img, &ld->pre, smin, &rng, px);
    } else {
        rc = vlp_image_preprocess(&img, &ld->pre, px);
    }
    vlp_image_free(&img);
    if (rc) return rc;
    const char *cap = vlp_dataset_caption(ld->ds, idx);
    int32_t *tok = s->tokens + (size_t)j * ctx;
    if (ld->o.tokenize) {
        memset(tok, 0, sizeof(int32_t) * (size_t)ctx);
        rc = ld->o.tokenize(ld->o.tokenize_ctx, cap, ctx, tok);
        if (rc > 0) rc = 0;
    } else {
        rc = vlp_bpe_tokenize(ld->bpe, cap, ctx, 1, tok);
        if (rc > 0) rc = 0;
    }
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", vlp_last_error());
        vlp_set_error("caption of '%s': %s", key, msg);
    }
    return rc;
}

static void *worker(void *arg) {
    vlp_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        slot *s = NULL;
        int j = -1;
        while (!ld->stop) {
            /* take_seq and fill_seq belong to the consumer: look at the slots only */
            for (int i = 0; i < ld->nslots; i++) {
                slot *c = &ld->slots[i];
                if (c->state == SLOT_FILLING && c->next_j < c->n && (!s || c->seq < s->seq)) s = c;
            }
            if (s) {
                j = s->next_j++;
                break;
            }
            pthread_cond_wait(&ld->work_cv, &ld->mu);
        }
        if (ld->stop) break;
        ld->inflight++;
        pthread_mutex_unlock(&ld->mu);

        int rc = process(ld, s, j), replaced = 0;
        char first_err[512];
        if (rc && ld->o.replace_bad_images) {
            /* a deterministic stand-in: the order stays a function of (seed, epoch) */
            snprintf(first_err, sizeof first_err, "%s", vlp_last_error());
            int64_t bad = s->index[j], N = vlp_dataset_size(ld->ds);
            for (int a = 1; a <= 32 && rc; a++) {
                s->index[j] = (int64_t)(mix3(ld->o.seed ^ 0x5245504cull /* "REPL" */, (uint64_t)s->epoch,
                                             (uint64_t)bad * 64 + (uint64_t)a) %
                                        (uint64_t)N);
                rc = process(ld, s, j);
            }
            replaced = rc == 0;
            if (rc) { /* no stand-in either: the error is the pair's own */
                s->index[j] = bad;
                vlp_set_error("%s (and no readable stand-in among 32 tried)", first_err);
            }
        }
        s->ok[j] = rc == 0;

        pthread_mutex_lock(&ld->mu);
        if (replaced) { /* the message of the lowest replaced pair: the same whatever the timing */
            if (s->replaced++ == 0 || j < s->rep_j) {
                s->rep_j = j;
                snprintf(s->rep_err, sizeof s->rep_err, "%s", first_err);
            }
        }
        if (rc && (s->err_j < 0 || j < s->err_j)) {
            s->status = rc;
            s->err_j = j;
            snprintf(s->err, sizeof s->err, "%s", vlp_last_error());
        }
        s->remaining--;
        ld->inflight--;
        if (s->remaining == 0 || ld->inflight == 0) pthread_cond_broadcast(&ld->done_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Stops handing out pairs of every slot and waits for the ones in flight. */
static void drain(vlp_loader *ld) {
    pthread_mutex_lock(&ld->mu);
    for (int i = 0; i < ld->nslots; i++) {
        slot *s = &ld->slots[i];
        if (s->state == SLOT_FILLING) {
            s->remaining -= s->n - s->next_j;
            s->next_j = s->n;
        }
    }
    while (ld->inflight > 0) pthread_cond_wait(&ld->done_cv, &ld->mu);
    for (int i = 0; i < ld->nslots; i++) ld->slots[i].state = SLOT_FREE;
    pthread_mutex_unlock(&ld->mu);
}

vlp_loader *vlp_loader_new(const vlp_dataset *ds, const vlp_loader_options *opt) {
    if (!ds || !opt) {
        vlp_set_error("vlp_loader_new: %s is NULL", ds ? "opt" : "ds");
        return NULL;
    }
    vlp_loader_options o = *opt;
    if (o.world <= 0) o.world = 1;
    if (o.workers <= 0) o.workers = 2;
    if (o.prefetch <= 0) o.prefetch = 2;
    if (o.batch_size < 1 || o.image_size < 1 || o.image_size > 65536 || o.context_length < 2 || o.rank < 0 ||
        o.rank >= o.world || o.workers > 1024 || o.prefetch > 1024 || o.rrc_scale_min < 0 || o.rrc_scale_min > 1) {
        vlp_set_error("vlp_loader_new: bad options (batch_size %d >= 1, image_size %d in 1..65536, context_length "
                      "%d >= 2, rank %d in 0..world-1 (world %d), workers %d and prefetch %d <= 1024, "
                      "rrc_scale_min %g in 0..1)",
                      o.batch_size, o.image_size, o.context_length, o.rank, o.world, o.workers, o.prefetch,
                      o.rrc_scale_min);
        return NULL;
    }
    int64_t n = vlp_dataset_size(ds), bs = o.batch_size;
    int64_t G = o.drop_last ? n / bs : (n + bs - 1) / bs;
    int64_t per = o.drop_last ? G / o.world : (G > o.rank ? (G - o.rank + o.world - 1) / o.world : 0);
    if (per == 0) {
        vlp_set_error("vlp_loader_new: %lld pairs give no batch of %d for rank %d of %d%s", (long long)n, o.batch_size,
                      o.rank, o.world, o.drop_last ? " (drop_last)" : "");
        return NULL;
    }
    vlp_loader *ld = calloc(1, sizeof *ld);
    if (!ld) {
        vlp_set_error("vlp_loader_new: out of memory");
        return NULL;
    }
    ld->ds = ds;
    ld->o = o;
    ld->n = n;
    ld->global_batches = G;
    ld->batches = per;
    ld->pre = vlp_preprocess_clip(o.image_size);
    ld->held = -1;
    ld->perm_epoch = -1;
    ld->nslots = o.prefetch + 1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work_cv, NULL);
    pthread_cond_init(&ld->done_cv, NULL);
    ld->perm = malloc(sizeof(int64_t) * (size_t)n);
    ld->slots = calloc((size_t)ld->nslots, sizeof *ld->slots);
    int ok = ld->perm && ld->slots;
    size_t S = (size_t)o.image_size;
    for (int i = 0; ok && i < ld->nslots; i++) {
        slot *s = &ld->slots[i];
        s->pixels = malloc(sizeof(float) * (size_t)bs * 3 * S * S);
        s->tokens = malloc(sizeof(int32_t) * (size_t)bs * (size_t)o.context_length);
        s->index = malloc(sizeof(int64_t) * (size_t)bs);
        s->ok = malloc((size_t)bs);
        ok = s->pixels && s->tokens && s->index && s->ok;
    }
    if (!ok) {
        vlp_set_error("vlp_loader_new: out of memory for %d batches of %d x 3 x %d x %d", ld->nslots, o.batch_size,
                      o.image_size, o.image_size);
        vlp_loader_free(ld);
        return NULL;
    }
    if (!o.tokenize && !(ld->bpe = vlp_bpe_load(NULL))) {
        vlp_loader_free(ld);
        return NULL;
    }
    ld->threads = calloc((size_t)o.workers, sizeof *ld->threads);
    if (!ld->threads) {
        vlp_set_error("vlp_loader_new: out of memory");
        vlp_loader_free(ld);
        return NULL;
    }
    for (int i = 0; i < o.workers; i++) {
        if (pthread_create(&ld->threads[i], NULL, worker, ld)) {
            vlp_set_error("vlp_loader_new: cannot start worker thread %d", i);
            vlp_loader_free(ld);
            return NULL;
        }
        ld->nthreads++;
    }
    refill(ld); /* start preparing batches while the caller sets up its model */
    return ld;
}

void vlp_loader_free(vlp_loader *ld) {
    if (!ld) return;
    if (ld->slots) drain(ld);
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nthreads; i++) pthread_join(ld->threads[i], NULL);
    free(ld->threads);
    if (ld->slots)
        for (int i = 0; i < ld->nslots; i++) {
            free(ld->slots[i].pixels);
            free(ld->slots[i].tokens);
            free(ld->slots[i].index);
            free(ld->slots[i].ok);
        }
    free(ld->slots);
    free(ld->perm);
    vlp_bpe_free(ld->bpe);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->work_cv);
    pthread_cond_destroy(&ld->done_cv);
    free(ld);
}

int vlp_loader_next(vlp_loader *ld, vlp_batch *out) {
    if (!ld || !out) {
        vlp_set_error("vlp_loader_next: %s is NULL", ld ? "out" : "loader");
        return VLP_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (ld->held >= 0) { /* the caller is done with the last batch */
        pthread_mutex_lock(&ld->mu);
        ld->slots[ld->held].state = SLOT_FREE;
        pthread_mutex_unlock(&ld->mu);
        ld->held = -1;
    }
    refill(ld);
    int hi = (int)(ld->take_seq % ld->nslots);
    slot *s = &ld->slots[hi];
    pthread_mutex_lock(&ld->mu);
    if (s->remaining > 0) {
        double t0 = now_s();
        while (s->remaining > 0) pthread_cond_wait(&ld->done_cv, &ld->mu);
        ld->wait_s += now_s() - t0;
    }
    s->state = SLOT_HELD;
    pthread_mutex_unlock(&ld->mu);
    ld->held = hi;
    ld->take_seq++;
    if (s->replaced) {
        ld->skipped += s->replaced;
        snprintf(ld->skip_err, sizeof ld->skip_err, "%s", s->rep_err);
    }
    if (s->status && !ld->o.skip_bad_images) {
        vlp_set_error("batch %lld of epoch %lld: %s", (long long)s->batch, (long long)s->epoch, s->err);
        return s->status;
    }
    if (s->status) { /* drop the failed pairs, keeping the order of the others */
        int k = 0;
        size_t P = (size_t)3 * ld->o.image_size * ld->o.image_size, T = (size_t)ld->o.context_length;
        for (int j = 0; j < s->n; j++) {
            if (!s->ok[j]) {
                ld->skipped++;
                continue;
            }
            if (k != j) {
                memcpy(s->pixels + k * P, s->pixels + j * P, P * sizeof(float));
                memcpy(s->tokens + k * T, s->tokens + j * T, T * sizeof(int32_t));
                s->index[k] = s->index[j];
            }
            k++;
        }
        snprintf(ld->skip_err, sizeof ld->skip_err, "%s", s->err);
        s->n = k;
        s->status = 0;
    }
    out->n = s->n;
    out->pixels = s->pixels;
    out->tokens = s->tokens;
    out->index = s->index;
    out->epoch = s->epoch;
    out->batch = s->batch;
    return 0;
}

int vlp_loader_seek(vlp_loader *ld, int64_t epoch, int64_t batch) {
    if (!ld) {
        vlp_set_error("vlp_loader_seek: loader is NULL");
        return VLP_ERR_ARG;
    }
    if (epoch < 0 || batch < 0 || batch >= ld->batches) {
        vlp_set_error("vlp_loader_seek: position (epoch %lld, batch %lld) out of range (%lld batches per epoch)",
                      (long long)epoch, (long long)batch, (long long)ld->batches);
        return VLP_ERR_ARG;
    }
    drain(ld);
    ld->held = -1;
    ld->take_seq = ld->fill_seq = 0;
    ld->fill_epoch = epoch;
    ld->fill_batch = batch;
    refill(ld);
    return 0;
}

int64_t vlp_loader_batches_per_epoch(const vlp_loader *ld) { return ld ? ld->batches : 0; }

int vlp_loader_each_in_order(vlp_loader *ld, int64_t n, const char *who,
                             int (*fn)(void *ctx, const vlp_batch *b, int64_t first), void *ctx) {
    if (!ld || !fn) {
        vlp_set_error("%s: NULL loader", who);
        return VLP_ERR_ARG;
    }
    if (n > 0 && ld->batches <= 0) {
        vlp_set_error("%s: the loader has no batches", who);
        return VLP_ERR_ARG;
    }
    int64_t done = 0;
    int rc = VLP_OK;
    for (int64_t b = 0; !rc && b < ld->batches; b++) {
        vlp_batch bt;
        if ((rc = vlp_loader_next(ld, &bt))) break;
        /* a pair lost here (a skipped bad image) would shift every later feature onto the wrong caption */
        for (int i = 0; i < bt.n && !rc; i++)
            if (bt.index[i] != done + i) {
                vlp_set_error("%s: the loader skipped pair %lld", who, (long long)(done + i));
                rc = VLP_ERR_IO;
            }
        if (!rc) rc = fn(ctx, &bt, done);
        done += bt.n;
    }
    if (!rc && done != n) {
        vlp_set_error("%s: read %lld of %lld pairs", who, (long long)done, (long long)n);
        rc = VLP_ERR_IO;
    }
    return rc;
}

double vlp_loader_take_wait_seconds(vlp_loader *ld) {
    if (!ld) return 0;
    double w = ld->wait_s;
    ld->wait_s = 0;
    return w;
}

int64_t vlp_loader_skipped(const vlp_loader *ld) { return ld ? ld->skipped : 0; }
const char *vlp_loader_last_skip_error(vlp_loader *ld) { return ld ? ld->skip_err : ""; }
