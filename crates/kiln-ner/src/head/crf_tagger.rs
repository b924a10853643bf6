//! The CRF baseline as a span head: a linear layer gives per-token emissions over BIO tags
//! (`O`, then `B-t`, `I-t` for each type `t`), a [`Crf`] scores tag paths, and Viterbi's path is turned
//! back into spans. BIO cannot express nested or overlapping entities: when gold spans overlap, the
//! earlier-starting (then longer) one is kept for training, and decoding yields flat spans only.
//!
//! Tag ids: `0 = O`, `1 + 2t = B-t`, `2 + 2t = I-t`.

use burn::prelude::*;
use kiln_layers::Linear;

use crate::{Crf, Span};

/// Emissions and a CRF over BIO tags.
#[derive(Module, Debug)]
pub struct CrfTagger {
    /// `d_model → 1 + 2·n_types` emissions.
    pub emissions: Linear,
    /// Transition scores.
    pub crf: Crf,
    /// Entity types.
    pub n_types: usize,
}

impl CrfTagger {
    /// A fresh head.
    pub fn new(d_model: usize, n_types: usize, device: &Device) -> Self {
        let k = 1 + 2 * n_types;
        Self { emissions: Linear::new(d_model, k, true, device), crf: Crf::new(k, device), n_types }
    }

    /// Negative log-likelihood of the gold spans' BIO paths.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]`, `lengths`: `b` values in `1..=n` → `[1]`
    pub fn loss(&self, h: Tensor<3>, lengths: &[usize], spans: &[Vec<Span>]) -> Tensor<1> {
        let [b, n, _] = h.dims();
        let tags: Vec<i64> = spans.iter().flat_map(|s| spans_to_bio(s, n).into_iter().map(|t| t as i64)).collect();
        let tags = Tensor::<2, Int>::from_data(TensorData::new(tags, [b, n]), &h.device());
        self.crf.loss(self.emissions.forward(h), tags, lengths)
    }

    /// Viterbi spans per sequence.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]` → `b` lists
    pub fn decode(&self, h: Tensor<3>, lengths: &[usize]) -> Vec<Vec<Span>> {
        self.crf.viterbi(self.emissions.forward(h), lengths).iter().map(|p| bio_to_spans(p)).collect()
    }
}

/// BIO tag ids of length `n` for flat spans (overlaps resolved as the module docs say).
pub fn spans_to_bio(spans: &[Span], n: usize) -> Vec<usize> {
    let mut sorted = spans.to_vec();
    sorted.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end), s.kind));
    let mut tags = vec![0; n];
    let mut free_from = 0;
    for s in sorted.into_iter().filter(|s| s.end < n) {
        if s.start < free_from {
            continue; // overlaps an entity already placed
        }
        tags[s.start] = 1 + 2 * s.kind;
        for t in &mut tags[s.start + 1..=s.end] {
            *t = 2 + 2 * s.kind;
        }
        free_from = s.end + 1;
    }
    tags
}

/// Spans of a BIO path; an `I-t` not continuing a `t` entity starts one (conlleval's reading).
pub fn bio_to_spans(tags: &[usize]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Option<Span> = None;
    for (i, &tag) in tags.iter().enumerate() {
        let (is_begin, kind) = (tag % 2 == 1, (tag.max(1) - 1) / 2);
        let continues = tag != 0 && !is_begin && open.is_some_and(|s| s.kind == kind);
        if continues {
            if let Some(s) = open.as_mut() {
                s.end = i;
            }
            continue;
        }
        spans.extend(open.take());
        if tag != 0 {
            open = Some(Span { kind, start: i, end: i });
        }
    }
    spans.extend(open);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bio_round_trip_and_overlaps() {
        let sp = |kind, start, end| Span { kind, start, end };
        let flat = vec![sp(1, 0, 1), sp(0, 3, 3), sp(1, 4, 6)];
        let tags = spans_to_bio(&flat, 8);
        assert_eq!(tags, vec![3, 4, 0, 1, 3, 4, 4, 0]);
        assert_eq!(bio_to_spans(&tags), flat);
        // Nested: the outer (earlier start, longer) span wins.
        assert_eq!(spans_to_bio(&[sp(0, 1, 2), sp(1, 0, 3)], 4), vec![3, 4, 4, 4]);
        // I without B starts an entity; a type change splits.
        assert_eq!(bio_to_spans(&[2, 2, 4, 0]), vec![sp(0, 0, 1), sp(1, 2, 2)]);
    }
}
