//! Kiln's BERT against Hugging Face `transformers` on all-MiniLM-L6-v2: the fixture
//! `tests/fixtures/minilm_reference.json` was written by `scripts/reference/bert_reference.py`
//! (PyTorch, float32). Needs the checkpoint: `scripts/download_minilm.sh`, then `KILN_BERT_DIR`.

use std::path::PathBuf;

use burn::prelude::*;
use kiln_data::tokenizer::BertTokenizer;
use kiln_layers::AttentionConfig;
use kiln_transformer::bert::BertInput;
use kiln_transformer::bert::convert::load_pretrained;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    ids: Vec<u32>,
    last: Vec<Vec<f32>>,
    pooler: Vec<f32>,
    mean: Vec<f32>,
    first: Option<Vec<Vec<f32>>>,
}

fn checkpoint() -> PathBuf {
    PathBuf::from(std::env::var("KILN_BERT_DIR").expect("set KILN_BERT_DIR (scripts/download_minilm.sh prints it)"))
}

fn rows(t: Tensor<3>, i: usize, n: usize) -> Vec<Vec<f32>> {
    let [_, _, d] = t.dims();
    let v = t.slice(s![i..i + 1, 0..n, ..]).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    v.chunks(d).map(<[f32]>::to_vec).collect()
}

/// Largest absolute difference over rows; NaN if either side is not finite anywhere.
fn max_abs(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    kiln_kernels::testing::max_abs_diff(&a.concat(), &b.concat())
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 checkpoint: scripts/download_minilm.sh, then set KILN_BERT_DIR"]
fn minilm_matches_transformers_within_1e_5() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).expect("fixture parses");
    let dir = checkpoint();
    let device = Device::flex();
    let tokenizer = BertTokenizer::from_dir(&dir, 256).unwrap();
    let (model, _) = load_pretrained(&dir, AttentionConfig::Softmax {}, &device).unwrap();

    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let batch = tokenizer.batch(&texts).unwrap();
    let n = batch.max_len;
    let out = model.forward_input(&BertInput::from_batch(&batch, &device));
    let pooled = model.pool(out.last()).expect("MiniLM has a pooler");
    let pooled: Vec<f32> = pooled.into_data().convert::<f32>().try_to_vec().unwrap();

    let mut worst = 0.0f32;
    for (i, s) in fixture.sentences.iter().enumerate() {
        let len = batch.lengths[i];
        assert_eq!(batch.ids[i * n..i * n + len], s.ids[..], "token ids of {:?}", s.text);
        let last = rows(out.last(), i, len);
        let err = max_abs(&last, &s.last);
        worst = worst.max(err);
        assert!(err < 1e-5, "{:?}: last layer differs by {err}", s.text);
        if let Some(first) = &s.first {
            let err = max_abs(&rows(out.layers[0].clone(), i, len), first);
            assert!(err < 1e-5, "{:?}: first layer differs by {err}", s.text);
        }
        let d = s.pooler.len();
        let err = max_abs(&[pooled[i * d..(i + 1) * d].to_vec()], std::slice::from_ref(&s.pooler));
        assert!(err < 1e-5, "{:?}: pooler differs by {err}", s.text);
        let mean: Vec<f32> = (0..d).map(|j| last.iter().map(|r| r[j]).sum::<f32>() / len as f32).collect();
        let err = max_abs(&[mean], std::slice::from_ref(&s.mean));
        assert!(err < 1e-5, "{:?}: mean pooling differs by {err}", s.text);
    }
    eprintln!("largest difference from transformers over all tokens: {worst:e}");
}
