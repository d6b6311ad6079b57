/* The emoji benchmark builders (vlp_emoji.h) on the mini packages of tests/fixtures/emoji
 * (made by tests/tools/gen_emoji_fixture.py; expected/ is the independent Python reference's
 * output), then, when the real npm tarballs are in the cache or npm can fetch them, the full
 * dataset against the counts of shared/datasets/emoji.md and emoji-tasks.md.
 * VLP_TEST_EMOJI_FULL=0 skips the full build (it writes ~450 MB and takes a minute). */
#include "test.h"
#include "vlp.h"
#include "vlp_data.h"
#include "vlp_emoji.h"
#include "vlp_image.h"
#include "../src/data/emoji_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FX FIXTURE("emoji")
#define FXVER "0.0.1"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) p[sz] = 0, *n = (size_t)sz;
    return p;
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int same = pa && pb && na == nb && !memcmp(pa, pb, na);
    free(pa), free(pb);
    return same;
}

static int copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *p = slurp(from, &n);
    if (!p) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f) ok &= !fclose(f);
    free(p);
    return ok ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static long mtime_ns(const char *path) {
    struct stat sb;
    if (stat(path, &sb)) return -1;
    return (long)sb.st_mtim.tv_sec * 1000000000L + sb.st_mtim.tv_nsec;
}

static char fx_cache[512]; /* a copy of the fixture packages: verifying writes stamps there */

static vlp_emoji_options fx_opts(const char *out, const char *cache) {
    vlp_emoji_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = out;
    o.cache_dir = cache;
    o.version = FXVER;
    o.offline = 1;
    return o;
}

/* The generator's pattern (tests/tools/gen_emoji_fixture.py). */
static int fx_seed(const char *vendor, const char *image) {
    int s = 0;
    for (const char *p = vendor; *p; p++) s += (unsigned char)*p;
    s += '/';
    for (const char *p = image; *p; p++) s += (unsigned char)*p;
    return s % 251;
}
static void fx_pattern(int x, int y, int s, int px[4]) {
    px[0] = (x * 4 + s * 37) & 255, px[1] = (y * 4 + s * 11) & 255, px[2] = (x + 2 * y + s * 5) & 255,
    px[3] = (x * 8 + y * 3 + s) & 255;
}
static int composite(int c, int a) { return (c * a + 255 * (255 - a) + 127) / 255; }
static const char *str(const json_t *j) { return json_is_string(j) ? json_string_value(j) : ""; }

/* An output item image against the composite of the generator's RGBA pattern. */
static void check_item_image(const char *dir, const char *vendor, const char *image) {
    char path[1024];
    snprintf(path, sizeof path, "%s/images/%s/%s", dir, vendor, image);
    vlp_image im;
    int rc = vlp_image_load(path, NULL, &im);
    CHECK(rc == 0, "load %s: %s", path, vlp_last_error());
    if (rc) return;
    CHECK(im.width == 64 && im.height == 64 && im.mode == VLP_IMG_RGB, "%s: %dx%d mode %d", path, im.width, im.height,
          im.mode);
    if (im.mode != VLP_IMG_RGB || im.width != 64 || im.height != 64) {
        vlp_image_free(&im);
        return;
    }
    /* The three fixed pixels: partial alpha, transparent, opaque (worked by hand from emoji.md). */
    static const uint8_t fixed[3][3] = {{227, 127, 177}, {255, 255, 255}, {10, 20, 30}};
    CHECK(!memcmp(im.pixels, fixed, 9), "%s: fixed pixels %d,%d,%d %d,%d,%d %d,%d,%d", path, im.pixels[0], im.pixels[1],
          im.pixels[2], im.pixels[3], im.pixels[4], im.pixels[5], im.pixels[6], im.pixels[7], im.pixels[8]);
    int s = fx_seed(vendor, image), bad = 0;
    for (int y = 0; y < 64; y++)
        for (int x = y ? 0 : 3; x < 64; x++) {
            int p[4];
            fx_pattern(x, y, s, p);
            for (int ch = 0; ch < 3; ch++) bad += im.pixels[(y * 64 + x) * 3 + ch] != composite(p[ch], p[3]);
        }
    CHECK(bad == 0, "%s: %d channel values differ from the composite over white", path, bad);
    vlp_image_free(&im);
}

static void test_sha1(void) {
    char hex[41];
    emoji_sha1("abc", 3, hex);
    CHECK(!strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d"), "sha1(abc) = %s", hex);
    emoji_sha1("", 0, hex);
    CHECK(!strcmp(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709"), "sha1('') = %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    emoji_sha1(m, strlen(m), hex);
    CHECK(!strcmp(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"), "sha1(448-bit message) = %s", hex);
    char *big = malloc(1000000);
    memset(big, 'a', 1000000);
    emoji_sha1(big, 1000000, hex);
    CHECK(!strcmp(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"), "sha1(a x 1e6) = %s", hex);
    free(big);
}

static void test_fixture_emoji(const char *out) {
    vlp_emoji_options o = fx_opts(out, fx_cache);
    vlp_emoji_report r;
    int rc = vlp_emoji_build(&o, &r);
    CHECK(rc == 0, "fixture build: %s", vlp_last_error());
    if (rc) return;
    CHECK(!r.up_to_date && r.fetched == 0, "fresh build: up_to_date %d fetched %d", r.up_to_date, r.fetched);
    /* 21 train pairs per vendor (one vendor lacks one base, another one variation), 14 style, 4 unseen */
    CHECK(r.pairs[0][0] == 21 && r.pairs[0][1] == 21 && r.pairs[0][2] == 21 && r.pairs[0][3] == 0,
          "train pairs %lld %lld %lld %lld", (long long)r.pairs[0][0], (long long)r.pairs[0][1],
          (long long)r.pairs[0][2], (long long)r.pairs[0][3]);
    CHECK(r.pairs[1][3] == 14 && r.pairs[2][3] == 4, "style %lld unseen %lld", (long long)r.pairs[1][3],
          (long long)r.pairs[2][3]);
    CHECK(r.images == 63 + 14 + 4, "images written %lld", (long long)r.images);
    CHECK(r.zeroshot_classes == 9 && r.zeroshot_images == 13, "zero-shot %d classes %lld images", r.zeroshot_classes,
          (long long)r.zeroshot_images);
    const char *splits[3] = {"train.tsv", "style.tsv", "unseen.tsv"};
    char a[1024], b[1024];
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", out, splits[i]);
        snprintf(b, sizeof b, "%s/expected/%s", FX, splits[i]);
        CHECK(same_file(a, b), "%s differs from the reference %s", a, b);
    }
    /* Rules checked directly, not only through the reference. */
    size_t n;
    snprintf(a, sizeof a, "%s/train.tsv", out);
    char *train = slurp(a, &n);
    CHECK(train && !strncmp(train, "filepath\ttitle\n", 15), "train.tsv header");
    CHECK(train && strstr(train, "images/apple/1f935-1f3fb-1f3fc.png\tman in tuxedo, light skin tone and medium-light "
                                 "skin tone\n"),
          "two-modifier caption");
    CHECK(train && strstr(train, "images/google/1f44b-1f3fd.png\twaving hand sign, medium skin tone\nimages/google/"
                                 "1f44b-1f3fb.png\twaving hand sign, light skin tone\n"),
          "variations in the file's key order");
    CHECK(train && strstr(train, "\t\xc3\xa5land islands flag\n"), "non-ASCII name lowercased");
    CHECK(train && !strstr(train, "rocket") && !strstr(train, "thumbs up"), "held-out concepts not in train");
    CHECK(train && !strstr(train, "images/facebook/0023"), "no image where has_img is false");
    free(train);
    snprintf(a, sizeof a, "%s/unseen.tsv", out);
    char *unseen = slurp(a, &n);
    CHECK(unseen && !strstr(unseen, "thumbs up") && !strstr(unseen, "skin tone"),
          "unseen: twitter base entries with images only");
    free(unseen);
    /* Images: every train vendor, RGBA sources, plus the palette and RGB ones. */
    check_item_image(out, "apple", "1f600.png");
    check_item_image(out, "facebook", "1f44b-1f3ff.png");
    check_item_image(out, "twitter", "2764-fe0f.png");
    check_item_image(out, "google", "1f935-1f3fb-1f3fc.png");
    {
        vlp_image im;
        snprintf(a, sizeof a, "%s/images/google/1f436.png", out); /* palette source with tRNS */
        if (!vlp_image_load(a, NULL, &im)) {
            static const uint8_t fixed[9] = {227, 127, 177, 255, 255, 255, 10, 20, 30};
            int s = fx_seed("google", "1f436.png"), bad = 0;
            for (int y = 0; y < 64; y++)
                for (int x = y ? 0 : 3; x < 64; x++) {
                    int k = (x + y) % 5, p[4];
                    fx_pattern(k * 7, k * 5, s, p);
                    for (int ch = 0; ch < 3; ch++) bad += im.pixels[(y * 64 + x) * 3 + ch] != composite(p[ch], p[3]);
                }
            CHECK(!memcmp(im.pixels, fixed, 9) && bad == 0, "palette source composited (%d values differ)", bad);
            vlp_image_free(&im);
        } else {
            CHECK(0, "load %s: %s", a, vlp_last_error());
        }
        snprintf(a, sizeof a, "%s/images/apple/1f4f1.png", out); /* RGB source: unchanged */
        if (!vlp_image_load(a, NULL, &im)) {
            int s = fx_seed("apple", "1f4f1.png"), p[4];
            fx_pattern(5, 7, s, p);
            const uint8_t *q = im.pixels + (7 * 64 + 5) * 3;
            CHECK(q[0] == p[0] && q[1] == p[1] && q[2] == p[2] && im.pixels[3] == 10,
                  "RGB source kept as is (alpha ignored)");
            vlp_image_free(&im);
        } else {
            CHECK(0, "load %s: %s", a, vlp_last_error());
        }
    }
    /* zeroshot.json: classes in sort order, lowercased, Component left out */
    snprintf(a, sizeof a, "%s/zeroshot.json", out);
    json_t *zs = json_load_file(a, 0, NULL);
    json_t *cls = json_object_get(zs, "classes");
    CHECK(json_array_size(cls) == 9 && !strcmp(json_string_value(json_array_get(cls, 0)), "smileys & emotion") &&
              !strcmp(json_string_value(json_array_get(cls, 8)), "flags"),
          "zeroshot classes");
    json_t *imgs = json_object_get(zs, "images");
    CHECK(json_array_size(imgs) == 13, "zeroshot images %zu", json_array_size(imgs));
    json_t *first = json_array_get(imgs, 0);
    CHECK(!strcmp(str(json_object_get(first, "filepath")), "images/twitter/0023-fe0f-20e3.png") &&
              json_integer_value(json_object_get(first, "label")) == 7,
          "zeroshot first image: hash key -> symbols (7)");
    CHECK(json_array_size(json_object_get(zs, "templates")) == 2, "two prompt templates");
    json_decref(zs);
    /* The split files read back through the TSV reader of vlp_data.h. */
    snprintf(a, sizeof a, "%s/train.tsv", out);
    vlp_dataset *ds = vlp_dataset_open(a, NULL);
    CHECK(ds != NULL, "vlp_dataset_open(train.tsv): %s", vlp_last_error());
    if (ds) {
        CHECK(vlp_dataset_size(ds) == 63, "dataset size %lld", (long long)vlp_dataset_size(ds));
        CHECK(!strcmp(vlp_dataset_caption(ds, 1), "grinning face"), "caption 1 '%s'", vlp_dataset_caption(ds, 1));
        uint8_t *img = NULL;
        size_t sz = 0;
        CHECK(vlp_dataset_read_image(ds, 1, &img, &sz) == 0 && sz > 8 && !memcmp(img, "\x89PNG", 4),
              "image bytes through the dataset: %s", vlp_last_error());
        free(img);
        vlp_dataset_free(ds);
    }

    /* Idempotent: a second run does nothing; a run without the manifest rebuilds. */
    snprintf(a, sizeof a, "%s/manifest.json", out);
    long m0 = mtime_ns(a);
    vlp_emoji_report r2;
    rc = vlp_emoji_build(&o, &r2);
    CHECK(rc == 0 && r2.up_to_date && r2.images == 0 && mtime_ns(a) == m0, "rerun is a no-op (rc %d, up %d)", rc,
          r2.up_to_date);
    CHECK(r2.pairs[0][0] == 21 && r2.pairs[1][3] == 14 && r2.zeroshot_images == 13, "rerun reports the counts");
    unlink(a);
    snprintf(b, sizeof b, "%s/style.tsv", out);
    unlink(b);
    rc = vlp_emoji_build(&o, &r2);
    CHECK(rc == 0 && !r2.up_to_date && r2.images == 81 && emoji_file_exists(a) && emoji_file_exists(b),
          "interrupted build redone (rc %d, images %lld)", rc, (long long)r2.images);
    o.force = 1;
    rc = vlp_emoji_build(&o, &r2);
    CHECK(rc == 0 && !r2.up_to_date, "--force rebuilds");
}

/* ground3-style row 4: label 4 (i mod 9), every cell of the canvas is the listed cell image;
 * query (if not NULL): the caption of item 4, drawn in the target cell. */
static void check_canvas(const char *tasks_dir, const char *query, const char *target) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ground3-style.jsonl", tasks_dir);
    FILE *f = fopen(path, "r");
    char line[8192];
    int row = 0, ok = 0;
    while (f && fgets(line, sizeof line, f))
        if (row++ == 4) {
            ok = 1;
            break;
        }
    if (f) fclose(f);
    CHECK(ok, "ground3-style has 5 rows");
    if (!ok) return;
    json_t *o = json_loads(line, 0, NULL);
    json_t *cells = json_object_get(o, "cells");
    CHECK(json_integer_value(json_object_get(o, "label")) == 4 && json_array_size(cells) == 9 &&
              json_integer_value(json_object_get(o, "grid")) == 3,
          "row 4: label 4 (4 mod 9), 9 cells");
    if (query)
        CHECK(!strcmp(str(json_object_get(o, "query")), query) && !strcmp(str(json_array_get(cells, 4)), target),
              "target cell shows the query");
    snprintf(path, sizeof path, "%s/%s", tasks_dir, str(json_object_get(o, "image")));
    vlp_image canvas;
    int rc = vlp_image_load(path, NULL, &canvas);
    CHECK(rc == 0 && canvas.width == 192 && canvas.height == 192 && canvas.mode == VLP_IMG_RGB, "canvas %s: %s", path,
          rc ? vlp_last_error() : "");
    if (rc) {
        json_decref(o);
        return;
    }
    int bad = 0;
    for (int c = 0; c < 9; c++) {
        vlp_image cell;
        snprintf(path, sizeof path, "%s/%s", tasks_dir, str(json_array_get(cells, (size_t)c)));
        if (vlp_image_load(path, NULL, &cell)) {
            bad += 1000;
            continue;
        }
        for (int y = 0; y < 64; y++)
            bad += memcmp(canvas.pixels + ((size_t)(64 * (c / 3) + y) * 192 + 64 * (c % 3)) * 3,
                          cell.pixels + y * 64 * 3, 64 * 3) != 0;
        vlp_image_free(&cell);
    }
    CHECK(bad == 0, "canvas cells equal their images (%d rows differ)", bad);
    vlp_image_free(&canvas);
    json_decref(o);
}

static void test_fixture_tasks(const char *out, const char *fresh) {
    const char *tasks[6] = {"caption", "vqa", "nlvr", "ground2", "ground3", "mc"};
    const char *parts[3] = {"train", "style", "unseen"};
    static const int64_t want[6][3] = {{63, 14, 4}, {209, 71, 22}, {228, 78, 24},
                                       {38, 13, 4}, {38, 13, 0},   {38, 13, 4}};
    for (int pass = 0; pass < 2; pass++) {
        const char *dir = pass ? fresh : out; /* out already holds the emoji build */
        vlp_emoji_options o = fx_opts(dir, fx_cache);
        vlp_emoji_report r;
        int rc = vlp_emoji_tasks_build(&o, &r);
        CHECK(rc == 0, "tasks build: %s", vlp_last_error());
        if (rc) return;
        /* tone items 8, canvases 55 + 51; with the pairs already there only those */
        int64_t want_images = 8 + 55 + 51 + (pass ? 81 : 0);
        CHECK(r.images == want_images, "pass %d: images written %lld, want %lld", pass, (long long)r.images,
              (long long)want_images);
        char a[1024], b[1024];
        for (int t = 0; t < 6; t++)
            for (int p = 0; p < 3; p++) {
                CHECK(r.rows[t][p] == want[t][p], "%s-%s: %lld rows, want %lld", tasks[t], parts[p],
                      (long long)r.rows[t][p], (long long)want[t][p]);
                snprintf(a, sizeof a, "%s/tasks/%s-%s.jsonl", dir, tasks[t], parts[p]);
                snprintf(b, sizeof b, "%s/expected/tasks/%s-%s.jsonl", FX, tasks[t], parts[p]);
                CHECK(same_file(a, b), "%s differs from the reference", a);
            }
        snprintf(a, sizeof a, "%s/tasks", dir);
        check_canvas(a, "cat face", "../images/twitter/1f431.png"); /* item 4 of the style group */
        /* every image path of every row exists */
        snprintf(a, sizeof a, "%s/tasks/vqa-unseen.jsonl", dir);
        size_t n;
        char *vqa = slurp(a, &n);
        CHECK(vqa && strstr(vqa, "\"../images/twitter/1f44d-1f3fb.png\", \"question\": \"what skin tone is shown?\", "
                                 "\"answer\": \"light\""),
              "tone item whose base has no twitter image");
        free(vqa);
        snprintf(a, sizeof a, "%s/images/twitter/1f44d-1f3ff.png", dir);
        CHECK(emoji_file_exists(a), "tone item image written");
        /* idempotent */
        snprintf(a, sizeof a, "%s/tasks/summary.json", dir);
        long m0 = mtime_ns(a);
        vlp_emoji_report r2;
        rc = vlp_emoji_tasks_build(&o, &r2);
        CHECK(rc == 0 && r2.up_to_date && mtime_ns(a) == m0 && r2.rows[1][0] == 209, "tasks rerun is a no-op");
    }
    /* The emoji build in the fresh dir now finds the pair images in place. */
    vlp_emoji_options o = fx_opts(fresh, fx_cache);
    vlp_emoji_report r;
    int rc = vlp_emoji_build(&o, &r);
    CHECK(rc == 0 && r.images == 0 && r.pairs[0][1] == 21, "emoji after tasks writes no image (%lld)",
          (long long)r.images);
}

static void copy_packages(const char *cache) {
    char a[1024], b[1024];
    mkdir(cache, 0755);
    const char *v[4] = {"apple", "google", "facebook", "twitter"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(a, sizeof a, "%s/emoji-datasource-%s-%s.%s", FX, v[i], FXVER, k ? "json" : "tgz");
            snprintf(b, sizeof b, "%s/emoji-datasource-%s-%s.%s", cache, v[i], FXVER, k ? "json" : "tgz");
            CHECK(copy_file(a, b) == 0, "copy %s", a);
        }
}

/* A cache with a truncated tarball: detected; fetched again through VLP_NPM. */
static void test_fetch(const char *tmp) {
    char cache[512], a[1024], b[1024];
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    copy_packages(cache);
    vlp_emoji_options o = fx_opts(NULL, cache);
    vlp_emoji_report r;
    memset(&r, 0, sizeof r);
    CHECK(vlp_emoji_fetch(&o, &r) == 0 && r.fetched == 0, "complete cache verifies: %s", vlp_last_error());
    snprintf(a, sizeof a, "%s/emoji-datasource-apple-%s.tgz.verified", cache, FXVER);
    CHECK(emoji_file_exists(a), "verified stamp written");
    CHECK(vlp_emoji_fetch(&o, &r) == 0, "stamped cache verifies: %s", vlp_last_error());
    /* truncate google's tarball */
    snprintf(b, sizeof b, "%s/emoji-datasource-google-%s.tgz", cache, FXVER);
    CHECK(truncate(b, 1000) == 0, "truncate");
    int rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc != 0 && strstr(vlp_last_error(), "partial download"), "truncated tarball detected offline: %s",
          vlp_last_error());
    /* damaged byte, right size */
    CHECK(copy_file(FX "/emoji-datasource-google-" FXVER ".tgz", b) == 0, "restore");
    FILE *f = fopen(b, "r+b");
    if (f) {
        fseek(f, 5000, SEEK_SET);
        int ch = fgetc(f);
        fseek(f, 5000, SEEK_SET);
        fputc(ch ^ 0x55, f);
        fclose(f);
    }
    /* A later modification time, as any real change has (the clock may be coarser than this
     * test: without it the damage could carry the verified stamp's time). */
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    utimensat(AT_FDCWD, b, ts, 0);
    rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc != 0 && strstr(vlp_last_error(), "SHA-1"), "damaged tarball detected: %s", vlp_last_error());
    /* online with a stand-in npm that serves the fixture: refetched and verified */
    char npm[1024];
    snprintf(npm, sizeof npm, "%s/fake-npm.sh", tmp);
    f = fopen(npm, "w");
    if (f) {
        char *root = realpath(FX, NULL);
        /* args: pack --json --loglevel=warn --pack-destination . NAME@VERSION; runs in the cache */
        fprintf(f,
                "#!/bin/sh\nspec=\"$6\"; base=\"${spec%%@*}-${spec#*@}\"\n"
                "[ \"$1 $2 $4 $5\" = \"pack --json --pack-destination .\" ] || exit 3\n"
                "cp \"%s/$base.tgz\" . && cat \"%s/$base.json\"\n",
                root ? root : FX, root ? root : FX);
        free(root);
        fclose(f);
        chmod(npm, 0755);
    }
    o.offline = 0;
    o.npm = npm;
    memset(&r, 0, sizeof r);
    rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc == 0 && r.fetched == 1, "damaged tarball fetched again (rc %d, fetched %d): %s", rc, r.fetched,
          vlp_last_error());
    CHECK(same_file(b, FX "/emoji-datasource-google-" FXVER ".tgz"), "refetched tarball intact");
    /* a missing npm record (the download never finished) is refetched too */
    snprintf(a, sizeof a, "%s/emoji-datasource-twitter-%s.json", cache, FXVER);
    unlink(a);
    memset(&r, 0, sizeof r);
    rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc == 0 && r.fetched == 1 && emoji_file_exists(a), "missing record refetched");
    /* npm failing or absent: clear errors, no record left behind */
    unlink(a);
    o.npm = "/bin/false";
    rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc != 0 && strstr(vlp_last_error(), "failed") && !emoji_file_exists(a), "failing npm: %s", vlp_last_error());
    o.npm = "/nonexistent/npm";
    rc = vlp_emoji_fetch(&o, &r);
    CHECK(rc != 0 && strstr(vlp_last_error(), "cannot run"), "missing npm: %s", vlp_last_error());
    /* a build with a damaged cache fails with the reason, leaving no manifest */
    o.offline = 1;
    char out[600];
    snprintf(out, sizeof out, "%s/out-bad", tmp);
    o.out_dir = out;
    rc = vlp_emoji_build(&o, &r);
    snprintf(a, sizeof a, "%s/manifest.json", out);
    CHECK(rc != 0 && !emoji_file_exists(a), "build on an incomplete cache fails: %s", vlp_last_error());
    o.out_dir = NULL;
    CHECK(vlp_emoji_build(&o, &r) == VLP_ERR_ARG, "no output directory");
    CHECK(vlp_emoji_build(NULL, &r) == VLP_ERR_ARG, "NULL options");
    o.version = "../x";
    CHECK(vlp_emoji_fetch(&o, &r) == VLP_ERR_ARG, "bad version refused");
}

/* A package made here: emoji.json text and one valid image (64x64 PNG from the fixture). */
static void make_pkg(const char *cache, const char *vendor, const char *ejson, const char *img_name, const uint8_t *png,
                     size_t png_n) {
    char tgz[1024], side[1024], path[256];
    snprintf(tgz, sizeof tgz, "%s/emoji-datasource-%s-9.9.9.tgz", cache, vendor);
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_ustar(a);
    archive_write_open_filename(a, tgz);
    for (int k = 0; k < 2; k++) {
        const void *data = k ? (const void *)png : ejson;
        size_t n = k ? png_n : strlen(ejson);
        if (k)
            snprintf(path, sizeof path, "package/img/%s/64/%s", vendor, img_name);
        else
            snprintf(path, sizeof path, "package/emoji.json");
        if (k && !png) continue;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, path);
        archive_entry_set_size(e, (la_int64_t)n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_write_header(a, e);
        archive_write_data(a, data, n);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    char hex[41];
    struct stat sb;
    stat(tgz, &sb);
    emoji_sha1_file(tgz, hex);
    snprintf(side, sizeof side, "%s/emoji-datasource-%s-9.9.9.json", cache, vendor);
    FILE *f = fopen(side, "w");
    if (f) {
        fprintf(f,
                "[{\"name\": \"emoji-datasource-%s\", \"version\": \"9.9.9\", \"size\": %lld, \"shasum\": \"%s\"}]\n",
                vendor, (long long)sb.st_size, hex);
        fclose(f);
    }
}

/* Bad packages: each fails with a message naming the problem, and leaves no manifest. */
static void test_bad_packages(const char *tmp) {
    static const char *vendors[4] = {"apple", "google", "facebook", "twitter"};
    size_t png_n = 0;
    char src[1024];
    /* a fixture image in the composited output is a valid 64x64 PNG */
    snprintf(src, sizeof src, "%s/out/images/apple/1f600.png", tmp);
    uint8_t *png = (uint8_t *)slurp(src, &png_n);
    CHECK(png != NULL, "fixture image for the bad packages");
    if (!png) return;
    const char *good = "[{\"name\": \"GRINNING FACE\", \"image\": \"1f600.png\", \"category\": \"Smileys & Emotion\", "
                       "\"subcategory\": \"face-smiling\", \"sort_order\": 1, \"has_img_apple\": true, "
                       "\"has_img_google\": true, \"has_img_facebook\": true, \"has_img_twitter\": true}]";
    static const struct {
        const char *json;    /* NULL: good */
        int vendor_differs;  /* google's emoji.json differs */
        int no_image;        /* the tarballs lack the PNG */
        const char *message; /* expected in the error */
    } cases[] = {
        {"{\"not\": \"an array\"}", 0, 0, "not a non-empty array"},
        {"[{\"name\": \"X\", \"image\": \"x.png\"}]", 0, 0, "needs name, image, category"},
        {"[{\"name\": \"X\", \"image\": \"../../etc/x.png\", \"category\": \"Objects\", \"subcategory\": \"s\", "
         "\"sort_order\": 1}]",
         0, 0, "bad image file name"},
        {"[{\"name\": \"X\", \"image\": \"x.png\", \"category\": \"Objects\", \"subcategory\": \"s\", \"sort_order\": "
         "1, "
         "\"skin_variations\": {\"1F3FA\": {\"image\": \"x-1.png\"}}}]",
         0, 0, "1F3FB..1F3FF"},
        {"[{\"name\": \"X", 0, 0, "emoji.json"},
        {NULL, 1, 0, "differs"},
        {NULL, 0, 1, "lacks it"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char cache[512], out[512], man[640];
        snprintf(cache, sizeof cache, "%s/bad%zu", tmp, c);
        snprintf(out, sizeof out, "%s/badout%zu", tmp, c);
        mkdir(cache, 0755);
        for (int v = 0; v < 4; v++) {
            const char *j = cases[c].json ? cases[c].json : good;
            char alt[1024];
            if (cases[c].vendor_differs && v == 1) {
                snprintf(alt, sizeof alt, "%s ", good);
                j = alt;
            }
            make_pkg(cache, vendors[v], j, "1f600.png", cases[c].no_image ? NULL : png, png_n);
        }
        vlp_emoji_options o = fx_opts(out, cache);
        o.version = "9.9.9";
        vlp_emoji_report r;
        int rc = vlp_emoji_build(&o, &r);
        snprintf(man, sizeof man, "%s/manifest.json", out);
        CHECK(rc != 0 && strstr(vlp_last_error(), cases[c].message) && !emoji_file_exists(man),
              "bad package %zu: rc %d, '%s' (want '%s')", c, rc, vlp_last_error(), cases[c].message);
    }
    /* the same packages made well build: the helper is not what fails above */
    char cache[512], out[512];
    snprintf(cache, sizeof cache, "%s/good", tmp);
    snprintf(out, sizeof out, "%s/goodout", tmp);
    mkdir(cache, 0755);
    for (int v = 0; v < 4; v++) make_pkg(cache, vendors[v], good, "1f600.png", png, png_n);
    vlp_emoji_options o = fx_opts(out, cache);
    o.version = "9.9.9";
    vlp_emoji_report r;
    int rc = vlp_emoji_build(&o, &r);
    CHECK(rc == 0 && r.pairs[0][0] == 1 && r.pairs[1][3] == 1, "one-entry package builds: %s", vlp_last_error());
    rc = vlp_emoji_tasks_build(&o, &r);
    CHECK(rc == 0 && r.rows[1][1] == 5 && r.rows[2][1] == 0 && r.rows[3][1] == 0 && r.rows[5][1] == 0,
          "one item: VQA only (N < 2 gives no NLVR, grounding or mc): %s", vlp_last_error());
    free(png);
}

/* The real packages: the counts of the specs. */
static void test_full(const char *tmp) {
    const char *env = getenv("VLP_TEST_EMOJI_FULL");
    if (env && !strcmp(env, "0")) {
        printf("full emoji dataset: skipped (VLP_TEST_EMOJI_FULL=0)\n");
        return;
    }
#if defined(__SANITIZE_ADDRESS__)
    if (!env) {
        printf("full emoji dataset: skipped under the sanitizers (VLP_TEST_EMOJI_FULL=1 runs it)\n");
        return;
    }
#endif
    vlp_emoji_options o;
    memset(&o, 0, sizeof o);
    vlp_emoji_report r;
    memset(&r, 0, sizeof r);
    o.offline = 1;
    if (vlp_emoji_fetch(&o, &r)) {
        char npm_ok = !system("npm --version >/dev/null 2>&1");
        if (!npm_ok) {
            printf("full emoji dataset: skipped (no tarballs in the cache and no npm: %s)\n", vlp_last_error());
            return;
        }
        o.offline = 0;
        int rc = vlp_emoji_fetch(&o, &r);
        if (rc) {
            printf("full emoji dataset: skipped (fetch failed: %s)\n", vlp_last_error());
            return;
        }
        printf("full emoji dataset: fetched %d tarballs in %.1f s\n", r.fetched, r.fetch_seconds);
    }
    char out[512];
    snprintf(out, sizeof out, "%s/full", tmp);
    o.out_dir = out;
    o.offline = 1;
    int rc = vlp_emoji_build(&o, &r);
    CHECK(rc == 0, "full emoji build: %s", vlp_last_error());
    if (rc) return;
    printf("full emoji dataset: built in %.1f s\n", r.build_seconds);
    int64_t train = r.pairs[0][0] + r.pairs[0][1] + r.pairs[0][2];
    CHECK(train == 10108, "train pairs %lld, emoji-tasks.md says 10,108", (long long)train);
    CHECK(r.pairs[1][3] == 1720, "style pairs %lld, want 1,720", (long long)r.pairs[1][3]);
    CHECK(r.pairs[2][3] == 191, "unseen pairs %lld, want 191", (long long)r.pairs[2][3]);
    CHECK(r.zeroshot_classes == 9 && r.zeroshot_images == 1716, "zero-shot %d classes, %lld images", r.zeroshot_classes,
          (long long)r.zeroshot_images);
    rc = vlp_emoji_tasks_build(&o, &r);
    CHECK(rc == 0, "full tasks build: %s", vlp_last_error());
    if (rc) return;
    printf("full emoji tasks: built in %.1f s\n", r.build_seconds);
    /* emoji-tasks.md: style counts and the train VQA/NLVR; the rest from the rules */
    static const int64_t want[6][3] = {{10108, 1720, 191}, {29690, 10000, 1110}, {30606, 10296, 1140},
                                       {5101, 1716, 190},  {5101, 1716, 190},    {5101, 1716, 190}};
    for (int t = 0; t < 6; t++)
        for (int p = 0; p < 3; p++)
            CHECK(r.rows[t][p] == want[t][p], "%s-%s: %lld rows, want %lld", vlp_emoji_task_name(t),
                  vlp_emoji_part_name(p), (long long)r.rows[t][p], (long long)want[t][p]);
    char tasks_dir[600];
    snprintf(tasks_dir, sizeof tasks_dir, "%s/tasks", out);
    check_canvas(tasks_dir, NULL, NULL);
}

int main(void) {
    char tmpl[] = "/tmp/vlp_test_emoji_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "mkdtemp");
    if (!tmp) return test_finish();
    char out[256], fresh[256];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(fresh, sizeof fresh, "%s/fresh", tmp);
    snprintf(fx_cache, sizeof fx_cache, "%s/fxcache", tmp);
    copy_packages(fx_cache);
    test_sha1();
    test_fixture_emoji(out);
    test_fixture_tasks(out, fresh);
    test_fetch(tmp);
    test_bad_packages(tmp);
    test_full(tmp);
    rm_rf(tmp);
    return test_finish();
}
