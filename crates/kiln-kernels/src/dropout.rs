//! Dropout masks drawn on the host (flex, ndarray): the already scaled mask `{0, 1/(1 − p)}` from a
//! keyed 32-bit hash of each element's index, in blocks split over threads, keyed from one draw of
//! the device's own generator, applied with one multiplication. Burn's flex backend draws each mask
//! element from ChaCha with a per-element Bernoulli sampler and then multiplies twice (mask, then
//! scale), which was 12-15% of a transformer training step (docs/benchmarks.md). The device seed
//! (which the trainer sets per step) still fixes every mask, so runs stay reproducible and a resumed
//! run equals an uninterrupted one.

use burn::prelude::*;
use burn::tensor::Distribution;
use rayon::prelude::*;

/// The scaled mask of `n` elements with keep probability `keep`, seeded from `device`'s generator.
pub(crate) fn host_mask(n: usize, keep: f64, device: &Device) -> Vec<f32> {
    scaled_keep_mask(n, keep, draw_seed(device))
}

/// One 64-bit seed from the device's generator (so that `Device::seed` fixes it).
fn draw_seed(device: &Device) -> u64 {
    let draws = Tensor::<1>::random([4], Distribution::Uniform(0.0, 1.0), device).into_data();
    let values = draws.convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    values.iter().fold(0x6A09_E667_F3BC_C908, |s, v| wyrand(&mut (s ^ u64::from(v.to_bits()))))
}

/// wyrand (Wang Yi): one 64-bit output per call, state advanced by a constant.
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xA076_1D64_78BD_642F);
    let t = u128::from(*state) * u128::from(*state ^ 0xE703_7ED1_A0B4_28DB);
    ((t >> 64) as u64) ^ (t as u64)
}

/// `n` values, each `1 / keep` with probability `keep` and `0` otherwise, from `seed`: element `j` of
/// a block is kept when a 32-bit hash of `j` keyed by the block's key is below `keep · 2³²`. The
/// values are drawn in blocks of [`MASK_CHUNK`] over Rayon's threads, block `i` keyed by a wyrand
/// draw from `(seed, i)`, so the mask depends on the seed only, not on the number of threads. The
/// hash (an odd multiply and xors around Wellons' `lowbias32` mixer) is a bijection of `j` for fixed
/// keys and uses 32-bit integer operations only, so the loop vectorises (16 lanes with AVX-512).
pub fn scaled_keep_mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0.0f32; n];
    out.par_chunks_mut(MASK_CHUNK).enumerate().for_each(|(i, block)| {
        let key = wyrand(&mut (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        fill_mask_block(block, key, threshold, scale);
    });
    out
}

crate::avx512_dispatch! {
    /// One block of [`scaled_keep_mask`], on AVX-512 where the CPU has it.
    fn fill_mask_block(block: &mut [f32], key: u64, threshold: u32, scale: f32) => fill_mask_block_portable
}

#[inline(always)]
fn fill_mask_block_portable(block: &mut [f32], key: u64, threshold: u32, scale: f32) {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    for (j, v) in (0u32..).zip(block.iter_mut()) {
        let h = lowbias32((j ^ k0).wrapping_mul(0x9E37_79B9) ^ k1);
        *v = if h < threshold { scale } else { 0.0 };
    }
}

/// Chris Wellons' `lowbias32` integer hash (a bijection of `u32`).
#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// Mask elements per block of [`scaled_keep_mask`]. Part of the mask's definition: changing it
/// changes every seeded run.
pub const MASK_CHUNK: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_keeps_the_right_fraction_and_is_fixed_by_its_seed() {
        for keep in [0.9, 0.5, 0.1] {
            let n = 200_000;
            let m = scaled_keep_mask(n, keep, 7);
            let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            // Binomial standard deviation at n = 2e5 is at most 0.0011: 5 sigma.
            assert!((kept - keep).abs() < 0.0056, "keep {keep}: kept {kept}");
            assert!(m.iter().all(|&v| v == 0.0 || (v - (1.0 / keep) as f32).abs() < 1e-6));
            // E[mask] = 1: the scale keeps expectations.
            let mean = m.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.0056 / keep, "keep {keep}: mean {mean}");
            assert_eq!(m, scaled_keep_mask(n, keep, 7));
            assert_ne!(m, scaled_keep_mask(n, keep, 8));
        }
        // The same mask on one thread and on three (blocks drawn in any order), and the blocks are
        // different streams: block 1 does not repeat block 0.
        let n = 3 * MASK_CHUNK + 11;
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| scaled_keep_mask(n, 0.5, 9))
        };
        let one = on(1);
        assert_eq!(one, on(3));
        assert_eq!(one.len(), n);
        assert_ne!(one[..MASK_CHUNK], one[MASK_CHUNK..2 * MASK_CHUNK]);
        let tail_kept = one[3 * MASK_CHUNK..].iter().filter(|&&v| v != 0.0).count();
        assert!(tail_kept > 0 && tail_kept < 11, "{tail_kept}");
        // The run-time dispatched block loop (AVX-512 here) equals the portable one bit for bit.
        let (mut dispatched, mut portable) = (vec![0.0; 1000], vec![0.0; 1000]);
        fill_mask_block(&mut dispatched, 0xDEAD_BEEF_1234, 1 << 31, 2.0);
        fill_mask_block_portable(&mut portable, 0xDEAD_BEEF_1234, 1 << 31, 2.0);
        assert_eq!(dispatched, portable);
        // Neighbouring elements are independent: no excess agreement.
        let m = scaled_keep_mask(200_000, 0.5, 3);
        let agree = m.chunks(2).filter(|p| (p[0] == 0.0) == (p[1] == 0.0)).count() as f64 / 100_000.0;
        assert!((agree - 0.5).abs() < 0.008, "{agree}");
        let lag1 = m.windows(2).filter(|p| (p[0] == 0.0) == (p[1] == 0.0)).count() as f64 / 199_999.0;
        assert!((lag1 - 0.5).abs() < 0.006, "{lag1}");
    }
}
