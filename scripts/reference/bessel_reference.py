"""Reference values for kiln-vae's Bessel and vMF tests (SciPy's exponentially scaled ive).

    python scripts/reference/bessel_reference.py

Prints ln I_nu(x) = log(ive(nu, x)) + x on the grid used in crates/kiln-vae/src/bessel.rs, and the mean
resultant length A_d(kappa) = ive(d/2, kappa) / ive(d/2 - 1, kappa) used in crates/kiln-vae/src/vmf.rs.
"""
import numpy as np
from scipy.special import ive

for nu, x in [(0, 1e-3), (0.5, 1.0), (1.5, 10.0), (4, 0.1), (127, 1e4), (127, 1.0), (9.5, 300.0),
              (0, 1e4), (63, 50.0), (2.5, 5e3)]:
    print(f"ln I_{nu}({x}) = {float(np.log(ive(nu, x)) + x)!r}")
for d, k in [(3, 1.0), (3, 20.0), (10, 20.0), (256, 1e4), (256, 1.0), (64, 100.0)]:
    print(f"A_{d}({k}) = {float(ive(d / 2, k) / ive(d / 2 - 1, k))!r}")
