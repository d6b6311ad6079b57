/* Caption decoding cost: key/value-cached steps (src/models/decode.c) against the full
 * decoder forward the graph would run, on a captioning model with a 4-layer, 256-wide
 * decoder (BERT vocabulary, 30522) and random weights; one image, one thread.
 *
 * make BUILD=build && gcc -O2 -fopenmp -Iinclude bench/vl_decode.c build/libvlp.a \
 *     -fopenmp -lutf8proc -ljansson -lpng -ljpeg -lwebp -lgif -larchive -lpthread -lz -lm -o /tmp/vl_decode
 * /tmp/vl_decode        (best of 5 runs each) */
#include "vlp.h"
#include "vlp_vl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    vlp_set_threads(1);
    vlp_vl_config c;
    vlp_vl_preset("blip-tiny", &c);
    c.width = c.vision_width = 256;
    c.heads = c.vision_heads = 4;
    c.mlp = c.vision_mlp = 1024;
    c.layers = c.vision_layers = 4;
    c.vocab_size = 30522;
    c.max_text_len = 40;
    c.image_size = 64;
    c.patch_size = 16;
    vlp_vl *m = vlp_vl_new(&c, 1);
    if (!m) {
        fprintf(stderr, "%s\n", vlp_last_error());
        return 1;
    }
    int T = 32, N1 = vlp_vl_image_tokens(m), V = c.vocab_size, W = c.vision_width;
    float *img = malloc(sizeof(float) * (size_t)N1 * W), *out = malloc(sizeof(float) * (size_t)V * 3);
    for (int i = 0; i < N1 * W; i++) img[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
    /* the full forward over T tokens (what recomputing every prefix would repeat per token) */
    vlp_graph *g = vlp_graph_new();
    int64_t si[3] = {1, N1, W}, st[2] = {1, T};
    vlp_tensor *ti = vlp_input(g, "img", VLP_F32, 3, si), *ids = vlp_input(g, "ids", VLP_I32, 2, st),
               *mk = vlp_input(g, "mask", VLP_I32, 2, st);
    vlp_tensor *lg = vlp_vl_caption_logits(g, m, ti, ids, mk);
    if (!lg || vlp_graph_build(g, lg, VLP_BUILD_INFERENCE)) {
        fprintf(stderr, "%s\n", vlp_graph_error(g) ? vlp_graph_error(g) : vlp_last_error());
        return 1;
    }
    memcpy(ti->data, img, sizeof(float) * (size_t)N1 * W);
    for (int t = 0; t < T; t++) ((int32_t *)ids->data)[t] = 1000 + t, ((int32_t *)mk->data)[t] = 1;
    double full = 1e9, cached = 1e9, beam = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        vlp_graph_forward(g);
        full = now() - t0 < full ? now() - t0 : full;
    }
    vlp_vl_kv *kv1 = vlp_vl_kv_new(m, 1, T), *kv3 = vlp_vl_kv_new(m, 3, T);
    int zero[3] = {0, 0, 0};
    for (int r = 0; r < 5; r++) {
        vlp_vl_kv_set_images(kv1, img, 1, NULL);
        double t0 = now();
        for (int t = 0; t < T; t++) {
            int32_t tok = 1000 + t;
            vlp_vl_kv_step(kv1, &tok, out);
        }
        cached = now() - t0 < cached ? now() - t0 : cached;
        vlp_vl_kv_set_images(kv3, img, 1, zero);
        t0 = now();
        for (int t = 0; t < T; t++) {
            int32_t tok[3] = {1000 + t, 2000 + t, 3000 + t};
            vlp_vl_kv_step(kv3, tok, out);
        }
        beam = now() - t0 < beam ? now() - t0 : beam;
    }
    printf("decoder 4 x 256, vocab %d, %d tokens, 1 thread:\n", V, T);
    printf("  full forward of %d tokens          %8.2f ms\n", T, full * 1e3);
    printf("  %d cached steps, 1 row            %8.2f ms  (%.2f ms/token)\n", T, cached * 1e3, cached * 1e3 / T);
    printf("  %d cached steps, 3 rows (beam 3)  %8.2f ms  (%.2f ms/token/row)\n", T, beam * 1e3, beam * 1e3 / T / 3);
    printf("  recomputing every prefix instead  ~%7.0f ms  (sum of full forwards over lengths 1..%d)\n",
           full * 1e3 * (T + 1) / 2, T);
    vlp_vl_kv_free(kv1);
    vlp_vl_kv_free(kv3);
    vlp_graph_free(g);
    vlp_vl_free(m);
    free(img);
    free(out);
    return 0;
}
