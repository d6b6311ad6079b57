/* The bert-base-uncased WordPiece vocabulary (assets/bert-base-uncased-vocab.txt,
 * Apache-2.0, Google) built into libvlp, so the CLI needs no data files. The path is
 * relative to the repository root, where make runs the compiler. */
#include <stddef.h>

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".global vlp_wordpiece_vocab_txt\n"
        ".hidden vlp_wordpiece_vocab_txt\n"
        "vlp_wordpiece_vocab_txt:\n"
        ".incbin \"assets/bert-base-uncased-vocab.txt\"\n"
        ".global vlp_wordpiece_vocab_txt_end\n"
        ".hidden vlp_wordpiece_vocab_txt_end\n"
        "vlp_wordpiece_vocab_txt_end:\n"
        ".previous\n");
