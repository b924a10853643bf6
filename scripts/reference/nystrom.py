#!/usr/bin/env python3
"""Nyström attention from `nystrom-attention` (`NystromAttention`, 6 pseudo-inverse iterations, the
depthwise convolution residual) for `crates/kiln-layers/tests/nystrom_reference.rs`: Kiln's Nystrom
given the same queries, keys, values and convolution kernel must give the same output.

One sequence, one head: the reference scales every pseudo-inverse's start by the largest norms over
the whole batch and all heads, Kiln per matrix (see `kiln-layers/src/attention/nystrom.rs`); with one
matrix the two are the same computation. 16 tokens (a multiple of the 4 landmarks: the reference pads
at the front, Kiln masks at the back), head size 8, a 5-tap convolution. The output projection is
replaced by the identity, so the fixture holds the attention's output itself.

    /tmp/ref/bin/pip install torch nystrom-attention
    /tmp/ref/bin/python scripts/reference/nystrom.py crates/kiln-layers/tests/fixtures/nystrom_reference.json
"""
import json
import sys
from importlib.metadata import version

import torch
from einops import rearrange
from nystrom_attention import NystromAttention


def main(out: str) -> None:
    torch.manual_seed(0)
    n, d, heads, landmarks, kernel = 16, 8, 1, 4, 5
    attention = NystromAttention(dim=d * heads, dim_head=d, heads=heads, num_landmarks=landmarks,
                                 pinv_iterations=6, residual=True, residual_conv_kernel=kernel).eval()
    attention.to_out = torch.nn.Identity()
    with torch.no_grad():
        attention.res_conv.weight.normal_(0.0, 0.3)
        x = torch.randn(1, n, d * heads)
        y = attention(x)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=heads) for t in attention.to_qkv(x).chunk(3, dim=-1))
    reference = {
        "versions": {"torch": torch.__version__, "nystrom-attention": version("nystrom-attention")},
        "shape": [1, heads, n, d],
        "num_landmarks": landmarks,
        "conv": attention.res_conv.weight.flatten().tolist(),
        "conv_kernel": kernel,
        "q": q.flatten().tolist(),
        "k": k.flatten().tolist(),
        "v": v.flatten().tolist(),
        "y": rearrange(y, "b n (h d) -> b h n d", h=heads).flatten().tolist(),
    }
    with open(out, "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
