//! Kiln's rotary position embeddings (1-D and 2-D) against `rotary-embedding-torch`, whose
//! interleaved layout is the RoFormer convention Kiln follows: the fixture
//! `tests/fixtures/rope_reference.json` was written by `scripts/reference/rope.py` (versions inside).

use burn::prelude::*;
use kiln_kernels::testing::max_abs_diff;
use kiln_layers::position::Rotary;
use serde_json::Value;

mod common;
use common::floats;

#[test]
fn rotary_matches_rotary_embedding_torch() {
    let reference: Value = serde_json::from_str(include_str!("fixtures/rope_reference.json")).unwrap();
    let device = Device::flex();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let shape: Vec<usize> =
            case["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let [b, h, n, d] = [shape[0], shape[1], shape[2], shape[3]];
        let base = case["base"].as_f64().unwrap();
        let rotary = match case["kind"].as_str().unwrap() {
            "1d" => Rotary::one_d((0..n).map(|p| p as f64).collect(), base, &device),
            "2d" => {
                let cols = case["grid"][1].as_u64().unwrap() as usize;
                let rows = (0..n).map(|t| (t / cols) as f64).collect();
                Rotary::two_d(rows, (0..n).map(|t| (t % cols) as f64).collect(), base, &device)
            }
            other => panic!("unknown case {other}"),
        };
        let x = Tensor::<1>::from_floats(floats(&case["x"]).as_slice(), &device).reshape([b, h, n, d]);
        let got = rotary.apply(x.clone()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let want = floats(&case["y"]);
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-6, "{} base {base}: differs by {err}", case["kind"]);
        // Not the identity: position 0 is unrotated, the others are not.
        let x = x.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert!(max_abs_diff(&want, &x) > 0.1, "{}: the reference rotates", case["kind"]);
    }
}
