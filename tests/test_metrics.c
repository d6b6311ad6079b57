/* Task readers and metrics (include/vlp_eval.h). BLEU-4 and CIDEr-D are checked on cases
 * computed by hand (the formulas are written out below) and on cases computed by the
 * independent Python implementation tests/tools/caption_metrics_ref.py. */
#include "test.h"
#include "test_util.h"
#include "vlp.h"
#include "vlp_eval.h"

#include <string.h>
#include <unistd.h>

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *text) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

static void test_tokens(void) {
    char **t;
    int n = vlp_caption_tokenize("  Grinning-Face: with BIG eyes!  2nd ", &t);
    const char *want[] = {"grinning", "face", "with", "big", "eyes", "2nd"};
    CHECK(n == 6, "token count %d", n);
    for (int i = 0; i < n && i < 6; i++) CHECK(!strcmp(t[i], want[i]), "token %d '%s'", i, t[i]);
    vlp_caption_tokens_free(t, n);
    /* letters outside ASCII are alphanumeric (Python str.isalnum); the dash is not */
    n = vlp_caption_tokenize("Pi\xc3\x91" "ata\xe2\x80\x94party", &t);
    CHECK(n == 2 && !strcmp(t[0], "pi\xc3\xb1" "ata") && !strcmp(t[1], "party"), "unicode tokens (%d)", n);
    vlp_caption_tokens_free(t, n);
    n = vlp_caption_tokenize("", &t);
    CHECK(n == 0, "empty caption has no tokens");
    vlp_caption_tokens_free(t, n);
    char *a = vlp_answer_normalize(" \t Animals & Nature\n");
    CHECK(a && !strcmp(a, "animals & nature"), "normalised answer '%s'", a ? a : "(null)");
    free(a);
}

static void test_bleu_cider(void) {
    vlp_bleu_result b;
    /* by hand: p1..p4 = 4/5, 3/4, 2/3, 1/2, equal lengths, BLEU = (1/5)^(1/4) */
    const char *c1[] = {"a b c d e"}, *r1[] = {"a b c d f"};
    CHECK(vlp_bleu4(1, c1, r1, &b) == 0, "bleu");
    CHECK(NEAR(b.bleu4, pow(0.2, 0.25)) && NEAR(b.precision[2], 2.0 / 3) && b.brevity_penalty == 1.0,
          "hand BLEU %.12f", b.bleu4);

    /* by hand, M = 3, idf of every reference n-gram = log 3:
     *   ex 1 "a b" = "a b": orders 1 and 2 match fully, 3 and 4 absent -> (1 + 1)/4*10 = 5
     *   ex 2 "c x" vs "c d": unigram cosine 1/2, bigram 0 -> 0.5/4*10 = 1.25
     *   ex 3 "e f g h" vs "e f": unigram 2/(2*sqrt2), bigram 1/sqrt3, length penalty
     *        exp(-(4-2)^2/72) -> (1/sqrt2 + 1/sqrt3) exp(-1/18)/4*10 */
    const char *c2[] = {"a b", "c x", "e f g h"}, *r2[] = {"a b", "c d", "e f"};
    double cd, per[3];
    CHECK(vlp_cider_d(3, c2, r2, &cd, per) == 0, "cider");
    double ex3 = (1 / sqrt(2.0) + 1 / sqrt(3.0)) * exp(-1.0 / 18) / 4 * 10;
    CHECK(NEAR(per[0], 5) && NEAR(per[1], 1.25) && NEAR(per[2], ex3), "hand CIDEr-D per example %g %g %g", per[0],
          per[1], per[2]);
    CHECK(NEAR(cd, (5 + 1.25 + ex3) / 3), "hand CIDEr-D %.12f", cd);

    /* from tests/tools/caption_metrics_ref.py */
    const char *c3[] = {"a red apple on the table", "grinning face with big eyes", "dog", "the old man in a tuxedo"};
    const char *r3[] = {"red apple", "grinning face with smiling eyes", "dog face", "man in tuxedo"};
    CHECK(vlp_bleu4(4, c3, r3, &b) == 0 && b.bleu4 == 0 && NEAR(b.precision[0], 0.555555555556) &&
              NEAR(b.precision[2], 1.0 / 11),
          "mixed BLEU %g p1 %g (a zero 4-gram precision gives 0)", b.bleu4, b.precision[0]);
    CHECK(vlp_cider_d(4, c3, r3, &cd, NULL) == 0 && fabs(cd - 2.627266158255) < 1e-9, "mixed CIDEr-D %.12f", cd);

    const char *c4[] = {"the cat sat on the mat", "Grinning-Face: with big eyes!"};
    const char *r4[] = {"the cat sat on a red mat today", "grinning face with big eyes"};
    CHECK(vlp_bleu4(2, c4, r4, &b) == 0 && fabs(b.bleu4 - 0.618598527607) < 1e-9 &&
              fabs(b.brevity_penalty - 0.833752918075) < 1e-9 && b.cand_len == 11 && b.ref_len == 13,
          "short BLEU %.12f bp %.12f", b.bleu4, b.brevity_penalty);
    CHECK(vlp_cider_d(2, c4, r4, &cd, per) == 0 && fabs(cd - 7.126682113352) < 1e-9 && NEAR(per[1], 10),
          "short CIDEr-D %.12f", cd);

    const char *c5[] = {"the the the cat sat", "a dog ran fast", "one small bird"};
    const char *r5[] = {"the cat sat", "a dog ran", "one bird"};
    CHECK(vlp_cider_d(3, c5, r5, &cd, per) == 0 && fabs(cd - 3.956845635978) < 1e-9 &&
              fabs(per[0] - 3.965777822402) < 1e-9,
          "clipped CIDEr-D %.12f (%.12f)", cd, per[0]);
    CHECK(vlp_bleu4(3, c5, r5, &b) == 0 && NEAR(b.precision[0], 2.0 / 3), "clipped unigram precision %g",
          b.precision[0]);

    const char *c6[] = {"grinning face", "red apple", "the cat sat on the mat"};
    CHECK(vlp_cider_d(3, c6, c6, &cd, per) == 0 && NEAR(cd, 20.0 / 3) && NEAR(per[0], 5), "perfect CIDEr-D %g", cd);
    CHECK(vlp_bleu4(3, c6, c6, &b) == 0 && NEAR(b.bleu4, 1), "perfect BLEU %g", b.bleu4);
    CHECK(vlp_cider_d(1, c6, c6, &cd, NULL) == 0 && cd == 0, "one example: idf log 1 = 0");
}

static void test_reader(void) {
    const char *text =
        "{\"image\": \"img/a.png\", \"question\": \"q\", \"answer\": \"yes\", \"type\": \"yesno\"}\n"
        "\n"
        "{\"image\": \"img/b.png\", \"question\": \"q\", \"answer\": \"no\"}\n"           /* 3: no type */
        "{\"image\": \"img/a.png\", \"question\": \"q\", \"answer\": \"yes\", \"type\": \"yesno\"}\n" /* 4: dup */
        "not json\n"                                                                     /* 5 */
        "{\"image\": 5, \"question\": \"q\", \"answer\": \"no\", \"type\": \"yesno\"}\n" /* 6 */
        "{\"type\": \"yesno\", \"answer\": \"no\", \"question\": \"q\", \"image\": \"/abs/c.png\"}\r\n";
    vlp_task_set *s = vlp_task_read_mem(text, strlen(text), "v.jsonl", "data", VLP_TASK_VQA, NULL);
    CHECK(s != NULL, "lenient read: %s", vlp_last_error());
    if (s) {
        CHECK(s->n == 2 && s->n_rows == 6 && s->n_bad == 4, "kept %lld of %lld rows, %lld bad", (long long)s->n,
              (long long)s->n_rows, (long long)s->n_bad);
        CHECK(s->bad[VLP_TASK_BAD_FIELD] == 2 && s->bad[VLP_TASK_BAD_DUPLICATE] == 1 && s->bad[VLP_TASK_BAD_JSON] == 1,
              "bad counts by reason");
        CHECK(s->n_messages == 4 && strstr(s->messages[0], "v.jsonl:3:") && strstr(s->messages[0], "\"type\""),
              "first message: %s", s->n_messages ? s->messages[0] : "");
        CHECK(s->n_messages == 4 && strstr(s->messages[1], "v.jsonl:4: duplicate"), "duplicate message");
        CHECK(s->n == 2 && !strcmp(s->ex[0].image, "data/img/a.png") && !strcmp(s->ex[1].image, "/abs/c.png") &&
                  s->ex[1].line == 7 && s->ex[1].row == 5,
              "paths resolved against the file's directory, line numbers kept");
        vlp_task_set_free(s);
    }
    vlp_task_read_options strict = {.strict = 1};
    s = vlp_task_read_mem(text, strlen(text), "v.jsonl", "data", VLP_TASK_VQA, &strict);
    CHECK(!s && strstr(vlp_last_error(), "v.jsonl:3:"), "strict: first bad row is fatal: %s", vlp_last_error());
    vlp_task_set_free(s);

    const char *g = "{\"image\": \"c.png\", \"grid\": 2, \"cells\": [\"1\", \"2\", \"3\", \"4\"], \"query\": \"x\", \"label\": 3}\n"
                    "{\"image\": \"c.png\", \"grid\": 2, \"cells\": [\"1\", \"2\", \"3\", \"4\"], \"query\": \"y\", \"label\": 4}\n"
                    "{\"image\": \"c.png\", \"grid\": 2, \"cells\": [\"1\", \"2\", \"3\"], \"query\": \"z\", \"label\": 0}\n"
                    "{\"image\": \"c.png\", \"grid\": 3, \"cells\": [\"1\", \"2\", \"3\", \"4\"], \"query\": \"w\", \"label\": 0}\n";
    s = vlp_task_read_mem(g, strlen(g), "g.jsonl", ".", VLP_TASK_GROUND2, NULL);
    CHECK(s && s->n == 1 && s->bad[VLP_TASK_BAD_RANGE] == 3 && s->ex[0].label == 3 && s->ex[0].n_cells == 4,
          "ground2: label, cell count and grid ranges checked");
    vlp_task_set_free(s);

    const char *m = "{\"image\": \"i.png\", \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 2}\n"
                    "{\"image\": \"i.png\", \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": -1}\n"
                    "{\"left\": \"l.png\", \"right\": \"r.png\", \"statement\": \"s\", \"label\": true}\n";
    s = vlp_task_read_mem(m, strlen(m), "m.jsonl", ".", VLP_TASK_MC, NULL);
    CHECK(s && s->n == 1 && s->ex[0].n_choices == 4 && !strcmp(s->ex[0].choices[3], "d") && s->n_bad == 2, "mc rows");
    vlp_task_set_free(s);

    /* image checks: the file must exist */
    const char *c = "{\"image\": \"missing.png\", \"caption\": \"x\"}\n{\"image\": \"here.png\", \"caption\": \"y\"}\n";
    write_tmp("here.png", "x");
    vlp_task_read_options chk = {.check_images = 1};
    s = vlp_task_read_mem(c, strlen(c), "c.jsonl", tmpdir, VLP_TASK_CAPTION, &chk);
    CHECK(s && s->n == 1 && s->bad[VLP_TASK_BAD_IMAGE] == 1 && strstr(s->messages[0], "c.jsonl:1:") &&
              strstr(s->messages[0], "missing.png"),
          "unreadable image counted: %s", s && s->n_messages ? s->messages[0] : "");
    vlp_task_set_free(s);

    s = vlp_task_read("/nonexistent/dir/x.jsonl", VLP_TASK_VQA, NULL);
    CHECK(!s && strstr(vlp_last_error(), "/nonexistent/dir/x.jsonl"), "missing file named: %s", vlp_last_error());
    vlp_task_kind k;
    CHECK(vlp_task_from_name("ground3", &k) == 0 && k == VLP_TASK_GROUND3, "task names");
    CHECK(vlp_task_from_name("nope", &k) != 0, "unknown task name");
}

static void test_vqa(void) {
    /* train: category "flags" x2 (first), "smileys & emotion" x2 -> the tie goes to "flags";
     * yesno: yes, no -> "yes"; skintone never seen in train. */
    const char *train =
        "{\"image\": \"1\", \"question\": \"c\", \"answer\": \"Flags\", \"type\": \"category\"}\n"
        "{\"image\": \"2\", \"question\": \"c\", \"answer\": \"smileys & emotion\", \"type\": \"category\"}\n"
        "{\"image\": \"3\", \"question\": \"y\", \"answer\": \"yes\", \"type\": \"yesno\"}\n"
        "{\"image\": \"4\", \"question\": \"y\", \"answer\": \"no\", \"type\": \"yesno\"}\n"
        "{\"image\": \"5\", \"question\": \"c\", \"answer\": \"smileys & emotion\", \"type\": \"category\"}\n"
        "{\"image\": \"6\", \"question\": \"c\", \"answer\": \"flags \", \"type\": \"category\"}\n";
    const char *test =
        "{\"image\": \"a\", \"question\": \"c\", \"answer\": \"flags\", \"type\": \"category\"}\n"
        "{\"image\": \"b\", \"question\": \"y\", \"answer\": \"yes\", \"type\": \"yesno\"}\n"
        "{\"image\": \"c\", \"question\": \"c\", \"answer\": \"smileys & emotion\", \"type\": \"category\"}\n"
        "{\"image\": \"d\", \"question\": \"t\", \"answer\": \"light\", \"type\": \"skintone\"}\n"
        "{\"image\": \"e\", \"question\": \"c\", \"answer\": \"Flags\", \"type\": \"category\"}\n"
        "{\"image\": \"f\", \"question\": \"y\", \"answer\": \"no\", \"type\": \"yesno\"}\n";
    const char *pred = write_tmp("vqa_pred.jsonl", "{\"answer\": \"flags\"}\n{\"answer\": \"no\"}\n{\"answer\": \"x\"}\n"
                                                   "{\"answer\": \" Light \", \"score\": 0.5}\n{\"answer\": \"flags\"}\n"
                                                   "{\"answer\": \"no\"}\n");
    vlp_task_set *tr = vlp_task_read_mem(train, strlen(train), "train", ".", VLP_TASK_VQA, NULL);
    vlp_task_set *te = vlp_task_read_mem(test, strlen(test), "test", ".", VLP_TASK_VQA, NULL);
    vlp_task_predictions *p = vlp_task_predictions_read(pred, VLP_TASK_VQA);
    CHECK(tr && te && p && p->n == 6, "vqa inputs: %s", vlp_last_error());
    vlp_task_metrics m;
    if (tr && te && p && vlp_task_score(te, p, tr, &m) == 0) {
        CHECK(m.n_types == 3 && !strcmp(m.types[0].type, "category") && !strcmp(m.types[2].type, "skintone"),
              "types in order of appearance");
        CHECK(NEAR(m.types[0].accuracy, 2.0 / 3) && NEAR(m.types[1].accuracy, 0.5) && NEAR(m.types[2].accuracy, 1),
              "per-type accuracy %g %g %g", m.types[0].accuracy, m.types[1].accuracy, m.types[2].accuracy);
        CHECK(NEAR(m.accuracy, (2.0 / 3 + 0.5 + 1) / 3), "overall = mean of types %g", m.accuracy);
        CHECK(m.types[0].majority_answer && !strcmp(m.types[0].majority_answer, "flags") &&
                  m.types[1].majority_answer && !strcmp(m.types[1].majority_answer, "yes") &&
                  !m.types[2].majority_answer,
              "majority answers (ties to the first in train)");
        CHECK(NEAR(m.types[0].majority, 2.0 / 3) && NEAR(m.types[1].majority, 0.5) && m.types[2].majority == 0,
              "majority baselines %g %g %g", m.types[0].majority, m.types[1].majority, m.types[2].majority);
        CHECK(NEAR(m.majority, (2.0 / 3 + 0.5) / 3), "overall majority %g", m.majority);
        CHECK(m.correct[0] && !m.correct[1] && m.correct[3], "per-example flags");
        char *js = vlp_task_metrics_json(&m);
        CHECK(js && strstr(js, "\"overall\"") && strstr(js, "\"majority_answer\": \"flags\""), "json: %s", js);
        free(js);
        vlp_task_metrics_free(&m);
    } else {
        CHECK(0, "vqa score: %s", vlp_last_error());
    }
    vlp_task_predictions_free(p);
    /* wrong row count */
    p = vlp_task_predictions_read(write_tmp("short.jsonl", "{\"answer\": \"a\"}\n"), VLP_TASK_VQA);
    CHECK(p && te && vlp_task_score(te, p, tr, &m) != 0 && strstr(vlp_last_error(), "1 predictions"),
          "count mismatch: %s", vlp_last_error());
    vlp_task_predictions_free(p);
    p = vlp_task_predictions_read(write_tmp("bad.jsonl", "{\"answer\": \"a\"}\n{\"caption\": \"a\"}\n"), VLP_TASK_VQA);
    CHECK(!p && strstr(vlp_last_error(), "bad.jsonl:2:") && strstr(vlp_last_error(), "answer"),
          "missing prediction field: %s", vlp_last_error());
    vlp_task_set_free(tr);
    vlp_task_set_free(te);
}

static void test_labels(void) {
    /* nlvr: 3 true of 5 -> majority 60%; predictions by data row (row 2 is bad and skipped) */
    const char *n = "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s1\", \"label\": true}\n"
                    "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s2\"}\n"
                    "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s3\", \"label\": false}\n"
                    "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s4\", \"label\": true}\n"
                    "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s5\", \"label\": false}\n"
                    "{\"left\": \"a\", \"right\": \"b\", \"statement\": \"s6\", \"label\": true}\n";
    vlp_task_set *s = vlp_task_read_mem(n, strlen(n), "n", ".", VLP_TASK_NLVR, NULL);
    vlp_task_predictions *p = vlp_task_predictions_read(
        write_tmp("nlvr.jsonl", "{\"label\": true}\n{\"label\": false}\n{\"label\": 0}\n{\"label\": 1}\n"
                                "{\"label\": true}\n{\"label\": false}\n"),
        VLP_TASK_NLVR);
    vlp_task_metrics m;
    CHECK(s && p && s->n == 5 && vlp_task_score(s, p, NULL, &m) == 0, "nlvr score: %s", vlp_last_error());
    if (s && p && s->n == 5) {
        /* rows 0,2,3,4,5 -> predictions 1,0,1,1,0 vs labels 1,0,1,0,1: 3 right */
        CHECK(NEAR(m.accuracy, 0.6) && NEAR(m.chance, 0.5) && NEAR(m.majority, 0.6) && m.majority_label == 1,
              "nlvr accuracy %g majority %g", m.accuracy, m.majority);
        vlp_task_metrics_free(&m);
    }
    vlp_task_predictions_free(p);
    vlp_task_set_free(s);

    const char *g = "{\"image\": \"c\", \"grid\": 3, \"cells\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"], "
                    "\"query\": \"x\", \"label\": 8}\n"
                    "{\"image\": \"c\", \"grid\": 3, \"cells\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"], "
                    "\"query\": \"y\", \"label\": 0}\n";
    s = vlp_task_read_mem(g, strlen(g), "g", ".", VLP_TASK_GROUND3, NULL);
    p = vlp_task_predictions_read(write_tmp("g.jsonl", "{\"label\": 8}\n{\"label\": 4}\n"), VLP_TASK_GROUND3);
    CHECK(s && p && vlp_task_score(s, p, NULL, &m) == 0 && NEAR(m.accuracy, 0.5) && NEAR(m.chance, 1.0 / 9),
          "ground3 accuracy and chance 1/9");
    if (s && p) vlp_task_metrics_free(&m);
    vlp_task_predictions_free(p);
    p = vlp_task_predictions_read(write_tmp("g2.jsonl", "{\"label\": 8}\n{\"label\": \"4\"}\n"), VLP_TASK_GROUND3);
    CHECK(!p && strstr(vlp_last_error(), "g2.jsonl:2:"), "string label rejected: %s", vlp_last_error());
    vlp_task_set_free(s);

    const char *c = "{\"image\": \"a\", \"caption\": \"grinning face\"}\n{\"image\": \"b\", \"caption\": \"red apple\"}\n"
                    "{\"image\": \"c\", \"caption\": \"the cat sat on the mat\"}\n";
    s = vlp_task_read_mem(c, strlen(c), "c", ".", VLP_TASK_CAPTION, NULL);
    p = vlp_task_predictions_read(write_tmp("cap.jsonl", "{\"caption\": \"Grinning face\"}\n{\"caption\": \"red apple\"}\n"
                                                         "{\"caption\": \"the cat sat on the mat\"}\n"),
                                  VLP_TASK_CAPTION);
    CHECK(s && p && vlp_task_score(s, p, NULL, &m) == 0 && NEAR(m.accuracy, 1) && NEAR(m.cider_d, 20.0 / 3) &&
              NEAR(m.bleu4, 1),
          "caption exact match, BLEU-4, CIDEr-D");
    if (s && p) vlp_task_metrics_free(&m);
    vlp_task_predictions_free(p);
    vlp_task_set_free(s);
}

static unsigned char grey_px(void *ctx, int x, int y, int c) {
    (void)ctx;
    return (unsigned char)(40 * c + x + y);
}

/* Rows whose images cannot be decoded (vlp_task_check_images) join the reader's bad rows in file
 * order; a prediction row {"skipped": true} leaves its example out of the metrics. */
static void test_skipped(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/good.bmp", tmpdir);
    test_write_bmp(p, 8, 8, grey_px, NULL);
    write_tmp("corrupt.png", "\x89PNG but no more");
#define ROW(img, q, l) "{\"image\": \"" img "\", \"question\": \"" q "\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": " l "}\n"
    const char *d = ROW("good.bmp", "q1", "1") ROW("missing.png", "q2", "1") "{not json\n" ROW("good.bmp", "q4", "1")
        ROW("corrupt.png", "q5", "2") ROW("corrupt.png", "q6", "3");
#undef ROW
    vlp_task_set *s = vlp_task_read_mem(d, strlen(d), "d.jsonl", tmpdir, VLP_TASK_MC, NULL);
    CHECK(s && s->n == 5 && s->n_bad == 1 && s->bad_rows && s->bad_rows[0].line == 3 &&
              s->bad_rows[0].reason == VLP_TASK_BAD_JSON && strstr(s->bad_rows[0].message, "d.jsonl:3: "),
          "reader: one bad row recorded with its line: %s", s ? (s->n_messages ? s->messages[0] : "-") : vlp_last_error());
    if (!s) return;
    CHECK(vlp_task_check_images(s, 1) == VLP_ERR_IO && strstr(vlp_last_error(), "d.jsonl:2: image ") &&
              strstr(vlp_last_error(), "missing.png: cannot open") && s->n == 5 && s->n_bad == 1,
          "strict: the first unreadable image (in file order) is the error, nothing dropped: %s", vlp_last_error());
    int k = vlp_task_check_images(s, 0);
    CHECK(k == 3 && s->n == 2 && s->n_rows == 6 && s->n_bad == 4 && s->bad[VLP_TASK_BAD_IMAGE] == 3 &&
              s->bad[VLP_TASK_BAD_JSON] == 1 && s->ex[0].line == 1 && s->ex[1].line == 4,
          "3 rows dropped (%d), 2 kept (%lld), 4 bad (%lld)", k, (long long)s->n, (long long)s->n_bad);
    int order = s->n_bad == 4;
    for (int i = 0; order && i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "d.jsonl:%d: %s", (int[]){2, 3, 5, 6}[i], i == 1 ? "not JSON" : "image ");
        order = s->bad_rows[i].line == (int[]){2, 3, 5, 6}[i] && s->bad_rows[i].row == (int[]){1, 2, 4, 5}[i] &&
                !strncmp(s->bad_rows[i].message, want, strlen(want));
    }
    CHECK(order, "bad rows in file order, described FILE:LINE: image PATH: reason (%s)",
          s->n_bad > 2 ? s->bad_rows[2].message : "-");
    CHECK(s->n_bad < 3 || (strstr(s->bad_rows[2].message, "corrupt.png: ") &&
                          !strstr(strstr(s->bad_rows[2].message, "corrupt.png: ") + 1, "corrupt.png")),
          "the path said once: %s", s->n_bad > 2 ? s->bad_rows[2].message : "-");
    CHECK(vlp_task_check_images(s, 1) == 0 && s->n == 2, "checking again: nothing left to drop");
    vlp_task_set_free(s);
    /* predictions by data row, skipped rows marked: scored on the data read without image checks */
    s = vlp_task_read_mem(d, strlen(d), "d.jsonl", tmpdir, VLP_TASK_MC, NULL);
    vlp_task_predictions *pr = vlp_task_predictions_read(
        write_tmp("skip.jsonl", "{\"label\": 1}\n{\"skipped\": true, \"error\": \"d.jsonl:2: image\"}\n"
                                "{\"skipped\": true}\n{\"label\": 0}\n{\"skipped\": true}\n{\"skipped\": true}\n"),
        VLP_TASK_MC);
    CHECK(pr && pr->n == 6 && pr->skipped && pr->skipped[1] && !pr->skipped[3] && pr->label[1] == -1,
          "skipped prediction rows read: %s", vlp_last_error());
    vlp_task_metrics m;
    if (s && pr && vlp_task_score(s, pr, NULL, &m) == 0) {
        CHECK(m.n == 2 && m.n_skipped == 3 && NEAR(m.accuracy, 0.5) && NEAR(m.chance, 0.25) && m.correct[0] &&
                  !m.correct[1],
              "skipped examples left out: n %lld, skipped %lld, accuracy %g", (long long)m.n, (long long)m.n_skipped,
              m.accuracy);
        vlp_task_metrics_free(&m);
    } else {
        CHECK(0, "score with skipped rows: %s", vlp_last_error());
    }
    vlp_task_predictions_free(pr);
    vlp_task_set_free(s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_metrics_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    test_tokens();
    test_bleu_cider();
    test_reader();
    test_vqa();
    test_labels();
    test_skipped();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    return test_finish();
}
