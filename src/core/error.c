/* Error messages and counted allocation. Errors are returned, never printed
 * from inside the library: the message lives in a thread-local buffer (API
 * calls) or on the graph (op constructors). */
#include "internal.h"

#include <stdatomic.h>

static _Thread_local char last_error[512];
static atomic_uint_fast64_t alloc_count;

const char *vlp_last_error(void) { return last_error; }
const char *vlp_version(void) { return VLP_VERSION; }

void vlp_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

void vlp_graph_fail(vlp_graph *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (g && !g->failed) { /* keep the first error: later ones are consequences */
        vsnprintf(g->err, sizeof g->err, fmt, ap);
        g->failed = 1;
        snprintf(last_error, sizeof last_error, "%s", g->err);
    } else if (!g) {
        vsnprintf(last_error, sizeof last_error, fmt, ap);
    }
    va_end(ap);
}

const char *vlp_shape_str(const vlp_tensor *t, char *buf, size_t n) {
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]%s", t->dtype == VLP_I32 ? " i32" : "");
    return buf;
}

uint64_t vlp_alloc_count(void) { return atomic_load(&alloc_count); }

void *vlp_malloc(size_t n) {
    atomic_fetch_add(&alloc_count, 1);
    return malloc(n ? n : 1);
}

void *vlp_calloc(size_t n, size_t m) {
    atomic_fetch_add(&alloc_count, 1);
    return calloc(n ? n : 1, m ? m : 1);
}

void *vlp_aligned_alloc(size_t n) {
    atomic_fetch_add(&alloc_count, 1);
    size_t sz = (n + VLP_ALIGN - 1) / VLP_ALIGN * VLP_ALIGN;
    return aligned_alloc(VLP_ALIGN, sz ? sz : VLP_ALIGN);
}

void vlp_free(void *p) { free(p); }
