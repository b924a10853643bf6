//! Entity-level precision, recall and F1 on exact `(type, start, end)` matches, micro-averaged and per
//! type (conlleval's and the CLUENER scorer's definition): `P = |R ∩ T| / |R|`, `R = |R ∩ T| / |T|`,
//! `F1 = 2|R ∩ T| / (|R| + |T|)`, 0 when a denominator is 0.

use std::collections::{BTreeMap, HashSet};

use kiln_data::ner::tags_to_entities;
use kiln_data::sentences::sentences_of_lines;

use crate::Span;

/// Counts for one type (or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Predicted spans that are gold.
    pub correct: usize,
    /// Predicted spans.
    pub predicted: usize,
    /// Gold spans.
    pub gold: usize,
}

impl Counts {
    /// Precision.
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }
    /// Recall.
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.gold)
    }
    /// F1.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.correct, self.predicted + self.gold)
    }
}

impl<'a> std::iter::Sum<&'a Counts> for Counts {
    fn sum<I: Iterator<Item = &'a Counts>>(iter: I) -> Counts {
        iter.fold(Counts::default(), |a, c| Counts {
            correct: a.correct + c.correct,
            predicted: a.predicted + c.predicted,
            gold: a.gold + c.gold,
        })
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Accumulated counts per entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityCounts {
    /// One entry per type.
    pub per_type: Vec<Counts>,
}

impl EntityCounts {
    /// Empty counts for `n_types` types.
    pub fn new(n_types: usize) -> Self {
        Self { per_type: vec![Counts::default(); n_types] }
    }

    /// Add one example's predicted and gold spans (duplicates count once).
    ///
    /// # Panics
    ///
    /// If a span's type is out of range.
    pub fn add(&mut self, predicted: &[Span], gold: &[Span]) {
        let (p, g): (HashSet<Span>, HashSet<Span>) =
            (predicted.iter().copied().collect(), gold.iter().copied().collect());
        for sp in &p {
            self.per_type[sp.kind].predicted += 1;
            if g.contains(sp) {
                self.per_type[sp.kind].correct += 1;
            }
        }
        for sp in &g {
            self.per_type[sp.kind].gold += 1;
        }
    }

    /// Micro-averaged counts (all types pooled).
    pub fn micro(&self) -> Counts {
        self.per_type.iter().sum()
    }
}

/// conlleval's entity scores of a column file (`kiln predict --format conll` output, or any file
/// conlleval reads): the last two columns of each line are the gold and the predicted tag, chunks are
/// read from each column by conlleval's rules ([`kiln_data::ner::tags_to_entities`]), and a blank line
/// or a `-DOCSTART-` line ends a sentence ([`kiln_data::sentences`]). A chunk counts as correct when both columns have it with the
/// same boundaries and type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnScores {
    /// All types pooled (conlleval's "accuracy" line's precision, recall and FB1).
    pub overall: Counts,
    /// Per type, by name.
    pub per_type: BTreeMap<String, Counts>,
}

/// Score a column file as conlleval does ([`ColumnScores`]).
///
/// # Errors
///
/// A line with fewer than two columns besides the token (or a different number of columns from
/// the first line, which conlleval refuses too), or an unknown tag: the line number and why.
pub fn score_columns(text: &str) -> Result<ColumnScores, String> {
    let mut scores = ColumnScores::default();
    let mut columns = None;
    for sentence in sentences_of_lines(text.lines()) {
        let mut rows: Vec<(usize, Vec<&str>)> = Vec::with_capacity(sentence.len());
        for (i, line) in sentence {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let expected = *columns.get_or_insert(cols.len());
            if cols.len() < 3 || cols.len() != expected {
                return Err(format!(
                    "line {}: {} columns; expected a token, a gold and a predicted tag, {expected} columns as on the first line",
                    i + 1,
                    cols.len()
                ));
            }
            rows.push((i + 1, cols));
        }
        let n = rows[0].1.len();
        let chunks = |col: usize| {
            let tags: Vec<&str> = rows.iter().map(|(_, c)| c[col]).collect();
            tags_to_entities(&tags)
                .map(|(e, _)| e)
                .map_err(|i| format!("line {}: unknown tag `{}`; expected O or B-/I-/M-/E-/S-TYPE", rows[i].0, tags[i]))
        };
        let (gold, predicted) = (chunks(n - 2)?, chunks(n - 1)?);
        for e in &predicted {
            let c = scores.per_type.entry(e.label.clone()).or_default();
            c.predicted += 1;
            c.correct += usize::from(gold.contains(e));
        }
        for e in &gold {
            scores.per_type.entry(e.label.clone()).or_default().gold += 1;
        }
    }
    scores.overall = scores.per_type.values().sum();
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sentences scored by hand: gold has PER 0-1, LOC 3 and ORG 0; the prediction gets PER and
    /// ORG right, cuts LOC short to nothing (an O) and adds a LOC at 2 and a PER made of a lone I- at
    /// the end of sentence 2 (conlleval starts a chunk there): correct 2, predicted 4, gold 3.
    #[test]
    fn columns_scored_by_hand() {
        let text = "-DOCSTART- -X- O O\n\nAnna B-PER B-PER\nBerg I-PER I-PER\nin O B-LOC\nOslo B-LOC O\n\n\
                    Acme B-ORG B-ORG\nsaid O I-PER\n";
        let s = score_columns(text).unwrap();
        assert_eq!(s.overall, Counts { correct: 2, predicted: 4, gold: 3 });
        assert_eq!(s.per_type["LOC"], Counts { correct: 0, predicted: 1, gold: 1 });
        assert_eq!(s.per_type["PER"], Counts { correct: 1, predicted: 2, gold: 1 });
        assert!((s.overall.f1() - 4.0 / 7.0).abs() < 1e-12);
        let err = score_columns("a O O\nb O\n").unwrap_err();
        assert!(err.contains("line 2: 2 columns"), "{err}");
        let err = score_columns("a O O\nb O X-Y\n").unwrap_err();
        assert!(err.contains("line 2: unknown tag `X-Y`"), "{err}");
    }

    #[test]
    fn hand_computed_scores() {
        let sp = |kind, start, end| Span { kind, start, end };
        let mut c = EntityCounts::new(2);
        // Example 1: type 0 right, type 1 with the wrong end; example 2: one missed, one spurious.
        c.add(&[sp(0, 0, 1), sp(1, 3, 4)], &[sp(0, 0, 1), sp(1, 3, 5)]);
        c.add(&[sp(0, 2, 2)], &[sp(1, 0, 0)]);
        assert_eq!(c.per_type[0], Counts { correct: 1, predicted: 2, gold: 1 });
        assert_eq!(c.per_type[1], Counts { correct: 0, predicted: 1, gold: 2 });
        let m = c.micro();
        assert_eq!(m, Counts { correct: 1, predicted: 3, gold: 3 });
        assert!((m.precision() - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.f1() - 2.0 / 6.0).abs() < 1e-12);
        assert!((c.per_type[0].f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.per_type[1].f1(), 0.0);
        assert_eq!(Counts::default().precision(), 0.0, "no predictions: 0, not NaN");
    }
}
