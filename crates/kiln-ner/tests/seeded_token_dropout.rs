//! The device seed fixes which characters token dropout replaces by `[UNK]` (what makes a resumed
//! NER run equal an uninterrupted one).
//!
//! Burn's flex generator is global to the process, so this runs as its own test binary, with one
//! test: unit tests running beside it in other threads would draw from the generator between the
//! seed and the draw.

use burn::prelude::*;
use kiln_layers::mask::padding_from_lengths;
use kiln_ner::{UNK_ID, drop_tokens};

#[test]
fn the_device_seed_fixes_the_replaced_characters() {
    let device = Device::flex().autodiff();
    let (b, n) = (32, 80);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![7i64; b * n], [b, n]), &device);
    let padding = padding_from_lengths(&vec![n; b], n, &device);
    let draw = |seed| {
        device.seed(seed);
        let t = drop_tokens(ids.clone(), &padding, 0.2, UNK_ID);
        t.into_data().convert::<i64>().try_to_vec::<i64>().expect("i64 data")
    };
    let (a, again, other) = (draw(3), draw(3), draw(4));
    assert!(a.contains(&UNK_ID) && a.contains(&7));
    assert_eq!(a, again, "same seed, same draw");
    let differ = a.iter().zip(&other).filter(|(p, q)| p != q).count();
    // Two independent draws with p = 0.2 differ in 2 p (1 - p) = 32% of 2,560 places.
    assert!((differ as f64 / a.len() as f64 - 0.32).abs() < 0.05, "{differ}");
}
