/* vlp tokenize, BERT WordPiece branch (--bert, or --vocab with a WordPiece vocab.txt). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline */
#endif
#include "vlp.h"
#include "vlp_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int is_wordpiece_vocab(const char *path);
int vlp_tokenize_wordpiece(const char *vocab, int context, int truncate, int pair, int ntexts, char **texts);

/* A BPE merges file is gzip'd, starts with "#version" or has "left right" pairs; a WordPiece
 * vocabulary has one token (no space) per line. Unreadable files count as BPE, whose loader
 * then reports the error. */
int is_wordpiece_vocab(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[256];
    int wp = 0;
    if (fgets(line, sizeof line, f)) {
        wp = !((unsigned char)line[0] == 0x1F && (unsigned char)line[1] == 0x8B) && strncmp(line, "#version", 8) &&
             !strchr(line, ' ');
    }
    fclose(f);
    return wp;
}

static void print_array(const int32_t *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)v[i]);
    putchar(']');
}

typedef struct {
    vlp_wordpiece *t;
    int context, truncate;
    int32_t *ids, *types, *mask; /* context entries each */
    int32_t *buf;
    int cap;
} wp_ctx;

static int print_ids(wp_ctx *c, const char *text, size_t len) {
    int n = vlp_wordpiece_encode_n(c->t, text, len, c->buf, c->cap);
    if (n > c->cap) {
        int32_t *nb = realloc(c->buf, (size_t)n * sizeof *nb);
        if (!nb) return fprintf(stderr, "vlp tokenize: out of memory\n"), 1;
        c->buf = nb, c->cap = n;
        n = vlp_wordpiece_encode_n(c->t, text, len, c->buf, c->cap);
    }
    if (n < 0) return fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error()), 1;
    print_array(c->buf, n);
    putchar('\n');
    return 0;
}

/* Model input of a (text, text_b) or single text; b NULL for a single one. */
static int print_input(wp_ctx *c, const char *a, size_t alen, const char *b, size_t blen) {
    if (!c->truncate) {
        int na = vlp_wordpiece_encode_n(c->t, a, alen, NULL, 0);
        int nb = b ? vlp_wordpiece_encode_n(c->t, b, blen, NULL, 0) : 0;
        if (na < 0 || nb < 0) return fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error()), 1;
        long need = (long)na + nb + (nb ? 3 : 2);
        if (need > c->context) {
            fprintf(stderr, "vlp tokenize: %ld tokens with [CLS]/[SEP] do not fit --context %d (--no-truncate)\n", need,
                    c->context);
            return 1;
        }
    }
    int n = vlp_wordpiece_encode_pair_n(c->t, a, alen, b, blen, c->context, c->ids, c->types, c->mask);
    if (n < 0) return fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error()), 1;
    fputs("{\"input_ids\": ", stdout);
    print_array(c->ids, c->context);
    fputs(", \"token_type_ids\": ", stdout);
    print_array(c->types, c->context);
    fputs(", \"attention_mask\": ", stdout);
    print_array(c->mask, c->context);
    fputs("}\n", stdout);
    return 0;
}

int vlp_tokenize_wordpiece(const char *vocab, int context, int truncate, int pair, int ntexts, char **texts) {
    if (pair && context <= 0) {
        fprintf(stderr, "vlp tokenize: --pair needs --context N (the model input length)\n");
        return 2;
    }
    if (context > 0 && context < 3) {
        fprintf(stderr, "vlp tokenize: WordPiece model inputs need --context >= 3 ([CLS], [SEP] and a token)\n");
        return 2;
    }
    if (pair && ntexts % 2) {
        fprintf(stderr, "vlp tokenize: --pair takes TEXT arguments two at a time (got %d)\n", ntexts);
        return 2;
    }
    wp_ctx c = {0};
    c.context = context, c.truncate = truncate, c.cap = 256;
    c.t = vlp_wordpiece_load(vocab);
    if (!c.t) {
        fprintf(stderr, "vlp tokenize: %s\n", vlp_last_error());
        return 1;
    }
    size_t k = context > 0 ? (size_t)context : 1;
    c.buf = malloc((size_t)c.cap * sizeof *c.buf);
    c.ids = malloc(k * sizeof *c.ids), c.types = malloc(k * sizeof *c.types), c.mask = malloc(k * sizeof *c.mask);
    int rc = 0;
    if (!c.buf || !c.ids || !c.types || !c.mask) {
        fprintf(stderr, "vlp tokenize: out of memory\n");
        rc = 1;
    } else if (ntexts > 0) {
        for (int i = 0; i < ntexts && !rc; i += pair ? 2 : 1) {
            if (pair) rc = print_input(&c, texts[i], strlen(texts[i]), texts[i + 1], strlen(texts[i + 1]));
            else if (context > 0) rc = print_input(&c, texts[i], strlen(texts[i]), NULL, 0);
            else rc = print_ids(&c, texts[i], strlen(texts[i]));
        }
    } else {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;
        while (!rc && (len = getline(&line, &lcap, stdin)) >= 0) {
            if (len > 0 && line[len - 1] == '\n') len--;
            if (len > 0 && line[len - 1] == '\r') len--;
            if (pair) {
                char *tab = memchr(line, '\t', (size_t)len);
                if (!tab) {
                    fprintf(stderr, "vlp tokenize: --pair reads lines 'A<tab>B'; this line has no tab\n");
                    rc = 1;
                    break;
                }
                rc = print_input(&c, line, (size_t)(tab - line), tab + 1, (size_t)(line + len - tab - 1));
            } else if (context > 0) {
                rc = print_input(&c, line, (size_t)len, NULL, 0);
            } else {
                rc = print_ids(&c, line, (size_t)len);
            }
        }
        free(line);
    }
    if (fflush(stdout)) {
        fprintf(stderr, "vlp tokenize: cannot write output\n");
        rc = 1;
    }
    free(c.buf), free(c.ids), free(c.types), free(c.mask);
    vlp_wordpiece_free(c.t);
    return rc;
}
