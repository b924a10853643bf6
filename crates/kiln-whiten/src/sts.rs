//! Semantic textual similarity data and scoring.
//!
//! - The STS Benchmark (Cer et al. 2017): `stsbenchmark.tsv.gz` (or `.tsv`) with the header
//!   `split genre dataset year sid score sentence1 sentence2`, splits `train`, `dev`, `test`, scores 0–5.
//! - The Chinese STS sets used by BERT-whitening (ATEC, BQ, LCQMC, PAWSX, STS-B): `<TASK>.<split>.data`
//!   files of `s1 \t s2 \t label` lines.
//!
//! Evaluation is Spearman's rank correlation between the cosine similarity of the two sentence vectors
//! and the gold score, ties given their average rank (as `scipy.stats.spearmanr`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::WhitenError;

/// One scored sentence pair.
#[derive(Debug, Clone, PartialEq)]
pub struct StsPair {
    /// First sentence.
    pub a: String,
    /// Second sentence.
    pub b: String,
    /// Gold similarity.
    pub score: f64,
}

/// Where an STS task's files are, and which format.
#[derive(Debug, Clone, PartialEq)]
pub enum StsTask {
    /// The English STS Benchmark file.
    StsBenchmark(PathBuf),
    /// A Chinese task: directory and task name (`ATEC`, `BQ`, `LCQMC`, `PAWSX`, `STS-B`).
    Chinese {
        /// Directory of `<task>.<split>.data` files.
        dir: PathBuf,
        /// Task name.
        task: String,
    },
}

impl StsTask {
    /// Find the task in `path`: an STS Benchmark file, a directory holding one, or a directory of
    /// Chinese `<task>.<split>.data` files (then `task` names which; default `STS-B`).
    ///
    /// # Errors
    ///
    /// Nothing recognisable at `path`.
    pub fn locate(path: &Path, task: Option<&str>) -> Result<Self, WhitenError> {
        if path.is_file() {
            return Ok(Self::StsBenchmark(path.into()));
        }
        for name in ["stsbenchmark.tsv.gz", "stsbenchmark.tsv"] {
            if path.join(name).is_file() && task.is_none() {
                return Ok(Self::StsBenchmark(path.join(name)));
            }
        }
        let task = task.unwrap_or("STS-B");
        if path.join(format!("{task}.test.data")).is_file() || path.join(format!("{task}.valid.data")).is_file() {
            return Ok(Self::Chinese { dir: path.into(), task: task.into() });
        }
        Err(WhitenError::Invalid(format!(
            "{}: no stsbenchmark.tsv(.gz) and no {task}.test.data here (get STS-B with scripts/download_stsb.sh)",
            path.display()
        )))
    }

    /// A short name for tables: `STS-B` or `<task> (zh)`.
    pub fn name(&self) -> String {
        match self {
            Self::StsBenchmark(_) => "STS-B".into(),
            Self::Chinese { task, .. } => format!("{task} (zh)"),
        }
    }

    /// The splits that exist, in order.
    pub fn splits(&self) -> Vec<String> {
        match self {
            Self::StsBenchmark(_) => ["train", "dev", "test"].map(String::from).to_vec(),
            Self::Chinese { dir, task } => ["train", "valid", "test"]
                .into_iter()
                .filter(|s| dir.join(format!("{task}.{s}.data")).is_file())
                .map(String::from)
                .collect(),
        }
    }

    /// Read one split.
    ///
    /// # Errors
    ///
    /// The file is missing or a line is malformed (named by file and line), or the split is empty.
    pub fn read(&self, split: &str) -> Result<Vec<StsPair>, WhitenError> {
        let (path, pairs) = match self {
            Self::StsBenchmark(path) => (path.clone(), read_sts_benchmark(path, split)?),
            Self::Chinese { dir, task } => {
                let path = dir.join(format!("{task}.{split}.data"));
                let pairs = read_chinese(&path)?;
                (path, pairs)
            }
        };
        if pairs.is_empty() {
            return Err(WhitenError::Invalid(format!(
                "{}: {} split `{split}` has no pairs",
                path.display(),
                self.name()
            )));
        }
        Ok(pairs)
    }
}

fn read_text(path: &Path) -> Result<String, WhitenError> {
    let io = |error| WhitenError::Io { path: path.into(), error };
    let mut bytes = std::fs::read(path).map_err(io)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut out).map_err(io)?;
        bytes = out;
    }
    Ok(kiln_data::lines::utf8(path, bytes)?)
}

fn bad_line(path: &Path, line: usize, message: String) -> WhitenError {
    WhitenError::Data(kiln_data::DataError::format(path, format!("line {line}"), message))
}

fn read_sts_benchmark(path: &Path, split: &str) -> Result<Vec<StsPair>, WhitenError> {
    if !["train", "dev", "test"].contains(&split) {
        return Err(WhitenError::Invalid(format!("STS-B has splits train, dev, test, not `{split}`")));
    }
    parse_sts_benchmark(&read_text(path)?, path, split)
}

/// The pairs of `split` in the text of an STS Benchmark file (`path` names it in errors).
///
/// # Errors
///
/// A missing header or a malformed line (named by line).
pub fn parse_sts_benchmark(text: &str, path: &Path, split: &str) -> Result<Vec<StsPair>, WhitenError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("split\t") => {}
        _ => return Err(bad_line(path, 1, "expected the header `split genre dataset year sid score ...`".into())),
    }
    let mut pairs = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            return Err(bad_line(path, i + 1, format!("{} tab-separated fields, expected 8", f.len())));
        }
        if f[0] != split {
            continue;
        }
        let score = f[5].parse().map_err(|_| bad_line(path, i + 1, format!("score `{}` is not a number", f[5])))?;
        pairs.push(StsPair { a: f[6].into(), b: f[7].into(), score });
    }
    Ok(pairs)
}

fn read_chinese(path: &Path) -> Result<Vec<StsPair>, WhitenError> {
    parse_chinese(&read_text(path)?, path)
}

/// The pairs in the text of a Chinese STS file, `s1<TAB>s2<TAB>label` per line (`path` names it in
/// errors).
///
/// # Errors
///
/// A malformed line (named by line).
pub fn parse_chinese(text: &str, path: &Path) -> Result<Vec<StsPair>, WhitenError> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 3 {
            return Err(bad_line(path, i + 1, format!("{} tab-separated fields, expected 3 (s1, s2, label)", f.len())));
        }
        let score =
            f[2].trim().parse().map_err(|_| bad_line(path, i + 1, format!("label `{}` is not a number", f[2])))?;
        pairs.push(StsPair { a: f[0].into(), b: f[1].into(), score });
    }
    Ok(pairs)
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { ab / (aa.sqrt() * bb.sqrt()) }
}

/// Ranks from 1, ties sharing their average rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks.
///
/// # Panics
///
/// If the lengths differ.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "spearman of {} and {} values", a.len(), b.len());
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa * sbb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from `scipy.stats.spearmanr` (SciPy 1.17.1).
    #[test]
    fn spearman_matches_scipy_with_ties() {
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!((r - 0.8207826816681233).abs() < 1e-12, "{r}");
        let r = spearman(&[0.1, 0.4, 0.4, 0.9, 0.3, 0.3, 0.7], &[2.0, 1.0, 3.5, 4.0, 0.5, 3.5, 5.0]);
        assert!((r - 0.6605782590758165).abs() < 1e-12, "{r}");
        assert!((spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_values() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn readers_parse_and_name_bad_lines() {
        let dir = std::env::temp_dir().join(format!("kiln-sts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tsv = "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n\
                   train\tmain-captions\tMSRvid\t2012test\t0001\t5.000\tA plane.\tAn air plane.\n\
                   test\tmain-news\tx\t2016\t0002\t1.5\tOne.\tTwo.\n";
        std::fs::write(dir.join("stsbenchmark.tsv"), tsv).unwrap();
        let task = StsTask::locate(&dir, None).unwrap();
        assert_eq!(task.read("test").unwrap(), vec![StsPair { a: "One.".into(), b: "Two.".into(), score: 1.5 }]);
        assert!(task.read("dev").unwrap_err().to_string().contains("no pairs"));
        std::fs::write(dir.join("stsbenchmark.tsv"), tsv.replace("1.5", "high")).unwrap();
        let err = task.read("test").unwrap_err().to_string();
        assert!(err.contains("stsbenchmark.tsv: line 3: score `high`"), "{err}");

        std::fs::write(dir.join("BQ.test.data"), "一个\t两个\t1\n坏行\n").unwrap();
        let zh = StsTask::locate(&dir, Some("BQ")).unwrap();
        assert_eq!(zh.splits(), vec!["test".to_string()]);
        let err = zh.read("test").unwrap_err().to_string();
        assert!(err.contains("BQ.test.data: line 2: 1 tab-separated fields"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
