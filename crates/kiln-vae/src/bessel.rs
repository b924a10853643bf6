//! The modified Bessel function of the first kind in log space, `ln I_ν(x)`, which the vMF normaliser
//! and mean resultant length need for `ν = d/2 − 1` up to 127 and `x = κ` up to 1e4 and beyond, where
//! `I_ν(x)` itself overflows (`I_0(1e4) ≈ e^{9995}`) or underflows (`I_127(1) ≈ e^{−580}`).
//!
//! Method: the power series `I_ν(x) = Σ_k t_k`, `t_k = (x/2)^{2k+ν} / (k! Γ(k+ν+1))`, every term
//! positive, so no cancellation can occur. The terms rise while `k(k+ν) ≤ (x/2)²` and fall after, so
//! the sum starts at the largest term `t_{k*}`, `k* = ⌊(√(ν² + x²) − ν)/2⌋`, whose logarithm comes
//! from `lgamma`, and walks outwards in both directions with the ratio
//! `t_{k+1}/t_k = (x/2)² / ((k+1)(k+ν+1))`, in plain floating point relative to `t_{k*}` (every
//! term is at most about 1 there, so nothing overflows), until the terms fall below 1e-18 of the sum.
//! Around the peak `ln t_k` is close to a parabola of width `√x/2`, so that takes about `9√x` terms
//! (900 at `x = 1e4`; summing from `k = 0` takes `x/2 + 10√x`), each a multiplication and a
//! division. One walk gives both `ln I_ν(x)` and the ratio `I_{ν+1}(x)/I_ν(x)`
//! ([`log_bessel_i_and_ratio`]), which the vMF's KL needs together for every row of a batch with a
//! learned κ. [`ive`] is SciPy's exponentially scaled `I_ν(x) e^{−x}`, finite wherever `ln I_ν` is.

/// `ln I_ν(x)` for `ν ≥ 0`, `x ≥ 0` (`x = 0`: `0` for `ν = 0`, else `−∞`).
///
/// # Panics
///
/// If `ν < 0` or `x < 0` or either is NaN.
pub fn log_bessel_i(nu: f64, x: f64) -> f64 {
    log_bessel_i_and_ratio(nu, x).0
}

/// `I_{ν+1}(x) / I_ν(x)`, accurate to a few ulps for every `ν ≥ 0, x > 0` (`0` at `x = 0`): both series
/// share their terms (`t_k^{(ν+1)} = t_k^{(ν)} · (x/2)/(k+ν+1)`), so the ratio is a weighted mean of
/// `(x/2)/(k+ν+1)` and never subtracts two huge logarithms.
///
/// # Panics
///
/// If `ν < 0` or `x < 0` or either is NaN.
pub fn bessel_i_ratio(nu: f64, x: f64) -> f64 {
    log_bessel_i_and_ratio(nu, x).1
}

/// [`log_bessel_i`] and [`bessel_i_ratio`] from one summation of the series.
///
/// # Panics
///
/// If `ν < 0` or `x < 0` or either is NaN.
pub fn log_bessel_i_and_ratio(nu: f64, x: f64) -> (f64, f64) {
    assert!(nu >= 0.0 && x >= 0.0, "Bessel I needs nu >= 0 and x >= 0, got nu = {nu}, x = {x}");
    if x == 0.0 {
        return (if nu == 0.0 { 0.0 } else { f64::NEG_INFINITY }, 0.0);
    }
    let half_x = x / 2.0;
    let q = half_x * half_x;
    // The largest term: the last k with k(k+ν) ≤ (x/2)².
    let peak = ((nu.hypot(x) - nu) / 2.0).floor().max(0.0);
    let log_peak = (2.0 * peak + nu) * half_x.ln() - libm::lgamma(peak + 1.0) - libm::lgamma(peak + nu + 1.0);
    // Relative to t_{k*}: the sum of the terms and of the terms times (x/2)/(k+ν+1).
    let (mut sum, mut weighted) = (1.0, half_x / (peak + nu + 1.0));
    // Upwards: t_{k+1} = t_k (x/2)² / ((k+1)(k+ν+1)).
    let (mut k, mut t) = (peak, 1.0);
    loop {
        t *= q / ((k + 1.0) * (k + nu + 1.0));
        k += 1.0;
        sum += t;
        weighted += t * half_x / (k + nu + 1.0);
        if t < sum * TAIL {
            break;
        }
    }
    // Downwards: t_{k−1} = t_k k(k+ν) / (x/2)².
    let (mut k, mut t) = (peak, 1.0);
    while k > 0.0 {
        t *= k * (k + nu) / q;
        k -= 1.0;
        sum += t;
        weighted += t * half_x / (k + nu + 1.0);
        if t < sum * TAIL {
            break;
        }
    }
    (log_peak + sum.ln(), weighted / sum)
}

/// Where the walk stops: a term below this fraction of the sum (the remaining tail, falling at least
/// geometrically, is below f64's resolution of the sum).
const TAIL: f64 = 1e-18;

/// The exponentially scaled `I_ν(x) e^{−x}` (SciPy's `ive`).
pub fn ive(nu: f64, x: f64) -> f64 {
    (log_bessel_i(nu, x) - x).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from SciPy 1.17 (`np.log(ive(nu, x)) + x`), produced by
    /// `scripts/reference/bessel_reference.py`; they span tiny and huge arguments and orders.
    #[test]
    fn matches_scipy() {
        let cases: [(f64, f64, f64); 10] = [
            (0.0, 1e-3, 2.499999844061702e-07),
            (0.5, 1.0, -0.0643519910735304),
            (1.5, 10.0, 7.824408407159668),
            (4.0, 0.1, -15.160482945395259),
            (127.0, 1e4, 9993.669424296651),
            (127.0, 1.0, -579.5811870441963),
            (9.5, 300.0, 296.0789320142848),
            (0.0, 1e4, 9994.475903781433),
            (63.0, 50.0, 10.926458406448816),
            (2.5, 5e3, 4994.821864811087),
        ];
        for (nu, x, expected) in cases {
            let got = log_bessel_i(nu, x);
            let tol = 1e-12 * (1.0 + expected.abs());
            assert!((got - expected).abs() < tol, "ln I_{nu}({x}) = {got}, SciPy {expected}");
        }
    }

    /// Closed forms at half-integer order: `I_{1/2}(x) = √(2/(πx)) sinh x`.
    #[test]
    fn half_integer_closed_form() {
        for x in [0.01, 0.7, 3.0, 40.0] {
            let exact = (2.0 / (std::f64::consts::PI * x)).sqrt().ln() + f64::sinh(x).ln();
            assert!((log_bessel_i(0.5, x) - exact).abs() < 1e-13, "x = {x}");
        }
        assert_eq!(log_bessel_i(0.0, 0.0), 0.0);
        assert_eq!(log_bessel_i(1.0, 0.0), f64::NEG_INFINITY);
        assert!(ive(127.0, 1e5).is_finite() && ive(127.0, 1e5) > 0.0);
    }

    /// Orders 1/2 and 3/2 have closed forms at every `x`, `I_{1/2} = √(2/(πx)) sinh x` and
    /// `I_{3/2} = √(2/(πx)) (cosh x − sinh x / x)`, so `I_{3/2}/I_{1/2} = coth x − 1/x`: the walk
    /// from the peak against them from tiny arguments (a peak at `k = 0`) to `x = 1e6` (half a
    /// million terms below the peak, `lgamma` of half a million).
    #[test]
    fn half_integer_orders_over_the_whole_range() {
        for x in [1e-3f64, 0.05, 0.5, 3.0, 40.0, 700.0, 1e4, 2.5e5, 1e6] {
            // ln sinh x = x + ln((1 − e^{−2x})/2), without overflow.
            let log_sinh = x + (-(-2.0 * x).exp_m1() / 2.0).ln();
            let log_front = 0.5 * (2.0 / (std::f64::consts::PI * x)).ln();
            // coth x − 1/x, by its series where the difference cancels.
            let ratio = if x < 0.1 {
                x / 3.0 - x.powi(3) / 45.0 + 2.0 * x.powi(5) / 945.0 - x.powi(7) / 4725.0 + 2.0 * x.powi(9) / 93555.0
            } else {
                1.0 / x.tanh() - 1.0 / x
            };
            let log_half = log_front + log_sinh;
            // I_{3/2} = I_{1/2} · ratio.
            let log_three_halves = log_half + ratio.ln();
            for (nu, expected) in [(0.5, log_half), (1.5, log_three_halves)] {
                let got = log_bessel_i(nu, x);
                assert!(
                    (got - expected).abs() < 1e-13 * (1.0 + expected.abs()),
                    "ln I_{nu}({x}) = {got}, exact {expected}"
                );
            }
            let got = bessel_i_ratio(0.5, x);
            assert!((got - ratio).abs() < 1e-14 * ratio, "I_1.5/I_0.5 at {x} = {got}, exact {ratio}");
        }
    }
}
