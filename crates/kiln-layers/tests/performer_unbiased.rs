//! FAVOR+ is an unbiased estimator of the softmax kernel: over many draws of Kiln's projection
//! (`Performer::new` with different seeds), the kernel estimate rebuilt from Kiln's own features has
//! mean `exp(q'·k')` (`q' = q / d^(1/4)`, the scaling the features apply) within four standard
//! errors. The bound uses the variance of independent Gaussian features, Lemma 1 of Choromanski et al.
//! (2021): `Var = exp(2 q'·k') (exp(‖q' + k'‖²) − 1) / m` per draw; block-orthogonal rows (Kiln's)
//! have no larger variance (their Theorem 2), so the bound is conservative. Under the normal
//! approximation an unbiased estimator falls outside it with probability 6·10⁻⁵; the draws are
//! seeded, so the test is deterministic.

use burn::prelude::*;
use kiln_layers::Performer;
use kiln_layers::attention::PERFORMER_FEATURE_EPS;

fn values(t: Tensor<4>) -> Vec<f64> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

#[test]
fn favor_plus_estimates_the_softmax_kernel_without_bias() {
    let device = Device::flex();
    let (d, m, draws) = (8usize, 16usize, 4000u64);
    let q: Vec<f32> = vec![0.6, -0.3, 0.9, 0.1, -0.5, 0.4, 0.2, -0.7];
    let k: Vec<f32> = vec![0.5, 0.2, 0.7, -0.4, -0.3, 0.6, -0.1, -0.2];
    let scale = (d as f64).powf(-0.25);
    let qs: Vec<f64> = q.iter().map(|&x| f64::from(x) * scale).collect();
    let ks: Vec<f64> = k.iter().map(|&x| f64::from(x) * scale).collect();
    let dot: f64 = qs.iter().zip(&ks).map(|(a, b)| a * b).sum();
    let sum_sq: f64 = qs.iter().zip(&ks).map(|(a, b)| (a + b).powi(2)).sum();
    let exact = dot.exp();
    let tensor = |x: &[f32]| Tensor::<1>::from_floats(x, &device).reshape([1, 1, 1, d]);

    let mut total = 0.0;
    for seed in 0..draws {
        let performer = Performer::new(d, m, 0, seed, 64, &device);
        let fq = values(performer.features(tensor(&q), true, false, None));
        let fk = values(performer.features(tensor(&k), false, false, None));
        // Undo the stabilisers (each feature vector's max of `W x'`, computed here from the
        // projection) and the 1e-4 floor: what is left is the plain FAVOR+ estimate
        // (1/m) Σ exp(wᵢ·q' − ‖q'‖²/2) exp(wᵢ·k' − ‖k'‖²/2).
        let w: Vec<f64> = performer
            .projection
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let project =
            |x: &[f64]| -> Vec<f64> { w.chunks(d).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect() };
        let max = |v: Vec<f64>| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
        let (stab_q, stab_k) = (max(project(&qs)), max(project(&ks)));
        let root_m = (m as f64).sqrt();
        let estimate: f64 = fq
            .iter()
            .zip(&fk)
            .map(|(a, b)| (a * root_m - PERFORMER_FEATURE_EPS) * (b * root_m - PERFORMER_FEATURE_EPS))
            .sum::<f64>()
            * (stab_q + stab_k).exp()
            / m as f64;
        total += estimate;
    }
    let mean = total / draws as f64;
    let variance = (2.0 * dot).exp() * (sum_sq.exp() - 1.0) / m as f64;
    let bound = 4.0 * (variance / draws as f64).sqrt();
    assert!((mean - exact).abs() < bound, "mean {mean} vs exp(q'·k') = {exact}, bound {bound}");
    // The bound is tight enough to see a bias: leaving out one ‖x‖²/2 term would shift the mean by a
    // factor exp(‖q'‖²/2), far outside it.
    let half_q: f64 = qs.iter().map(|a| a * a).sum::<f64>() / 2.0;
    assert!(exact * (half_q.exp() - 1.0) > 5.0 * bound, "bound {bound} too loose to catch a bias");
}
