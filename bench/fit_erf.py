#!/usr/bin/env python3
"""The rational erf of src/core/vmath.h: erf(x) = x P(x^2) / Q(x^2) on [0, 4], degrees 5 / 5,
fitted by iteratively reweighted linear least squares on P(t) - g(t) Q(t) (t = x^2, g = erf(x)/x,
Q(0) = 1) toward the smallest largest absolute error of erf, then checked in float32 arithmetic
as the C code evaluates it (Horner, float constants). Needs numpy only.
  /usr/bin/python3 bench/fit_erf.py      prints the coefficients and both errors"""
import math

import numpy as np

N, M, C = 5, 5, 4.0  # numerator / denominator degree in t, fit interval [0, C]


def fit():
    x = np.linspace(0, C, 20001)
    f = np.array([math.erf(v) for v in x])
    t = x * x
    g = np.where(x > 0, f / np.where(x > 0, x, 1), 2 / math.sqrt(math.pi))
    cols = np.hstack([np.vstack([t**k for k in range(N + 1)]).T, -(g[:, None] * np.vstack([t**k for k in range(1, M + 1)]).T)])
    w = np.ones_like(t)
    for it in range(30):
        sol, *_ = np.linalg.lstsq(cols * w[:, None], g * w, rcond=None)
        p, q = sol[: N + 1], np.concatenate([[1.0], sol[N + 1:]])
        Q = np.polyval(q[::-1], t)
        err = x * (np.polyval(p[::-1], t) / Q) - f
        base = np.maximum(x, 1e-3) / np.abs(Q)  # residual -> error of erf
        w = base * np.sqrt(w * np.abs(err) + 1e-30) if it > 3 else base  # Lawson: weight toward the peaks
        w /= w.max()
    return p, q, float(np.abs(err).max())


def eval32(p, q, x):
    x = np.clip(x.astype(np.float32), -C, C)
    t = x * x
    P = np.float32(p[-1])
    for k in range(N - 1, -1, -1):
        P = P * t + np.float32(p[k])
    Q = np.float32(q[-1])
    for k in range(M - 1, -1, -1):
        Q = Q * t + np.float32(q[k])
    return np.clip(x * P / Q, -1, 1)


if __name__ == "__main__":
    p, q, e64 = fit()
    xs = np.linspace(-8, 8, 400001).astype(np.float32)
    e32 = np.abs(eval32(p, q, xs).astype(np.float64) - np.array([math.erf(float(v)) for v in xs])).max()
    print("P (t^0 first):", ", ".join(f"{v:.17g}" for v in p))
    print("Q (t^0 first):", ", ".join(f"{v:.17g}" for v in q))
    print(f"max abs error: {e64:.3g} in double, {e32:.3g} in float32")
