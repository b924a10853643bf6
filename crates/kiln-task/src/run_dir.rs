//! The run directory's format, in one place: what `kiln train` writes and everything that reads a
//! run (`kiln eval`, `predict`, `sample`, `train --resume`, the WGAN's judge) reads, through the
//! functions here.
//!
//! ```text
//! RUN_DIR/config.toml        the resolved config
//! RUN_DIR/checkpoints/       step-NNNNNNN/{model.bpk, optimizer.bpk, ema.bpk?, state.json}, latest, best
//! RUN_DIR/.lock              held while a process trains the run
//! ```
//!
//! Checkpoints are written atomically and verified on load.
//!
//! `RUN_DIR/checkpoints/step-NNNNNNN/` holds `model.bpk`, `optimizer.bpk` (burnpack), with
//! `[train.ema]` the averaged weights `ema.bpk`, and `state.json` (step, seed, best metric,
//! early-stopping count and the CRC-32 of the weight files). It is
//! written under a temporary name, synced, then renamed: a crash leaves either the old set of
//! checkpoints or the new one, never a half-written one. `checkpoints/latest` names the newest,
//! `checkpoints/best` the one with the best evaluation metric; both are replaced by rename too.
//!
//! The random state needs no saving: batches are a function of `(seed, step)` and the device is
//! re-seeded from `(seed, step)` before every step, so a resumed run continues exactly.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Context, Result, TaskError};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

/// The best evaluation so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Metric name.
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// The step it was reached at.
    pub step: usize,
}

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// The run's seed.
    pub seed: u64,
    /// Best evaluation so far.
    pub best: Option<Best>,
    /// Evaluations since the best one (early stopping).
    pub evals_since_best: usize,
    /// Training losses summed since the last logged step, and how many steps they cover (so that a
    /// resumed run logs the same averages).
    #[serde(default)]
    pub loss_window: (f64, usize),
    /// Wall time spent training before this checkpoint, in seconds.
    pub train_seconds: f64,
    /// CRC-32 of `model.bpk`.
    pub model_crc32: u32,
    /// CRC-32 of `optimizer.bpk`.
    pub optimizer_crc32: u32,
    /// CRC-32 of `ema.bpk`, in checkpoints that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_crc32: Option<u32>,
}

/// Hold `RUN_DIR/.lock` while training writes the run directory: an advisory lock that the system
/// releases when the process ends, however it ends (so a killed run leaves no stale lock). A second
/// `kiln train --resume` of a run that is still training is refused, naming the process, instead of
/// interleaving its checkpoints and metrics with the first one's. The file stays (deleting it would
/// let a process waiting on the old file and one creating a new file both proceed); on a file
/// system without locks, training goes ahead with a warning.
///
/// # Errors
///
/// Another process holds the lock, or the file cannot be opened.
pub fn lock_run_dir(dir: &Path) -> Result<File> {
    use std::io::{Read, Seek};
    let path = dir.join(".lock");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| writeln!(file, "{}", std::process::id()))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Err(fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(TaskError::Checkpoint(format!(
                "{}: another kiln process (pid {}) is training this run; wait for it to finish or stop it (Ctrl-C saves a checkpoint), then resume",
                dir.display(),
                pid.trim()
            )));
        }
        Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!(
                "warning: {}: this file system has no file locks; nothing stops a second process from training this run",
                dir.display()
            );
        }
        Err(fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    Ok(file)
}

fn name(step: usize) -> String {
    format!("step-{step:07}")
}

fn crc_of(path: &Path) -> Result<u32> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(crc32fast::hash(&bytes))
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes the rename durable on Linux; not every platform supports it.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Write `contents` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Save a checkpoint at `state.step`; returns its directory. On any error the previous checkpoints
/// are untouched.
pub fn save<M: Module + Clone>(
    run_dir: &Path,
    model: &M,
    ema: Option<&M>,
    optimizer: &ModuleOptimizer,
    state: &TrainState,
) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    let final_dir = root.join(name(state.step));
    let tmp = root.join(format!(".tmp-{}", name(state.step)));
    let result = (|| -> Result<()> {
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let save_weights = |weights: &M, name: &str| -> Result<PathBuf> {
            let path = tmp.join(name);
            weights
                .clone()
                .save_file(&path)
                .map_err(|e| TaskError::backend(format_args!("writing {}", path.display()), e))?;
            Ok(path)
        };
        let model_path = save_weights(model, "model.bpk")?;
        let optim_path = tmp.join("optimizer.bpk");
        optimizer
            .save(&optim_path)
            .map_err(|e| TaskError::backend(format_args!("writing {}", optim_path.display()), e))?;
        let ema_path = ema.map(|ema| save_weights(ema, "ema.bpk")).transpose()?;
        for p in [Some(&model_path), Some(&optim_path), ema_path.as_ref()].into_iter().flatten() {
            File::open(p).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", p.display()))?;
        }
        let state = TrainState {
            model_crc32: crc_of(&model_path)?,
            optimizer_crc32: crc_of(&optim_path)?,
            ema_crc32: ema_path.as_deref().map(crc_of).transpose()?,
            ..state.clone()
        };
        let json = serde_json::to_string_pretty(&state).context("encoding state.json")?;
        write_atomic(&tmp.join("state.json"), json.as_bytes())?;
        sync_dir(&tmp);
        if final_dir.exists() {
            remove_atomically(&final_dir).with_context(|| format!("replacing {}", final_dir.display()))?;
        }
        fs::rename(&tmp, &final_dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
        sync_dir(&root);
        write_atomic(&root.join("latest"), name(state.step).as_bytes())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e)
            .context(format!("saving the checkpoint of step {} (earlier checkpoints are intact)", state.step));
    }
    Ok(final_dir)
}

/// Delete a checkpoint directory so that a crash part-way leaves no half-deleted `step-*`: it is
/// first renamed to a `.tmp-` name (atomic), which [`latest_valid`] clears on the next resume.
/// (Deleting in place and being killed left a `step-*` without its optimizer file; the crash test
/// in `scripts/reliability/crash_test.sh` found it.)
fn remove_atomically(dir: &Path) -> std::io::Result<()> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
    let doomed = dir.with_file_name(format!(".tmp-delete-{name}"));
    if doomed.exists() {
        fs::remove_dir_all(&doomed)?;
    }
    fs::rename(dir, &doomed)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    fs::remove_dir_all(&doomed)
}

/// Mark the checkpoint of `step` as the best one.
pub fn mark_best(run_dir: &Path, step: usize) -> Result<()> {
    write_atomic(&run_dir.join("checkpoints").join("best"), name(step).as_bytes())
}

/// The directory a pointer file (`latest`, `best`) names, if any.
pub fn pointed(run_dir: &Path, pointer: &str) -> Result<Option<PathBuf>> {
    let path = run_dir.join("checkpoints").join(pointer);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(run_dir.join("checkpoints").join(s.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The checkpoint to resume from: the one `latest` names if it verifies, else (after a crash that
/// left `latest` naming a missing or corrupt set) the newest `step-*` that does, with a note saying
/// so. Stale temporary directories of interrupted writes are removed.
///
/// # Errors
///
/// The checkpoint directory cannot be read.
pub fn latest_valid(run_dir: &Path) -> Result<Option<(PathBuf, Option<String>)>> {
    let root = run_dir.join("checkpoints");
    if !root.is_dir() {
        return Ok(None);
    }
    let mut steps = Vec::new();
    for entry in fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let path = entry.with_context(|| format!("reading {}", root.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.starts_with(".tmp-") {
            fs::remove_dir_all(&path).with_context(|| format!("removing the unfinished {}", path.display()))?;
        } else if name.starts_with("step-") && path.is_dir() {
            steps.push(path);
        }
    }
    let named = match pointed(run_dir, "latest") {
        Ok(Some(dir)) => match read_state(&dir) {
            Ok(_) => return Ok(Some((dir, None))),
            Err(e) => format!("checkpoints/latest names {}, which does not load ({e:#})", dir.display()),
        },
        Ok(None) => "checkpoints/latest is missing".to_string(),
        Err(e) => format!("checkpoints/latest cannot be read ({e:#})"),
    };
    steps.sort();
    for dir in steps.into_iter().rev() {
        if read_state(&dir).is_ok() {
            let note = format!("{named}; using {}, the newest checkpoint that verifies", dir.display());
            return Ok(Some((dir, Some(note))));
        }
    }
    Ok(None)
}

/// Read and verify a checkpoint's state; the model and optimiser files' checksums must match.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join("state.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).with_context(|| format!("{}: not a Kiln checkpoint state", path.display()))?;
    let files = [
        ("model.bpk", Some(state.model_crc32)),
        ("optimizer.bpk", Some(state.optimizer_crc32)),
        ("ema.bpk", state.ema_crc32),
    ];
    for (file, expected) in files.into_iter().filter_map(|(f, crc)| Some((f, crc?))) {
        let p = dir.join(file);
        let found = crc_of(&p)?;
        if found != expected {
            return Err(TaskError::Checkpoint(format!(
                "{}: checksum {found:08x} does not match {expected:08x} recorded in state.json: the file is corrupt",
                p.display()
            )));
        }
    }
    Ok(state)
}

fn load_weights<M: Module>(model: M, path: &Path) -> Result<M> {
    model.try_load_file(path).map_err(|e| TaskError::backend(format_args!("loading {}", path.display()), e))
}

/// A resumed run: the trained weights, the average of the weights if the checkpoint has one (loaded
/// into `ema`, a freshly built validation model), the optimiser and the state.
pub type Resumed<M> = (M, Option<M>, ModuleOptimizer, TrainState);

/// Load a checkpoint into a freshly built model and optimiser.
pub fn load<M: Module>(dir: &Path, model: M, ema: M, optimizer: ModuleOptimizer) -> Result<Resumed<M>> {
    let state = read_state(dir)?;
    let model = load_weights(model, &dir.join("model.bpk"))?;
    let ema = state.ema_crc32.map(|_| load_weights(ema, &dir.join("ema.bpk"))).transpose()?;
    let optim_path = dir.join("optimizer.bpk");
    let optimizer = optimizer
        .load(&optim_path)
        .map_err(|e| TaskError::backend(format_args!("loading {}", optim_path.display()), e))?;
    Ok((model, ema, optimizer, state))
}

/// Load the weights a checkpoint evaluates with (evaluation, prediction, sampling): the average of
/// the weights (`ema.bpk`) where the run kept one, else the trained weights.
pub fn load_model<M: Module>(dir: &Path, model: M) -> Result<M> {
    let state = read_state(dir)?;
    let file = if state.ema_crc32.is_some() { "ema.bpk" } else { "model.bpk" };
    load_weights(model, &dir.join(file))
}

/// The checkpoint directory `pointer` names: `best` or `latest` (through the pointer files, `None`
/// where the run has none), or a `step-NNNNNNN` directory.
///
/// # Errors
///
/// `pointer` is none of these, the named step directory does not exist, or a pointer file cannot be
/// read.
pub fn checkpoint_dir(run_dir: &Path, pointer: &str) -> Result<Option<PathBuf>> {
    if pointer.starts_with("step-") {
        let dir = run_dir.join("checkpoints").join(pointer);
        if !dir.is_dir() {
            return Err(TaskError::Checkpoint(format!("{}: no such checkpoint", dir.display())));
        }
        return Ok(Some(dir));
    }
    crate::ensure!(
        pointer == "best" || pointer == "latest",
        "--checkpoint must be best, latest or a step-NNNNNNN directory, got `{pointer}`"
    );
    pointed(run_dir, pointer)
}

/// Load the first of `pointers` (`best`, `latest`, `step-NNNNNNN`) that the run has into `model`, with
/// the weights it evaluates with ([`load_model`]: checksums verified, the average of the weights
/// where the run kept one); returns the checkpoint's directory too.
///
/// # Errors
///
/// No checkpoint of `pointers` exists, or it does not verify or load.
pub fn load_evaluated<M: Module>(run_dir: &Path, pointers: &[&str], model: M) -> Result<(PathBuf, M)> {
    for pointer in pointers {
        if let Some(dir) = checkpoint_dir(run_dir, pointer)? {
            let model = load_model(&dir, model)?;
            return Ok((dir, model));
        }
    }
    Err(TaskError::Checkpoint(format!(
        "{}: no `{}` checkpoint (was the run started?)",
        run_dir.display(),
        pointers.join("` or `")
    )))
}

/// Delete periodic checkpoints beyond the newest `keep`, never the best or the latest.
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let root = run_dir.join("checkpoints");
    let protected: Vec<PathBuf> =
        ["best", "latest"].iter().filter_map(|p| pointed(run_dir, p).ok().flatten()).collect();
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep.max(1));
    for d in dirs.into_iter().take(excess) {
        if !protected.contains(&d) {
            remove_atomically(&d).with_context(|| format!("removing old checkpoint {}", d.display()))?;
        }
    }
    Ok(())
}

/// CRC-32 of every float parameter's values, in module order: equal digests mean equal weights,
/// whatever the parameter ids written in the files (which differ from build to build).
pub fn weights_digest<M: Module>(model: &M) -> u32 {
    struct Digest(crc32fast::Hasher);
    impl burn::module::ModuleVisitor for Digest {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::prelude::Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            for v in data.iter::<f32>() {
                self.0.update(&v.to_le_bytes());
            }
        }
    }
    let mut d = Digest(crc32fast::Hasher::new());
    model.visit(&mut d);
    d.0.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `state.json` gives back exactly the floats it was given: the loss window of a resumed run must
    /// sum on from the same bits (serde_json's default float parsing may be one ulp off; the
    /// `float_roundtrip` feature makes it exact — the SIGKILL script caught a logged loss that differed
    /// in its last digit).
    #[test]
    fn state_round_trips_floats_exactly() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut off = 0;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let value = (x >> 11) as f64 / (1u64 << 53) as f64 * 40.0;
            let state = TrainState {
                step: 1,
                seed: 0,
                best: None,
                evals_since_best: 0,
                loss_window: (value, 7),
                train_seconds: value,
                model_crc32: 0,
                optimizer_crc32: 0,
                ema_crc32: None,
            };
            let back: TrainState = serde_json::from_str(&serde_json::to_string_pretty(&state).unwrap()).unwrap();
            off += usize::from(back.loss_window.0.to_bits() != value.to_bits());
        }
        assert_eq!(off, 0, "{off} of 20000 floats changed through state.json");
    }
}
