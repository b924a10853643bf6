//! Kiln's Nyström attention against `nystrom-attention`'s `NystromAttention` on the same queries,
//! keys, values and convolution kernel (one sequence, one head, 16 tokens, 4 landmarks, 6
//! pseudo-inverse iterations; `scripts/reference/nystrom.py` wrote the fixture and says why one head).

use burn::module::Param;
use burn::prelude::*;
use kiln_kernels::testing::max_abs_diff;
use kiln_layers::{AttentionOptions, Nystrom};
use serde_json::Value;

mod common;
use common::floats;

#[test]
fn nystrom_matches_nystrom_attention() {
    let r: Value = serde_json::from_str(include_str!("fixtures/nystrom_reference.json")).unwrap();
    let device = Device::flex();
    let shape: Vec<usize> = r["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let [b, h, n, d] = [shape[0], shape[1], shape[2], shape[3]];
    let kernel = r["conv_kernel"].as_u64().unwrap() as usize;
    let mut nystrom = Nystrom::new(h, r["num_landmarks"].as_u64().unwrap() as usize, kernel, 6, &device);
    let conv = Tensor::<1>::from_floats(floats(&r["conv"]).as_slice(), &device).reshape([h, 1, kernel, 1]);
    nystrom.conv = Some(Param::from_tensor(conv));
    let t = |key: &str| Tensor::<1>::from_floats(floats(&r[key]).as_slice(), &device).reshape([b, h, n, d]);
    let got = nystrom.forward(t("q"), t("k"), t("v"), AttentionOptions::default());
    let got = got.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let want = floats(&r["y"]);
    let err = max_abs_diff(&got, &want);
    assert!(err < 1e-5, "differs from nystrom-attention by {err}");
    // Without the convolution residual the output changes: the kernel is compared too.
    nystrom.conv = None;
    let plain = nystrom.forward(t("q"), t("k"), t("v"), AttentionOptions::default());
    assert!(max_abs_diff(&plain.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(), &want) > 1e-2);
}
