#!/usr/bin/env python3
"""Rotary position embeddings from `rotary-embedding-torch` (interleaved pairs, the RoFormer layout
Kiln implements), for `crates/kiln-layers/tests/rope_reference.rs`.

1-D: `RotaryEmbedding(dim).rotate_queries_or_keys` on a `[1, 2, 7, 8]` query at positions 0..6, with
base 10000 and base 100. 2-D: `RotaryEmbedding(dim / 2).get_axial_freqs(rows, cols)` (the first half
of each vector rotated by its row, the second by its column, each half with its own ladder) on a
2 x 3 grid of tokens in row-major order, applied with `apply_rotary_emb`.

    /tmp/ref/bin/pip install torch rotary-embedding-torch
    /tmp/ref/bin/python scripts/reference/rope.py crates/kiln-layers/tests/fixtures/rope_reference.json
"""
import json
import sys
from importlib.metadata import version

import torch
from rotary_embedding_torch import RotaryEmbedding, apply_rotary_emb


def main(out: str) -> None:
    torch.manual_seed(0)
    cases = []
    x = torch.randn(1, 2, 7, 8)
    for base in (10000.0, 100.0):
        y = RotaryEmbedding(dim=8, theta=base).rotate_queries_or_keys(x)
        cases.append({"kind": "1d", "base": base, "shape": list(x.shape), "x": x.flatten().tolist(),
                      "y": y.flatten().tolist()})
    rows, cols = 2, 3
    x = torch.randn(1, 2, rows * cols, 8)
    freqs = RotaryEmbedding(dim=4, theta=10000.0).get_axial_freqs(rows, cols).reshape(rows * cols, 8)
    y = apply_rotary_emb(freqs, x)
    cases.append({"kind": "2d", "base": 10000.0, "grid": [rows, cols], "shape": list(x.shape),
                  "x": x.flatten().tolist(), "y": y.flatten().tolist()})
    reference = {"versions": {"torch": torch.__version__, "rotary-embedding-torch": version("rotary-embedding-torch")},
                 "cases": cases}
    with open(out, "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
