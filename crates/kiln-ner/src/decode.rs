//! Decoding: every `(type, start, end)` whose score is above the threshold (0 for the loss's
//! threshold) is an entity. Nothing is suppressed, so nested and overlapping spans all come out.
//! Positions are token indices, `end` inclusive.

use burn::prelude::*;

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
    let [b, t, n, _] = scores.dims();
    let s: Vec<f32> = scores.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 scores");
    (0..b)
        .map(|e| {
            let mut spans: Vec<Span> = (0..t)
                .flat_map(|kind| (0..n).flat_map(move |start| (start..n).map(move |end| Span { kind, start, end })))
                .filter(|sp| s[((e * t + sp.kind) * n + sp.start) * n + sp.end] > threshold)
                .collect();
            spans.sort_by_key(|sp| (sp.start, sp.end, sp.kind));
            spans
        })
        .collect()
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
}
