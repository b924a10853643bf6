//! `kiln embed`, `kiln sts` and `kiln bench embed`: sentence vectors from a pretrained BERT
//! checkpoint, BERT-whitening and the STS evaluation. The work is in `kiln-whiten`; this file parses
//! arguments, opens files and prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use kiln_layers::AttentionConfig;
use kiln_whiten::sts::StsTask;
use kiln_whiten::{
    CovarianceAccumulator, SentenceEncoder, SentencePooling, StsEvalConfig, Whitening, WhiteningParams, evaluate_sts,
    npy,
};
use serde::Deserialize;

use crate::backend;

/// Where the checkpoint is and how to run it.
#[derive(Args, Debug)]
pub struct EncoderArgs {
    /// Hugging Face BERT checkpoint directory (config.json, model.safetensors, tokenizer.json or
    /// vocab.txt); default $KILN_BERT_DIR. `scripts/download_minilm.sh` fetches all-MiniLM-L6-v2.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Longest input in tokens (default: sentence_bert_config.json's, else 512).
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Backend: flex, ndarray, wgpu, wgpu:N, cpu.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Attention kind as a TOML inline table (default softmax, the faithful load), e.g.
    /// `{ kind = "performer", num_features = 256 }`.
    #[arg(long, value_name = "TOML")]
    attention: Option<String>,
}

impl EncoderArgs {
    fn load(&self) -> anyhow::Result<SentenceEncoder> {
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        let attention = match &self.attention {
            None => AttentionConfig::Softmax {},
            Some(text) => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Wrapper {
                    attention: AttentionConfig,
                }
                let w: Wrapper = toml::from_str(&format!("attention = {text}"))
                    .map_err(|e| anyhow::anyhow!("--attention {text}: {}", e.message()))?;
                w.attention
            }
        };
        let dir = match &self.model {
            Some(dir) => dir.clone(),
            None => match std::env::var_os("KILN_BERT_DIR") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                _ => bail!("give --model DIR or set KILN_BERT_DIR (scripts/download_minilm.sh fetches a checkpoint)"),
            },
        };
        let device = backend::device(&self.device)?;
        let start = Instant::now();
        let encoder = SentenceEncoder::load(&dir, self.max_seq_len, attention, &device)?;
        eprintln!(
            "loaded {} ({} layers, d_model {}, max {} tokens) in {:.1} s",
            dir.display(),
            encoder.config.num_hidden_layers,
            encoder.dim(),
            encoder.tokenizer.max_seq_len(),
            start.elapsed().as_secs_f64()
        );
        Ok(encoder)
    }
}

/// `kiln embed`.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Sentences, one per line (`-` reads standard input); blank lines are skipped, with a note.
    input: PathBuf,
    /// Output `.npy` file (float32, `[sentences, dim]`).
    #[arg(long, short)]
    output: PathBuf,
    /// cls, last-avg, first-last-avg or pooler.
    #[arg(long, default_value = "last-avg")]
    pooling: SentencePooling,
    /// Fit whitening statistics on these sentences and save them to this file.
    #[arg(long, value_name = "FILE")]
    fit_whitening: Option<PathBuf>,
    /// Whiten the output with statistics from this file (or from --fit-whitening).
    #[arg(long, value_name = "FILE", conflicts_with = "fit_whitening")]
    whiten: Option<PathBuf>,
    /// Keep the top k whitened dimensions (default: all).
    #[arg(long)]
    k: Option<usize>,
    /// Generalised whitening: subtract β·μ.
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Generalised whitening: scale by Λ^(−γ/2).
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    #[command(flatten)]
    encoder: EncoderArgs,
}

/// The non-blank lines of a file or stdin, trimmed; blank lines inside the text are skipped with a
/// note on standard error that names them, since the output's rows then follow the kept lines.
fn read_sentences(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("reading sentences from standard input")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("reading sentences from {}", path.display()))?;
    }
    let (mut lines, mut blank) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        match line.trim() {
            "" => blank.push(i + 1),
            l => lines.push(l.to_string()),
        }
    }
    anyhow::ensure!(!lines.is_empty(), "{}: no sentences (one per line expected)", path.display());
    if !blank.is_empty() {
        let shown: Vec<String> = blank.iter().take(5).map(usize::to_string).collect();
        eprintln!(
            "{}: skipped {} blank line{} (line {}{}); row i of the output is the i-th non-blank line",
            path.display(),
            blank.len(),
            if blank.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if blank.len() > 5 { ", …" } else { "" }
        );
    }
    Ok(lines)
}

/// A file `kiln` will write must be in a directory that exists: checked before the model is
/// loaded and the sentences embedded, not after.
fn check_parent_exists(path: &Path, what: &str) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            anyhow::bail!("{what} {}: the directory {} does not exist", path.display(), dir.display())
        }
        _ => Ok(()),
    }
}

pub fn embed(args: EmbedArgs) -> anyhow::Result<i32> {
    let sentences = read_sentences(&args.input)?;
    let whitened = args.whiten.is_some() || args.fit_whitening.is_some();
    anyhow::ensure!(
        whitened || (args.k.is_none() && args.beta == 1.0 && args.gamma == 1.0),
        "--k, --beta and --gamma apply to whitening: add --whiten FILE or --fit-whitening FILE"
    );
    check_parent_exists(&args.output, "--output")?;
    if let Some(path) = &args.fit_whitening {
        check_parent_exists(path, "--fit-whitening")?;
    }
    let encoder = args.encoder.load()?;
    let d = encoder.dim();
    if let Some(k) = args.k {
        // Before embedding and before --fit-whitening writes its file.
        anyhow::ensure!((1..=d).contains(&k), "--k {k}: must be in 1..={d}, the dimensions of this model's vectors");
    }
    let start = Instant::now();
    let mut vectors = encoder.embed(&sentences, &[args.pooling], args.encoder.batch_size)?.remove(0);
    let secs = start.elapsed().as_secs_f64();
    eprintln!("embedded {} sentences in {secs:.2} s ({:.0}/s)", sentences.len(), sentences.len() as f64 / secs);
    let mut dim = d;
    let whitening = match (&args.fit_whitening, &args.whiten) {
        (Some(path), _) => {
            let mut acc = CovarianceAccumulator::new(d);
            acc.add(&vectors);
            let w = Whitening::fit(&acc)?;
            w.save(path)?;
            eprintln!("whitening statistics of {} sentences saved to {}", acc.count(), path.display());
            Some(w)
        }
        (None, Some(path)) => {
            let w = Whitening::load(path)?;
            anyhow::ensure!(
                w.dim() == d,
                "{}: whitening is for {}-dimensional vectors, this model gives {d}",
                path.display(),
                w.dim()
            );
            Some(w)
        }
        (None, None) => None,
    };
    if let Some(w) = whitening {
        let params = WhiteningParams { k: args.k, beta: args.beta, gamma: args.gamma };
        vectors = w.transform(&vectors, params)?;
        dim = args.k.unwrap_or(d);
    }
    npy::write_f32(&args.output, &vectors, sentences.len(), dim)?;
    println!("{} vectors of {dim} dimensions ({}) written to {}", sentences.len(), args.pooling, args.output.display());
    Ok(0)
}

/// `kiln sts`.
#[derive(Args, Debug)]
pub struct StsArgs {
    /// The STS Benchmark file or directory (stsbenchmark.tsv[.gz]) or a directory of Chinese
    /// `<TASK>.<split>.data` files; default $KILN_DATA_DIR/stsb.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Chinese task name (ATEC, BQ, LCQMC, PAWSX, STS-B) when --data is a Chinese directory.
    #[arg(long)]
    task: Option<String>,
    /// Evaluated split.
    #[arg(long, default_value = "test")]
    split: String,
    /// Sentences that fit the whitening: `all` splits of the task (as the reference code) or only the
    /// evaluated `split`.
    #[arg(long, default_value = "all", value_parser = ["all", "split"])]
    fit_on: String,
    /// Poolings, comma-separated (default: all four; `pooler` is skipped if the checkpoint has none).
    #[arg(long, value_delimiter = ',')]
    pooling: Vec<SentencePooling>,
    /// Whitened dimensions besides the full one, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,128,64")]
    k: Vec<usize>,
    #[command(flatten)]
    encoder: EncoderArgs,
}

pub fn sts(args: StsArgs) -> anyhow::Result<i32> {
    let data = args.data.clone().unwrap_or_else(|| crate::config::data_dir().join("stsb"));
    let task = StsTask::locate(&data, args.task.as_deref())?;
    anyhow::ensure!(
        task.splits().contains(&args.split),
        "{}: no split `{}` (have {})",
        task.name(),
        args.split,
        task.splits().join(", ")
    );
    let encoder = args.encoder.load()?;
    let mut poolings = args.pooling.clone();
    if poolings.is_empty() {
        poolings = SentencePooling::ALL.to_vec();
        if encoder.model.pooler.is_none() {
            poolings.retain(|p| *p != SentencePooling::Pooler);
        }
    }
    let fit_splits = if args.fit_on == "all" { task.splits() } else { vec![args.split.clone()] };
    let config =
        StsEvalConfig { split: args.split, fit_splits, poolings, ks: args.k, batch_size: args.encoder.batch_size };
    let table = evaluate_sts(&encoder, &task, &config)?;
    println!("{table}");
    Ok(0)
}

/// `kiln bench embed`.
#[derive(Args, Debug)]
pub struct BenchEmbedArgs {
    /// Sentences, one per line; default: both sides of the STS-B test split ($KILN_DATA_DIR/stsb).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Timed repetitions after one warm-up pass.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[command(flatten)]
    encoder: EncoderArgs,
}

pub fn bench_embed(args: BenchEmbedArgs) -> anyhow::Result<i32> {
    let (sentences, source) = match &args.input {
        Some(path) => (read_sentences(path)?, path.display().to_string()),
        None => {
            let task = StsTask::locate(&crate::config::data_dir().join("stsb"), None)?;
            let pairs = task.read("test")?;
            let s = pairs.iter().map(|p| p.a.clone()).chain(pairs.iter().map(|p| p.b.clone())).collect::<Vec<_>>();
            (s, "STS-B test, both sides".to_string())
        }
    };
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    let encoder = args.encoder.load()?;
    let tokens: usize = sentences.iter().map(|s| encoder.tokenizer.encode(s).map(|e| e.ids.len()).unwrap_or(0)).sum();
    let pooling = [SentencePooling::LastAvg];
    encoder.embed(&sentences, &pooling, args.encoder.batch_size)?; // warm-up
    let mut times = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let start = Instant::now();
        encoder.embed(&sentences, &pooling, args.encoder.batch_size)?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let n = sentences.len();
    println!(
        "kiln {} embed: {n} sentences ({source}), {tokens} tokens, batch {}, backend {}: median {median:.3} s over {} runs \
         = {:.0} sentences/s, {:.0} tokens/s (runs: {})",
        env!("CARGO_PKG_VERSION"),
        args.encoder.batch_size,
        args.encoder.device,
        args.repeats,
        n as f64 / median,
        tokens as f64 / median,
        times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(", ")
    );
    Ok(0)
}
