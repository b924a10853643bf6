//! `kiln embed` and `kiln sts` end to end: argument errors without a checkpoint, and with
//! all-MiniLM-L6-v2 (`KILN_BERT_DIR`) vectors written, whitened and reloaded.

use std::path::Path;
use std::process::{Command, Output};

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("KILN_BERT_DIR");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Bad input: one line naming the problem, exit code 1 or clap's 2, never a panic.
#[test]
fn bad_arguments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sentences = dir.path().join("s.txt");
    std::fs::write(&sentences, "one\ntwo\n").unwrap();
    let s = sentences.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["embed", s, "-o", "x.npy"], "give --model DIR or set KILN_BERT_DIR"),
        (vec!["embed", s, "-o", "x.npy", "--model", "/nonexistent/ckpt"], "/nonexistent/ckpt/config.json"),
        (vec!["embed", s, "-o", "x.npy", "--pooling", "mean"], "unknown pooling `mean`"),
        (vec!["embed", s, "-o", "x.npy", "--k", "8"], "--k, --beta and --gamma apply to whitening"),
        (vec!["embed", "/nonexistent.txt", "-o", "x.npy"], "/nonexistent.txt"),
        (vec!["sts", "--data", "/nonexistent/stsb"], "no stsbenchmark.tsv"),
        (vec!["embed", s, "-o", "x.npy", "--attention", "{ kind = \"flash\" }"], "--attention { kind = \"flash\" }"),
        // Checked before the model is loaded (none is given here), not after the sentences are embedded.
        (
            vec!["embed", s, "-o", "/nonexistent/x.npy"],
            "--output /nonexistent/x.npy: the directory /nonexistent does not exist",
        ),
        (
            vec!["embed", s, "-o", "x.npy", "--fit-whitening", "/nonexistent/w.safetensors"],
            "--fit-whitening /nonexistent/w.safetensors: the directory /nonexistent does not exist",
        ),
    ];
    for (args, needle) in cases {
        let out = kiln().args(&args).output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {t}");
        assert!(t.contains(needle), "{args:?}: message does not contain `{needle}`: {t}");
        assert!(!t.contains("panicked"), "{args:?} panicked: {t}");
    }
}

/// Blank lines are skipped with a note naming them (the output's rows follow the kept lines), on a
/// tiny random checkpoint.
#[test]
fn embed_skips_blank_lines_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-bert");
    let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "one", "two", "three"];
    kiln_transformer::bert::convert::write_random_checkpoint(&model, &vocab, 16, 1, 2, 3).unwrap();
    let input = dir.path().join("s.txt");
    std::fs::write(&input, "one\n\ntwo three\n   \nthree\n").unwrap();
    let output = dir.path().join("v.npy");
    let out = kiln().arg("embed").arg(&input).arg("--model").arg(&model).arg("-o").arg(&output).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("skipped 2 blank lines (line 2, 4); row i of the output is the i-th non-blank line"), "{t}");
    let (vectors, n, d) = read_npy(&output);
    assert_eq!((n, d), (3, 16));
    assert!(vectors.iter().all(|v| v.is_finite()));
    // A whitened dimension count beyond the model's is refused before any statistics are written.
    let stats = dir.path().join("w.safetensors");
    let out = kiln()
        .arg("embed")
        .arg(&input)
        .arg("--model")
        .arg(&model)
        .arg("-o")
        .arg(&output)
        .arg("--fit-whitening")
        .arg(&stats)
        .args(["--k", "17"])
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("--k 17: must be in 1..=16"), "{}", text(&out));
    assert!(!stats.exists(), "no statistics written");
}

fn read_npy(path: &Path) -> (Vec<f32>, usize, usize) {
    kiln_whiten::npy::read_f32(path).unwrap()
}

#[test]
#[ignore = "needs all-MiniLM-L6-v2: scripts/download_minilm.sh, then set KILN_BERT_DIR"]
fn embed_fit_and_apply_whitening() {
    let model = std::env::var("KILN_BERT_DIR").expect("KILN_BERT_DIR");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.txt");
    let sentences: Vec<String> = (0..40).map(|i| format!("Sentence number {i} is about topic {}.", i % 7)).collect();
    std::fs::write(&input, sentences.join("\n")).unwrap();
    let run = |extra: &[&str], out: &str| {
        let o = kiln()
            .args(["embed", input.to_str().unwrap(), "--model", &model, "-o"])
            .arg(dir.path().join(out))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        read_npy(&dir.path().join(out))
    };
    let (raw, n, d) = run(&[], "raw.npy");
    assert_eq!((n, d), (40, 384));
    // Mean pooling of all-MiniLM-L6-v2 is not unit-norm; check it is a real vector.
    assert!(raw.iter().all(|v| v.is_finite()) && raw.iter().map(|v| v.abs()).sum::<f32>() > 1.0);
    let stats = dir.path().join("w.safetensors");
    let (fit, n, k) = run(&["--fit-whitening", stats.to_str().unwrap(), "--k", "16"], "fit.npy");
    assert_eq!((n, k), (40, 16));
    let (applied, _, _) = run(&["--whiten", stats.to_str().unwrap(), "--k", "16"], "applied.npy");
    assert_eq!(fit, applied, "saved statistics reproduce the fitted transform");
    // Whitened training vectors: zero mean in every kept dimension.
    for j in 0..16 {
        let mean: f32 = (0..40).map(|i| fit[i * 16 + j]).sum::<f32>() / 40.0;
        assert!(mean.abs() < 1e-3, "dimension {j} mean {mean}");
    }
}
