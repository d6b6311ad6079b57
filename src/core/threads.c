/* Thread count for the OpenMP regions inside ops. Kernels are written so that
 * their results do not depend on this number (work is split over outputs, and
 * reductions use fixed-size chunks summed in a fixed order). */
#include "internal.h"

#include <omp.h>

static int vlp_threads; /* 0 = not yet resolved */

static int resolve_default(void) {
    const char *env = getenv("VLP_THREADS");
    if (env && *env) {
        int n = atoi(env);
        if (n > 0) return n;
    }
    return omp_get_num_procs();
}

void vlp_set_threads(int n) {
    vlp_threads = n > 0 ? n : resolve_default();
    omp_set_num_threads(vlp_threads);
}

int vlp_get_threads(void) {
    if (!vlp_threads) vlp_set_threads(0);
    return vlp_threads;
}
