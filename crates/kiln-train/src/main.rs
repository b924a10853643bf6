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

use kiln_train::{backend, bench, bench_attention, checkpoint, config, sentences, trainer};

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand};
use kiln_task::{GenerateOptions, Task};

use kiln_train::config::{ModelConfig, RunConfig};
use kiln_train::tasks::{TaskJob, with_task, with_trained_task};

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
        /// A UTF-8 file with one input per line (empty lines are skipped); `-` reads standard input.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Override a value of the run's config for this command only (not saved), e.g.
        /// `--set 'model.decode="flat"'` or `--set data.test=other.json` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Backend (default: the run's).
        #[arg(long)]
        device: Option<String>,
    },
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
    let result = if pool && !matches!(cli.command, Command::Train { .. }) {
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
                    let c = run_config(dir, &overrides)?;
                    lock = Some(checkpoint::lock_run_dir(dir)?);
                    if !overrides.is_empty() {
                        let path = dir.join("config.toml");
                        checkpoint::write_atomic(&path, resolved_toml(&c, &path)?.as_bytes())?;
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
                    let dir = new_run_dir(&c.output.dir)?;
                    lock = Some(checkpoint::lock_run_dir(&dir)?);
                    checkpoint::write_atomic(&dir.join("config.toml"), resolved_toml(&c, path)?.as_bytes())?;
                    (c, dir)
                }
                (None, None) => {
                    bail!("give a config file, e.g. `kiln train configs/quickstart.toml`, or --resume RUN_DIR")
                }
            };
            // `--device` trains on that one device; else `[device] devices` (data parallel) or `backend`.
            let data_parallel = match &device {
                None if config.device.devices.len() > 1 => {
                    config.device.devices.iter().map(|d| backend::device(d)).collect::<anyhow::Result<Vec<_>>>()?
                }
                _ => Vec::new(),
            };
            let device = match data_parallel.first() {
                Some(first) => first.clone(),
                None => backend::device(device.as_deref().unwrap_or(config.device.main()))?,
            };
            ctrlc::set_handler(|| {
                if trainer::INTERRUPTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\ninterrupted: saving a checkpoint (press Ctrl-C again to quit at once)");
            })
            .context("installing the Ctrl-C handler")?;
            let single_device = data_parallel.is_empty();
            let job = trainer::TrainJob {
                run_dir,
                resume: resume.is_some(),
                device,
                data_parallel,
                stop_after: stop_after_steps,
            };
            let summary = if pool && single_device {
                kiln_kernels::on_worker(|| with_task(&config, job))
            } else {
                with_task(&config, job)
            }?;
            drop(lock);
            trainer::report(&summary);
            Ok(if summary.ending == trainer::Ending::Interrupted && trainer::INTERRUPTED.load(Ordering::SeqCst) {
                130
            } else {
                0
            })
        }
        Command::Eval { run_dir, checkpoint, overrides, device } => {
            let config = run_config(&run_dir, &overrides)?;
            let device = backend::device(device.as_deref().unwrap_or(config.device.main()))?;
            let out = with_task(&config, EvalJob { run_dir, pointer: checkpoint, device })?;
            print!("{out}");
            Ok(0)
        }
        Command::Sample { run_dir, prompt, tokens, temperature, seed, overrides, device } => {
            let options =
                GenerateOptions { prompt, max_tokens: tokens, temperature, seed, out_dir: Some(run_dir.clone()) };
            generate(&run_dir, &overrides, options, device)
        }
        Command::Predict { run_dir, text, file, overrides, device } => {
            let texts = match (text, file) {
                (Some(text), _) => vec![text],
                (None, Some(path)) => read_inputs(&path)?,
                (None, None) => bail!("give --text or --file"),
            };
            let config = run_config(&run_dir, &overrides)?;
            let device = backend::device(device.as_deref().unwrap_or(config.device.main()))?;
            let job = PredictJob { run_dir: run_dir.clone(), texts, device };
            for line in with_trained_task(&config, &run_dir, job)? {
                println!("{line}");
            }
            Ok(0)
        }
        Command::Embed(args) => sentences::embed(args),
        Command::Sts(args) => sentences::sts(args),
        Command::Bench { what: BenchCommand::Embed(args) } => sentences::bench_embed(args),
        Command::Bench { what: BenchCommand::TrainStep(args) } => bench::train_step(args),
        Command::Bench { what: BenchCommand::Attention(args) } => bench_attention::attention(args),
        Command::Check { configs } => {
            let mut failed = 0;
            for path in &configs {
                match check(path) {
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

/// The resolved config, with a header saying where it came from.
fn resolved_toml(c: &RunConfig, source: &Path) -> anyhow::Result<String> {
    Ok(format!("# Resolved from {} by kiln {}\n{}", source.display(), env!("CARGO_PKG_VERSION"), toml::to_string(c)?))
}

/// A run's saved config with `--set` overrides applied for this command (not written back); relative
/// paths an override brings in resolve as in `train` (against `$KILN_DATA_DIR`).
fn run_config(run_dir: &Path, overrides: &[String]) -> anyhow::Result<RunConfig> {
    let path = run_dir.join("config.toml");
    anyhow::ensure!(path.is_file(), "{}: not a run directory (no config.toml)", run_dir.display());
    let mut config = RunConfig::load(&path, overrides)?;
    config.data.resolve_paths(&config::data_dir());
    config.model.resolve_paths();
    Ok(config)
}

/// `<parent>/run-NNN`, the first number not taken.
fn new_run_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(parent).with_context(|| format!("creating output.dir {}", parent.display()))?;
    for i in 1..100_000 {
        let dir = parent.join(format!("run-{i:03}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("{}: no free run-NNN name", parent.display())
}

/// Build the task's model and load the first of `pointers` (`best`, `latest`) that the run has.
fn load_checkpoint<T: Task>(
    task: &T,
    run_dir: &Path,
    pointers: &[&str],
    device: &Device,
) -> anyhow::Result<(PathBuf, T::Model)> {
    for pointer in pointers {
        let dir = if pointer.starts_with("step-") {
            let dir = run_dir.join("checkpoints").join(pointer);
            anyhow::ensure!(dir.is_dir(), "{}: no such checkpoint", dir.display());
            Some(dir)
        } else {
            anyhow::ensure!(
                *pointer == "best" || *pointer == "latest",
                "--checkpoint must be best, latest or a step-NNNNNNN directory, got `{pointer}`"
            );
            checkpoint::pointed(run_dir, pointer)?
        };
        if let Some(dir) = dir {
            let model = checkpoint::load_model(&dir, task.build_model(device)?)?;
            return Ok((dir, model));
        }
    }
    bail!("{}: no `{}` checkpoint (was the run started?)", run_dir.display(), pointers.join("` or `"))
}

struct EvalJob {
    run_dir: PathBuf,
    pointer: String,
    device: Device,
}

impl TaskJob for EvalJob {
    type Output = String;
    fn run<T: Task>(self, task: T, _config: &RunConfig) -> anyhow::Result<String> {
        let (dir, model) = load_checkpoint(&task, &self.run_dir, &[self.pointer.as_str()], &self.device)?;
        let mut out = format!(
            "{} ({})\nweights crc32: {:08x}\n",
            task.describe(),
            dir.display(),
            checkpoint::weights_digest(&model)
        );
        for split in ["valid", "test"] {
            let metrics = task.evaluate(&model, split, &self.device)?;
            if metrics.is_empty() {
                out.push_str(&format!("{split:>5}: none (this run's data has no {split} split)\n"));
            } else {
                out.push_str(&format!("{split:>5}: {}\n", trainer::format_metrics(&metrics)));
            }
        }
        Ok(out)
    }
}

struct GenerateJob {
    run_dir: PathBuf,
    options: GenerateOptions,
    device: Device,
}

impl TaskJob for GenerateJob {
    type Output = String;
    fn run<T: Task>(self, task: T, _config: &RunConfig) -> anyhow::Result<String> {
        let (_, model) = load_checkpoint(&task, &self.run_dir, &["best", "latest"], &self.device)?;
        task.generate(&model, &self.options, &self.device)
    }
}

struct PredictJob {
    run_dir: PathBuf,
    texts: Vec<String>,
    device: Device,
}

impl TaskJob for PredictJob {
    type Output = Vec<String>;
    fn run<T: Task>(self, task: T, _config: &RunConfig) -> anyhow::Result<Vec<String>> {
        let (_, model) = load_checkpoint(&task, &self.run_dir, &["best", "latest"], &self.device)?;
        task.predict(&model, &self.texts, &self.device)
    }
}

/// The non-empty lines of a file (or of standard input for `-`), line endings stripped.
fn read_inputs(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading standard input")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        anyhow::anyhow!("{}: line {line}: not valid UTF-8", path.display())
    })?;
    let lines: Vec<String> =
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).map(String::from).collect();
    anyhow::ensure!(!lines.is_empty(), "{}: no input lines", path.display());
    Ok(lines)
}

fn generate(
    run_dir: &Path,
    overrides: &[String],
    options: GenerateOptions,
    device: Option<String>,
) -> anyhow::Result<i32> {
    let config = run_config(run_dir, overrides)?;
    let device = backend::device(device.as_deref().unwrap_or(config.device.main()))?;
    let out = with_trained_task(&config, run_dir, GenerateJob { run_dir: run_dir.to_path_buf(), options, device })?;
    println!("{out}");
    Ok(0)
}

struct CheckJob;

impl TaskJob for CheckJob {
    type Output = String;
    fn run<T: Task>(self, task: T, _config: &RunConfig) -> anyhow::Result<String> {
        let model = task.build_model(&Device::default())?;
        Ok(format!("{}, {} parameters", task.describe(), model.num_params()))
    }
}

/// Parse, validate and build. A config whose data is not on this machine is parsed and validated
/// but its model is not built (a character model needs its vocabulary), and the line says so.
fn check(path: &Path) -> anyhow::Result<String> {
    let mut config = RunConfig::load(path, &[])?;
    config.data.resolve_paths(&config::data_dir());
    config.model.resolve_paths();
    if let Some(missing) = config.data.paths().into_iter().find(|p| !p.exists()) {
        return Ok(format!(
            "parsed and validated; data not found at {} (set KILN_DATA_DIR), model not built",
            missing.display()
        ));
    }
    if let ModelConfig::Ner(ner) = &config.model
        && ner.bert.as_ref().is_some_and(|b| b.dir.as_deref().is_none_or(|d| !d.exists()))
    {
        return Ok("parsed and validated; BERT checkpoint not found (set KILN_BERT_DIR), model not built".into());
    }
    with_task(&config, CheckJob).with_context(|| format!("{}", path.display()))
}
