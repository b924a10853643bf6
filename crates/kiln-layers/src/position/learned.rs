//! Learned absolute positions (Devlin et al. 2019, BERT; Radford et al. 2019, GPT-2): a trained
//! `[max_seq_len, d_model]` table whose first `n` rows are added to the token embeddings.
//! Initialised `N(0, 0.02²)` as in BERT and GPT-2.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

/// A trained table of absolute position vectors.
#[derive(Module, Debug)]
pub struct LearnedPosition {
    /// `[max_seq_len, d_model]`; checkpoint key `position.embedding`.
    pub embedding: Param<Tensor<2>>,
}

impl LearnedPosition {
    /// A fresh table drawn from `N(0, 0.02²)`.
    pub fn new(max_seq_len: usize, d_model: usize, device: &Device) -> Self {
        let table = Tensor::random([max_seq_len, d_model], Distribution::Normal(0.0, 0.02), device);
        Self { embedding: Param::from_tensor(table) }
    }

    /// Longest sequence this table covers.
    pub fn max_seq_len(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// `x + table[0..n]`.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    ///
    /// # Panics
    ///
    /// If `n > max_seq_len`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, n, d] = x.dims();
        let max = self.max_seq_len();
        assert!(n <= max, "sequence of {n} tokens is longer than the learned positions' max_seq_len ({max})");
        x + self.embedding.val().narrow(0, 0, n).reshape([1, n, d])
    }
}
