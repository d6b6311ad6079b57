/* vlp data: builds the datasets vlp ships rules for.
 *   vlp data emoji --out DIR          the emoji image-text benchmark (shared/datasets/emoji.md)
 *   vlp data emoji-tasks --out DIR    its downstream tasks (shared/datasets/emoji-tasks.md)
 *   vlp data emoji-fetch              only download and verify the npm tarballs */
#include "cli.h"
#include "vlp.h"
#include "vlp_emoji.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: vlp data emoji --out DIR [options]         image-text pairs: DIR/{train,style,unseen}.tsv\n"
        "       vlp data emoji-tasks --out DIR [options]   caption/vqa/nlvr/ground2/ground3/mc JSONL in DIR/tasks/\n"
        "       vlp data emoji-fetch [options]             download and verify the npm tarballs only\n"
        "\n"
        "Builds the emoji benchmark from the npm packages emoji-datasource-{apple,google,facebook,twitter}\n"
        "(fetched with `npm pack`, about 340 MB, once) by the rules of shared/datasets/emoji.md and\n"
        "emoji-tasks.md. A finished DIR is left alone (manifest.json / tasks/summary.json are written last);\n"
        "an interrupted one is rebuilt.\n"
        "\n"
        "options:\n"
        "  --out DIR        output directory (created if missing)\n"
        "  --cache DIR      where the tarballs are kept (default $VLP_CACHE/npm, $XDG_CACHE_HOME/vlp/npm\n"
        "                   or ~/.cache/vlp/npm)\n"
        "  --version V      package version (default %s)\n"
        "  --offline        never run npm: the cache must already hold the tarballs\n"
        "  --force          rebuild even if DIR is complete\n"
        "  --json           print the summary as one JSON object\n"
        "environment: VLP_NPM (the npm program), VLP_PROGRESS=0/1\n"
        "exit status: 0 success, 1 failure (message on stderr), 2 usage error\n",
        VLP_EMOJI_VERSION);
}

typedef struct {
    cli_progress bar;
    char what[96];
    int active;
} progress_state;

static void on_progress(void *ctx, const char *what, int64_t done, int64_t total) {
    progress_state *ps = ctx;
    if (!ps->active || strcmp(ps->what, what)) {
        if (ps->active) cli_progress_end(&ps->bar, ps->bar.total);
        snprintf(ps->what, sizeof ps->what, "%s", what);
        cli_progress_start(&ps->bar, ps->what, "files", total);
        ps->active = 1;
    }
    if (done >= total) {
        cli_progress_end(&ps->bar, done);
        ps->active = 0;
    } else {
        cli_progress_update(&ps->bar, done);
    }
}

static void print_report(int what, const vlp_emoji_report *r, const char *out, int json) {
    if (json) {
        printf("{\"up_to_date\": %s, \"fetched\": %d, \"fetch_seconds\": %.2f, \"build_seconds\": %.2f, "
               "\"images\": %lld",
               r->up_to_date ? "true" : "false", r->fetched, r->fetch_seconds, r->build_seconds, (long long)r->images);
        if (what == 1) {
            for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
                long long tot = 0;
                for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) tot += r->pairs[p][v];
                printf(", \"%s\": %lld", vlp_emoji_part_name(p), tot);
            }
            printf(", \"zeroshot_classes\": %d, \"zeroshot_images\": %lld", r->zeroshot_classes,
                   (long long)r->zeroshot_images);
        } else if (what == 2) {
            printf(", \"rows\": {");
            for (int t = 0; t < VLP_EMOJI_NTASKS; t++)
                for (int p = 0; p < VLP_EMOJI_NPARTS; p++)
                    printf("%s\"%s-%s\": %lld", t || p ? ", " : "", vlp_emoji_task_name(t), vlp_emoji_part_name(p),
                           (long long)r->rows[t][p]);
            printf("}");
        }
        printf("}\n");
        return;
    }
    if (what == 0) {
        printf("tarballs verified (%d fetched) in %.1f s\n", r->fetched, r->fetch_seconds);
        return;
    }
    if (r->up_to_date)
        printf("%s is up to date (use --force to rebuild)\n", out);
    else
        printf("%s: fetch %.1f s (%d fetched), build %.1f s, %lld images written\n", out, r->fetch_seconds, r->fetched,
               r->build_seconds, (long long)r->images);
    if (what == 1) {
        for (int p = 0; p < VLP_EMOJI_NPARTS; p++) {
            long long tot = 0;
            char per[160] = "";
            for (int v = 0; v < VLP_EMOJI_NVENDORS; v++)
                if (r->pairs[p][v]) {
                    tot += r->pairs[p][v];
                    snprintf(per + strlen(per), sizeof per - strlen(per), "%s%s %lld", per[0] ? ", " : "",
                             vlp_emoji_vendor_name(v), (long long)r->pairs[p][v]);
                }
            printf("  %-7s %6lld pairs (%s)\n", vlp_emoji_part_name(p), tot, per);
        }
        printf("  zero-shot: %d classes, %lld style images\n", r->zeroshot_classes, (long long)r->zeroshot_images);
    } else {
        printf("  %-8s %8s %8s %8s\n", "task", "train", "style", "unseen");
        for (int t = 0; t < VLP_EMOJI_NTASKS; t++)
            printf("  %-8s %8lld %8lld %8lld\n", vlp_emoji_task_name(t), (long long)r->rows[t][0],
                   (long long)r->rows[t][1], (long long)r->rows[t][2]);
    }
}

int vlp_cmd_data(int argc, char **argv) {
    if (argc < 1) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[0]) || !strcmp(argv[0], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    int what;
    const char *sub = argv[0];
    if (!strcmp(sub, "emoji-fetch"))
        what = 0;
    else if (!strcmp(sub, "emoji"))
        what = 1;
    else if (!strcmp(sub, "emoji-tasks"))
        what = 2;
    else {
        fprintf(stderr, "vlp data: unknown dataset '%s' (emoji, emoji-tasks, emoji-fetch; see vlp data --help)\n", sub);
        return CLI_USAGE;
    }
    vlp_emoji_options opt = {0};
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--cache") || !strcmp(a, "--version")) {
            const char *v = cli_value("data", argc, argv, &i);
            if (!v) return CLI_USAGE;
            if (!*v) {
                fprintf(stderr, "vlp data: %s is empty\n", a);
                return CLI_USAGE;
            }
            if (a[2] == 'o')
                opt.out_dir = v;
            else if (a[2] == 'c')
                opt.cache_dir = v;
            else
                opt.version = v;
        } else if (!strcmp(a, "--offline")) {
            opt.offline = 1;
        } else if (!strcmp(a, "--force")) {
            opt.force = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "vlp data %s: unexpected argument '%s' (see vlp data --help)\n", sub, a);
            return CLI_USAGE;
        }
    }
    if (what && !opt.out_dir) {
        fprintf(stderr, "vlp data %s: where to? (--out DIR)\n", sub);
        return CLI_USAGE;
    }
    progress_state ps = {0};
    opt.progress = on_progress;
    opt.progress_ctx = &ps;
    vlp_emoji_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = what == 0   ? vlp_emoji_fetch(&opt, &rep)
             : what == 1 ? vlp_emoji_build(&opt, &rep)
                         : vlp_emoji_tasks_build(&opt, &rep);
    if (ps.active) cli_progress_end(&ps.bar, ps.bar.total);
    if (rc) {
        fprintf(stderr, "vlp data %s: %s\n", sub, vlp_last_error());
        return CLI_FAIL;
    }
    print_report(what, &rep, opt.out_dir, json);
    return CLI_OK;
}
