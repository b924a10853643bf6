//! Entity-level precision, recall and F1 on exact `(type, start, end)` matches, micro-averaged and per
//! type (conlleval's and the CLUENER scorer's definition): `P = |R ∩ T| / |R|`, `R = |R ∩ T| / |T|`,
//! `F1 = 2|R ∩ T| / (|R| + |T|)`, 0 when a denominator is 0.

use std::collections::HashSet;

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
        self.per_type.iter().fold(Counts::default(), |a, c| Counts {
            correct: a.correct + c.correct,
            predicted: a.predicted + c.predicted,
            gold: a.gold + c.gold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
