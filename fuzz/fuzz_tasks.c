// libFuzzer target: the task file reader (every task kind, lenient and strict) and the metrics
// on whatever it reads: the examples' own answers and labels scored as predictions, and the
// caption tokenizer, BLEU-4 and CIDEr-D on the texts. Errors are fine; crashes, leaks, UB and
// out-of-bounds reads are not.
//
// Build and run (from the repository root):
//   clang -g -O1 -march=x86-64-v3 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc -Isrc/core \
//     fuzz/fuzz_tasks.c src/eval/tasks.c src/eval/metrics.c src/core/error.c -ljansson -lutf8proc -lm -o /tmp/fuzz_tasks
//   mkdir -p /tmp/corpus_tasks && cp tests/fixtures/report/tasks/*.jsonl /tmp/corpus_tasks/
//   /tmp/fuzz_tasks -max_total_time=120 -max_len=4096 /tmp/corpus_tasks
// The first byte picks the task kind (mod 6), the rest is the file.
#include "vlp_eval.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    vlp_task_kind kind = (vlp_task_kind)(data[0] % VLP_TASK_COUNT);
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    vlp_task_read_options strict = {.strict = 1};
    vlp_task_set_free(vlp_task_read_mem(text, n, "fuzz.jsonl", "dir", kind, &strict));
    vlp_task_set *s = vlp_task_read_mem(text, n, "fuzz.jsonl", "dir", kind, NULL);
    if (!s) return 0;
    vlp_task_predictions p = {.kind = kind, .n = s->n};
    p.text = calloc((size_t)s->n + 1, sizeof *p.text);
    p.label = calloc((size_t)s->n + 1, sizeof *p.label);
    if (p.text && p.label) {
        for (int64_t i = 0; i < s->n; i++) {
            p.text[i] = s->ex[i].answer ? s->ex[i].answer : (char *)"";
            p.label[i] = (int)(i & 1) ? s->ex[i].label : 0;
        }
        vlp_task_metrics m;
        if (vlp_task_score(s, &p, s, &m) == 0) {
            free(vlp_task_metrics_json(&m));
            vlp_task_metrics_free(&m);
        }
        /* texts against one another: candidates shifted by one example */
        const char **c = calloc((size_t)s->n + 1, sizeof *c), **r = calloc((size_t)s->n + 1, sizeof *r);
        if (c && r) {
            for (int64_t i = 0; i < s->n; i++) {
                c[i] = s->ex[(i + 1) % s->n].text ? s->ex[(i + 1) % s->n].text : p.text[i];
                r[i] = s->ex[i].answer ? s->ex[i].answer : (s->ex[i].text ? s->ex[i].text : "");
            }
            vlp_bleu_result b;
            double cd;
            vlp_bleu4(s->n, c, r, &b);
            vlp_cider_d(s->n, c, r, &cd, NULL);
        }
        free(c);
        free(r);
    }
    free(p.text);
    free(p.label);
    vlp_task_set_free(s);
    return 0;
}
