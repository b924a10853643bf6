#!/usr/bin/env python3
"""PyTorch twin of `kiln bench attention --point KIND,N,MODE`: one attention layer, measured the same
way, printed as the same JSON line.

The layer is a whole multi-head attention (query/key/value and output projections around the kind),
`d_model = heads * head_dim`, on `x ~ N(0, 1)` of shape `[batch, n, d_model]`:

- softmax: `torch.nn.functional.scaled_dot_product_attention` between the projections;
- linear-elu / linear-exp: Katharopoulos et al.'s linear attention written in plain PyTorch, with
  the same stabilisation as Kiln's `exp` feature map (per-query max, one key max per head);
- performer: `performer_pytorch.SelfAttention` (the public reference package), `nb_features=266`;
- nystrom: `nystrom_attention.NystromAttention` (the public reference package), 64 landmarks,
  6 pseudo-inverse iterations, a 33-tap convolution residual.

Time: median of `--repeats` runs after one warm-up. Memory: the growth of the resident set's
high-water mark (`VmHWM`) over the resident set once the layer and its input exist. Run it in a
fresh process per point (scripts/bench/run.py does).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn


def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return None


class Projected(nn.Module):
    """Query/key/value projections, a per-head attention function, the output projection."""

    def __init__(self, d_model, heads, attend):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.attend = attend

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = self.attend(q, k, v)  # [b, h, n, d_head]
        return self.out(o.transpose(1, 2).reshape(b, n, d))


def linear_attention(feature_map, eps=1e-6):
    def attend(q, k, v):
        if feature_map == "elu":
            fq, fk = F.elu(q) + 1, F.elu(k) + 1
        else:
            fq = torch.exp(q - q.amax(dim=-1, keepdim=True).detach())
            fk = torch.exp(k - k.amax(dim=(-1, -2), keepdim=True).detach())
        kv = fk.transpose(-1, -2) @ v  # [b, h, m, d]
        z = fk.sum(dim=-2, keepdim=True)  # [b, h, 1, m]
        return (fq @ kv) / ((fq * z).sum(dim=-1, keepdim=True) + eps)

    return attend


def build(kind, d_model, heads, head_dim):
    if kind == "softmax":
        return Projected(d_model, heads, lambda q, k, v: F.scaled_dot_product_attention(q, k, v))
    if kind == "linear-elu":
        return Projected(d_model, heads, linear_attention("elu"))
    if kind == "linear-exp":
        return Projected(d_model, heads, linear_attention("exp"))
    if kind == "performer":
        from performer_pytorch import SelfAttention

        return SelfAttention(dim=d_model, heads=heads, dim_head=head_dim, nb_features=266, causal=False)
    if kind == "nystrom":
        from nystrom_attention import NystromAttention

        return NystromAttention(
            dim=d_model, dim_head=head_dim, heads=heads, num_landmarks=64, pinv_iterations=6,
            residual=True, residual_conv_kernel=33,
        )
    raise SystemExit(f"unknown kind {kind}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--point", required=True, help="KIND,N,MODE (MODE: forward or backward)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    kind, n, mode = a.point.split(",")
    n, backward = int(n), mode == "backward"
    torch.manual_seed(0)
    d_model = a.heads * a.head_dim
    layer = build(kind, d_model, a.heads, a.head_dim)
    x = torch.randn(a.batch, n, d_model, requires_grad=backward)
    upstream = torch.randn(a.batch, n, d_model)
    base = status_mib("VmRSS:")
    times = []
    for i in range(a.repeats + 1):
        start = time.perf_counter()
        if backward:
            out = layer(x)
            out.backward(upstream)
            layer.zero_grad(set_to_none=True)
            x.grad = None
        else:
            with torch.no_grad():
                out = layer(x)
        del out
        if i > 0:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    peak = status_mib("VmHWM:")
    print(json.dumps({
        "impl_name": "pytorch", "kind": kind, "n": n, "mode": mode, "ms": times[len(times) // 2],
        "peak_mib": max(peak - base, 0.0), "note": None,
    }))


if __name__ == "__main__":
    main()
