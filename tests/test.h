/* Minimal test harness: CHECK counts, failures print where and why, and
 * test_finish() prints the one summary line tests/run.sh sums up. */
#ifndef VLP_TEST_H
#define VLP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_passed, test_failed;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (cond) {                                                 \
            test_passed++;                                          \
        } else {                                                    \
            test_failed++;                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);             \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
            fflush(stdout);                                         \
        }                                                           \
    } while (0)

static inline int test_finish(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Fixture paths are relative to the repository root (make test runs there). */
#define FIXTURE(p) "tests/fixtures/" p

#endif
