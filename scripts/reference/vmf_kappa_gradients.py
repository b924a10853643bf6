#!/usr/bin/env python3
"""Reference values for `kiln_vae::VonMisesFisher::kl_to_uniform_grad` (crates/kiln-vae/src/vmf.rs,
test `kl_gradient_in_kappa_matches_a_50_digit_reference`): dKL/dkappa of KL(vMF(mu, kappa) || uniform
on S^(d-1)) by a central difference of the KL itself at 50 significant digits (mpmath's Bessel
functions), an implementation independent of Kiln's (which uses a closed form and its own series).

    pip install mpmath==1.3.0 && python3 scripts/reference/vmf_kappa_gradients.py
"""
from mpmath import besseli, log, loggamma, mp, mpf, nstr, pi

mp.dps = 50


def kl(d, k):
    h = mpf(d) / 2
    a = besseli(h, k) / besseli(h - 1, k)
    log_c = (h - 1) * log(k) - h * log(2 * pi) - log(besseli(h - 1, k))
    log_c0 = loggamma(h) - log(2) - h * log(pi)
    return k * a + log_c - log_c0


for d, k in [(2, "0.05"), (2, "20"), (2, "1000"), (2, "10000"), (5, "10000"), (10, "20"), (64, "100"),
             (256, "0.05"), (256, "10000")]:
    k = mpf(k)
    step = mpf("1e-20")
    grad = (kl(d, k + step) - kl(d, k - step)) / (2 * step)
    print(f"({d}, {float(k)!r}, {nstr(grad, 17)}),")
