//! Masks shared by the attention kinds.
//!
//! **Convention:** a key-padding mask is `Tensor<2, Bool>` of shape `[b, n]` with `true` at
//! padding, as in `burn::nn::attention` (`mask_pad`) and PyTorch's `key_padding_mask`.

use burn::prelude::*;

/// `1.0` at real tokens, `0.0` at padding, shaped `[b, 1, n, 1]` to multiply `[b, h, n, d]` tensors.
pub fn keep_tokens(padding: &Tensor<2, Bool>) -> Tensor<4> {
    let [b, n] = padding.dims();
    padding.clone().bool_not().float().reshape([b, 1, n, 1])
}

/// Mean over the real tokens of each row (padding excluded; an all-padding row gives 0).
///
/// # Shapes
///
/// - `h`: `[b, n, d]`, `padding`: `[b, n]` (`true` = pad) → `[b, d]`
pub fn masked_mean(h: Tensor<3>, padding: &Tensor<2, Bool>) -> Tensor<2> {
    let [b, _, d] = h.dims();
    let keep = padding.clone().bool_not().float().unsqueeze_dim::<3>(2); // [b, n, 1]
    let sum = (h * keep.clone()).sum_dim(1).reshape([b, d]);
    sum / keep.sum_dim(1).reshape([b, 1]).clamp_min(1.0)
}

/// A padding mask with `true` at the positions `>= lengths[i]` of each row.
pub fn padding_from_lengths(lengths: &[usize], n: usize, device: &Device) -> Tensor<2, Bool> {
    let flags: Vec<bool> = lengths.iter().flat_map(|&l| (0..n).map(move |j| j >= l)).collect();
    Tensor::<1, Bool>::from_bool(TensorData::new(flags, [lengths.len() * n]), device).reshape([lengths.len(), n])
}

/// Causal (lower-triangular, diagonal included) weights `[n, n]`: `1.0` where key `j <= i`.
pub fn causal_weights(n: usize, device: &Device) -> Tensor<2> {
    Tensor::<2, Bool>::tril_mask([n, n], 0, device).bool_not().float()
}
