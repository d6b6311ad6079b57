/* vlp info MODEL: what a checkpoint holds (config, parameter count, tensor dtypes). */
#include "cli.h"
#include "vlp_clip.h"
#include "vlp_safetensors.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path as a JSON string body (quotes, backslashes and control characters escaped) */
static void json_escape(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') out[n++] = '\\', out[n++] = (char)c;
        else if (c < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else out[n++] = (char)c;
    }
    out[n] = 0;
}

static const char *act_name(int a) { return a == VLP_ACT_QUICK_GELU ? "quick_gelu" : a == VLP_ACT_GELU ? "gelu" : "gelu_tanh"; }

int vlp_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: vlp info [--json] MODEL\n"
                   "MODEL: a directory (model.safetensors + config.json, or open_clip_model.safetensors +\n"
                   "open_clip_config.json) or a .safetensors file. Prints the family, the config, the\n"
                   "parameter count and the dtypes of the stored tensors.\n");
            return CLI_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "vlp info: unexpected argument '%s' (see vlp info --help)\n", argv[i]);
            return CLI_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "vlp info: which model? (vlp info MODEL)\n");
        return CLI_USAGE;
    }
    int vl = vlp_info_vl(path, json); /* fusion / captioning models: cmd_fusion.c */
    if (vl >= 0) return vl;
    vlp_clip *m = vlp_clip_load(path);
    if (!m) {
        fprintf(stderr, "vlp info: %s\n", vlp_last_error());
        return CLI_FAIL;
    }
    /* dtype census of the file the weights came from */
    char file[4200];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (access(file, R_OK)) snprintf(file, sizeof file, "%s/open_clip_model.safetensors", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    int counts[VLP_ST_DTYPE_COUNT] = {0}, ntensors = 0;
    vlp_safetensors *st = vlp_st_open(file);
    if (st) {
        ntensors = vlp_st_count(st);
        for (int i = 0; i < ntensors; i++) {
            vlp_st_dtype dt;
            int nd;
            int64_t shape[VLP_ST_MAX_DIMS];
            if (!vlp_st_info(st, i, &dt, &nd, shape) && dt < VLP_ST_DTYPE_COUNT) counts[dt]++;
        }
        vlp_st_close(st);
    }
    const vlp_clip_config *c = &m->cfg;
    char dtypes[512] = "";
    for (int d = 0; d < VLP_ST_DTYPE_COUNT; d++)
        if (counts[d])
            snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), json ? "%s\"%s\": %d" : "%s%s x%d",
                     dtypes[0] ? ", " : "", vlp_st_dtype_name((vlp_st_dtype)d), counts[d]);
    if (json) {
        char jfile[8500];
        json_escape(jfile, sizeof jfile, file);
        printf("{\"family\": \"clip\", \"architecture\": \"dual encoder\", \"objectives\": [\"itc\"], \"layout\": \"%s\", "
               "\"file\": \"%s\", \"parameters\": %lld, \"tensors\": %d, \"dtypes\": {%s}, \"embed_dim\": %d, "
               "\"image_size\": %d, \"patch_size\": %d, \"vision_width\": %d, \"vision_layers\": %d, "
               "\"vision_heads\": %d, \"vision_mlp\": %d, \"vision_act\": \"%s\", \"context_length\": %d, "
               "\"vocab_size\": %d, \"text_width\": %d, \"text_layers\": %d, \"text_heads\": %d, \"text_mlp\": %d, "
               "\"text_act\": \"%s\", \"logit_scale\": %.6g}\n",
               m->source, jfile, (long long)vlp_clip_param_count(m), ntensors, dtypes, c->embed_dim, c->image_size,
               c->patch_size, c->vision_width, c->vision_layers, c->vision_heads, c->vision_mlp,
               act_name(c->vision_act), c->context_length, c->vocab_size, c->text_width, c->text_layers,
               c->text_heads, c->text_mlp, act_name(c->text_act), (double)*(float *)m->logit_scale->data);
    } else {
        printf("model        %s\n", path);
        printf("family       CLIP (dual encoder; objective: image-text contrastive)\n");
        printf("layout       %s (%s)\n", !strcmp(m->source, "hf") ? "Hugging Face CLIPModel" : "OpenAI / open_clip", file);
        printf("parameters   %lld (%.1f M)\n", (long long)vlp_clip_param_count(m), vlp_clip_param_count(m) / 1e6);
        printf("tensors      %d stored: %s\n", ntensors, dtypes);
        printf("image tower  ViT %dx%d, patch %d, width %d, %d layers, %d heads, MLP %d, %s\n", c->image_size,
               c->image_size, c->patch_size, c->vision_width, c->vision_layers, c->vision_heads, c->vision_mlp,
               act_name(c->vision_act));
        int wp = c->tokenizer == VLP_TOKENIZER_WORDPIECE;
        printf("text tower   context %d, vocab %d (%s), width %d, %d layers, %d heads, MLP %d, %s, causal, pooled at %s\n",
               c->context_length, c->vocab_size, wp ? "WordPiece" : "CLIP BPE", c->text_width, c->text_layers,
               c->text_heads, c->text_mlp, act_name(c->text_act), wp ? "the first [SEP]" : "<|endoftext|>");
        if (wp) printf("vocabulary   %s\n", m->vocab[0] ? m->vocab : "bert-base-uncased (built in)");
        printf("embedding    %d, logit scale exp(%.4f) = %.2f\n", c->embed_dim, (double)*(float *)m->logit_scale->data,
               exp((double)*(float *)m->logit_scale->data));
    }
    vlp_clip_free(m);
    return CLI_OK;
}
