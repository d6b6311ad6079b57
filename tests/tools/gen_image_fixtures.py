#!/usr/bin/python3
"""Generates tests/fixtures/images/: small images in every format and mode vlp decodes,
with what Pillow 9.4 makes of them, for tests/test_image.c.

Run with Debian 12's /usr/bin/python3 (python3-pil 9.4, python3-numpy):
    /usr/bin/python3 tests/tools/gen_image_fixtures.py

Per image NAME (files are named after what they exercise):
  NAME.rgb.npy    uint8 [H,W,3]  np.asarray(Image.open(NAME).convert("RGB"))
  NAME.rgba.npy   uint8 [H,W,4]  np.asarray(Image.open(NAME).convert("RGBA"))  (images with alpha)
  NAME.preN.npy   float32 [3,N,N]  clip.clip._transform(N)(Image.open(NAME)) for N = 32 (downscale)
                  and/or 40 (upscale), computed here
                  with Pillow + NumPy exactly as torchvision 0.14 does it (checked below
                  against the CLIP fixtures, bit for bit)
manifest.txt: one line per image: NAME MODE WIDTH HEIGHT CHECKS (comma-separated), the mode
vlp must report (Pillow's, except where noted in the comments).

PNG variants Pillow cannot write (2/4-bit grey, 16-bit, Adam7 interlacing) come from the
small PNG writer below. Truncated/garbage inputs are made by the C test itself.
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

assert Image.__version__ == "9.4.0", Image.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")
CLIP = os.path.join(ROOT, "tests", "fixtures", "clip", "images")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def clip_transform(im, n):
    """torchvision Resize(n, BICUBIC) + CenterCrop(n) + convert RGB + ToTensor + Normalize."""
    w, h = im.size
    if w <= h:
        ow, oh = n, int(n * h / w)
    else:
        ow, oh = int(n * w / h), n
    im = im.resize((ow, oh), Image.BICUBIC)
    top, left = int(round((oh - n) / 2.0)), int(round((ow - n) / 2.0))
    im = im.crop((left, top, left + n, top + n)).convert("RGB")
    x = np.asarray(im).astype(np.float32) / np.float32(255)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1).astype(np.float32))


def check_against_clip():
    """The emulation above must reproduce the reference fixtures bit for bit."""
    for name in sorted(os.listdir(CLIP)):
        if not name.endswith((".png", ".jpg")):
            continue
        for n in (224, 64):
            ref = np.load(os.path.join(CLIP, f"{name}.pre{n}.npy"))
            got = clip_transform(Image.open(os.path.join(CLIP, name)), n)
            if not np.array_equal(ref, got):
                sys.exit(f"emulated transform differs from the CLIP fixture {name} pre{n}: "
                         f"max {np.abs(ref - got).max()}")
    print("emulated transform matches every CLIP fixture bit for bit")


def png_chunk(tag, data):
    c = tag + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


def pack_rows(a, depth, channels):
    """a: [H,W,C] ints -> list of packed scanline bytes (no filter byte)."""
    h, w = a.shape[:2]
    rows = []
    for y in range(h):
        v = a[y].reshape(-1)
        if depth == 16:
            rows.append(v.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(v.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(v)
            out = bytearray((n * depth + 7) // 8)
            for i in range(n):
                out[i // per] |= int(v[i]) << (8 - depth * (i % per + 1))
            rows.append(bytes(out))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, a, ctype, depth, interlace=False, plte=None, trns=None):
    """a: [H,W,C] array of sample values (palette indices for ctype 3)."""
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            for r in pack_rows(sub, depth, c):
                raw += b"\0" + r
    else:
        for r in pack_rows(a, depth, c):
            raw += b"\0" + r
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(raw, 9))
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def main():
    check_against_clip()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    src = Image.open(os.path.join(CLIP, "astronaut.png")).convert("RGB")
    rgb = src.crop((150, 60, 150 + 53, 60 + 39))  # 53x39: wide, odd sizes; down at 32, up at 40
    small = src.crop((200, 100, 200 + 23, 100 + 29))  # 23x29: tall, upscaled at 40
    grey = np.asarray(rgb.convert("L"))
    rng = np.random.RandomState(7)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.clip((xx * 255) // (w - 1) + rng.randint(-40, 40, size=(h, w)), 0, 255).astype(np.uint8)
    alpha[:, :6] = 0  # fully transparent band with colour underneath
    alpha[:, -6:] = 255
    manifest = []

    def emit(name, mode, checks, expect_img=None):
        """expect_img: the image vlp must behave as (default: what Pillow opens)."""
        path = os.path.join(OUT, name)
        im = expect_img if expect_img is not None else Image.open(path)
        if expect_img is None:
            assert im.mode == mode, (name, im.mode, mode)
        np.save(os.path.join(OUT, name + ".rgb.npy"), np.asarray(im.convert("RGB")))
        if "rgba" in checks:
            np.save(os.path.join(OUT, name + ".rgba.npy"), np.asarray(im.convert("RGBA")))
        for c in checks:
            if c.startswith("pre"):
                np.save(os.path.join(OUT, f"{name}.{c}.npy"), clip_transform(im, int(c[3:])))
        manifest.append(f"{name} {mode} {im.size[0]} {im.size[1]} {','.join(['rgb'] + checks)}")

    # --- PNG -------------------------------------------------------------------------
    g1 = (grey > 110).astype(np.uint8)
    write_png(os.path.join(OUT, "png_grey1.png"), g1, 0, 1)
    emit("png_grey1.png", "1", ["pre32", "pre40"])
    write_png(os.path.join(OUT, "png_grey2.png"), grey >> 6, 0, 2)
    emit("png_grey2.png", "L", ["pre32"])
    write_png(os.path.join(OUT, "png_grey4_interlaced.png"), grey >> 4, 0, 4, interlace=True)
    emit("png_grey4_interlaced.png", "L", ["pre32"])
    write_png(os.path.join(OUT, "png_grey8_trns.png"), grey, 0, 8, trns=struct.pack(">H", 50))
    emit("png_grey8_trns.png", "L", ["pre32"])
    # 16-bit grey: Pillow opens mode "I" and convert("RGB") clips at 255 (white); vlp keeps
    # the high byte, so the expectation is the L image of the high bytes.
    g16 = grey.astype(np.uint16) * 257 + rng.randint(0, 200, size=grey.shape).astype(np.uint16)
    write_png(os.path.join(OUT, "png_grey16.png"), g16, 0, 16)
    assert Image.open(os.path.join(OUT, "png_grey16.png")).mode == "I"
    emit("png_grey16.png", "L", ["pre32"], Image.fromarray((g16 >> 8).astype(np.uint8), "L"))
    la = np.stack([grey, alpha], -1)
    write_png(os.path.join(OUT, "png_la8.png"), la, 4, 8)
    emit("png_la8.png", "LA", ["rgba", "pre32", "pre40"])
    la16 = la.astype(np.uint16) * 257 + rng.randint(0, 256, size=la.shape).astype(np.uint16)
    write_png(os.path.join(OUT, "png_la16_interlaced.png"), la16, 4, 16, interlace=True)
    emit("png_la16_interlaced.png", "RGBA", ["rgba", "pre32"])  # Pillow opens 16-bit LA as RGBA
    a = np.asarray(rgb)
    a16 = a.astype(np.uint16) * 257 + rng.randint(0, 256, size=a.shape).astype(np.uint16)
    write_png(os.path.join(OUT, "png_rgb16.png"), a16, 2, 16)
    emit("png_rgb16.png", "RGB", ["pre32"])
    write_png(os.path.join(OUT, "png_rgb8_interlaced_trns.png"), a, 2, 8, interlace=True,
              trns=struct.pack(">HHH", 10, 20, 30))
    emit("png_rgb8_interlaced_trns.png", "RGB", ["pre32"])
    rgba = np.concatenate([a, alpha[:, :, None]], -1)
    rgba16 = rgba.astype(np.uint16) * 257 + rng.randint(0, 256, size=rgba.shape).astype(np.uint16)
    write_png(os.path.join(OUT, "png_rgba16_interlaced.png"), rgba16, 6, 16, interlace=True)
    emit("png_rgba16_interlaced.png", "RGBA", ["rgba", "pre32"])
    sm = np.concatenate([np.asarray(small), (rng.randint(0, 256, size=(29, 23, 1))).astype(np.uint8)], -1)
    Image.fromarray(sm, "RGBA").save(os.path.join(OUT, "png_rgba8_small.png"))
    emit("png_rgba8_small.png", "RGBA", ["rgba", "pre40"])
    # palettes: 1, 2, 4 bits with tRNS; 8 bits with partial alpha and indices past the PLTE
    pal = np.asarray(rgb.quantize(16).getpalette()[: 16 * 3], dtype=np.uint8).reshape(16, 3)
    q = np.asarray(rgb.quantize(16))
    write_png(os.path.join(OUT, "png_p1.png"), q & 1, 3, 1, plte=pal[:2])
    emit("png_p1.png", "P", ["pre32"])
    write_png(os.path.join(OUT, "png_p2_trns.png"), q & 3, 3, 2, plte=pal[:4], trns=b"\xff\x00")
    emit("png_p2_trns.png", "P", ["rgba", "pre32"])
    write_png(os.path.join(OUT, "png_p4_interlaced.png"), q, 3, 4, interlace=True, plte=pal)
    emit("png_p4_interlaced.png", "P", ["pre32"])
    q8 = (q.astype(np.int32) * 13 % 40).astype(np.uint8)  # indices 0..39, PLTE has 30 entries
    pal8 = rng.randint(0, 256, size=(30, 3)).astype(np.uint8)
    write_png(os.path.join(OUT, "png_p8_partial_alpha.png"), q8, 3, 8, plte=pal8,
              trns=bytes(rng.randint(0, 256, size=20).astype(np.uint8)))
    emit("png_p8_partial_alpha.png", "P", ["rgba", "pre32", "pre40"])
    # --- JPEG ------------------------------------------------------------------------
    rgb.convert("L").save(os.path.join(OUT, "jpeg_grey.jpg"), quality=85)
    emit("jpeg_grey.jpg", "L", ["pre32"])
    rgb.convert("CMYK").save(os.path.join(OUT, "jpeg_cmyk.jpg"), quality=90)
    emit("jpeg_cmyk.jpg", "CMYK", ["pre32", "pre40"])
    rgb.save(os.path.join(OUT, "jpeg_progressive_444.jpg"), quality=92, progressive=True, subsampling=0)
    emit("jpeg_progressive_444.jpg", "RGB", ["pre32"])
    small.save(os.path.join(OUT, "jpeg_422_small.jpg"), quality=75, subsampling=1)
    emit("jpeg_422_small.jpg", "RGB", ["pre40"])
    # --- WebP ------------------------------------------------------------------------
    rgb.save(os.path.join(OUT, "webp_lossy.webp"), quality=80)
    emit("webp_lossy.webp", "RGB", ["pre32"])
    rgb.save(os.path.join(OUT, "webp_lossless.webp"), lossless=True)
    emit("webp_lossless.webp", "RGB", ["pre32"])
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "webp_lossless_alpha.webp"), lossless=True, exact=True)
    emit("webp_lossless_alpha.webp", "RGBA", ["rgba", "pre32"])
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "webp_lossy_alpha.webp"), quality=70)
    emit("webp_lossy_alpha.webp", "RGBA", ["rgba", "pre32", "pre40"])
    # --- GIF -------------------------------------------------------------------------
    qp = rgb.quantize(64)
    qp.save(os.path.join(OUT, "gif_p_trns_interlaced.gif"), transparency=3)  # Pillow interlaces by default
    emit("gif_p_trns_interlaced.gif", "P", ["rgba", "pre32", "pre40"])
    qp.save(os.path.join(OUT, "gif_p_noninterlaced.gif"), interlace=False)
    emit("gif_p_noninterlaced.gif", "P", ["pre32"])
    rgb.convert("L").save(os.path.join(OUT, "gif_grey.gif"), optimize=False)  # grey-ramp palette: mode L
    emit("gif_grey.gif", "L", ["pre32"])
    # --- BMP -------------------------------------------------------------------------
    rgb.save(os.path.join(OUT, "bmp_rgb24.bmp"))
    emit("bmp_rgb24.bmp", "RGB", ["pre32"])
    small.save(os.path.join(OUT, "bmp_small_rgb24.bmp"))
    emit("bmp_small_rgb24.bmp", "RGB", ["pre40"])
    # palette BMP: stb_image expands it to RGB (Pillow keeps P): decoded pixels only
    qp.save(os.path.join(OUT, "bmp_p8.bmp"))
    emit("bmp_p8.bmp", "RGB", [], Image.open(os.path.join(OUT, "bmp_p8.bmp")).convert("RGB"))

    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("# NAME MODE WIDTH HEIGHT CHECKS -- generated by tests/tools/gen_image_fixtures.py\n")
        f.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print(f"{len(manifest)} images, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
