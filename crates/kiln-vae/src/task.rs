//! The VAE as a Kiln task on MNIST.
//!
//! TOML:
//!
//! ```toml
//! [model]
//! kind = "vae"
//! latent = { kind = "vmf", d = 10, kappa = 20.0 }    # kappa = "learned"; or { kind = "gaussian", d = 10 }
//! network = { kind = "mlp", hidden = [256, 128] }   # or { kind = "conv", channels = 32 }
//! binarize = true
//! [data]
//! kind = "mnist"
//! dir = "mnist"
//! ```
//!
//! Training minimises the negative ELBO `E_q[−ln p(x|z)] + KL(q(z|x) ‖ p(z))` with one sample per
//! image (the KL weighted by a linear ramp during an optional warm-up, `kl_warmup_steps`). Evaluation reports, per image, the ELBO, its two terms and (test split) the
//! importance-sampled log-likelihood `ln (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`, `z_k ~ q(z|x)`, and
//! from the same samples `log_likelihood_one_decode`, the S-VAE authors' example's figure
//! ([`crate::importance::one_decode_estimate`]), to read published tables computed with it.
//! `w` for the vMF sample and all evaluation noise are drawn on the host from generators keyed by
//! `(seed, step)` or `(split, chunk)`, so evaluations repeat exactly.

use burn::prelude::*;
use kiln_data::mnist::{Mnist, MnistDataConfig};
use kiln_task::Context;
use kiln_task::{EpochSampler, GenerateOptions, Goal, Metrics, Split, StepOutput, Task, step_rng, to_f32_vec};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::concentration::{self, ImageFigures, KappaScale};
use crate::image::write_sphere;
use crate::importance::{log_mean_exp, one_decode_estimate};
use crate::latent::{KappaConfig, LatentConfig, Posterior};
use crate::model::{Vae, VaeConfig, bernoulli_nll};
use crate::vmf::{VonMisesFisher, WSampler};
use kiln_task::picture::write_grid;

/// A training batch: images (also the targets) and the generator its noise is drawn from, after the
/// posterior (a learned κ is known only then); the draws are those a fixed κ would take at the same
/// place in the stream.
pub struct VaeBatch {
    images: Tensor<3>,
    rng: StdRng,
    /// The KL's weight at this step (the warm-up's ramp, then 1).
    kl_weight: f32,
}

/// One chunk of images (an evaluation chunk or a training batch): its images `[b, side, side]`,
/// posterior, and per-image reconstruction and KL `[b]`.
struct ChunkFigures {
    images: Tensor<3>,
    posterior: Posterior,
    reconstruction: Tensor<1>,
    kl: Tensor<1>,
}

/// The importance-sampled `ln p(x)` `[b]` of a chunk, and its samples' `ln q(z_k|x) − ln p(z_k)`
/// `[b, K]`.
struct Estimates {
    importance: Tensor<1>,
    log_ratios: Tensor<2>,
}

/// Host-drawn noise of one sample per row.
struct Noise {
    w: Option<Tensor<2>>,
    eps: Tensor<2>,
}

/// A VAE on MNIST.
pub struct VaeTask {
    model: VaeConfig,
    train: Mnist,
    valid: Mnist,
    test: Mnist,
    vmf: Option<VonMisesFisher>,
    sampler: Option<WSampler>,
}

const STREAM_TRAIN: u64 = 0x5641_4500;
const STREAM_EVAL: u64 = 0x5641_4501;
const EVAL_SEED: u64 = 2024;
/// Rows of decoder output per evaluation chunk (images × samples).
const EVAL_ROWS: usize = 20_000;

/// Mean per-image figures of a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// `E_q[−ln p(x|z)]`, one sample.
    pub reconstruction: f64,
    /// `KL(q ‖ p)`.
    pub kl: f64,
    /// Importance-sampled `ln p(x)`, if asked for.
    pub log_likelihood: Option<f64>,
    /// With it, from the same samples: the S-VAE authors' example's figure
    /// ([`crate::importance::one_decode_estimate`]; not an estimate of `ln p(x)`).
    pub log_likelihood_one_decode: Option<f64>,
}

impl VaeTask {
    /// Read MNIST (`dir` already resolved) and split off validation images.
    ///
    /// # Errors
    ///
    /// An invalid model config, or unreadable MNIST files.
    pub fn new(model: VaeConfig, data: &MnistDataConfig) -> kiln_task::Result<Self> {
        model.validate()?;
        let (all, test) = data.read_train_and_test()?;
        kiln_task::ensure!(all.rows == all.cols, "the VAE needs square images, got {}x{}", all.rows, all.cols);
        if matches!(model.network, crate::network::NetworkConfig::Conv { .. }) {
            kiln_task::ensure!(
                all.rows.is_multiple_of(4),
                "model.network kind = \"conv\" needs an image side divisible by 4, got {}",
                all.rows
            );
        }
        let (train, valid) = data.split(&all)?;
        Ok(Self { vmf: model.latent.vmf(), sampler: model.latent.sampler(), model, train, valid, test })
    }

    fn side(&self) -> usize {
        self.train.rows
    }

    fn latent_dim(&self) -> usize {
        self.model.latent.dim()
    }

    /// A vMF latent, fixed or learned κ (codes live on the sphere).
    fn is_vmf(&self) -> bool {
        matches!(self.model.latent, LatentConfig::Vmf { .. })
    }

    /// Pixels of images `idx`, binarised with `rng` when the config says so.
    fn pixels(&self, m: &Mnist, idx: &[usize], rng: &mut StdRng) -> Vec<f32> {
        let mut out: Vec<f32> = idx.iter().flat_map(|&i| m.image(i)).collect();
        if self.model.binarize {
            for p in &mut out {
                *p = if rng.random::<f32>() < *p { 1.0 } else { 0.0 };
            }
        }
        out
    }

    fn images(&self, pixels: Vec<f32>, n: usize, device: &Device) -> Tensor<3> {
        let s = self.side();
        Tensor::<3>::from_data(TensorData::new(pixels, [n, s, s]), device)
    }

    /// `w` (vMF: from the fixed κ's sampler, or per row at `posterior`'s learned κ, differentiable in
    /// it) and `ε` for the `n` rows of `posterior`.
    fn noise(&self, posterior: &Posterior, n: usize, rng: &mut StdRng, device: &Device) -> Noise {
        let d = self.latent_dim();
        let w = match posterior {
            Posterior::Vmf { kappa: Some(kappa), .. } => {
                Some(crate::kappa::wood_w_of_kappa(d, kappa.clone(), rng).unsqueeze_dim::<2>(1))
            }
            _ => self.sampler.as_ref().map(|s| Tensor::<2>::from_data(TensorData::new(s.draw(n, rng), [n, 1]), device)),
        };
        let eps: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
        Noise { w, eps: Tensor::<2>::from_data(TensorData::new(eps, [n, d]), device) }
    }

    /// The images of a split and the stream of its evaluation noise.
    fn split(&self, split: Split) -> (&Mnist, u64) {
        match split {
            Split::Valid => (&self.valid, 1),
            Split::Test => (&self.test, 2),
        }
    }

    /// Reconstruction, KL and (on a split scored with importance samples, the test split) the
    /// importance-sampled log-likelihood, averaged over the split.
    ///
    /// # Errors
    ///
    /// None at present; the `Result` leaves room for data read on demand.
    pub fn score(&self, model: &Vae, split: Split, device: &Device) -> kiln_task::Result<Scores> {
        Ok(self.mean_figures(model, split, 1.0, true, device))
    }

    /// Importance samples per image where a split is scored: the config's on the test split, none on
    /// validation. They set the split's chunks (and so its binarisation and noise).
    fn eval_samples(&self, split: Split) -> usize {
        if split == Split::Test { self.model.importance_samples } else { 0 }
    }

    /// A split's evaluation chunks, each with its image indices and its own noise stream: every
    /// figure of a split (scores, per-image figures, the κ scan) is drawn in these, so they agree.
    fn eval_chunks(&self, split: Split) -> impl Iterator<Item = (Vec<usize>, StdRng)> + use<> {
        let (data, stream) = self.split(split);
        chunks(data.len(), self.eval_samples(split))
            .enumerate()
            .map(move |(c, idx)| (idx, step_rng(EVAL_SEED, STREAM_EVAL + stream, c as u64)))
    }

    /// [`Self::score`] with every learned `κ(x)` multiplied by `kappa_scale`, and the
    /// log-likelihood only where `importance` asks for it.
    fn mean_figures(&self, model: &Vae, split: Split, kappa_scale: f64, importance: bool, device: &Device) -> Scores {
        let (data, _) = self.split(split);
        let samples = if importance { self.eval_samples(split) } else { 0 };
        let (mut recon, mut kl, mut ll, mut one_decode) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (idx, mut rng) in self.eval_chunks(split) {
            let figures = self.chunk_figures(model, data, &idx, kappa_scale, &mut rng, device);
            recon += sum(figures.reconstruction.clone());
            kl += sum(figures.kl);
            if samples > 0 {
                let estimates =
                    self.log_likelihood(model, &figures.posterior, figures.images, samples, &mut rng, device);
                ll += sum(estimates.importance);
                one_decode += sum(one_decode_estimate(figures.reconstruction, estimates.log_ratios));
            }
        }
        let n = data.len() as f64;
        Scores {
            reconstruction: recon / n,
            kl: kl / n,
            log_likelihood: (samples > 0).then_some(ll / n),
            log_likelihood_one_decode: (samples > 0).then_some(one_decode / n),
        }
    }

    /// Each image's `κ(x)`, KL and one-sample reconstruction over a split, drawn in its evaluation
    /// chunks, so their means are [`Self::score`]'s reconstruction and KL. `κ` is NaN for a
    /// Gaussian latent.
    ///
    /// # Errors
    ///
    /// A tensor's values cannot be read back.
    pub fn per_image(&self, model: &Vae, split: Split, device: &Device) -> kiln_task::Result<Vec<ImageFigures>> {
        let (data, _) = self.split(split);
        let mut out = Vec::with_capacity(data.len());
        for (idx, mut rng) in self.eval_chunks(split) {
            let figures = self.chunk_figures(model, data, &idx, 1.0, &mut rng, device);
            let kappa: Vec<f64> = match (&figures.posterior, self.vmf) {
                (Posterior::Vmf { kappa: Some(k), .. }, _) => {
                    to_f32_vec(k.clone())?.into_iter().map(f64::from).collect()
                }
                (_, Some(vmf)) => vec![vmf.kappa; idx.len()],
                _ => vec![f64::NAN; idx.len()],
            };
            let kl = to_f32_vec(figures.kl)?;
            let recon = to_f32_vec(figures.reconstruction)?;
            out.extend(idx.iter().enumerate().map(|(r, &i)| ImageFigures {
                label: data.labels[i],
                kappa: kappa[r],
                kl: f64::from(kl[r]),
                reconstruction: f64::from(recon[r]),
            }));
        }
        Ok(out)
    }

    /// The ELBO's reconstruction and KL over a split with every learned `κ(x)` multiplied by each of
    /// `factors`, drawn in its evaluation chunks (common random numbers: at factor 1 they are
    /// [`Self::score`]'s figures, and the differences between factors carry little noise). Where
    /// the ELBO is higher at a factor other than 1, training left the concentrations off the ELBO's
    /// optimum. Only meaningful for a learned κ.
    pub fn kappa_scan(&self, model: &Vae, split: Split, factors: &[f64], device: &Device) -> Vec<KappaScale> {
        factors
            .iter()
            .map(|&factor| {
                let s = self.mean_figures(model, split, factor, false, device);
                KappaScale { factor, reconstruction: s.reconstruction, kl: s.kl }
            })
            .collect()
    }

    /// The binarised images `idx` of `data`, their posterior (learned κ scaled by `kappa_scale`),
    /// one-sample reconstruction and KL `[b]`, drawing from `rng` (the images, then the sample's
    /// noise).
    fn chunk_figures(
        &self,
        model: &Vae,
        data: &Mnist,
        idx: &[usize],
        kappa_scale: f64,
        rng: &mut StdRng,
        device: &Device,
    ) -> ChunkFigures {
        let images = self.images(self.pixels(data, idx, rng), idx.len(), device);
        let posterior = model.posterior(images.clone()).with_kappa_scaled(kappa_scale);
        self.figures(model, posterior, images, rng, device)
    }

    /// `posterior` (of `images`), their one-sample reconstruction and KL `[b]`, the sample's noise
    /// drawn from `rng`: the negative ELBO's two terms, for a training step and for evaluation.
    fn figures(
        &self,
        model: &Vae,
        posterior: Posterior,
        images: Tensor<3>,
        rng: &mut StdRng,
        device: &Device,
    ) -> ChunkFigures {
        let b = images.dims()[0];
        let noise = self.noise(&posterior, b, rng, device);
        let z = posterior.sample(noise.w, noise.eps);
        let reconstruction = bernoulli_nll(model.decode(z), images.clone());
        let kl = posterior.kl(self.vmf);
        ChunkFigures { images, posterior, reconstruction, kl }
    }

    /// `ln (1/K) Σ_k exp(−nll_k − (ln q(z_k|x) − ln p(z_k)))` per image `[b]`, and the log-ratios
    /// `[b, K]` of its samples.
    fn log_likelihood(
        &self,
        model: &Vae,
        posterior: &Posterior,
        images: Tensor<3>,
        k: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Estimates {
        let [b, s, _] = images.dims();
        let repeated = posterior.repeat(k);
        let noise = self.noise(&repeated, b * k, rng, device);
        let z = repeated.sample(noise.w, noise.eps);
        let targets = images.unsqueeze_dim::<4>(1).expand([b, k, s, s]).reshape([b * k, s, s]);
        let nll = bernoulli_nll(model.decode(z.clone()), targets);
        let log_ratios = repeated.log_ratio(z, self.vmf);
        let importance = log_mean_exp((nll + log_ratios.clone()).neg().reshape([b, k]));
        Estimates { importance, log_ratios: log_ratios.reshape([b, k]) }
    }
}

/// Image indices `0..n` in evaluation chunks: as many images as keep `images × samples` decoder rows
/// near [`EVAL_ROWS`], at most 500.
fn chunks(n: usize, samples: usize) -> impl Iterator<Item = Vec<usize>> {
    let chunk = (EVAL_ROWS / samples.max(1)).clamp(1, 500);
    (0..n).step_by(chunk).map(move |start| (start..(start + chunk).min(n)).collect())
}

fn sum(t: Tensor<1>) -> f64 {
    f64::from(t.sum().into_scalar::<f32>())
}

impl Task for VaeTask {
    type Model = Vae;
    type Batch = VaeBatch;

    fn describe(&self) -> String {
        let latent = match &self.model.latent {
            LatentConfig::Vmf { d, kappa, sampler } => {
                format!("vMF latent on S^{} (kappa {kappa}, {sampler:?} sampler)", d - 1)
            }
            LatentConfig::Gaussian { d } => format!("Gaussian latent of {d} dimensions"),
        };
        format!(
            "MNIST VAE, {latent}, {} targets ({} train / {} valid / {} test images)",
            if self.model.binarize { "binarised" } else { "intensity" },
            self.train.len(),
            self.valid.len(),
            self.test.len()
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<Vae> {
        Ok(self.model.init(self.side(), device))
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> VaeBatch {
        let idx = EpochSampler::new(self.train.len(), batch_size, seed).batch(step);
        let mut rng = step_rng(seed, STREAM_TRAIN, step as u64);
        let pixels = self.pixels(&self.train, &idx, &mut rng);
        VaeBatch { images: self.images(pixels, idx.len(), device), rng, kl_weight: self.model.kl_weight(step) }
    }

    fn step(&self, model: &Vae, batch: VaeBatch) -> StepOutput {
        let VaeBatch { images, mut rng, kl_weight } = batch;
        let b = images.dims()[0];
        let device = images.device();
        let posterior = model.posterior(images.clone());
        let ChunkFigures { reconstruction, kl, .. } = self.figures(model, posterior, images, &mut rng, &device);
        let kl = if kl_weight < 1.0 { kl.mul_scalar(kl_weight) } else { kl };
        StepOutput { loss: (reconstruction + kl).mean(), items: b }
    }

    fn evaluate(&self, model: &Vae, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        let s = self.score(model, split, device)?;
        let mut m: Metrics = vec![
            ("elbo".into(), -(s.reconstruction + s.kl)),
            ("reconstruction".into(), s.reconstruction),
            ("kl".into(), s.kl),
        ];
        if let Some(ll) = s.log_likelihood {
            m.push(("log_likelihood".into(), ll));
        }
        if let Some(ll) = s.log_likelihood_one_decode {
            m.push(("log_likelihood_one_decode".into(), ll));
        }
        Ok(m)
    }

    fn goal(&self, name: &str) -> Goal {
        match name {
            "reconstruction" | "kl" => Goal::Minimize,
            _ => Goal::Maximize,
        }
    }

    fn predict(&self, _model: &Vae, _texts: &[String], _device: &Device) -> kiln_task::Result<Vec<String>> {
        kiln_task::pictures_only(&self.describe())
    }

    /// Pictures into the run directory: test reconstructions, samples from the prior,
    /// interpolations between encoded test digits (along great circles for the vMF latent,
    /// straight lines for the Gaussian), and for a 3-D vMF latent the test codes on the sphere.
    fn generate(&self, model: &Vae, options: &GenerateOptions, device: &Device) -> kiln_task::Result<String> {
        let dir = options.out_dir.as_deref().context("no output directory for the pictures")?;
        let out = dir.join("pictures");
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let (side, d) = (self.side(), self.latent_dim());
        let mut rng = step_rng(options.seed, STREAM_EVAL + 10, 0);
        let to_images = |logits: Tensor<3>| -> kiln_task::Result<Vec<Vec<f32>>> {
            let n = logits.dims()[0];
            let v = to_f32_vec(burn::tensor::activation::sigmoid(logits))?;
            Ok(v.chunks(side * side).take(n).map(<[f32]>::to_vec).collect())
        };
        let mut written = Vec::new();

        // Reconstructions: rows of 16 originals, then their reconstructions from the mode.
        let idx: Vec<usize> = (0..32).collect();
        let mut eval_rng = step_rng(EVAL_SEED, STREAM_EVAL + 2, 0);
        let originals = self.pixels(&self.test, &idx, &mut eval_rng);
        let images = self.images(originals.clone(), idx.len(), device);
        let recon = to_images(model.decode(model.posterior(images).mode()))?;
        let mut grid = Vec::new();
        for half in 0..2 {
            grid.extend(originals.chunks(side * side).skip(16 * half).take(16).map(<[f32]>::to_vec));
            grid.extend(recon.iter().skip(16 * half).take(16).cloned());
        }
        let path = out.join("reconstructions.png");
        write_grid(&path, &grid, side, 16)?;
        written.push(path);

        // Samples from the prior: uniform on the sphere (a normalised Gaussian), or N(0, I).
        let mut z: Vec<f32> = (0..100 * d).map(|_| StandardNormal.sample(&mut rng)).collect();
        if self.is_vmf() {
            for row in z.chunks_mut(d) {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let samples = to_images(model.decode(Tensor::<2>::from_data(TensorData::new(z, [100, d]), device)))?;
        let path = out.join("samples.png");
        write_grid(&path, &samples, side, 10)?;
        written.push(path);

        // Interpolations between pairs of test digits of different classes.
        let mut pairs = Vec::new();
        let mut i = 0;
        while pairs.len() < 8 && i + 1 < self.test.len() {
            let j = (i + 1..self.test.len()).find(|&j| self.test.labels[j] != self.test.labels[i]).unwrap_or(i + 1);
            pairs.push((i, j));
            i = j + 1;
        }
        let ends: Vec<usize> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        let images = self.images(self.pixels(&self.test, &ends, &mut eval_rng), ends.len(), device);
        let codes = to_f32_vec(model.posterior(images).mode())?;
        let steps = 10;
        let mut path_codes = Vec::with_capacity(pairs.len() * steps * d);
        for p in 0..pairs.len() {
            let (a, b) = (&codes[2 * p * d..(2 * p + 1) * d], &codes[(2 * p + 1) * d..(2 * p + 2) * d]);
            for s in 0..steps {
                let t = s as f64 / (steps - 1) as f64;
                path_codes.extend(if self.is_vmf() { slerp(a, b, t) } else { lerp(a, b, t) });
            }
        }
        let n = pairs.len() * steps;
        let z = Tensor::<2>::from_data(TensorData::new(path_codes, [n, d]), device);
        let path = out.join("interpolations.png");
        write_grid(&path, &to_images(model.decode(z))?, side, steps)?;
        written.push(path);

        // A 2-D latent sphere: the test codes, coloured by class.
        if self.is_vmf() && d == 3 {
            let n = self.test.len().min(5000);
            let idx: Vec<usize> = (0..n).collect();
            let mut points = Vec::with_capacity(n);
            for chunk in idx.chunks(500) {
                let images = self.images(self.pixels(&self.test, chunk, &mut eval_rng), chunk.len(), device);
                let mu = to_f32_vec(model.posterior(images).mode())?;
                points.extend(mu.chunks(3).map(|p| [p[0], p[1], p[2]]));
            }
            let path = out.join("latent_sphere.png");
            write_sphere(&path, &points, &self.test.labels[..n])?;
            written.push(path);
        }
        let mut report: Vec<String> = written.iter().map(|p| format!("wrote {}", p.display())).collect();

        // What κ learns: per-image κ(x), KL and reconstruction on the test split, and for a learned
        // κ their histograms beside the fixed κ = 20 model's constants.
        if let LatentConfig::Vmf { kappa, .. } = &self.model.latent {
            let rows = self.per_image(model, Split::Test, device)?;
            let path = out.join("kappa.csv");
            concentration::write_csv(&path, &rows)?;
            report.push(format!("wrote {}", path.display()));
            if matches!(kappa, KappaConfig::Learned) {
                let path = out.join("kappa.png");
                concentration::write_kappa_histograms(&path, &rows, d, REFERENCE_KAPPA)?;
                report.push(format!("wrote {}", path.display()));
            }
            report.push(concentration::summary(&rows));
            if matches!(kappa, KappaConfig::Learned) {
                let scan = self.kappa_scan(model, Split::Test, &KAPPA_FACTORS, device);
                let path = out.join("kappa_scale.csv");
                concentration::write_scale_csv(&path, &scan)?;
                report.push(format!("wrote {}", path.display()));
                report.push(concentration::scale_summary(&scan));
            }
        }
        Ok(report.join("\n"))
    }
}

/// The fixed κ the learned one is drawn against (Su's setting, `configs/vae/mnist_vmf.toml`).
const REFERENCE_KAPPA: f64 = 20.0;

/// The factors the learned `κ(x)` is scaled by in `pictures/kappa_scale.csv`.
const KAPPA_FACTORS: [f64; 11] = [0.25, 0.35, 0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0, 4.0];

/// The point at fraction `t` of the great circle from unit `a` to unit `b`.
pub fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>().clamp(-1.0, 1.0);
    let omega = dot.acos();
    if omega.sin().abs() < 1e-6 {
        return lerp(a, b, t);
    }
    let (wa, wb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
    a.iter().zip(b).map(|(x, y)| (wa * f64::from(*x) + wb * f64::from(*y)) as f32).collect()
}

fn lerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| ((1.0 - t) * f64::from(*x) + t * f64::from(*y)) as f32).collect()
}
