//! The training loop: the same for every task.
//!
//! Per optimiser step: re-seed the device from `(seed, step)` (dropout), run `grad_accum` micro-batches
//! forward and backward, accumulating gradients, stop on a non-finite loss, clip the global gradient
//! norm, step the optimiser at the scheduled learning rate, let the task update its state (weight
//! clipping; Performer redraws come before a step's forward pass), move the average of the weights
//! (`[train.ema]`, [`crate::ema`]). Evaluate every `eval_every` steps; checkpoint every
//! `checkpoint_every` steps, at every new best evaluation and at the end; stop early on a plateau or on
//! Ctrl-C, saving first. Written here rather than with burn-train's `Learner` because exact resume
//! (batches and dropout as functions of the step), global-norm clipping and atomic checkpoints with
//! checksums are all needed, and the Learner owns none of them. With several devices (`[device]
//! devices`), each round of micro-batches runs through burn-train's own multi-device step (see
//! [`crate::parallel`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_task::{Goal, Task};

use crate::checkpoint::{self, Best, TrainState};
use crate::config::RunConfig;
use crate::ema;
use crate::metrics::{self, MetricsLog};
use crate::optim;
use crate::parallel::{DataParallel, RoundSpec};
use crate::tasks::TaskJob;

/// Set by the Ctrl-C handler.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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
    pub last_eval: Vec<(String, f64)>,
    /// Best evaluation.
    pub best: Option<Best>,
    /// Training wall time in seconds (all sessions of the run).
    pub train_seconds: f64,
    /// How it ended.
    pub ending: Ending,
}

/// `kiln train`.
pub struct TrainJob {
    /// The run directory (created or resumed).
    pub run_dir: PathBuf,
    /// Resume from the latest checkpoint in `run_dir`.
    pub resume: bool,
    /// The device (with data parallelism, the first of `data_parallel`).
    pub device: Device,
    /// Data parallelism (`[device] devices`): every device, the main one first; empty for one device.
    pub data_parallel: Vec<Device>,
    /// Stop, as Ctrl-C would, once this many steps are done.
    pub stop_after: Option<usize>,
}

fn step_seed(seed: u64, step: usize) -> u64 {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
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

/// The dropout seed of micro-batch `micro` of a data-parallel step (each device draws its own).
fn micro_seed(seed: u64, step: usize, micro: usize) -> u64 {
    step_seed(step_seed(seed, step), micro)
}

fn improved(goal: Goal, value: f64, best: f64, min_delta: f64) -> bool {
    match goal {
        Goal::Minimize => value < best - min_delta,
        Goal::Maximize => value > best + min_delta,
    }
}

/// `name value, name value` with four decimals.
pub fn format_metrics(m: &[(String, f64)]) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ")
}

fn format_duration(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl TaskJob for TrainJob {
    type Output = Summary;

    fn run<T: Task>(self, task: T, config: &RunConfig) -> anyhow::Result<Summary> {
        let t = &config.train;
        let run_dir = self.run_dir.as_path();
        // Data parallelism: micro-batches per optimizer step across all devices.
        let replicas = self.data_parallel.len().max(1);
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
        let device = self.device.clone();
        let ad = device.clone().autodiff();
        let task = std::sync::Arc::new(task);
        let parallel = (replicas > 1)
            .then(|| DataParallel::<T>::new(self.data_parallel.iter().map(|d| d.clone().autodiff()).collect()));
        device.seed(t.seed);
        let mut model = task.build_model(&ad)?;
        initialize_parameters(&model);
        let mut optimizer = optim::build(&t.optimizer);
        let mut state = TrainState {
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
        // The average of the weights, built from the same module (same parameter ids).
        let mut averaged = t.ema.as_ref().map(|_| ema::start(&model));
        if self.resume {
            match checkpoint::latest_valid(run_dir)? {
                Some((dir, note)) => {
                    if let Some(note) = note {
                        eprintln!("warning: {note}");
                    }
                    let template = ema::start(&model);
                    let (m, a, o, s) = checkpoint::load(&dir, model, template, optimizer)?;
                    (model, optimizer, state) = (m, o, s);
                    if averaged.is_some() {
                        averaged = Some(a.unwrap_or_else(|| {
                            eprintln!(
                                "warning: {} has no ema.bpk; the average of the weights restarts from the checkpoint's weights",
                                dir.display()
                            );
                            ema::start(&model)
                        }));
                    }
                    eprintln!("resuming {} from step {} ({})", run_dir.display(), state.step, dir.display());
                }
                None => eprintln!("{}: no checkpoint yet, starting from step 0", run_dir.display()),
            }
        }
        task.save_artifacts(run_dir)?;
        let mut log = MetricsLog::open(run_dir, self.resume.then_some(state.step))?;
        let n_params = model.num_params();
        eprintln!(
            "training {} with {n_params} parameters on {device:?}, {total} steps, run dir {}",
            task.describe(),
            run_dir.display()
        );

        let metric_name = t.metric.clone();
        let progress = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64).with_position(state.step as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        let say = |line: String| match &progress {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        };

        let started = Instant::now();
        let seconds_before = state.train_seconds;
        let mut last_eval: Vec<(String, f64)> = Vec::new();
        let mut ending = Ending::Finished;
        let eval_raw = t.ema.as_ref().is_some_and(|e| e.eval_raw);
        let eval_and_track = |model: &T::Model,
                              averaged: Option<&T::Model>,
                              state: &mut TrainState,
                              optimizer: &burn::optim::ModuleOptimizer,
                              log: &mut MetricsLog|
         -> anyhow::Result<(Vec<(String, f64)>, bool)> {
            if averaged.is_some() && eval_raw {
                let raw = task.evaluate(&model.valid(), "valid", &device)?;
                log.log(state.step, "valid_raw", &raw)?;
            }
            let trained;
            let valid_model = match averaged {
                Some(a) => a,
                None => {
                    trained = model.valid();
                    &trained
                }
            };
            let metrics = task.evaluate(valid_model, "valid", &device)?;
            log.log(state.step, "valid", &metrics)?;
            task.after_evaluation(valid_model, state.step, &device)?;
            let (name, value) = match &metric_name {
                Some(n) => metrics.iter().find(|(k, _)| k == n).cloned().with_context(|| {
                    format!("train.metric = `{n}`, but the task reports {}", format_metrics(&metrics))
                })?,
                None => metrics.first().cloned().context("the task reported no metrics")?,
            };
            let goal = task.goal(&name);
            let min_delta = t.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
            let better = state.best.as_ref().is_none_or(|b| improved(goal, value, b.value, min_delta));
            if better {
                state.best = Some(Best { metric: name, value, step: state.step });
                state.evals_since_best = 0;
                state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
                checkpoint::save(run_dir, model, averaged, optimizer, state)?;
                checkpoint::mark_best(run_dir, state.step)?;
            } else {
                state.evals_since_best += 1;
            }
            let stop = t.early_stopping.as_ref().is_some_and(|e| state.evals_since_best >= e.patience);
            Ok((metrics, stop))
        };

        while state.step < total {
            if INTERRUPTED.load(Ordering::SeqCst) || self.stop_after.is_some_and(|s| state.step >= s) {
                ending = Ending::Interrupted;
                break;
            }
            let step = state.step;
            let diverged = |value: f64| -> anyhow::Result<()> {
                if value.is_finite() {
                    return Ok(());
                }
                let last = checkpoint::pointed(run_dir, "latest")?
                    .map_or("none was written yet".to_string(), |p| p.display().to_string());
                bail!(
                    "step {}: the training loss is {value} (diverged; try a lower train.optimizer.lr or set train.grad_clip). \
                     Stopped without saving; the last good checkpoint is {last}",
                    step + 1
                )
            };
            task.before_train_step(&mut model, step);
            let mut accumulator = GradientsAccumulator::new();
            let mut step_loss = 0.0;
            match &parallel {
                None => {
                    ad.seed(step_seed(t.seed, step));
                    for micro in 0..t.grad_accum {
                        let batch = task.train_batch(step * t.grad_accum + micro, t.batch_size, t.seed, &ad);
                        let out = task.step(&model, batch);
                        let loss = out.loss.div_scalar(t.grad_accum as f64);
                        let value: f32 = loss.clone().into_scalar();
                        diverged(f64::from(value))?;
                        step_loss += f64::from(value);
                        let grads = GradientsParams::from_grads(loss.backward(), &model);
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
                        let out = parallel.round(&task, &model, &spec)?;
                        for value in out.losses {
                            diverged(value)?;
                            step_loss += value;
                        }
                        accumulator.accumulate(&model, out.grads);
                    }
                }
            }
            let mut grads = accumulator.grads();
            let grad_norm = optim::clip_global_norm(&model, &mut grads, t.grad_clip);
            let lr = t.schedule.lr(t.optimizer.lr(), step, total);
            model = optimizer.step(lr, model, grads);
            state.step += 1;
            task.on_optimizer_step(&mut model, state.step);
            if let (Some(a), Some(e)) = (averaged.take(), &t.ema) {
                averaged = Some(ema::update(a, &model, e.decay_at(state.step)));
            }
            state.loss_window.0 += step_loss;
            state.loss_window.1 += 1;
            if let Some(bar) = &progress {
                bar.set_position(state.step as u64);
                bar.set_message(format!("loss {step_loss:.4}"));
            }
            if state.step.is_multiple_of(t.log_every) || state.step == total {
                let mean = state.loss_window.0 / state.loss_window.1 as f64;
                log.log(
                    state.step,
                    "train",
                    &[("loss".into(), mean), ("lr".into(), lr), ("grad_norm".into(), grad_norm)],
                )?;
                if progress.is_none() {
                    let elapsed = started.elapsed().as_secs_f64();
                    eprintln!(
                        "step {}/{total}: loss {mean:.4}, lr {lr:.2e}, grad norm {grad_norm:.3}, {}",
                        state.step,
                        format_duration(elapsed)
                    );
                }
                state.loss_window = (0.0, 0);
            }
            let mut stop = false;
            if state.step.is_multiple_of(t.eval_every) || state.step == total {
                let (metrics, s) = eval_and_track(&model, averaged.as_ref(), &mut state, &optimizer, &mut log)?;
                say(format!("step {}/{total}: valid {}", state.step, format_metrics(&metrics)));
                last_eval = metrics;
                stop = s;
            }
            if t.checkpoint_every.is_some_and(|c| state.step.is_multiple_of(c)) {
                state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
                checkpoint::save(run_dir, &model, averaged.as_ref(), &optimizer, &state)?;
                checkpoint::prune(run_dir, t.keep_checkpoints)?;
            }
            if stop {
                say(format!("early stopping: no improvement in {} evaluations", state.evals_since_best));
                ending = Ending::EarlyStopped;
                break;
            }
        }
        if let Some(bar) = &progress {
            bar.finish_and_clear();
        }
        state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
        checkpoint::save(run_dir, &model, averaged.as_ref(), &optimizer, &state)?;
        checkpoint::prune(run_dir, t.keep_checkpoints)?;
        if let Err(e) = metrics::plot_all(run_dir, &task.metric_groups()) {
            eprintln!("warning: could not draw the plots: {e:#}");
        }
        let summary = Summary {
            run_dir: run_dir.to_path_buf(),
            step: state.step,
            last_eval,
            best: state.best.clone(),
            train_seconds: state.train_seconds,
            ending,
        };
        write_summary(run_dir, &summary)?;
        Ok(summary)
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
    checkpoint::write_atomic(&run_dir.join("summary.json"), serde_json::to_string_pretty(&json)?.as_bytes())
}

/// Print the end of a run for a person.
pub fn report(s: &Summary) {
    let how = match s.ending {
        Ending::Finished => "finished",
        Ending::EarlyStopped => "stopped early",
        Ending::Interrupted => "interrupted (resume with `kiln train --resume RUN_DIR`)",
    };
    println!("{how} after {} steps in {}", s.step, format_duration(s.train_seconds));
    if !s.last_eval.is_empty() {
        println!("last evaluation (valid): {}", format_metrics(&s.last_eval));
    }
    if let Some(b) = &s.best {
        println!("best {}: {:.4} at step {}", b.metric, b.value, b.step);
    }
    println!("run directory: {}", s.run_dir.display());
    println!("  metrics.csv, plots/*.png, summary.json, config.toml, checkpoints/{{latest,best}}");
}
