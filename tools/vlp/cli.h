/* Shared helpers of the vlp CLI commands. Exit codes: 0 success, 1 runtime
 * failure (bad file, model error), 2 usage error (unknown flag, bad value). */
#ifndef VLP_CLI_H
#define VLP_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vlp_eval.h"
#include "vlp_train.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Parses an integer flag value in [lo, hi]; prints the error and returns 0 if bad. */
int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);
/* The value after argv[*i] (advancing *i), or NULL with an error printed. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
int cli_is_help(const char *a);
double cli_now(void);

/* Progress on stderr for long jobs: "label  n/total  rate/s  ETA", redrawn at
 * most every 0.5 s and only when stderr is a terminal or VLP_PROGRESS=1. */
typedef struct {
    const char *label, *unit;
    int64_t total;
    double t0, last;
    int enabled;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, const char *unit, int64_t total);
/* Whether progress lines redraw in place: VLP_PROGRESS=0/1, else whether stderr is a terminal. */
int cli_progress_redraw(void);
/* SIGINT sets a flag instead of killing the process (catch ... restore around a training run). */
void cli_sigint_catch(void);
void cli_sigint_restore(void);
int cli_interrupted(void);
void cli_progress_update(cli_progress *p, int64_t done);
void cli_progress_end(cli_progress *p, int64_t done);

int vlp_cmd_demo(int argc, char **argv);
int vlp_cmd_vl_init(int argc, char **argv); /* cmd_fusion.c */
int vlp_cmd_caption(int argc, char **argv);
int vlp_cmd_match(int argc, char **argv);
int vlp_cmd_fill(int argc, char **argv);
/* vlp info of a fusion / captioning model: -1 if path is not one, else the exit code. */
int vlp_info_vl(const char *path, int json);
/* 1 if path is a pre-trained fusion / captioning model (vlp-vl config, not from vlp finetune);
 * its config then in cfg. */
int cli_is_pretrained_vl(const char *path, vlp_vl_config *cfg);
int vlp_cmd_train(int argc, char **argv);
int vlp_cmd_eval(int argc, char **argv);
int vlp_cmd_plot(int argc, char **argv);
int vlp_cmd_data(int argc, char **argv);
int vlp_cmd_info(int argc, char **argv);
int vlp_cmd_init(int argc, char **argv);
int vlp_cmd_tokenize(int argc, char **argv);
int vlp_cmd_embed(int argc, char **argv);
int vlp_cmd_classify(int argc, char **argv);
int vlp_cmd_similarity(int argc, char **argv);
int vlp_cmd_score(int argc, char **argv);
int vlp_cmd_report(int argc, char **argv);
int vlp_cmd_probe(int argc, char **argv); /* cmd_probe.c */

/* Run-config helpers (cli_json.c, jansson): 0 when the key is absent or read, -1 (message
 * printed: command, where, key) when it has the wrong type or, for check_keys, is unknown. */
struct json_t;
int cli_json_num(const char *cmd, struct json_t *o, const char *k, double *out, const char *where);
int cli_json_str(const char *cmd, struct json_t *o, const char *k, char *out, size_t cap, const char *where);
int cli_json_check_keys(const char *cmd, struct json_t *o, const char *const *known, const char *where);
/* The run config's "optimizer" and "schedule" objects into t (fields left as they are when absent). */
int cli_json_optimizer(const char *cmd, struct json_t *root, const char *path, vlp_train_config *t);

/* The split a task file holds: "{task}-{part}.jsonl" -> part; otherwise the file name without
 * its extension. */
void cli_task_split(const char *path, const char *task, char *out, size_t n);
/* A task file's skipped rows on stderr: "vlp CMD: FILE: K of N rows skipped (reason counts)"
 * and the first ten "FILE:LINE: problem" messages; nothing when none (cli_json.c). */
void cli_report_bad_rows(const char *cmd, const vlp_task_set *s);

#endif
