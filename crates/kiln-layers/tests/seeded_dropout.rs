//! The device seed fixes dropout's mask (what makes a resumed training run equal an uninterrupted one).
//!
//! Burn's flex generator is global to the process, so this runs as its own test binary, with one
//! test: unit tests running beside it in other threads would draw from the generator between the
//! seed and the mask.

use burn::prelude::*;
use kiln_layers::Dropout;

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

#[test]
fn the_device_seed_fixes_the_mask() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::ones([64, 96], &device);
    let d = Dropout::new(0.25);
    let draw = |seed| {
        device.seed(seed);
        values(d.forward(x.clone()))
    };
    let (a, again, other) = (draw(5), draw(5), draw(6));
    assert!(a.contains(&0.0) && a.iter().any(|&v| v != 0.0));
    assert_eq!(a, again, "same seed, same mask");
    let differ = a.iter().zip(&other).filter(|(p, q)| p != q).count();
    // Two independent masks with p = 0.25 differ in 2 p (1 - p) = 37.5% of 6,144 places.
    assert!((differ as f64 / a.len() as f64 - 0.375).abs() < 0.05, "{differ}");
}
