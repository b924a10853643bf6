//! One training run as a value: the task, the model, the optimiser, the average of the weights, the
//! state that a checkpoint saves, and the run directory's metrics log. [`TrainRun::start`] and
//! [`TrainRun::resume`] make one; [`TrainRun::step`] takes one optimiser step, [`TrainRun::evaluate`]
//! evaluates (and keeps the best checkpoint), [`TrainRun::save`] writes a checkpoint and
//! [`TrainRun::finish`] the last one with the plots and `summary.json`. The loop that calls them on a
//! schedule is [`crate::trainer`].
//!
//! Per optimiser step: re-seed the device from `(seed, step)` (dropout), run `grad_accum`
//! micro-batches forward and backward (one per device and round with `[device] devices`, through
//! [`crate::parallel`]), accumulating gradients, stop on a non-finite loss, clip the global gradient
//! norm, step the optimiser at the scheduled learning rate, let the task update its state (weight
//! clipping; Performer redraws come before a step's forward pass), move the average of the weights
//! (`[train.ema]`, [`crate::ema`]). Batches and dropout are functions of the step, so a resumed run
//! continues exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use kiln_task::run_dir::{self, Best, TrainState};
use kiln_task::{Goal, Metrics, Split, Task};

use crate::config::{RunConfig, TrainConfig};
use crate::ema;
use crate::metrics::{self, MetricsLog};
use crate::optim;
use crate::parallel::{DataParallel, RoundSpec};
use crate::watchdog;

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// All steps done.
    Finished,
    /// The metric stopped improving.
    EarlyStopped,
    /// Ctrl-C or `--stop-after-steps`; resumable.
    Interrupted,
}

/// What a run reports at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps done.
    pub step: usize,
    /// Last evaluation.
    pub last_eval: Metrics,
    /// Best evaluation.
    pub best: Option<Best>,
    /// Training wall time in seconds (all sessions of the run).
    pub train_seconds: f64,
    /// How it ended.
    pub ending: Ending,
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// The step's training loss (the mean over its micro-batches).
    pub loss: f64,
    /// The learning rate it stepped with.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The mean loss over the steps since the last logged one, when this step was logged
    /// (`train.log_every`).
    pub logged_loss: Option<f64>,
}

/// An evaluation on the validation split.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The task's metrics.
    pub metrics: Metrics,
    /// Whether early stopping asks to stop.
    pub stop: bool,
}

/// A training run in progress.
pub struct TrainRun<T: Task> {
    task: Arc<T>,
    train: TrainConfig,
    run_dir: PathBuf,
    /// The device that evaluates and holds the optimiser.
    device: Device,
    /// The same device with autodiff, which trains.
    ad: Device,
    parallel: Option<DataParallel<T>>,
    /// The devices as the config names them (the main one first), for [`watchdog`] messages.
    names: Vec<String>,
    /// The trained model; `None` only while the optimiser owns it, inside [`Self::step`].
    model: Option<T::Model>,
    averaged: Option<T::Model>,
    optimizer: ModuleOptimizer,
    state: TrainState,
    total: usize,
    /// `metrics.csv`, opened by [`Self::start`] and [`Self::resume`] once the step is known.
    log: Option<MetricsLog>,
    started: Instant,
    seconds_before: f64,
    first_step: usize,
}

impl<T: Task> TrainRun<T> {
    /// A fresh run of `task` in `run_dir` on `devices` (the first evaluates and holds the optimiser;
    /// more than one trains data-parallel).
    ///
    /// # Errors
    ///
    /// The training length cannot be worked out, the model cannot be built, or the run directory
    /// cannot be written.
    pub fn start(task: T, config: &RunConfig, run_dir: &Path, devices: &[Device]) -> anyhow::Result<Self> {
        let mut run = Self::build(task, config, run_dir, devices)?;
        run.open(false)?;
        Ok(run)
    }

    /// The run in `run_dir`, continued from its newest checkpoint that verifies (from step 0 where
    /// none was written yet).
    ///
    /// # Errors
    ///
    /// As [`Self::start`], or the checkpoint does not load.
    pub fn resume(task: T, config: &RunConfig, run_dir: &Path, devices: &[Device]) -> anyhow::Result<Self> {
        let mut run = Self::build(task, config, run_dir, devices)?;
        match run_dir::latest_valid(run_dir)? {
            Some((dir, note)) => {
                if let Some(note) = note {
                    eprintln!("warning: {note}");
                }
                let model = run.model.take().expect("a built model");
                let template = ema::start(&model);
                let optimizer = std::mem::replace(&mut run.optimizer, optim::build(&run.train.optimizer));
                let (model, averaged, optimizer, state) = run_dir::load(&dir, model, template, optimizer)?;
                if run.averaged.is_some() {
                    run.averaged = Some(averaged.unwrap_or_else(|| {
                        eprintln!(
                            "warning: {} has no ema.bpk; the average of the weights restarts from the checkpoint's weights",
                            dir.display()
                        );
                        ema::start(&model)
                    }));
                }
                (run.model, run.optimizer, run.state) = (Some(model), optimizer, state);
                eprintln!("resuming {} from step {} ({})", run_dir.display(), run.state.step, dir.display());
            }
            None => eprintln!("{}: no checkpoint yet, starting from step 0", run_dir.display()),
        }
        (run.seconds_before, run.first_step) = (run.state.train_seconds, run.state.step);
        run.open(true)?;
        Ok(run)
    }

    fn build(task: T, config: &RunConfig, run_dir: &Path, devices: &[Device]) -> anyhow::Result<Self> {
        let t = config.train.clone();
        let replicas = devices.len().max(1);
        let total = match (t.steps, t.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                let len = task.train_len().with_context(|| {
                    format!(
                        "train.epochs needs a finite training set, and {} samples windows; use train.steps",
                        task.describe()
                    )
                })?;
                anyhow::ensure!(
                    len >= t.batch_size,
                    "train.batch_size ({}) exceeds the {len} training examples",
                    t.batch_size
                );
                (e * (len / t.batch_size) / (t.grad_accum * replicas)).max(1)
            }
            (None, None) => bail!("give train.steps or train.epochs"),
        };
        if let Some(len) = task.train_len() {
            anyhow::ensure!(
                len >= t.batch_size,
                "train.batch_size ({}) exceeds the {len} training examples",
                t.batch_size
            );
        }
        let device = devices.first().context("no device to train on")?.clone();
        let ad = device.clone().autodiff();
        let mut names = config.device.training_names();
        if names.len() != devices.len() {
            names = (0..devices.len()).map(|i| format!("device {i}")).collect();
        }
        let parallel = (replicas > 1)
            .then(|| DataParallel::<T>::new(devices.iter().map(|d| d.clone().autodiff()).collect(), names.clone()));
        device.seed(t.seed);
        let model = task.build_model(&ad)?;
        initialize_parameters(&model);
        let optimizer = optim::build(&t.optimizer);
        // The average of the weights, built from the same module (same parameter ids).
        let averaged = t.ema.as_ref().map(|_| ema::start(&model));
        let state = TrainState {
            step: 0,
            seed: t.seed,
            best: None,
            evals_since_best: 0,
            loss_window: (0.0, 0),
            train_seconds: 0.0,
            model_crc32: 0,
            optimizer_crc32: 0,
            ema_crc32: None,
        };
        Ok(Self {
            task: Arc::new(task),
            train: t,
            run_dir: run_dir.to_path_buf(),
            device,
            ad,
            parallel,
            names,
            model: Some(model),
            averaged,
            optimizer,
            state,
            total,
            log: None,
            started: Instant::now(),
            seconds_before: 0.0,
            first_step: 0,
        })
    }

    /// Write what rebuilds the task into the run directory and open its metrics log (cut back to
    /// the checkpoint's step when resuming).
    fn open(&mut self, resuming: bool) -> anyhow::Result<()> {
        self.task.save_artifacts(&self.run_dir)?;
        self.log = Some(MetricsLog::open(&self.run_dir, resuming.then_some(self.state.step))?);
        self.started = Instant::now();
        Ok(())
    }

    fn metrics_log(&mut self) -> &mut MetricsLog {
        self.log.as_mut().expect("an opened run")
    }

    /// The task, for its description.
    pub fn task(&self) -> &T {
        &self.task
    }

    /// The trained model.
    pub fn model(&self) -> &T::Model {
        self.model.as_ref().expect("the optimiser hands the model back")
    }

    /// The model's number of parameters.
    pub fn num_params(&self) -> usize {
        self.model().num_params()
    }

    /// The devices as the config names them (`flex`, `remote:ws://…`), the main one first.
    pub fn device_names(&self) -> &[String] {
        &self.names
    }

    /// The device that evaluates.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Optimiser steps done.
    pub fn steps_done(&self) -> usize {
        self.state.step
    }

    /// Optimiser steps this run takes in all.
    pub fn total_steps(&self) -> usize {
        self.total
    }

    /// Steps done in this session (since [`Self::start`] or [`Self::resume`]) and the seconds they
    /// took.
    pub fn session(&self) -> (usize, f64) {
        (self.state.step - self.first_step, self.started.elapsed().as_secs_f64())
    }

    /// Whether the step just done is one to evaluate after.
    pub fn evaluation_due(&self) -> bool {
        self.state.step.is_multiple_of(self.train.eval_every) || self.state.step == self.total
    }

    /// Whether the step just done is one to checkpoint after (`train.checkpoint_every`).
    pub fn checkpoint_due(&self) -> bool {
        self.train.checkpoint_every.is_some_and(|c| self.state.step.is_multiple_of(c))
    }

    /// One optimiser step.
    ///
    /// # Errors
    ///
    /// The loss is not finite (nothing is saved; the message names the last good checkpoint), a
    /// replica fails, or the metrics log cannot be written.
    pub fn step(&mut self) -> anyhow::Result<StepReport> {
        let t = &self.train;
        let step = self.state.step;
        let replicas = self.parallel.as_ref().map_or(1, DataParallel::replicas);
        let run_dir = self.run_dir.as_path();
        let diverged = |value: f64| -> anyhow::Result<()> {
            if value.is_finite() {
                return Ok(());
            }
            let last = run_dir::pointed(run_dir, "latest")?
                .map_or("none was written yet".to_string(), |p| p.display().to_string());
            bail!(
                "step {}: the training loss is {value} (diverged; try a lower train.optimizer.lr or set train.grad_clip). \
                 Stopped without saving; the last good checkpoint is {last}",
                step + 1
            )
        };
        watchdog::expect(|| format!("step {}", step + 1), &self.names);
        let mut model = self.model.take().expect("the optimiser hands the model back");
        self.task.before_train_step(&mut model, step);
        // Performer draws its features before a step, so that each step trains with the features it
        // is evaluated with, and none are drawn after the last step.
        let model = kiln_layers::redraw_features(model, step);
        let mut accumulator = GradientsAccumulator::new();
        let mut loss = 0.0;
        match &self.parallel {
            None => {
                self.ad.seed(step_seed(t.seed, step));
                for micro in 0..t.grad_accum {
                    let batch = self.task.train_batch(step * t.grad_accum + micro, t.batch_size, t.seed, &self.ad);
                    let out = self.task.step(&model, batch);
                    let scaled = out.loss.div_scalar(t.grad_accum as f64);
                    let value: f32 = scaled.clone().into_scalar();
                    diverged(f64::from(value))?;
                    loss += f64::from(value);
                    let grads = GradientsParams::from_grads(scaled.backward(), &model);
                    accumulator.accumulate(&model, grads);
                }
            }
            Some(parallel) => {
                // Round r runs micro-batches (step·a + r)·k .. +k, one per device, as one device
                // with grad_accum = a·k would run them in sequence.
                let per_step = t.grad_accum * replicas;
                for round in 0..t.grad_accum {
                    let first = step * per_step + round * replicas;
                    let seeds: Vec<u64> =
                        (0..replicas).map(|i| micro_seed(t.seed, step, round * replicas + i)).collect();
                    let spec = RoundSpec {
                        first,
                        batch_size: t.batch_size,
                        data_seed: t.seed,
                        seeds: &seeds,
                        divisor: per_step as f64,
                    };
                    let out = parallel.round(&self.task, &model, &spec)?;
                    for value in out.losses {
                        diverged(value)?;
                        loss += value;
                    }
                    accumulator.accumulate(&model, out.grads);
                }
            }
        }
        watchdog::expect(|| format!("the update of step {} on the main device", step + 1), &self.names[..1]);
        let mut grads = accumulator.grads();
        let grad_norm = optim::clip_global_norm(&model, &mut grads, t.grad_clip);
        let lr = t.schedule.lr(t.optimizer.lr(), step, self.total);
        let mut model = self.optimizer.step(lr, model, grads);
        self.state.step += 1;
        self.task.on_optimizer_step(&mut model, self.state.step);
        if let (Some(a), Some(e)) = (self.averaged.take(), &t.ema) {
            self.averaged = Some(ema::update(a, &model, e.decay_at(self.state.step)));
        }
        self.model = Some(model);
        self.state.loss_window.0 += loss;
        self.state.loss_window.1 += 1;
        let mut logged_loss = None;
        if self.state.step.is_multiple_of(t.log_every) || self.state.step == self.total {
            let mean = self.state.loss_window.0 / self.state.loss_window.1 as f64;
            let values = [("loss".into(), mean), ("lr".into(), lr), ("grad_norm".into(), grad_norm)];
            let step = self.state.step;
            self.metrics_log().log(step, "train", &values)?;
            self.state.loss_window = (0.0, 0);
            logged_loss = Some(mean);
        }
        Ok(StepReport { loss, lr, grad_norm, logged_loss })
    }

    /// Evaluate on the validation split (the average of the weights where the run keeps one), log
    /// it, let the task draw its progress, and checkpoint a new best.
    ///
    /// # Errors
    ///
    /// The task's evaluation fails, `train.metric` names no metric it reports, or a file cannot be
    /// written.
    pub fn evaluate(&mut self) -> anyhow::Result<Evaluation> {
        let step = self.state.step;
        watchdog::expect(|| format!("the evaluation at step {step} on the main device"), &self.names[..1]);
        let eval_raw = self.train.ema.as_ref().is_some_and(|e| e.eval_raw);
        let metrics = {
            let (task, device) = (&self.task, &self.device);
            let model = self.model.as_ref().expect("the optimiser hands the model back");
            if self.averaged.is_some() && eval_raw {
                let raw = task.evaluate(&model.valid(), Split::Valid, device)?;
                self.log.as_mut().expect("an opened run").log(self.state.step, "valid_raw", &raw)?;
            }
            let trained;
            let evaluated = match &self.averaged {
                Some(a) => a,
                None => {
                    trained = model.valid();
                    &trained
                }
            };
            let metrics = task.evaluate(evaluated, Split::Valid, device)?;
            self.log.as_mut().expect("an opened run").log(self.state.step, "valid", &metrics)?;
            task.after_evaluation(evaluated, self.state.step, device)?;
            metrics
        };
        let (name, value) = match &self.train.metric {
            Some(n) => metrics.iter().find(|(k, _)| k == n).cloned().with_context(|| {
                format!("train.metric = `{n}`, but the task reports {}", metrics::format_metrics(&metrics))
            })?,
            None => metrics.first().cloned().context("the task reported no metrics")?,
        };
        let goal = self.task.goal(&name);
        let (min_delta, patience) =
            self.train.early_stopping.as_ref().map_or((0.0, None), |e| (e.min_delta, Some(e.patience)));
        let better = self.state.best.as_ref().is_none_or(|b| improved(goal, value, b.value, min_delta));
        if better {
            self.state.best = Some(Best { metric: name, value, step: self.state.step });
            self.state.evals_since_best = 0;
            self.write_checkpoint()?;
            run_dir::mark_best(&self.run_dir, self.state.step)?;
        } else {
            self.state.evals_since_best += 1;
        }
        let stop = patience.is_some_and(|p| self.state.evals_since_best >= p);
        Ok(Evaluation { metrics, stop })
    }

    /// Evaluations since the best one.
    pub fn evaluations_since_best(&self) -> usize {
        self.state.evals_since_best
    }

    /// Write a checkpoint of the current step and keep only the newest `train.keep_checkpoints`
    /// periodic ones (and the best).
    ///
    /// # Errors
    ///
    /// A file cannot be written; earlier checkpoints are then intact.
    pub fn save(&mut self) -> anyhow::Result<PathBuf> {
        let dir = self.write_checkpoint()?;
        run_dir::prune(&self.run_dir, self.train.keep_checkpoints)?;
        Ok(dir)
    }

    fn write_checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let step = self.state.step;
        watchdog::expect(|| format!("the checkpoint of step {step} from the main device"), &self.names[..1]);
        self.state.train_seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        let model = self.model.as_ref().expect("the optimiser hands the model back");
        Ok(run_dir::save(&self.run_dir, model, self.averaged.as_ref(), &self.optimizer, &self.state)?)
    }

    /// Save the last checkpoint, draw the plots and write `summary.json`.
    ///
    /// # Errors
    ///
    /// A file cannot be written (a plot that cannot be drawn is a warning).
    pub fn finish(mut self, ending: Ending, last_eval: Metrics) -> anyhow::Result<Summary> {
        self.save()?;
        if let Err(e) = metrics::plot_all(&self.run_dir, &self.task.metric_groups()) {
            eprintln!("warning: could not draw the plots: {e:#}");
        }
        let summary = Summary {
            run_dir: self.run_dir.clone(),
            step: self.state.step,
            last_eval,
            best: self.state.best.clone(),
            train_seconds: self.state.train_seconds,
            ending,
        };
        write_summary(&self.run_dir, &summary)?;
        Ok(summary)
    }
}

fn step_seed(seed: u64, step: usize) -> u64 {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// The dropout seed of micro-batch `micro` of a data-parallel step (each device draws its own).
fn micro_seed(seed: u64, step: usize, micro: usize) -> u64 {
    step_seed(step_seed(seed, step), micro)
}

/// Draw every lazily initialised parameter now, in module order, from the generator as seeded by
/// `train.seed`: otherwise Burn draws each on its first use, inside the first forward pass, after
/// the step's dropout seeding and in whatever order (or on whichever data-parallel worker) uses it
/// first.
fn initialize_parameters<M: Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D, Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D, Bool>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

fn improved(goal: Goal, value: f64, best: f64, min_delta: f64) -> bool {
    match goal {
        Goal::Minimize => value < best - min_delta,
        Goal::Maximize => value > best + min_delta,
    }
}

fn write_summary(run_dir: &Path, s: &Summary) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "step": s.step,
        "ending": format!("{:?}", s.ending),
        "train_seconds": s.train_seconds,
        "last_eval": s.last_eval.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "best": s.best,
    });
    Ok(run_dir::write_atomic(&run_dir.join("summary.json"), serde_json::to_string_pretty(&json)?.as_bytes())?)
}
