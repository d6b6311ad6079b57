#!/usr/bin/python3
"""Time torch.matmul (float32) on the GEMM shapes of the vlp benchmarks.

Run (Debian's PyTorch lives in the system python, NOT the pyenv one on PATH):

    /usr/bin/python3 bench/torch_gemm.py [--threads 2] [--reps 7]

For each M x N x K, C[M,N] = A[M,K] @ B[K,N] (all row-major, contiguous) is timed
--reps times after 2 warm-up calls; prints one JSON line per shape with the median
time and GFLOP/s = 2*M*N*K / median.
"""
import argparse
import ctypes
import json
import statistics
import time

import torch

SHAPES = [(1600, 3072, 768), (1600, 768, 3072), (1600, 2304, 768),
          (16640, 128, 128), (16640, 512, 128), (16640, 128, 512)]


def openblas_threads(n):
    """torch.set_num_threads does not reach OpenBLAS's pthread pool; set it directly."""
    with open("/proc/self/maps") as f:
        libs = sorted({l.split()[-1] for l in f if "openblas" in l.lower()})
    if not libs:
        return None
    libs.sort(key=lambda p: "libopenblas" not in p)  # prefer the real libopenblas*.so
    lib = ctypes.CDLL(libs[0])
    lib.openblas_set_num_threads(ctypes.c_int(n))
    return libs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a = torch.randn(64, 64)
    (a @ a).sum().item()  # load the BLAS
    blas = openblas_threads(args.threads) or "not-openblas"
    for M, N, K in SHAPES:
        A = torch.randn(M, K)
        B = torch.randn(K, N)
        C = torch.empty(M, N)
        for _ in range(2):
            torch.matmul(A, B, out=C)
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            torch.matmul(A, B, out=C)
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        gf = 2.0 * M * N * K * 1e-9
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "blas": blas,
                          "threads": torch.get_num_threads(), "M": M, "N": N, "K": K,
                          "median_s": round(med, 6), "min_s": round(min(ts), 6),
                          "gflops": round(gf / med, 2), "gflops_best": round(gf / min(ts), 2)}),
              flush=True)


if __name__ == "__main__":
    main()
