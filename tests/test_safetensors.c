/* safetensors reader/writer: the three fixture files, F16/BF16 conversion against
 * independent references, write/read round trips, atomic saves (including a
 * simulated full disk), and a battery of malformed files that must each fail
 * with a message naming the file and the problem. */
#include "test.h"
#include "vlp.h"
#include "vlp_safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL FIXTURE("clip/model-tiny/model.safetensors")
#define MODEL_F16 FIXTURE("clip/model-tiny/model-f16.safetensors")
#define OPEN_CLIP FIXTURE("clip/model-tiny/open_clip_model.safetensors")

static char tmpdir[64];

static uint32_t fbits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}
static float bitsf(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}
/* Same value, with nan == nan and -0 != +0. */
static int same(float a, float b) { return (isnan(a) && isnan(b)) || fbits(a) == fbits(b); }

/* Reference rounding of a float to the nearest value with `mant` fraction bits,
 * normal exponents down to emin (subnormal below) and overflow at `maxv`
 * (the first value that rounds to inf), in double arithmetic with nearbyint
 * (round half to even): independent of the bit tricks in the library. */
static float ref_round(float x, int mant, int emin, double maxv) {
    if (isnan(x) || isinf(x) || x == 0) return x;
    double a = fabs((double)x);
    if (a >= maxv) return copysignf(INFINITY, x);
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    e -= 1;       /* a in [2^e, 2^(e+1)) */
    if (e < emin) e = emin;
    double ulp = ldexp(1.0, e - mant);
    double r = nearbyint(a / ulp) * ulp;
    return (float)copysign(r, (double)x);
}
static float ref_f16(float x) { return ref_round(x, 10, -14, 65520.0); }
static float ref_bf16(float x) {
    /* bf16 keeps f32's exponent range; overflow at the midpoint above the largest bf16. */
    return ref_round(x, 7, -126, ldexp(2.0 - ldexp(1.0, -8), 127));
}

static int contains(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }

static void path_in_tmp(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* An 8-byte length (hlen_override if nonzero, else strlen(json)), the json, then
 * data_len bytes of data. */
static int write_st(const char *path, const char *json, size_t data_len, uint64_t hlen_override) {
    size_t jl = strlen(json), n = 8 + jl + data_len;
    unsigned char *b = calloc(n, 1);
    uint64_t h = hlen_override ? hlen_override : jl;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) b[8 + jl + i] = (unsigned char)i;
    int rc = write_file(path, b, n);
    free(b);
    return rc;
}

static int count_tmp_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void check_shape(const vlp_safetensors *st, const char *name, vlp_st_dtype dt, int ndim, const int64_t *shape) {
    int i = vlp_st_find(st, name);
    CHECK(i >= 0, "tensor %s not found", name);
    if (i < 0) return;
    CHECK(!strcmp(vlp_st_name(st, i), name), "name at %d is %s", i, vlp_st_name(st, i));
    vlp_st_dtype d;
    int nd;
    int64_t sh[VLP_ST_MAX_DIMS];
    CHECK(vlp_st_info(st, i, &d, &nd, sh) == 0, "info %s: %s", name, vlp_last_error());
    CHECK(d == dt, "%s dtype %s, want %s", name, vlp_st_dtype_name(d), vlp_st_dtype_name(dt));
    int ok = nd == ndim;
    for (int k = 0; ok && k < nd; k++) ok = sh[k] == shape[k];
    CHECK(ok, "%s shape mismatch (ndim %d)", name, nd);
}

static void test_fixtures(void) {
    vlp_safetensors *st = vlp_st_open(MODEL);
    CHECK(st != NULL, "open %s: %s", MODEL, vlp_last_error());
    if (!st) return;
    CHECK(vlp_st_count(st) == 80, "model.safetensors count %d", vlp_st_count(st));
    check_shape(st, "vision_model.embeddings.patch_embedding.weight", VLP_ST_F32, 4, (int64_t[]){128, 3, 16, 16});
    check_shape(st, "text_model.embeddings.position_ids", VLP_ST_I64, 2, (int64_t[]){1, 77});
    check_shape(st, "text_model.embeddings.token_embedding.weight", VLP_ST_F32, 2, (int64_t[]){49408, 64});
    check_shape(st, "logit_scale", VLP_ST_F32, 0, NULL);
    CHECK(vlp_st_find(st, "no.such.tensor") == -1, "find of a missing name");
    CHECK(vlp_st_metadata(st, "format") && !strcmp(vlp_st_metadata(st, "format"), "pt"), "metadata format");
    CHECK(vlp_st_metadata(st, "nope") == NULL, "absent metadata key");
    CHECK(vlp_st_metadata_count(st) == 1 && !strcmp(vlp_st_metadata_key(st, 0), "format"), "metadata keys");
    /* File order: by data offset, so position_ids (I64, stored first) come first. */
    CHECK(!strcmp(vlp_st_name(st, 0), "text_model.embeddings.position_ids"), "first tensor %s", vlp_st_name(st, 0));
    /* Every name is found at its own index. */
    int found = 1;
    for (int i = 0; i < vlp_st_count(st); i++) found &= vlp_st_find(st, vlp_st_name(st, i)) == i;
    CHECK(found, "find(name(i)) == i for all i");

    /* I64 raw access: position_ids are 0..76. */
    int pi = vlp_st_find(st, "text_model.embeddings.position_ids");
    size_t nb = 0;
    const unsigned char *raw = vlp_st_data(st, pi, &nb);
    int ok = raw && nb == 77 * 8;
    for (int k = 0; ok && k < 77; k++) {
        int64_t v;
        memcpy(&v, raw + 8 * k, 8);
        ok = v == k;
    }
    CHECK(ok, "position_ids are 0..76");
    /* Reading I64 as float is an error naming the tensor. */
    float tmp[77];
    CHECK(vlp_st_read_f32(st, pi, tmp, 77) < 0 && contains(vlp_last_error(), "position_ids") &&
              contains(vlp_last_error(), "I64"),
          "read_f32 of I64: %s", vlp_last_error());
    int li = vlp_st_find(st, "logit_scale");
    float ls = 0;
    CHECK(vlp_st_read_f32(st, li, &ls, 1) == 0 && isfinite(ls) && ls > 0, "logit_scale %g", ls);
    CHECK(vlp_st_read_f32(st, li, tmp, 2) < 0 && contains(vlp_last_error(), "logit_scale") &&
              contains(vlp_last_error(), "elements"),
          "wrong numel: %s", vlp_last_error());
    CHECK(vlp_st_info(st, 1000, NULL, NULL, NULL) < 0 && contains(vlp_last_error(), "out of range"), "bad index");

    /* F16 file: same names; every F32 tensor rounded to F16. */
    vlp_safetensors *sh = vlp_st_open(MODEL_F16);
    CHECK(sh != NULL, "open %s: %s", MODEL_F16, vlp_last_error());
    if (sh) {
        CHECK(vlp_st_count(sh) == vlp_st_count(st), "f16 count %d", vlp_st_count(sh));
        check_shape(sh, "vision_model.embeddings.patch_embedding.weight", VLP_ST_F16, 4, (int64_t[]){128, 3, 16, 16});
        check_shape(sh, "text_model.embeddings.position_ids", VLP_ST_I64, 2, (int64_t[]){1, 77});
        int64_t total = 0, mismatches = 0, compared = 0;
        double max_rel = 0;
        for (int i = 0; i < vlp_st_count(sh); i++) {
            vlp_st_dtype d;
            vlp_st_info(sh, i, &d, NULL, NULL);
            int j = vlp_st_find(st, vlp_st_name(sh, i));
            if (j < 0) {
                mismatches++;
                continue;
            }
            if (d != VLP_ST_F16) continue;
            int64_t n = vlp_st_numel(sh, i);
            float *a = malloc((size_t)n * 4 + 4), *b = malloc((size_t)n * 4 + 4);
            if (vlp_st_read_f32(sh, i, a, n) || vlp_st_read_f32(st, j, b, n)) {
                mismatches++;
            } else {
                for (int64_t k = 0; k < n; k++) {
                    if (!same(a[k], ref_f16(b[k]))) mismatches++;
                    if (b[k] != 0 && fabsf(b[k]) >= 6.2e-5f) {
                        double r = fabs((double)a[k] - b[k]) / fabs((double)b[k]);
                        if (r > max_rel) max_rel = r;
                    }
                }
                compared++;
            }
            total += n;
            free(a);
            free(b);
        }
        CHECK(compared == 78 && mismatches == 0, "F16 file == round_f16(F32 file): %lld mismatches over %lld values",
              (long long)mismatches, (long long)total);
        CHECK(max_rel <= ldexp(1.0, -11), "max rel diff %g > 2^-11", max_rel);
        vlp_st_close(sh);
    }

    /* open_clip layout. */
    vlp_safetensors *so = vlp_st_open(OPEN_CLIP);
    CHECK(so != NULL, "open %s: %s", OPEN_CLIP, vlp_last_error());
    if (so) {
        CHECK(vlp_st_count(so) == 62, "open_clip count %d", vlp_st_count(so));
        check_shape(so, "visual.conv1.weight", VLP_ST_F32, 4, (int64_t[]){128, 3, 16, 16});
        check_shape(so, "text_projection", VLP_ST_F32, 2, (int64_t[]){64, 32});
        /* Same weights as the HF file under another name. */
        int a = vlp_st_find(so, "visual.conv1.weight"), b = vlp_st_find(st, "vision_model.embeddings.patch_embedding.weight");
        size_t na, nb2;
        const void *pa = vlp_st_data(so, a, &na), *pb = vlp_st_data(st, b, &nb2);
        CHECK(pa && pb && na == nb2 && !memcmp(pa, pb, na), "conv1 == patch_embedding");

        /* Re-saving every tensor with the writer reproduces the reference writer's file byte for byte. */
        int n = vlp_st_count(so);
        vlp_st_entry *e = calloc((size_t)n, sizeof *e);
        float **bufs = calloc((size_t)n, sizeof *bufs);
        int ok2 = 1;
        for (int i = n - 1; i >= 0; i--) { /* reverse order: the writer must sort */
            e[i].name = vlp_st_name(so, i);
            vlp_st_info(so, i, NULL, &e[i].ndim, e[i].shape);
            int64_t ne = vlp_st_numel(so, i);
            bufs[i] = malloc((size_t)ne * 4 + 4);
            ok2 &= vlp_st_read_f32(so, i, bufs[i], ne) == 0;
            e[i].data = bufs[i];
            e[i].store_as = VLP_ST_F32;
        }
        char out[256];
        path_in_tmp(out, sizeof out, "resaved.safetensors");
        const char *meta[] = {"format", "pt", NULL};
        CHECK(ok2 && vlp_st_save(out, e, n, meta) == 0, "re-save: %s", vlp_last_error());
        size_t n1 = 0, n2 = 0;
        unsigned char *b1 = slurp(OPEN_CLIP, &n1), *b2 = slurp(out, &n2);
        CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "re-saved open_clip file is byte-identical (%zu vs %zu bytes)",
              n1, n2);
        free(b1);
        free(b2);
        for (int i = 0; i < n; i++) free(bufs[i]);
        free(bufs);
        free(e);
        vlp_st_close(so);
    }
    vlp_st_close(st);
}

static void test_conversions(void) {
    /* Every F16 bit pattern widens exactly and narrows back to itself. */
    int bad_widen = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vlp_f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 0x3ff;
        float want = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), (int)e - 25);
        if (h & 0x8000) want = -want;
        if (!same(f, want)) bad_widen++;
        uint16_t back = vlp_f32_to_f16(f);
        if (e == 31 && m) {
            if (((back >> 10) & 31) != 31 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000)) bad_rt++;
        } else if (back != h) {
            bad_rt++;
        }
    }
    CHECK(bad_widen == 0, "f16->f32: %d wrong", bad_widen);
    CHECK(bad_rt == 0, "f16->f32->f16 round trip: %d wrong", bad_rt);

    /* f32 -> f16 / bf16 against the double-arithmetic references: edge cases and random patterns. */
    float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f, -65520.0f, 1e10f,
                     INFINITY, -INFINITY, 6.103515625e-05f /* 2^-14 */, 6.0975552e-05f /* below min normal */,
                     5.9604645e-08f /* 2^-24 */, 2.9802322e-08f /* 2^-25: tie to 0 */, 2.9802326e-08f, 8.940697e-08f /* 1.5*2^-24: tie to 2^-23 */,
                     1e-40f /* f32 subnormal */, 1.00048828125f /* 1 + 2^-11: tie to 1 */, 1.00146484375f /* 1 + 3*2^-11: tie up */,
                     1.00390625f /* 1 + 2^-8: bf16 tie to 1 */, 1.01171875f /* 1 + 3*2^-8: bf16 tie up */,
                     3.3895314e38f /* max bf16 */, 3.4028235e38f /* FLT_MAX: bf16 inf */};
    int bad16 = 0, badb = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        float x = edges[i];
        if (!same(vlp_f16_to_f32(vlp_f32_to_f16(x)), ref_f16(x))) {
            bad16++;
            printf("  f16(%a) = %a, want %a\n", x, vlp_f16_to_f32(vlp_f32_to_f16(x)), ref_f16(x));
        }
        if (!same(vlp_bf16_to_f32(vlp_f32_to_bf16(x)), ref_bf16(x))) {
            badb++;
            printf("  bf16(%a) = %a, want %a\n", x, vlp_bf16_to_f32(vlp_f32_to_bf16(x)), ref_bf16(x));
        }
    }
    uint64_t s = 12345;
    for (int i = 0; i < 2000000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t b = (uint32_t)(s >> 32);
        if (i & 1) b = (b & 0x8fffffffu) | 0x30000000u; /* bias half of them into the f16 range */
        float x = bitsf(b);
        if (!same(vlp_f16_to_f32(vlp_f32_to_f16(x)), ref_f16(x))) bad16++;
        if (!same(vlp_bf16_to_f32(vlp_f32_to_bf16(x)), ref_bf16(x))) badb++;
    }
    CHECK(bad16 == 0, "f32->f16 vs reference: %d wrong", bad16);
    CHECK(badb == 0, "f32->bf16 vs reference: %d wrong", badb);
#if defined(__FLT16_MANT_DIG__) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    /* And against the compiler's own _Float16 conversion. */
    int badc = 0;
    for (int i = 0; i < 1000000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float x = bitsf((uint32_t)(s >> 32));
        _Float16 hf = (_Float16)x;
        uint16_t hb;
        memcpy(&hb, &hf, 2);
        uint16_t mine = vlp_f32_to_f16(x);
        if (isnan(x) ? !((mine & 0x7c00) == 0x7c00 && (mine & 0x3ff)) : mine != hb) badc++;
    }
    CHECK(badc == 0, "f32->f16 vs _Float16: %d wrong", badc);
#endif
    /* NaN stays NaN in both narrow formats, inf stays inf. */
    CHECK(isnan(vlp_bf16_to_f32(vlp_f32_to_bf16(bitsf(0x7f800001u)))), "bf16 of a signalling nan is nan");
    CHECK(isnan(vlp_f16_to_f32(vlp_f32_to_f16(bitsf(0x7f800001u)))), "f16 of a nan with low payload is nan");
}

static void test_roundtrip(void) {
    char p[256];
    path_in_tmp(p, sizeof p, "rt.safetensors");
    float v[12] = {1.0f, -2.5f, INFINITY, -INFINITY, NAN, -0.0f, 1e-40f, 65504.0f, 1e-7f, 3.14159265f, 70000.0f, 1e-5f};
    float sc = 0.125f;
    vlp_st_entry e[] = {
        {.name = "w.f32", .data = v, .ndim = 2, .shape = {3, 4}, .store_as = VLP_ST_F32},
        {.name = "w.f16", .data = v, .ndim = 2, .shape = {4, 3}, .store_as = VLP_ST_F16},
        {.name = "w.bf16", .data = v, .ndim = 1, .shape = {12}, .store_as = VLP_ST_BF16},
        {.name = "a.f64", .data = v, .ndim = 3, .shape = {2, 2, 3}, .store_as = VLP_ST_F64},
        {.name = "scalar", .data = &sc, .ndim = 0, .store_as = VLP_ST_F32},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 5}, .store_as = VLP_ST_F16},
        {.name = "b.f32", .data = v, .ndim = 1, .shape = {5}, .store_as = VLP_ST_F32},
    };
    int n = (int)(sizeof e / sizeof *e);
    const char *meta[] = {"format", "pt", "note", "h\xc3\xa9llo \"quoted\"\n", NULL};
    CHECK(vlp_st_save(p, e, n, meta) == 0, "save: %s", vlp_last_error());
    CHECK(count_tmp_files() == 0, "temp file left behind");
    vlp_safetensors *st = vlp_st_open(p);
    CHECK(st != NULL, "reopen: %s", vlp_last_error());
    if (!st) return;
    CHECK(vlp_st_count(st) == n, "count %d", vlp_st_count(st));
    CHECK(vlp_st_metadata(st, "note") && !strcmp(vlp_st_metadata(st, "note"), meta[3]), "metadata note");
    CHECK(vlp_st_metadata(st, "format") && !strcmp(vlp_st_metadata(st, "format"), "pt"), "metadata format");
    /* Layout: F64, then F32 by name, then BF16, then F16 by name. */
    const char *order[] = {"a.f64", "b.f32", "scalar", "w.f32", "w.bf16", "empty", "w.f16"};
    int ord_ok = 1;
    for (int i = 0; i < n; i++) ord_ok &= !strcmp(vlp_st_name(st, i), order[i]);
    CHECK(ord_ok, "layout order (first %s)", vlp_st_name(st, 0));
    size_t fn = 0;
    unsigned char *fb = slurp(p, &fn);
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)fb[k] << (8 * k);
    CHECK(hl % 8 == 0 && fb[8] == '{' && (fb[8 + hl - 1] == ' ' || fb[8 + hl - 1] == '}'), "header padded to 8 (%llu)",
          (unsigned long long)hl);
    CHECK(!memcmp(fb + 8, "{\"__metadata__\":{\"format\":\"pt\",", 31), "metadata first, compact JSON");
    free(fb);
    for (int i = 0; i < n; i++) {
        const vlp_st_entry *x = NULL;
        for (int j = 0; j < n; j++)
            if (!strcmp(e[j].name, vlp_st_name(st, i))) x = &e[j];
        vlp_st_dtype d;
        int nd;
        int64_t sh[8];
        vlp_st_info(st, i, &d, &nd, sh);
        int ok = x && d == x->store_as && nd == x->ndim;
        for (int k = 0; ok && k < nd; k++) ok = sh[k] == x->shape[k];
        CHECK(ok, "%s: dtype/shape", x ? x->name : "?");
        int64_t ne = vlp_st_numel(st, i);
        float out[16];
        CHECK(vlp_st_read_f32(st, i, out, ne) == 0, "read %s: %s", x ? x->name : "?", vlp_last_error());
        int vals = 1;
        for (int64_t k = 0; x && k < ne; k++) {
            float want = x->data[k];
            if (d == VLP_ST_F16) want = ref_f16(want);
            if (d == VLP_ST_BF16) want = ref_bf16(want);
            vals &= same(out[k], want);
        }
        CHECK(vals, "%s values", x ? x->name : "?");
    }
    vlp_st_close(st);

    /* Writer argument errors. */
    vlp_st_entry dup[] = {e[0], e[0]};
    CHECK(vlp_st_save(p, dup, 2, NULL) < 0 && contains(vlp_last_error(), "duplicate") &&
              contains(vlp_last_error(), "w.f32"),
          "duplicate names: %s", vlp_last_error());
    vlp_st_entry bad = e[0];
    bad.store_as = VLP_ST_I64;
    CHECK(vlp_st_save(p, &bad, 1, NULL) < 0 && contains(vlp_last_error(), "I64"), "store as I64: %s", vlp_last_error());
    bad = e[0];
    bad.shape[1] = -4;
    CHECK(vlp_st_save(p, &bad, 1, NULL) < 0 && contains(vlp_last_error(), "negative"), "negative dim: %s",
          vlp_last_error());
    bad = e[0];
    bad.name = "__metadata__";
    CHECK(vlp_st_save(p, &bad, 1, NULL) < 0 && contains(vlp_last_error(), "reserved"), "reserved name");
    bad = e[0];
    bad.name = "bad\xff";
    CHECK(vlp_st_save(p, &bad, 1, NULL) < 0 && contains(vlp_last_error(), "UTF-8"), "invalid UTF-8 name: %s",
          vlp_last_error());
    const char *odd[] = {"k", NULL};
    CHECK(vlp_st_save(p, e, 1, odd) < 0 && contains(vlp_last_error(), "no value"), "odd meta: %s", vlp_last_error());
    const char *dupm[] = {"k", "1", "k", "2", NULL};
    CHECK(vlp_st_save(p, e, 1, dupm) < 0 && contains(vlp_last_error(), "duplicate"), "dup meta: %s", vlp_last_error());
    /* The earlier good file survived every failed save. */
    st = vlp_st_open(p);
    CHECK(st && vlp_st_count(st) == n, "file intact after failed saves");
    vlp_st_close(st);

    /* Empty file set: a valid file with no tensors. */
    path_in_tmp(p, sizeof p, "none.safetensors");
    CHECK(vlp_st_save(p, NULL, 0, NULL) == 0, "save of no tensors: %s", vlp_last_error());
    st = vlp_st_open(p);
    CHECK(st && vlp_st_count(st) == 0, "open of no tensors: %s", vlp_last_error());
    vlp_st_close(st);
    fb = slurp(p, &fn);
    CHECK(fn == 16 && !memcmp(fb, "\x08\0\0\0\0\0\0\0{}      ", 16), "empty file bytes match the reference");
    free(fb);

    /* In-memory open of a file image. */
    path_in_tmp(p, sizeof p, "rt.safetensors");
    fb = slurp(p, &fn);
    st = vlp_st_open_memory(fb, fn, "mem-image");
    CHECK(st && vlp_st_count(st) == n, "open_memory: %s", vlp_last_error());
    vlp_st_close(st);
    CHECK(vlp_st_open_memory(fb, 20, "mem-image") == NULL && contains(vlp_last_error(), "mem-image"),
          "open_memory truncated: %s", vlp_last_error());
    free(fb);
}

static void test_atomic(void) {
    char p[256], q[256];
    path_in_tmp(p, sizeof p, "atomic.safetensors");
    float a[4] = {1, 2, 3, 4}, b[6] = {9, 8, 7, 6, 5, 4};
    vlp_st_entry ea = {.name = "x", .data = a, .ndim = 1, .shape = {4}, .store_as = VLP_ST_F32};
    vlp_st_entry eb = {.name = "y", .data = b, .ndim = 2, .shape = {2, 3}, .store_as = VLP_ST_F32};
    CHECK(vlp_st_save(p, &ea, 1, NULL) == 0, "first save: %s", vlp_last_error());
    CHECK(vlp_st_save(p, &eb, 1, NULL) == 0, "save over existing: %s", vlp_last_error());
    vlp_safetensors *st = vlp_st_open(p);
    CHECK(st && vlp_st_count(st) == 1 && vlp_st_find(st, "y") == 0 && vlp_st_find(st, "x") == -1, "replaced");
    vlp_st_close(st);
    /* Replacing keeps the old file's permissions. */
    struct stat sb;
    chmod(p, 0600);
    CHECK(vlp_st_save(p, &eb, 1, NULL) == 0 && stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600,
          "mode kept on replace: %o", (unsigned)(sb.st_mode & 0777));
    CHECK(count_tmp_files() == 0, "no temp file after successful saves");

    /* Nonexistent directory: error names the path, nothing left behind. */
    path_in_tmp(q, sizeof q, "no/such/dir/x.safetensors");
    CHECK(vlp_st_save(q, &ea, 1, NULL) < 0 && contains(vlp_last_error(), "no/such/dir/x.safetensors"),
          "save into a missing dir: %s", vlp_last_error());

    /* Target is a non-empty directory: the data is written, then rename fails; the temp file goes. */
    path_in_tmp(q, sizeof q, "adir");
    mkdir(q, 0755);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep", q);
    write_file(inner, "k", 1);
    CHECK(vlp_st_save(q, &ea, 1, NULL) < 0 && contains(vlp_last_error(), "rename"), "rename over a dir: %s",
          vlp_last_error());
    CHECK(count_tmp_files() == 0, "temp file removed after a failed rename");
    unlink(inner);
    rmdir(q);

    /* Disk full, simulated with RLIMIT_FSIZE: the write fails part-way. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        int64_t big = 1 << 18; /* 1 MiB of F32 */
        float *z = calloc((size_t)big, 4);
        vlp_st_entry ez = {.name = "big", .data = z, .ndim = 1, .shape = {big}, .store_as = VLP_ST_F32};
        int rc = vlp_st_save(p, &ez, 1, NULL);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(rc < 0 && contains(vlp_last_error(), "write") && contains(vlp_last_error(), "atomic.safetensors"),
              "save past the size limit fails: %s", vlp_last_error());
        free(z);
    } else {
        CHECK(0, "setrlimit failed");
    }
    signal(SIGXFSZ, prev);
    CHECK(count_tmp_files() == 0, "temp file removed after a failed write");
    st = vlp_st_open(p);
    float y[6] = {0};
    CHECK(st && vlp_st_count(st) == 1 && vlp_st_read_f32(st, 0, y, 6) == 0 && y[0] == 9 && y[5] == 4,
          "old file intact after a failed save: %s", vlp_last_error());
    vlp_st_close(st);
    unlink(p);
}

typedef struct {
    const char *file, *json;
    size_t data_len;
    uint64_t hlen; /* 0 = strlen(json) */
    const char *want1, *want2;
} bad_case;

static void test_malformed(void) {
    /* A valid baseline first, so the battery tests what it says. */
    char p[256];
    path_in_tmp(p, sizeof p, "good.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"I8\",\"shape\":[],"
                "\"data_offsets\":[8,9]}}   ",
             9, 0);
    vlp_safetensors *st = vlp_st_open(p);
    CHECK(st && vlp_st_count(st) == 2, "baseline: %s", vlp_last_error());
    vlp_st_close(st);

#define T(x) "{\"t\":{\"dtype\":\"F32\",\"shape\":" x "}}"
    const bad_case cases[] = {
        {"bad_json.st", "{\"t\": {\"dtype\": \"F32\",", 0, 0, "JSON", NULL},
        {"bad_json2.st", "{\"t\":1} trailing", 0, 0, "JSON", NULL},
        {"bad_utf8.st", "{\"t\xff\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, 0, "JSON", NULL},
        {"not_object.st", "[1,2,3]", 0, 0, "object", NULL},
        {"not_object2.st", "\"hello\"", 0, 0, "object", NULL},
        {"entry_not_object.st", "{\"t\":[1]}", 0, 0, "'t'", "not a JSON object"},
        {"no_dtype.st", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "'t'", "dtype"},
        {"no_shape.st", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, 0, "'t'", "shape"},
        {"no_offsets.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, "'t'", "data_offsets"},
        {"unknown_dtype.st", "{\"t\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "unknown dtype",
         "F12"},
        {"dtype_not_string.st", "{\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "'t'", "dtype"},
        {"negative_dim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,4]}}", 4, 0, "negative", "'t'"},
        {"float_dim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, 0, "not an integer",
         "'t'"},
        {"too_many_dims.st", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0,
         "dims", "'t'"},
        {"shape_overflow.st",
         "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,4]}}", 4, 0,
         "overflow", "'t'"},
        {"shape_overflow2.st", "{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4, 0,
         "overflow", "'t'"},
        {"offsets_one.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0, "two integers", "'t'"},
        {"offsets_str.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4, 0, "two integers",
         "'t'"},
        {"offsets_neg.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, 0, "negative", "'t'"},
        {"begin_gt_end.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, 0, "begin", "'t'"},
        {"offsets_out_of_range.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0, "beyond",
         "'t'"},
        {"offsets_huge.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,9223372036854775804]}}",
         4, 0, "beyond", "'t'"},
        {"size_mismatch.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "size mismatch",
         "'t'"},
        {"overlap.st",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[4,12]}}",
         12, 0, "overlap", "'b'"},
        {"same_offsets.st",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[0,8]}}",
         8, 0, "overlap", NULL},
        {"gap.st",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[8,12]}}",
         12, 0, "gap", "'b'"},
        {"gap_start.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "gap", "'t'"},
        {"trailing.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, 0, "trailing", NULL},
        {"duplicate.st",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}",
         8, 0, "duplicate", "a"},
        {"meta_not_object.st", "{\"__metadata__\":[\"x\"]}", 0, 0, "__metadata__", "object"},
        {"meta_not_string.st", "{\"__metadata__\":{\"k\":1}}", 0, 0, "__metadata__", "'k'"},
        {"header_len_zero.st", "{}", 0, UINT64_MAX - UINT64_MAX, "", NULL}, /* replaced below */
        {"header_huge.st", "{}", 0, 1ull << 40, "header length", "too large"},
        {"header_max.st", "{}", 0, UINT64_MAX, "header length", "too large"},
        {"header_beyond.st", "{\"t\":{}}", 0, 200, "header length", "beyond"},
        {"header_nul.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}\0", 4, 0, "", NULL},
    };
#undef T
    int ncases = (int)(sizeof cases / sizeof *cases);
    for (int c = 0; c < ncases; c++) {
        bad_case bc = cases[c];
        path_in_tmp(p, sizeof p, bc.file);
        if (!strcmp(bc.file, "header_len_zero.st")) {
            unsigned char z[16] = {0};
            memcpy(z + 8, "{}      ", 8);
            write_file(p, z, 16);
            bc.want1 = "header length is 0";
        } else if (!strcmp(bc.file, "header_nul.st")) {
            /* A NUL byte inside the declared header. */
            const char *j = bc.json;
            size_t jl = strlen(j) + 1, n = 8 + jl + 4;
            unsigned char *b = calloc(n, 1);
            b[0] = (unsigned char)jl;
            memcpy(b + 8, j, jl);
            write_file(p, b, n);
            free(b);
            bc.want1 = "JSON";
        } else {
            write_st(p, bc.json, bc.data_len, bc.hlen);
        }
        vlp_safetensors *s = vlp_st_open(p);
        const char *msg = vlp_last_error();
        CHECK(s == NULL, "%s: opened a malformed file", bc.file);
        CHECK(s == NULL && contains(msg, bc.file) && contains(msg, bc.want1) && (!bc.want2 || contains(msg, bc.want2)),
              "%s: message \"%s\" lacks \"%s\"/\"%s\"", bc.file, msg, bc.want1, bc.want2 ? bc.want2 : "");
        vlp_st_close(s);
        unlink(p);
    }

    /* Files too short to hold the length, and no file at all. */
    path_in_tmp(p, sizeof p, "empty.st");
    write_file(p, "", 0);
    CHECK(vlp_st_open(p) == NULL && contains(vlp_last_error(), "empty.st") && contains(vlp_last_error(), "empty"),
          "empty file: %s", vlp_last_error());
    unlink(p);
    path_in_tmp(p, sizeof p, "short.st");
    write_file(p, "\x10\0\0\0\0", 5);
    CHECK(vlp_st_open(p) == NULL && contains(vlp_last_error(), "short.st") && contains(vlp_last_error(), "truncated"),
          "5-byte file: %s", vlp_last_error());
    unlink(p);
    path_in_tmp(p, sizeof p, "missing.st");
    CHECK(vlp_st_open(p) == NULL && contains(vlp_last_error(), "missing.st") && contains(vlp_last_error(), "cannot open"),
          "missing file: %s", vlp_last_error());
    CHECK(vlp_st_open(tmpdir) == NULL && contains(vlp_last_error(), "regular file"), "directory: %s", vlp_last_error());
    CHECK(vlp_st_open(NULL) == NULL && contains(vlp_last_error(), "NULL"), "NULL path");
    /* A FIFO is refused without blocking in open(). */
    path_in_tmp(p, sizeof p, "fifo.st");
    if (mkfifo(p, 0600) == 0) {
        CHECK(vlp_st_open(p) == NULL && contains(vlp_last_error(), "fifo.st") && contains(vlp_last_error(), "regular file"),
              "fifo: %s", vlp_last_error());
        unlink(p);
    }

    /* Every truncation of a real file fails cleanly (header cut, data cut). */
    size_t fn = 0;
    unsigned char *fb = slurp(MODEL, &fn);
    int opened = 0, bad_msgs = 0;
    size_t cuts[] = {0, 1, 7, 8, 9, 100, 9119, 9120, 9121, 10000, fn / 2, fn - 1};
    for (size_t k = 0; fb && k < sizeof cuts / sizeof *cuts; k++) {
        vlp_safetensors *s = vlp_st_open_memory(fb, cuts[k], "cut.safetensors");
        if (s) opened++;
        if (!contains(vlp_last_error(), "cut.safetensors")) bad_msgs++;
        vlp_st_close(s);
    }
    CHECK(opened == 0 && bad_msgs == 0, "truncated copies: %d opened, %d bad messages", opened, bad_msgs);
    /* One trailing byte too many is also rejected. */
    unsigned char *fb2 = fb ? malloc(fn + 1) : NULL;
    if (fb2) {
        memcpy(fb2, fb, fn);
        fb2[fn] = 0;
        CHECK(vlp_st_open_memory(fb2, fn + 1, "long.safetensors") == NULL && contains(vlp_last_error(), "trailing"),
              "extra byte: %s", vlp_last_error());
        st = vlp_st_open_memory(fb, fn, "whole.safetensors");
        CHECK(st && vlp_st_count(st) == 80, "whole image opens from memory");
        vlp_st_close(st);
    }
    free(fb2);
    free(fb);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlp_st_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temp dir\n");
        return 1;
    }
    test_fixtures();
    test_conversions();
    test_roundtrip();
    test_atomic();
    test_malformed();
    /* Clean up the temp dir (only files this test made). */
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(tmpdir);
    return test_finish();
}
