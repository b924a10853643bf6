//! The STS evaluation of BERT-whitening (Su et al. 2021, Table 1 and the reference code's `eval.py`):
//! embed both sentences of every pair, fit the whitening on the sentences of the chosen splits, and
//! report the Spearman correlation of cosine similarities with the gold scores for each pooling, raw
//! and whitened to every requested dimension.

use std::fmt;
use std::time::Instant;

use crate::sts::{StsPair, StsTask, cosine, spearman};
use crate::{CovarianceAccumulator, SentenceEncoder, SentencePooling, WhitenError, Whitening, WhiteningParams};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct StsEvalConfig {
    /// The evaluated split (`test`).
    pub split: String,
    /// Splits whose sentences fit the whitening (the reference code uses all of the task's splits).
    pub fit_splits: Vec<String>,
    /// Poolings (rows).
    pub poolings: Vec<SentencePooling>,
    /// Whitened dimensions besides the full one (columns), e.g. 256, 128, 64.
    pub ks: Vec<usize>,
    /// Sentences per forward pass.
    pub batch_size: usize,
}

/// One column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The pooled vectors as they are.
    Raw,
    /// Whitened, all dimensions.
    Whitened,
    /// Whitened to `k` dimensions.
    Top(usize),
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Raw => f.write_str("raw"),
            Self::Whitened => f.write_str("whitened"),
            Self::Top(k) => write!(f, "k={k}"),
        }
    }
}

/// The result: Spearman correlations per pooling and column, with what they came from.
#[derive(Debug, Clone)]
pub struct StsTable {
    /// Task name.
    pub task: String,
    /// Evaluated split.
    pub split: String,
    /// Pairs evaluated.
    pub pairs: usize,
    /// Sentences the whitening was fitted on.
    pub fit_sentences: usize,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows: pooling and one correlation per column (`None` where `k` exceeds `d_model`).
    pub rows: Vec<(SentencePooling, Vec<Option<f64>>)>,
    /// Sentences embedded and seconds spent embedding them.
    pub embedded: (usize, f64),
}

impl fmt::Display for StsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} ({} pairs); Spearman correlation of cosine similarity; whitening fitted on {} sentences",
            self.task, self.split, self.pairs, self.fit_sentences
        )?;
        write!(f, "{:<16}", "pooling")?;
        for c in &self.columns {
            write!(f, "{:>10}", c.to_string())?;
        }
        writeln!(f)?;
        for (pooling, values) in &self.rows {
            write!(f, "{:<16}", pooling.name())?;
            for v in values {
                match v {
                    Some(v) => write!(f, "{v:>10.4}")?,
                    None => write!(f, "{:>10}", "-")?,
                }
            }
            writeln!(f)?;
        }
        let (n, secs) = self.embedded;
        write!(f, "embedded {n} sentences in {secs:.1} s ({:.0} sentences/s)", n as f64 / secs.max(1e-9))
    }
}

/// Spearman correlation of the cosine similarities of paired vectors with the gold scores.
///
/// `a` and `b` are row-major `[pairs, d]`.
pub fn sts_spearman(a: &[f32], b: &[f32], d: usize, gold: &[f64]) -> f64 {
    let sims: Vec<f64> = a.chunks(d).zip(b.chunks(d)).map(|(x, y)| cosine(x, y)).collect();
    spearman(&sims, gold)
}

/// Run the evaluation.
///
/// # Errors
///
/// A split cannot be read, a pooling is unavailable, or embedding fails.
pub fn evaluate_sts(
    encoder: &SentenceEncoder,
    task: &StsTask,
    config: &StsEvalConfig,
) -> Result<StsTable, WhitenError> {
    let d = encoder.dim();
    let eval = task.read(&config.split)?;
    let mut fit_extra: Vec<StsPair> = Vec::new();
    for split in config.fit_splits.iter().filter(|s| **s != config.split) {
        fit_extra.extend(task.read(split)?);
    }
    let fit_on_eval = config.fit_splits.contains(&config.split);
    let sentences = |pairs: &[StsPair]| -> Vec<String> {
        pairs.iter().map(|p| p.a.clone()).chain(pairs.iter().map(|p| p.b.clone())).collect()
    };
    let (eval_texts, extra_texts) = (sentences(&eval), sentences(&fit_extra));
    let start = Instant::now();
    let eval_vecs = encoder.embed(&eval_texts, &config.poolings, config.batch_size)?;
    let extra_vecs = encoder.embed(&extra_texts, &config.poolings, config.batch_size)?;
    let embedded = (eval_texts.len() + extra_texts.len(), start.elapsed().as_secs_f64());
    let gold: Vec<f64> = eval.iter().map(|p| p.score).collect();
    let n = eval.len();

    let mut columns = vec![Column::Raw, Column::Whitened];
    columns.extend(config.ks.iter().map(|&k| Column::Top(k)));
    let mut rows = Vec::new();
    for (p, pooling) in config.poolings.iter().enumerate() {
        let mut acc = CovarianceAccumulator::new(d);
        if fit_on_eval {
            acc.add(&eval_vecs[p]);
        }
        acc.add(&extra_vecs[p]);
        let whitening = Whitening::fit(&acc)?;
        let (a, b) = eval_vecs[p].split_at(n * d);
        let mut values = Vec::new();
        for column in &columns {
            let params = match column {
                Column::Raw => {
                    values.push(Some(sts_spearman(a, b, d, &gold)));
                    continue;
                }
                Column::Whitened => WhiteningParams::default(),
                Column::Top(k) if *k > d => {
                    values.push(None);
                    continue;
                }
                Column::Top(k) => WhiteningParams::top(*k),
            };
            let k = params.k.unwrap_or(d);
            let (wa, wb) = (whitening.transform(a, params)?, whitening.transform(b, params)?);
            values.push(Some(sts_spearman(&wa, &wb, k, &gold)));
        }
        rows.push((*pooling, values));
    }
    let fit_sentences = if fit_on_eval { eval_texts.len() } else { 0 } + extra_texts.len();
    Ok(StsTable { task: task.name(), split: config.split.clone(), pairs: n, fit_sentences, columns, rows, embedded })
}
