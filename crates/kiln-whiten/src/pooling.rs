//! Sentence vectors from BERT's token outputs (the poolings compared by Su et al. 2021, §2 and
//! Table 1): `cls` (the `[CLS]` token of the last block), `last-avg` (mean over real tokens of the
//! last block), `first-last-avg` (mean over real tokens of the average of the first and the last
//! block's outputs; the first *block*, not the embedding layer, as METHODS.md §6 states) and `pooler`
//! (`tanh(W h_[CLS] + b)`, when the checkpoint has the pooler). Padding never enters a mean.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use kiln_layers::mask::masked_mean;
use kiln_transformer::{Bert, BertOutput};
use serde::{Deserialize, Serialize};

use crate::WhitenError;

/// How token outputs become one sentence vector. CLI and TOML: `cls`, `last-avg`, `first-last-avg`,
/// `pooler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentencePooling {
    /// `[CLS]` of the last block.
    Cls,
    /// Mean of the last block over real tokens.
    LastAvg,
    /// Mean over real tokens of `(first block + last block) / 2`.
    FirstLastAvg,
    /// BERT's pooler on `[CLS]`.
    Pooler,
}

impl SentencePooling {
    /// Every pooling, in table order.
    pub const ALL: [Self; 4] = [Self::Cls, Self::LastAvg, Self::FirstLastAvg, Self::Pooler];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::LastAvg => "last-avg",
            Self::FirstLastAvg => "first-last-avg",
            Self::Pooler => "pooler",
        }
    }

    /// Pool a forward pass.
    ///
    /// # Shapes
    ///
    /// - `padding`: `[b, n]` (`true` = pad) → `[b, d_model]`
    ///
    /// # Errors
    ///
    /// `pooler` on a model without one.
    pub fn pool(self, model: &Bert, out: &BertOutput, padding: &Tensor<2, Bool>) -> Result<Tensor<2>, WhitenError> {
        match self {
            Self::Cls => Ok(first_token(out.last())),
            Self::LastAvg => Ok(masked_mean(out.last(), padding)),
            Self::FirstLastAvg => Ok(masked_mean((out.layers[0].clone() + out.last()) / 2.0, padding)),
            Self::Pooler => model
                .pool(out.last())
                .ok_or_else(|| WhitenError::Invalid("pooling `pooler`: this checkpoint has no pooler weights".into())),
        }
    }
}

impl fmt::Display for SentencePooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SentencePooling {
    type Err = WhitenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            WhitenError::Invalid(format!(
                "unknown pooling `{s}`; expected one of cls, last-avg, first-last-avg, pooler"
            ))
        })
    }
}

/// `h[:, 0]`.
fn first_token(h: Tensor<3>) -> Tensor<2> {
    let [b, _, d] = h.dims();
    h.slice(s![.., 0..1, ..]).reshape([b, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_layers::mask::padding_from_lengths;

    fn vals(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Hand-built outputs: two sentences of 3 and 2 real tokens in a batch of 3 columns, `d = 2`.
    /// Token `j` of row `i` in the last block is `[10 i + j, −j]`, in the first block `[j, 1]`, and
    /// the embedding layer is 100 everywhere (it must not enter `first-last-avg`).
    #[test]
    fn poolings_average_real_tokens_only() {
        let device = Device::flex();
        let last: Vec<f32> =
            (0..2).flat_map(|i| (0..3).flat_map(move |j| [(10 * i + j) as f32, -(j as f32)])).collect();
        let first: Vec<f32> = (0..2).flat_map(|_| (0..3).flat_map(|j| [j as f32, 1.0])).collect();
        let t = |v: Vec<f32>| Tensor::<1>::from_floats(v.as_slice(), &device).reshape([2, 3, 2]);
        let out = BertOutput { embeddings: t(vec![100.0; 12]), layers: vec![t(first), t(vec![7.0; 12]), t(last)] };
        let padding = padding_from_lengths(&[3, 2], 3, &device);
        let config: kiln_transformer::BertConfig = serde_json::from_str(
            r#"{"vocab_size": 5, "hidden_size": 2, "num_hidden_layers": 1, "num_attention_heads": 1,
                "intermediate_size": 4, "max_position_embeddings": 3}"#,
        )
        .unwrap();
        let model = config.init(false, &device);
        let pool = |p: SentencePooling| vals(p.pool(&model, &out, &padding).unwrap());
        assert_eq!(pool(SentencePooling::Cls), vec![0.0, 0.0, 10.0, 0.0]);
        // Row 0: mean of 0,1,2 = 1 and of 0,−1,−2 = −1; row 1: mean of 10,11 = 10.5 and of 0,−1 = −0.5.
        assert_eq!(pool(SentencePooling::LastAvg), vec![1.0, -1.0, 10.5, -0.5]);
        // Row 0: ((0+1+2)/3 + 1)/2 = 1, (1 + −1)/2 = 0; row 1: ((0+1)/2 + 10.5)/2 = 5.5, (1 − 0.5)/2 = 0.25.
        assert_eq!(pool(SentencePooling::FirstLastAvg), vec![1.0, 0.0, 5.5, 0.25]);
        let err = SentencePooling::Pooler.pool(&model, &out, &padding).unwrap_err().to_string();
        assert!(err.contains("no pooler"), "{err}");
        assert_eq!("first-last-avg".parse::<SentencePooling>().unwrap(), SentencePooling::FirstLastAvg);
        assert!("mean".parse::<SentencePooling>().unwrap_err().to_string().contains("last-avg"));
    }
}
