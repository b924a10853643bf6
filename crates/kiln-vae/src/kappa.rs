//! A learned concentration (Davidson et al. 2018): the vMF pieces that depend on a per-example κ,
//! as tensors that Burn's autodiff differentiates in κ.
//!
//! Both the KL and Wood's `w` are computed on the host in f64 (the Bessel series and the rejection
//! loop are not tensor operations), then handed to autodiff *linearised* at the point:
//! `value + (κ − stop_gradient(κ)) · ∂value/∂κ`, whose value is `value` and whose gradient in κ is
//! `∂value/∂κ` exactly. Burn's autodiff is first-order, so nothing more is needed.
//!
//! - [`kl_of_kappa`]: `KL(vMF(μ, κ) ‖ U(S^{d−1}))` per row, with [`VonMisesFisher::kl_to_uniform_grad`].
//! - [`wood_w_of_kappa`]: one `w` per row from Wood's sampler at that row's κ, with the gradient of the
//!   accepted proposal `w = h(e, κ)` at its Beta draw `e` ([`WoodSampler::w_and_grad`]). The
//!   correction term for the acceptance step's own dependence on κ (Naesseth et al. 2017's `g_cor`) is
//!   not included: Davidson et al. report it small and leave it out of their experiments.

use burn::prelude::*;
use rand::Rng;

use crate::vmf::{VonMisesFisher, WoodSampler};

/// `value + (x − stop_gradient(x)) · grad`, per element: `value` with gradient `grad` in `x`.
fn linearised(x: Tensor<1>, value: &[f64], grad: &[f64]) -> Tensor<1> {
    let device = x.device();
    let as_tensor =
        |v: &[f64]| Tensor::<1>::from_data(TensorData::new(v.iter().map(|&a| a as f32).collect(), [v.len()]), &device);
    as_tensor(value) + (x.clone() - x.detach()) * as_tensor(grad)
}

/// Host copies of κ in f64.
fn host(kappa: &Tensor<1>) -> Vec<f64> {
    kappa
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("kappa as f32")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// `f(κ_i)` for every row, evaluated once per run of equal κ: the rows of a repeated posterior
/// (`Posterior::repeat`, k importance samples per image) come in runs of k equal values, and each
/// evaluation is a Bessel series.
fn per_row<T: Clone>(kappa: &[f64], mut f: impl FnMut(f64) -> T) -> Vec<T> {
    let mut last: Option<(f64, T)> = None;
    kappa
        .iter()
        .map(|&k| match &last {
            Some((same, value)) if *same == k => value.clone(),
            _ => {
                let value = f(k);
                last = Some((k, value.clone()));
                value
            }
        })
        .collect()
}

/// `KL(vMF(·, κ_i) ‖ uniform on S^{d−1})` per row, differentiable in κ.
///
/// # Shapes
///
/// - `kappa`: `[b]`, positive → `[b]`
///
/// # Panics
///
/// If `d < 2` or a κ is not finite and non-negative.
pub fn kl_of_kappa(d: usize, kappa: Tensor<1>) -> Tensor<1> {
    let (value, grad): (Vec<f64>, Vec<f64>) =
        per_row(&host(&kappa), |k| VonMisesFisher::new(d, k).kl_to_uniform_and_grad()).into_iter().unzip();
    linearised(kappa, &value, &grad)
}

/// `ln C_d(κ_i) − ln C_d(0)` per row, the log density ratio of `vMF(μ, κ_i)` to the uniform at
/// `μᵀz = 0`, without gradient (it serves evaluation).
///
/// # Shapes
///
/// - `kappa`: `[b]`, positive → `[b]`
pub fn log_normalizer_ratios(d: usize, kappa: &Tensor<1>) -> Tensor<1> {
    let uniform = VonMisesFisher::new(d, 0.0).log_normalizer();
    let ratios = per_row(&host(kappa), |k| (VonMisesFisher::new(d, k).log_normalizer() - uniform) as f32);
    let n = ratios.len();
    Tensor::<1>::from_data(TensorData::new(ratios, [n]), &kappa.device())
}

/// One `w = μᵀz` per row from Wood's sampler at that row's κ, differentiable in κ through the
/// accepted proposal (see the module's documentation).
///
/// # Shapes
///
/// - `kappa`: `[b]`, positive → `[b]`
///
/// # Panics
///
/// If `d < 2` or a κ is not finite and non-negative.
pub fn wood_w_of_kappa<R: Rng + ?Sized>(d: usize, kappa: Tensor<1>, rng: &mut R) -> Tensor<1> {
    // Every row draws its own w; the sampler is built once per run of equal κ.
    let samplers = per_row(&host(&kappa), |k| WoodSampler::new(VonMisesFisher::new(d, k)));
    let (value, grad): (Vec<f64>, Vec<f64>) =
        samplers.iter().map(|sampler| sampler.w_and_grad(sampler.sample_accepted_e(rng))).unzip();
    linearised(kappa, &value, &grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Through autodiff, `Σ c_i KL(κ_i)` has the gradient `c_i ∂KL/∂κ(κ_i)` (itself tested against f64
    /// finite differences and a 50-digit reference in `vmf`), and the values are the KL's; the
    /// gradient also matches f64 central differences of the host KL directly.
    #[test]
    fn kl_tensor_has_the_kl_and_its_kappa_gradient() {
        let device = Device::flex().autodiff();
        let d = 10;
        let kappas = [0.5f32, 3.0, 20.0, 150.0, 2000.0];
        let coefficients = [1.0f32, -2.0, 0.5, 3.0, 1.5];
        let kappa = Tensor::<1>::from_floats(kappas, &device).require_grad();
        let c = Tensor::<1>::from_floats(coefficients, &device);
        let kl = kl_of_kappa(d, kappa.clone());
        let grads = (kl.clone() * c).sum().backward();
        let got = vec1(kappa.grad(&grads).unwrap());
        for (i, &k) in kappas.iter().enumerate() {
            let vmf = VonMisesFisher::new(d, f64::from(k));
            let value = f64::from(vec1(kl.clone())[i]);
            assert!((value - vmf.kl_to_uniform()).abs() <= 1e-6 * vmf.kl_to_uniform().max(1.0), "kappa {k}: {value}");
            let want = f64::from(coefficients[i]) * vmf.kl_to_uniform_grad();
            let h = 1e-5 * f64::from(k).max(10.0);
            let fd = f64::from(coefficients[i])
                * (VonMisesFisher::new(d, f64::from(k) + h).kl_to_uniform()
                    - VonMisesFisher::new(d, f64::from(k) - h).kl_to_uniform())
                / (2.0 * h);
            let g = f64::from(got[i]);
            assert!((g - want).abs() <= 1e-6 * want.abs(), "kappa {k}: autodiff {g}, closed form {want}");
            assert!((g - fd).abs() <= 1e-5 * fd.abs(), "kappa {k}: autodiff {g}, finite differences {fd}");
        }
    }

    /// Wood's `w` per row: the values are the sampler's (the same seed gives the same draws as
    /// [`WoodSampler::sample`]), within [−1, 1], and through autodiff `Σ c_i w_i` has the gradient
    /// `c_i ∂h/∂κ(e_i, κ_i)` at each row's accepted Beta draw, which matches f64 central differences
    /// of `h(e_i, ·)` with that draw held fixed.
    #[test]
    fn wood_w_tensor_has_the_draws_and_their_kappa_gradient() {
        let device = Device::flex().autodiff();
        for d in [3usize, 20, 256] {
            let kappas = [0.5f32, 5.0, 50.0, 500.0];
            let coefficients = [1.0f32, -1.0, 2.0, 0.25];
            let kappa = Tensor::<1>::from_floats(kappas, &device).require_grad();
            let c = Tensor::<1>::from_floats(coefficients, &device);
            let w = wood_w_of_kappa(d, kappa.clone(), &mut StdRng::seed_from_u64(3));
            let grads = (w.clone() * c).sum().backward();
            let got = vec1(kappa.grad(&grads).unwrap());
            let values = vec1(w);
            // The same draws, again on the host, with each row's accepted e kept.
            let mut rng = StdRng::seed_from_u64(3);
            for (i, &k) in kappas.iter().enumerate() {
                let sampler = WoodSampler::new(VonMisesFisher::new(d, f64::from(k)));
                let e = sampler.sample_accepted_e(&mut rng);
                let (w_host, grad) = sampler.w_and_grad(e);
                assert!((f64::from(values[i]) - w_host).abs() < 1e-6 && w_host.abs() <= 1.0, "d {d}, kappa {k}");
                let h = 1e-5 * f64::from(k).max(1.0);
                let at = |kk: f64| WoodSampler::new(VonMisesFisher::new(d, kk)).w_and_grad(e).0;
                let fd = f64::from(coefficients[i]) * (at(f64::from(k) + h) - at(f64::from(k) - h)) / (2.0 * h);
                let g = f64::from(got[i]);
                assert!((g - f64::from(coefficients[i]) * grad).abs() <= 1e-6 * g.abs().max(1e-9), "d {d}, kappa {k}");
                assert!(
                    (g - fd).abs() <= 1e-4 * fd.abs().max(1e-6),
                    "d {d}, kappa {k}: autodiff {g}, finite differences {fd}"
                );
            }
        }
    }
}
