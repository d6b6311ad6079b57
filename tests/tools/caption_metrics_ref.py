#!/usr/bin/env python3
"""Second, independent implementation of the caption metrics of
shared/datasets/emoji-tasks.md (corpus BLEU-4 and CIDEr-D with one reference per image),
written from the formulas with Python's Counter; it prints the values that
tests/test_metrics.c expects for its hand-made cases.

    python3 tests/tools/caption_metrics_ref.py

Standard library only (no nltk or pycocoevalcap needed)."""
import math
from collections import Counter


def tokens(s):
    s = s.lower()
    return "".join(ch if ch.isalnum() else " " for ch in s).split()


def grams(toks, n):
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def bleu4(cands, refs):
    match = [0] * 4
    total = [0] * 4
    c_len = r_len = 0
    for c, r in zip(cands, refs):
        ct, rt = tokens(c), tokens(r)
        c_len += len(ct)
        r_len += len(rt)
        for n in range(1, 5):
            cg, rg = grams(ct, n), grams(rt, n)
            match[n - 1] += sum(min(v, rg[g]) for g, v in cg.items())
            total[n - 1] += sum(cg.values())
    prec = [m / t if t else 0.0 for m, t in zip(match, total)]
    bp = 1.0 if c_len >= r_len else (math.exp(1 - r_len / c_len) if c_len else 0.0)
    if min(prec) == 0:
        return 0.0, prec, bp
    return bp * math.exp(sum(math.log(p) for p in prec) / 4), prec, bp


def cider_d(cands, refs, sigma=6.0):
    m = len(refs)
    rtoks = [tokens(r) for r in refs]
    df = Counter()
    for rt in rtoks:
        for n in range(1, 5):
            df.update(set(grams(rt, n)))

    def vec(toks, n):
        return {g: f * (math.log(m) - math.log(max(1, df[g]))) for g, f in grams(toks, n).items()}

    scores = []
    for c, rt in zip(cands, rtoks):
        ct = tokens(c)
        gauss = math.exp(-((len(ct) - len(rt)) ** 2) / (2 * sigma ** 2))
        total = 0.0
        for n in range(1, 5):
            vc, vr = vec(ct, n), vec(rt, n)
            nc = math.sqrt(sum(w * w for w in vc.values()))
            nr = math.sqrt(sum(w * w for w in vr.values()))
            if nc == 0 or nr == 0:
                continue
            dot = sum(min(w, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, w in vc.items())
            total += dot / (nc * nr) * gauss
        scores.append(total / 4 * 10)
    return sum(scores) / len(scores), scores


CASES = {
    # name: (candidates, references)
    "perfect": (["grinning face", "red apple", "the cat sat on the mat"],
                ["grinning face", "red apple", "the cat sat on the mat"]),
    "mixed": (["a red apple on the table", "grinning face with big eyes", "dog", "the old man in a tuxedo"],
              ["red apple", "grinning face with smiling eyes", "dog face", "man in tuxedo"]),
    "short": (["the cat sat on the mat", "Grinning-Face: with big eyes!"],
              ["the cat sat on a red mat today", "grinning face with big eyes"]),
    "repeat": (["the the the the the the the", "cat cat cat"], ["the cat is on the mat", "the cat"]),
    # clipping: "the" three times against a reference with it once
    "clip": (["the the the cat sat", "a dog ran fast", "one small bird"],
             ["the cat sat", "a dog ran", "one bird"]),
    # small enough to check by hand (see tests/test_metrics.c)
    "hand_bleu": (["a b c d e"], ["a b c d f"]),
    "hand_cider": (["a b", "c x", "e f g h"], ["a b", "c d", "e f"]),
}

if __name__ == "__main__":
    for name, (c, r) in CASES.items():
        b, prec, bp = bleu4(c, r)
        cd, per = cider_d(c, r)
        print(f"{name}: bleu4 {b:.12f} prec {[round(p, 12) for p in prec]} bp {bp:.12f}")
        print(f"{name}: cider_d {cd:.12f} per {[round(s, 12) for s in per]}")
