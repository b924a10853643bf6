#!/usr/bin/env python3
"""PyTorch's GEMM throughput at the shapes of `cargo run --release --example burn_limits`, item 5,
and NumPy's (whose wheels bundle OpenBLAS) beside it, both on 2 threads like the other twins.

    python3 scripts/bench/gemm_torch.py     # needs torch and numpy

PyTorch's CPU wheels call MKL (`torch.__config__.show()`: BLAS_INFO=mkl); NumPy's call OpenBLAS. Each
library's calls run back to back: interleaving them makes the two thread pools (OpenMP's spinning
workers and OpenBLAS's) compete for the cores and halves whichever runs second.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")  # before numpy loads OpenBLAS
import time

import numpy as np
import torch

torch.set_num_threads(2)


def median_ms(f):
    f()  # warm-up
    times = []
    for _ in range(21):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


for m, k, n in [(1280, 384, 1536), (2048, 256, 1024)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    na, nb = a.numpy(), b.numpy()
    for name, f in (("torch.matmul", lambda: a @ b), ("numpy (OpenBLAS)", lambda: na @ nb)):
        ms = median_ms(f)
        print(f"5. {name} [{m}, {k}] x [{k}, {n}]: {ms:.2f} ms, {2 * m * k * n / (ms * 1e6):.0f} GFLOP/s")
