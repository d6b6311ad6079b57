/* vlp_emoji.h: the emoji image-text benchmark and its downstream tasks.
 *
 * Built from the npm packages emoji-datasource-{apple,google,facebook,twitter} (version
 * 16.0.0 by default) by the rules of shared/datasets/emoji.md and emoji-tasks.md:
 *
 *   vlp_emoji_fetch        the four tarballs into a cache directory, with `npm pack --json`;
 *                          the size and SHA-1 that npm reports are kept next to each
 *                          tarball (PKG-VER.json) and checked on every use, so a partial or
 *                          damaged download is detected and fetched again.
 *   vlp_emoji_build        DIR/images/<vendor>/<image>.png (64x64 RGB, composited over
 *                          white), DIR/{train,style,unseen}.tsv (header "filepath\ttitle",
 *                          paths relative to DIR: vlp_dataset_open reads them),
 *                          DIR/zeroshot.json (classes, prompt templates, the labelled style
 *                          images) and, last, DIR/manifest.json.
 *   vlp_emoji_tasks_build  DIR/tasks/{caption,vqa,nlvr,ground2,ground3,mc}-{train,style,
 *                          unseen}.jsonl, the item images under DIR/images and the grounding
 *                          canvases under DIR/tasks/ground{2,3}-{part}/, and, last,
 *                          DIR/tasks/summary.json.
 *
 * Both builders are idempotent: when the file written last (manifest.json, summary.json)
 * is present and names the same package version, nothing is done (report->up_to_date);
 * any other state of DIR (a build that was interrupted) is rebuilt. Every file is written
 * to a temporary name and renamed into place.
 *
 * Errors: functions return 0 or a negative vlp_status with the message (naming the file
 * or the emoji.json entry and the problem) in vlp_last_error(); nothing is printed except
 * npm's own output while fetching.
 */
#ifndef VLP_EMOJI_H
#define VLP_EMOJI_H

#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(default)

#ifdef __cplusplus
extern "C" {
#endif

#define VLP_EMOJI_VERSION "16.0.0"

enum { VLP_EMOJI_NVENDORS = 4 }; /* apple, google, facebook, twitter */
enum { VLP_EMOJI_NPARTS = 3 };   /* train, style, unseen */
enum { VLP_EMOJI_NTASKS = 6 };   /* caption, vqa, nlvr, ground2, ground3, mc */

const char *vlp_emoji_vendor_name(int v);
const char *vlp_emoji_part_name(int p);
const char *vlp_emoji_task_name(int t);

typedef struct {
    const char *out_dir;   /* DIR (created if missing) */
    const char *cache_dir; /* tarballs; NULL: vlp_emoji_default_cache() */
    const char *version;   /* package version; NULL: VLP_EMOJI_VERSION */
    const char *npm;       /* npm program; NULL: $VLP_NPM, else "npm" from PATH */
    int offline;           /* 1: never run npm; the cache must hold verified tarballs */
    int force;             /* 1: rebuild even when DIR is complete */
    /* Called now and then during long steps (may be NULL). */
    void (*progress)(void *ctx, const char *what, int64_t done, int64_t total);
    void *progress_ctx;
} vlp_emoji_options;

typedef struct {
    int up_to_date;       /* 1: DIR was complete; nothing was written */
    int fetched;          /* tarballs downloaded by this call */
    double fetch_seconds; /* fetching and verifying the cache */
    double build_seconds; /* reading the tarballs and writing DIR */
    int64_t images;       /* image files written (items; canvases for tasks) */
    /* vlp_emoji_build: pairs per split and vendor (train: apple, google, facebook;
     * style and unseen: twitter in [3]), and the labelled zero-shot images. */
    int64_t pairs[VLP_EMOJI_NPARTS][VLP_EMOJI_NVENDORS];
    int64_t zeroshot_images;
    int zeroshot_classes;
    /* vlp_emoji_tasks_build: rows per task and part. */
    int64_t rows[VLP_EMOJI_NTASKS][VLP_EMOJI_NPARTS];
} vlp_emoji_report;

/* $VLP_CACHE/npm, else $XDG_CACHE_HOME/vlp/npm, else $HOME/.cache/vlp/npm into buf. */
int vlp_emoji_default_cache(char *buf, size_t n);

/* Makes sure the cache holds the four verified tarballs (downloading what is missing or
 * damaged unless opt->offline). out_dir is not used. rep may be NULL. */
int vlp_emoji_fetch(const vlp_emoji_options *opt, vlp_emoji_report *rep);

int vlp_emoji_build(const vlp_emoji_options *opt, vlp_emoji_report *rep);
int vlp_emoji_tasks_build(const vlp_emoji_options *opt, vlp_emoji_report *rep);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

#endif
