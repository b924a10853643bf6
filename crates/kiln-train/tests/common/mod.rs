//! What the end-to-end tests of the `kiln` binary share: running it, the workspace, a small
//! ListOps config, and reading a run directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// The workspace root. `CARGO_MANIFEST_DIR` is read when the test runs, not with `env!` when it is
/// compiled: a target directory shared by two checkouts reuses a test binary built in the other one,
/// and a path baked into it would point there (or nowhere, once that checkout is gone).
pub fn workspace() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../..").canonicalize().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn all_configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![workspace().join("configs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A small, fast ListOps run: dropout and gradient accumulation on, so that resume and
/// determinism are tested with the random state that matters.
pub fn tiny_config(dir: &Path, extra_train: &str) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[model]
kind = "classifier"
[model.encoder]
d_model = 32
n_heads = 2
n_layers = 2
d_ff = 64
dropout = 0.1
attention = {{ kind = "performer", num_features = 16, redraw_interval = 7 }}
position = {{ kind = "rope" }}
[data]
kind = "listops"
n_train = 600
n_valid = 64
n_test = 64
min_len = 4
max_len = 30
max_depth = 3
max_args = 4
[train]
batch_size = 16
steps = 24
grad_accum = 2
optimizer = {{ kind = "adamw", lr = 3e-3 }}
schedule = {{ kind = "cosine", warmup_steps = 4 }}
grad_clip = 1.0
eval_every = 8
log_every = 4
checkpoint_every = 5
{extra_train}
[output]
dir = "{}"
"#,
            dir.join("runs").display()
        ),
    )
    .unwrap();
    path
}

pub fn run_dir_of(output: &Output) -> PathBuf {
    run_dir_in(&text(output))
}

/// The run directory `kiln train` printed in its output `t`.
pub fn run_dir_in(t: &str) -> PathBuf {
    let line =
        t.lines().find(|l| l.starts_with("run directory: ")).unwrap_or_else(|| panic!("no run directory in:\n{t}"));
    PathBuf::from(line.trim_start_matches("run directory: "))
}

/// `kiln eval` of the latest checkpoint: the weights digest and the metrics at full print precision.
pub fn final_model(run: &Path) -> String {
    let out = kiln().arg("eval").arg(run).args(["--checkpoint", "latest"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(t.contains("weights crc32: "), "{t}");
    t.lines().skip(1).collect::<Vec<_>>().join("\n")
}

pub fn metrics(run: &Path) -> String {
    std::fs::read_to_string(run.join("metrics.csv")).unwrap()
}

/// Write IDX files of `n` synthetic 28×28 digits per split: class `c` is a bright bar in row block
/// `c` (so a VAE has something to learn), with pixel noise.
pub fn write_synthetic_mnist(dir: &Path, n: usize) {
    for split in ["train", "t10k"] {
        let mut images = vec![0, 0, 8, 3];
        images.extend((n as u32).to_be_bytes());
        images.extend(28u32.to_be_bytes());
        images.extend(28u32.to_be_bytes());
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        for i in 0..n {
            let class = i % 10;
            labels.push(class as u8);
            for y in 0..28 {
                for x in 0..28 {
                    let on = y / 3 == class && (4..24).contains(&x);
                    let noise = ((i * 31 + y * 7 + x * 13) % 17) as u8;
                    images.push(if on { 230 + noise } else { noise });
                }
            }
        }
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
}

/// The tiny config with `extra_train` run to the end, and again stopped after 13 steps (checkpoints
/// every 5, so the stopped run holds step-0000010 and step-0000013):
/// `(temporary dir, config, full run, stopped run)`.
pub fn full_and_stopped_at_13(extra_train: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), extra_train);
    let full = kiln().arg("train").arg(&config).output().unwrap();
    assert!(full.status.success(), "{}", text(&full));
    let full_dir = run_dir_of(&full);
    let first = kiln().arg("train").arg(&config).args(["--stop-after-steps", "13"]).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("interrupted"), "{}", text(&first));
    let run = run_dir_of(&first);
    (dir, config, full_dir, run)
}
