/* stb_image, BMP only, compiled privately (static functions) for decode.c. */
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 24)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__) /* stb's unused static declarations are reported at the end of the file */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <stb_image.h>

#include <stddef.h>
#include <stdint.h>

/* Header only: 1 and the size on success. */
int vlp__bmp_info(const uint8_t *data, size_t size, int *w, int *h, int *comp) {
    if (size > 0x7fffffff) return 0;
    return stbi_info_from_memory(data, (int)size, w, h, comp);
}

/* Pixels (malloc'd, *comp channels: 3 or 4) or NULL with *why set. */
uint8_t *vlp__bmp_decode(const uint8_t *data, size_t size, int *w, int *h, int *comp, const char **why) {
    if (size > 0x7fffffff) {
        *why = "file too large";
        return NULL;
    }
    int c = 0;
    uint8_t *p = stbi_load_from_memory(data, (int)size, w, h, &c, 0);
    if (!p) {
        *why = stbi_failure_reason();
        return NULL;
    }
    if (c == 3 || c == 4) {
        *comp = c;
        return p;
    }
    /* grey (1) or grey+alpha (2) layouts are not produced for BMP; expand anyway */
    uint8_t *q = stbi_load_from_memory(data, (int)size, w, h, &c, 3);
    stbi_image_free(p);
    if (!q) {
        *why = stbi_failure_reason();
        return NULL;
    }
    *comp = 3;
    return q;
}

void vlp__bmp_free(void *p) { stbi_image_free(p); }
