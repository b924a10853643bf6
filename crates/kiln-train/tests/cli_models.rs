//! End-to-end tests of each model kind through the `kiln` binary: NER, ListOps, the language model,
//! the VAE, the WGAN, and the benchmarks.

mod common;

use std::path::Path;

use common::*;

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
        !out.status.success()
            && text(&out).contains("input 1 `[MAX 2 x ]`: token 3 `x` is not a ListOps token")
            && text(&out).matches("is not a ListOps token").count() == 1,
        "the cause once: {}",
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

/// The VAE end to end on synthetic digits, vMF on S² (fixed κ), on S⁴ (fixed and learned κ) and
/// Gaussian: training lowers the negative
/// ELBO; `eval` reports the importance-sampled log-likelihood, which (a tighter bound) is above the
/// ELBO; `sample` writes the pictures, with the sphere plot for the 3-D vMF latent, and for a vMF
/// latent each test image's κ, KL and reconstruction (histograms where κ is learned).
#[test]
fn vae_trains_evaluates_and_draws() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_mnist(dir.path(), 300);
    let mlp = "{ kind = \"mlp\", hidden = [64, 32] }";
    for (name, latent, network) in [
        ("vmf", "{ kind = \"vmf\", d = 3, kappa = 10.0, sampler = \"table\" }", mlp),
        ("gauss", "{ kind = \"gaussian\", d = 3 }", mlp),
        ("conv", "{ kind = \"vmf\", d = 5, kappa = 10.0 }", "{ kind = \"conv\", channels = 4, hidden = 32 }"),
        ("learned", "{ kind = \"vmf\", d = 5, kappa = \"learned\" }", mlp),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[model]\nkind = \"vae\"\nlatent = {latent}\nnetwork = {network}\n\
                 binarize = true\nimportance_samples = 150\n\
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
        // In expectation the 50-sample bound lies above the ELBO (Burda et al. 2016, Theorem 1), and
        // a log-probability of binary pictures is at most 0. Seen with 50 samples: gaps of 0.8 (vMF), 5.1
        // and 3.2.
        assert!(ll > elbo && ll < 0.0, "{name}: importance-sampled log-likelihood {ll}, ELBO {elbo}");
        let out = kiln().arg("sample").arg(&run).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        for picture in ["reconstructions", "samples", "interpolations"] {
            let png = std::fs::read(run.join(format!("pictures/{picture}.png"))).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{name}: {picture}");
        }
        assert_eq!(run.join("pictures/latent_sphere.png").exists(), name == "vmf");
        // What κ learns: per test image κ, KL and reconstruction, drawn as `kiln eval` draws its test
        // figures (in its chunks: three of 133 images at 150 importance samples, where a split
        // scored without them is one chunk of 300, binarised and sampled differently), so their
        // means are its reconstruction and KL; κ varies over the images only where it is learned, and
        // only then are there histograms.
        assert_eq!(run.join("pictures/kappa.png").exists(), name == "learned", "{name}");
        assert_eq!(run.join("pictures/kappa_scale.csv").exists(), name == "learned", "{name}");
        if name != "gauss" {
            let csv = std::fs::read_to_string(run.join("pictures/kappa.csv")).unwrap();
            let rows: Vec<Vec<f64>> =
                csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
            assert_eq!(rows.len(), 300, "{name}");
            let mean = |col: usize| rows.iter().map(|r| r[col]).sum::<f64>() / rows.len() as f64;
            for (col, key) in [(3, "kl"), (4, "reconstruction")] {
                let (ours, eval) = (mean(col), value(key));
                assert!((ours - eval).abs() < 1e-4 * eval.abs().max(1.0), "{name}: {key} {ours} vs eval {eval}");
            }
            let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| (a.min(r[2]), b.max(r[2])));
            if name == "learned" {
                assert!(lo > 1.0 && hi > lo * 1.01, "{name}: kappa from {lo} to {hi}");
                assert!(text(&out).contains("kappa(x) over 300 test images"), "{}", text(&out));
                // The ELBO as κ(x) is scaled: at factor 1 eval's test figures (same chunks and
                // noise), and the KL rising with the factor (the vMF's KL to the uniform increases
                // in κ).
                assert!(text(&out).contains("kappa(x) scaled: ELBO"), "{}", text(&out));
                let csv = std::fs::read_to_string(run.join("pictures/kappa_scale.csv")).unwrap();
                let scan: Vec<Vec<f64>> =
                    csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
                assert_eq!(scan.len(), 11);
                let one = scan.iter().find(|r| r[0] == 1.0).expect("factor 1");
                for (col, key) in [(2, "reconstruction"), (3, "kl")] {
                    let eval = value(key);
                    assert!((one[col] - eval).abs() < 1e-4 * eval.abs().max(1.0), "{key} {} vs eval {eval}", one[col]);
                }
                assert!(scan.windows(2).all(|w| w[0][0] < w[1][0] && w[0][3] < w[1][3]), "KL by factor: {scan:?}");
                assert!(scan.iter().all(|r| (r[1] + r[2] + r[3]).abs() < 1e-6 * r[1].abs()), "{scan:?}");
            } else {
                assert!(lo == 10.0 && hi == 10.0, "{name}: kappa from {lo} to {hi}");
            }
        } else {
            assert!(!run.join("pictures/kappa.csv").exists());
        }
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
        let series = |key: &str| -> Vec<f64> {
            m.lines()
                .filter(|l| l.contains(&format!(",valid,{key},")))
                .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
                .collect()
        };
        let (w1, critic) = (series("w1"), series("critic_w1"));
        assert_eq!((w1.len(), critic.len()), (2, 2), "{name}: two evaluations: {m}");
        for (&w, &c) in w1.iter().zip(&critic) {
            // Both are measured on the same 64 real and 64 generated points. A critic that is
            // 1-Lipschitz cannot separate two point sets by more than their W1 (Kantorovich-Rubinstein
            // duality), so clipped and spectrally normalised critics must stay below it; the
            // penalised ones are only pushed towards slope 1, so no bound holds for them.
            assert!(w.is_finite() && w > 0.05, "{name}: exact W1 {w}");
            if matches!(name, "sn" | "clip") {
                assert!(c.abs() <= w, "{name}: a 1-Lipschitz critic's estimate {c} exceeds the exact W1 {w}");
            }
        }
        assert!(m.contains(",valid,modes,"), "{name}: {m}");
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
