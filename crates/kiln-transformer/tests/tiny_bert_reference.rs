//! Kiln's BERT loader and encoder against Hugging Face `transformers` on a tiny random-weight BERT
//! committed in `tests/fixtures/tiny_bert/` (2 layers, width 16, 2 heads, a pooler; written with
//! its reference outputs by `scripts/reference/tiny_bert.py`, versions in `reference.json`). Runs in
//! every `cargo test`; the full-size check on all-MiniLM-L6-v2 is `bert_reference.rs`.

use std::path::Path;

use burn::prelude::*;
use kiln_kernels::testing::{max_abs_diff, padding_from_lengths};
use kiln_layers::AttentionConfig;
use kiln_transformer::bert::convert::load_pretrained;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    ids: Vec<Vec<i64>>,
    type_ids: Vec<Vec<i64>>,
    lengths: Vec<usize>,
    /// `[sequence][token][feature]` at the real tokens.
    embeddings: Vec<Vec<Vec<f32>>>,
    /// `[layer][sequence][token][feature]`.
    layers: Vec<Vec<Vec<Vec<f32>>>>,
    pooler: Vec<Vec<f32>>,
}

/// Tolerance of every comparison: float32 on both sides, two layers.
const TOL: f32 = 1e-5;

fn int(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let (b, n) = (rows.len(), rows[0].len());
    Tensor::<2, Int>::from_data(TensorData::new(rows.concat(), [b, n]), device)
}

/// The rows of sequence `i`'s real tokens, flattened.
fn real(t: &Tensor<3>, i: usize, len: usize) -> Vec<f32> {
    t.clone().slice(s![i..i + 1, 0..len, ..]).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn tiny_bert_matches_transformers_within_1e_5() {
    let dir =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("tests/fixtures/tiny_bert");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let device = Device::flex();
    let (bert, config) = load_pretrained(&dir, AttentionConfig::Softmax {}, &device).unwrap();
    assert_eq!((config.num_hidden_layers, config.hidden_size), (2, 16));
    let n = reference.ids[0].len();
    let padding = padding_from_lengths(&reference.lengths, n, &device);
    let out = bert.forward(int(&reference.ids, &device), int(&reference.type_ids, &device), Some(&padding));
    assert_eq!(out.layers.len(), reference.layers.len());

    let mut worst = 0.0f32;
    let mut check = |got: Vec<f32>, want: &[Vec<f32>], what: String| {
        let err = max_abs_diff(&got, &want.concat());
        assert!(err < TOL, "{what}: differs from transformers by {err}");
        worst = worst.max(err);
    };
    for (i, &len) in reference.lengths.iter().enumerate() {
        check(real(&out.embeddings, i, len), &reference.embeddings[i], format!("sequence {i}, embeddings"));
        for (l, layer) in reference.layers.iter().enumerate() {
            check(real(&out.layers[l], i, len), &layer[i], format!("sequence {i}, layer {l}"));
        }
    }
    let pooled = bert.pool(out.last()).expect("the fixture has a pooler");
    let pooled = pooled.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    check(pooled, &reference.pooler, "pooler".to_string());
    // The comparison can fail: the hidden states are not all alike (a random BERT at this width
    // with wide weights), so a wrong layer would show.
    let last = real(&out.last(), 0, reference.lengths[0]);
    assert!(max_abs_diff(&last[..16], &last[16..32]) > 0.1, "tokens 0 and 1 differ");
    eprintln!("largest difference from transformers: {worst:e}");
}
