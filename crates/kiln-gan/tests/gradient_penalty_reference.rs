//! The exact gradient penalty against PyTorch's double backward: `kiln_gan::gradient_penalty` writes
//! the ReLU critic's input gradient as tensor operations so that first-order autodiff reaches the
//! weights; PyTorch differentiates `autograd.grad(..., create_graph=True)`. The fixture
//! `tests/fixtures/gradient_penalty_reference.json` (`scripts/reference/gradient_penalty.py`, float64)
//! holds a 2 → 8 → 8 → 1 critic, a batch, the penalty and its gradient in every weight and bias.

use burn::module::Param;
use burn::prelude::*;
use kiln_gan::{CriticLayer, MlpCritic, PenaltyMethod, gradient_penalty};
use kiln_kernels::testing::max_abs_diff;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        other => vec![other.as_f64().expect("a number") as f32],
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn exact_penalty_and_its_weight_gradients_match_pytorch_double_backward() {
    let r: Value = serde_json::from_str(include_str!("fixtures/gradient_penalty_reference.json")).unwrap();
    let device = Device::flex().autodiff();
    let mut critic = MlpCritic::new(2, &[8, 8], false, &device);
    for (i, layer) in critic.layers.iter_mut().enumerate() {
        let CriticLayer::Plain(linear) = layer else { unreachable!("not spectral") };
        let [d_in, d_out] = linear.weight.dims();
        let w = Tensor::<1>::from_floats(floats(&r["weights"][i]).as_slice(), &device).reshape([d_in, d_out]);
        linear.weight = Param::from_tensor(w);
        linear.bias = Some(Param::from_tensor(Tensor::<1>::from_floats(floats(&r["biases"][i]).as_slice(), &device)));
    }
    let points = |key: &str| Tensor::<1>::from_floats(floats(&r[key]).as_slice(), &device).reshape([6, 2]);
    let alpha = Tensor::<1>::from_floats(floats(&r["alpha"]).as_slice(), &device).reshape([6, 1]);
    let lambda = r["lambda"].as_f64().unwrap();
    let random = Tensor::<2>::zeros([6, 2], &device); // the exact method draws no directions
    let penalty =
        gradient_penalty(&critic, points("real"), points("fake"), alpha, random, lambda, PenaltyMethod::Exact, 0.0);
    let want = r["penalty"].as_f64().unwrap();
    let got = f64::from(penalty.clone().into_scalar::<f32>());
    assert!((got - want).abs() < 1e-5 * want, "penalty {got} vs PyTorch {want}");

    let grads = penalty.backward();
    for (i, layer) in critic.layers.iter().enumerate() {
        let CriticLayer::Plain(linear) = layer else { unreachable!() };
        let want = floats(&r["weight_gradients"][i]);
        let got = values(linear.weight.grad(&grads).expect("every weight is reached"));
        let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-5 * scale, "layer {i} weight gradient differs by {err} (scale {scale})");
        let want = floats(&r["bias_gradients"][i]);
        let got = linear.bias.as_ref().unwrap().grad(&grads).map_or_else(|| vec![0.0; want.len()], values);
        assert!(max_abs_diff(&got, &want) < 1e-6, "layer {i} bias gradient: {got:?} vs {want:?}");
    }
    // Not vacuous: the first layer's weights get gradients of order 10.
    assert!(floats(&r["weight_gradients"][0]).iter().any(|g| g.abs() > 5.0));
}
