//! A WGAN on MNIST as a Kiln task: DCGAN networks, the same critic/generator alternation as the 2-D
//! task, and image-quality measures from a judge — a classifier trained with Kiln (any `kind = "vit"`
//! run directory):
//!
//! - class coverage: the judge's predicted classes of `eval_samples` generated digits, the number
//!   of classes holding at least 1% of them, and the entropy of the class histogram (`ln 10 ≈ 2.303`
//!   when uniform);
//! - a Fréchet distance `‖μ_g − μ_r‖² + Tr(Σ_g + Σ_r − 2 (Σ_r^{1/2} Σ_g Σ_r^{1/2})^{1/2})` between the
//!   judge's pooled features of generated and of real digits of the split (validation: the last
//!   `n_valid` training images; test: the test file) (FID's formula in the judge's
//!   feature space; not comparable with Inception-based FIDs), and `frechet_real`, the same distance
//!   between as many real training digits and those real digits: the floor a perfect generator reaches.
//!
//! After every evaluation a grid of 64 digits from fixed noise goes to `pictures/step-NNNNNN.png`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::Module;
use burn::prelude::*;
use kiln_data::mnist::{Mnist, MnistDataConfig};
use kiln_task::Context;
use kiln_task::{GenerateOptions, Goal, Metrics, Split, StepOutput, Task, step_rng, to_f32_vec};
use kiln_transformer::{Vit, VitConfig};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::lipschitz::{LipschitzConfig, PenaltyMethod, difference_penalty};
use crate::step::{Adversaries, WganBatch, wgan_step};
use crate::task::WganConfig;
use crate::{ConvCritic, ConvGenerator};

/// Generator and critic for images.
#[derive(Module, Debug)]
pub struct ImageWgan {
    /// Noise → image.
    pub generator: ConvGenerator,
    /// Image → score.
    pub critic: ConvCritic,
}

/// A critic or a generator step's inputs on `[b, 28, 28]` images.
pub type ImageBatch = WganBatch<3>;

impl Adversaries<3> for ImageWgan {
    type Critic = ConvCritic;

    fn critic(&self) -> &ConvCritic {
        &self.critic
    }

    fn generate(&self, noise: Tensor<2>) -> Tensor<3> {
        self.generator.forward(noise)
    }

    fn score(critic: &ConvCritic, x: Tensor<3>) -> Tensor<1> {
        critic.forward(x)
    }

    /// The difference-quotient penalty on flattened images (a convolutional critic's input
    /// gradient is not written out).
    fn penalty(
        &self,
        lipschitz: &LipschitzConfig,
        real: Tensor<3>,
        fake: Tensor<3>,
        alpha: Tensor<2>,
        random: Tensor<2>,
    ) -> Option<Tensor<1>> {
        let LipschitzConfig::GradientPenalty { lambda, step, .. } = *lipschitz else { return None };
        let b = real.dims()[0];
        let (real, fake) = (real.reshape([b, 784]), fake.reshape([b, 784]));
        let direction = fake - real.clone();
        let x_hat = real + direction.clone() * alpha;
        let critic = |x: Tensor<2>| self.critic.forward(x.reshape([b, 28, 28]));
        Some(difference_penalty(&critic, x_hat, direction, random, lambda, step))
    }
}

/// A WGAN on MNIST.
pub struct MnistWganTask {
    model: WganConfig,
    train: Mnist,
    valid: Mnist,
    test: Mnist,
    run_dir: OnceLock<PathBuf>,
    /// The Fréchet distance between real training digits and the real validation / test digits
    /// (computed once per split).
    frechet_floor: [OnceLock<f64>; 2],
}

const STREAM_TRAIN: u64 = 0x6D4E_0000;
const STREAM_EVAL: u64 = 0x6D4E_0001;
const EVAL_SEED: u64 = 91;

impl MnistWganTask {
    /// Read MNIST; check the judge run directory if one is given.
    ///
    /// # Errors
    ///
    /// An invalid config, unreadable MNIST files, or a judge directory without a config.
    pub fn new(model: WganConfig, data: &MnistDataConfig) -> kiln_task::Result<Self> {
        model.validate()?;
        kiln_task::ensure!(
            !matches!(model.lipschitz, LipschitzConfig::GradientPenalty { method: PenaltyMethod::Exact, .. }),
            "model.lipschitz: the exact gradient penalty needs an MLP critic; on images use method = \"difference\""
        );
        if let Some(judge) = &model.judge {
            let path = judge.join("config.toml");
            kiln_task::ensure!(
                path.is_file(),
                "model.judge: {} is not a kiln run directory (no config.toml)",
                judge.display()
            );
        }
        let (all, test) = data.read_train_and_test()?;
        kiln_task::ensure!(
            all.rows == 28 && all.cols == 28,
            "the DCGAN networks need 28x28 images, got {}x{}",
            all.rows,
            all.cols
        );
        let (train, valid) = data.split(&all)?;
        Ok(Self { model, train, valid, test, run_dir: OnceLock::new(), frechet_floor: Default::default() })
    }

    fn noise_dim(&self) -> usize {
        self.model.noise_dim
    }

    fn noise(&self, n: usize, rng: &mut StdRng, device: &Device) -> Tensor<2> {
        let d = self.noise_dim();
        let v: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
        Tensor::<2>::from_data(TensorData::new(v, [n, d]), device)
    }

    fn images(&self, m: &Mnist, idx: &[usize], device: &Device) -> Tensor<3> {
        let pixels: Vec<f32> = idx.iter().flat_map(|&i| m.image(i)).collect();
        Tensor::<3>::from_data(TensorData::new(pixels, [idx.len(), 28, 28]), device)
    }

    /// The judge (a trained ViT) on `device`.
    fn judge(&self, device: &Device) -> kiln_task::Result<Option<Vit>> {
        let Some(dir) = &self.model.judge else { return Ok(None) };
        Ok(Some(load_judge(dir, device)?))
    }

    /// 64 digits from fixed noise.
    fn grid(&self, model: &ImageWgan, device: &Device) -> kiln_task::Result<Vec<Vec<f32>>> {
        let mut rng = step_rng(EVAL_SEED, STREAM_EVAL, 5);
        let images = model.generator.forward(self.noise(64, &mut rng, device));
        let v = to_f32_vec(images)?;
        Ok(v.chunks(784).map(<[f32]>::to_vec).collect())
    }
}

/// Load a `kind = "vit"` run's best (else latest) checkpoint, as `kiln eval` would: checksums
/// verified, the average of the weights where the run kept one.
///
/// # Errors
///
/// The run's config is not a ViT config, or no checkpoint loads.
pub fn load_judge(dir: &Path, device: &Device) -> kiln_task::Result<Vit> {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut model = value.remove("model").and_then(|m| m.as_table().cloned()).context("no [model] section")?;
    let kind = model.remove("kind");
    kiln_task::ensure!(
        kind.as_ref().and_then(toml::Value::as_str) == Some("vit"),
        "model.judge: {} is a `{}` run; the judge must be a `vit` classifier run",
        dir.display(),
        kind.map(|k| k.to_string()).unwrap_or_default()
    );
    let config: VitConfig = model.try_into().with_context(|| format!("{}: the [model] section", path.display()))?;
    let vit = config.init(10, device);
    let (_, vit) = kiln_task::run_dir::load_evaluated(dir, &["best", "latest"], vit).context("model.judge")?;
    Ok(vit)
}

/// Mean and covariance (`n − 1`) of rows.
fn moments(rows: &[Vec<f64>]) -> (Vec<f64>, DMatrix<f64>) {
    let (n, d) = (rows.len(), rows[0].len());
    let mut mean = vec![0.0; d];
    for r in rows {
        mean.iter_mut().zip(r).for_each(|(m, x)| *m += x / n as f64);
    }
    let centred = DMatrix::from_fn(n, d, |i, j| rows[i][j] - mean[j]);
    (mean, centred.transpose() * centred / (n as f64 - 1.0))
}

/// The symmetric positive semi-definite square root (eigenvalues clamped at 0).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m.clone());
    let roots = e.eigenvalues.map(|l| l.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&roots) * e.eigenvectors.transpose()
}

/// The Fréchet distance between Gaussians fitted to two sets of feature rows.
pub fn frechet_distance(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (ma, ca) = moments(a);
    let (mb, cb) = moments(b);
    let mean_term: f64 = ma.iter().zip(&mb).map(|(x, y)| (x - y).powi(2)).sum();
    let root_a = sqrt_psd(&ca);
    let cross = sqrt_psd(&(&root_a * &cb * &root_a));
    mean_term + ca.trace() + cb.trace() - 2.0 * cross.trace()
}

fn rows(t: Tensor<2>) -> kiln_task::Result<Vec<Vec<f64>>> {
    let d = t.dims()[1];
    let v = to_f32_vec(t)?;
    Ok(v.chunks(d).map(|r| r.iter().map(|&x| f64::from(x)).collect()).collect())
}

impl Task for MnistWganTask {
    type Model = ImageWgan;
    type Batch = ImageBatch;

    fn describe(&self) -> String {
        format!(
            "WGAN on MNIST ({:?}, {} critic steps per generator step, {} training images{})",
            self.model.lipschitz,
            self.model.n_critic,
            self.train.len(),
            self.model.judge.as_ref().map(|j| format!(", judged by {}", j.display())).unwrap_or_default()
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<ImageWgan> {
        Ok(ImageWgan {
            generator: ConvGenerator::new(self.noise_dim(), self.model.channels, device),
            critic: ConvCritic::new(self.model.channels, self.model.lipschitz.spectral(), device),
        })
    }

    fn train_len(&self) -> Option<usize> {
        None
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> ImageBatch {
        let mut rng = step_rng(seed, STREAM_TRAIN, step as u64);
        let noise = self.noise(batch_size, &mut rng, device);
        if self.model.is_critic_step(step) {
            let idx: Vec<usize> = (0..batch_size).map(|_| rng.random_range(0..self.train.len())).collect();
            let alpha: Vec<f32> = (0..batch_size).map(|_| rng.random::<f32>()).collect();
            let random: Vec<f32> = (0..batch_size * 784).map(|_| StandardNormal.sample(&mut rng)).collect();
            ImageBatch::Critic {
                random: Tensor::<2>::from_data(TensorData::new(random, [batch_size, 784]), device),
                real: self.images(&self.train, &idx, device),
                noise,
                alpha: Tensor::<2>::from_data(TensorData::new(alpha, [batch_size, 1]), device),
            }
        } else {
            ImageBatch::Generator { noise }
        }
    }

    fn step(&self, model: &ImageWgan, batch: ImageBatch) -> StepOutput {
        wgan_step(model, batch, &self.model.lipschitz)
    }

    fn on_optimizer_step(&self, model: &mut ImageWgan, step: usize) {
        self.model.lipschitz.after_step(&mut model.critic, self.model.is_critic_step(step - 1));
    }

    fn evaluate(&self, model: &ImageWgan, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        let (real_set, floor_cell) = match split {
            Split::Valid => (&self.valid, &self.frechet_floor[0]),
            Split::Test => (&self.test, &self.frechet_floor[1]),
        };
        let n = self.model.eval_samples.min(real_set.len());
        let mut rng = step_rng(EVAL_SEED, STREAM_EVAL, 0);
        let real_idx: Vec<usize> = (0..n).collect();
        let (mut d_real, mut d_fake) = (0.0f64, 0.0f64);
        let (mut real_features, mut fake_features, mut classes) = (Vec::new(), Vec::new(), vec![0usize; 10]);
        let judge = self.judge(device)?;
        for chunk in real_idx.chunks(250) {
            let real = self.images(real_set, chunk, device);
            let fake = model.generator.forward(self.noise(chunk.len(), &mut rng, device));
            d_real += f64::from(model.critic.forward(real.clone()).sum().into_scalar::<f32>());
            d_fake += f64::from(model.critic.forward(fake.clone()).sum().into_scalar::<f32>());
            if let Some(vit) = &judge {
                let f_fake = vit.features(fake);
                let predicted: Vec<i64> = vit
                    .head
                    .forward(f_fake.clone())
                    .argmax(1)
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .map_err(|e| kiln_task::TaskError::backend("reading the judge's classes", e))?;
                predicted.iter().for_each(|&c| classes[c as usize] += 1);
                fake_features.extend(rows(f_fake)?);
                real_features.extend(rows(vit.features(real))?);
            }
        }
        let mut metrics: Metrics = vec![("critic_w1".into(), (d_real - d_fake) / n as f64)];
        if let Some(vit) = &judge {
            let total = classes.iter().sum::<usize>() as f64;
            let covered = classes.iter().filter(|&&c| c as f64 >= 0.01 * total).count();
            let entropy: f64 = classes.iter().filter(|&&c| c > 0).map(|&c| c as f64 / total).map(|p| -p * p.ln()).sum();
            metrics.insert(0, ("frechet".into(), frechet_distance(&fake_features, &real_features)));
            // The floor: real training digits against the same real digits of the split, as many of each.
            let floor = match floor_cell.get() {
                Some(f) => *f,
                None => {
                    let mut train_features = Vec::new();
                    for chunk in real_idx.chunks(250) {
                        let idx: Vec<usize> = chunk.iter().map(|&i| i % self.train.len()).collect();
                        train_features.extend(rows(vit.features(self.images(&self.train, &idx, device)))?);
                    }
                    *floor_cell.get_or_init(|| frechet_distance(&train_features, &real_features))
                }
            };
            metrics.insert(1, ("frechet_real".into(), floor));
            metrics.push(("classes".into(), covered as f64));
            metrics.push(("class_entropy".into(), entropy));
        }
        Ok(metrics)
    }

    fn goal(&self, name: &str) -> Goal {
        if name == "frechet" { Goal::Minimize } else { Goal::Maximize }
    }

    fn save_artifacts(&self, run_dir: &Path) -> kiln_task::Result<()> {
        let _ = self.run_dir.set(run_dir.to_path_buf());
        Ok(())
    }

    fn after_evaluation(&self, model: &ImageWgan, step: usize, device: &Device) -> kiln_task::Result<()> {
        let Some(dir) = self.run_dir.get() else { return Ok(()) };
        let dir = dir.join("pictures");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        kiln_task::picture::write_grid(&dir.join(format!("step-{step:06}.png")), &self.grid(model, device)?, 28, 8)
    }

    fn predict(&self, _model: &ImageWgan, _texts: &[String], _device: &Device) -> kiln_task::Result<Vec<String>> {
        kiln_task::pictures_only(&self.describe())
    }

    /// `pictures/samples.png`: 64 digits from fixed noise.
    fn generate(&self, model: &ImageWgan, options: &GenerateOptions, device: &Device) -> kiln_task::Result<String> {
        let dir = options.out_dir.as_deref().context("no output directory for the pictures")?.join("pictures");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("samples.png");
        kiln_task::picture::write_grid(&path, &self.grid(model, device)?, 28, 8)?;
        Ok(format!("wrote {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Fréchet distance is 0 between a set and itself, and for two Gaussians with diagonal
    /// covariances it is `‖Δμ‖² + Σ (σ_a − σ_b)²` (computed from samples, so within sampling error).
    #[test]
    fn frechet_by_hand() {
        let mut rng = step_rng(1, 2, 3);
        let sample = |n: usize, mean: [f64; 2], sd: [f64; 2], rng: &mut StdRng| -> Vec<Vec<f64>> {
            (0..n)
                .map(|_| {
                    (0..2)
                        .map(|k| {
                            let z: f64 = StandardNormal.sample(rng);
                            mean[k] + sd[k] * z
                        })
                        .collect()
                })
                .collect()
        };
        let a = sample(20_000, [0.0, 1.0], [1.0, 2.0], &mut rng);
        let b = sample(20_000, [1.0, 1.0], [2.0, 0.5], &mut rng);
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
        let expected = 1.0 + (1.0f64 - 2.0).powi(2) + (2.0f64 - 0.5).powi(2);
        let got = frechet_distance(&a, &b);
        assert!((got - expected).abs() < 0.1, "{got} vs {expected}");
    }

    /// Full covariances: equal to SciPy's `sqrtm` formula (pytorch-fid's) on the committed sets of
    /// `tests/fixtures/frechet_reference.json` (`scripts/reference/frechet.py`), to 1e-9 relative.
    #[test]
    fn frechet_matches_scipy_with_full_covariances() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/frechet_reference.json")).unwrap();
        let set = |name: &serde_json::Value| -> Vec<Vec<f64>> {
            let rows = reference["sets"][name.as_str().unwrap()].as_array().unwrap();
            rows.iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
        };
        let distances = reference["distances"].as_array().unwrap();
        assert_eq!(distances.len(), 3);
        for case in distances {
            let (a, b) = (set(&case["pair"][0]), set(&case["pair"][1]));
            let want = case["value"].as_f64().unwrap();
            let got = frechet_distance(&a, &b);
            assert!((got - want).abs() <= 1e-9 * want.abs(), "{}: {got} vs SciPy {want}", case["pair"]);
        }
    }
}
