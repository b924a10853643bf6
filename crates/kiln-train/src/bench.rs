//! `kiln bench train-step`: the speed of a config's training step and of its evaluation pass.
//!
//! Each config is built fresh for every round (task, model, optimiser from its `[train]`), runs
//! `--warmup` steps untimed and then `--steps` timed ones: the training batch, forward, backward,
//! global-norm clipping and the optimiser update, exactly as `kiln train` runs one micro-batch (the
//! device is synchronised after each step). With `--eval`, one pass over the validation split
//! (forward, decoding, metrics, no gradients) is timed after the steps; with `--phases`, each step's
//! batch and forward pass, backward pass, clipping and update too (the device synchronised between
//! them), to show where a step's time goes. Several configs alternate
//! round by round, so that the machine's drift hits all of them alike; a step's figure is the median
//! of all its timed steps, an evaluation's the median of its rounds.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use kiln_task::{Split, Task, TaskJob};

use crate::config::{self, RunConfig, TrainConfig};
use crate::{backend, optim};

/// `kiln bench train-step`.
#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// Config files, measured in turn.
    #[arg(required = true)]
    configs: Vec<PathBuf>,
    /// Override a config value in every config, e.g. `--set train.batch_size=16` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Untimed steps before the timed ones, per round.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps per round.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Rounds (each config once per round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also time one pass over the validation split per round.
    #[arg(long)]
    eval: bool,
    /// Also time the step's phases (batch and forward, backward, clipping, update), synchronising
    /// the device between them, and print their medians.
    #[arg(long)]
    phases: bool,
    /// Backend (default: each config's).
    #[arg(long)]
    device: Option<String>,
    /// Also write one JSON line per config to this file (for scripts/bench/run.py).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One round of one config.
struct Round {
    describe: String,
    items_per_step: usize,
    step_seconds: Vec<f64>,
    /// Per timed step, the seconds of each of [`PHASES`] (with `--phases`).
    phase_seconds: Vec<[f64; 4]>,
    eval_seconds: Option<f64>,
}

/// The phases of a training step that `--phases` times.
const PHASES: [&str; 4] = ["batch + forward", "backward", "clipping", "update"];

struct StepJob {
    train: TrainConfig,
    warmup: usize,
    steps: usize,
    eval: bool,
    phases: bool,
    device: Device,
}

impl TaskJob for StepJob {
    type Output = Round;
    type Error = anyhow::Error;

    fn run<T: Task>(self, task: T) -> anyhow::Result<Round> {
        let t = &self.train;
        let ad = self.device.clone().autodiff();
        self.device.seed(t.seed);
        let mut model = task.build_model(&ad)?;
        let mut optimizer = optim::build(&t.optimizer);
        let (mut items, mut step_seconds, mut phase_seconds) = (0, Vec::with_capacity(self.steps), Vec::new());
        for step in 0..self.warmup + self.steps {
            let start = Instant::now();
            let mut marks = [start; 3];
            // With --phases, the end of each phase: the device synchronised, then the clock read.
            let mut mark = |i: usize| -> anyhow::Result<()> {
                if self.phases {
                    ad.sync().context("synchronising the device")?;
                    marks[i] = Instant::now();
                }
                Ok(())
            };
            task.before_train_step(&mut model, step);
            model = kiln_layers::redraw_features(model, step);
            let batch = task.train_batch(step, t.batch_size, t.seed, &ad);
            let out = task.step(&model, batch);
            items = out.items;
            mark(0)?;
            let mut grads = GradientsParams::from_grads(out.loss.backward(), &model);
            mark(1)?;
            optim::clip_global_norm(&model, &mut grads, t.grad_clip);
            mark(2)?;
            model = optimizer.step(t.optimizer.lr(), model, grads);
            task.on_optimizer_step(&mut model, step + 1);
            ad.sync().context("synchronising the device")?;
            let end = Instant::now();
            if step >= self.warmup {
                step_seconds.push((end - start).as_secs_f64());
                if self.phases {
                    let bounds = [start, marks[0], marks[1], marks[2], end];
                    phase_seconds.push(std::array::from_fn(|i| (bounds[i + 1] - bounds[i]).as_secs_f64()));
                }
            }
        }
        let eval_seconds = if self.eval {
            let valid = model.valid();
            let start = Instant::now();
            task.evaluate(&valid, Split::Valid, &self.device)?;
            Some(start.elapsed().as_secs_f64())
        } else {
            None
        };
        Ok(Round { describe: task.describe(), items_per_step: items, step_seconds, phase_seconds, eval_seconds })
    }
}

/// The median of a non-empty slice.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Run the benchmark and print one line per config.
///
/// # Errors
///
/// A config does not load or its task cannot be built.
pub fn train_step(args: BenchStepArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.steps > 0 && args.rounds > 0, "--steps and --rounds must be at least 1");
    let mut configs = Vec::new();
    for path in &args.configs {
        let mut c = RunConfig::load(path, &args.overrides)?;
        c.data.resolve_paths(&config::data_dir());
        c.model.resolve_paths();
        let device = backend::device(args.device.as_deref().unwrap_or(&c.device.backend))?;
        configs.push((path, c, device));
    }
    let mut rounds: Vec<Vec<Round>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for ((path, c, device), out) in configs.iter().zip(&mut rounds) {
            let job = StepJob {
                train: c.train.clone(),
                warmup: args.warmup,
                steps: args.steps,
                eval: args.eval,
                phases: args.phases,
                device: device.clone(),
            };
            let r = c.model.with_task(&c.data, job).with_context(|| format!("{}", path.display()))?;
            eprintln!(
                "round {}/{}: {}: median step {:.1} ms",
                round + 1,
                args.rounds,
                path.display(),
                1e3 * median(&mut r.step_seconds.clone())
            );
            out.push(r);
        }
    }
    println!(
        "{} timed steps after {} warm-up steps, {} rounds alternating, medians:",
        args.steps, args.warmup, args.rounds
    );
    println!("| config | items/step | step (ms) | items/s | eval pass (s) |");
    println!("|---|---|---|---|---|");
    let mut json = Vec::new();
    for ((path, _, _), rs) in configs.iter().zip(&rounds) {
        let mut steps: Vec<f64> = rs.iter().flat_map(|r| r.step_seconds.iter().copied()).collect();
        let step = median(&mut steps);
        let items = rs[0].items_per_step;
        let mut evals: Vec<f64> = rs.iter().filter_map(|r| r.eval_seconds).collect();
        let eval_seconds = (!evals.is_empty()).then(|| median(&mut evals));
        let eval = eval_seconds.map_or("-".to_string(), |e| format!("{e:.3}"));
        println!("| {} | {items} | {:.2} | {:.1} | {eval} |", path.display(), step * 1e3, items as f64 / step);
        eprintln!("  {}: {}", path.display(), rs[0].describe);
        let row = serde_json::json!({
            "impl_name": "kiln",
            "config": path.display().to_string(),
            "items_per_step": items,
            "step_ms": step * 1e3,
            "items_per_s": items as f64 / step,
            "eval_s": eval_seconds,
        });
        json.push(row.to_string());
    }
    if args.phases {
        println!();
        println!("| config (median ms per phase) | {} |", PHASES.join(" | "));
        println!("|---|{}", "---|".repeat(PHASES.len()));
        for ((path, _, _), rs) in configs.iter().zip(&rounds) {
            let cells: Vec<String> = (0..PHASES.len())
                .map(|i| {
                    let mut v: Vec<f64> = rs.iter().flat_map(|r| r.phase_seconds.iter().map(|p| p[i])).collect();
                    format!("{:.2}", median(&mut v) * 1e3)
                })
                .collect();
            println!("| {} | {} |", path.display(), cells.join(" | "));
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, json.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
