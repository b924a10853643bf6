#!/usr/bin/env python3
"""The Fréchet distance between Gaussians fitted to two sets of feature rows, as pytorch-fid and
TTUR compute it (`np.cov(rowvar=False)`, `scipy.linalg.sqrtm(Σa Σb)`), for the test of
`kiln_gan::mnist::frechet_distance`: two sets with full (correlated) covariances, 60 and 45 rows of
6 features, and a third that is the first set shifted and rescaled.

    /tmp/ref/bin/pip install numpy scipy
    /tmp/ref/bin/python scripts/reference/frechet.py crates/kiln-gan/tests/fixtures/frechet_reference.json
"""
import json
import sys

import numpy as np
import scipy
from scipy import linalg


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))


def main(out: str) -> None:
    rng = np.random.default_rng(0)
    d = 6
    mix_a, mix_b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    a = rng.normal(size=(60, d)) @ mix_a + rng.normal(size=d)
    b = rng.normal(size=(45, d)) @ mix_b
    c = 1.5 * a + 0.3
    pairs = [("a", "b"), ("b", "a"), ("a", "c")]
    sets = {"a": a, "b": b, "c": c}
    reference = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "sets": {k: v.tolist() for k, v in sets.items()},
        "distances": [{"pair": list(p), "value": frechet(sets[p[0]], sets[p[1]])} for p in pairs],
    }
    with open(out, "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
