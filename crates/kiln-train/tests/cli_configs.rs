//! End-to-end tests of the `kiln` binary: every shipped config, and malformed configs named by file,
//! line and key.

mod common;

use std::path::PathBuf;

use common::*;

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
    // Configs on the repository's own samples (samples/) read them from the workspace.
    let (samples, configs): (Vec<PathBuf>, Vec<PathBuf>) =
        all_configs().into_iter().partition(|p| std::fs::read_to_string(p).unwrap().contains("\"samples/"));
    for (configs, data) in [(configs, data), (samples, workspace().display().to_string())] {
        let out = kiln().arg("check").args(&configs).env("KILN_DATA_DIR", data).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains("not found"), "{}", text(&out));
        assert_eq!(text(&out).matches("parameters").count(), configs.len(), "{}", text(&out));
    }
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
        (
            "vae kappa",
            vae.replace("kappa = 20.0", "kappa = 0.0"),
            "model.latent.kappa must be in (0, 1e5] or \"learned\", got 0",
        ),
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
