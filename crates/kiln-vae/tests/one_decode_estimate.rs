//! `one_decode_estimate`, the figure the S-VAE authors' TensorFlow example reports as the
//! log-likelihood: `ln p(x|z_0) + ln (1/K) Σ_k p(z_k) / q(z_k|x)`.
//!
//! Two checks:
//!
//! - identities: with a decoder blind to `z` it is the importance-sampled estimate itself, and with
//!   `K = 1` it is a one-sample ELBO;
//! - its excess over the ELBO, `ln (1/K) Σ_k p(z_k) / q(z_k|x) + KL`, depends on the posterior
//!   alone. Built from Kiln's pieces (`Posterior::repeat`, the sampler of `w`, `Posterior::sample`,
//!   `Posterior::log_ratio`, `Posterior::kl`), its mean over 2000 sets of `K = 500` draws must match
//!   `scripts/reference/one_decode_gain.py` (NumPy and SciPy, 100,000 sets) within four standard
//!   errors. The excess lives in the tail of `p(z) / q(z|x)`, so the check reaches the sampler's
//!   tail, not only its mean; through the KL it also sets the mean resultant length `A_d(κ)` against
//!   the sampler's draws. (An error in the vMF normaliser would cancel between the KL and the
//!   log-ratios: `importance_sampling.rs` checks that.)

use burn::prelude::*;
use kiln_vae::{KappaConfig, LatentConfig, Posterior, SamplerKind, log_mean_exp, one_decode_estimate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

const K: usize = 500;
const SETS: usize = 2000;
/// Sets per tensor batch.
const CHUNK: usize = 100;

fn matrix(v: Vec<f32>, rows: usize, device: &Device) -> Tensor<2> {
    let cols = v.len() / rows;
    Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), device)
}

fn values(t: Tensor<1>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// One excess over the ELBO per set of `K` draws from `posterior` (a single row).
fn gains(config: &LatentConfig, posterior: &Posterior, seed: u64) -> Vec<f64> {
    let device = Device::flex();
    let d = config.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(SETS);
    let kl = posterior.repeat(CHUNK).kl(config.vmf());
    for _ in 0..SETS / CHUNK {
        let repeated = posterior.repeat(CHUNK * K);
        let n = CHUNK * K;
        let w = config.sampler().map(|s| matrix(s.draw(n, &mut rng), n, &device));
        let eps: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let z = repeated.sample(w, matrix(eps, n, &device));
        let log_ratios = repeated.log_ratio(z, config.vmf()).reshape([CHUNK, K]);
        let no_decoder = Tensor::<1>::zeros([CHUNK], &device);
        out.extend(values(one_decode_estimate(no_decoder, log_ratios) + kl.clone()));
    }
    out
}

fn check(case: &str, gains: &[f64], reference: f64, reference_se: f64) {
    let n = gains.len() as f64;
    let mean = gains.iter().sum::<f64>() / n;
    let sd = (gains.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let se = (sd * sd / n + reference_se * reference_se).sqrt();
    eprintln!("{case}: mean excess {mean:.4} (se {:.4}), reference {reference}", sd / n.sqrt());
    assert!(se < 0.06, "{case}: standard error {se} too wide for the check to mean anything");
    assert!(
        (mean - reference).abs() < 4.0 * se,
        "{case}: mean excess over the ELBO {mean}, reference {reference}, difference {} > 4 se = {}",
        (mean - reference).abs(),
        4.0 * se
    );
}

#[test]
fn excess_over_the_elbo_matches_the_reference() {
    let device = Device::flex();
    // `python scripts/reference/one_decode_gain.py`:
    //   vmf m=3 kappa=1000: gain 1.2387 se 0.0020 (K = 500, 100000 sets)
    //   vmf m=21 kappa=345: gain 6.7319 se 0.0051 (K = 500, 100000 sets)
    //   gaussian d=5 mean=0.5 sd=0.1: gain 2.5485 se 0.0029 (K = 500, 100000 sets)
    for (d, kappa, reference, se) in [(3, 1000.0, 1.2387, 0.0020), (21, 345.0, 6.7319, 0.0051)] {
        let config = LatentConfig::Vmf { d, kappa: KappaConfig::Fixed(kappa), sampler: SamplerKind::Wood };
        let mut mu = vec![0.0f32; d];
        mu[d - 1] = 0.6;
        mu[0] = 0.8;
        let posterior = Posterior::Vmf { mu: matrix(mu, 1, &device), kappa: None };
        check(
            &format!("vMF on S^{} at kappa {kappa}", d - 1),
            &gains(&config, &posterior, 7 + d as u64),
            reference,
            se,
        );
    }
    let config = LatentConfig::Gaussian { d: 5 };
    let log_var = 2.0 * 0.1f32.ln();
    let posterior =
        Posterior::Gaussian { mean: matrix(vec![0.5; 5], 1, &device), log_var: matrix(vec![log_var; 5], 1, &device) };
    check("Gaussian, d = 5, sd 0.1", &gains(&config, &posterior, 5), 2.5485, 0.0029);
}

#[test]
fn identities_with_the_importance_sampled_estimate() {
    let device = Device::flex();
    let mut rng = StdRng::seed_from_u64(3);
    let log_ratios: Vec<f32> =
        (0..4 * 7).map(|_| 3.0 * Distribution::<f32>::sample(&StandardNormal, &mut rng)).collect();
    let log_ratios = matrix(log_ratios, 4, &device);
    let nll = Tensor::<1>::from_floats([90.0, 120.5, 64.25, 101.0], &device);
    // A decoder blind to z: every sample's −ln p(x|z_k) is the one of z_0.
    let importance = log_mean_exp((log_ratios.clone() + nll.clone().unsqueeze_dim::<2>(1).expand([4, 7])).neg());
    let one_decode = one_decode_estimate(nll.clone(), log_ratios.clone());
    for (a, b) in values(importance).iter().zip(values(one_decode)) {
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "blind decoder: importance {a}, one-decode {b}");
    }
    // K = 1: −ln p(x|z_0) − (ln q(z_1|x) − ln p(z_1)), a one-sample ELBO.
    let first = log_ratios.slice([0..4, 0..1]);
    let one = values(one_decode_estimate(nll.clone(), first.clone()));
    let elbo = values((nll + first.squeeze_dim::<1>(1)).neg());
    for (a, b) in one.iter().zip(&elbo) {
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "K = 1: one-decode {a}, one-sample ELBO {b}");
    }
}
