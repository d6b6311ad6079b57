/* Does a captioning model's decoder use the image? For N pairs spread evenly over a TSV
 * (filepath, caption; files are sorted by concept, so the first N would all be flags), the teacher-forced log-likelihood of each caption given its own image and given
 * another pair's image (the next one with a different caption), in nats per token. A decoder
 * that ignores the image scores both the same; the gap is what the image tells it.
 *
 * usage: caption_image_use MODEL_DIR PAIRS.tsv [N (200)]
 * (make bench-recipes runs it on the cap recipe for train, style and unseen)
 * Prints one JSON object: {"pairs", "tokens", "own_nats_per_token", "other_nats_per_token",
 * "gap", "own_better_share"}. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vlp.h"
#include "vlp_text.h"
#include "vlp_vl.h"

#define MAXP 4096

/* sum log p(ids[1..n) | image feat, ids[0]) with the key/value cache; *tokens += n - 1 */
static double caption_logp(const vlp_vl *m, const float *feat, const int32_t *ids, int n, long *tokens) {
    int V = m->cfg.vocab_size;
    vlp_vl_kv *kv = vlp_vl_kv_new(m, 1, n);
    float *lg = malloc((size_t)V * sizeof(float));
    double lp = 0;
    if (!kv || !lg || vlp_vl_kv_set_images(kv, feat, 1, NULL)) lp = NAN;
    for (int t = 0; !isnan(lp) && t + 1 < n; t++) {
        if (vlp_vl_kv_step(kv, ids + t, lg)) {
            lp = NAN;
            break;
        }
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++) z += exp((double)lg[v] - mx);
        lp += (double)lg[ids[t + 1]] - mx - log(z);
        (*tokens)++;
    }
    vlp_vl_kv_free(kv);
    free(lg);
    return lp;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: caption_image_use MODEL_DIR PAIRS.tsv [N]\n");
        return 2;
    }
    int N = argc > 3 ? atoi(argv[3]) : 200;
    if (N < 2 || N > MAXP) N = 200;
    vlp_vl *m = vlp_vl_load(argv[1]);
    if (!m || m->cfg.family != VLP_VL_CAPTION) {
        fprintf(stderr, "caption_image_use: %s: %s\n", argv[1], m ? "not a captioning model" : vlp_last_error());
        return 1;
    }
    vlp_tokenizer *tok = vlp_vl_tokenizer_load(&m->cfg, argv[1], NULL);
    FILE *f = fopen(argv[2], "r");
    if (!tok || !f) {
        fprintf(stderr, "caption_image_use: %s\n", !tok ? vlp_last_error() : "cannot open the data file");
        return 1;
    }
    /* image paths in the TSV are relative to its directory */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    static char paths[MAXP][1200], caps[MAXP][256];
    char line[1024];
    long total = 0;
    while (fgets(line, sizeof line, f)) total += strncmp(line, "filepath", 8) != 0;
    rewind(f);
    long every = total > N ? total / N : 1, k = 0;
    int n = 0;
    while (n < N && fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab || !strncmp(line, "filepath", 8)) continue;
        if (k++ % every) continue;
        *tab = 0;
        tab[1 + strcspn(tab + 1, "\r\n")] = 0;
        snprintf(paths[n], sizeof paths[n], "%s%s", line[0] == '/' ? "" : dir, line);
        snprintf(caps[n], sizeof caps[n], "%.255s", tab + 1);
        n++;
    }
    fclose(f);
    int S = m->cfg.image_size, N1 = vlp_vl_image_tokens(m), W = m->cfg.vision_width, T = m->cfg.max_text_len;
    float *px = malloc((size_t)3 * S * S * sizeof(float)), *feat = malloc((size_t)n * N1 * W * sizeof(float));
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        if (vlp_vl_load_pixels(m, paths[i], px) || vlp_vl_image_features(m, px, 1, feat + (size_t)i * N1 * W)) {
            fprintf(stderr, "caption_image_use: %s: %s\n", paths[i], vlp_last_error());
            return 1;
        }
    double own = 0, other = 0;
    long tok_own = 0, tok_other = 0;
    int better = 0, used = 0;
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n; /* the next pair whose caption differs */
        while (j != i && !strcmp(caps[j], caps[i])) j = (j + 1) % n;
        if (j == i) continue;
        /* [CLS] caption [SEP]: the same token ids the LM objective trains on */
        int32_t type[64];
        int32_t mask[64];
        int len = vlp_tokenizer_encode_pair(tok, caps[i], NULL, T < 64 ? T : 64, ids, type, mask);
        if (len < 2) continue;
        ids[0] = m->cfg.bos_id;
        double a = caption_logp(m, feat + (size_t)i * N1 * W, ids, len, &tok_own);
        double b = caption_logp(m, feat + (size_t)j * N1 * W, ids, len, &tok_other);
        own += a, other += b, better += a > b, used++;
    }
    printf("{\"pairs\": %d, \"tokens\": %ld, \"own_nats_per_token\": %.4f, \"other_nats_per_token\": %.4f, "
           "\"gap\": %.4f, \"own_better_share\": %.4f}\n",
           used, tok_own, -own / (double)tok_own, -other / (double)tok_other,
           (own / (double)tok_own) - (other / (double)tok_other), used ? (double)better / used : 0.0);
    free(px);
    free(feat);
    free(ids);
    vlp_tokenizer_free(tok);
    vlp_vl_free(m);
    return 0;
}
