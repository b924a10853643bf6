//! `kiln`: train, evaluate and use Kiln models from TOML configs.

/// mimalloc keeps freed buffers for reuse: flex allocates fresh buffers for every tensor op, and
/// glibc's allocator returns large ones to the kernel, so each step paid page faults and zeroing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the pinned mimalloc's `mimalloc.h` (v2): the enum has no Rust name in
/// libmimalloc-sys 0.1.49.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the kernel (`purge_delay = -1`; default 10 ms): a training loop
/// frees and reallocates the same buffer sizes every step, and each purge costs page faults and
/// zeroed pages on the next step (about 10% of a step, docs/benchmarks.md). Resident memory then
/// stays at its high-water mark, which a training run reaches in its first steps anyway.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's global integer options; any value is valid for it.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

use kiln_train::commands::{self, EvalJob, PredictFormat, Use};
use kiln_train::{bench, bench_attention, config, remote, sentences, trainer};

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kiln_task::GenerateOptions;
use kiln_task::run_dir;

use kiln_train::config::RunConfig;
use kiln_train::run::Ending;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Train Kiln models from TOML configs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model. Writes a run directory with checkpoints, metrics.csv, plots and the resolved config.
    Train {
        /// The config file (not needed with --resume, which reads the run's own config.toml).
        config: Option<PathBuf>,
        /// Override a config value, e.g. `--set train.steps=100` (repeatable; `--set train.epochs=` removes a key).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Backend: flex, ndarray, wgpu, wgpu:N, cpu (overrides the config's device.backend and device.devices).
        #[arg(long)]
        device: Option<String>,
        /// Continue the run in this directory from its latest checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Stop (saving a checkpoint, as Ctrl-C does) once this many steps are done.
        #[arg(long, value_name = "STEPS")]
        stop_after_steps: Option<usize>,
    },
    /// Evaluate a run's best (or latest) checkpoint on the validation and test splits.
    Eval {
        /// The run directory.
        run_dir: PathBuf,
        /// Which checkpoint: best, latest, or a directory name under checkpoints/ (step-NNNNNNN).
        #[arg(long, default_value = "best")]
        checkpoint: String,
        /// Override a value of the run's config for this command only (not saved), e.g.
        /// `--set 'model.decode="flat"'` or `--set data.test=other.json` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Backend (default: the run's).
        #[arg(long)]
        device: Option<String>,
    },
    /// Generate from a trained language model.
    Sample {
        /// The run directory.
        run_dir: PathBuf,
        /// Text to continue.
        #[arg(long)]
        prompt: Option<String>,
        /// Characters to generate.
        #[arg(long, default_value_t = 500)]
        tokens: usize,
        /// Sampling temperature.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Sampler seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Override a value of the run's config for this command only (not saved), e.g.
        /// `--set 'model.decode="flat"'` or `--set data.test=other.json` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Backend (default: the run's).
        #[arg(long)]
        device: Option<String>,
    },
    /// Label inputs with a trained model (classifier, NER): one output line per input.
    Predict {
        /// The run directory.
        run_dir: PathBuf,
        /// One input.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        text: Option<String>,
        /// A UTF-8 file with one input per line (empty lines are skipped), already cut into tokens
        /// (a NER run of words splits each line at whitespace only); `-` reads standard input.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Output: `json` (one line per input) or, for NER with --file, `conll`: the --file is a
        /// column file (a token per line, blank lines between sentences), written back with a
        /// predicted BIO tag column, ready for conlleval.
        #[arg(long, value_enum, default_value = "json")]
        format: PredictFormat,
        /// Override a value of the run's config for this command only (not saved), e.g.
        /// `--set 'model.decode="flat"'` or `--set data.test=other.json` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Backend (default: the run's).
        #[arg(long)]
        device: Option<String>,
    },
    /// Run a worker that trainers on other machines list in `[device] devices` (feature
    /// `distributed`; docs/distributed.md). Prints the name to list; Ctrl-C stops it.
    Serve(remote::serve::ServeArgs),
    /// Parse, validate and build the model of each config, without training.
    Check {
        /// Config files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Sentence vectors from a pretrained BERT checkpoint to a .npy file, optionally whitened.
    Embed(sentences::EmbedArgs),
    /// Spearman correlations on STS for each pooling, raw and whitened (BERT-whitening, Su et al. 2021).
    Sts(sentences::StsArgs),
    /// Measure speed.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Sentence embedding throughput of a BERT checkpoint (sentences and tokens per second).
    Embed(sentences::BenchEmbedArgs),
    /// Training-step (and, with --eval, evaluation) speed of configs, alternating round by round.
    TrainStep(bench::BenchStepArgs),
    /// Every attention kind as a multi-head layer: time and peak memory against sequence length,
    /// and the relative error against exact softmax.
    Attention(bench_attention::BenchAttentionArgs),
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    // Workers with the main thread's stack size, since the command itself runs on one of them.
    let pool = rayon::ThreadPoolBuilder::new().stack_size(MAIN_STACK).build_global().is_ok();
    // `train` decides inside `run`, once it knows whether it trains data-parallel.
    let result = if pool && !matches!(cli.command, Command::Train { .. } | Command::Serve(_)) {
        kiln_kernels::on_worker(|| run(cli, pool))
    } else {
        run(cli, pool)
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Train with remote workers: a watchdog bounds every wait on them (`[device] worker_timeout_s`);
/// a failure (a panic of a failed remote read on this thread included) becomes one error, which
/// names the workers that no longer answer.
fn train_with_workers(config: &RunConfig, job: trainer::TrainJob) -> anyhow::Result<kiln_train::run::Summary> {
    use kiln_train::watchdog;
    watchdog::watch(remote::probes(&config.device.training_names()));
    watchdog::start(std::time::Duration::from_secs_f64(config.device.worker_timeout_s));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        watchdog::caught(|| config.model.with_task(&config.data, job))
    }));
    let context = watchdog::waiting_for();
    watchdog::idle();
    let error = match out {
        Ok(Ok(summary)) => return Ok(summary),
        Ok(Err(e)) => e,
        Err(payload) => anyhow::anyhow!("{}", watchdog::one_line(&watchdog::panic_text(payload.as_ref()))),
    };
    let silent = watchdog::unanswering();
    if silent.is_empty() {
        return Err(error);
    }
    Err(anyhow::anyhow!(
        "training stopped during {context}: worker {} no longer answers. The checkpoints written so far are intact; \
         resume with `kiln train --resume RUN_DIR` once it is back (cause: {})",
        silent.join(", worker "),
        watchdog::one_line(&format!("{error:#}"))
    ))
}

/// Stack of the thread pool's workers: 8 MiB, what Linux gives a program's main thread.
const MAIN_STACK: usize = 8 << 20;

/// Run a command; `pool`: the global pool was built with [`MAIN_STACK`], so a single-device `train`
/// may run on one of its workers ([`kiln_kernels::on_worker`]; not data-parallel training, where
/// burn-train's device threads run the replicas' kernels on the pool while the caller blocks on a
/// channel).
fn run(cli: Cli, pool: bool) -> anyhow::Result<i32> {
    match cli.command {
        Command::Train { config, overrides, device, resume, stop_after_steps } => {
            // Held until training ends: no second process trains this run meanwhile.
            let lock: Option<std::fs::File>;
            let (config, run_dir) = match (&resume, &config) {
                (Some(dir), None) => {
                    let c = commands::run_config(dir, &overrides)?;
                    lock = Some(run_dir::lock_run_dir(dir)?);
                    if !overrides.is_empty() {
                        let path = dir.join("config.toml");
                        run_dir::write_atomic(&path, commands::resolved_toml(&c, &path)?.as_bytes())?;
                    }
                    (c, dir.clone())
                }
                (Some(_), Some(_)) => {
                    bail!("--resume reads the run's own config.toml; give either CONFIG or --resume RUN_DIR, not both")
                }
                (None, Some(path)) => {
                    let mut c = RunConfig::load(path, &overrides)?;
                    c.data.resolve_paths(&config::data_dir());
                    c.model.resolve_paths();
                    let dir = commands::new_run_dir(&c.output.dir)?;
                    lock = Some(run_dir::lock_run_dir(&dir)?);
                    run_dir::write_atomic(&dir.join("config.toml"), commands::resolved_toml(&c, path)?.as_bytes())?;
                    (c, dir)
                }
                (None, None) => {
                    bail!("give a config file, e.g. `kiln train configs/quickstart.toml`, or --resume RUN_DIR")
                }
            };
            // `--device` trains on that one device; else `[device] devices` (data parallel) or `backend`.
            let devices = match &device {
                None if config.device.devices.len() > 1 => {
                    config.device.devices.iter().map(|d| config.device.open(d)).collect::<anyhow::Result<Vec<_>>>()?
                }
                _ => vec![config.device.open(device.as_deref().unwrap_or(config.device.main()))?],
            };
            ctrlc::set_handler(|| {
                if trainer::INTERRUPTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\ninterrupted: saving a checkpoint (press Ctrl-C again to quit at once)");
            })
            .context("installing the Ctrl-C handler")?;
            // `--device` trains on that one device: the run's names and watchdog see it.
            let mut config = config;
            if let Some(d) = &device {
                (config.device.backend, config.device.devices) = (d.clone(), Vec::new());
            }
            let single_device = devices.len() == 1;
            let job = trainer::TrainJob {
                config: config.clone(),
                run_dir,
                resume: resume.is_some(),
                devices,
                stop_after: stop_after_steps,
            };
            let summary = if config.device.any_remote() {
                train_with_workers(&config, job)
            } else if pool && single_device {
                kiln_kernels::on_worker(|| config.model.with_task(&config.data, job))
            } else {
                config.model.with_task(&config.data, job)
            }?;
            drop(lock);
            trainer::report(&summary);
            Ok(if summary.ending == Ending::Interrupted && trainer::INTERRUPTED.load(Ordering::SeqCst) {
                130
            } else {
                0
            })
        }
        Command::Eval { run_dir, checkpoint, overrides, device } => {
            let config = commands::run_config(&run_dir, &overrides)?;
            let device = config.device.open(device.as_deref().unwrap_or(config.device.main()))?;
            let out = config.model.with_task(&config.data, EvalJob { run_dir, pointer: checkpoint, device })?;
            print!("{out}");
            Ok(0)
        }
        Command::Sample { run_dir, prompt, tokens, temperature, seed, overrides, device } => {
            let options =
                GenerateOptions { prompt, max_tokens: tokens, temperature, seed, out_dir: Some(run_dir.clone()) };
            commands::use_trained(&run_dir, &overrides, Use::Generate(options), device)
        }
        Command::Predict { run_dir, text, file, format, overrides, device } => {
            let action = match (text, file, format) {
                (Some(text), _, PredictFormat::Json) => Use::Predict(vec![text]),
                (Some(_), _, PredictFormat::Conll) => bail!("--format conll labels a column file: give it with --file"),
                (None, Some(path), PredictFormat::Json) => Use::PredictTokenised(commands::read_inputs(&path)?),
                (None, Some(path), PredictFormat::Conll) => {
                    Use::PredictColumns { text: commands::read_text(&path)?, source: path }
                }
                (None, None, _) => bail!("give --text or --file"),
            };
            commands::use_trained(&run_dir, &overrides, action, device)
        }
        Command::Serve(args) => remote::serve::serve(args),
        Command::Embed(args) => sentences::embed(args),
        Command::Sts(args) => sentences::sts(args),
        Command::Bench { what: BenchCommand::Embed(args) } => sentences::bench_embed(args),
        Command::Bench { what: BenchCommand::TrainStep(args) } => bench::train_step(args),
        Command::Bench { what: BenchCommand::Attention(args) } => bench_attention::attention(args),
        Command::Check { configs } => {
            let mut failed = 0;
            for path in &configs {
                match commands::check(path) {
                    Ok(line) => println!("ok   {}: {line}", path.display()),
                    Err(e) => {
                        failed += 1;
                        println!("FAIL {e:#}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} configs failed", configs.len());
            }
            Ok(0)
        }
    }
}
