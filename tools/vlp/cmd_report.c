/* vlp report: one self-contained HTML page comparing runs (metric tables, training curves, a
 * gallery of test examples). The inputs each run directory may hold are described in
 * include/vlp_eval.h (vlp_report_write). */
#include "cli.h"
#include "vlp.h"
#include "vlp_eval.h"

#include <stdlib.h>
#include <string.h>

static void report_usage(FILE *f) {
    fprintf(f,
            "usage: vlp report RUN_DIR... --out report.html [--gallery N] [--title TEXT]\n"
            "Writes one self-contained HTML page (inline CSS and SVG, images embedded as data: URIs) with\n"
            "the metric tables of the runs side by side, their training curves and a gallery of test\n"
            "examples, right and wrong marked. Each RUN_DIR may hold:\n"
            "  metrics.jsonl                     the training log; fields with \"loss\" in their name are\n"
            "                                    drawn against \"step\"\n"
            "  eval_<task>_<split>.json          {\"task\", \"split\", \"data\", \"predictions\", \"n\", \"metrics\"}\n"
            "                                    (written by vlp eval --task ... --out and vlp score --out)\n"
            "  predictions_<task>_<split>.jsonl  the predictions the gallery shows\n"
            "  --out FILE     the HTML page to write (required)\n"
            "  --gallery N    examples per run, task and split, half right and half wrong when both exist\n"
            "                 (default 8)\n"
            "  --title TEXT   page title (default \"vlp results\")\n"
            "exit status: 0 written, 1 unreadable run or unwritable output, 2 usage error\n");
}

int vlp_cmd_report(int argc, char **argv);
int vlp_cmd_report(int argc, char **argv) {
    const char *out = NULL, *title = NULL;
    long gallery = 8;
    const char **runs = malloc(sizeof(char *) * (size_t)(argc + 1));
    int n = 0;
    if (!runs) return CLI_FAIL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            report_usage(stdout);
            free(runs);
            return CLI_OK;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--title") || !strcmp(a, "--gallery")) {
            const char *v = cli_value("report", argc, argv, &i);
            if (!v || (!strcmp(a, "--gallery") && !cli_int("report", "--gallery", v, 1, 1000, &gallery))) {
                free(runs);
                return CLI_USAGE;
            }
            if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--title")) title = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vlp report: unknown option '%s' (see vlp report --help)\n", a);
            free(runs);
            return CLI_USAGE;
        } else {
            runs[n++] = a;
        }
    }
    if (!n || !out) {
        fprintf(stderr, "vlp report: needs at least one RUN_DIR and --out FILE (see vlp report --help)\n");
        free(runs);
        return CLI_USAGE;
    }
    vlp_report_options opt = {.gallery = (int)gallery, .title = title};
    int rc = vlp_report_write(runs, n, out, &opt);
    free(runs);
    if (rc) {
        fprintf(stderr, "vlp report: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    fprintf(stderr, "vlp report: wrote %s\n", out);
    return CLI_OK;
}
