//! BERT-whitening (Su et al. 2021, arXiv:2103.15316; reference code bojone/BERT-whitening): map
//! sentence vectors so that their mean is zero and their covariance the identity, optionally keeping
//! only the `k` directions of largest variance.
//!
//! `μ = mean(x)`, `Σ = cov(x)` with `N − 1`, `Σ = U Λ Uᵀ` (eigenvalues descending), and
//! `y = (x − βμ) U[:, :k] Λ[:k]^(−γ/2)`. `β = γ = 1` is the original whitening `W = U Λ^(−1/2)`;
//! the generalised form (Su 2022) interpolates: `γ = 0` only rotates, `β = 0` keeps the mean.
//!
//! Statistics stream: [`CovarianceAccumulator`] merges batch moments with Chan et al.'s pairwise
//! update in `f64`, so any number of sentences can be added in any chunking and the result equals the
//! two-pass batch formula to rounding. The reference code takes an SVD of `Σ`; for a symmetric PSD
//! matrix the symmetric eigendecomposition gives the same `U` and `Λ` and is cheaper.
//!
//! Eigenvalues below `1e-12 · λ_max` (a rank-deficient `Σ`, fewer sentences than dimensions) are
//! raised to that floor so `Λ^(−1/2)` stays finite; such directions carry no information anyway.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::WhitenError;

/// Relative floor on eigenvalues (see the module docs).
const EIGEN_FLOOR: f64 = 1e-12;

/// Streaming mean and co-moment `M2 = Σ (x − μ)(x − μ)ᵀ` of `d`-dimensional vectors, in `f64`.
#[derive(Debug, Clone)]
pub struct CovarianceAccumulator {
    n: usize,
    mean: DVector<f64>,
    m2: DMatrix<f64>,
}

impl CovarianceAccumulator {
    /// An empty accumulator for vectors of length `d`.
    pub fn new(d: usize) -> Self {
        Self { n: 0, mean: DVector::zeros(d), m2: DMatrix::zeros(d, d) }
    }

    /// Vectors added so far.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Add a batch of row-major vectors `[rows, d]`.
    ///
    /// # Panics
    ///
    /// If `rows.len()` is not a multiple of `d`.
    pub fn add(&mut self, rows: &[f32]) {
        let d = self.dim();
        assert!(rows.len().is_multiple_of(d), "{} values do not make rows of {d}", rows.len());
        let nb = rows.len() / d;
        if nb == 0 {
            return;
        }
        let x = DMatrix::from_row_iterator(nb, d, rows.iter().map(|&v| f64::from(v)));
        let mean_b = x.row_mean().transpose();
        let centred = DMatrix::from_fn(nb, d, |i, j| x[(i, j)] - mean_b[j]);
        let m2_b = centred.tr_mul(&centred);
        // Chan, Golub & LeVeque (1979): merge (n, μ, M2) with (n_b, μ_b, M2_b).
        let n = self.n + nb;
        let delta = &mean_b - &self.mean;
        let w = (self.n as f64) * (nb as f64) / n as f64;
        self.m2 += m2_b + &delta * delta.transpose() * w;
        self.mean += delta * (nb as f64 / n as f64);
        self.n = n;
    }

    /// The mean.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The unbiased covariance `M2 / (N − 1)`.
    ///
    /// # Panics
    ///
    /// With fewer than two vectors.
    pub fn covariance(&self) -> DMatrix<f64> {
        assert!(self.n >= 2, "covariance needs at least two vectors, got {}", self.n);
        &self.m2 / (self.n - 1) as f64
    }
}

/// How to apply a fitted whitening: keep `k` dimensions, shift by `β μ`, scale by `Λ^(−γ/2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WhiteningParams {
    /// Output dimensions (`None`: all).
    pub k: Option<usize>,
    /// Fraction of the mean removed.
    pub beta: f64,
    /// Exponent on the eigenvalues.
    pub gamma: f64,
}

impl Default for WhiteningParams {
    fn default() -> Self {
        Self { k: None, beta: 1.0, gamma: 1.0 }
    }
}

impl WhiteningParams {
    /// Whitening to `k` dimensions with `β = γ = 1`.
    pub fn top(k: usize) -> Self {
        Self { k: Some(k), ..Self::default() }
    }
}

/// Fitted whitening statistics: mean, eigenvectors and eigenvalues (descending) of the covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    /// `μ`.
    pub mean: DVector<f64>,
    /// `U`, one eigenvector per column.
    pub eigenvectors: DMatrix<f64>,
    /// `Λ`, descending.
    pub eigenvalues: DVector<f64>,
    /// Vectors the statistics came from.
    pub count: usize,
}

impl Whitening {
    /// Eigendecompose the accumulated covariance.
    ///
    /// # Errors
    ///
    /// Fewer than two vectors.
    pub fn fit(acc: &CovarianceAccumulator) -> Result<Self, WhitenError> {
        if acc.count() < 2 {
            return Err(WhitenError::Invalid(format!("whitening needs at least 2 sentences, got {}", acc.count())));
        }
        let eig = SymmetricEigen::new(acc.covariance());
        let d = acc.dim();
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let floor = eig.eigenvalues.max().max(0.0) * EIGEN_FLOOR;
        let eigenvalues = DVector::from_iterator(d, order.iter().map(|&i| eig.eigenvalues[i].max(floor)));
        let eigenvectors = DMatrix::from_fn(d, d, |r, c| eig.eigenvectors[(r, order[c])]);
        Ok(Self { mean: acc.mean().clone(), eigenvectors, eigenvalues, count: acc.count() })
    }

    /// Input dimension `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The affine map `y = (x − βμ) K` as `(K [d, k], βμ)`.
    ///
    /// # Errors
    ///
    /// `k` is zero or larger than `d`.
    pub fn kernel(&self, p: WhiteningParams) -> Result<(DMatrix<f64>, DVector<f64>), WhitenError> {
        let d = self.dim();
        let k = p.k.unwrap_or(d);
        if k == 0 || k > d {
            return Err(WhitenError::Invalid(format!("whitening k = {k} must be in 1..={d}")));
        }
        let kernel =
            DMatrix::from_fn(d, k, |r, c| self.eigenvectors[(r, c)] * self.eigenvalues[c].powf(-p.gamma / 2.0));
        Ok((kernel, &self.mean * p.beta))
    }

    /// Apply to row-major vectors `[rows, d]`, giving `[rows, k]` (row-major, `f32`).
    ///
    /// # Errors
    ///
    /// As [`kernel`](Self::kernel), or `rows` is not a whole number of vectors.
    pub fn transform(&self, rows: &[f32], p: WhiteningParams) -> Result<Vec<f32>, WhitenError> {
        let d = self.dim();
        if !rows.len().is_multiple_of(d) {
            return Err(WhitenError::Invalid(format!("{} values do not make vectors of {d}", rows.len())));
        }
        let (kernel, shift) = self.kernel(p)?;
        let n = rows.len() / d;
        let x = DMatrix::from_fn(n, d, |i, j| f64::from(rows[i * d + j]) - shift[j]);
        let y = x * kernel; // [n, k]
        Ok((0..n).flat_map(|i| y.row(i).iter().map(|&v| v as f32).collect::<Vec<_>>()).collect())
    }

    /// Write to a safetensors file: `mean` `[d]`, `eigenvectors` `[d, d]` (row-major, one eigenvector
    /// per column), `eigenvalues` `[d]`, all `f64`; the count in the metadata.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), WhitenError> {
        let d = self.dim();
        let bytes = |v: &mut dyn Iterator<Item = f64>| v.flat_map(f64::to_le_bytes).collect::<Vec<u8>>();
        let mean = bytes(&mut self.mean.iter().copied());
        let vectors =
            bytes(&mut (0..d).flat_map(|r| (0..d).map(move |c| (r, c))).map(|(r, c)| self.eigenvectors[(r, c)]));
        let values = bytes(&mut self.eigenvalues.iter().copied());
        let tensors =
            [("mean", vec![d], &mean), ("eigenvectors", vec![d, d], &vectors), ("eigenvalues", vec![d], &values)]
                .map(|(name, shape, data)| (name, TensorView::new(Dtype::F64, shape, data).expect("sizes match")));
        let meta = HashMap::from([
            ("format".to_string(), "kiln-whitening/1".to_string()),
            ("count".to_string(), self.count.to_string()),
        ]);
        let tmp = path.with_extension("tmp");
        safetensors::serialize_to_file(tensors, Some(meta), &tmp)
            .map_err(|e| WhitenError::Format { path: path.into(), message: e.to_string() })?;
        std::fs::rename(&tmp, path).map_err(|source| WhitenError::Io { path: path.into(), error: source })
    }

    /// Read a file written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// The file is missing, not safetensors, or lacks a tensor.
    pub fn load(path: &Path) -> Result<Self, WhitenError> {
        let bad = |message: String| WhitenError::Format { path: path.into(), message };
        let bytes = std::fs::read(path).map_err(|source| WhitenError::Io { path: path.into(), error: source })?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f64>), WhitenError> {
            let t = file.tensor(name).map_err(|_| bad(format!("no tensor `{name}`: not a whitening file")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!("tensor `{name}` is {:?}, expected F64", t.dtype())));
            }
            let v = t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
            Ok((t.shape().to_vec(), v))
        };
        let (shape, mean) = get("mean")?;
        let d = shape[0];
        let (vshape, vectors) = get("eigenvectors")?;
        let (lshape, values) = get("eigenvalues")?;
        if vshape != [d, d] || lshape != [d] {
            return Err(bad(format!(
                "inconsistent shapes: mean {shape:?}, eigenvectors {vshape:?}, eigenvalues {lshape:?}"
            )));
        }
        let count = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("count"))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("metadata has no `count`".into()))?;
        Ok(Self {
            mean: DVector::from_vec(mean),
            eigenvectors: DMatrix::from_row_slice(d, d, &vectors),
            eigenvalues: DVector::from_vec(values),
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_kernels::testing::nan_max;
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    use rand_distr::StandardNormal;

    /// `n` vectors `x = μ + R diag(σ) z`, `z ~ N(0, I)`, with a random rotation `R` (returned).
    fn correlated(n: usize, sigmas: &[f64], seed: u64) -> (Vec<f32>, DMatrix<f64>) {
        let d = sigmas.len();
        let mut rng = StdRng::seed_from_u64(seed);
        let g = DMatrix::from_fn(d, d, |_, _| rng.sample::<f64, _>(StandardNormal));
        let r = g.qr().q();
        let mu: Vec<f64> = (0..d).map(|i| 3.0 + i as f64).collect();
        let mut rows = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z = DVector::from_fn(d, |i, _| sigmas[i] * rng.sample::<f64, _>(StandardNormal));
            let x = &r * z;
            rows.extend((0..d).map(|i| (mu[i] + x[i]) as f32));
        }
        (rows, r)
    }

    fn covariance_of(rows: &[f32], d: usize) -> DMatrix<f64> {
        let mut acc = CovarianceAccumulator::new(d);
        acc.add(rows);
        acc.covariance()
    }

    #[test]
    fn whitened_training_vectors_have_identity_covariance_and_zero_mean() {
        let d = 6;
        let (rows, _) = correlated(500, &[5.0, 3.0, 1.0, 0.5, 0.2, 0.05], 1);
        let mut acc = CovarianceAccumulator::new(d);
        acc.add(&rows);
        let w = Whitening::fit(&acc).unwrap();
        let y = w.transform(&rows, WhiteningParams::default()).unwrap();
        let mut out = CovarianceAccumulator::new(d);
        out.add(&y);
        let err = nan_max((out.covariance() - DMatrix::identity(d, d)).iter().map(|x| x.abs()));
        assert!(err < 1e-4, "covariance of whitened vectors is off identity by {err}"); // f32 outputs
        assert!(nan_max(out.mean().iter().map(|x| x.abs())) < 1e-4, "mean {}", out.mean());
    }

    #[test]
    fn truncation_keeps_the_top_variance_directions() {
        let sigmas = [4.0, 0.1, 2.0, 0.3, 1.0];
        let (rows, r) = correlated(4000, &sigmas, 2);
        let mut acc = CovarianceAccumulator::new(5);
        acc.add(&rows);
        let w = Whitening::fit(&acc).unwrap();
        // Eigenvalues descending, ≈ σ²: 16, 4, 1, 0.09, 0.01.
        let expect = [16.0, 4.0, 1.0, 0.09, 0.01];
        for (l, e) in w.eigenvalues.iter().zip(expect) {
            assert!((l / e - 1.0).abs() < 0.1, "eigenvalue {l} vs {e}");
        }
        // The first three eigenvectors are the rotated axes of σ = 4, 2, 1 (up to sign).
        for (col, axis) in [(0, 0), (1, 2), (2, 4)] {
            let cos = w.eigenvectors.column(col).dot(&r.column(axis)).abs();
            assert!(cos > 0.99, "eigenvector {col} vs axis {axis}: |cos| = {cos}");
        }
        // k = 2 keeps exactly the first two columns of the full whitening.
        let full = w.transform(&rows, WhiteningParams::default()).unwrap();
        let top = w.transform(&rows, WhiteningParams::top(2)).unwrap();
        for (i, pair) in top.chunks(2).enumerate() {
            assert_eq!(pair, &full[i * 5..i * 5 + 2]);
        }
        assert!(w.transform(&rows, WhiteningParams::top(6)).is_err());
    }

    #[test]
    fn streaming_statistics_equal_batch_statistics() {
        let d = 7;
        let (rows, _) = correlated(1001, &[9.0, 1.0, 3.0, 0.01, 2.0, 5.0, 0.5], 3);
        // Two-pass reference.
        let n = rows.len() / d;
        let mean: Vec<f64> =
            (0..d).map(|j| (0..n).map(|i| f64::from(rows[i * d + j])).sum::<f64>() / n as f64).collect();
        let cov = DMatrix::from_fn(d, d, |a, b| {
            (0..n).map(|i| (f64::from(rows[i * d + a]) - mean[a]) * (f64::from(rows[i * d + b]) - mean[b])).sum::<f64>()
                / (n - 1) as f64
        });
        // Streamed in uneven chunks (1, 2, 3, ... vectors).
        let mut acc = CovarianceAccumulator::new(d);
        let (mut start, mut size) = (0, 1);
        while start < n {
            let end = (start + size).min(n);
            acc.add(&rows[start * d..end * d]);
            (start, size) = (end, size + 1);
        }
        assert_eq!(acc.count(), n);
        let mean_err = nan_max(acc.mean().iter().zip(&mean).map(|(a, b)| (a - b).abs()));
        let cov_err = nan_max((acc.covariance() - &cov).iter().map(|x| x.abs())) / nan_max(cov.iter().map(|x| x.abs()));
        assert!(mean_err < 1e-12 && cov_err < 1e-12, "mean error {mean_err}, relative covariance error {cov_err}");
        assert!(nan_max((covariance_of(&rows, d) - cov).iter().map(|x| x.abs())) < 1e-10);
    }

    /// `γ = 0, β = 1`: a pure rotation of the centred vectors, so norms are kept.
    #[test]
    fn generalised_form_gamma_zero_is_a_rotation() {
        let (rows, _) = correlated(50, &[3.0, 1.0, 0.5, 0.1], 4);
        let mut acc = CovarianceAccumulator::new(4);
        acc.add(&rows);
        let w = Whitening::fit(&acc).unwrap();
        let y = w.transform(&rows, WhiteningParams { k: None, beta: 1.0, gamma: 0.0 }).unwrap();
        for (x, y) in rows.chunks(4).zip(y.chunks(4)) {
            let nx: f64 = x.iter().zip(w.mean.iter()).map(|(&a, m)| (f64::from(a) - m).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>().sqrt();
            assert!((nx - ny).abs() < 1e-4 * nx.max(1.0), "{nx} vs {ny}");
        }
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let (rows, _) = correlated(30, &[2.0, 1.0, 0.5], 5);
        let mut acc = CovarianceAccumulator::new(3);
        acc.add(&rows);
        let w = Whitening::fit(&acc).unwrap();
        let path = std::env::temp_dir().join(format!("kiln-whitening-{}.safetensors", std::process::id()));
        w.save(&path).unwrap();
        assert_eq!(Whitening::load(&path).unwrap(), w);
        std::fs::write(&path, b"not a file").unwrap();
        assert!(Whitening::load(&path).unwrap_err().to_string().contains(&path.display().to_string()));
        std::fs::remove_file(&path).unwrap();
    }
}
