/* vlp init: a randomly initialised CLIP of any config (how benchmarks get a
 * full-size model without downloads), saved in the Hugging Face layout. */
#include "cli.h"
#include "vlp_clip.h"

#include <string.h>

int vlp_cmd_init(int argc, char **argv) {
    const char *config = NULL, *preset = NULL, *out = NULL;
    long seed = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: vlp init (--config FILE.json | --preset NAME) [--seed N] OUT_DIR\n"
                   "Writes OUT_DIR/model.safetensors and OUT_DIR/config.json (Hugging Face CLIPModel layout)\n"
                   "with OpenAI's initialisation. Presets: ViT-B-32, ViT-B-16, ViT-L-14, tiny.\n"
                   "FILE.json: a Hugging Face config.json, an open_clip model config, or vlp's flat form, e.g.\n"
                   "  {\"preset\": \"ViT-B-32\", \"text_layers\": 6}\n"
                   "  {\"embed_dim\": 128, \"image_size\": 64, \"patch_size\": 8, \"vision_width\": 128,\n"
                   "   \"vision_layers\": 4, \"vision_heads\": 2, \"context_length\": 32, \"text_width\": 128,\n"
                   "   \"text_layers\": 4, \"text_heads\": 2, \"act\": \"quick_gelu\"}\n");
            return CLI_OK;
        } else if (!strcmp(a, "--config")) {
            if (!(config = cli_value("init", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--preset")) {
            if (!(preset = cli_value("init", argc, argv, &i))) return CLI_USAGE;
        } else if (!strcmp(a, "--seed")) {
            const char *v = cli_value("init", argc, argv, &i);
            if (!v || !cli_int("init", "--seed", v, 0, 2147483647L, &seed)) return CLI_USAGE;
        } else if (a[0] == '-' || out) {
            fprintf(stderr, "vlp init: unexpected argument '%s' (see vlp init --help)\n", a);
            return CLI_USAGE;
        } else {
            out = a;
        }
    }
    if (!out || (!config == !preset)) {
        fprintf(stderr, "vlp init: give one of --config FILE or --preset NAME, and OUT_DIR\n");
        return CLI_USAGE;
    }
    vlp_clip_config cfg;
    if (config ? vlp_clip_config_load(config, &cfg) : vlp_clip_preset(preset, &cfg)) {
        fprintf(stderr, "vlp init: %s\n", vlp_last_error());
        return preset ? CLI_USAGE : CLI_FAIL;
    }
    vlp_clip *m = vlp_clip_new(&cfg, (uint64_t)seed);
    if (!m || vlp_clip_save(m, out)) {
        fprintf(stderr, "vlp init: %s\n", vlp_last_error());
        vlp_clip_free(m);
        return CLI_FAIL;
    }
    printf("wrote %s (%.1f M parameters)\n", out, vlp_clip_param_count(m) / 1e6);
    vlp_clip_free(m);
    return CLI_OK;
}
