//! How large is the correction term that Kiln's learned-κ gradient leaves out? For Wood's sampler at
//! a given `d` (ambient) and κ: the acceptance rate, and for `f(w) = w` (whose mean `A_d(κ)` has the
//! exact derivative `A_d′(κ) = 1 − A_d² − (d − 1) A_d/κ`) the reparameterised term
//! `g_rep = E[∂h/∂κ]`, the correction `g_cor = E[w ∂/∂κ ln π(e | κ)]`, both with standard errors,
//! and the exact derivative. A Markdown table on stdout.
//!
//!     cargo run --release -p kiln-vae --example wood_correction [DRAWS]
//!
//! The default points are the learned concentrations of docs/results.md (5%, median and 95% of
//! κ(x) over the test images at d = 2, 5, 10, 20 degrees of freedom) and a few small κ.

use kiln_vae::vmf::{VonMisesFisher, WoodSampler};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn mean_se(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, (var / v.len() as f64).sqrt())
}

fn main() {
    let draws: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n >= 2 => n,
        Some(_) => {
            eprintln!("usage: wood_correction [DRAWS], DRAWS an integer of at least 2");
            std::process::exit(2);
        }
    };
    let points: [(usize, f64); 16] = [
        (3, 1.0),
        (3, 5.0),
        (3, 684.0),
        (3, 1717.0),
        (3, 3948.0),
        (6, 458.0),
        (6, 780.0),
        (6, 1406.0),
        (11, 5.0),
        (11, 253.0),
        (11, 552.0),
        (11, 904.0),
        (21, 20.0),
        (21, 121.0),
        (21, 339.0),
        (21, 530.0),
    ];
    println!("{draws} accepted draws per row, f(w) = w:");
    println!();
    println!("| d (ambient) | κ | acceptance | g_rep | g_cor | g_cor / A_d′ | A_d′ (exact) | g_rep + g_cor − A_d′ |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut rng = StdRng::seed_from_u64(0);
    for (d, kappa) in points {
        let vmf = VonMisesFisher::new(d, kappa);
        let sampler = WoodSampler::new(vmf);
        let (mut rep, mut cor, mut proposals) = (Vec::with_capacity(draws), Vec::with_capacity(draws), 0usize);
        for _ in 0..draws {
            let (e, tries) = sampler.sample_accepted_e_counted(&mut rng);
            proposals += tries;
            let (w, dw) = sampler.w_and_grad(e);
            rep.push(dw);
            cor.push(w * sampler.acceptance_score(&vmf, e));
        }
        let exact = vmf.mean_resultant_length_grad();
        let ((r, r_se), (c, c_se)) = (mean_se(&rep), mean_se(&cor));
        println!(
            "| {d} | {kappa} | {:.4} | {r:.4e} ± {r_se:.1e} | {c:.3e} ± {c_se:.1e} | {:.2e} | {exact:.4e} | {:.1e} |",
            draws as f64 / proposals as f64,
            c / exact,
            r + c - exact
        );
    }
}
