//! Decoding: every `(type, start, end)` whose score is above the threshold (0 for the loss's
//! threshold) is an entity. Nothing is suppressed, so nested and overlapping spans all come out
//! ([`decode_spans`], GlobalPointer's decoding). For datasets whose entities never overlap,
//! [`decode_flat_spans`] keeps the best-scoring spans that do not overlap.
//! Positions are token indices, `end` inclusive.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How spans above the threshold become entities (`[model] decode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoding {
    /// Every span above the threshold, nested and overlapping ones included ([`decode_spans`]).
    #[default]
    Nested,
    /// For flat datasets: no two entities share a token ([`decode_flat_spans`]).
    Flat,
}

impl Decoding {
    /// Decode `scores` `[b, t, n, n]` this way.
    pub fn decode(self, scores: Tensor<4>, threshold: f32) -> Vec<Vec<Span>> {
        match self {
            Self::Nested => decode_spans(scores, threshold),
            Self::Flat => decode_flat_spans(scores, threshold),
        }
    }
}

/// An entity span in token positions, `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Entity type index.
    pub kind: usize,
    /// First token.
    pub start: usize,
    /// Last token (inclusive).
    pub end: usize,
}

/// Spans with a score above `threshold`, per example, sorted by `(start, end, kind)`.
///
/// # Shapes
///
/// - `scores`: `[b, t, n, n]` (masked cells hold a large negative value) → `b` lists
pub fn decode_spans(scores: Tensor<4>, threshold: f32) -> Vec<Vec<Span>> {
    per_example(scores, threshold, |mut spans, _| {
        spans.sort_by_key(|sp| (sp.start, sp.end, sp.kind));
        spans
    })
}

/// For each example of `scores` `[b, t, n, n]`, `pick` applied to its spans above `threshold` and to
/// the score of a span.
fn per_example(
    scores: Tensor<4>,
    threshold: f32,
    pick: impl Fn(Vec<Span>, &dyn Fn(&Span) -> f32) -> Vec<Span>,
) -> Vec<Vec<Span>> {
    let [b, t, n, _] = scores.dims();
    let s: Vec<f32> = scores.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 scores");
    (0..b)
        .map(|e| {
            let score = |sp: &Span| s[((e * t + sp.kind) * n + sp.start) * n + sp.end];
            let above: Vec<Span> = (0..t)
                .flat_map(|kind| (0..n).flat_map(move |start| (start..n).map(move |end| Span { kind, start, end })))
                .filter(|sp| score(sp) > threshold)
                .collect();
            pick(above, &score)
        })
        .collect()
}

/// Spans above `threshold` that share no token, per example, sorted by `(start, end, kind)`: the
/// spans above the threshold taken in decreasing score (ties: shorter, then earlier, then lower
/// type), each kept unless it overlaps one kept before, whatever its type.
///
/// # Shapes
///
/// - `scores`: `[b, t, n, n]` (masked cells hold a large negative value) → `b` lists
pub fn decode_flat_spans(scores: Tensor<4>, threshold: f32) -> Vec<Vec<Span>> {
    per_example(scores, threshold, |mut above, score| {
        above.sort_by(|x, y| {
            score(y)
                .total_cmp(&score(x))
                .then_with(|| (x.end - x.start, x.start, x.kind).cmp(&(y.end - y.start, y.start, y.kind)))
        });
        let mut taken = vec![false; above.iter().map(|sp| sp.end + 1).max().unwrap_or(0)];
        let mut kept = Vec::new();
        for sp in above {
            if !taken[sp.start..=sp.end].iter().any(|&x| x) {
                taken[sp.start..=sp.end].fill(true);
                kept.push(sp);
            }
        }
        kept.sort_by_key(|sp| (sp.start, sp.end, sp.kind));
        kept
    })
}

/// Gold spans as a boolean label tensor for the loss.
///
/// # Shapes
///
/// - `b` lists of spans → `[b, t, n, n]`
///
/// # Panics
///
/// If a span lies outside `n` tokens or `t` types, or `start > end`.
pub fn span_labels(spans: &[Vec<Span>], t: usize, n: usize, device: &Device) -> Tensor<4, Bool> {
    let b = spans.len();
    let mut v = vec![false; b * t * n * n];
    for (e, list) in spans.iter().enumerate() {
        for sp in list {
            assert!(sp.kind < t && sp.start <= sp.end && sp.end < n, "span {sp:?} outside {t} types × {n} tokens");
            v[((e * t + sp.kind) * n + sp.start) * n + sp.end] = true;
        }
    }
    Tensor::<4, Bool>::from_data(TensorData::new(v, [b, t, n, n]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested ("北京大学" ⊃ "北京"), overlapping and same-span-two-types entities all decode exactly,
    /// and masked cells never do.
    #[test]
    fn nested_and_overlapping_spans_decode_exactly() {
        let device = Device::flex();
        let (t, n) = (2, 6);
        let gold = vec![
            Span { kind: 0, start: 0, end: 3 }, // outer
            Span { kind: 1, start: 0, end: 1 }, // nested at the same start
            Span { kind: 1, start: 2, end: 3 }, // nested at the same end
            Span { kind: 0, start: 3, end: 5 }, // overlaps the outer one
            Span { kind: 1, start: 3, end: 5 }, // same span, other type
            Span { kind: 0, start: 4, end: 4 }, // one token
        ];
        let labels = span_labels(std::slice::from_ref(&gold), t, n, &device);
        // Gold cells 0.5, others −0.5, plus a masked cell below the diagonal.
        let scores = labels.float() - 0.5;
        let scores = scores.slice_assign(s![0..1, 0..1, 5..6, 0..1], Tensor::full([1, 1, 1, 1], -1e12, &device));
        let mut want = gold.clone();
        want.sort_by_key(|sp| (sp.start, sp.end, sp.kind));
        assert_eq!(decode_spans(scores.clone(), 0.0), vec![want]);
        assert_eq!(decode_spans(scores, 1.0), vec![vec![]], "nothing above 1");
    }

    /// Scores `[1, t, n, n]` from `(kind, start, end, score)` cells; every other cell −1.
    fn scores_of(cells: &[(usize, usize, usize, f32)], t: usize, n: usize) -> Tensor<4> {
        let mut v = vec![-1.0f32; t * n * n];
        for &(kind, start, end, score) in cells {
            v[(kind * n + start) * n + end] = score;
        }
        Tensor::from_data(TensorData::new(v, [1, t, n, n]), &Device::flex())
    }

    /// Flat decoding by hand: the best span wins against what it overlaps, of any type; adjacent
    /// spans both stay; a lower span overlapping only a dropped one stays; ties go to the shorter.
    #[test]
    fn flat_decoding_keeps_the_best_spans_that_do_not_overlap() {
        let sp = |kind, start, end| Span { kind, start, end };
        let scores = scores_of(
            &[
                (0, 0, 3, 2.0), // 李鹏乔石 as one name: beaten by 乔石 alone
                (1, 2, 3, 3.0), // 乔石
                (1, 0, 1, 1.0), // 李鹏: adjacent to 乔石, kept
                (0, 4, 6, 0.5), // overlaps only 5..=7, which loses to it
                (1, 5, 7, 0.4),
                (0, 8, 8, 0.7), // a tie: the shorter (8..=8) wins
                (1, 8, 9, 0.7),
            ],
            2,
            10,
        );
        let nested = decode_spans(scores.clone(), 0.0);
        assert_eq!(nested[0].len(), 7);
        assert_eq!(decode_flat_spans(scores, 0.0), vec![vec![sp(1, 0, 1), sp(1, 2, 3), sp(0, 4, 6), sp(0, 8, 8)]]);
        let nothing = decode_flat_spans(scores_of(&[(0, 1, 2, -0.1)], 1, 4), 0.0);
        assert_eq!(nothing, vec![vec![]], "nothing above the threshold");
    }

    /// On random scores, flat decoding keeps spans of the nested decoding that share no token, and
    /// every span it drops overlaps a kept span that scores at least as high (what greedy selection
    /// by score means).
    #[test]
    fn flat_decoding_is_greedy_selection_on_random_scores() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (t, n) = (3, 12);
        for _ in 0..20 {
            let v: Vec<f32> = (0..t * n * n).map(|_| rng.random_range(-3.0f32..1.0)).collect();
            let score = |s: &Span| v[(s.kind * n + s.start) * n + s.end];
            let scores = Tensor::<4>::from_data(TensorData::new(v.clone(), [1, t, n, n]), &Device::flex());
            let nested = decode_spans(scores.clone(), 0.0).remove(0);
            let flat = decode_flat_spans(scores, 0.0).remove(0);
            let overlap = |a: &Span, b: &Span| a.start <= b.end && b.start <= a.end;
            assert!(!flat.is_empty() && flat.iter().all(|s| nested.contains(s)));
            for (i, a) in flat.iter().enumerate() {
                assert!(flat[i + 1..].iter().all(|b| !overlap(a, b)), "{flat:?}");
            }
            for dropped in nested.iter().filter(|s| !flat.contains(s)) {
                assert!(
                    flat.iter().any(|k| overlap(k, dropped) && score(k) >= score(dropped)),
                    "{dropped:?} in {flat:?}"
                );
            }
        }
    }
}
