#!/usr/bin/env python3
"""FAVOR+ attention from `performer-pytorch` (`FastAttention`, softmax kernel, not causal) with its
own drawn projection, for `crates/kiln-layers/tests/performer_reference.rs`: Kiln's Performer given
the same projection must give the same output. (Causal keys differ by design: Kiln scales the 1e-4
feature floor by the keys' stabiliser so that no output depends on a later token; see
`kiln-layers/src/attention/performer.rs`.)

q, k, v `[1, 2, 10, 8]`, 16 features; a second case with inputs three times larger (a stabiliser
that matters).

    /tmp/ref/bin/pip install torch performer-pytorch
    /tmp/ref/bin/python scripts/reference/performer.py crates/kiln-layers/tests/fixtures/performer_reference.json
"""
import json
import sys
from importlib.metadata import version

import torch
from performer_pytorch import FastAttention


def main(out: str) -> None:
    torch.manual_seed(0)
    d, m = 8, 16
    attention = FastAttention(dim_heads=d, nb_features=m, causal=False)
    cases = []
    for scale in (1.0, 3.0):
        q, k, v = (scale * torch.randn(1, 2, 10, d) for _ in range(3))
        with torch.no_grad():
            y = attention(q, k, v)
        cases.append({"shape": list(q.shape), "q": q.flatten().tolist(), "k": k.flatten().tolist(),
                      "v": v.flatten().tolist(), "y": y.flatten().tolist()})
    reference = {
        "versions": {"torch": torch.__version__, "performer-pytorch": version("performer-pytorch")},
        "projection": attention.projection_matrix.flatten().tolist(),
        "num_features": m,
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
