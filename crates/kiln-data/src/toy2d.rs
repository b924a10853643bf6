//! Generated 2-D distributions, the standard WGAN test beds (Gulrajani et al. 2017's toy code):
//! 8 Gaussians on a circle, a 5×5 grid of 25 Gaussians, a Swiss roll and two moons.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// `[data]` of `kind = "toy2d"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toy2dDataConfig {
    /// Which distribution.
    pub distribution: Toy2d,
    /// Points per set in the evaluation's exact W1.
    #[serde(default = "default_eval_points")]
    pub eval_points: usize,
}

fn default_eval_points() -> usize {
    1000
}

/// Which distribution. TOML: `[data] kind = "toy2d"`, `distribution = "eight_gaussians"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toy2d {
    /// Eight Gaussians (σ = 0.02) at radius 2, every 45°.
    EightGaussians,
    /// Twenty-five Gaussians (σ = 0.05) on the grid `{−4, −2, 0, 2, 4}²`.
    TwentyFiveGaussians,
    /// A Swiss roll (`t ∈ [1.5π, 4.5π]`, point `t (cos t, sin t) / 5`, noise σ = 0.05).
    SwissRoll,
    /// Two interleaved half circles of radius 1 (noise σ = 0.05).
    TwoMoons,
}

impl Toy2d {
    /// Mode centres and the standard deviation around them, for the mixtures.
    pub fn modes(&self) -> Option<(Vec<[f32; 2]>, f32)> {
        match self {
            Self::EightGaussians => Some((
                (0..8)
                    .map(|k| {
                        let a = std::f32::consts::FRAC_PI_4 * k as f32;
                        [2.0 * a.cos(), 2.0 * a.sin()]
                    })
                    .collect(),
                0.02,
            )),
            Self::TwentyFiveGaussians => {
                Some(((0..25).map(|k| [2.0 * (k / 5) as f32 - 4.0, 2.0 * (k % 5) as f32 - 4.0]).collect(), 0.05))
            }
            Self::SwissRoll | Self::TwoMoons => None,
        }
    }

    /// `n` samples.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<[f32; 2]> {
        let noise = |s: f32, rng: &mut R| Normal::new(0.0f32, s).expect("positive sigma").sample(rng);
        match self {
            Self::EightGaussians | Self::TwentyFiveGaussians => {
                let (centres, sigma) = self.modes().expect("a mixture");
                (0..n)
                    .map(|_| {
                        let c = centres[rng.random_range(0..centres.len())];
                        [c[0] + noise(sigma, rng), c[1] + noise(sigma, rng)]
                    })
                    .collect()
            }
            Self::SwissRoll => (0..n)
                .map(|_| {
                    let t = std::f32::consts::PI * (1.5 + 3.0 * rng.random::<f32>());
                    [t * t.cos() / 5.0 + noise(0.05, rng), t * t.sin() / 5.0 + noise(0.05, rng)]
                })
                .collect(),
            Self::TwoMoons => (0..n)
                .map(|_| {
                    let t = std::f32::consts::PI * rng.random::<f32>();
                    let (x, y) = if rng.random::<bool>() { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
                    [x + noise(0.05, rng), y + noise(0.05, rng)]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// The mixtures' samples lie around their centres with the stated spread: the distance to the
    /// nearest centre of a 2-D Gaussian is Rayleigh, mean `σ √(π/2)`, and almost never beyond `6σ`;
    /// the roll and the moons have the stated extent.
    #[test]
    fn samples_have_the_stated_shapes() {
        let mut rng = StdRng::seed_from_u64(0);
        for toy in [Toy2d::EightGaussians, Toy2d::TwentyFiveGaussians] {
            let (centres, sigma) = toy.modes().unwrap();
            let distances: Vec<f32> = toy
                .sample(5000, &mut rng)
                .iter()
                .map(|p| centres.iter().map(|c| (c[0] - p[0]).hypot(c[1] - p[1])).fold(f32::MAX, f32::min))
                .collect();
            let mean = distances.iter().sum::<f32>() / 5000.0;
            let want = sigma * (std::f32::consts::PI / 2.0).sqrt();
            assert!((mean - want).abs() < 0.03 * want, "{toy:?}: mean distance {mean}, want {want}");
            assert!(distances.iter().all(|&r| r < 6.0 * sigma), "{toy:?}");
        }
        let roll = Toy2d::SwissRoll.sample(2000, &mut rng);
        let r_max = roll
            .iter()
            .map(|p| p[0].hypot(p[1]))
            .fold(0.0f32, |m, r| if m.is_nan() || r.is_nan() { f32::NAN } else { m.max(r) });
        assert!((r_max - 4.5 * std::f32::consts::PI / 5.0).abs() < 0.3, "{r_max}");
        let moons = Toy2d::TwoMoons.sample(2000, &mut rng);
        let mean_x = moons.iter().map(|p| p[0]).sum::<f32>() / 2000.0;
        assert!((mean_x - 0.5).abs() < 0.05, "{mean_x}");
    }
}
