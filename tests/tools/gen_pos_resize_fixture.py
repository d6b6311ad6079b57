#!/usr/bin/env python3
"""Reference for vlp_pos_embed_resize (src/train/finetune.c): torch's bicubic interpolation
(align_corners=False, as ViT fine-tuning resamples position embeddings) of a D x g x g grid.
Writes tests/fixtures/finetune/pos_resize.txt: per case a line "gin gout dim", then the input
(gin*gin rows of dim numbers, row-major grid order) and the output (gout*gout rows).
Run with /usr/bin/python3 (torch); the test never imports torch."""
import math
import torch
import torch.nn.functional as F

cases = [(2, 4, 3), (3, 5, 2), (8, 16, 4), (8, 24, 2), (4, 3, 2)]
lines = []
for gin, gout, dim in cases:
    x = torch.tensor([[math.sin(0.7 * i + 1.3 * j + 0.9 * d) + 0.1 * d for i in range(gin) for j in range(gin)]
                      for d in range(dim)], dtype=torch.float64).reshape(1, dim, gin, gin)
    y = F.interpolate(x, size=(gout, gout), mode="bicubic", align_corners=False)
    lines.append(f"{gin} {gout} {dim}")
    xin = x.reshape(dim, gin * gin).T
    yout = y.reshape(dim, gout * gout).T
    lines += [" ".join(f"{v:.9g}" for v in row.tolist()) for row in xin]
    lines += [" ".join(f"{v:.9g}" for v in row.tolist()) for row in yout]
open("tests/fixtures/finetune/pos_resize.txt", "w").write("\n".join(lines) + "\n")
