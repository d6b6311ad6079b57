#!/usr/bin/env python3
"""Writes the mini emoji packages under tests/fixtures/emoji/ (no network needed by the tests):

  emoji-datasource-{apple,google,facebook,twitter}-0.0.1.tgz   npm-style tarballs: package/emoji.json,
                                                                package/img/<vendor>/64/*.png, extras
  emoji-datasource-*-0.0.1.json                                 what `npm pack --json` would print
  expected/                                                     tests/tools/emoji_reference.py's output

The hand-made emoji.json exercises every rule of shared/datasets/emoji.md and emoji-tasks.md:
held-out concepts (sort_order % 10 == 7) with skin variations, a tone item whose base has no
twitter image, skin_variations keys out of code point order, a two-modifier key, a vendor
without an image, a Component entry, a non-ASCII name, two entries named "MAN IN TUXEDO",
emoji.json order different from sort_order, and RGBA, RGB and palette PNGs.

RGBA images follow pattern() below (tests/test_emoji.c recomputes it), with three fixed pixels
at (0..2, 0): (200, 0, 100, 128), (10, 20, 30, 0), (10, 20, 30, 255).

  python3 tests/tools/gen_emoji_fixture.py        (run from the repository root)
"""
import base64
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib

VERSION = "0.0.1"
VENDORS = ["apple", "google", "facebook", "twitter"]
OUT = "tests/fixtures/emoji"


def e(name, unified, cat, sub, order, no_img=(), skins=None):
    d = {"name": name, "unified": unified, "image": unified.lower() + ".png", "category": cat,
         "subcategory": sub, "sort_order": order}
    for v in VENDORS:
        d["has_img_" + v] = v not in no_img
    if skins:
        sv = {}
        for key, miss in skins:
            s = {"unified": unified + "-" + key, "image": (unified + "-" + key).lower() + ".png"}
            for v in VENDORS:
                s["has_img_" + v] = v not in miss
            sv[key] = s
        d["skin_variations"] = sv
    return d


ENTRIES = [
    e("HASH KEY", "0023-FE0F-20E3", "Symbols", "keycap", 15, no_img=("facebook",)),
    e("GRINNING FACE", "1F600", "Smileys & Emotion", "face-smiling", 1),
    e("WAVING HAND SIGN", "1F44B", "People & Body", "hand-fingers-open", 3,
      skins=[("1F3FD", ()), ("1F3FB", ()), ("1F3FC", ("twitter",)), ("1F3FE", ()), ("1F3FF", ("google",))]),
    e("DOG FACE", "1F436", "Animals & Nature", "animal-mammal", 4),
    e("CAT FACE", "1F431", "Animals & Nature", "animal-mammal", 5),
    e("THUMBS UP SIGN", "1F44D", "People & Body", "hand-fingers-closed", 7, no_img=("twitter",),
      skins=[("1F3FF", ()), ("1F3FB", ())]),
    e("EMOJI MODIFIER FITZPATRICK TYPE-1-2", "1F3FB", "Component", "skin-tone", 6),
    e("\u00c5LAND ISLANDS FLAG", "1F1E6-1F1FD", "Flags", "country-flag", 8),
    e("MAN IN TUXEDO", "1F935", "People & Body", "person-role", 9,
      skins=[("1F3FB", ()), ("1F3FB-1F3FC", ()), ("1F3FC", ("apple",))]),
    e("ROCKET", "1F680", "Travel & Places", "transport-air", 17),
    e("MAN IN TUXEDO", "1F935-200D-2642-FE0F", "People & Body", "person-role", 10),
    e("SLICE OF PIZZA", "1F355", "Food & Drink", "food-prepared", 11),
    e("AUTOMOBILE", "1F697", "Travel & Places", "transport-ground", 12),
    e("HEAVY BLACK HEART", "2764-FE0F", "Smileys & Emotion", "heart", 27),
    e("SOCCER BALL", "26BD", "Activities", "sport", 13),
    e("MOBILE PHONE", "1F4F1", "Objects", "phone", 14),
    e("HIGH VOLTAGE SIGN", "26A1", "Travel & Places", "sky & weather", 37),
    e("RED APPLE", "1F34E", "Food & Drink", "food-fruit", 16),
    e("SPARKLES", "2728", "Activities", "event", 47),
]

# Images stored as palette (colour type 3, tRNS) or RGB (type 2): (vendor, image)
PALETTE = {("google", "1f436.png"), ("twitter", "1f355.png")}
RGB = {("apple", "1f4f1.png"), ("twitter", "26bd.png")}


def seed(vendor, image):
    return sum((vendor + "/" + image).encode()) % 251


def pattern(x, y, s):
    return ((x * 4 + s * 37) & 255, (y * 4 + s * 11) & 255, (x + 2 * y + s * 5) & 255, (x * 8 + y * 3 + s) & 255)


FIXED = [(200, 0, 100, 128), (10, 20, 30, 0), (10, 20, 30, 255)]


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png(w, h, ctype, rows, plte=None, trns=None):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
    if plte:
        out += chunk(b"PLTE", bytes(plte))
    if trns:
        out += chunk(b"tRNS", bytes(trns))
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def image(vendor, name):
    s = seed(vendor, name)
    if (vendor, name) in PALETTE:
        # 8 colours: the three fixed pixels, then 5 of the pattern; index (x + y) % 5 + 3 elsewhere
        cols = FIXED + [pattern(k * 7, k * 5, s) for k in range(5)]
        rows = [[(0 if x == 0 else 1 if x == 1 else 2) if y == 0 and x < 3 else (x + y) % 5 + 3 for x in range(64)]
                for y in range(64)]
        return png(64, 64, 3, rows, [c for p in cols for c in p[:3]], [p[3] for p in cols])
    px = [[pattern(x, y, s) for x in range(64)] for y in range(64)]
    px[0][0:3] = FIXED
    if (vendor, name) in RGB:
        return png(64, 64, 2, [[c for p in r for c in p[:3]] for r in px])
    return png(64, 64, 6, [[c for p in r for c in p] for r in px])


def add(tar, path, data):
    ti = tarfile.TarInfo(path)
    ti.size = len(data)
    ti.mtime = 499162500  # npm's fixed 1985-10-26 08:15
    ti.mode = 0o644
    tar.addfile(ti, io.BytesIO(data))


def main():
    os.makedirs(OUT, exist_ok=True)
    ej = json.dumps(ENTRIES, ensure_ascii=False).encode()
    for v in VENDORS:
        name = "emoji-datasource-" + v
        files = [("package/LICENSE", b"MIT (fixture)\n"), ("package/emoji.json", ej),
                 ("package/package.json", json.dumps({"name": name, "version": VERSION}).encode())]
        imgs = set()
        for d in ENTRIES:
            if d["has_img_" + v]:
                imgs.add(d["image"])
            for s in d.get("skin_variations", {}).values():
                if s["has_img_" + v]:
                    imgs.add(s["image"])
        for im in sorted(imgs):
            files.append(("package/img/%s/64/%s" % (v, im), image(v, im)))
        files.append(("package/img/%s/32/1f600.png" % v, b"not a png: other sizes are skipped"))
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for p, data in files:
                    add(tar, p, data)
        tgz = buf.getvalue()
        fn = "%s-%s.tgz" % (name, VERSION)
        open(os.path.join(OUT, fn), "wb").write(tgz)
        rec = [{"id": "%s@%s" % (name, VERSION), "name": name, "version": VERSION, "size": len(tgz),
                "unpackedSize": sum(len(d) for _, d in files), "shasum": hashlib.sha1(tgz).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
                "filename": fn, "files": [{"path": p[len("package/"):], "size": len(d), "mode": 420} for p, d in files],
                "entryCount": len(files), "bundled": []}]
        open(os.path.join(OUT, "%s-%s.json" % (name, VERSION)), "w").write(json.dumps(rec, indent=2) + "\n")
    ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emoji_reference.py")
    ejpath = os.path.join(OUT, "emoji.json")
    open(ejpath, "wb").write(ej)
    subprocess.check_call([sys.executable, ref, ejpath, os.path.join(OUT, "expected")])
    os.remove(ejpath)


if __name__ == "__main__":
    main()
