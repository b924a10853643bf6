//! What the concentration learns: per-image `κ(x)`, KL and reconstruction over the test split, as a
//! CSV, a one-line summary and histograms beside the fixed-κ model's constants, and the ELBO as
//! the learned `κ(x)` is scaled. `kiln sample` writes them for a vMF latent (`pictures/kappa.csv`,
//! and for a learned κ `pictures/kappa.png` and `pictures/kappa_scale.csv`).

use std::fmt::Write as _;
use std::path::Path;

use kiln_task::chart::{Histogram, write_histograms};
use kiln_task::{Context, Result};

use crate::vmf::VonMisesFisher;

/// One test image's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageFigures {
    /// Its digit class.
    pub label: u8,
    /// `κ(x)` (the fixed κ for a fixed-κ model).
    pub kappa: f64,
    /// `KL(q(z|x) ‖ p(z))` in nats.
    pub kl: f64,
    /// `−ln p(x|z)`, one sample `z ~ q(z|x)`, in nats.
    pub reconstruction: f64,
}

/// The mean test figures with every learned `κ(x)` multiplied by `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KappaScale {
    /// The factor on `κ(x)`.
    pub factor: f64,
    /// Mean `−ln p(x|z)`, one sample, in nats.
    pub reconstruction: f64,
    /// Mean `KL(q(z|x) ‖ p(z))` in nats.
    pub kl: f64,
}

impl KappaScale {
    /// `−(reconstruction + KL)`.
    pub fn elbo(&self) -> f64 {
        -(self.reconstruction + self.kl)
    }
}

/// `factor,elbo,reconstruction,kl`, one line per factor.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_scale_csv(path: &Path, rows: &[KappaScale]) -> Result<()> {
    let mut out = String::from("factor,elbo,reconstruction,kl\n");
    for r in rows {
        let _ = writeln!(out, "{},{},{},{}", r.factor, r.elbo(), r.reconstruction, r.kl);
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// The ELBO at the learned `κ(x)` (factor 1) and at the best factor, with the reconstruction and KL
/// of both.
pub fn scale_summary(rows: &[KappaScale]) -> String {
    let at_one = rows.iter().find(|r| r.factor == 1.0);
    let best = rows.iter().filter(|r| r.elbo().is_finite()).max_by(|a, b| a.elbo().total_cmp(&b.elbo()));
    match (at_one, best) {
        (Some(one), Some(best)) => format!(
            "kappa(x) scaled: ELBO {:.3} at the learned kappa (reconstruction {:.3}, KL {:.3}); best factor {} \
             with ELBO {:.3} ({:+.3}; reconstruction {:.3}, KL {:.3})",
            one.elbo(),
            one.reconstruction,
            one.kl,
            best.factor,
            best.elbo(),
            best.elbo() - one.elbo(),
            best.reconstruction,
            best.kl
        ),
        _ => "kappa(x) scaled: no finite ELBO at factor 1".into(),
    }
}

/// The `q`-quantile of sorted values (linear interpolation between order statistics).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

fn sorted(rows: &[ImageFigures], field: impl Fn(&ImageFigures) -> f64) -> Vec<f64> {
    let mut v: Vec<f64> = rows.iter().map(field).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// `index,label,kappa,kl,reconstruction`, one line per image.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_csv(path: &Path, rows: &[ImageFigures]) -> Result<()> {
    let mut out = String::from("index,label,kappa,kl,reconstruction\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(out, "{i},{},{},{},{}", r.label, r.kappa, r.kl, r.reconstruction);
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// `κ(x)`'s median and 5–95% range, the KL's mean and range, the mean reconstruction, and the
/// median κ per digit class.
pub fn summary(rows: &[ImageFigures]) -> String {
    let kappa = sorted(rows, |r| r.kappa);
    let kl = sorted(rows, |r| r.kl);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let recon: Vec<f64> = rows.iter().map(|r| r.reconstruction).collect();
    let per_class: Vec<String> = (0..10u8)
        .filter_map(|c| {
            let k: Vec<ImageFigures> = rows.iter().filter(|r| r.label == c).copied().collect();
            (!k.is_empty()).then(|| format!("{c}: {:.1}", quantile(&sorted(&k, |r| r.kappa), 0.5)))
        })
        .collect();
    format!(
        "kappa(x) over {} test images: median {:.2} (5%: {:.2}, 95%: {:.2}); KL per image: mean {:.3} \
         (5%: {:.3}, 95%: {:.3}); reconstruction: mean {:.3}; median kappa per digit: {}",
        rows.len(),
        quantile(&kappa, 0.5),
        quantile(&kappa, 0.05),
        quantile(&kappa, 0.95),
        mean(&kl),
        quantile(&kl, 0.05),
        quantile(&kl, 0.95),
        mean(&recon),
        per_class.join(", ")
    )
}

/// Two histograms: `κ(x)` (log axis) with the line of the fixed `reference_kappa`, and the KL per
/// image with the line of that fixed κ's KL on `S^(d−1)`.
///
/// # Errors
///
/// No images, or the file cannot be written.
pub fn write_kappa_histograms(path: &Path, rows: &[ImageFigures], d: usize, reference_kappa: f64) -> Result<()> {
    let kappa: Vec<f64> = rows.iter().map(|r| r.kappa).collect();
    let kl: Vec<f64> = rows.iter().map(|r| r.kl).collect();
    let reference_kl = VonMisesFisher::new(d, reference_kappa).kl_to_uniform();
    let panels = [
        Histogram {
            title: format!("learned kappa(x), {} test images, S^{}", rows.len(), d - 1),
            x_desc: "kappa (log scale)".into(),
            values: &kappa,
            bins: 40,
            log_x: true,
            marker: Some((reference_kappa, format!("fixed kappa = {reference_kappa}"))),
        },
        Histogram {
            title: "KL(q(z|x) || uniform) per image".into(),
            x_desc: "nats".into(),
            values: &kl,
            bins: 40,
            log_x: false,
            marker: Some((reference_kl, format!("fixed kappa = {reference_kappa}: {reference_kl:.2} nats"))),
        },
    ];
    write_histograms(path, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ImageFigures> {
        (0..20)
            .map(|i| ImageFigures {
                label: (i % 2) as u8,
                kappa: f64::from(i + 1),
                kl: f64::from(i) * 0.5,
                reconstruction: 100.0 + f64::from(i),
            })
            .collect()
    }

    /// Quantiles interpolate between order statistics (numpy's default `linear` method).
    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 8.0);
        assert!((quantile(&v, 0.5) - 3.0).abs() < 1e-12);
        assert!((quantile(&v, 0.9) - 6.8).abs() < 1e-12);
        assert!(quantile(&[], 0.5).is_nan());
    }

    /// The summary states the figures of the rows (median κ 10.5 over 1..20, KL mean 4.75, class
    /// medians 10 and 11), and the CSV holds one line per image.
    #[test]
    fn summary_and_csv_hold_the_rows() {
        let s = summary(&rows());
        assert!(s.contains("over 20 test images: median 10.50"), "{s}");
        assert!(s.contains("KL per image: mean 4.750"), "{s}");
        assert!(s.contains("reconstruction: mean 109.500"), "{s}");
        assert!(s.contains("0: 10.0, 1: 11.0"), "{s}");
        let dir = std::env::temp_dir().join(format!("kiln-vae-kappa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_csv(&dir.join("k.csv"), &rows()).unwrap();
        let text = std::fs::read_to_string(dir.join("k.csv")).unwrap();
        assert_eq!(text.lines().count(), 21);
        assert_eq!(text.lines().nth(2).unwrap(), "1,1,2,0.5,101");
        write_kappa_histograms(&dir.join("k.png"), &rows(), 5, 20.0).unwrap();
        assert!(std::fs::metadata(dir.join("k.png")).unwrap().len() > 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The scan's summary names the ELBO at factor 1 and the best finite one; its CSV holds the
    /// ELBO as `−(reconstruction + KL)`.
    #[test]
    fn scale_summary_finds_the_best_factor() {
        let row = |factor, reconstruction, kl| KappaScale { factor, reconstruction, kl };
        let rows = [row(0.5, 100.0, 5.0), row(1.0, 98.0, 9.0), row(2.0, 97.0, 12.0), row(4.0, f64::NAN, 14.0)];
        let s = scale_summary(&rows);
        assert!(s.contains("ELBO -107.000 at the learned kappa (reconstruction 98.000, KL 9.000)"), "{s}");
        assert!(s.contains("best factor 0.5 with ELBO -105.000 (+2.000; reconstruction 100.000, KL 5.000)"), "{s}");
        assert_eq!(scale_summary(&rows[2..]), "kappa(x) scaled: no finite ELBO at factor 1");
        let dir = std::env::temp_dir().join(format!("kiln-vae-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_scale_csv(&dir.join("s.csv"), &rows).unwrap();
        let text = std::fs::read_to_string(dir.join("s.csv")).unwrap();
        assert_eq!(text.lines().next().unwrap(), "factor,elbo,reconstruction,kl");
        assert_eq!(text.lines().nth(2).unwrap(), "1,-107,98,9");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
