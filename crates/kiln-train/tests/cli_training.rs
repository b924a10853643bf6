//! End-to-end tests of `kiln train`: exact resume, averaged weights, data parallelism, divergence,
//! interruption, early stopping, Performer redraws, and checkpoints that lose nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// An interrupted run resumed equals an uninterrupted run, bit for bit; the same config and seed
/// give identical metrics.
#[test]
fn resumed_run_equals_uninterrupted_run() {
    let (_dir, config, full_dir, part_dir) = full_and_stopped_at_13("");
    let again = kiln().arg("train").arg(&config).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(metrics(&full_dir), metrics(&run_dir_of(&again)), "same seed, different metrics");

    let resumed = kiln().arg("train").arg("--resume").arg(&part_dir).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(text(&resumed).contains("resuming"), "{}", text(&resumed));
    assert_eq!(metrics(&full_dir), metrics(&part_dir), "resumed metrics differ");
    assert_eq!(final_model(&full_dir), final_model(&part_dir), "resumed model differs");
    let summary = std::fs::read_to_string(part_dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"step\": 24"), "{summary}");
    assert!(part_dir.join("plots/loss.png").exists());

    // A different seed gives a different run.
    let other = kiln().arg("train").arg(&config).args(["--set", "train.seed=5"]).output().unwrap();
    assert_ne!(metrics(&full_dir), metrics(&run_dir_of(&other)));
}

/// `[train.ema]`: the average of the weights is what the run evaluates (the `valid` rows) and what
/// `kiln eval` loads; the trained weights are evaluated beside it (`valid_raw`) and differ; a resumed
/// run, which reloads the average from `ema.bpk`, equals an uninterrupted one.
#[test]
fn averaged_weights_are_evaluated_checkpointed_and_resumed() {
    let (_dir, _, full_dir, part_dir) = full_and_stopped_at_13("ema = { decay = 0.9, eval_raw = true }");
    let rows = metrics(&full_dir);
    let value = |split: &str, step: usize| -> f64 {
        let prefix = format!("{step},{split},loss,");
        let line = rows.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{rows}"));
        line[prefix.len()..].parse().unwrap()
    };
    for step in [8, 16, 24] {
        assert_ne!(value("valid", step), value("valid_raw", step), "step {step}: the average equals the weights");
    }
    assert!(full_dir.join("checkpoints/step-0000024/ema.bpk").exists());
    let evaluated = final_model(&full_dir);
    assert!(evaluated.contains(&format!("loss {:.4}", value("valid", 24))), "{evaluated}\n{rows}");
    let resumed = kiln().arg("train").arg("--resume").arg(&part_dir).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(rows, metrics(&part_dir), "resumed metrics differ");
    assert_eq!(evaluated, final_model(&part_dir), "resumed average differs");
}

/// Data parallelism through burn-train's multi-device step: two replicas (here both on the CPU)
/// with `grad_accum = 1` train exactly as one device with `grad_accum = 2` — the same micro-batches,
/// losses averaged the same way, gradients summed in the same order — so metrics and weights are
/// bit-identical (dropout off: each replica draws its own dropout masks). Epoch budgets count the
/// micro-batches of every device.
#[test]
fn two_devices_train_as_one_device_with_gradient_accumulation() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    // `kiln train` of the config with `--set` overrides and other flags; must succeed.
    let train = |sets: &[&str], flags: &[&str]| {
        let out =
            kiln().arg("train").arg(&config).args(sets.iter().flat_map(|e| ["--set", e])).args(flags).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let run = |extra: &[&str]| {
        let sets = [&["model.encoder.dropout=0", "train.steps=12"], extra].concat();
        run_dir_of(&train(&sets, &[]))
    };
    let two_devices = "device.devices=[\"flex\", \"flex\"]";
    let one = run(&["train.grad_accum=2"]);
    let two = run(&["train.grad_accum=1", two_devices]);
    assert_eq!(metrics(&one), metrics(&two), "data parallel differs from gradient accumulation");
    assert_eq!(final_model(&one), final_model(&two));
    let resolved = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(resolved.contains("devices = [\"flex\", \"flex\"]"), "{resolved}");
    // Interrupted and resumed (the run's config keeps the devices), it ends the same.
    let sets = ["model.encoder.dropout=0", "train.steps=12", "train.grad_accum=1", two_devices];
    let part_dir = run_dir_of(&train(&sets, &["--stop-after-steps", "7"]));
    let resumed = kiln().arg("train").arg("--resume").arg(&part_dir).output().unwrap();
    assert!(resumed.status.success() && text(&resumed).contains("from step 7"), "{}", text(&resumed));
    assert_eq!(metrics(&two), metrics(&part_dir), "resumed data-parallel run differs");
    assert_eq!(final_model(&two), final_model(&part_dir));
    // A different split is a different run (the comparison can fail).
    let other = run(&["train.grad_accum=1"]);
    assert_ne!(metrics(&one), metrics(&other));
    // Epochs: 600 examples / (16 per device x 2 devices) = 18 steps per epoch.
    let out =
        train(&["train.steps=", "train.epochs=1", "train.grad_accum=1", two_devices], &["--stop-after-steps", "1"]);
    assert!(text(&out).contains(", 18 steps,"), "{}", text(&out));
}

/// A diverging run stops with a message naming the step and keeps the last good checkpoint.
#[test]
fn diverging_run_stops_and_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let out = kiln()
        .arg("train")
        .arg(&config)
        .args([
            "--set",
            "train.optimizer.lr=1e12",
            "--set",
            "train.grad_clip=1e30",
            "--set",
            "train.schedule.warmup_steps=0",
        ])
        .output()
        .unwrap();
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("the training loss is") && msg.contains("step "), "{msg}");
    assert!(msg.contains("last good checkpoint"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

/// Ctrl-C (SIGINT) saves a checkpoint and exits with 130; `--resume` then finishes the run. While
/// the first process trains, a second `--resume` of its run is refused.
#[test]
fn interrupt_saves_a_checkpoint_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let child = kiln()
        .arg("train")
        .arg(&config)
        .args(["--set", "train.steps=100000", "--set", "train.checkpoint_every=", "--set", "train.eval_every=100000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training has run a few steps (the first log line), then interrupt.
    let runs = dir.path().join("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let logged = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("metrics.csv")).ok())
            .is_some_and(|m| m.lines().count() > 3);
        if logged {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // While it trains, a second process may not train the same run.
    let training = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let second = kiln().arg("train").arg("--resume").arg(&training).args(["--stop-after-steps", "1"]).output().unwrap();
    let msg = text(&second);
    assert!(
        !second.status.success()
            && msg.contains(&format!("another kiln process (pid {}) is training this run", child.id()))
            && !msg.contains("panicked"),
        "{msg}"
    );
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    let run = run_dir_of(&out);
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let step: usize = latest.trim().trim_start_matches("step-").parse().unwrap();
    assert!(step >= 4, "checkpoint at step {step}");
    let resumed = kiln()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .args(["--set", &format!("train.steps={}", step + 4)])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(text(&resumed).contains(&format!("resuming {} from step {step}", run.display())), "{}", text(&resumed));
    assert!(text(&resumed).contains(&format!("finished after {} steps", step + 4)), "{}", text(&resumed));
}

/// Early stopping: with a `min_delta` no evaluation can beat, training stops `patience`
/// evaluations after the first, and the best checkpoint is the first evaluation's.
#[test]
fn early_stopping_stops_after_patience_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "early_stopping = { patience = 2, min_delta = 100.0 }");
    let out = kiln().arg("train").arg(&config).args(["--set", "train.steps=48"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("early stopping: no improvement in 2 evaluations"), "{msg}");
    assert!(msg.contains("stopped early after 24 steps"), "{msg}");
    let run = run_dir_of(&out);
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/best")).unwrap().trim(), "step-0000008");
    assert!(msg.contains("best accuracy") && msg.contains("at step 8"), "{msg}");
}

/// Performer redraws its features before every `redraw_interval`-th step, never after the last one
/// (as the reference, which redraws in the training forward pass): a 7-step run with
/// `redraw_interval = 7` ends with the same weights and metrics as one that never redraws, an 8-step
/// one does not (its last step trained with the new features).
#[test]
fn performer_features_are_not_redrawn_after_the_last_step() {
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(tiny_config(dir.path(), "")).unwrap();
    let run = |interval: usize, steps: usize| {
        let path = dir.path().join(format!("redraw_{interval}_{steps}.toml"));
        std::fs::write(&path, body.replace("redraw_interval = 7", &format!("redraw_interval = {interval}"))).unwrap();
        let out = kiln().arg("train").arg(&path).args(["--set", &format!("train.steps={steps}")]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        final_model(&run_dir_of(&out))
    };
    assert_eq!(run(7, 7), run(0, 7), "features drawn after the last step");
    assert_ne!(run(7, 8), run(0, 8), "the redraw before step 8 (1-based) was not used");
}

/// A checkpoint write that fails (here: files over 16 KiB cannot be written, as on a full disk) is an
/// error that keeps the previous checkpoint; a `latest` that no longer verifies (a flipped byte) is
/// skipped for the newest checkpoint that does; either way the run finishes equal to an uninterrupted one.
#[cfg(unix)]
#[test]
fn failed_writes_and_corrupt_checkpoints_lose_nothing() {
    let (_dir, _, full_dir, run) = full_and_stopped_at_13("");
    let latest = || std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest(), "step-0000013");

    let bin = env!("CARGO_BIN_EXE_kiln");
    let script = format!("trap '' XFSZ; ulimit -f 16; exec '{bin}' train --resume '{}'", run.display());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("saving the checkpoint of step 15 (earlier checkpoints are intact)"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert_eq!(latest(), "step-0000013", "{msg}");
    assert!(!run.join("checkpoints/.tmp-step-0000015").exists(), "the failed write is cleaned up");

    let model = run.join("checkpoints/step-0000013/model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    std::fs::write(&model, bytes).unwrap();
    let out = kiln().arg("eval").arg(&run).args(["--checkpoint", "latest"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("checksum"), "{}", text(&out));
    let resumed = kiln().arg("train").arg("--resume").arg(&run).output().unwrap();
    let msg = text(&resumed);
    assert!(resumed.status.success(), "{msg}");
    assert!(
        msg.contains("does not load") && msg.contains("step-0000010, the newest checkpoint that verifies"),
        "{msg}"
    );
    assert!(msg.contains("resuming") && msg.contains("from step 10"), "{msg}");
    assert_eq!(metrics(&full_dir), metrics(&run), "resumed metrics differ");
    assert_eq!(final_model(&full_dir), final_model(&run), "resumed model differs");
}

/// A checkpoint directory that has become read-only: saving the next checkpoint is an error that keeps
/// `latest` and every earlier checkpoint; once writable again, the run resumes and ends equal to an
/// uninterrupted one. Root ignores permissions, so as root the resumed run is started as `nobody`
/// (`setpriv`, util-linux) from a copy of the binary that `nobody` can reach.
#[test]
fn read_only_checkpoint_directory_keeps_the_previous_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    let (dir, _, full_dir, run) = full_and_stopped_at_13("");
    let checkpoints = run.join("checkpoints");
    let latest = || std::fs::read_to_string(checkpoints.join("latest")).unwrap();
    let saved = || {
        let mut names: Vec<String> =
            std::fs::read_dir(&checkpoints).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        names
    };
    let before = saved();

    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let mut resume = if root {
        // Everything the unprivileged run needs is readable and writable by all, except the
        // checkpoint directory.
        let bin = dir.path().join("kiln");
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).unwrap();
        let chmod = Command::new("chmod").arg("-R").arg("a+rwX").arg(dir.path()).status().unwrap();
        assert!(chmod.success());
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin);
        c
    } else {
        kiln()
    };
    set_mode(&checkpoints, 0o555);
    let out = resume.arg("train").arg("--resume").arg(&run).output().unwrap();
    set_mode(&checkpoints, 0o755);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("saving the checkpoint of step 15 (earlier checkpoints are intact)"), "{msg}");
    assert!(msg.contains("ermission denied"), "{msg}");
    assert_eq!(msg.matches("error:").count(), 1, "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert_eq!(latest(), "step-0000013", "{msg}");
    assert_eq!(saved(), before, "the checkpoint directory is unchanged");

    let resumed = kiln().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(text(&resumed).contains("from step 13"), "{}", text(&resumed));
    assert_eq!(metrics(&full_dir), metrics(&run), "resumed metrics differ");
    assert_eq!(final_model(&full_dir), final_model(&run), "resumed model differs");
}
