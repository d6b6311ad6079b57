/* The CLIP BPE merges (assets/bpe_simple_vocab_16e6.txt.gz, MIT, OpenAI) built into libvlp,
 * so the CLI needs no data files. The path is relative to the repository root, where make
 * runs the compiler. */
#include <stddef.h>

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".global vlp_bpe_vocab_gz\n"
        ".hidden vlp_bpe_vocab_gz\n"
        "vlp_bpe_vocab_gz:\n"
        ".incbin \"assets/bpe_simple_vocab_16e6.txt.gz\"\n"
        ".global vlp_bpe_vocab_gz_end\n"
        ".hidden vlp_bpe_vocab_gz_end\n"
        "vlp_bpe_vocab_gz_end:\n"
        ".previous\n");
