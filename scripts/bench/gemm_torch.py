#!/usr/bin/env python3
"""PyTorch's GEMM throughput at the shapes of `cargo run --release --example burn_limits`, item 5.

    python3 scripts/bench/gemm_torch.py     # needs torch; uses 2 threads like the other twins
"""
import time

import torch

torch.set_num_threads(2)
for m, k, n in [(1280, 384, 1536), (2048, 256, 1024)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm-up
    times = []
    for _ in range(21):
        start = time.perf_counter()
        a @ b
        times.append((time.perf_counter() - start) * 1e3)
    ms = sorted(times)[len(times) // 2]
    print(f"5. torch.matmul [{m}, {k}] x [{k}, {n}]: {ms:.2f} ms, {2 * m * k * n / (ms * 1e6):.0f} GFLOP/s")
