//! Span heads: score every `(type, start, end)` span of a sequence. A config enum builds the module
//! enum; both heads share the masking.
//!
//! Scores are `[b, n_types, n, n]`, row `i` the start token and column `j` the end token (inclusive).
//! Invalid cells (padding in either position, or `i > j`) hold [`MASKED`], a large finite negative
//! value, so decoding never returns them and the loss can still mask them exactly.

mod crf_tagger;
mod efficient;
mod global_pointer;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use crf_tagger::{CrfTagger, bio_to_spans, spans_to_bio};
pub use efficient::EfficientGlobalPointer;
pub use global_pointer::GlobalPointer;

use crate::{NerError, Span, multilabel_crossentropy, span_labels};

/// The score of invalid spans: finite, so `0 · MASKED` and `MASKED − MASKED` stay finite.
pub const MASKED: f32 = -1e12;

fn default_d_head() -> usize {
    64
}
fn default_true() -> bool {
    true
}

/// Which span head. TOML: `head = { kind = "global_pointer", d_head = 64, rope = true }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpanHeadConfig {
    /// GlobalPointer: a query and a key per entity type.
    GlobalPointer {
        /// Features of each query and key.
        #[serde(default = "default_d_head")]
        d_head: usize,
        /// Rotate queries and keys with 1-D RoPE (relative positions); `false` for the ablation.
        #[serde(default = "default_true")]
        rope: bool,
    },
    /// Efficient GlobalPointer: one shared query and key, plus a per-type start and end bias.
    EfficientGlobalPointer {
        /// Features of the shared query and key.
        #[serde(default = "default_d_head")]
        d_head: usize,
        /// Rotate queries and keys with 1-D RoPE.
        #[serde(default = "default_true")]
        rope: bool,
    },
    /// The baseline: per-token BIO emissions and a linear-chain CRF (flat entities only).
    Crf {},
}

impl Default for SpanHeadConfig {
    fn default() -> Self {
        Self::GlobalPointer { d_head: default_d_head(), rope: true }
    }
}

impl SpanHeadConfig {
    /// `d_head` must be even (RoPE rotates pairs) and positive.
    ///
    /// # Errors
    ///
    /// An odd or zero `d_head`.
    pub fn validate(&self) -> Result<(), NerError> {
        let (Self::GlobalPointer { d_head, .. } | Self::EfficientGlobalPointer { d_head, .. }) = self else {
            return Ok(());
        };
        if *d_head == 0 || d_head % 2 == 1 {
            return Err(NerError::Config(format!("head.d_head must be even and positive, got {d_head}")));
        }
        Ok(())
    }

    /// Build for encoder width `d_model` and `n_types` entity types.
    ///
    /// # Panics
    ///
    /// If the config is invalid or `n_types` is zero.
    pub fn init(&self, d_model: usize, n_types: usize, device: &Device) -> SpanHead {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        assert!(n_types > 0, "a span head needs at least one entity type");
        match *self {
            Self::GlobalPointer { d_head, rope } => {
                SpanHead::GlobalPointer(GlobalPointer::new(d_model, n_types, d_head, rope, device))
            }
            Self::EfficientGlobalPointer { d_head, rope } => {
                SpanHead::EfficientGlobalPointer(EfficientGlobalPointer::new(d_model, n_types, d_head, rope, device))
            }
            Self::Crf {} => SpanHead::Crf(CrfTagger::new(d_model, n_types, device)),
        }
    }
}

/// A span head.
#[derive(Module, Debug)]
pub enum SpanHead {
    /// GlobalPointer.
    GlobalPointer(GlobalPointer),
    /// Efficient GlobalPointer.
    EfficientGlobalPointer(EfficientGlobalPointer),
    /// CRF over BIO tags.
    Crf(CrfTagger),
}

impl SpanHead {
    /// Span scores, invalid cells set to [`MASKED`]. The CRF head scores its Viterbi spans 1 and
    /// every other valid cell −1, so [`decode_spans`](crate::decode_spans) reads every head alike.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]`, `padding`: `[b, n]` (`true` = pad) → `[b, n_types, n, n]`
    pub fn forward(&self, h: Tensor<3>, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
        let [b, n, _] = h.dims();
        let device = h.device();
        let scores = match self {
            Self::GlobalPointer(m) => m.scores(h),
            Self::EfficientGlobalPointer(m) => m.scores(h),
            Self::Crf(m) => {
                let spans = m.decode(h, &lengths_of(padding, b, n));
                span_labels(&spans, m.n_types, n, &device).float() * 2.0 - 1.0
            }
        };
        let valid = valid_spans(b, n, padding, &device);
        scores.mask_fill(valid.bool_not(), MASKED)
    }

    /// The training loss for gold spans: the multilabel cross-entropy for the GlobalPointers, the CRF's
    /// negative log-likelihood of the BIO path for the CRF.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]`, `padding`: `[b, n]`, `spans`: `b` lists → `[1]`
    pub fn loss(&self, h: Tensor<3>, padding: &Tensor<2, Bool>, spans: &[Vec<Span>], n_types: usize) -> Tensor<1> {
        let [b, n, _] = h.dims();
        let device = h.device();
        if let Self::Crf(m) = self {
            return m.loss(h, &lengths_of(Some(padding), b, n), spans);
        }
        let scores = self.forward(h, Some(padding));
        let labels = span_labels(spans, n_types, n, &device);
        multilabel_crossentropy(scores, labels, valid_spans(b, n, Some(padding), &device))
    }
}

/// Real tokens per row (at least 1).
fn lengths_of(padding: Option<&Tensor<2, Bool>>, b: usize, n: usize) -> Vec<usize> {
    match padding {
        None => vec![n; b],
        Some(p) => {
            let keep = p.clone().bool_not().int().sum_dim(1).reshape([b]);
            keep.into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("ints")
                .into_iter()
                .map(|l| (l as usize).max(1))
                .collect()
        }
    }
}

/// Cells that are spans: both ends real tokens and `start ≤ end`.
///
/// # Shapes
///
/// - `padding`: `[b, n]` → `[b, 1, n, n]`
pub fn valid_spans(b: usize, n: usize, padding: Option<&Tensor<2, Bool>>, device: &Device) -> Tensor<4, Bool> {
    // `tril_mask(.., -1)` masks what is not in the strictly lower triangle: it is true where j ≥ i.
    let upper = Tensor::<2, Bool>::tril_mask([n, n], -1, device).reshape([1, 1, n, n]).expand([b, 1, n, n]);
    match padding {
        None => upper,
        Some(p) => {
            let keep = p.clone().bool_not(); // [b, n]
            let rows = keep.clone().reshape([b, 1, n, 1]).expand([b, 1, n, n]);
            let cols = keep.reshape([b, 1, 1, n]).expand([b, 1, n, n]);
            upper.bool_and(rows).bool_and(cols)
        }
    }
}

/// Apply 1-D RoPE at positions `0..n` (interleaved pairs, as `kiln_layers::Rotary`).
///
/// # Shapes
///
/// - `x`: `[b, h, n, d]` → `[b, h, n, d]`
pub(crate) fn rope(x: Tensor<4>) -> Tensor<4> {
    let n = x.dims()[2];
    let rotary = kiln_layers::Rotary::one_d((0..n).map(|i| i as f64).collect(), 10_000.0, &x.device());
    rotary.apply(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_layers::mask::padding_from_lengths;

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn masks_padding_and_the_lower_triangle() {
        let device = Device::flex();
        let valid = valid_spans(1, 3, Some(&padding_from_lengths(&[2], 3, &device)), &device);
        let v: Vec<bool> = valid.into_data().try_to_vec::<bool>().unwrap();
        // Rows = start, columns = end; length 2: (0,0) (0,1) (1,1) only.
        assert_eq!(v, vec![true, true, false, false, true, false, false, false, false]);
    }

    #[test]
    fn toml_config_is_strict_and_validated() {
        #[derive(serde::Deserialize)]
        struct W {
            head: SpanHeadConfig,
        }
        let w: W = toml::from_str("head = { kind = \"efficient_global_pointer\", rope = false }").unwrap();
        assert_eq!(w.head, SpanHeadConfig::EfficientGlobalPointer { d_head: 64, rope: false });
        assert!(toml::from_str::<W>("head = { kind = \"global_pointer\", dhead = 8 }").is_err());
        let odd = SpanHeadConfig::GlobalPointer { d_head: 7, rope: true };
        assert!(odd.validate().unwrap_err().to_string().contains("d_head must be even"));
    }

    /// Both heads, RoPE on: identical tokens give span scores that depend only on `j − i`.
    #[test]
    fn rope_scores_depend_only_on_the_offset() {
        let device = Device::flex();
        for config in [
            SpanHeadConfig::GlobalPointer { d_head: 8, rope: true },
            SpanHeadConfig::EfficientGlobalPointer { d_head: 8, rope: true },
        ] {
            let head = config.init(6, 2, &device);
            let token = Tensor::<1>::from_floats([0.3, -1.0, 0.5, 0.8, -0.2, 0.1].as_slice(), &device);
            let h = token.reshape([1, 1, 6]).expand([1, 5, 6]);
            let s = vals(head.forward(h, None));
            for t in 0..2 {
                for off in 0..5 {
                    let first = s[t * 25 + off];
                    for i in 0..5 - off {
                        let v = s[t * 25 + i * 5 + i + off];
                        assert!((v - first).abs() < 1e-4, "{config:?}: type {t}, offset {off}: {v} vs {first}");
                    }
                }
            }
            assert_eq!(s[5], MASKED, "(1, 0) is below the diagonal");
        }
    }
}
