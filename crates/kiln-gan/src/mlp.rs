//! MLP generator and critic for 2-D data (Gulrajani et al.'s toy networks: three hidden ReLU layers
//! of 512), the critic with an exact, differentiable input gradient for the gradient penalty.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

use crate::spectral::SpectralLinear;

/// `noise → hidden… → d_out`, ReLU between layers, linear output.
#[derive(Module, Debug)]
pub struct MlpGenerator {
    /// The layers.
    pub layers: Vec<Linear>,
}

impl MlpGenerator {
    /// Widths `d_noise → hidden[0] → … → d_out`.
    pub fn new(d_noise: usize, hidden: &[usize], d_out: usize, device: &Device) -> Self {
        let widths: Vec<usize> =
            std::iter::once(d_noise).chain(hidden.iter().copied()).chain(std::iter::once(d_out)).collect();
        Self { layers: widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect() }
    }

    /// # Shapes
    ///
    /// - `z`: `[b, d_noise]` → `[b, d_out]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        kiln_layers::relu_between(&self.layers, z)
    }
}

/// A critic layer: plain, or spectrally normalised.
#[derive(Module, Debug)]
pub enum CriticLayer {
    /// `x W + b`.
    Plain(Linear),
    /// `x W/σ(W) + b`.
    Spectral(SpectralLinear),
}

impl CriticLayer {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Plain(l) => l.forward(x),
            Self::Spectral(l) => l.forward(x),
        }
    }

    /// The effective weight `[in, out]`.
    fn weight(&self) -> Tensor<2> {
        match self {
            Self::Plain(l) => l.weight.val(),
            Self::Spectral(l) => l.weight(),
        }
    }
}

/// `d_in → hidden… → 1`, ReLU between layers.
#[derive(Module, Debug)]
pub struct MlpCritic {
    /// The layers.
    pub layers: Vec<CriticLayer>,
    activation: Relu,
}

impl MlpCritic {
    /// Widths `d_in → hidden[0] → … → 1`; `spectral` wraps every layer in spectral normalisation.
    pub fn new(d_in: usize, hidden: &[usize], spectral: bool, device: &Device) -> Self {
        let widths: Vec<usize> =
            std::iter::once(d_in).chain(hidden.iter().copied()).chain(std::iter::once(1)).collect();
        let layers = widths
            .windows(2)
            .map(|w| {
                if spectral {
                    CriticLayer::Spectral(SpectralLinear::new(w[0], w[1], device))
                } else {
                    CriticLayer::Plain(LinearConfig::new(w[0], w[1]).init(device))
                }
            })
            .collect();
        Self { layers, activation: Relu::new() }
    }

    /// Critic values.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, d_in]` → `[b]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<1> {
        self.forward_with_input_gradient(x, false).0
    }

    /// Critic values and, when `gradient` is set, `∇_x D(x)` per row, computed by writing the
    /// backward pass of the MLP as tensor operations: `g = w_Lᵀ`, then for each hidden layer from the
    /// top `g ← (g ⊙ 1[a_l > 0]) W_lᵀ`. Every operation is differentiable in the weights, so a penalty
    /// on `‖g‖` trains the critic with first-order autodiff only — the exact gradient penalty, no double
    /// backward. (The ReLU mask is piecewise constant; its derivative is zero almost everywhere, as in
    /// PyTorch's double backward.)
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, d_in]` → (`[b]`, `[b, d_in]` if asked)
    pub fn forward_with_input_gradient(&self, x: Tensor<2>, gradient: bool) -> (Tensor<1>, Option<Tensor<2>>) {
        let last = self.layers.len() - 1;
        let mut masks = Vec::with_capacity(last);
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = layer.forward(h);
            if i < last {
                if gradient {
                    masks.push(a.clone().greater_elem(0.0).float());
                }
                h = self.activation.forward(a);
            } else {
                h = a;
            }
        }
        let value = h.squeeze_dim::<1>(1);
        if !gradient {
            return (value, None);
        }
        let b = value.dims()[0];
        let top = self.layers[last].weight(); // [h, 1]
        let width = top.dims()[0];
        let mut g = top.transpose().expand([b, width]); // [b, h]
        for (layer, mask) in self.layers[..last].iter().zip(masks).rev() {
            g = (g * mask).matmul(layer.weight().transpose());
        }
        (value, Some(g))
    }

    /// Clamp every weight and bias to `[−c, c]` (weight clipping, Arjovsky et al. 2017).
    pub fn clip(&mut self, c: f64) {
        for layer in &mut self.layers {
            if let CriticLayer::Plain(l) = layer {
                l.weight = clamp_param(l.weight.clone(), c);
                l.bias = l.bias.take().map(|b| clamp_param(b, c));
            }
        }
    }

    /// One power-iteration step in every spectrally normalised layer.
    pub fn power_iteration(&mut self) {
        for layer in &mut self.layers {
            if let CriticLayer::Spectral(l) = layer {
                l.power_iteration();
            }
        }
    }
}

/// The same parameter (same id, so the optimiser keeps its state), values clamped, still trainable.
pub(crate) fn clamp_param<const D: usize>(p: Param<Tensor<D>>, c: f64) -> Param<Tensor<D>> {
    let trainable = p.val().is_require_grad();
    let (id, value, _) = p.consume();
    Param::initialized(id, value.detach().clamp(-c, c).detach().set_require_grad(trainable))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic input gradient equals central finite differences, plain and spectral. A ReLU
    /// kink inside `x ± h` makes the difference quotient meaningless there (the one-sided quotients
    /// disagree): such coordinates are skipped, and most must be checked. The initialisation is seeded.
    #[test]
    fn input_gradient_equals_finite_differences() {
        let device = Device::flex();
        device.seed(11);
        let mut checked = 0;
        for spectral in [false, true] {
            let critic = MlpCritic::new(3, &[16, 8], spectral, &device);
            let points: Vec<f32> = vec![0.3, -0.7, 1.1, -1.5, 0.2, 0.05, 0.9, 0.9, -0.4];
            let x = Tensor::<2>::from_data(TensorData::new(points.clone(), [3, 3]), &device);
            let (_, g) = critic.forward_with_input_gradient(x, true);
            let g: Vec<f32> = g.unwrap().into_data().try_to_vec::<f32>().unwrap();
            let h = 1e-3f32;
            for row in 0..3 {
                for col in 0..3 {
                    let at = |delta: f32| {
                        let mut p = points[row * 3..row * 3 + 3].to_vec();
                        p[col] += delta;
                        let x = Tensor::<2>::from_data(TensorData::new(p, [1, 3]), &device);
                        f64::from(critic.forward(x).into_scalar::<f32>())
                    };
                    let (up, mid, down) = (at(h), at(0.0), at(-h));
                    let (forward, backward) = ((up - mid) / f64::from(h), (mid - down) / f64::from(h));
                    let analytic = f64::from(g[row * 3 + col]);
                    if (forward - backward).abs() > 2e-3 * (1.0 + analytic.abs()) {
                        continue; // a kink between x − h and x + h
                    }
                    checked += 1;
                    let numeric = (up - down) / (2.0 * f64::from(h));
                    assert!(
                        (numeric - analytic).abs() < 2e-3 * (1.0 + analytic.abs()),
                        "spectral {spectral}, row {row}, col {col}: {analytic} vs {numeric}"
                    );
                }
            }
        }
        assert!(checked >= 14, "only {checked} of 18 coordinates away from a kink");
    }

    /// Clipping bounds every parameter.
    #[test]
    fn clipping_bounds_parameters() {
        let device = Device::flex();
        let mut critic = MlpCritic::new(2, &[32], false, &device);
        critic.clip(0.01);
        for layer in &critic.layers {
            let CriticLayer::Plain(l) = layer else { unreachable!() };
            let w: Vec<f32> = l.weight.val().into_data().try_to_vec::<f32>().unwrap();
            assert!(w.iter().all(|x| x.abs() <= 0.01));
            assert!(w.iter().any(|x| x.abs() == 0.01), "the default init exceeds 0.01 somewhere");
        }
    }
}
