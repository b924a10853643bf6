//! `kiln train`: the schedule around a [`TrainRun`], the same for every task.
//!
//! Take optimiser steps until the run's last; evaluate every `eval_every` steps (and at the end),
//! checkpoint every `checkpoint_every` steps, at every new best evaluation and at the end; stop early
//! on a plateau or on Ctrl-C, saving first. Progress goes to a bar on a terminal and to plain lines
//! (with steps per second and the time left) when the output is a file or a pipe. Written here
//! rather than with burn-train's `Learner` because exact resume (batches and dropout as functions of
//! the step), global-norm clipping and atomic checkpoints with checksums are all needed, and the
//! Learner owns none of them; with several devices the per-device forward and backward go through
//! burn-train's multi-device step ([`crate::parallel`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use kiln_task::{Task, TaskJob};

use crate::config::RunConfig;
use crate::metrics::format_metrics;
use crate::run::{Ending, StepReport, Summary, TrainRun};

/// Set by the Ctrl-C handler.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `kiln train`.
pub struct TrainJob {
    /// The run's config.
    pub config: RunConfig,
    /// The run directory (created or resumed).
    pub run_dir: PathBuf,
    /// Resume from the latest checkpoint in `run_dir`.
    pub resume: bool,
    /// The devices: the first evaluates and holds the optimiser; more than one trains
    /// data-parallel (`[device] devices`).
    pub devices: Vec<burn::prelude::Device>,
    /// Stop, as Ctrl-C would, once this many steps are done.
    pub stop_after: Option<usize>,
}

/// `1m05s`, or `2h03m05s` from an hour.
pub fn format_duration(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The plain progress line of a logged step: its loss, learning rate and gradient norm, the speed of
/// this session (evaluations and checkpoints included) and the time it leaves.
fn progress_line(step: usize, total: usize, loss: f64, report: &StepReport, session: (usize, f64)) -> String {
    let (steps, seconds) = session;
    let rate = steps as f64 / seconds.max(1e-9);
    let left = total.saturating_sub(step) as f64 / rate.max(1e-9);
    format!(
        "step {step}/{total}: loss {loss:.4}, lr {:.2e}, grad norm {:.3}, {rate:.1} steps/s, {} elapsed, {} left",
        report.lr,
        report.grad_norm,
        format_duration(seconds),
        format_duration(left)
    )
}

impl TaskJob for TrainJob {
    type Output = Summary;
    type Error = anyhow::Error;

    fn run<T: Task>(self, task: T) -> anyhow::Result<Summary> {
        let (config, run_dir) = (&self.config, self.run_dir.as_path());
        let mut run = if self.resume {
            TrainRun::resume(task, config, run_dir, &self.devices)?
        } else {
            TrainRun::start(task, config, run_dir, &self.devices)?
        };
        let total = run.total_steps();
        eprintln!(
            "training {} with {} parameters on {}, {total} steps, run dir {}",
            run.task().describe(),
            run.num_params(),
            run.device_names().join(" + "),
            run_dir.display()
        );
        let progress = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64).with_position(run.steps_done() as u64);
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
        let mut last_eval = Vec::new();
        let mut ending = Ending::Finished;
        while run.steps_done() < total {
            if INTERRUPTED.load(Ordering::SeqCst) || self.stop_after.is_some_and(|s| run.steps_done() >= s) {
                ending = Ending::Interrupted;
                break;
            }
            let report = run.step()?;
            let step = run.steps_done();
            match (&progress, report.logged_loss) {
                (Some(bar), _) => {
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {:.4}", report.loss));
                }
                (None, Some(mean)) => eprintln!("{}", progress_line(step, total, mean, &report, run.session())),
                (None, None) => {}
            }
            let mut stop = false;
            if run.evaluation_due() {
                let evaluation = run.evaluate()?;
                say(format!("step {step}/{total}: valid {}", format_metrics(&evaluation.metrics)));
                (last_eval, stop) = (evaluation.metrics, evaluation.stop);
            }
            if run.checkpoint_due() {
                run.save()?;
            }
            if stop {
                say(format!("early stopping: no improvement in {} evaluations", run.evaluations_since_best()));
                ending = Ending::EarlyStopped;
                break;
            }
        }
        if let Some(bar) = &progress {
            bar.finish_and_clear();
        }
        run.finish(ending, last_eval)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: 100 of 3,000 steps in 4 s is 25 steps/s, and the 2,900 left take 116 s.
    #[test]
    fn plain_lines_carry_speed_and_time_left() {
        let report = StepReport { loss: 2.0, lr: 1e-3, grad_norm: 1.5, logged_loss: Some(2.1) };
        let line = progress_line(100, 3000, 2.1, &report, (100, 4.0));
        assert_eq!(
            line,
            "step 100/3000: loss 2.1000, lr 1.00e-3, grad norm 1.500, 25.0 steps/s, 0m04s elapsed, 1m56s left"
        );
        // A resumed session counts its own steps: 50 steps in 10 s from step 1,000 of 1,100.
        let line = progress_line(1050, 1100, 2.1, &report, (50, 10.0));
        assert!(line.ends_with("5.0 steps/s, 0m10s elapsed, 0m10s left"), "{line}");
        assert_eq!(format_duration(7384.4), "2h03m04s");
    }
}
