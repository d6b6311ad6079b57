/* Datasets and the batch loader (include/vlp_data.h) on tests/fixtures/data
 * (tests/fixtures/data/gen_data_fixtures.py) and on files written here:
 * - brace expansion; folder, tar (ustar, GNU, pax, gzip'd), CSV and TSV read the right pairs;
 * - malformed CSV, truncated / missing / non-tar shards, missing images: errors naming them;
 * - loader: pixels equal vlp_image_preprocess of the decoded image, tokens equal
 *   vlp_bpe_tokenize; shuffle depends only on (seed, epoch); seek reproduces an
 *   uninterrupted run; the rank split covers an epoch exactly once; random resized crop
 *   is independent of the worker count; bad images fail or are skipped. */
#include "test.h"
#include "vlp_data.h"
#include "vlp_image.h"
#include "vlp_text.h"
#include "../src/data/data_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static void *slurp(const char *path, size_t *n) {
    char *d;
    if (ds_read_file(path, &d, n)) return NULL;
    return d;
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* ---- a minimal PNG writer (RGB8) and a tar writer for generated shards ---------- */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t *make_png(int w, int h, uint32_t seed, size_t *size) {
    size_t raw_n = (size_t)h * (1 + 3 * (size_t)w);
    uint8_t *raw = malloc(raw_n);
    uint32_t s = seed * 2654435761u + 1;
    for (int y = 0, k = 0; y < h; y++) {
        raw[k++] = 0;
        for (int x = 0; x < 3 * w; x++) {
            s = s * 1664525u + 1013904223u;
            raw[k++] = (uint8_t)((x * 4 + y * 3 + (s >> 28)) & 255);
        }
    }
    uLongf zn = compressBound(raw_n);
    uint8_t *z = malloc(zn);
    compress2(z, &zn, raw, raw_n, 6);
    uint8_t *png = malloc(8 + 25 + 12 + zn + 12);
    size_t k = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    k = 8;
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    memcpy(ihdr + 8, "\x08\x02\x00\x00\x00", 5);
    const struct {
        const char *t;
        const uint8_t *d;
        size_t n;
    } ch[3] = {{"IHDR", ihdr, 13}, {"IDAT", z, zn}, {"IEND", NULL, 0}};
    for (int c = 0; c < 3; c++) {
        put32(png + k, (uint32_t)ch[c].n);
        memcpy(png + k + 4, ch[c].t, 4);
        if (ch[c].n) memcpy(png + k + 8, ch[c].d, ch[c].n);
        uLong crc = crc32(0, png + k + 4, (uInt)(4 + ch[c].n));
        put32(png + k + 8 + ch[c].n, (uint32_t)crc);
        k += 12 + ch[c].n;
    }
    free(raw);
    free(z);
    *size = k;
    return png;
}

static void tar_add(struct archive *a, const char *name, const void *data, size_t n) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data, n);
    archive_entry_free(e);
}

/* A shard of n pairs "k%04d.png" (w x w, seeded by the index) + "k%04d.txt"; the pair
 * `bad` (-1: none) gets a corrupt PNG. */
static void write_shard(const char *path, int first, int n, int w, int bad) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, path);
    for (int i = first; i < first + n; i++) {
        char name[64], cap[64];
        size_t sz;
        uint8_t *png = make_png(w, w, (uint32_t)i, &sz);
        if (i == bad) memset(png + 40, 0x55, sz - 60 > 16 ? 16 : sz - 60);
        snprintf(name, sizeof name, "k%04d.png", i);
        tar_add(a, name, png, sz);
        free(png);
        snprintf(name, sizeof name, "k%04d.txt", i);
        snprintf(cap, sizeof cap, "caption number %d", i);
        tar_add(a, name, cap, strlen(cap));
    }
    archive_write_close(a);
    archive_write_free(a);
}

/* ---- brace expansion ------------------------------------------------------------- */

static void check_expand(const char *pat, const char *want /* space-separated */) {
    char **s;
    int64_t n;
    int rc = ds_expand_braces(pat, &s, &n);
    CHECK(rc == 0, "expand %s: %s", pat, vlp_last_error());
    if (rc) return;
    char got[1024] = "";
    for (int64_t i = 0; i < n; i++) {
        if (i) strcat(got, " ");
        strncat(got, s[i], sizeof got - strlen(got) - 2);
    }
    CHECK(!strcmp(got, want), "expand %s: got '%s', want '%s'", pat, got, want);
    ds_free_strings(s, n);
}

static void test_braces(void) {
    check_expand("d/{000000..000003}.tar", "d/000000.tar d/000001.tar d/000002.tar d/000003.tar");
    check_expand("{8..11}", "8 9 10 11");
    check_expand("{08..10}", "08 09 10");
    check_expand("{3..1}", "3 2 1");
    check_expand("{-1..1}", "-1 0 1");
    check_expand("x{a,b}-{1..2}", "xa-1 xa-2 xb-1 xb-2");
    check_expand("{a,{b,c}d}", "a bd cd");
    check_expand("p.tar::q{1..2}.tar", "p.tar q1.tar q2.tar");
    check_expand("lit{}{x}.tar", "lit{}{x}.tar");
    check_expand("open{1..2", "open{1..2");
    char **s;
    int64_t n;
    CHECK(ds_expand_braces("{0..99999999}", &s, &n) < 0 && contains(vlp_last_error(), "{0..99999999}"),
          "huge range refused: %s", vlp_last_error());
    CHECK(ds_expand_braces("{0..5000}{0..5000}", &s, &n) < 0, "huge product refused");
    CHECK(ds_expand_braces("::", &s, &n) < 0, "empty spec refused");
}

/* ---- readers --------------------------------------------------------------------- */

static void check_pairs(const vlp_dataset *ds, const char *what, int n, const char *const *keys,
                        const char *const *caps) {
    CHECK(ds && vlp_dataset_size(ds) == n, "%s: %lld pairs, want %d (%s)", what,
          (long long)vlp_dataset_size(ds), n, ds ? "" : vlp_last_error());
    if (!ds || vlp_dataset_size(ds) != n) return;
    for (int i = 0; i < n; i++) {
        CHECK(!strcmp(vlp_dataset_key(ds, i), keys[i]), "%s: key %d '%s' want '%s'", what, i, vlp_dataset_key(ds, i),
              keys[i]);
        CHECK(!strcmp(vlp_dataset_caption(ds, i), caps[i]), "%s: caption %d '%s' want '%s'", what, i,
              vlp_dataset_caption(ds, i), caps[i]);
    }
    CHECK(vlp_dataset_key(ds, n) == NULL && vlp_dataset_caption(ds, -1) == NULL, "%s: out of range is NULL", what);
}

/* Pair i's bytes decode to a w x h image; when file is set, they equal that file. */
static void check_image(const vlp_dataset *ds, int64_t i, int w, int h, const char *file) {
    uint8_t *d;
    size_t n;
    int rc = vlp_dataset_read_image(ds, i, &d, &n);
    CHECK(rc == 0, "read image %lld: %s", (long long)i, vlp_last_error());
    if (rc) return;
    vlp_image img;
    rc = vlp_image_decode(d, n, vlp_dataset_key(ds, i), NULL, &img);
    CHECK(rc == 0 && img.width == w && img.height == h, "image %lld (%s): rc %d %dx%d want %dx%d %s", (long long)i,
          vlp_dataset_key(ds, i), rc, img.width, img.height, w, h, rc ? vlp_last_error() : "");
    if (!rc) vlp_image_free(&img);
    if (file) {
        size_t fn;
        uint8_t *f = slurp(file, &fn);
        CHECK(f && fn == n && !memcmp(f, d, n), "image %lld bytes equal %s", (long long)i, file);
        free(f);
    }
    free(d);
}

static void test_folder(void) {
    vlp_dataset *ds = vlp_dataset_open(FIXTURE("data/folder"), NULL);
    const char *keys[] = {"cat.png", "dog.jpg", "sub/bird.png"};
    const char *caps[] = {"a photo of a cat", "A DOG, running.", "a bird"};
    check_pairs(ds, "folder", 3, keys, caps);
    if (!ds) return;
    CHECK(vlp_dataset_skipped(ds) == 1, "folder skipped %lld (lonely.png)", (long long)vlp_dataset_skipped(ds));
    CHECK(!strcmp(vlp_dataset_kind(ds), "folder"), "kind %s", vlp_dataset_kind(ds));
    check_image(ds, 0, 32, 24, FIXTURE("data/folder/cat.png"));
    check_image(ds, 1, 23, 29, FIXTURE("data/folder/dog.jpg"));
    check_image(ds, 2, 40, 40, FIXTURE("data/folder/sub/bird.png"));
    vlp_dataset_free(ds);
    /* a trailing slash is the same folder */
    ds = vlp_dataset_open(FIXTURE("data/folder/"), NULL);
    CHECK(ds && vlp_dataset_size(ds) == 3 && !strcmp(vlp_dataset_key(ds, 2), "sub/bird.png"), "folder/");
    vlp_dataset_free(ds);
}

/* The long names of shard-000001 (GNU) and shard-000002 (pax), as the generator writes them. */
static char LONG_KEY[160], PAX_KEY[160];

static void make_long_keys(void) {
    char x[121], y[111];
    memset(x, 'x', 120);
    x[120] = 0;
    memset(y, 'y', 110);
    y[110] = 0;
    snprintf(LONG_KEY, sizeof LONG_KEY, "deep/%s/s0102", x);
    snprintf(PAX_KEY, sizeof PAX_KEY, "caf\xc3\xa9/%s", y);
}

static void test_tar(void) {
    make_long_keys();
    vlp_dataset *ds = vlp_dataset_open(FIXTURE("data/shards/shard-{000000..000002}.tar"), NULL);
    const char *keys[] = {"s0000", "s0001", "s0002", "dir/s0100", "s0101", LONG_KEY, "s0200", PAX_KEY};
    const char *caps[] = {"zero zero",   "one from json", "two from text", "dir one hundred",
                          "webp pair",   "gnu long name", "two hundred",   "pax caf\xc3\xa9"};
    check_pairs(ds, "tar", 8, keys, caps);
    if (ds && vlp_dataset_size(ds) == 8) {
        CHECK(vlp_dataset_skipped(ds) == 2, "tar skipped %lld (s0003 no caption, s0004 no image)",
              (long long)vlp_dataset_skipped(ds));
        CHECK(!strcmp(vlp_dataset_kind(ds), "tar"), "kind %s", vlp_dataset_kind(ds));
        check_image(ds, 0, 20, 30, NULL);
        check_image(ds, 1, 53, 39, FIXTURE("images/jpeg_progressive_444.jpg"));
        check_image(ds, 2, 30, 20, NULL);
        check_image(ds, 3, 24, 24, NULL);
        check_image(ds, 4, 53, 39, FIXTURE("images/webp_lossy.webp"));
        check_image(ds, 5, 12, 18, NULL);
        check_image(ds, 6, 50, 10, NULL);
        check_image(ds, 7, 10, 50, NULL);
        size_t a;
        uint8_t *x = NULL;
        CHECK(vlp_dataset_read_image(ds, 8, &x, &a) == VLP_ERR_ARG && !x, "read past the end");
    }
    vlp_dataset_free(ds);

    ds = vlp_dataset_open(FIXTURE("data/shards/gz-000000.tar.gz"), NULL);
    const char *gk[] = {"g0", "g1"}, *gc[] = {"gzip zero", "gzip one"};
    check_pairs(ds, "tar.gz", 2, gk, gc);
    if (ds && vlp_dataset_size(ds) == 2) {
        check_image(ds, 0, 20, 20, NULL);
        check_image(ds, 1, 21, 19, NULL);
    }
    vlp_dataset_free(ds);

    ds = vlp_dataset_open(FIXTURE("data/shards/shard-000000.tar::") FIXTURE("data/shards/gz-{000000..000000}.tar.gz"),
                          NULL);
    const char *jk[] = {"s0000", "s0001", "s0002", "g0", "g1"};
    const char *jc[] = {"zero zero", "one from json", "two from text", "gzip zero", "gzip one"};
    check_pairs(ds, "joined", 5, jk, jc);
    vlp_dataset_free(ds);
}

static void test_csv(void) {
    vlp_dataset *ds = vlp_dataset_open(FIXTURE("data/pairs.csv"), NULL);
    const char *keys[] = {"folder/cat.png", "folder/dog.jpg", "folder/sub/bird.png"};
    const char *caps[] = {"a cat, sitting", "he said \"woof\"\ntwice", "plain bird"};
    check_pairs(ds, "csv", 3, keys, caps);
    if (ds && vlp_dataset_size(ds) == 3) {
        CHECK(!strcmp(vlp_dataset_kind(ds), "csv"), "kind");
        check_image(ds, 0, 32, 24, FIXTURE("data/folder/cat.png"));
        check_image(ds, 1, 23, 29, FIXTURE("data/folder/dog.jpg"));
        check_image(ds, 2, 40, 40, FIXTURE("data/folder/sub/bird.png"));
    }
    vlp_dataset_free(ds);

    vlp_dataset_options o = {.csv_img_key = "image", .csv_caption_key = "caption"};
    ds = vlp_dataset_open(FIXTURE("data/pairs.tsv"), &o);
    const char *tk[] = {"folder/sub/bird.png", "folder/cat.png"}, *tc[] = {"tab bird", "quoted\ttab"};
    check_pairs(ds, "tsv", 2, tk, tc);
    if (ds && vlp_dataset_size(ds) == 2) check_image(ds, 1, 32, 24, FIXTURE("data/folder/cat.png"));
    vlp_dataset_free(ds);

    ds = vlp_dataset_open(FIXTURE("data/pairs.tsv"), NULL);
    CHECK(!ds && contains(vlp_last_error(), "pairs.tsv") && contains(vlp_last_error(), "line 1") &&
              contains(vlp_last_error(), "'filepath'") && contains(vlp_last_error(), "'image'"),
          "tsv without options: %s", vlp_last_error());
    o.csv_caption_key = "title";
    ds = vlp_dataset_open(FIXTURE("data/pairs.tsv"), &o);
    CHECK(!ds && contains(vlp_last_error(), "'title'") && contains(vlp_last_error(), "csv_caption_key"),
          "missing caption column: %s", vlp_last_error());
}

static void expect_csv_error(const char *name, const char *text, const char *want1, const char *want2) {
    char *p = tmp_path(name);
    write_file(p, text, strlen(text));
    vlp_dataset *ds = vlp_dataset_open(p, NULL);
    CHECK(!ds && contains(vlp_last_error(), name) && contains(vlp_last_error(), want1) &&
              (!want2 || contains(vlp_last_error(), want2)),
          "%s: '%s'", name, vlp_last_error());
    vlp_dataset_free(ds);
}

static void test_errors(void) {
    expect_csv_error("open_quote.csv", "filepath,title\na.png,ok\nb.png,\"never\nclosed\n", "line 5", "line 3");
    expect_csv_error("too_many.csv", "filepath,title\na.png,ok\n\nb.png,x,y\n", "line 4", "3 fields");
    expect_csv_error("too_few.csv", "x,filepath,title\n1,a.png,ok\n2,b.png\n", "line 3", "'title'");
    expect_csv_error("empty_path.csv", "filepath,title\n,cap\n", "line 2", "empty 'filepath'");
    expect_csv_error("empty.csv", "", "empty file", NULL);
    vlp_dataset *ds = vlp_dataset_open(tmp_path("no_such.csv"), NULL);
    CHECK(!ds && contains(vlp_last_error(), "no_such.csv"), "missing csv: %s", vlp_last_error());

    /* a CSV naming a missing image opens; reading it names the key and the file */
    char *p = tmp_path("missing_img.csv");
    const char *t = "filepath,title\nnot_there.png,ghost\n";
    write_file(p, t, strlen(t));
    ds = vlp_dataset_open(p, NULL);
    CHECK(ds && vlp_dataset_size(ds) == 1, "missing image csv opens: %s", vlp_last_error());
    if (ds) {
        uint8_t *d;
        size_t n;
        CHECK(vlp_dataset_read_image(ds, 0, &d, &n) == VLP_ERR_IO && contains(vlp_last_error(), "not_there.png") &&
                  contains(vlp_last_error(), "No such file"),
              "missing image: %s", vlp_last_error());
    }
    vlp_dataset_free(ds);

    ds = vlp_dataset_open(FIXTURE("data/shards/shard-{000000..000003}.tar"), NULL);
    CHECK(!ds && contains(vlp_last_error(), "shard-000003.tar"), "missing shard: %s", vlp_last_error());
    ds = vlp_dataset_open(FIXTURE("data/pairs.csv::") FIXTURE("data/pairs.csv"), NULL);
    CHECK(!ds && contains(vlp_last_error(), "pairs.csv"), "csv as tar: %s", vlp_last_error());
    ds = vlp_dataset_open("", NULL);
    CHECK(!ds, "empty spec");

    /* truncated shards: cut inside a header, inside an image, inside a caption, and
     * exactly between members (libarchive alone would take that for the end) */
    size_t n;
    uint8_t *tarb = slurp(FIXTURE("data/shards/shard-000000.tar"), &n);
    const size_t cuts[] = {100, 700, 2000, 2560, 2600, 6144}; /* 2560, 6144: between members */
    for (size_t c = 0; tarb && c < sizeof cuts / sizeof *cuts; c++) {
        char name[64];
        snprintf(name, sizeof name, "trunc%zu.tar", cuts[c]);
        write_file(tmp_path(name), tarb, cuts[c]);
        ds = vlp_dataset_open(tmp_path(name), NULL);
        CHECK(!ds && contains(vlp_last_error(), name), "truncated at %zu: %s", cuts[c], vlp_last_error());
        vlp_dataset_free(ds);
    }
    /* the gzip'd shard cut short */
    uint8_t *gz = slurp(FIXTURE("data/shards/gz-000000.tar.gz"), &n);
    if (gz) {
        write_file(tmp_path("trunc.tar.gz"), gz, n / 2);
        ds = vlp_dataset_open(tmp_path("trunc.tar.gz"), NULL);
        CHECK(!ds && contains(vlp_last_error(), "trunc.tar.gz"), "truncated gz: %s", vlp_last_error());
        vlp_dataset_free(ds);
    }
    free(gz);
    free(tarb);
    ds = vlp_dataset_open(FIXTURE("data/folder/cat.png"), NULL);
    CHECK(!ds && contains(vlp_last_error(), "cat.png"), "png as tar: %s", vlp_last_error());
}

/* ---- loader --------------------------------------------------------------------- */

static vlp_loader_options base_opts(void) {
    vlp_loader_options o;
    memset(&o, 0, sizeof o);
    o.batch_size = 3;
    o.image_size = 24;
    o.context_length = 12;
    o.seed = 1234;
    o.shuffle = 1;
    o.workers = 2;
    return o;
}

static uint64_t batch_hash(const vlp_batch *b, int S, int ctx) {
    uint64_t h = 1469598103934665603ull;
    const uint8_t *p = (const uint8_t *)b->pixels;
    size_t np = (size_t)b->n * 3 * S * S * sizeof(float), nt = (size_t)b->n * ctx * sizeof(int32_t);
    for (size_t i = 0; i < np; i++) h = (h ^ p[i]) * 1099511628211ull;
    p = (const uint8_t *)b->tokens;
    for (size_t i = 0; i < nt; i++) h = (h ^ p[i]) * 1099511628211ull;
    for (int i = 0; i < b->n; i++) h = (h ^ (uint64_t)b->index[i]) * 1099511628211ull;
    return h;
}

static void test_loader_content(const vlp_dataset *ds) {
    vlp_loader_options o = base_opts();
    vlp_loader *ld = vlp_loader_new(ds, &o);
    CHECK(ld != NULL, "loader: %s", vlp_last_error());
    if (!ld) return;
    vlp_bpe *bpe = vlp_bpe_load(NULL);
    int64_t nb = vlp_loader_batches_per_epoch(ld), n = vlp_dataset_size(ds);
    CHECK(nb == (n + 2) / 3, "batches per epoch %lld", (long long)nb);
    const int S = o.image_size, C = o.context_length;
    float *want = malloc(sizeof(float) * 3 * S * S);
    int32_t ids[64];
    int seen[64] = {0}, bad_px = 0, bad_tok = 0;
    for (int64_t b = 0; b < nb; b++) {
        vlp_batch bt;
        int rc = vlp_loader_next(ld, &bt);
        CHECK(rc == 0, "next: %s", vlp_last_error());
        if (rc) break;
        CHECK(bt.epoch == 0 && bt.batch == b, "position (%lld, %lld)", (long long)bt.epoch, (long long)bt.batch);
        CHECK(bt.n == (b < nb - 1 ? 3 : (int)(n - 3 * (nb - 1))), "batch %lld has %d pairs", (long long)b, bt.n);
        for (int j = 0; j < bt.n; j++) {
            int64_t i = bt.index[j];
            seen[i]++;
            uint8_t *d;
            size_t sz;
            vlp_image img;
            if (vlp_dataset_read_image(ds, i, &d, &sz) || vlp_image_decode(d, sz, NULL, NULL, &img)) {
                CHECK(0, "direct decode %lld: %s", (long long)i, vlp_last_error());
                continue;
            }
            free(d);
            vlp_preprocess_config cfg = vlp_preprocess_clip(S);
            vlp_image_preprocess(&img, &cfg, want);
            vlp_image_free(&img);
            bad_px += memcmp(want, bt.pixels + (size_t)j * 3 * S * S, sizeof(float) * 3 * S * S) != 0;
            vlp_bpe_tokenize(bpe, vlp_dataset_caption(ds, i), C, 1, ids);
            bad_tok += memcmp(ids, bt.tokens + (size_t)j * C, sizeof(int32_t) * C) != 0;
        }
    }
    CHECK(bad_px == 0, "%d pairs' pixels differ from vlp_image_preprocess", bad_px);
    CHECK(bad_tok == 0, "%d pairs' tokens differ from vlp_bpe_tokenize", bad_tok);
    int once = 1;
    for (int64_t i = 0; i < n; i++) once &= seen[i] == 1;
    CHECK(once, "epoch covers every pair once");
    vlp_batch bt;
    CHECK(vlp_loader_next(ld, &bt) == 0 && bt.epoch == 1 && bt.batch == 0, "rolls over to epoch 1");
    double w = vlp_loader_take_wait_seconds(ld);
    CHECK(w >= 0 && w < 60 && vlp_loader_take_wait_seconds(ld) == 0, "wait seconds %g, then 0", w);
    free(want);
    vlp_bpe_free(bpe);
    vlp_loader_free(ld);
}

/* Bytes of the caption as ids: thread-safe and, unlike the CLIP BPE, free to set up
 * (vlp_bpe_load takes ~0.1 s), for the tests where the ids do not matter. */
static int byte_tokens(void *ctx, const char *text, int context_length, int32_t *ids) {
    for (int i = 0; i < context_length && text[i]; i++) ids[i] = (unsigned char)text[i];
    return 0;
}

/* The epoch's order as the loader gives it (batch 1 => full epoch). */
static void epoch_order(const vlp_dataset *ds, vlp_loader_options o, int64_t epoch, int64_t *order) {
    o.batch_size = 1;
    o.image_size = 4;
    o.tokenize = byte_tokens;
    vlp_loader *ld = vlp_loader_new(ds, &o);
    if (!ld) return;
    vlp_loader_seek(ld, epoch, 0);
    for (int64_t i = 0; i < vlp_dataset_size(ds); i++) {
        vlp_batch b;
        order[i] = vlp_loader_next(ld, &b) == 0 ? b.index[0] : -1;
    }
    vlp_loader_free(ld);
}

static void test_shuffle(const vlp_dataset *ds) {
    int64_t n = vlp_dataset_size(ds), a[64], b[64], c[64], d[64], e[64];
    vlp_loader_options o = base_opts();
    epoch_order(ds, o, 0, a);
    o.workers = 1;
    o.prefetch = 5;
    epoch_order(ds, o, 0, b);
    epoch_order(ds, o, 1, c);
    o.seed = 99;
    epoch_order(ds, o, 0, d);
    o.shuffle = 0;
    epoch_order(ds, o, 3, e);
    CHECK(!memcmp(a, b, sizeof(int64_t) * n), "same seed and epoch: same order");
    CHECK(memcmp(a, c, sizeof(int64_t) * n), "next epoch: another order");
    CHECK(memcmp(a, d, sizeof(int64_t) * n), "another seed: another order");
    int perm = 1, ident = 1;
    int seen[64] = {0};
    for (int64_t i = 0; i < n; i++) {
        if (c[i] >= 0 && c[i] < n) seen[c[i]]++;
        ident &= e[i] == i;
    }
    for (int64_t i = 0; i < n; i++) perm &= seen[i] == 1;
    CHECK(perm, "a shuffled epoch is a permutation");
    CHECK(ident, "no shuffle: dataset order");
}

static void test_seek(const vlp_dataset *ds, int rrc) {
    vlp_loader_options o = base_opts();
    o.random_resized_crop = rrc;
    o.batch_size = 2;
    vlp_loader *ld = vlp_loader_new(ds, &o);
    if (!ld) {
        CHECK(0, "loader: %s", vlp_last_error());
        return;
    }
    int64_t nb = vlp_loader_batches_per_epoch(ld), total = 3 * nb;
    uint64_t ref[64];
    for (int64_t k = 0; k < total; k++) {
        vlp_batch b;
        ref[k] = vlp_loader_next(ld, &b) == 0 ? batch_hash(&b, o.image_size, o.context_length) : 0;
    }
    vlp_loader_free(ld);

    /* interrupted: a few batches, then seek to every position in turn */
    o.workers = 3;
    o.prefetch = 1;
    ld = vlp_loader_new(ds, &o);
    int ok = 1;
    vlp_batch b;
    for (int k = 0; k < 2; k++) ok &= vlp_loader_next(ld, &b) == 0 && batch_hash(&b, o.image_size, o.context_length) == ref[k];
    const int64_t targets[] = {nb + 1, 1, 2 * nb, nb - 1};
    for (int t = 0; t < 4; t++) {
        int64_t k0 = targets[t];
        CHECK(vlp_loader_seek(ld, k0 / nb, k0 % nb) == 0, "seek: %s", vlp_last_error());
        for (int64_t k = k0; k < k0 + 3 && k < total; k++) {
            int rc = vlp_loader_next(ld, &b);
            ok &= rc == 0 && b.epoch == k / nb && b.batch == k % nb &&
                  batch_hash(&b, o.image_size, o.context_length) == ref[k];
        }
    }
    CHECK(ok, "seek (rrc %d) reproduces the uninterrupted run", rrc);
    CHECK(vlp_loader_seek(ld, 0, nb) < 0 && vlp_loader_seek(ld, -1, 0) < 0, "seek out of range refused");
    vlp_loader_free(ld);

    /* a fresh loader that seeks first */
    ld = vlp_loader_new(ds, &o);
    vlp_loader_seek(ld, 2, 1);
    CHECK(vlp_loader_next(ld, &b) == 0 && batch_hash(&b, o.image_size, o.context_length) == ref[2 * nb + 1],
          "fresh loader seeks to (2, 1)");
    vlp_loader_free(ld);
}

static void test_ranks(const vlp_dataset *ds) {
    int64_t n = vlp_dataset_size(ds);
    for (int drop = 0; drop < 2; drop++)
        for (int world = 1; world <= 3; world++) {
            int seen[64] = {0};
            int64_t counted = 0, per[3] = {0};
            for (int r = 0; r < world; r++) {
                vlp_loader_options o = base_opts();
                o.batch_size = 2;
                o.image_size = 4;
                o.world = world;
                o.rank = r;
                o.drop_last = drop;
                o.seed = 5;
                o.tokenize = byte_tokens;
                vlp_loader *ld = vlp_loader_new(ds, &o);
                if (!ld) {
                    CHECK(0, "rank %d/%d: %s", r, world, vlp_last_error());
                    continue;
                }
                per[r] = vlp_loader_batches_per_epoch(ld);
                vlp_loader_seek(ld, 4, 0);
                for (int64_t k = 0; k < per[r]; k++) {
                    vlp_batch b;
                    if (vlp_loader_next(ld, &b)) break;
                    CHECK(!drop || b.n == 2, "drop_last batches are full");
                    for (int j = 0; j < b.n; j++) seen[b.index[j]]++, counted++;
                }
                vlp_loader_free(ld);
            }
            int64_t G = drop ? n / 2 : (n + 1) / 2, want = drop ? (G / world) * world * 2 : n;
            int once = 1;
            for (int64_t i = 0; i < n; i++) once &= seen[i] <= 1;
            CHECK(once && counted == want, "world %d drop %d: %lld pairs, want %lld, none twice", world, drop,
                  (long long)counted, (long long)want);
            if (drop)
                for (int r = 1; r < world; r++) CHECK(per[r] == per[0], "drop_last: equal batch counts");
        }
}

static void test_rrc(const vlp_dataset *ds) {
    vlp_loader_options o = base_opts();
    o.random_resized_crop = 1;
    o.rrc_scale_min = 0.3f;
    o.tokenize = byte_tokens;
    o.workers = 1;
    vlp_loader *l1 = vlp_loader_new(ds, &o);
    o.workers = 4;
    vlp_loader *l2 = vlp_loader_new(ds, &o);
    o.random_resized_crop = 0;
    vlp_loader *l3 = vlp_loader_new(ds, &o);
    vlp_batch a, b, c;
    size_t np = 3 * 3 * 24 * 24;
    float *keep = malloc(sizeof(float) * np);
    int rc = vlp_loader_next(l1, &a);
    if (!rc) memcpy(keep, a.pixels, sizeof(float) * (size_t)a.n * 3 * 24 * 24);
    rc |= vlp_loader_next(l2, &b) | vlp_loader_next(l3, &c);
    CHECK(rc == 0, "rrc loaders: %s", vlp_last_error());
    if (!rc) {
        size_t m = (size_t)a.n * 3 * 24 * 24;
        CHECK(!memcmp(keep, b.pixels, sizeof(float) * m), "rrc: same pixels with 1 and 4 workers");
        CHECK(memcmp(keep, c.pixels, sizeof(float) * m), "rrc differs from the centre crop");
        int finite = 1;
        for (size_t i = 0; i < m; i++) finite &= keep[i] > -2.0f && keep[i] < 2.2f;
        CHECK(finite, "rrc pixels in the normalised range");
    }
    /* another epoch, another crop of the same pairs */
    o.random_resized_crop = 1;
    o.shuffle = 0;
    vlp_loader *l4 = vlp_loader_new(ds, &o);
    vlp_batch e0, e1;
    rc = vlp_loader_next(l4, &e0);
    if (!rc) memcpy(keep, e0.pixels, sizeof(float) * np);
    rc |= vlp_loader_seek(l4, 1, 0) | vlp_loader_next(l4, &e1);
    CHECK(!rc && e1.epoch == 1 && e1.index[0] == 0 && memcmp(keep, e1.pixels, sizeof(float) * np),
          "rrc: epoch 1 crops the same pairs differently");
    vlp_loader_free(l4);
    free(keep);
    vlp_loader_free(l1);
    vlp_loader_free(l2);
    vlp_loader_free(l3);
}

static int upper_tokens(void *ctx, const char *text, int context_length, int32_t *ids) {
    (*(int *)ctx)++; /* the test runs it with one worker */
    for (int i = 0; i < context_length && text[i]; i++) ids[i] = (unsigned char)text[i];
    return 0;
}

static void test_custom_tokenizer(const vlp_dataset *ds) {
    vlp_loader_options o = base_opts();
    o.workers = 1; /* upper_tokens counts without a lock */
    int calls = 0;
    o.tokenize = upper_tokens;
    o.tokenize_ctx = &calls;
    vlp_loader *ld = vlp_loader_new(ds, &o);
    vlp_batch b;
    int rc = ld ? vlp_loader_next(ld, &b) : -1;
    CHECK(rc == 0, "custom tokenizer: %s", vlp_last_error());
    if (!rc) {
        const char *cap = vlp_dataset_caption(ds, b.index[0]);
        int ok = 1;
        for (int i = 0; i < o.context_length; i++)
            ok &= b.tokens[i] == (i < (int)strlen(cap) ? (unsigned char)cap[i] : 0);
        CHECK(ok, "custom tokenizer ids");
    }
    vlp_loader_free(ld);
    CHECK(calls >= 3, "custom tokenizer called %d times", calls);
}

struct order_seen {
    int64_t rows;
    int calls, ok;
};
static int order_cb(void *ctx, const vlp_batch *b, int64_t first) {
    struct order_seen *s = ctx;
    s->ok = (s->calls == 0 || s->ok) && first == s->rows && b->index[0] == first;
    s->rows += b->n;
    s->calls++;
    return 0;
}

static void test_bad_images(void) {
    char *p = tmp_path("bad-000000.tar");
    write_shard(p, 0, 7, 16, 4);
    vlp_dataset *ds = vlp_dataset_open(p, NULL);
    CHECK(ds && vlp_dataset_size(ds) == 7, "generated shard: %s", vlp_last_error());
    if (!ds) return;
    vlp_loader_options o = base_opts();
    o.shuffle = 0;
    vlp_loader *ld = vlp_loader_new(ds, &o);
    vlp_batch b;
    CHECK(vlp_loader_next(ld, &b) == 0 && b.n == 3, "batch 0 fine");
    int rc = vlp_loader_next(ld, &b);
    CHECK(rc < 0 && contains(vlp_last_error(), "k0004") && contains(vlp_last_error(), "batch 1"),
          "bad image names its key: %s", vlp_last_error());
    CHECK(vlp_loader_next(ld, &b) == 0 && b.batch == 2 && b.n == 1 && b.index[0] == 6, "the loader goes on");
    vlp_loader_free(ld);

    o.skip_bad_images = 1;
    ld = vlp_loader_new(ds, &o);
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        ok &= vlp_loader_next(ld, &b) == 0;
        if (k == 1) ok &= b.n == 2 && b.index[0] == 3 && b.index[1] == 5;
    }
    CHECK(ok, "skip: batch 1 loses k0004");
    CHECK(vlp_loader_skipped(ld) == 1 && contains(vlp_loader_last_skip_error(ld), "k0004"), "skipped %lld: %s",
          (long long)vlp_loader_skipped(ld), vlp_loader_last_skip_error(ld));
    vlp_loader_free(ld);

    /* evaluation's in-order pass: every pair once, in order, first = the batch's first index; a
     * pair skipped for a bad image is an error naming it (features would land on wrong captions) */
    struct order_seen seen = {0};
    o.skip_bad_images = 0;
    vlp_dataset *good = vlp_dataset_open(FIXTURE("data/pairs.csv"), NULL);
    int64_t ng = good ? vlp_dataset_size(good) : 0;
    ld = good ? vlp_loader_new(good, &o) : NULL;
    rc = ld ? vlp_loader_each_in_order(ld, ng, "in-order test", order_cb, &seen) : -1;
    CHECK(rc == 0 && seen.ok && seen.rows == ng && seen.calls == (ng + 2) / 3,
          "in order: rc %d, %lld of %lld rows in %d batches (%s)", rc, (long long)seen.rows, (long long)ng, seen.calls,
          rc ? vlp_last_error() : "");
    vlp_loader_free(ld);
    ld = good ? vlp_loader_new(good, &o) : NULL;
    rc = ld ? vlp_loader_each_in_order(ld, ng + 1, "in-order test", order_cb, &(struct order_seen){0}) : 0;
    CHECK(rc < 0 && contains(vlp_last_error(), "in-order test") && contains(vlp_last_error(), "of"),
          "a pair count that does not match fails: %s", vlp_last_error());
    vlp_loader_free(ld);
    vlp_dataset_free(good);
    o.skip_bad_images = 1;
    ld = vlp_loader_new(ds, &o);
    seen = (struct order_seen){0};
    rc = vlp_loader_each_in_order(ld, 7, "in-order test", order_cb, &seen);
    CHECK(rc < 0 && contains(vlp_last_error(), "skipped pair 4") && seen.calls == 1,
          "a skipped pair stops the pass at its batch: %s (%d batches seen)", vlp_last_error(), seen.calls);
    vlp_loader_free(ld);

    /* replace: batch 1 stays full, k0004's slot holds another readable pair, the same one for
     * any worker count; the shard and key are in the message */
    o.skip_bad_images = 0;
    o.replace_bad_images = 1;
    int64_t first = -1;
    for (int w = 1; w <= 3; w += 2) {
        o.workers = w;
        ld = vlp_loader_new(ds, &o);
        ok = vlp_loader_next(ld, &b) == 0 && vlp_loader_next(ld, &b) == 0;
        ok &= b.n == 3 && b.index[0] == 3 && b.index[2] == 5 && b.index[1] != 4 && b.index[1] >= 0 && b.index[1] < 7;
        CHECK(ok, "replace (%d workers): batch 1 full, k0004 replaced (n %d, index %lld)", w, b.n,
              (long long)b.index[1]);
        if (first < 0) first = b.index[1];
        CHECK(b.index[1] == first, "replacement depends on the workers: %lld vs %lld", (long long)b.index[1],
              (long long)first);
        CHECK(vlp_loader_skipped(ld) == 1 && contains(vlp_loader_last_skip_error(ld), "k0004") &&
                  contains(vlp_loader_last_skip_error(ld), "bad-000000.tar"),
              "replaced %lld: %s", (long long)vlp_loader_skipped(ld), vlp_loader_last_skip_error(ld));
        vlp_loader_free(ld);
    }

    /* options */
    o = base_opts();
    o.batch_size = 0;
    CHECK(!vlp_loader_new(ds, &o) && contains(vlp_last_error(), "batch_size 0"), "batch 0: %s", vlp_last_error());
    o = base_opts();
    o.batch_size = 8;
    o.drop_last = 1;
    CHECK(!vlp_loader_new(ds, &o) && contains(vlp_last_error(), "7 pairs"), "no full batch: %s", vlp_last_error());
    o = base_opts();
    o.rank = 2;
    o.world = 2;
    CHECK(!vlp_loader_new(ds, &o), "rank >= world refused");
    vlp_dataset_free(ds);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("mkdtemp failed\n");
        return 1;
    }
    test_braces();
    test_folder();
    test_tar();
    test_csv();
    test_errors();
    vlp_dataset *ds = vlp_dataset_open(FIXTURE("data/shards/shard-{000000..000002}.tar"), NULL);
    if (ds) {
        test_loader_content(ds);
        test_shuffle(ds);
        test_seek(ds, 0);
        test_seek(ds, 1);
        test_ranks(ds);
        test_rrc(ds);
        test_custom_tokenizer(ds);
    }
    vlp_dataset_free(ds);
    /* the CSV and folder datasets through the loader too */
    ds = vlp_dataset_open(FIXTURE("data/pairs.csv"), NULL);
    if (ds) test_loader_content(ds);
    vlp_dataset_free(ds);
    test_bad_images();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) printf("could not remove %s\n", tmpdir);
    return test_finish();
}
