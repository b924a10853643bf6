//! LayerNorm (Ba et al. 2016, arXiv:1607.06450) in training on flex, a Burn backend extension
//! (`#[backend_extension]`) with its own backward pass:
//!
//! ```text
//! μ = mean(x),   r = 1/√(mean((x − μ)²) + ε),   x̂ = (x − μ)·r,   y = x̂ ⊙ γ + β
//! g = dy ⊙ γ,    dx = r·(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)),   dγ = Σ dy ⊙ x̂,   dβ = Σ dy
//! ```
//!
//! (means over the last dimension, sums over every other). Burn's autodiff has no LayerNorm of its
//! own: it runs the decomposition of `ModuleOps::layer_norm` (mean, subtract, square, mean, add,
//! square root, divide, multiply, add) and differentiates each op, about thirty small passes over
//! the activations per norm and step, each a fresh allocation; the small transformers' steps have
//! nine norms. Here the forward pass is one pass per row and the backward pass one more (the row's
//! statistics recomputed from the saved input), the rows split over Rayon's threads. In inference
//! flex's own fused `layer_norm` runs ([`crate::layer_norm`] chooses).

use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::host::{host_in_place, host_vec, row_task_len};

/// The backend operations: LayerNorm of `x` `[.., d]` with `gamma`, `beta` `[d]`, and its gradients.
#[backend_extension(Flex, Autodiff)]
pub trait LayerNormBackend: Backend {
    /// `x̂ ⊙ γ + β`; the default is the backend's own `layer_norm`.
    fn kiln_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// `(dx, dγ, dβ)` from the input `x`, the scale `γ` and the output gradient `dy`; the default is
    /// built from backend ops.
    fn kiln_layer_norm_grad(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        grad_by_backend_ops::<Self>(x, gamma, grad, epsilon)
    }
}

/// [`LayerNormBackend::kiln_layer_norm_grad`] from backend ops (the default, and the reference for
/// flex's host loop).
fn grad_by_backend_ops<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    dy: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let d = shape.as_slice().last().copied().unwrap_or(1);
    let rows = shape.num_elements() / d.max(1);
    let flat = |t: FloatTensor<B>| B::float_reshape(t, Shape::new([rows, d]));
    let (x, dy) = (flat(x), flat(dy));
    let mean = B::float_mean_dim(x.clone(), 1);
    let centred = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 1);
    let r = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let x_hat = B::float_mul(centred, r.clone());
    let g = B::float_mul(dy.clone(), B::float_reshape(gamma, Shape::new([1, d])));
    let mean_g = B::float_mean_dim(g.clone(), 1);
    let mean_gx = B::float_mean_dim(B::float_mul(g.clone(), x_hat.clone()), 1);
    let dx = B::float_mul(r, B::float_sub(B::float_sub(g, mean_g), B::float_mul(x_hat.clone(), mean_gx)));
    let column_sum = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dim(t, 0), Shape::new([d]));
    let d_gamma = column_sum(B::float_mul(dy.clone(), x_hat));
    (B::float_reshape(dx, shape), d_gamma, column_sum(dy))
}

/// flex: one host pass per row each way, rows grouped into tasks of about `HOST_CHUNK` elements.
impl LayerNormBackend for Flex {
    fn kiln_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let shape = x.shape();
        let (gamma, beta) = (host_vec(gamma), host_vec(beta));
        let d = gamma.len().max(1);
        let eps = epsilon as f32;
        // Read in place (the autodiff graph keeps `x` for the backward pass, so taking its buffer
        // would copy it) and written once into a fresh buffer.
        let x = x.to_contiguous();
        let x = x.as_slice::<f32>().expect("f32 activations");
        let len = row_task_len(d);
        let mut out = Vec::with_capacity(x.len());
        out.spare_capacity_mut().par_chunks_mut(len).zip(x.par_chunks(len)).for_each(|(out, x)| {
            normalise_rows(out, x, &gamma, &beta, eps);
        });
        // SAFETY: the chunks cover the whole spare capacity and every element of each was written.
        unsafe { out.set_len(x.len()) };
        FlexTensor::from_data(TensorData::new(out, shape.to_vec()))
    }

    fn kiln_layer_norm_grad(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let gamma = host_vec(gamma);
        let d = gamma.len().max(1);
        let eps = epsilon as f32;
        let x = x.to_contiguous();
        let x = x.as_slice::<f32>().expect("f32 activations");
        let len = row_task_len(d);
        // One partial (dγ, dβ) per task, summed in task order: the same result on any number of threads.
        let (dx, partials) = host_in_place(grad, |dx| -> Vec<Vec<f32>> {
            dx.par_chunks_mut(len)
                .zip(x.par_chunks(len))
                .map(|(g, x)| {
                    let mut acc = vec![0.0f32; 2 * d];
                    grad_rows(g, x, &gamma, eps, &mut acc);
                    acc
                })
                .collect()
        });
        let mut sums = vec![0.0f32; 2 * d];
        for p in &partials {
            sums.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        let d_beta = sums.split_off(d);
        let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [d]));
        (dx, vector(sums), vector(d_beta))
    }
}

impl<B: LayerNormBackend, C: CheckpointStrategy> LayerNormBackend for Autodiff<B, C> {
    fn kiln_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        impl<B: LayerNormBackend> Backward<B, 3> for LayerNormBackward {
            /// The input, the scale and `ε`.
            type State = (FloatTensor<B>, FloatTensor<B>, f64);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, epsilon) = ops.state;
                let (dx, d_gamma, d_beta) = B::kiln_layer_norm_grad(x, gamma, grad, epsilon);
                for (node, g) in [(node_x, dx), (node_gamma, d_gamma), (node_beta, d_beta)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
                let y = B::kiln_layer_norm(x.clone(), gamma.clone(), beta.into_primitive(), epsilon);
                prep.finish((x, gamma, epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kiln_layer_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }
}

const LANES: usize = 16;

/// `Σ f(aᵢ, bᵢ)` in 16 partial sums, an order the compiler vectorises.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (x, y) in ca.zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += f(x, y);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The mean and `1/√(var + ε)` of one row (two passes: no cancellation on rows far from zero).
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = lane_sum(x, x, |x, _| x) / d;
    let var = lane_sum(x, x, |x, _| (x - mean) * (x - mean)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

crate::avx512_dispatch! {
    /// `out ← x̂ ⊙ γ + β` on each row of `γ.len()` elements.
    fn normalise_rows(
        out: &mut [MaybeUninit<f32>],
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) => normalise_rows_portable
}

#[inline(always)]
fn normalise_rows_portable(out: &mut [MaybeUninit<f32>], x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = gamma.len();
    for (out, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let (mean, r) = row_stats(x, eps);
        for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
            o.write((x - mean) * r * g + b);
        }
    }
}

crate::avx512_dispatch! {
    /// `dy ← dx` on each row of `γ.len()` elements, adding `dy ⊙ x̂` to `acc[..d]` and `dy` to `acc[d..]`.
    fn grad_rows(dy: &mut [f32], x: &[f32], gamma: &[f32], eps: f32, acc: &mut [f32]) => grad_rows_portable
}

#[inline(always)]
fn grad_rows_portable(dy: &mut [f32], x: &[f32], gamma: &[f32], eps: f32, acc: &mut [f32]) {
    let d = gamma.len();
    let (acc_gamma, acc_beta) = acc.split_at_mut(d);
    for (dy, x) in dy.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let (mean, r) = row_stats(x, eps);
        // dy ← g = dy ⊙ γ, after adding dy's share to the parameter gradients.
        for ((((dy, &x), &g), ag), ab) in
            dy.iter_mut().zip(x).zip(gamma).zip(acc_gamma.iter_mut()).zip(acc_beta.iter_mut())
        {
            *ag += *dy * (x - mean) * r;
            *ab += *dy;
            *dy *= g;
        }
        let mean_g = lane_sum(dy, x, |g, _| g) / d as f32;
        let mean_gx = lane_sum(dy, x, |g, x| g * (x - mean)) * r / d as f32;
        for (g, &x) in dy.iter_mut().zip(x) {
            *g = r * (*g - mean_g - (x - mean) * r * mean_gx);
        }
    }
}

/// LayerNorm through [`LayerNormBackend`]; call in training on flex (f32) only ([`crate::layer_norm`]
/// chooses).
///
/// # Shapes
///
/// - `x`: `[.., d]`, `gamma`, `beta`: `[d]` → `[.., d]`
pub(crate) fn layer_norm_flex<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerNormBackend>::kiln_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::module::Param;
    use burn::nn::LayerNormConfig;

    /// Output and the gradients of input, scale and shift equal Burn's `LayerNorm` in training, on
    /// widths shorter than, equal to and longer than the 16 lanes, with rows of large offset (where a
    /// one-pass variance would lose digits); flex's host loops equal the backend-op default.
    #[test]
    fn layer_norm_equals_burns_with_gradients() {
        let device = dev().autodiff();
        assert!(crate::device::is_flex(&device) && device.is_autodiff());
        for (dims, offset) in [([2, 3, 5], 0.0), ([3, 7, 16], 100.0), ([2, 5, 70], -3.0)] {
            let d = dims[2];
            let run = |ours: bool| {
                let mut burns = LayerNormConfig::new(d).with_epsilon(1e-5).init(&device);
                burns.gamma = Param::from_tensor(randn([d], 0.5, 7, &device).add_scalar(1.0));
                burns.beta = Some(Param::from_tensor(randn([d], 0.5, 8, &device)));
                let x = randn(dims, 2.0, 1, &device).add_scalar(offset).require_grad();
                let upstream = randn(dims, 1.0, 3, &device);
                let beta = burns.beta.as_ref().map(|b| b.val());
                let y = if ours {
                    crate::layer_norm(x.clone(), burns.gamma.val(), beta, 1e-5)
                } else {
                    burns.forward(x.clone())
                };
                let grads = (y.clone() * upstream).sum().backward();
                let grad_of = |p: &Param<Tensor<1>>| to_vec(p.val().grad(&grads).expect("a gradient"));
                [
                    to_vec(y),
                    to_vec(x.grad(&grads).expect("a gradient")),
                    grad_of(&burns.gamma),
                    grad_of(burns.beta.as_ref().expect("a shift")),
                ]
            };
            let (got, want) = (run(true), run(false));
            for (i, what) in ["output", "input gradient", "scale gradient", "shift gradient"].iter().enumerate() {
                assert_close(&got[i], &want[i], 2e-5);
                assert!(want[i].iter().any(|v| v.abs() > 1e-2), "{what}: something to compare");
            }
            let prim = |t: Tensor<3>| t.try_into_primitive::<Flex>().expect("a flex tensor");
            let prim1 = |t: Tensor<1>| t.try_into_primitive::<Flex>().expect("a flex tensor");
            let back = |t: FlexTensor| to_vec(Tensor::<3>::from_primitive::<Flex>(t));
            let back1 = |t: FlexTensor| to_vec(Tensor::<1>::from_primitive::<Flex>(t));
            let (x, dy) = (randn(dims, 2.0, 4, &dev()).add_scalar(offset), randn(dims, 1.0, 5, &dev()));
            let gamma = randn([d], 0.5, 6, &dev()).add_scalar(1.0);
            let host = Flex::kiln_layer_norm_grad(prim(x.clone()), prim1(gamma.clone()), prim(dy.clone()), 1e-5);
            let reference = grad_by_backend_ops::<Flex>(prim(x), prim1(gamma), prim(dy), 1e-5);
            assert_close(&back(host.0), &back(reference.0), 2e-5);
            assert_close(&back1(host.1), &back1(reference.1), 2e-5);
            assert_close(&back1(host.2), &back1(reference.2), 2e-5);
        }
    }
}
