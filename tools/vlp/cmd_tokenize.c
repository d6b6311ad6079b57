/* vlp tokenize: CLIP BPE (or BERT WordPiece) token ids of text, one JSON array per line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline, clock_gettime */
#endif
#include "vlp.h"
#include "vlp_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vlp_cmd_tokenize(int argc, char **argv);
/* cmd_tokenize_wp.c */
int is_wordpiece_vocab(const char *path);
int vlp_tokenize_wordpiece(const char *vocab, int context, int truncate, int pair, int ntexts, char **texts);

static void tokenize_usage(FILE *f) {
    fprintf(f, "usage: vlp tokenize [--context N] [--no-truncate] [--vocab FILE] [--bert [--pair]] [TEXT...]\n"
               "Prints the CLIP BPE (or, with --bert / a WordPiece --vocab, BERT WordPiece) token ids of each\n"
               "TEXT (or of each line of standard input when no TEXT is given) as one JSON array per line.\n"
               "  --context N     model input instead: 49406, ids, 49407, zeros to N ids (CLIP uses 77);\n"
               "                  a longer text is cut so that the last id is 49407\n"
               "  --no-truncate   with --context, a text that does not fit is an error\n"
               "  --vocab FILE    BPE merges file (.txt or .txt.gz); default: the CLIP vocabulary built in.\n"
               "                  A WordPiece vocab.txt (one token per line) selects BERT WordPiece instead\n"
               "  --bert          BERT WordPiece with the built-in bert-base-uncased vocabulary: ids without\n"
               "                  [CLS]/[SEP]; with --context N (alias --max-length N) the model input\n"
               "                  [CLS] ids [SEP] padded to N, printed as {\"input_ids\", \"token_type_ids\",\n"
               "                  \"attention_mask\"} (too long: cut as BERT's run_classifier.py does)\n"
               "  --pair          WordPiece model input of text pairs [CLS] A [SEP] B [SEP]: TEXT arguments\n"
               "                  two at a time, or stdin lines 'A<tab>B'; needs --context N\n"
               "  --              the arguments after it are texts (for texts that start with -)\n");
}

static int print_one(vlp_bpe *t, const char *text, size_t len, int context, int truncate, int32_t **buf, int *cap) {
    int n;
    if (context > 0) {
        if (*cap < context) {
            int32_t *nb = realloc(*buf, (size_t)context * sizeof *nb);
            if (!nb) return fprintf(stderr, "vlp tokenize: out of memory\n"), 1;
            *buf = nb, *cap = context;
        }
        n = vlp_bpe_tokenize_n(t, text, len, context, truncate, *buf);
        if (n >= 0) n = context;
    } else {
        n = vlp_bpe_encode_n(t, text, len, *buf, *cap);
        if (n > *cap) {
            int32_t *nb = realloc(*buf, (size_t)n * sizeof *nb);
            if (!nb) return fprintf(stderr, "vlp tokenize: out of memory\n"), 1;
            *buf = nb, *cap = n;
            n = vlp_bpe_encode_n(t, text, len, *buf, *cap);
        }
    }
    if (n < 0) {
        fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error());
        return 1;
    }
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)(*buf)[i]);
    fputs("]\n", stdout);
    return 0;
}

int vlp_cmd_tokenize(int argc, char **argv) {
    int context = 0, truncate = 1, first_text = argc, bert = 0, pair = 0;
    const char *vocab = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            first_text = i + 1;
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            first_text = i;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-truncate")) {
            truncate = 0;
        } else if (!strcmp(a, "--bert")) {
            bert = 1;
        } else if (!strcmp(a, "--pair")) {
            pair = 1;
        } else if ((!strcmp(a, "--context") || !strcmp(a, "--max-length") || !strcmp(a, "--vocab")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--vocab")) {
                vocab = v;
            } else {
                char *end;
                long c = strtol(v, &end, 10);
                if (!*v || *end || c < 2 || c > 1000000) {
                    fprintf(stderr, "vlp tokenize: %s wants an integer in 2..1000000, got '%s'\n", a, v);
                    return 2;
                }
                context = (int)c;
            }
        } else {
            fprintf(stderr, "vlp tokenize: unknown or incomplete option '%s'\n", a);
            tokenize_usage(stderr);
            return 2;
        }
    }
    if (bert || (vocab && is_wordpiece_vocab(vocab)))
        return vlp_tokenize_wordpiece(vocab, context, truncate, pair, argc - first_text, argv + first_text);
    if (pair) {
        fprintf(stderr, "vlp tokenize: --pair needs BERT WordPiece (--bert or a WordPiece --vocab)\n");
        return 2;
    }
    vlp_bpe *t = vlp_bpe_load(vocab);
    if (!t) {
        fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error());
        return 1;
    }
    int rc = 0, cap = 256;
    int32_t *buf = malloc((size_t)cap * sizeof *buf);
    if (!buf) {
        vlp_bpe_free(t);
        fprintf(stderr, "vlp tokenize: out of memory\n");
        return 1;
    }
    if (first_text < argc) {
        for (int i = first_text; i < argc && !rc; i++) rc = print_one(t, argv[i], strlen(argv[i]), context, truncate, &buf, &cap);
    } else {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;
        while (!rc && (len = getline(&line, &lcap, stdin)) >= 0) {
            if (len > 0 && line[len - 1] == '\n') len--;
            if (len > 0 && line[len - 1] == '\r') len--;
            rc = print_one(t, line, (size_t)len, context, truncate, &buf, &cap);
        }
        free(line);
    }
    if (fflush(stdout)) {
        fprintf(stderr, "vlp tokenize: cannot write output\n");
        rc = 1;
    }
    free(buf);
    vlp_bpe_free(t);
    return rc;
}
