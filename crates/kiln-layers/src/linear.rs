//! A linear layer, `y = x W + b`: Burn's `Linear` (same parameters, checkpoint keys `weight`
//! `[d_in, d_out]` and `bias` `[d_out]`, and the same initialisation) whose forward pass is
//! [`kiln_kernels::linear`], one product over every row of the input.

use burn::module::Param;
use burn::nn::LinearConfig;
use burn::prelude::*;

/// `x W + b` over the last dimension.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_out]`; `None` for a layer without bias.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// A fresh layer `d_in → d_out`, initialised as Burn's `LinearConfig::new(d_in, d_out)` does
    /// (Kaiming uniform with gain `1/√3`, PyTorch's default).
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        LinearConfig::new(d_in, d_out).with_bias(bias).init(device).into()
    }

    /// `d_out`.
    pub fn d_output(&self) -> usize {
        self.weight.dims()[1]
    }

    /// # Shapes
    ///
    /// - `x`: `[.., d_in]` → `[.., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kiln_kernels::linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }
}

impl From<burn::nn::Linear> for Linear {
    fn from(linear: burn::nn::Linear) -> Self {
        Self { weight: linear.weight, bias: linear.bias }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    /// Burn's layer with the same parameters: the same values forward on a rank-3 input, the same
    /// gradients, and checkpoints that load into each other.
    #[test]
    fn equals_burns_linear() {
        let device = dev().autodiff();
        let burns = LinearConfig::new(6, 4).init(&device);
        let ours = Linear::from(burns.clone());
        let (x, upstream) = (randn([2, 3, 6], 1.0, 1, &device), randn([2, 3, 4], 1.0, 2, &device));
        let (ga, gb) = assert_same_forward_backward(x, upstream, |x| ours.forward(x), |x| burns.forward(x), 1e-6);
        assert_close(&to_vec(ours.weight.grad(&ga).unwrap()), &to_vec(burns.weight.grad(&gb).unwrap()), 1e-6);
        let dir = std::env::temp_dir().join(format!("kiln-linear-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("burn.bpk");
        burns.clone().save_file(&path).unwrap();
        let loaded = Linear::new(6, 4, true, &device).load_file(&path);
        assert_eq!(to_vec(loaded.weight.val()), to_vec(burns.weight.val()));
        assert_eq!(loaded.d_output(), 4);
        std::fs::remove_dir_all(&dir).ok();
    }
}
