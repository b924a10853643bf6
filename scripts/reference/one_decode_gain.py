"""Reference values for `crates/kiln-vae/tests/one_decode_estimate.rs`, from NumPy and SciPy alone.

The S-VAE authors' TensorFlow example reports `ln p(x|z_0) + ln (1/K) sum_k p(z_k) / q(z_k|x)` as the
log-likelihood. Its excess over the ELBO, the "gain", is `ln (1/K) sum_k p(z_k) / q(z_k|x) + KL(q || p)`,
whose expectation depends on the posterior alone, not on the decoder. This script estimates that
expectation for the cases of the test, each from REPS independent sets of K draws:

- vMF on the sphere S^(m-1) in R^m, concentration kappa, uniform prior: p(z) / q(z|x) =
  exp(-KL + kappa (A_m(kappa) - mu^T z)), `A_m = I_(m/2) / I_(m/2-1)` from SciPy's `ive`, `w = mu^T z`
  drawn with Wood's (1994) rejection sampler written out below;
- Gaussian N(m, diag(s^2)) in R^d against N(0, I).

Prints one line per case: its name, the mean gain and its standard error. Run with
`python scripts/reference/one_decode_gain.py` (numpy, scipy; about a minute).

`--table` prints instead the S-VAE's gain at d = 2, 5, 10, 20 (the sphere S^d, m = d + 1) at the
median learned kappa(x) of docs/results.md's 100-epoch runs, with K = 500 and 1000: what the authors'
estimator adds to the ELBO of any S-VAE with that concentration, for docs/results.md.
"""

import sys

import numpy as np
from scipy.special import ive, logsumexp

REPS = 100_000
K = 500
rng = np.random.default_rng(20261207)


def wood_w(kappa, m, size):
    """`w = mu^T z` of vMF(mu, kappa) on S^(m-1): Wood (1994)."""
    b = (m - 1) / (2 * kappa + np.sqrt(4 * kappa**2 + (m - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (m - 1) * np.log(1 - x0**2)
    out = np.empty(size)
    filled = 0
    while filled < size:
        n = 2 * (size - filled) + 100
        e = rng.beta((m - 1) / 2, (m - 1) / 2, n)
        w = (1 - (1 + b) * e) / (1 - (1 - b) * e)
        accept = kappa * w + (m - 1) * np.log(1 - x0 * w) - c >= np.log(rng.random(n))
        take = w[accept][: size - filled]
        out[filled : filled + len(take)] = take
        filled += len(take)
    return out


def vmf_gain(kappa, m, k=K, reps=REPS):
    a = ive(m / 2, kappa) / ive(m / 2 - 1, kappa)
    gains = np.empty(reps)
    for start in range(0, reps, 1000):
        w = wood_w(kappa, m, 1000 * k).reshape(1000, k)
        gains[start : start + 1000] = logsumexp(kappa * (a - w), axis=1) - np.log(k)
    return gains


def gaussian_gain(mean, sd):
    mean, sd = np.asarray(mean), np.asarray(sd)
    kl = 0.5 * np.sum(sd**2 + mean**2 - 1 - 2 * np.log(sd))
    gains = np.empty(REPS)
    for start in range(0, REPS, 200):
        u = rng.standard_normal((200, K, len(mean)))
        z = mean + sd * u
        log_p = -0.5 * np.sum(z**2, axis=-1)
        log_q = -0.5 * np.sum(u**2, axis=-1) - np.sum(np.log(sd))
        gains[start : start + 200] = logsumexp(log_p - log_q, axis=1) - np.log(K) + kl
    return gains


def mean_and_se(g):
    return g.mean(), g.std(ddof=1) / np.sqrt(len(g))


def table():
    for d, kappa in [(2, 1721.3), (5, 780.5), (10, 550.3), (20, 338.7)]:
        row = []
        for k in [500, 1000]:
            mean, se = mean_and_se(vmf_gain(kappa, d + 1, k=k, reps=20_000))
            row.append(f"K = {k}: {mean:.2f} se {se:.2f}")
        print(f"S^{d} at kappa {kappa}: " + ", ".join(row))


def main():
    if sys.argv[1:] == ["--table"]:
        return table()
    cases = [
        ("vmf m=3 kappa=1000", vmf_gain(1000.0, 3)),
        ("vmf m=21 kappa=345", vmf_gain(345.0, 21)),
        ("gaussian d=5 mean=0.5 sd=0.1", gaussian_gain([0.5] * 5, [0.1] * 5)),
    ]
    for name, g in cases:
        mean, se = mean_and_se(g)
        print(f"{name}: gain {mean:.4f} se {se:.4f} (K = {K}, {len(g)} sets)")


if __name__ == "__main__":
    main()
