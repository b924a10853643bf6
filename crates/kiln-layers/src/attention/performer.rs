//! Performer FAVOR+ attention (Choromanski et al. 2021, "Rethinking Attention with Performers",
//! arXiv:2009.14794, §2.3-2.4; reference code `google-research/performer/fast_attention` and
//! `lucidrains/performer-pytorch`).
//!
//! Positive orthogonal random features: scale `x ← x / d^(1/4)`, then
//! `φ(x) = m^(-1/2) (exp(W x − ‖x‖²/2 − stab) + 1e-4)` with `W` of `m × d` Gaussian rows made
//! orthogonal in blocks of `d` (an orthonormalised Gaussian block) and rescaled to the norms of
//! independent Gaussian vectors. Then `D⁻¹ φ(Q) (φ(K)ᵀ V)` with `D = diag(φ(Q) φ(K)ᵀ 1)`: the same
//! kernelized attention as linear attention ([`kernelized_attention`]), causal via its chunked prefix
//! sums, RoPE on the numerator's features only.
//!
//! **Stabilisers.** Queries subtract their own max over features (a per-query factor that cancels in
//! `D⁻¹`). Keys subtract one max `G` over all real keys and features per `(batch, head)`, as the
//! reference code does: a common factor, which cancels too. METHODS.md §2 suggests a per-key max for
//! causal keys (so that a key's features do not depend on later keys), but a per-key max does not
//! cancel: it reweights key `j` by `exp(−max_r w_r·k_j)`. Measured on the test inputs below (n = 64,
//! d = 16, 4 draws), the causal relative error against exact softmax then *grew* from 0.37 at m = 8 to
//! 0.51 at m = 512 instead of falling. With the global `G`, the only thing that depends on later keys
//! is the size of the `1e-4` floor relative to the features (the reference's `exp(a − G) + 1e-4`), a
//! leak of about 1e-4 into earlier outputs, also measured. So causal keys use
//! `exp(a − G) + 1e-4 · exp(−G)`: `exp(−G)` times the unstabilised `exp(a) + 1e-4`, whose common
//! factor cancels, so outputs depend on no later token (tested) and the estimate stays unbiased. `−G`
//! is capped at 60 against overflow, which only binds for keys of extreme norm.
//!
//! **`W` is state.** It is a non-trainable [`Param`] so that it is saved in checkpoints and a resumed
//! run continues with the features it was trained with. [`Performer::redraw`] draws a new `W` before
//! every `redraw_interval`-th training step, reached through Burn's module traversal
//! ([`super::redraw_features`]; the reference redraws in the training forward pass, every
//! 1,000 calls, so never after the last step: the model is evaluated with the features its last steps
//! trained with); the draw is a function of `(seed, step / redraw_interval)`, so a resumed run redraws
//! exactly as the original.

use burn::module::Param;
use burn::prelude::*;

use super::AttentionOptions;

use super::linear::{Features, kernelized_attention};
use super::redraw::{RedrawSchedule, draw_values};
use crate::mask::keep_tokens;

/// Added to every feature (reference `eps = 1e-4`) so that features stay strictly positive.
pub const PERFORMER_FEATURE_EPS: f64 = 1e-4;

/// FAVOR+ attention with `num_features` positive orthogonal random features.
#[derive(Module, Debug)]
pub struct Performer {
    /// When `W` is drawn again (before the projection: [`super::redraw`] reads it first).
    pub redraw: RedrawSchedule,
    /// `[m, d]` random projection; not trained, saved (checkpoint key `projection`).
    pub projection: Param<Tensor<2>>,
    /// Chunk length of the causal form.
    pub chunk_size: usize,
}

/// The default number of features, `d ln d` (the paper's and reference code's choice), rounded up to
/// a multiple of 4 so that 1-D and 2-D RoPE can rotate them.
pub fn default_num_features(d_head: usize) -> usize {
    let m = (d_head as f64 * (d_head as f64).ln()).ceil() as usize;
    m.max(4).div_ceil(4) * 4
}

impl Performer {
    /// FAVOR+ over heads of size `d_head` with `num_features` features, first draw from `seed`.
    pub fn new(
        d_head: usize,
        num_features: usize,
        redraw_interval: usize,
        seed: u64,
        chunk_size: usize,
        device: &Device,
    ) -> Self {
        let w = draw_values(num_features, d_head, seed, 0);
        let projection =
            Param::from_tensor(Tensor::<1>::from_floats(w.as_slice(), device).reshape([num_features, d_head]))
                .set_require_grad(false);
        Self { redraw: RedrawSchedule { interval: redraw_interval, seed }, projection, chunk_size }
    }

    /// Number of random features `m`.
    pub fn num_features(&self) -> usize {
        self.projection.dims()[0]
    }

    /// Draw new features if the schedule says so before training step `step` (0-based): what
    /// [`super::redraw_features`] does for every Performer of a model.
    pub fn redraw(&mut self, step: usize) {
        *self = super::redraw_features(self.clone(), step);
    }

    /// Positive random features `φ(x)`; padded keys come out zero and do not enter the stabiliser.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, h, n, d]` → `[b, h, n, m]`
    pub fn features(&self, x: Tensor<4>, is_query: bool, causal: bool, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
        let [b, h, n, d] = x.dims();
        let w = self.projection.val(); // [m, d]
        let m = w.dims()[0];
        let x = x.mul_scalar((d as f64).powf(-0.25));
        let wx = x.clone().matmul(w.transpose().reshape([1, 1, d, m])); // [b, h, n, m]
        let half_sq = x.powf_scalar(2.0).sum_dim(3).div_scalar(2.0); // [b, h, n, 1]
        let shifted = if is_query {
            let stab = wx.clone().max_dim(3).detach(); // [b, h, n, 1]
            kiln_kernels::exp(wx - half_sq - stab).add_scalar(PERFORMER_FEATURE_EPS)
        } else {
            let masked = match padding {
                Some(p) => wx.clone().mask_fill(p.clone().reshape([b, 1, n, 1]).expand([b, h, n, m]), f32::MIN),
                None => wx.clone(),
            };
            let stab = masked.max_dim(3).max_dim(2).detach(); // [b, h, 1, 1]
            let floor = if causal {
                stab.clone().neg().clamp_max(60.0).exp().mul_scalar(PERFORMER_FEATURE_EPS)
            } else {
                stab.ones_like().mul_scalar(PERFORMER_FEATURE_EPS)
            };
            kiln_kernels::exp(wx - half_sq - stab) + floor
        };
        let phi = shifted.div_scalar((m as f64).sqrt());
        match (is_query, padding) {
            (false, Some(p)) => phi * keep_tokens(p),
            _ => phi,
        }
    }

    /// Attend.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[b, h, n, d]` → `[b, h, n, d]`; `options.padding`: `[b, n]`
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, options: AttentionOptions) -> Tensor<4> {
        let AttentionOptions { padding, causal, rotary } = options;
        let fq = self.features(q, true, causal, padding);
        let fk = self.features(k, false, causal, padding);
        // No ε in the denominator: features are strictly positive, and an ε would not scale with them.
        kernelized_attention(Features::new(fq, fk, rotary), v, causal, self.chunk_size, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::linear::kernelized_attention_quadratic;
    use crate::attention::orthogonal_gaussian;
    use crate::test_util::*;
    use crate::{Rotary, SoftmaxAttention};
    use burn::module::Module;

    #[test]
    fn projection_rows_are_orthogonal_within_a_block() {
        let (m, d) = (20, 8);
        let w = orthogonal_gaussian(m, d, 42);
        let row = |i: usize| &w[i * d..(i + 1) * d];
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        for blk in [0, 8, 16] {
            for i in blk..(blk + d).min(m) {
                for j in (i + 1)..(blk + d).min(m) {
                    let c = dot(row(i), row(j)) / (dot(row(i), row(i)) * dot(row(j), row(j))).sqrt();
                    assert!(c.abs() < 1e-5, "rows {i},{j} cos {c}");
                }
            }
        }
        // Different seeds, different draws; same seed, same draw.
        assert_eq!(w, orthogonal_gaussian(m, d, 42));
        assert_ne!(w, orthogonal_gaussian(m, d, 43));
    }

    #[test]
    fn causal_form_equals_masked_quadratic_form() {
        let device = dev();
        let p = Performer::new(8, 32, 0, 5, 8, &device);
        let q = randn([2, 2, 29, 8], 1.0, 1, &device);
        let k = randn([2, 2, 29, 8], 1.0, 2, &device);
        let v = randn([2, 2, 29, 8], 1.0, 3, &device);
        for rope in [false, true] {
            let rot = rope.then(|| Rotary::one_d((0..29).map(|i| i as f64).collect(), 10_000.0, &device));
            let f = Features::new(
                p.features(q.clone(), true, true, None),
                p.features(k.clone(), false, true, None),
                rot.as_ref(),
            );
            let slow = to_vec(kernelized_attention_quadratic(f.clone(), v.clone(), true, 0.0));
            let fast = to_vec(kernelized_attention(f, v.clone(), true, 8, 0.0));
            assert_close(&fast, &slow, 1e-4);
            // And the module's forward is that computation.
            let out = to_vec(p.forward(
                q.clone(),
                k.clone(),
                v.clone(),
                AttentionOptions { causal: true, rotary: rot.as_ref(), ..Default::default() },
            ));
            assert_close(&out, &slow, 1e-4);
        }
    }

    /// The relative error against exact softmax attention falls as the number of features grows
    /// (averaged over independent draws); a Performer that forgot `D⁻¹` would fail this by orders
    /// of magnitude.
    #[test]
    fn approaches_softmax_as_features_grow() {
        let device = dev();
        let (n, d) = (64, 16);
        let q = randn([1, 2, n, d], 0.5, 11, &device);
        let k = randn([1, 2, n, d], 0.5, 12, &device);
        let v = randn([1, 2, n, d], 1.0, 13, &device);
        let exact = to_vec(SoftmaxAttention.forward(q.clone(), k.clone(), v.clone(), AttentionOptions::default()));
        let rel_err = |m: usize, causal: bool| -> f64 {
            let exact = if causal {
                to_vec(SoftmaxAttention.forward(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    AttentionOptions { causal: true, ..Default::default() },
                ))
            } else {
                exact.clone()
            };
            let draws = 4;
            (0..draws)
                .map(|s| {
                    let p = Performer::new(d, m, 0, 100 + s, 16, &device);
                    let out = to_vec(p.forward(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        AttentionOptions { causal, ..Default::default() },
                    ));
                    rel_l2(&out, &exact)
                })
                .sum::<f64>()
                / draws as f64
        };
        let errs: Vec<f64> = [8, 32, 128, 512].iter().map(|&m| rel_err(m, false)).collect();
        eprintln!("performer relative error vs softmax, m = 8/32/128/512: {errs:?}");
        assert!(errs.windows(2).all(|w| w[1] < w[0]), "{errs:?}");
        // Monte Carlo error falls like m^(-1/2): 64 times the features, well under half the error.
        assert!(errs[3] < 0.35 * errs[0], "{errs:?}");
        let causal: Vec<f64> = [8, 512].iter().map(|&m| rel_err(m, true)).collect();
        eprintln!("causal, m = 8/512: {causal:?}");
        assert!(causal[1] < causal[0], "{causal:?}");
    }

    #[test]
    fn random_features_survive_save_and_load() {
        let device = dev();
        let dir = std::env::temp_dir().join(format!("kiln-performer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("performer.bpk");
        let mut trained = Performer::new(8, 24, 10, 7, 8, &device);
        trained.redraw(30); // a run that has redrawn three times
        let before = to_vec(trained.projection.val());
        trained.clone().save_file(&path).unwrap();
        let fresh = Performer::new(8, 24, 10, 99, 8, &device);
        assert_ne!(to_vec(fresh.projection.val()), before);
        let loaded = fresh.load_file(&path);
        assert_eq!(to_vec(loaded.projection.val()), before);
        let x = randn([1, 1, 5, 8], 1.0, 1, &device);
        let a = to_vec(trained.forward(x.clone(), x.clone(), x.clone(), AttentionOptions::default()));
        let b = to_vec(loaded.forward(x.clone(), x.clone(), x, AttentionOptions::default()));
        assert_eq!(a, b);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn redraw_is_periodic_and_deterministic() {
        let device = dev();
        let mut a = Performer::new(8, 16, 10, 3, 8, &device);
        let w0 = to_vec(a.projection.val());
        a.redraw(5);
        assert_eq!(to_vec(a.projection.val()), w0, "no redraw between intervals");
        a.redraw(10);
        let w1 = to_vec(a.projection.val());
        assert_ne!(w1, w0);
        let mut b = Performer::new(8, 16, 10, 3, 8, &device);
        b.redraw(10);
        assert_eq!(to_vec(b.projection.val()), w1, "same seed and step, same features");
    }
}
