//! `kiln_ner::score_columns` against conlleval itself (PyPI `conlleval` 0.2, a line-for-line port of
//! conlleval.pl) on a committed column file of 40 sentences whose gold and predicted tags include every
//! irregularity conlleval repairs (I- with no B-, type changes inside a chunk, -DOCSTART- lines).
//! Fixture: `scripts/reference/conlleval_fixture.py`. Counts must be equal, scores equal to 1e-12.

use kiln_ner::{Counts, score_columns};

#[test]
fn column_scores_equal_conlleval() {
    let dir = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures/conlleval");
    let text = std::fs::read_to_string(dir.join("input.txt")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let scores = score_columns(&text).unwrap();
    let check = |name: &str, counts: &Counts, e: &serde_json::Value| {
        let n = |k: &str| e[k].as_u64().unwrap() as usize;
        assert_eq!((counts.correct, counts.predicted, counts.gold), (n("correct"), n("pred"), n("gold")), "{name}");
        for (ours, key) in [(counts.precision(), "prec"), (counts.recall(), "rec"), (counts.f1(), "f1")] {
            let theirs = e[key].as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-12, "{name} {key}: {ours} against conlleval's {theirs}");
        }
    };
    check("overall", &scores.overall, &expected["overall"]);
    let types = expected["per_type"].as_object().unwrap();
    assert_eq!(scores.per_type.len(), types.len());
    for (name, e) in types {
        check(name, &scores.per_type[name], e);
    }
    // The fixture is not trivial: partly right, with repaired tags on both sides.
    assert!(scores.overall.correct > 0 && scores.overall.correct < scores.overall.predicted);
}
