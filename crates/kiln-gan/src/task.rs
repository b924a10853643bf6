//! A WGAN on generated 2-D data as a Kiln task.
//!
//! TOML:
//!
//! ```toml
//! [model]
//! kind = "wgan"
//! lipschitz = { kind = "gradient_penalty", lambda = 10.0, method = "exact" }
//! n_critic = 5
//! [data]
//! kind = "toy2d"
//! distribution = "eight_gaussians"
//! ```
//!
//! One generator and one critic in one module, trained by the shared loop: of every `n_critic + 1`
//! steps, the first `n_critic` are critic steps (loss `E[D(fake)] − E[D(real)]` + penalty, fakes
//! detached, so only the critic receives gradients) and the last is a generator step (loss
//! `−E[D(fake)]` through a gradient-free copy of the critic, so only the generator receives
//! gradients). The optimiser keeps separate state per parameter, so this is the usual pair of
//! optimisers with the same hyperparameters; `train.steps` counts critic and generator steps alike.
//! After a critic step the critic is clipped (`clip`); after every step the power-iteration vectors
//! advance (`spectral_norm`).
//!
//! Evaluation draws `eval_points` real points and as many generated ones (fixed seeds) and reports
//! the exact minibatch `w1` between them (optimal assignment), the critic's own estimate
//! `critic_w1 = E[D(real)] − E[D(fake)]`, and for the mixtures the modes covered and the fraction of
//! generated points near a mode.

use burn::module::Module;
use burn::prelude::*;
use kiln_task::Context;
use kiln_task::{GenerateOptions, Goal, Metrics, Split, StepOutput, Task, step_rng, to_f32_vec};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::lipschitz::{LipschitzConfig, gradient_penalty};
use crate::picture::write_scatter;
use kiln_data::toy2d::Toy2dDataConfig;

use crate::step::{Adversaries, WganBatch, wgan_step};
use crate::{MlpCritic, MlpGenerator, mode_coverage, wasserstein1};

/// `[model]` of `kind = "wgan"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WganConfig {
    /// How the critic is kept Lipschitz.
    pub lipschitz: LipschitzConfig,
    /// Critic steps per generator step.
    #[serde(default = "default_n_critic")]
    pub n_critic: usize,
    /// Generator input width (standard normal noise).
    #[serde(default = "default_noise")]
    pub noise_dim: usize,
    /// Generator hidden widths.
    #[serde(default = "default_hidden")]
    pub generator_hidden: Vec<usize>,
    /// Critic hidden widths.
    #[serde(default = "default_hidden")]
    pub critic_hidden: Vec<usize>,
    /// Images: feature maps of the DCGAN networks' first (critic) / last (generator) convolution.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Images: a `kind = "vit"` run directory whose classifier judges generated digits (class
    /// coverage, Fréchet distance in its feature space).
    #[serde(default)]
    pub judge: Option<std::path::PathBuf>,
    /// Images: generated and real digits per evaluation.
    #[serde(default = "default_eval_samples")]
    pub eval_samples: usize,
}

fn default_channels() -> usize {
    64
}
fn default_eval_samples() -> usize {
    2000
}

fn default_n_critic() -> usize {
    5
}
fn default_noise() -> usize {
    2
}
fn default_hidden() -> Vec<usize> {
    vec![512, 512, 512]
}

impl WganConfig {
    /// Whether training step `step` (0-based) is a critic step: the first `n_critic` of every
    /// `n_critic + 1`.
    pub fn is_critic_step(&self, step: usize) -> bool {
        step % (self.n_critic + 1) < self.n_critic
    }

    /// Check the parts.
    ///
    /// # Errors
    ///
    /// The first invalid value.
    pub fn validate(&self) -> kiln_task::Result<()> {
        self.lipschitz.validate()?;
        kiln_task::ensure!(self.n_critic >= 1, "model.n_critic must be at least 1");
        kiln_task::ensure!(self.channels >= 1, "model.channels must be at least 1");
        kiln_task::ensure!(self.eval_samples >= 10, "model.eval_samples must be at least 10");
        kiln_task::ensure!(self.noise_dim >= 1, "model.noise_dim must be at least 1");
        for (key, widths) in [("generator_hidden", &self.generator_hidden), ("critic_hidden", &self.critic_hidden)] {
            kiln_task::ensure!(widths.iter().all(|&w| w > 0), "model.{key}: widths must be positive");
        }
        Ok(())
    }
}

/// Generator and critic.
#[derive(Module, Debug)]
pub struct Wgan {
    /// Noise → point.
    pub generator: MlpGenerator,
    /// Point → score.
    pub critic: MlpCritic,
}

/// A critic or a generator step's inputs on 2-D points.
pub type GanBatch = WganBatch<2>;

impl Adversaries<2> for Wgan {
    type Critic = MlpCritic;

    fn critic(&self) -> &MlpCritic {
        &self.critic
    }

    fn generate(&self, noise: Tensor<2>) -> Tensor<2> {
        self.generator.forward(noise)
    }

    fn score(critic: &MlpCritic, x: Tensor<2>) -> Tensor<1> {
        critic.forward(x)
    }

    /// The exact penalty of an MLP critic (or its difference quotient).
    fn penalty(
        &self,
        lipschitz: &LipschitzConfig,
        real: Tensor<2>,
        fake: Tensor<2>,
        alpha: Tensor<2>,
        random: Tensor<2>,
    ) -> Option<Tensor<1>> {
        let LipschitzConfig::GradientPenalty { lambda, method, step } = *lipschitz else { return None };
        Some(gradient_penalty(&self.critic, real, fake, alpha, random, lambda, method, step))
    }
}

/// A WGAN on 2-D data.
pub struct WganTask {
    model: WganConfig,
    data: Toy2dDataConfig,
    /// W1 between two independent real sets of `eval_points`: the floor any generator meets.
    real_floor: f64,
}

const STREAM_TRAIN: u64 = 0x6741_4E00;
const STREAM_EVAL: u64 = 0x6741_4E01;
const EVAL_SEED: u64 = 77;

fn points_tensor(points: &[[f32; 2]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = points.iter().flatten().copied().collect();
    Tensor::<2>::from_data(TensorData::new(flat, [points.len(), 2]), device)
}

fn to_points(t: Tensor<2>) -> kiln_task::Result<Vec<[f32; 2]>> {
    let v = to_f32_vec(t)?;
    Ok(v.chunks(2).map(|p| [p[0], p[1]]).collect())
}

impl WganTask {
    /// Check the config and measure the real-vs-real W1 floor.
    ///
    /// # Errors
    ///
    /// An invalid config.
    pub fn new(model: WganConfig, data: Toy2dDataConfig) -> kiln_task::Result<Self> {
        model.validate()?;
        kiln_task::ensure!(model.judge.is_none(), "model.judge applies to image data (kind = \"mnist\"), not to toy2d");
        kiln_task::ensure!(data.eval_points >= 10, "data.eval_points must be at least 10");
        let mut a = step_rng(EVAL_SEED, STREAM_EVAL, 1);
        let mut b = step_rng(EVAL_SEED, STREAM_EVAL, 2);
        let real_floor = wasserstein1(
            &data.distribution.sample(data.eval_points, &mut a),
            &data.distribution.sample(data.eval_points, &mut b),
        );
        Ok(Self { model, data, real_floor })
    }

    fn noise(&self, n: usize, rng: &mut StdRng, device: &Device) -> Tensor<2> {
        let d = self.model.noise_dim;
        let v: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
        Tensor::<2>::from_data(TensorData::new(v, [n, d]), device)
    }

    /// The evaluation sets: fixed real points and fixed noise.
    fn eval_sets(&self, device: &Device) -> (Vec<[f32; 2]>, Tensor<2>) {
        let mut rng = step_rng(EVAL_SEED, STREAM_EVAL, 0);
        let real = self.data.distribution.sample(self.data.eval_points, &mut rng);
        let noise = self.noise(self.data.eval_points, &mut rng, device);
        (real, noise)
    }
}

impl Task for WganTask {
    type Model = Wgan;
    type Batch = GanBatch;

    fn describe(&self) -> String {
        format!(
            "WGAN on {:?} ({:?}, {} critic steps per generator step); W1 between two real sets of {}: {:.4}",
            self.data.distribution, self.model.lipschitz, self.model.n_critic, self.data.eval_points, self.real_floor
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<Wgan> {
        let m = &self.model;
        Ok(Wgan {
            generator: MlpGenerator::new(m.noise_dim, &m.generator_hidden, 2, device),
            critic: MlpCritic::new(2, &m.critic_hidden, m.lipschitz.spectral(), device),
        })
    }

    fn train_len(&self) -> Option<usize> {
        None
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> GanBatch {
        let mut rng = step_rng(seed, STREAM_TRAIN, step as u64);
        let noise = self.noise(batch_size, &mut rng, device);
        if self.model.is_critic_step(step) {
            let real = points_tensor(&self.data.distribution.sample(batch_size, &mut rng), device);
            let alpha: Vec<f32> = (0..batch_size).map(|_| rng.random::<f32>()).collect();
            let alpha = Tensor::<2>::from_data(TensorData::new(alpha, [batch_size, 1]), device);
            let random: Vec<f32> = (0..batch_size * 2).map(|_| StandardNormal.sample(&mut rng)).collect();
            let random = Tensor::<2>::from_data(TensorData::new(random, [batch_size, 2]), device);
            GanBatch::Critic { real, noise, alpha, random }
        } else {
            GanBatch::Generator { noise }
        }
    }

    fn step(&self, model: &Wgan, batch: GanBatch) -> StepOutput {
        wgan_step(model, batch, &self.model.lipschitz)
    }

    fn on_optimizer_step(&self, model: &mut Wgan, step: usize) {
        // `step` counts steps done; the one just taken is `step − 1`.
        self.model.lipschitz.after_step(&mut model.critic, self.model.is_critic_step(step - 1));
    }

    fn evaluate(&self, model: &Wgan, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        if split == Split::Test {
            return Ok(vec![]); // one generated distribution: nothing held out beyond `valid`
        }
        let (real, noise) = self.eval_sets(device);
        let fake_t = model.generator.forward(noise);
        let fake = to_points(fake_t.clone())?;
        let d_real = model.critic.forward(points_tensor(&real, device)).mean().into_scalar::<f32>();
        let d_fake = model.critic.forward(fake_t).mean().into_scalar::<f32>();
        let mut metrics: Metrics =
            vec![("w1".into(), wasserstein1(&real, &fake)), ("critic_w1".into(), f64::from(d_real - d_fake))];
        if let Some((centres, _)) = self.data.distribution.modes() {
            let (covered, near) = mode_coverage(&centres, &fake, 0.01);
            metrics.push(("modes".into(), covered as f64));
            metrics.push(("near_mode".into(), near));
        }
        Ok(metrics)
    }

    fn goal(&self, name: &str) -> Goal {
        if name == "w1" { Goal::Minimize } else { Goal::Maximize }
    }

    fn metric_groups(&self) -> Vec<(String, Vec<String>)> {
        vec![("w1_vs_critic".into(), vec!["w1".into(), "critic_w1".into()])]
    }

    fn predict(&self, _model: &Wgan, _texts: &[String], _device: &Device) -> kiln_task::Result<Vec<String>> {
        kiln_task::pictures_only(&self.describe())
    }

    /// `pictures/samples.png`: real (black) and generated (orange) evaluation points over the
    /// critic's values (colour) and contour lines.
    fn generate(&self, model: &Wgan, options: &GenerateOptions, device: &Device) -> kiln_task::Result<String> {
        let dir = options.out_dir.as_deref().context("no output directory for the pictures")?.join("pictures");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (real, noise) = self.eval_sets(device);
        let fake = to_points(model.generator.forward(noise))?;
        let path = dir.join("samples.png");
        let critic = |points: &[[f32; 2]]| to_f32_vec(model.critic.forward(points_tensor(points, device)));
        write_scatter(&path, &real, &fake, &critic)?;
        Ok(format!("wrote {}", path.display()))
    }
}
