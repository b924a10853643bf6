//! End-to-end tests of the `kiln` binary: configs, errors, resume, determinism, divergence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn all_configs() -> Vec<PathBuf> {
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
fn tiny_config(dir: &Path, extra_train: &str) -> PathBuf {
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

/// Every config in `configs/` parses and validates; with the datasets present, every model builds.
#[test]
fn every_config_parses_and_validates() {
    let configs = all_configs();
    assert!(configs.len() >= 10, "expected the configs folder, found {configs:?}");
    let out = kiln().arg("check").args(&configs).env_remove("KILN_DATA_DIR").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("ok   ").count(), configs.len(), "{}", text(&out));
}

#[test]
#[ignore = "needs the datasets: set KILN_DATA_DIR (e.g. ../shared/datasets)"]
fn every_config_builds_its_model_with_real_data() {
    let data = std::env::var("KILN_DATA_DIR").expect("KILN_DATA_DIR");
    let configs = all_configs();
    let out = kiln().arg("check").args(&configs).env("KILN_DATA_DIR", data).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("not found"), "{}", text(&out));
    assert_eq!(text(&out).matches("parameters").count(), configs.len(), "{}", text(&out));
}

/// Malformed configs: each gives a non-zero exit and a message that names the file, the line or
/// the key, and the problem.
#[test]
fn malformed_configs_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(workspace().join("configs/quickstart.toml")).unwrap();
    let line_of = |needle: &str| format!("line {}:", good.lines().position(|l| l.starts_with(needle)).unwrap() + 1);
    let (heads_line, batch_line, d_model_line) = (line_of("n_heads"), line_of("batch_size"), line_of("d_model"));
    let kind_line = line_of("kind = \"classifier\"");
    let pooling_line = line_of("pooling");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown key", good.replace("n_heads = 4", "n_haeds = 4"), vec![&heads_line, "unknown field `n_haeds`"]),
        (
            "wrong type",
            good.replace("batch_size = 32", "batch_size = \"32\""),
            vec![&batch_line, "batch_size", "invalid type"],
        ),
        (
            "wrong type in model",
            good.replace("d_model = 64", "d_model = 6.4"),
            vec![&d_model_line, "invalid type: floating point `6.4`"],
        ),
        (
            "unknown model kind",
            good.replace("kind = \"classifier\"", "kind = \"clasifier\""),
            vec![&kind_line, "unknown model kind `clasifier`"],
        ),
        ("bad value", good.replace("lr = 1e-3", "lr = -1.0"), vec!["train.optimizer.lr must be a positive number"]),
        ("heads", good.replace("n_heads = 4", "n_heads = 5"), vec!["d_model (64) is not divisible by n_heads (5)"]),
        ("unknown kind", good.replace("kind = \"softmax\"", "kind = \"flash\""), vec!["unknown variant `flash`"]),
        ("odd rope", good.replace("d_model = 64", "d_model = 12"), vec!["rope", "d_head must be even, got 3"]),
        (
            "wrong model keys",
            good.replace("kind = \"classifier\"", "kind = \"vit\""),
            vec![&pooling_line, "unknown field `pooling`"],
        ),
        (
            "mismatch",
            format!(
                "{}[data]\nkind = \"mnist\"\ndir = \"mnist\"\n{}",
                &good[..good.find("[data]").unwrap()],
                &good[good.find("[train]").unwrap()..]
            ),
            vec!["model kind `classifier` cannot train on data kind `mnist`"],
        ),
        (
            "ema decay",
            good.replacen("\nsteps = ", "\nema = { decay = 1.5 }\nsteps = ", 1),
            vec!["train.ema.decay must be in (0, 1)", "got 1.5"],
        ),
        ("both budgets", good.replacen("\nsteps = ", "\nepochs = 2\nsteps = ", 1), vec!["not both"]),
        ("missing section", good.replace("[output]\ndir = \"runs/quickstart\"", ""), vec!["missing field `output`"]),
        ("backend", format!("{good}\n[device]\nbackend = \"tpu\"\n"), vec!["unknown backend `tpu`"]),
        (
            "data-parallel device",
            format!("{good}\n[device]\ndevices = [\"flex\", \"gpu2\"]\n"),
            vec!["device.devices[1]", "unknown backend `gpu2`"],
        ),
        ("listops window", good.replace("max_len = 40", "max_len = 5"), vec!["leave none"]),
        ("not toml", "[model\nkind = 3".to_string(), vec!["line 1"]),
    ];
    for (name, body, needles) in cases {
        assert_ne!(body, good, "{name}: the case does not change the config");
        let path = dir.path().join(format!("{}.toml", name.replace(' ', "_")));
        std::fs::write(&path, body).unwrap();
        let out = kiln().args(["train"]).arg(&path).output().unwrap();
        let msg = text(&out);
        assert!(!out.status.success(), "{name}: should fail\n{msg}");
        assert!(
            msg.contains(&*path.file_name().unwrap().to_string_lossy()),
            "{name}: message does not name the file:\n{msg}"
        );
        for n in needles {
            assert!(msg.contains(n), "{name}: message does not contain `{n}`:\n{msg}");
        }
        assert!(!msg.contains("panicked"), "{name}: panicked:\n{msg}");
    }
    // A causal Nyström language model is an invalid combination.
    let lm = std::fs::read_to_string(workspace().join("configs/lm/softmax.toml"))
        .unwrap()
        .replace("{ kind = \"softmax\" }", "{ kind = \"nystrom\" }");
    let path = dir.path().join("causal_nystrom.toml");
    std::fs::write(&path, lm).unwrap();
    let out = kiln().arg("check").arg(&path).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("nystrom attention cannot be causal"), "{}", text(&out));
    // A data file that does not exist is named.
    let lm = std::fs::read_to_string(workspace().join("configs/lm/softmax.toml")).unwrap();
    let path = dir.path().join("lm.toml");
    std::fs::write(&path, lm.replace("tinyshakespeare/input.txt", "/nonexistent/input.txt")).unwrap();
    let out = kiln()
        .arg("train")
        .arg(&path)
        .arg("--set")
        .arg(format!("output.dir=\"{}\"", dir.path().join("runs").display()))
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("/nonexistent/input.txt"), "{}", text(&out));
    // --set with a misspelt key is an error too.
    let out = kiln()
        .arg("train")
        .arg(workspace().join("configs/quickstart.toml"))
        .args(["--set", "train.stpes=3"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("unknown field `stpes`"), "{}", text(&out));
}

fn run_dir_of(output: &Output) -> PathBuf {
    let t = text(output);
    let line =
        t.lines().find(|l| l.starts_with("run directory: ")).unwrap_or_else(|| panic!("no run directory in:\n{t}"));
    PathBuf::from(line.trim_start_matches("run directory: "))
}

/// `kiln eval` of the latest checkpoint: the weights digest and the metrics at full print precision.
fn final_model(run: &Path) -> String {
    let out = kiln().arg("eval").arg(run).args(["--checkpoint", "latest"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(t.contains("weights crc32: "), "{t}");
    t.lines().skip(1).collect::<Vec<_>>().join("\n")
}

fn metrics(run: &Path) -> String {
    std::fs::read_to_string(run.join("metrics.csv")).unwrap()
}

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

/// NER end to end on a generated column file, with a GlobalPointer-family head and with the CRF on a
/// from-scratch encoder, and with GlobalPointer on a (tiny, random) BERT checkpoint: train briefly, then
/// `predict` prints one JSON object per input line with character offsets, and `eval` prints entity F1.
#[test]
fn ner_trains_and_predicts_json() {
    let dir = tempfile::tempdir().unwrap();
    let (names, places, filler) = (["张三", "李四", "王五"], ["北京", "上海", "广州"], ["去", "在", "到", "从"]);
    let mut corpus = String::new();
    for i in 0..120 {
        let (n, p, f) = (names[i % 3], places[(i / 3) % 3], filler[i % 4]);
        for (k, c) in n.chars().enumerate() {
            corpus += &format!("{c} {}-PER\n", if k == 0 { "B" } else { "I" });
        }
        corpus += &format!("{f} O\n");
        for (k, c) in p.chars().enumerate() {
            corpus += &format!("{c} {}-LOC\n", if k == 0 { "B" } else { "I" });
        }
        corpus += "\n";
    }
    std::fs::write(dir.path().join("train.txt"), &corpus).unwrap();
    let valid: Vec<&str> = corpus.split_inclusive("\n\n").take(30).collect();
    std::fs::write(dir.path().join("valid.txt"), valid.concat()).unwrap();
    let mut vocab = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let chars: String = [names.concat(), places.concat(), filler.concat()].concat();
    vocab.extend(chars.char_indices().map(|(i, c)| &chars[i..i + c.len_utf8()]));
    let bert = dir.path().join("tiny-bert");
    kiln_transformer::bert::convert::write_random_checkpoint(&bert, &vocab, 32, 1, 2, 3).unwrap();
    let scratch = "bigrams = true\nlexicon = true\n[model.encoder]\nd_model = 32\nn_heads = 2\nn_layers = 1\n\
                   dropout = 0.0\nposition = { kind = \"rope\" }";
    let backbone = format!("[model.bert]\ndir = {:?}", bert.display().to_string());
    let heads = [
        ("egp", "{ kind = \"efficient_global_pointer\", d_head = 16 }", scratch.to_string()),
        ("crf", "{ kind = \"crf\" }", scratch.to_string()),
        ("bert", "{ kind = \"global_pointer\", d_head = 16 }", backbone),
    ];
    let inputs = dir.path().join("inputs.txt");
    std::fs::write(&inputs, "李四去北京\r\n\n王五在上海广州\n").unwrap();
    for (name, head, encoder) in heads {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
    [model]
    kind = "ner"
    head = {head}
    {encoder}
    [data]
    kind = "ner"
    format = "columns"
    train = "train.txt"
    valid = "valid.txt"
    [train]
    batch_size = 16
    steps = 60
    optimizer = {{ kind = "adamw", lr = 5e-3 }}
    eval_every = 60
    [output]
    dir = "{}"
    "#,
                dir.path().join(name).display()
            ),
        )
        .unwrap();
        let out = kiln().arg("train").arg(&config).env("KILN_DATA_DIR", dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let run = dir.path().join(name).join("run-001");
        let out = kiln().args(["eval"]).arg(&run).output().unwrap();
        assert!(out.status.success() && text(&out).contains("valid: f1 "), "{}", text(&out));
        if name == "egp" {
            eval_overrides_apply_to_one_command(dir.path(), &run, &valid.concat(), &text(&out));
        }
        let out = kiln().arg("predict").arg(&run).arg("--file").arg(&inputs).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let lines: Vec<serde_json::Value> =
            printed.lines().map(|l| serde_json::from_str(l).expect("predict prints JSON lines")).collect();
        assert_eq!(lines.len(), 2, "one line per non-empty input line: {printed}");
        let found = |line: &serde_json::Value| -> Vec<(String, u64, u64, String)> {
            line["entities"]
                .as_array()
                .expect("an entity array")
                .iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap().to_string();
                    (s("type"), e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap(), s("text"))
                })
                .collect()
        };
        // A pattern this regular is learnt in 60 steps: the entities, exact offsets, in input order.
        assert_eq!(lines[0]["text"], "李四去北京", "the \\r is stripped");
        let first = found(&lines[0]);
        assert!(first.contains(&("PER".into(), 0, 1, "李四".into())), "{name}: {printed}");
        assert!(first.contains(&("LOC".into(), 3, 4, "北京".into())), "{name}: {printed}");
        assert!(found(&lines[1]).contains(&("PER".into(), 0, 1, "王五".into())), "{name}: {printed}");
        let out = kiln().arg("predict").arg(&run).args(["--text", "张三到广州"]).output().unwrap();
        let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        assert!(found(&line).contains(&("LOC".into(), 3, 4, "广州".into())), "{name}: {}", text(&out));
        // The run directory is enough to predict: the same lines with the data files gone.
        let hidden = dir.path().join("hidden");
        std::fs::create_dir_all(&hidden).unwrap();
        for f in ["train.txt", "valid.txt"] {
            std::fs::rename(dir.path().join(f), hidden.join(f)).unwrap();
        }
        let out = kiln().arg("predict").arg(&run).arg("--file").arg(&inputs).output().unwrap();
        assert!(out.status.success(), "{name} without its data: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), printed, "{name} without its data");
        for f in ["train.txt", "valid.txt"] {
            std::fs::rename(hidden.join(f), dir.path().join(f)).unwrap();
        }
    }
}

/// `kiln eval RUN --set ...` changes the run's config for that command only: a relative data path
/// resolves against `$KILN_DATA_DIR` as in `train` (a validation file without entities scores 0
/// where the run's own scores well), a missing file and an unknown key are errors naming them, and
/// the saved config.toml is left as it was.
fn eval_overrides_apply_to_one_command(data: &Path, run: &Path, valid: &str, plain_eval: &str) {
    let f1 = |out: &str| -> f64 {
        let at = out.find("valid: f1 ").unwrap_or_else(|| panic!("no valid f1 in {out}")) + "valid: f1 ".len();
        out[at..].split(',').next().unwrap().trim().parse().unwrap()
    };
    assert!(f1(plain_eval) > 0.5, "{plain_eval}");
    let saved = std::fs::read(run.join("config.toml")).unwrap();
    let unlabelled: String = valid
        .lines()
        .map(|l| l.split_once(' ').map_or(l.to_string(), |(c, _)| format!("{c} O")))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(data.join("unlabelled.txt"), unlabelled + "\n").unwrap();
    let eval =
        |set: &str| kiln().arg("eval").arg(run).args(["--set", set]).env("KILN_DATA_DIR", data).output().unwrap();
    let out = eval("data.valid=unlabelled.txt");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(f1(&text(&out)), 0.0, "{}", text(&out));
    let out = eval("data.valid=missing.txt");
    assert!(!out.status.success() && text(&out).contains("missing.txt"), "{}", text(&out));
    let out = eval("train.no_such_key=1");
    assert!(!out.status.success() && text(&out).contains("no_such_key"), "{}", text(&out));
    assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), saved, "eval --set does not rewrite the run's config");
}

/// A character language model samples from its run directory alone (the vocabulary saved with
/// the run): the same text with the training text gone, and with the same seed; a prompt with a
/// character the text never had is an error naming it. A ListOps classifier predicts one value
/// per expression.
#[test]
fn sample_and_predict_from_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = "the cat sat on the mat. the dog sat on the log.\n".repeat(40);
    std::fs::write(dir.path().join("corpus.txt"), &corpus).unwrap();
    let config = dir.path().join("lm.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[model]
kind = "char_lm"
context = 16
[model.decoder]
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
dropout = 0.0
causal = true
position = {{ kind = "rope" }}
[data]
kind = "text"
path = {:?}
eval_batches = 2
eval_batch_size = 4
[train]
batch_size = 8
steps = 40
optimizer = {{ kind = "adamw", lr = 3e-3 }}
eval_every = 40
[output]
dir = {:?}
"#,
            dir.path().join("corpus.txt"),
            dir.path().join("lm")
        ),
    )
    .unwrap();
    let out = kiln().arg("train").arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = run_dir_of(&out);
    let sample = |prompt: &str, seed: &str| {
        kiln().arg("sample").arg(&run).args(["--prompt", prompt, "--tokens", "30", "--seed", seed]).output().unwrap()
    };
    let with_text = sample("the ", "3");
    assert!(with_text.status.success(), "{}", text(&with_text));
    let sampled = String::from_utf8_lossy(&with_text.stdout).to_string();
    assert!(
        sampled.starts_with("the ") && sampled.strip_suffix('\n').is_some_and(|t| t.chars().count() == 34),
        "{sampled:?}"
    );
    assert!(sampled.chars().all(|c| corpus.contains(c)), "only the text's characters: {sampled:?}");
    std::fs::rename(dir.path().join("corpus.txt"), dir.path().join("moved.txt")).unwrap();
    let without = sample("the ", "3");
    assert!(without.status.success(), "{}", text(&without));
    assert_eq!(String::from_utf8_lossy(&without.stdout), sampled, "the same sample without the text");
    let unknown = sample("the zebra", "3");
    assert!(!unknown.status.success() && text(&unknown).contains("'z'"), "{}", text(&unknown));

    let config = tiny_config(dir.path(), "");
    let out = kiln().arg("train").arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = run_dir_of(&out);
    let inputs = dir.path().join("expressions.txt");
    std::fs::write(&inputs, "[MAX 2 9 [MIN 4 7 ] 0 ]\n[SM 3 4 ]\n7\n").unwrap();
    let out = kiln().arg("predict").arg(&run).arg("--file").arg(&inputs).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let values: Vec<u8> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.parse().unwrap()).collect();
    assert!(values.len() == 3 && values.iter().all(|&v| v < 10), "{values:?}");
    let out = kiln().arg("predict").arg(&run).args(["--text", "[MAX 2 x ]"]).output().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("input 1 `[MAX 2 x ]`: token 3 `x` is not a ListOps token"),
        "{}",
        text(&out)
    );
    std::fs::write(&inputs, "[SM 3 4 ]\n[MAX 2 [MIN 4 7 ]\n").unwrap();
    let out = kiln().arg("predict").arg(&run).arg("--file").arg(&inputs).output().unwrap();
    assert!(
        !out.status.success()
            && text(&out).contains("input 2 `[MAX 2 [MIN 4 7 ]`: the operator at token 1 is not closed by `]`"),
        "{}",
        text(&out)
    );
}

/// `kiln bench train-step` times a config's step and evaluation; `--set` reaches every config, so
/// the items per step follow the overridden batch size; `--phases` splits the step into four phases
/// that add up to it (medians, so roughly); a bad config is named.
#[test]
fn bench_train_step_reports_a_row_per_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "");
    let out = kiln()
        .args(["bench", "train-step"])
        .arg(&config)
        .args(["--warmup", "1", "--steps", "2", "--rounds", "2", "--eval", "--phases", "--set", "train.batch_size=8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.contains("tiny.toml")).expect("a row for the config");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[2], "8", "items per step = the overridden batch size: {row}");
    let step_ms: f64 = cells[3].parse().unwrap();
    let items_per_s: f64 = cells[4].parse().unwrap();
    // The step time is printed to 0.01 ms, so the throughput is checked against that rounding interval.
    let (fastest, slowest) = (step_ms - 0.005, step_ms + 0.005);
    assert!(8.0 / (slowest / 1e3) * 0.995 <= items_per_s && items_per_s <= 8.0 / (fastest / 1e3) * 1.005, "{row}");
    assert!(cells[5].parse::<f64>().unwrap() > 0.0, "an eval time: {row}");
    let phases = stdout.lines().filter(|l| l.contains("tiny.toml")).nth(1).expect("a phases row");
    let phase_ms: Vec<f64> =
        phases.split('|').map(str::trim).skip(2).filter(|c| !c.is_empty()).map(|c| c.parse().unwrap()).collect();
    assert_eq!(phase_ms.len(), 4, "batch + forward, backward, clipping, update: {phases}");
    assert!(phase_ms[0] > 0.0 && phase_ms[1] > 0.0, "{phases}");
    let sum: f64 = phase_ms.iter().sum();
    assert!(sum > step_ms / 4.0 && sum < step_ms * 4.0, "phases {sum} ms against a step of {step_ms} ms");
    let out = kiln().args(["bench", "train-step", "/nonexistent.toml"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("/nonexistent.toml"), "{}", text(&out));
}

/// `kiln bench attention`: every point measured in its own process comes back as a table cell with
/// a time and a peak memory, the JSON lines agree with the table, softmax is exact against itself,
/// and a bad kind or point is named.
#[test]
fn bench_attention_measures_each_point_in_a_child_process() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("points.jsonl");
    let out = kiln()
        .args(["bench", "attention", "--kinds", "softmax,linear-elu,nystrom", "--n", "64,128", "--heads", "2"])
        .args(["--head-dim", "8", "--repeats", "1", "--error-n", "32", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let points: Vec<serde_json::Value> =
        std::fs::read_to_string(&json).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(points.len(), 3 * 2 * 2, "kinds × lengths × modes: {stdout}");
    for p in &points {
        let (ms, mib) = (p["ms"].as_f64().unwrap(), p["peak_mib"].as_f64().unwrap());
        assert!(ms > 0.0 && mib >= 0.0, "{p}");
        // The table shows the same figures, to 0.1 ms.
        assert!(stdout.contains(&format!("{ms:.1} ({mib:.0})")), "{p} not in\n{stdout}");
    }
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| 64 |") || l.starts_with("| 128 |")).collect();
    assert_eq!(rows.len(), 4, "one row per length and mode: {stdout}");
    let errors = stdout.lines().find(|l| l.starts_with("| 32 |")).expect("the error row");
    let cells: Vec<f64> = errors.split('|').map(str::trim).filter_map(|c| c.parse().ok()).collect();
    assert_eq!(cells.len(), 4, "{errors}");
    assert!(
        cells[1] == 0.0 && cells[2] > 0.01 && cells[3] < 0.05,
        "softmax 0, linear > 0, Nyström exact at 32 keys: {errors}"
    );
    // On flex a softmax backward point is not skipped for memory (its backward is blockwise): the
    // four [8, 512, 512] matrices of Burn's decomposed attention would be 0.03 GiB > --max-gib 0.001.
    // (The skipping rule itself is a unit test in bench_attention.rs.)
    let out =
        kiln().args(["bench", "attention", "--point", "softmax,512,backward", "--max-gib", "0.001"]).output().unwrap();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(p["ms"].as_f64().unwrap() > 0.0 && p["note"].is_null(), "{p}");
    let out = kiln().args(["bench", "attention", "--kinds", "flash"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("unknown attention kind `flash`"), "{}", text(&out));
    let out = kiln().args(["bench", "attention", "--point", "softmax,lots,forward"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("N must be a length"), "{}", text(&out));
    for args in [&["--point", "softmax,0,forward"][..], &["--n", "64,0"], &["--error-n", "0"]] {
        let out = kiln().args(["bench", "attention"]).args(args).output().unwrap();
        let msg = text(&out);
        assert!(!out.status.success() && msg.contains("at least 1") && !msg.contains("panicked"), "{args:?}: {msg}");
    }
}

/// Write IDX files of `n` synthetic 28×28 digits per split: class `c` is a bright bar in row block
/// `c` (so a VAE has something to learn), with pixel noise.
fn write_synthetic_mnist(dir: &Path, n: usize) {
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

/// The VAE end to end on synthetic digits, vMF on S² and Gaussian: training lowers the negative
/// ELBO; `eval` reports the importance-sampled log-likelihood, which (a tighter bound) is at least
/// the ELBO; `sample` writes the pictures, with the sphere plot for the 3-D vMF latent.
#[test]
fn vae_trains_evaluates_and_draws() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_mnist(dir.path(), 300);
    let mlp = "{ kind = \"mlp\", hidden = [64, 32] }";
    for (name, latent, network) in [
        ("vmf", "{ kind = \"vmf\", d = 3, kappa = 10.0, sampler = \"table\" }", mlp),
        ("gauss", "{ kind = \"gaussian\", d = 3 }", mlp),
        ("conv", "{ kind = \"vmf\", d = 5, kappa = 10.0 }", "{ kind = \"conv\", channels = 4, hidden = 32 }"),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[model]\nkind = \"vae\"\nlatent = {latent}\nnetwork = {network}\n\
                 binarize = true\nimportance_samples = 50\n\
                 [data]\nkind = \"mnist\"\ndir = {:?}\nn_valid = 50\n\
                 [train]\nbatch_size = 25\nsteps = 60\noptimizer = {{ kind = \"adam\", lr = 3e-3 }}\neval_every = 30\nlog_every = 10\n\
                 [output]\ndir = {:?}\n",
                dir.path().display().to_string(),
                dir.path().join(name).display().to_string()
            ),
        )
        .unwrap();
        let out = kiln().arg("train").arg(&config).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        let run = dir.path().join(name).join("run-001");
        let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let losses: Vec<f64> = metrics
            .lines()
            .filter(|l| l.contains(",train,loss,"))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(losses.len() >= 2 && losses.last() < losses.first(), "{name}: loss did not fall: {losses:?}");
        let out = kiln().arg("eval").arg(&run).output().unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{name}: {t}");
        let test_line = t.lines().find(|l| l.trim_start().starts_with("test:")).expect("a test line");
        let value = |key: &str| -> f64 {
            let i = test_line.find(&format!("{key} ")).unwrap_or_else(|| panic!("{key} in {test_line}"));
            test_line[i + key.len() + 1..].split(',').next().unwrap().trim().parse().unwrap()
        };
        let (elbo, ll) = (value("elbo"), value("log_likelihood"));
        assert!(ll >= elbo - 0.5, "{name}: importance-sampled log-likelihood {ll} below the ELBO {elbo}");
        let out = kiln().arg("sample").arg(&run).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        for picture in ["reconstructions", "samples", "interpolations"] {
            let png = std::fs::read(run.join(format!("pictures/{picture}.png"))).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{name}: {picture}");
        }
        assert_eq!(run.join("pictures/latent_sphere.png").exists(), name == "vmf");
        let out = kiln().arg("predict").arg(&run).args(["--text", "7"]).output().unwrap();
        assert!(!out.status.success() && text(&out).contains("takes no inputs to predict"), "{}", text(&out));
    }
}

/// The WGAN on 8 Gaussians, each Lipschitz constraint: a short run evaluates the exact W1 and the
/// critic's estimate, draws the overlay plot and the picture; with spectral normalisation an
/// interrupted run resumed equals the uninterrupted one, so the power-iteration vectors are saved
/// with the checkpoint (a fresh random vector would change every later step).
#[test]
fn wgan_trains_measures_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let constraints = [
        ("sn", "{ kind = \"spectral_norm\" }"),
        ("clip", "{ kind = \"clip\", c = 0.05 }"),
        ("gp", "{ kind = \"gradient_penalty\", method = \"exact\" }"),
        ("dq", "{ kind = \"gradient_penalty\", method = \"difference\" }"),
    ];
    for (name, lipschitz) in constraints {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[model]\nkind = \"wgan\"\nlipschitz = {lipschitz}\nn_critic = 2\ngenerator_hidden = [16, 16]\ncritic_hidden = [16, 16]\n\
                 [data]\nkind = \"toy2d\"\ndistribution = \"eight_gaussians\"\neval_points = 64\n\
                 [train]\nbatch_size = 32\nsteps = 12\noptimizer = {{ kind = \"adam\", lr = 1e-3, betas = [0.5, 0.9] }}\neval_every = 6\nlog_every = 3\n\
                 [output]\ndir = {:?}\n",
                dir.path().join(name).display().to_string()
            ),
        )
        .unwrap();
        let full = kiln().arg("train").arg(&config).output().unwrap();
        assert!(full.status.success(), "{name}: {}", text(&full));
        let full_dir = run_dir_of(&full);
        let m = std::fs::read_to_string(full_dir.join("metrics.csv")).unwrap();
        let w1: f64 =
            m.lines().rfind(|l| l.contains(",valid,w1,")).unwrap().rsplit(',').next().unwrap().parse().unwrap();
        assert!(w1 > 0.0 && w1.is_finite(), "{name}: {w1}");
        assert!(m.contains(",valid,critic_w1,") && m.contains(",valid,modes,"), "{name}: {m}");
        assert!(full_dir.join("plots/w1_vs_critic.png").exists(), "{name}");
        let out = kiln().arg("sample").arg(&full_dir).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(&std::fs::read(full_dir.join("pictures/samples.png")).unwrap()[1..4], b"PNG");
        if name == "clip" {
            // One generated distribution: evaluation says there is no test split, rather than an empty line.
            let out = kiln().arg("eval").arg(&full_dir).output().unwrap();
            assert!(
                out.status.success() && text(&out).contains(" test: none (this run's data has no test split)"),
                "{}",
                text(&out)
            );
            let out = kiln().arg("predict").arg(&full_dir).args(["--text", "1 2"]).output().unwrap();
            let msg = text(&out);
            assert!(
                !out.status.success() && msg.contains("takes no inputs to predict; `kiln sample RUN_DIR`"),
                "{msg}"
            );
        }
        if name == "sn" {
            let first = kiln().arg("train").arg(&config).args(["--stop-after-steps", "5"]).output().unwrap();
            assert!(first.status.success(), "{}", text(&first));
            let part_dir = run_dir_of(&first);
            let resumed = kiln().arg("train").arg("--resume").arg(&part_dir).output().unwrap();
            assert!(resumed.status.success(), "{}", text(&resumed));
            assert_eq!(metrics(&full_dir), metrics(&part_dir), "resumed spectral-norm run differs");
        }
    }
}

/// Malformed VAE, WGAN and NER-backbone configs: each fails `kiln check` with one message naming the
/// file and the key.
#[test]
fn malformed_model_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let read = |p: &str| std::fs::read_to_string(workspace().join(p)).unwrap();
    let (vae, gan, ner, listops, lm) = (
        read("configs/vae/mnist_vmf.toml"),
        read("configs/gan/eight_gaussians_gp.toml"),
        read("configs/ner/cluener_bert.toml"),
        read("configs/quickstart.toml"),
        read("configs/lm/softmax.toml"),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("vae kappa", vae.replace("kappa = 20.0", "kappa = 0.0"), "model.latent.kappa must be in (0, 1e5], got 0"),
        ("vae d", vae.replace("d = 10", "d = 1"), "model.latent.d must be at least 2"),
        ("vae sampler", vae.replace("sampler = \"wood\"", "sampler = \"ulrich\""), "unknown variant `ulrich`"),
        (
            "vae widths",
            vae.replace("hidden = [256, 128]", "hidden = []"),
            "model.network.hidden must list at least one width",
        ),
        ("vae key", vae.replace("binarize = true", "binarise = true"), "unknown field `binarise`"),
        ("gan lambda", gan.replace("lambda = 10.0", "lambda = -1.0"), "model.lipschitz.lambda must be positive"),
        (
            "gan method",
            gan.replace("method = \"exact\"", "method = \"double_backward\""),
            "unknown variant `double_backward`",
        ),
        ("gan n_critic", gan.replace("n_critic = 5", "n_critic = 0"), "model.n_critic must be at least 1"),
        (
            "gan accumulation",
            gan.replace("[train]\n", "[train]\ngrad_accum = 2\n"),
            "use grad_accum = 1 and one device",
        ),
        (
            "gan devices",
            format!("{gan}\n[device]\ndevices = [\"flex\", \"flex\"]\n"),
            "use grad_accum = 1 and one device",
        ),
        (
            "gan kind",
            gan.replace("kind = \"gradient_penalty\"", "kind = \"gradient_clipping\""),
            "unknown variant `gradient_clipping`",
        ),
        (
            "gan data",
            gan.replace("distribution = \"eight_gaussians\"", "distribution = \"nine_gaussians\""),
            "unknown variant `nine_gaussians`",
        ),
        (
            "gan on text",
            gan.replace("kind = \"toy2d\"\ndistribution = \"eight_gaussians\"", "kind = \"text\"\npath = \"t.txt\""),
            "model kind `wgan` cannot train on data kind `text`",
        ),
        (
            "ner both",
            ner.replace(
                "\n[model.bert]\n",
                "\n[model.encoder]\nd_model = 32\nn_heads = 2\nn_layers = 1\n\n[model.bert]\n",
            ),
            "give either [model.encoder] or [model.bert], not both",
        ),
        (
            "classifier embedding_std",
            listops.replace("pooling = \"mean\"", "pooling = \"mean\"\nembedding_std = -1.0"),
            "model.embedding_std must be positive, got -1",
        ),
        (
            "char_lm embedding_std",
            lm.replace("embedding_std = 0.02", "embedding_std = inf"),
            "model.embedding_std must be positive, got inf",
        ),
        ("ner neither", ner.replace("[model.bert]\nattention = { kind = \"softmax\" }", ""), "give [model.encoder]"),
        (
            "ner bert embedding_std",
            ner.replace("\n[model.bert]\n", "\nembedding_std = 0.02\n\n[model.bert]\n"),
            "model.embedding_std: applies to a from-scratch [model.encoder] only",
        ),
        (
            "ner threshold",
            ner.replace("\n[model.bert]\n", "\nthreshold = -inf\n\n[model.bert]\n"),
            "model.threshold: -inf is not a finite number",
        ),
        (
            "ner valid twice",
            ner.replace("[data]\n", "[data]\nvalid_fraction = 0.05\n"),
            "data.valid_fraction: give either data.valid (a file) or data.valid_fraction, not both",
        ),
        (
            "classifier positions",
            listops.replace("position = { kind = \"rope\" }", "position = { kind = \"learned\", max_seq_len = 30 }"),
            "model.encoder.position: the learned positions cover 30 tokens (max_seq_len), but data.max_len = 40 (trees of up to 39 tokens) gives sequences of 39",
        ),
        (
            "classifier positions pad_to",
            listops
                .replace("position = { kind = \"rope\" }", "position = { kind = \"learned\", max_seq_len = 39 }")
                .replace("max_len = 40", "max_len = 40\npad_to = 48"),
            "data.pad_to = 48 gives sequences of 48",
        ),
        (
            "char_lm positions",
            lm.replace("max_seq_len = 64", "max_seq_len = 32"),
            "model.decoder.position: the learned positions cover 32 tokens (max_seq_len), but model.context = 64 gives sequences of 64",
        ),
        (
            "ner positions",
            read("configs/ner/cluener_gp.toml")
                .replace("position = { kind = \"rope\" }", "position = { kind = \"learned\", max_seq_len = 50 }"),
            "model.encoder.position: the learned positions cover 50 tokens (max_seq_len), but data.max_len = 64 gives sequences of 64",
        ),
        (
            "ner bert key",
            ner.replace("attention = { kind = \"softmax\" }", "atention = { kind = \"softmax\" }"),
            "unknown field `atention`",
        ),
    ];
    for (name, body, needle) in cases {
        let path = dir.path().join(format!("{}.toml", name.replace(' ', "_")));
        std::fs::write(&path, body).unwrap();
        let out = kiln().arg("check").arg(&path).env_remove("KILN_DATA_DIR").output().unwrap();
        let msg = text(&out);
        assert!(!out.status.success(), "{name}: should fail\n{msg}");
        assert!(msg.contains(&*path.file_name().unwrap().to_string_lossy()), "{name}: file not named:\n{msg}");
        assert!(msg.contains(needle), "{name}: message does not contain `{needle}`:\n{msg}");
        assert!(!msg.contains("panicked"), "{name}: panicked:\n{msg}");
    }
}

/// The WGAN on (synthetic) MNIST with DCGAN networks, judged by a ViT trained with Kiln: the
/// evaluation reports the Fréchet distance in the judge's feature space, the classes covered and the
/// class entropy; a grid of digits is written after every evaluation; the exact gradient penalty is
/// refused for the convolutional critic with a message that says what to use.
#[test]
fn wgan_on_images_is_judged_by_a_kiln_classifier() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_mnist(dir.path(), 200);
    let data = format!("[data]\nkind = \"mnist\"\ndir = {:?}\nn_valid = 20\n", dir.path().display().to_string());
    let judge_config = dir.path().join("judge.toml");
    std::fs::write(
        &judge_config,
        format!(
            "[model]\nkind = \"vit\"\npatch_size = 7\n[model.encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1\n{data}\
             [train]\nbatch_size = 20\nsteps = 10\noptimizer = {{ kind = \"adam\", lr = 3e-3 }}\neval_every = 10\n\
             [output]\ndir = {:?}\n",
            dir.path().join("judge").display().to_string()
        ),
    )
    .unwrap();
    let out = kiln().arg("train").arg(&judge_config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let judge = run_dir_of(&out);
    // Learned positions shorter than the patch grid: a config error naming both, before training.
    let short = dir.path().join("short_positions.toml");
    let judge_text = std::fs::read_to_string(&judge_config).unwrap();
    std::fs::write(
        &short,
        judge_text.replace("n_layers = 1\n", "n_layers = 1\nposition = { kind = \"learned\", max_seq_len = 8 }\n"),
    )
    .unwrap();
    let out = kiln().arg("train").arg(&short).output().unwrap();
    let msg = text(&out);
    assert!(
        !out.status.success()
            && msg.contains("model.encoder.position: the learned positions cover 8 tokens (max_seq_len), but model.patch_size = 7 on 28x28 images (4x4 patches) gives sequences of 16")
            && !msg.contains("panicked"),
        "{msg}"
    );
    let gan = |lipschitz: &str| {
        format!(
            "[model]\nkind = \"wgan\"\nlipschitz = {lipschitz}\nn_critic = 2\nnoise_dim = 8\nchannels = 4\neval_samples = 40\njudge = {:?}\n{data}\
             [train]\nbatch_size = 10\nsteps = 6\noptimizer = {{ kind = \"adam\", lr = 1e-3, betas = [0.5, 0.9] }}\neval_every = 3\n\
             [output]\ndir = {:?}\n",
            judge.display().to_string(),
            dir.path().join("gan").display().to_string()
        )
    };
    let config = dir.path().join("gan.toml");
    std::fs::write(&config, gan("{ kind = \"gradient_penalty\", method = \"difference\" }")).unwrap();
    let out = kiln().arg("train").arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = run_dir_of(&out);
    let m = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last = |key: &str| -> f64 {
        m.lines().rfind(|l| l.contains(&format!(",valid,{key},"))).unwrap().rsplit(',').next().unwrap().parse().unwrap()
    };
    assert!(last("frechet") >= 0.0 && last("frechet").is_finite());
    assert!(last("frechet_real") >= 0.0 && last("frechet_real").is_finite(), "the real-vs-real floor");
    assert!((1.0..=10.0).contains(&last("classes")));
    assert!((0.0..=10f64.ln() + 1e-9).contains(&last("class_entropy")));
    for step in [3, 6] {
        assert!(run.join(format!("pictures/step-{step:06}.png")).exists(), "grid after the evaluation at {step}");
    }
    let out = kiln().arg("sample").arg(&run).output().unwrap();
    assert!(out.status.success() && run.join("pictures/samples.png").exists(), "{}", text(&out));
    std::fs::write(&config, gan("{ kind = \"gradient_penalty\", method = \"exact\" }")).unwrap();
    let out = kiln().arg("train").arg(&config).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("use method = \"difference\""), "{}", text(&out));
}

/// The tiny config with `extra_train` run to the end, and again stopped after 13 steps (checkpoints
/// every 5, so the stopped run holds step-0000010 and step-0000013):
/// `(temporary dir, config, full run, stopped run)`.
fn full_and_stopped_at_13(extra_train: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
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
