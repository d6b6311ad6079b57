/* The emoji packages: a cache of npm tarballs, fetched with the npm client and verified
 * against the size and SHA-1 npm reports (kept next to each tarball as NAME-VERSION.json),
 * so that an interrupted or damaged download is noticed and fetched again. */
#include "emoji_internal.h"
#include "internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const vendor_names[VLP_EMOJI_NVENDORS] = {"apple", "google", "facebook", "twitter"};

const char *vlp_emoji_vendor_name(int v) { return v >= 0 && v < VLP_EMOJI_NVENDORS ? vendor_names[v] : "?"; }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- SHA-1 (FIPS 180-4), enough to compare with npm's shasum ------------------------ */
typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t block[64];
    size_t fill;
} sha1_ctx;

static uint32_t rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block(sha1_ctx *s, const uint8_t *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20)
            f = (b & c) | (~b & d), k = 0x5a827999u;
        else if (t < 40)
            f = b ^ c ^ d, k = 0x6ed9eba1u;
        else if (t < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdcu;
        else
            f = b ^ c ^ d, k = 0xca62c1d6u;
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d, d = c, c = rol(b, 30), b = a, a = tmp;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1_init(sha1_ctx *s) {
    static const uint32_t h0[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->fill = 0;
}

static void sha1_update(sha1_ctx *s, const uint8_t *p, size_t n) {
    s->len += n;
    if (s->fill) {
        size_t k = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->block + s->fill, p, k);
        s->fill += k, p += k, n -= k;
        if (s->fill < 64) return;
        sha1_block(s, s->block);
        s->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha1_block(s, p);
    memcpy(s->block, p, n);
    s->fill = n;
}

static void sha1_final(sha1_ctx *s, char hex[41]) {
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t npad = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(s, pad, npad + 8);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned)(s->h[i / 4] >> (24 - 8 * (i % 4))) & 0xffu);
}

void emoji_sha1(const void *data, size_t n, char hex[41]) {
    sha1_ctx s;
    sha1_init(&s);
    sha1_update(&s, data, n);
    sha1_final(&s, hex);
}

int emoji_sha1_file(const char *path, char hex[41]) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vlp_set_error("%s: %s", path, strerror(errno));
        return VLP_ERR_IO;
    }
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        vlp_set_error("%s: out of memory", path);
        return VLP_ERR_NOMEM;
    }
    sha1_ctx s;
    sha1_init(&s);
    size_t k;
    while ((k = fread(buf, 1, CHUNK, f)) > 0) sha1_update(&s, buf, k);
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) {
        vlp_set_error("%s: read error", path);
        return VLP_ERR_IO;
    }
    sha1_final(&s, hex);
    return 0;
}

/* ---- cache ------------------------------------------------------------------------------ */
int vlp_emoji_default_cache(char *buf, size_t n) {
    const char *v = getenv("VLP_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int k;
    if (v && *v)
        k = snprintf(buf, n, "%s/npm", v);
    else if (x && *x)
        k = snprintf(buf, n, "%s/vlp/npm", x);
    else if (h && *h)
        k = snprintf(buf, n, "%s/.cache/vlp/npm", h);
    else {
        vlp_set_error("emoji: no cache directory (set VLP_CACHE, XDG_CACHE_HOME or HOME, or pass one)");
        return VLP_ERR_ARG;
    }
    if (k < 0 || (size_t)k >= n) {
        vlp_set_error("emoji: cache path too long");
        return VLP_ERR_ARG;
    }
    return 0;
}

/* Checks a tarball against its `npm pack --json` record. 0: good; otherwise why[] says
 * what is wrong (the caller decides between refetching and failing). */
static int verify(emoji_package *pk, const char *side, char *why, size_t nwhy) {
    json_error_t jerr;
    json_t *root = json_load_file(side, 0, &jerr);
    if (!root) {
        snprintf(why, nwhy, "%s: %s (line %d)", side, jerr.text, jerr.line);
        return -1;
    }
    json_t *o = json_is_array(root) ? json_array_get(root, 0) : NULL;
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *version = json_string_value(json_object_get(o, "version"));
    const char *shasum = json_string_value(json_object_get(o, "shasum"));
    const char *integrity = json_string_value(json_object_get(o, "integrity"));
    json_t *size = json_object_get(o, "size");
    int rc = -1;
    if (!o || !name || !version || !shasum || !json_is_integer(size)) {
        snprintf(why, nwhy, "%s: not the output of `npm pack --json` (name, version, size, shasum)", side);
    } else if (strcmp(name, pk->name) || strcmp(version, pk->version)) {
        snprintf(why, nwhy, "%s: describes %s@%s, not %s@%s", side, name, version, pk->name, pk->version);
    } else if (strlen(shasum) != 40) {
        snprintf(why, nwhy, "%s: shasum '%s' is not a SHA-1", side, shasum);
    } else {
        snprintf(pk->shasum, sizeof pk->shasum, "%s", shasum);
        for (char *p = pk->shasum; *p; p++) *p = (char)tolower((unsigned char)*p);
        snprintf(pk->integrity, sizeof pk->integrity, "%s", integrity ? integrity : "");
        pk->size = (int64_t)json_integer_value(size);
        rc = 0;
    }
    json_decref(root);
    if (rc) return rc;

    struct stat sb;
    if (stat(pk->tgz, &sb)) {
        snprintf(why, nwhy, "%s: %s", pk->tgz, strerror(errno));
        return -1;
    }
    if ((int64_t)sb.st_size != pk->size) {
        snprintf(why, nwhy, "%s: %lld bytes, npm reported %lld (partial download?)", pk->tgz, (long long)sb.st_size,
                 (long long)pk->size);
        return -1;
    }
    /* Verified before and untouched since (same size, mtime and record): skip the hashing. */
    char stamp[EMOJI_PATH + 16], line[160], want[160];
    snprintf(stamp, sizeof stamp, "%s.verified", pk->tgz);
    snprintf(want, sizeof want, "%lld %lld.%09ld %s\n", (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
             (long)sb.st_mtim.tv_nsec, pk->shasum);
    FILE *sf = fopen(stamp, "r");
    int stamped = sf && fgets(line, sizeof line, sf) && !strcmp(line, want);
    if (sf) fclose(sf);
    if (stamped) return 0;
    unlink(stamp);
    char hex[41];
    if (emoji_sha1_file(pk->tgz, hex)) {
        snprintf(why, nwhy, "%s", vlp_last_error());
        return -1;
    }
    if (strcmp(hex, pk->shasum)) {
        snprintf(why, nwhy, "%s: SHA-1 %s, npm reported %s (damaged download?)", pk->tgz, hex, pk->shasum);
        return -1;
    }
    /* A readable gzip'd tar with the entry list. */
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(why, nwhy, "%s: out of memory", pk->tgz);
        return -1;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    rc = -1;
    if (archive_read_open_filename(a, pk->tgz, 1 << 16) != ARCHIVE_OK) {
        snprintf(why, nwhy, "%s: %s", pk->tgz, archive_error_string(a));
    } else {
        struct archive_entry *ent;
        int r;
        while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
            if (!strcmp(archive_entry_pathname(ent), "package/emoji.json")) {
                rc = 0;
                break;
            }
            archive_read_data_skip(a);
        }
        if (rc) {
            if (r == ARCHIVE_EOF)
                snprintf(why, nwhy, "%s: no package/emoji.json in the tarball", pk->tgz);
            else
                snprintf(why, nwhy, "%s: %s", pk->tgz, archive_error_string(a));
        }
    }
    archive_read_free(a);
    if (!rc) emoji_write_atomic(stamp, want, strlen(want)); /* only a shortcut: failure is harmless */
    return rc;
}

/* Runs `npm pack --json --loglevel=warn --pack-destination . SPEC` inside the cache with
 * stdout into json_out. */
static int run_npm(const char *npm, const char *cache, const char *spec, const char *json_out) {
    pid_t pid = fork();
    if (pid < 0) {
        vlp_set_error("emoji: cannot start npm: %s", strerror(errno));
        return VLP_ERR_IO;
    }
    if (pid == 0) {
        int fd = open(json_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || chdir(cache)) _exit(126);
        close(fd);
        execlp(npm, npm, "pack", "--json", "--loglevel=warn", "--pack-destination", ".", spec, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            vlp_set_error("emoji: waiting for npm: %s", strerror(errno));
            return VLP_ERR_IO;
        }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        vlp_set_error("emoji: cannot run '%s' to fetch %s: install Node.js with npm (Debian: apt-get install npm), "
                      "or set VLP_NPM, or put the tarballs in %s",
                      npm, spec, cache);
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 126)
        vlp_set_error("emoji: cannot write %s", json_out);
    else
        vlp_set_error("emoji: `%s pack %s` failed (exit %d; see its messages above; is the npm registry reachable?)",
                      npm, spec, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return VLP_ERR_IO;
}

int emoji_prepare_packages(const vlp_emoji_options *opt, emoji_package pk[VLP_EMOJI_NVENDORS], vlp_emoji_report *rep) {
    double t0 = now_seconds();
    char cache[EMOJI_PATH - 256]; /* room for the file names */
    const char *version = opt->version ? opt->version : VLP_EMOJI_VERSION;
    if (opt->cache_dir) {
        if (snprintf(cache, sizeof cache, "%s", opt->cache_dir) >= (int)sizeof cache) {
            vlp_set_error("emoji: cache path too long");
            return VLP_ERR_ARG;
        }
    } else if (vlp_emoji_default_cache(cache, sizeof cache)) {
        return VLP_ERR_ARG;
    }
    if (strlen(version) > 40) {
        vlp_set_error("emoji: package version too long");
        return VLP_ERR_ARG;
    }
    for (const char *p = version; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-+_", *p)) {
            vlp_set_error("emoji: bad package version '%s'", version);
            return VLP_ERR_ARG;
        }
    const char *npm = opt->npm ? opt->npm : getenv("VLP_NPM");
    if (!npm || !*npm) npm = "npm";
    int made_dir = 0;
    for (int v = 0; v < VLP_EMOJI_NVENDORS; v++) {
        emoji_package *p = &pk[v];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "emoji-datasource-%s", vendor_names[v]);
        snprintf(p->version, sizeof p->version, "%s", version);
        char side[EMOJI_PATH + 80], tmp[EMOJI_PATH + 90], why[EMOJI_PATH + 256];
        snprintf(p->tgz, sizeof p->tgz, "%s/%s-%s.tgz", cache, p->name, version);
        snprintf(side, sizeof side, "%s/%s-%s.json", cache, p->name, version);
        if (!verify(p, side, why, sizeof why)) continue;
        if (opt->offline) {
            vlp_set_error("emoji: %s@%s is not usable in the cache (%s) and fetching is off", p->name, version, why);
            return VLP_ERR_IO;
        }
        if (!made_dir && emoji_mkdirs(cache)) return VLP_ERR_IO;
        made_dir = 1;
        /* The record is renamed into place only after the tarball verifies against it. */
        unlink(side);
        unlink(p->tgz);
        snprintf(tmp, sizeof tmp, "%s.tmp", side);
        char spec[160];
        snprintf(spec, sizeof spec, "%s@%s", p->name, version);
        if (opt->progress) opt->progress(opt->progress_ctx, spec, 0, 1);
        int rc = run_npm(npm, cache, spec, tmp);
        if (rc) {
            unlink(tmp);
            return rc;
        }
        if (verify(p, tmp, why, sizeof why)) {
            unlink(tmp);
            vlp_set_error("emoji: fetched %s but it does not verify: %s", spec, why);
            return VLP_ERR_IO;
        }
        if (rename(tmp, side)) {
            vlp_set_error("emoji: cannot rename %s: %s", tmp, strerror(errno));
            return VLP_ERR_IO;
        }
        if (rep) rep->fetched++;
        if (opt->progress) opt->progress(opt->progress_ctx, spec, 1, 1);
    }
    if (rep) rep->fetch_seconds += now_seconds() - t0;
    return 0;
}

int vlp_emoji_fetch(const vlp_emoji_options *opt, vlp_emoji_report *rep) {
    if (!opt) {
        vlp_set_error("vlp_emoji_fetch: options are NULL");
        return VLP_ERR_ARG;
    }
    emoji_package pk[VLP_EMOJI_NVENDORS];
    return emoji_prepare_packages(opt, pk, rep);
}
