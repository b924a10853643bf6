//! Kiln's Performer (FAVOR+) against `performer-pytorch`'s `FastAttention` with the same projection
//! (not causal; see `scripts/reference/performer.py`, which wrote the fixture, for why causal keys
//! differ by design).

use burn::module::Param;
use burn::prelude::*;
use kiln_kernels::testing::max_abs_diff;
use kiln_layers::{AttentionOptions, Performer};
use serde_json::Value;

mod common;
use common::floats;

#[test]
fn performer_matches_performer_pytorch_with_the_same_projection() {
    let r: Value = serde_json::from_str(include_str!("fixtures/performer_reference.json")).unwrap();
    let device = Device::flex();
    let m = r["num_features"].as_u64().unwrap() as usize;
    let d = 8;
    let mut performer = Performer::new(d, m, 0, 0, 64, &device);
    let w = Tensor::<1>::from_floats(floats(&r["projection"]).as_slice(), &device).reshape([m, d]);
    performer.projection = Param::from_tensor(w).set_require_grad(false);
    for (i, case) in r["cases"].as_array().unwrap().iter().enumerate() {
        let t = |key: &str| Tensor::<1>::from_floats(floats(&case[key]).as_slice(), &device).reshape([1, 2, 10, d]);
        let got = performer.forward(t("q"), t("k"), t("v"), AttentionOptions::default());
        let got = got.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let want = floats(&case["y"]);
        let scale = want.iter().fold(1.0f32, |a, x| a.max(x.abs()));
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-5 * scale, "case {i}: differs from performer-pytorch by {err}");
    }
}
