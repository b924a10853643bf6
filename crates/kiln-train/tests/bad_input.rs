//! The malformed-input corpus (`tests/bad_input/`, written by `scripts/reliability/make_bad_inputs.py`):
//! every case makes `kiln` exit non-zero with one `error:` line that names the file (or the key) and
//! says what is wrong; none panics. BERT checkpoint cases are derived here from a random checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    reader: String,
    path: String,
    expect: Vec<String>,
    #[serde(default)]
    generate: Option<Generate>,
}

/// A file too big to keep in the repository: `prefix`, `unit` repeated `times`, `suffix`.
#[derive(Deserialize)]
struct Generate {
    prefix: String,
    unit: String,
    times: usize,
    suffix: String,
}

fn corpus() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("tests/bad_input")
}

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The layers of every template's transformer, and the one-step training every template ends with.
const LAYERS: &str = r#"d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
attention = { kind = "softmax" }"#;

const TRAIN: &str = r#"[train]
batch_size = 1
steps = 1
eval_every = 1
optimizer = { kind = "adam", lr = 1e-3 }
[output]
dir = "@OUT@"
"#;

const LM: &str = r#"[model]
kind = "char_lm"
context = 16
[model.decoder]
@LAYERS@
position = { kind = "rope" }
causal = true
[data]
kind = "text"
path = "@PATH@"
@TRAIN@"#;

const NER: &str = r#"[model]
kind = "ner"
head = { kind = "global_pointer", d_head = 8 }
@BACKBONE@
[data]
kind = "ner"
format = "@FORMAT@"
train = "@PATH@"
valid = "@PATH@"
@TRAIN@"#;

const ENCODER: &str = r#"[model.encoder]
@LAYERS@
position = { kind = "rope" }"#;

const VIT: &str = r#"[model]
kind = "vit"
patch_size = 4
[model.encoder]
@LAYERS@
position = { kind = "rope2d" }
[data]
kind = "mnist"
dir = "@PATH@"
n_valid = 2
@TRAIN@"#;

/// Write `template` with its placeholders filled to `dir/config.toml`.
fn write_config(dir: &Path, template: &str, fills: &[(&str, &str)]) -> PathBuf {
    let mut body = template.to_string();
    for (k, v) in fills {
        body = body.replace(k, v);
    }
    let body = body
        .replace("@LAYERS@", LAYERS)
        .replace("@TRAIN@", TRAIN)
        .replace("@OUT@", &dir.join("runs").display().to_string());
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Run `kiln` on a case and check the refusal.
fn refuse(name: &str, cmd: &mut Command, names: &str, expect: &[String]) -> Result<(), String> {
    let out = cmd.output().unwrap();
    let msg = text(&out);
    let problem = if out.status.success() {
        Some("accepted".to_string())
    } else if msg.contains("panicked") {
        Some("panicked".to_string())
    } else if msg.lines().filter(|l| l.starts_with("error:")).count() != 1 {
        Some("not exactly one `error:` line".to_string())
    } else if !msg.contains(names) {
        Some(format!("does not name `{names}`"))
    } else {
        expect.iter().find(|e| !msg.contains(e.as_str())).map(|e| format!("does not say `{e}`"))
    };
    match problem {
        Some(p) => Err(format!("{name}: {p}:\n{}", msg.trim_end())),
        None => Ok(()),
    }
}

#[test]
fn every_bad_input_is_refused_with_a_clear_message() {
    let manifest: Manifest = toml::from_str(&std::fs::read_to_string(corpus().join("cases.toml")).unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let bert = scratch.path().join("bert");
    let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "flute", "."];
    kiln_transformer::bert::convert::write_random_checkpoint(&bert, &vocab, 8, 1, 2, 0).unwrap();
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (i, case) in manifest.case.iter().enumerate() {
        let dir = scratch.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = match &case.generate {
            Some(g) => {
                let p = dir.join(Path::new(&case.path).file_name().unwrap());
                let body = format!("{}{}{}", g.prefix, g.unit.repeat(g.times), g.suffix);
                std::fs::write(&p, body).unwrap();
                p
            }
            None => corpus().join(&case.path),
        };
        let shown = path.display().to_string();
        // A config naming a missing data file is refused by naming that file.
        let file_name = match case.reader.as_str() {
            "config_train" => case.expect[0].clone(),
            _ => path.file_name().unwrap().to_string_lossy().to_string(),
        };
        let mut cmd = kiln();
        cmd.current_dir(&dir).env_remove("KILN_DATA_DIR").env_remove("KILN_BERT_DIR");
        match case.reader.as_str() {
            "config" => {
                cmd.arg("check").arg(&path);
            }
            "config_train" => {
                cmd.arg("train").arg(&path).arg("--set").arg(format!("output.dir=\"{}\"", dir.join("runs").display()));
            }
            "text" => {
                // `kiln check` passes a config whose data is absent; `train` reads it.
                let c = write_config(&dir, LM, &[("@PATH@", &shown)]);
                cmd.arg("train").arg(c);
            }
            "cluener" | "columns" | "conll" | "cmeee" => {
                let format = if case.reader == "conll" { "columns" } else { &case.reader };
                let c = write_config(&dir, NER, &[("@BACKBONE@", ENCODER), ("@FORMAT@", format), ("@PATH@", &shown)]);
                cmd.arg("check").arg(c);
            }
            "mnist" => {
                let c = write_config(&dir, VIT, &[("@PATH@", &shown)]);
                cmd.arg("train").arg(c);
            }
            "stsb" | "sts_zh" => {
                cmd.args(["sts", "--data"]).arg(&path).arg("--model").arg(&bert);
            }
            other => panic!("unknown reader `{other}` in cases.toml"),
        }
        *counts.entry(case.reader.trim_end_matches("_train").to_string()).or_default() += 1;
        if let Err(e) = refuse(&case.path, &mut cmd, &file_name, &case.expect) {
            failures.push(e);
        }
    }
    for (name, expect, corrupt) in bert_cases() {
        let dir = scratch.path().join(format!("bert-{name}"));
        copy_dir(&bert, &dir);
        corrupt(&dir);
        let names = corrupted_file(name);
        let data = dir.join("train.json");
        std::fs::write(&data, "{\"text\": \"a man .\", \"label\": {\"who\": {\"man\": [[2, 4]]}}}\n").unwrap();
        let backbone = format!("[model.bert]\ndir = \"{}\"", dir.display());
        let c = write_config(
            &dir,
            NER,
            &[("@BACKBONE@", &backbone), ("@FORMAT@", "cluener"), ("@PATH@", &data.display().to_string())],
        );
        let mut cmd = kiln();
        cmd.arg("check").arg(c).env_remove("KILN_BERT_DIR");
        *counts.entry("bert".into()).or_default() += 1;
        let expect: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        if let Err(e) = refuse(&format!("bert/{name}"), &mut cmd, names, &expect) {
            failures.push(e);
        }
    }
    eprintln!("cases per reader: {counts:?}");
    assert!(failures.is_empty(), "{} of the cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(counts["config"] >= 30, "{counts:?}");
    assert!(counts.values().all(|&n| n >= 10), "every reader needs 10 cases: {counts:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrite `model.safetensors` with `edit` applied to its (name, shape, f32 values) list.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

type Corrupt = Box<dyn Fn(&Path)>;

/// (name, message fragments, corruption); the message must name the file the name points at
/// (see [`corrupted_file`]).
fn bert_cases() -> Vec<(&'static str, Vec<&'static str>, Corrupt)> {
    let json = |edit: fn(&mut serde_json::Value)| -> Corrupt {
        Box::new(move |dir: &Path| {
            let p = dir.join("config.json");
            let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            edit(&mut v);
            std::fs::write(&p, v.to_string()).unwrap();
        })
    };
    vec![
        (
            "missing_tensor",
            vec!["encoder.layer.0.attention.self.query.weight", "missing"],
            Box::new(|d: &Path| {
                rewrite(d, |t| t.retain(|(n, _, _)| !n.ends_with("layer.0.attention.self.query.weight")))
            }),
        ),
        (
            "extra_tensor",
            vec!["encoder.layer.7.output.dense.weight", "unexpected"],
            Box::new(|d: &Path| {
                rewrite(d, |t| t.push(("encoder.layer.7.output.dense.weight".into(), vec![2], vec![0; 8])))
            }),
        ),
        (
            "misshaped_tensor",
            vec!["embeddings.word_embeddings.weight", "shape"],
            Box::new(|d: &Path| {
                rewrite(d, |t| {
                    let e = t.iter_mut().find(|(n, _, _)| n.ends_with("word_embeddings.weight")).unwrap();
                    e.1 = vec![e.1[1], e.1[0]];
                });
            }),
        ),
        (
            "truncated",
            vec!["model.safetensors"],
            Box::new(|d: &Path| {
                let p = d.join("model.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        (
            "header_length_too_big",
            vec!["model.safetensors"],
            Box::new(|d: &Path| {
                let p = d.join("model.safetensors");
                let mut b = std::fs::read(&p).unwrap();
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                std::fs::write(&p, b).unwrap();
            }),
        ),
        (
            "not_safetensors",
            vec!["model.safetensors"],
            Box::new(|d: &Path| {
                std::fs::write(d.join("model.safetensors"), b"PK\x03\x04 this is a zip, not safetensors").unwrap();
            }),
        ),
        (
            "config_missing_key",
            vec!["config.json", "hidden_size"],
            json(|v| {
                v.as_object_mut().unwrap().remove("hidden_size");
            }),
        ),
        (
            "config_heads_do_not_divide",
            vec!["config.json", "num_attention_heads"],
            json(|v| v["num_attention_heads"] = 3.into()),
        ),
        (
            "config_not_json",
            vec!["config.json"],
            Box::new(|d: &Path| {
                std::fs::write(d.join("config.json"), "{ hidden_size: 8,").unwrap();
            }),
        ),
        (
            "vocab_missing",
            vec!["vocab.txt"],
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("vocab.txt")).unwrap();
            }),
        ),
        (
            "vocab_larger_than_embeddings",
            vec!["vocab.txt", "20 tokens", "vocab_size", "is 9"],
            Box::new(|d: &Path| {
                let words: Vec<String> = (0..16).map(|i| format!("w{i}")).collect();
                std::fs::write(d.join("vocab.txt"), format!("[PAD]\n[UNK]\n[CLS]\n[SEP]\n{}\n", words.join("\n")))
                    .unwrap();
            }),
        ),
        (
            // The tokenizer fuzz target's finding: tokenizers 0.23 panicked on it.
            "tokenizer_control_character",
            vec!["line 1", "control character"],
            Box::new(|d: &Path| write_tokenizer_json(d, &VOCAB_WITH_PAD, "WordPie\u{0}ce")),
        ),
        (
            "tokenizer_truncated",
            vec!["line 1", "EOF"],
            Box::new(|d: &Path| {
                write_tokenizer_json(d, &VOCAB_WITH_PAD, "WordPiece");
                let p = d.join("tokenizer.json");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        (
            "tokenizer_without_pad",
            vec!["no [PAD] token"],
            Box::new(|d: &Path| write_tokenizer_json(d, &VOCAB_WITH_PAD[1..], "WordPiece")),
        ),
        (
            "safetensors_missing",
            vec!["model.safetensors"],
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("model.safetensors")).unwrap();
            }),
        ),
    ]
}

/// A small vocabulary for `tokenizer.json` cases, `[PAD]` first.
const VOCAB_WITH_PAD: [&str; 6] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "man"];

/// A `tokenizer.json` (the fast-tokenizer format) over `vocab`, with `decoder_type` as its decoder's
/// `type` string; it takes precedence over the checkpoint's `vocab.txt`.
fn write_tokenizer_json(dir: &Path, vocab: &[&str], decoder_type: &str) {
    let ids: Vec<String> = vocab.iter().enumerate().map(|(i, t)| format!("\"{t}\":{i}")).collect();
    let text = format!(
        "{{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,\
         \"pre_tokenizer\":{{\"type\":\"BertPreTokenizer\"}},\"post_processor\":null,\
         \"decoder\":{{\"type\":\"{decoder_type}\",\"prefix\":\"##\",\"cleanup\":true}},\
         \"model\":{{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\
         \"max_input_chars_per_word\":100,\"vocab\":{{{}}}}}}}",
        ids.join(",")
    );
    std::fs::write(dir.join("tokenizer.json"), text).unwrap();
}

/// The file a BERT case corrupts: `config_*` cases `config.json`, `vocab_*` cases `vocab.txt`,
/// `tokenizer_*` cases `tokenizer.json`, the rest `model.safetensors`.
fn corrupted_file(case: &str) -> &'static str {
    match case.split('_').next() {
        Some("config") => "config.json",
        Some("vocab") => "vocab.txt",
        Some("tokenizer") => "tokenizer.json",
        _ => "model.safetensors",
    }
}
