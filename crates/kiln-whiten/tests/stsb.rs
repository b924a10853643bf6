//! all-MiniLM-L6-v2 on the STS Benchmark test split: mean pooling must give Spearman 0.8203 ± 0.001,
//! the figure sentence-transformers reports (datasets README), and whitening fitted on the test split
//! the figures docs/results.md reports, ± 0.001. Needs the checkpoint
//! (`scripts/download_minilm.sh`, then `KILN_BERT_DIR`) and the data (`KILN_DATA_DIR` holding `stsb/`).

use std::path::PathBuf;

use burn::prelude::*;
use kiln_layers::AttentionConfig;
use kiln_whiten::sts::StsTask;
use kiln_whiten::{
    Column, CovarianceAccumulator, SentenceEncoder, SentencePooling, StsEvalConfig, Whitening, WhiteningParams,
    evaluate_sts,
};

fn env_dir(var: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("set {var}")))
}

#[test]
#[ignore = "needs all-MiniLM-L6-v2 (KILN_BERT_DIR, scripts/download_minilm.sh) and STS-B (KILN_DATA_DIR)"]
fn minilm_mean_pooling_reaches_the_published_stsb_spearman() {
    let device = Device::flex();
    let encoder = SentenceEncoder::load(&env_dir("KILN_BERT_DIR"), None, AttentionConfig::Softmax {}, &device).unwrap();
    let task = StsTask::locate(&env_dir("KILN_DATA_DIR").join("stsb"), None).unwrap();
    let config = StsEvalConfig {
        split: "test".into(),
        fit_splits: vec!["test".into()],
        poolings: vec![SentencePooling::LastAvg],
        ks: vec![128],
        batch_size: 64,
    };
    let table = evaluate_sts(&encoder, &task, &config).unwrap();
    eprintln!("{table}");
    assert_eq!(table.pairs, 1379);
    assert_eq!(table.columns, vec![Column::Raw, Column::Whitened, Column::Top(128)]);
    let raw = table.rows[0].1[0].unwrap();
    assert!((raw - 0.8203).abs() <= 0.001, "last-avg Spearman {raw:.4}, published 0.8203");
    // docs/results.md, "Fitted on the 2,758 test sentences only", last-avg row: whitened 0.7807,
    // k = 128 0.8106 (the table is this computation; a change of either must change the docs).
    let whitened = [(Column::Whitened, 0.7807), (Column::Top(128), 0.8106)];
    for ((column, documented), v) in whitened.iter().zip(&table.rows[0].1[1..]) {
        let v = v.unwrap();
        assert!((v - documented).abs() <= 0.001, "{column:?} Spearman {v:.4}, docs/results.md says {documented}");
    }

    // On real vectors, whitening fitted on a set gives that set identity covariance.
    let pairs = task.read("test").unwrap();
    let texts: Vec<&str> = pairs.iter().map(|p| p.a.as_str()).collect();
    let vectors = encoder.embed(&texts, &[SentencePooling::LastAvg], 64).unwrap().remove(0);
    let mut acc = CovarianceAccumulator::new(384);
    acc.add(&vectors);
    let w = Whitening::fit(&acc).unwrap();
    let mut out = CovarianceAccumulator::new(128);
    out.add(&w.transform(&vectors, WhiteningParams::top(128)).unwrap());
    let cov = out.covariance();
    let err = (0..128)
        .flat_map(|i| (0..128).map(move |j| (i, j)))
        .map(|(i, j)| (cov[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs());
    let err = kiln_kernels::testing::nan_max(err);
    assert!(err < 1e-3, "whitened covariance differs from identity by {err}");
}
