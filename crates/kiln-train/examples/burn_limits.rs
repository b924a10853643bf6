//! Minimal reproductions of the Burn 0.22.1 `flex` costs that docs/benchmarks.md names, each timed
//! beside what it could cost:
//!
//! ```text
//! cargo run --release --example burn_limits
//! ```
//!
//! 1. Every op's output buffer is zero-filled and then copied once more (`FlexTensor::empty` makes a
//!    `Vec<u8>`, and `Bytes::from_bytes_vec` re-allocates it to 16-byte alignment because it checks
//!    the vector's declared alignment, 1, not its address): `zeros` of 64 Mi floats against a
//!    vector of the same size written once.
//! 2. `gelu` calls scalar `libm::erff` per element: against `exp` on the same tensor, which flex
//!    vectorises.
//! 3. Dropout's `Bernoulli` mask draws each element from ChaCha through a per-element sampler:
//!    against Kiln's host mask (`kiln_layers::dropout::scaled_keep_mask`).
//! 4. `Linear` on `[b, n, d]` with `n` a multiple of the row tile runs `b` batched products:
//!    forward and backward against the same layer on `[b·n, d]`.
//! 5. GEMM throughput (GFLOP/s) of flex's `matmul` at the shapes of the benchmarks' largest products:
//!    BERT's feed-forward `[1280, 384] × [384, 1536]` (64 sentences of 20 tokens) and the training
//!    step's `[2048, 256] × [256, 1024]`; `scripts/bench/gemm_torch.py` times PyTorch on the same.
//! 6. burn-autodiff has no `layer_norm` of its own, so `LayerNorm` in training runs the decomposition
//!    of `ModuleOps::layer_norm` and differentiates each op: forward+backward against Kiln's
//!    `kiln_layers::LayerNorm` (one host pass per row each way) at the ViT's and the encoder's shapes.
//! 7. Burn's `AdamW` updates each parameter with fifteen tensor ops, each a pass into a fresh buffer:
//!    one optimiser step over the encoder benchmark's linear layers (3.1 M parameters) against Kiln's
//!    `FusedAdamW` (one pass per parameter, the same result to the bit).

use std::time::Instant;

use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::gelu;

/// The linear layers of `configs/bench/encoder_softmax.toml`: four blocks of query, key, value and output
/// projections (256 → 256) and a feed-forward pair (256 → 1024 → 256).
#[derive(Module, Debug)]
struct EncoderLinears {
    layers: Vec<Linear>,
}

/// Median milliseconds of `runs` calls of `f` after one warm-up.
fn time(runs: usize, device: &Device, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            device.sync().expect("sync");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

fn main() {
    let device = Device::flex();
    let n = 64 << 20;
    let zeros = time(5, &device, || drop(Tensor::<1>::zeros([n], &device)));
    let once = time(5, &device, || {
        let mut v = vec![0f32; n];
        v.fill(1.0);
        drop(std::hint::black_box(v));
    });
    println!("1. zeros of {n} floats: flex {zeros:.1} ms; a vector written once {once:.1} ms");

    let x = Tensor::<1>::random([16 << 20], Distribution::Normal(0.0, 1.0), &device);
    let g = time(5, &device, || drop(gelu(x.clone())));
    let e = time(5, &device, || drop(x.clone().exp()));
    println!("2. 16 Mi elements: gelu {g:.1} ms, exp {e:.1} ms");

    let m = 16 << 20;
    let bern = time(5, &device, || drop(Tensor::<1>::random([m], Distribution::Bernoulli(0.9), &device)));
    let host = time(5, &device, || {
        let v = kiln_kernels::scaled_keep_mask(m, 0.9, 1);
        drop(Tensor::<1>::from_data(TensorData::new(v, [m]), &device));
    });
    println!("3. dropout mask of {m} elements: Bernoulli random {bern:.1} ms, host mask + upload {host:.1} ms");

    let ad = device.clone().autodiff();
    let linear = LinearConfig::new(256, 1024).init(&ad);
    let x3 = Tensor::<3>::random([16, 128, 256], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let batched = time(9, &ad, || {
        let y = linear.forward(x3.clone());
        drop(y.sum().backward());
    });
    let flat = time(9, &ad, || {
        let y = linear.forward(x3.clone().reshape([16 * 128, 256]));
        drop(y.sum().backward());
    });
    println!(
        "4. Linear 256→1024 forward+backward on [16, 128, 256]: as given {batched:.1} ms, as [2048, 256] {flat:.1} ms"
    );

    for [m, k, n] in [[1280, 384, 1536], [2048, 256, 1024]] {
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        let ms = time(21, &device, || drop(a.clone().matmul(b.clone())));
        let gflops = 2.0 * (m * k * n) as f64 / (ms * 1e6);
        println!("5. matmul [{m}, {k}] × [{k}, {n}]: {ms:.2} ms, {gflops:.0} GFLOP/s");
    }

    for dims in [[64, 49, 64], [16, 128, 256]] {
        let d = dims[2];
        let burns = LayerNormConfig::new(d).init(&ad);
        let ours = kiln_layers::LayerNorm::new(d, 1e-5, &ad);
        let x = Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let upstream = Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), &ad);
        let burn_ms = time(21, &ad, || drop((burns.forward(x.clone()) * upstream.clone()).sum().backward()));
        let kiln_ms = time(21, &ad, || drop((ours.forward(x.clone()) * upstream.clone()).sum().backward()));
        println!("6. LayerNorm forward+backward on {dims:?}: Burn's {burn_ms:.2} ms, Kiln's {kiln_ms:.2} ms");
    }

    let shapes = [(256, 256); 4].into_iter().chain([(256, 1024), (1024, 256)]).cycle().take(24);
    let encoder = EncoderLinears { layers: shapes.map(|(i, o)| LinearConfig::new(i, o).init(&ad)).collect() };
    // Gradients drawn once; each step registers clones of them (no copy).
    let normal = Distribution::Normal(0.0, 1e-3);
    let weight_grads: Vec<_> =
        encoder.layers.iter().map(|l| (l.weight.id, Tensor::<2>::random(l.weight.dims(), normal, &device))).collect();
    let bias_grads: Vec<_> = encoder
        .layers
        .iter()
        .map(|l| l.bias.as_ref().expect("a bias"))
        .map(|b| (b.id, Tensor::<1>::random(b.dims(), normal, &device)))
        .collect();
    let grads_of = || {
        let mut grads = GradientsParams::new();
        weight_grads.iter().for_each(|(id, g)| grads.register(*id, g.clone()));
        bias_grads.iter().for_each(|(id, g)| grads.register(*id, g.clone()));
        grads
    };
    let mut step_ms = Vec::new();
    let optimizers: [ModuleOptimizer; 2] =
        [AdamWConfig::new().init(), kiln_train::optim::FusedAdamW::new(0.9, 0.999, 1e-5, 1e-4).into()];
    for mut optimizer in optimizers {
        let mut model = Some(encoder.clone());
        step_ms.push(time(11, &ad, || {
            let m = model.take().expect("the model");
            model = Some(optimizer.step(1e-3, m, grads_of()));
        }));
    }
    println!(
        "7. AdamW step on 3.1 M parameters (24 linear layers): Burn's {:.2} ms, Kiln's fused {:.2} ms",
        step_ms[0], step_ms[1]
    );
}
