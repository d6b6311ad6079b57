#!/usr/bin/python3
"""Markdown rows for bench/run.sh from the benchmarks' JSON lines (kept out of the shell
script so the f-strings need no quote escaping, which Python 3.11 does not allow).

  summarize.py gemm < gemm_shapes output
  summarize.py train VLP_JSON TORCH_JSON PEAK
  summarize.py clip VLP_JSON TORCH_JSON PEAK
  summarize.py tokenizer TOKENIZER_JSON
  summarize.py image IMAGE_JSON_LINES CLIP_VLP_JSON
"""
import json
import sys


def gemm():
    for line in sys.stdin:
        r = json.loads(line)
        print(f"| {r['shape']} | {r['op']} | {r['M']} x {r['N']} x {r['K']} | {r['gflops']:.0f} | {r['pct_peak']:.0f}% |")


def train(v, t, peak):
    v, t, peak = json.loads(v), json.loads(t), float(peak)
    g = v["gflop_per_step"] / v["median_s"]
    print(f"| {v['width']} | {v['median_s']:.3f} | {t['median_s']:.3f} | {t['median_s'] / v['median_s']:.2f}x "
          f"| {g:.0f} | {100 * g / peak:.0f}% |")


def clip(v, t, peak):
    v, t, peak = json.loads(v), json.loads(t), float(peak)
    g = v["image_gflop"]
    print("| workload | vlp | PyTorch | vlp speed-up | vlp GFLOP/s | vlp % of peak |")
    print("|---|---:|---:|---:|---:|---:|")
    b1 = 1e3 * g / v["image_b1_ms"]
    print(f"| image, batch 1 (ms/image) | {v['image_b1_ms']:.1f} | {t['image_b1_ms']:.1f} "
          f"| {t['image_b1_ms'] / v['image_b1_ms']:.2f}x | {b1:.0f} | {100 * b1 / peak:.0f}% |")
    b32 = g * v["image_b32_per_s"]
    print(f"| image, batch 32 (images/s) | {v['image_b32_per_s']:.1f} | {t['image_b32_per_s']:.1f} "
          f"| {v['image_b32_per_s'] / t['image_b32_per_s']:.2f}x | {b32:.0f} | {100 * b32 / peak:.0f}% |")
    print(f"| text, batch 32 (texts/s) | {v['text_b32_per_s']:.1f} | {t['text_b32_per_s']:.1f} "
          f"| {v['text_b32_per_s'] / t['text_b32_per_s']:.2f}x | | |")
    print()
    print(f"{g:.2f} GFLOP per image (matmuls and patch embedding). vlp's features of the shared test inputs "
          f"against PyTorch's: max abs diff per row / row norm {v['check_image']:.1e} (image), "
          f"{v['check_text']:.1e} (text).")


def tokenizer(r):
    r = json.loads(r)
    print("| vocabulary load | tokens/s, cold cache | tokens/s, warm cache | texts/s, warm | texts/s to 77-id model input |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {r['load_ms']:.0f} ms | {r['cold_tokens_per_s'] / 1e6:.2f} M | {r['warm_tokens_per_s'] / 1e6:.2f} M "
          f"| {r['warm_texts_per_s'] / 1e3:.0f} k | {r['context77_texts_per_s'] / 1e3:.0f} k |")


def image(lines, clip_v):
    rows = [json.loads(x) for x in lines.splitlines() if x.strip()]
    c = json.loads(clip_v)
    print("| image | size | decode ms | preprocess ms | images/s |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['image']} | {r['width']}x{r['height']} | {r['decode_ms']:.2f} | {r['preprocess_ms']:.2f} "
              f"| {r['images_per_s']:.0f} |")
    slow = min(r["images_per_s"] for r in rows)
    print()
    print(f"One core decodes and preprocesses {slow:.0f} images/s (slowest row); ViT-B/32 embeds "
          f"{c['image_b32_per_s']:.1f} images/s on {c['threads']} threads, so `vlp embed` on a folder (which "
          f"decodes the next batch on its own thread while the model runs) is bound by the model, with "
          f"{slow / c['image_b32_per_s']:.0f}x headroom on the input side.")


if __name__ == "__main__":
    cmds = {"gemm": gemm, "train": train, "clip": clip, "tokenizer": tokenizer, "image": image}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
