//! Nyström attention (Xiong et al. 2021, "Nyströmformer", arXiv:2102.03902, eq. 14-15; reference code
//! `mlpen/Nystromformer`, `LRA/code/attention_nystrom.py`).
//!
//! Landmarks `Q̃`, `K̃` are segment means of Q and K over `m` segments. Then
//!
//! ```text
//! F = softmax(Q K̃ᵀ/√d) [n×m],  A = softmax(Q̃ K̃ᵀ/√d) [m×m],  B = softmax(Q̃ Kᵀ/√d + keymask) [m×n]
//! out = F · pinv(A) · (B V)  (+ depthwise convolution of V)
//! ```
//!
//! computed right to left, so nothing is `n × n`. `pinv` is the iteration
//! `Z ← ¼ Z (13I − AZ(15I − AZ(7I − AZ)))` from `Z0 = Aᵀ / (‖A‖₁ ‖A‖∞)`, with the norms taken **per
//! matrix** (one reference version took a max over the whole batch, which slows convergence for
//! every other matrix).
//!
//! **Segments follow each sequence's real length.** With `L` real tokens, segment `s` averages
//! the real tokens of rank `s·l ≤ r < (s+1)·l`, `l = ⌈L/m⌉` (padding to a multiple of `m` with masked
//! means). Segments left empty (`L < m`, or `L` not filling the last ones) are dropped: their columns of
//! `F` and `A` are zero and their rows of `A` too, so `pinv(A)` is that of the real landmarks. Hence
//! appended padding changes nothing at real positions, and with `m ≥ L` every landmark is one token and
//! the output is exact softmax attention (tested).
//!
//! The residual is a depthwise convolution of the (padding-zeroed) values along the sequence, one
//! kernel of `conv_kernel` taps per head, no bias (the reference's `Conv2d(h, h, (33, 1), groups = h)`);
//! its arithmetic is [`kiln_kernels::seq_conv`].
//!
//! Non-causal only: landmarks mix future tokens; a causal config is rejected by `validate()`.

use burn::module::{Initializer, Param};
use burn::prelude::*;

use super::AttentionOptions;
use crate::LayerConfigError;
use kiln_kernels::{matmul, softmax_rows};

use crate::mask::keep_tokens;

/// Masked logits get this before the softmax; finite, so a fully masked row is not NaN.
const MASKED: f32 = -1e9;

/// Nyström attention with `num_landmarks` segment-mean landmarks.
#[derive(Module, Debug)]
pub struct Nystrom {
    /// Depthwise convolution kernels `[h, 1, conv_kernel, 1]` (checkpoint key `conv`), if enabled.
    pub conv: Option<Param<Tensor<4>>>,
    /// Number of landmarks `m`.
    pub num_landmarks: usize,
    /// Iterations of the pseudo-inverse.
    pub pinv_iterations: usize,
}

impl Nystrom {
    /// Nyström attention for `n_heads` heads; `conv_kernel = 0` disables the convolution residual.
    pub fn new(
        n_heads: usize,
        num_landmarks: usize,
        conv_kernel: usize,
        pinv_iterations: usize,
        device: &Device,
    ) -> Self {
        // PyTorch's Conv2d default: kaiming_uniform(a = √5), i.e. U(−1/√fan_in, 1/√fan_in).
        let conv = (conv_kernel > 0).then(|| {
            Initializer::KaimingUniform { gain: 1.0 / 3f64.sqrt(), fan_out_only: false }.init_with(
                [n_heads, 1, conv_kernel, 1],
                Some(conv_kernel),
                Some(conv_kernel),
                device,
            )
        });
        Self { conv, num_landmarks, pinv_iterations }
    }

    /// Segment-mean weights `[b, 1, m, n]` (rows sum to 1 for non-empty segments) and which landmarks
    /// are non-empty, `[b, 1, m, 1]` as `0.0`/`1.0`.
    fn segments(
        &self,
        b: usize,
        n: usize,
        padding: Option<&Tensor<2, Bool>>,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let m = self.num_landmarks;
        let keep = match padding {
            Some(p) => p.clone().bool_not().float(), // [b, n]
            None => Tensor::ones([b, n], device),
        };
        let len = keep.clone().sum_dim(1); // [b, 1]
        let seg_len = len.div_scalar(m as f64).ceil().clamp_min(1.0); // [b, 1]
        let rank = keep.clone().cumsum(1).sub_scalar(1.0); // [b, n]: rank among real tokens
        let segment = (rank / seg_len).floor(); // [b, n]
        let ids = Tensor::<1, Int>::arange(0..m as i64, device).float().reshape([1, m, 1]);
        let onehot = segment.reshape([b, 1, n]).equal(ids.expand([b, m, n])).float() * keep.reshape([b, 1, n]); // [b, m, n]
        let counts = onehot.clone().sum_dim(2); // [b, m, 1]
        let weights = onehot / counts.clone().clamp_min(1.0);
        let valid = counts.greater_elem(0.0).float();
        (weights.reshape([b, 1, m, n]), valid.reshape([b, 1, m, 1]))
    }

    /// Attend.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[b, h, n, d]` → `[b, h, n, d]`; `options.padding`: `[b, n]`
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, options: AttentionOptions) -> Tensor<4> {
        let AttentionOptions { padding, causal, rotary } = options;
        assert!(!causal, "{}", LayerConfigError::CausalNystrom);
        let (q, k) = match rotary {
            Some(r) => (r.apply(q), r.apply(k)),
            None => (q, k),
        };
        let [b, h, n, d] = q.dims();
        let m = self.num_landmarks;
        let device = q.device();
        let scale = (d as f64).powf(-0.5);
        let v = match padding {
            Some(p) => v * keep_tokens(p),
            None => v,
        };
        let (seg, valid) = self.segments(b, n, padding, &device);
        let q_land = seg.clone().matmul(q.clone()); // [b, h, m, d]
        let k_land = seg.matmul(k.clone()); // [b, h, m, d]

        let f = matmul(q, k_land.clone().swap_dims(2, 3)).mul_scalar(scale); // [b, h, n, m]
        let a = matmul(q_land.clone(), k_land.swap_dims(2, 3)).mul_scalar(scale); // [b, h, m, m]
        let (f, a) = if padding.is_none() && every_segment_filled(n, m) {
            (softmax_rows(f), softmax_rows(a))
        } else {
            let valid_cols = valid.clone().reshape([b, 1, 1, m]); // [b, 1, 1, m]
            let col_mask = valid_cols.clone().equal_elem(0.0);
            let f = softmax_rows(f.mask_fill(col_mask.clone().expand([b, h, n, m]), MASKED)) * valid_cols.clone();
            let a = softmax_rows(a.mask_fill(col_mask.expand([b, h, m, m]), MASKED)) * valid_cols * valid;
            (f, a)
        };
        let bk = matmul(q_land, k.swap_dims(2, 3)).mul_scalar(scale); // [b, h, m, n]
        let bk = match padding {
            Some(p) => softmax_rows(bk.mask_fill(p.clone().reshape([b, 1, 1, n]).expand([b, h, m, n]), MASKED)),
            None => softmax_rows(bk),
        };
        let out = matmul(f, matmul(iterative_pinv(a, self.pinv_iterations), matmul(bk, v.clone()))); // [b, h, n, d]
        match &self.conv {
            Some(w) => out + kiln_kernels::seq_conv(v, w.val()),
            None => out,
        }
    }
}

/// Whether `n` unpadded tokens fill all `m` segments (each segment `⌈n/m⌉` tokens, the last ones may
/// be left empty): then no landmark needs masking.
fn every_segment_filled(n: usize, m: usize) -> bool {
    let seg_len = n.div_ceil(m.max(1)).max(1);
    n.div_ceil(seg_len) >= m
}

/// Approximate Moore-Penrose pseudo-inverse of each `[m, m]` matrix by the iteration of Razavi et al.
/// (2014) used in Nyströmformer: `Z ← ¼ Z (13I − AZ(15I − AZ(7I − AZ)))`, `Z0 = Aᵀ / (‖A‖₁ ‖A‖∞)`, the
/// norms per matrix.
///
/// # Shapes
///
/// - `a`: `[b, h, m, m]` → `[b, h, m, m]`
pub fn iterative_pinv(a: Tensor<4>, iterations: usize) -> Tensor<4> {
    let m = a.dims()[3];
    let abs = a.clone().abs();
    let norm_1 = abs.clone().sum_dim(2).max_dim(3); // [b, h, 1, 1]: max column sum
    let norm_inf = abs.sum_dim(3).max_dim(2); // [b, h, 1, 1]: max row sum
    let mut z = a.clone().swap_dims(2, 3) / (norm_1 * norm_inf).clamp_min(1e-12);
    let eye = Tensor::<2>::eye(m, &a.device()).reshape([1, 1, m, m]);
    for _ in 0..iterations {
        let az = matmul(a.clone(), z.clone());
        let inner = eye.clone().mul_scalar(7.0) - az.clone();
        let inner = eye.clone().mul_scalar(15.0) - matmul(az.clone(), inner);
        let inner = eye.clone().mul_scalar(13.0) - matmul(az, inner);
        z = matmul(z, inner).mul_scalar(0.25);
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SoftmaxAttention;
    use crate::test_util::*;

    #[test]
    fn pinv_iteration_inverts_a_well_conditioned_matrix() {
        let device = dev();
        let a = randn([2, 1, 6, 6], 0.1, 1, &device) + Tensor::<2>::eye(6, &device).reshape([1, 1, 6, 6]);
        let z = iterative_pinv(a.clone(), 10);
        let eye = Tensor::<2>::eye(6, &device).reshape([1, 1, 6, 6]).repeat_dim(0, 2);
        assert_close(&to_vec(a.matmul(z)), &to_vec(eye), 1e-4);
    }

    /// With `m = n` every landmark is one token, `F = A = B` = the softmax matrix `S`, and
    /// `S pinv(S) S V = S V`: exact softmax attention.
    #[test]
    fn with_one_landmark_per_token_reproduces_softmax() {
        let device = dev();
        let (n, d) = (12, 8);
        let q = randn([2, 2, n, d], 1.0, 21, &device);
        let k = q.clone() + randn([2, 2, n, d], 0.3, 22, &device);
        let v = randn([2, 2, n, d], 1.0, 23, &device);
        let exact = to_vec(SoftmaxAttention.forward(q.clone(), k.clone(), v.clone(), AttentionOptions::default()));
        let ny = Nystrom::new(2, n, 0, 30, &device);
        let out = to_vec(ny.forward(q.clone(), k.clone(), v.clone(), AttentionOptions::default()));
        let err = max_abs_diff(&out, &exact);
        assert!(err < 1e-3, "max abs error {err}");
        // More landmarks than tokens: the empty segments are dropped, still exact.
        let ny = Nystrom::new(2, n + 5, 0, 30, &device);
        let out = to_vec(ny.forward(q, k, v, AttentionOptions::default()));
        assert!(max_abs_diff(&out, &exact) < 1e-3);
    }

    /// The approximation error at fixed `m < n`, reported. It shrinks as `m` grows to `n` on
    /// unstructured random inputs (where the softmax matrix has high rank and Nyström is poor at small
    /// `m`), and is small already at `m = n/8` when neighbouring tokens are alike (smooth sequences,
    /// the case segment means are made for).
    #[test]
    fn error_at_fixed_landmarks_is_reported() {
        let device = dev();
        let (n, d) = (64, 16);
        let err_at = |q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, m: usize| {
            let exact = to_vec(SoftmaxAttention.forward(q.clone(), k.clone(), v.clone(), AttentionOptions::default()));
            let out = to_vec(Nystrom::new(2, m, 0, 6, &device).forward(
                q.clone(),
                k.clone(),
                v.clone(),
                AttentionOptions::default(),
            ));
            rel_l2(&out, &exact)
        };
        let q = randn([1, 2, n, d], 1.0, 31, &device);
        let k = randn([1, 2, n, d], 1.0, 32, &device);
        let v = randn([1, 2, n, d], 1.0, 33, &device);
        let random: Vec<f64> = [4, 16, 64].iter().map(|&m| err_at(&q, &k, &v, m)).collect();
        // Smooth sequences: x_i = cos(πi/n) a + sin(πi/n) b.
        let smooth = |seed: u64| {
            let a = randn([1, 2, 1, d], 1.5, seed, &device);
            let b = randn([1, 2, 1, d], 1.5, seed + 1, &device);
            let t: Vec<f32> = (0..n).map(|i| std::f32::consts::PI * i as f32 / n as f32).collect();
            let c = Tensor::<1>::from_floats(t.iter().map(|x| x.cos()).collect::<Vec<_>>().as_slice(), &device)
                .reshape([1, 1, n, 1]);
            let s = Tensor::<1>::from_floats(t.iter().map(|x| x.sin()).collect::<Vec<_>>().as_slice(), &device)
                .reshape([1, 1, n, 1]);
            a * c + b * s
        };
        let (sq, sk, sv) = (smooth(41), smooth(43), smooth(45));
        let smooth_errs: Vec<f64> = [4, 8, 16].iter().map(|&m| err_at(&sq, &sk, &sv, m)).collect();
        eprintln!(
            "nystrom relative error, n = 64, 6 iterations: random inputs m = 4/16/64: {random:?}; smooth inputs m = 4/8/16: {smooth_errs:?}"
        );
        assert!(random[0] > random[1] && random[1] > random[2], "{random:?}");
        assert!(random[2] < 0.1, "{random:?}");
        assert!(smooth_errs[1] < 0.05, "{smooth_errs:?}");
    }

    /// Without padding, where every segment has a token, the landmark masks are skipped; the output
    /// and the input gradients equal those of the masked path (an all-false padding mask), for
    /// lengths that fill every segment or leave some empty.
    #[test]
    fn unmasked_path_equals_the_masked_path() {
        let device = dev().autodiff();
        let m = 8;
        for n in [5, 8, 11, 15, 16, 40] {
            assert_eq!(every_segment_filled(n, m), [8, 15, 16, 40].contains(&n), "n = {n}");
            let layer = Nystrom::new(2, m, 5, 3, &device);
            let run = |padding: Option<&Tensor<2, Bool>>| {
                let q = randn([2, 2, n, 4], 1.0, 1, &device).require_grad();
                let k = randn([2, 2, n, 4], 1.0, 2, &device).require_grad();
                let v = randn([2, 2, n, 4], 1.0, 3, &device).require_grad();
                let out =
                    layer.forward(q.clone(), k.clone(), v.clone(), AttentionOptions { padding, ..Default::default() });
                let grads = (out.clone() * randn([2, 2, n, 4], 1.0, 4, &device)).sum().backward();
                [out, q.grad(&grads).unwrap(), k.grad(&grads).unwrap(), v.grad(&grads).unwrap()].map(to_vec)
            };
            let none = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; 2 * n], [2, n]), &device);
            let (fast, masked) = (run(None), run(Some(&none)));
            for (name, (a, b)) in ["output", "dq", "dk", "dv"].iter().zip(fast.iter().zip(&masked)) {
                assert!(max_abs_diff(a, b) < 1e-5, "n = {n}: {name}");
            }
        }
    }
}
