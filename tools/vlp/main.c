/* vlp: command-line front end. Global flags (--threads N) may come before or
 * after the command; each command parses its own options (see --help). */
#include "cli.h"
#include "vlp.h"

#include <stdlib.h>
#include <string.h>

int vlp_cmd_finetune(int argc, char **argv); /* cmd_finetune.c */

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"embed", vlp_cmd_embed, "embed images and/or texts with a CLIP model (.npy or JSONL)"},
    {"classify", vlp_cmd_classify, "zero-shot labels for images from a list of class names"},
    {"similarity", vlp_cmd_similarity, "the image-text logit matrix"},
    {"tokenize", vlp_cmd_tokenize, "CLIP BPE or BERT WordPiece token ids of texts, one JSON array per line"},
    {"info", vlp_cmd_info, "family, config, tokenizer, parameter count and tensor dtypes of a model"},
    {"init", vlp_cmd_init, "write a randomly initialised CLIP of any config or preset"},
    {"data", vlp_cmd_data, "build the emoji benchmark and its tasks from npm (vlp data --help)"},
    {"train", vlp_cmd_train, "pre-training from a run config: CLIP (InfoNCE or SigLIP) or a fusion / captioning family"},
    {"eval", vlp_cmd_eval, "retrieval Recall@K (ITC, ITM re-ranking), zero-shot accuracy, downstream tasks (--task)"},
    {"plot", vlp_cmd_plot, "loss and metric curves of a training run as SVG"},
    {"vl-init", vlp_cmd_vl_init, "write a randomly initialised fusion / captioning model (ViLT, ALBEF, VLMo, BLIP)"},
    {"caption", vlp_cmd_caption, "captions for images: beam search (default), greedy or nucleus sampling"},
    {"match", vlp_cmd_match, "image-text matching probability of texts for an image (ITM)"},
    {"fill", vlp_cmd_fill, "the most likely tokens at each [MASK] of a text, given an image"},
    {"demo", vlp_cmd_demo, "train a small transformer on a toy task and print the loss"},
    {"score", vlp_cmd_score, "metrics of task predictions (VQA, NLVR, grounding, mc, captions)"},
    {"report", vlp_cmd_report, "one self-contained HTML page: metric tables, curves, examples"},
    {"probe", vlp_cmd_probe, "linear probe (logistic regression) on frozen CLIP image embeddings, VQA"},
    {"finetune", vlp_cmd_finetune, "fine-tune a fusion model on a downstream task (vqa, mc, nlvr, ground2, ground3)"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
    fprintf(f, "vlp %s: vision-language pre-training and inference in C\n\n"
               "usage: vlp [--threads N] COMMAND [options]     (vlp COMMAND --help for its options)\n\ncommands:\n",
            vlp_version());
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-11s %s\n", "version", "print the version");
    fprintf(f, "\nenvironment: VLP_THREADS (default: all cores), VLP_PROGRESS=0/1 (progress on stderr),\n"
               "             VLP_PROFILE=1 (per-op timings)\n"
               "exit status: 0 success, 1 failure (message on stderr), 2 usage error\n");
}

int main(int argc, char **argv) {
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    const char *cmd = NULL;
    int n = 0;
    if (!rest) return CLI_FAIL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads")) {
            long t;
            const char *v = cli_value("", argc, argv, &i);
            if (!v || !cli_int(cmd ? cmd : "", "--threads", v, 1, 1024, &t)) {
                free(rest);
                return CLI_USAGE;
            }
            vlp_set_threads((int)t);
        } else if (!cmd) {
            cmd = argv[i];
        } else {
            rest[n++] = argv[i];
        }
    }
    rest[n] = NULL;
    int rc = CLI_USAGE;
    if (!cmd) {
        usage(stderr);
    } else if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("vlp %s\n", vlp_version());
        rc = CLI_OK;
    } else if (!strcmp(cmd, "help") || cli_is_help(cmd)) {
        usage(stdout);
        rc = CLI_OK;
    } else {
        int found = 0;
        for (int i = 0; i < N_COMMANDS && !found; i++)
            if (!strcmp(cmd, commands[i].name)) {
                found = 1;
                rc = commands[i].fn(n, rest);
            }
        if (!found) {
            fprintf(stderr, "vlp: unknown command '%s'\n\n", cmd);
            usage(stderr);
        }
    }
    free(rest);
    return rc;
}
