//! Linear-chain conditional random field over tags (Lafferty et al. 2001; as a sequence-labelling head,
//! Lample et al. 2016, arXiv:1603.01360): the baseline GlobalPointer is measured against.
//!
//! A tag path `y` of a sequence with emissions `e [n, k]` scores
//! `S(y) = start[y_0] + Σ_t e[t, y_t] + Σ_{t≥1} T[y_{t−1}, y_t] + end[y_{n−1}]`; the loss is the negative
//! log-likelihood `log Z − S(gold)`, `log Z = logsumexp_y S(y)` computed by the forward algorithm in
//! log space, and decoding is Viterbi's argmax. Padded positions (after each sequence's length) are
//! skipped: the forward variables are carried through them unchanged.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::loss::log_sum_exp;

/// CRF transition parameters for `n_tags` tags.
#[derive(Module, Debug)]
pub struct Crf {
    /// `T[from, to]`, `[k, k]`.
    pub transitions: Param<Tensor<2>>,
    /// Score of starting in each tag, `[k]`.
    pub start: Param<Tensor<1>>,
    /// Score of ending in each tag, `[k]`.
    pub end: Param<Tensor<1>>,
}

impl Crf {
    /// Small random initial scores (uniform in ±0.1, as PyTorch's `pytorch-crf`).
    pub fn new(n_tags: usize, device: &Device) -> Self {
        let u = Distribution::Uniform(-0.1, 0.1);
        Self {
            transitions: Param::from_tensor(Tensor::random([n_tags, n_tags], u, device)),
            start: Param::from_tensor(Tensor::random([n_tags], u, device)),
            end: Param::from_tensor(Tensor::random([n_tags], u, device)),
        }
    }

    /// Number of tags.
    pub fn n_tags(&self) -> usize {
        self.start.dims()[0]
    }

    /// `log Z` per sequence by the forward algorithm.
    ///
    /// # Shapes
    ///
    /// - `emissions`: `[b, n, k]`, `padding`: `[b, n]` (`true` = pad; every sequence has at least one
    ///   real token, padding only at the end) → `[b]`
    pub fn log_partition(&self, emissions: Tensor<3>, padding: &Tensor<2, Bool>) -> Tensor<1> {
        let [b, n, k] = emissions.dims();
        let trans = self.transitions.val().reshape([1, k, k]);
        let mut alpha = self.start.val().reshape([1, k]) + emissions.clone().slice(s![.., 0..1, ..]).reshape([b, k]);
        for t in 1..n {
            let e = emissions.clone().slice(s![.., t..t + 1, ..]).reshape([b, k]);
            // next[b, j] = logsumexp_i(alpha[b, i] + T[i, j]) + e[b, j]
            let next = log_sum_exp(alpha.clone().reshape([b, k, 1]) + trans.clone(), 1).reshape([b, k]) + e;
            let pad = padding.clone().slice(s![.., t..t + 1]).expand([b, k]); // [b, k]
            alpha = next.mask_where(pad, alpha);
        }
        log_sum_exp(alpha + self.end.val().reshape([1, k]), 1).reshape([b])
    }

    /// Score `S(y)` of given tag paths.
    ///
    /// # Shapes
    ///
    /// - `emissions`: `[b, n, k]`, `tags`: `[b, n]` (any value at padding), `lengths`: `b` values ≥ 1 → `[b]`
    pub fn path_score(&self, emissions: Tensor<3>, tags: Tensor<2, Int>, lengths: &[usize]) -> Tensor<1> {
        let [b, n, k] = emissions.dims();
        let device = emissions.device();
        let keep = kiln_layers::mask::padding_from_lengths(lengths, n, &device).bool_not().float(); // [b, n]
        let tags = tags.mask_fill(keep.clone().equal_elem(0.0), 0); // padding → tag 0, weighted out below
        let emit = emissions.gather(2, tags.clone().reshape([b, n, 1])).reshape([b, n]);
        let mut score = (emit * keep.clone()).sum_dim(1).reshape([b]);
        score = score + self.start.val().select(0, tags.clone().slice(s![.., 0..1]).reshape([b]));
        if n > 1 {
            let prev = tags.clone().slice(s![.., 0..n - 1]);
            let next = tags.clone().slice(s![.., 1..n]);
            let flat = (prev * k as i64 + next).reshape([b * (n - 1)]);
            let trans = self.transitions.val().reshape([k * k]).select(0, flat).reshape([b, n - 1]);
            score = score + (trans * keep.slice(s![.., 1..n])).sum_dim(1).reshape([b]);
        }
        let last: Vec<i64> = lengths.iter().map(|&l| l as i64 - 1).collect();
        let last = Tensor::<1, Int>::from_ints(last.as_slice(), &device).reshape([b, 1]);
        let last_tags = tags.gather(1, last).reshape([b]);
        score + self.end.val().select(0, last_tags)
    }

    /// Mean negative log-likelihood of the gold paths.
    ///
    /// # Shapes
    ///
    /// - as [`path_score`](Self::path_score) → `[1]`
    pub fn loss(&self, emissions: Tensor<3>, tags: Tensor<2, Int>, lengths: &[usize]) -> Tensor<1> {
        let n = emissions.dims()[1];
        let padding = kiln_layers::mask::padding_from_lengths(lengths, n, &emissions.device());
        (self.log_partition(emissions.clone(), &padding) - self.path_score(emissions, tags, lengths)).mean()
    }

    /// Viterbi decoding: the best tag path of each sequence (length `lengths[i]`).
    ///
    /// # Shapes
    ///
    /// - `emissions`: `[b, n, k]` → `b` paths
    pub fn viterbi(&self, emissions: Tensor<3>, lengths: &[usize]) -> Vec<Vec<usize>> {
        let [b, n, k] = emissions.dims();
        let host = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
        let e = host(emissions.reshape([b * n * k]));
        let trans = host(self.transitions.val().reshape([k * k]));
        let (start, end) = (host(self.start.val()), host(self.end.val()));
        (0..b)
            .map(|i| {
                let len = lengths[i];
                let em = |t: usize, j: usize| e[(i * n + t) * k + j];
                let mut best: Vec<f32> = (0..k).map(|j| start[j] + em(0, j)).collect();
                let mut back = vec![vec![0usize; k]; len];
                for (t, pointers) in back.iter_mut().enumerate().skip(1) {
                    let mut next = vec![0.0; k];
                    for j in 0..k {
                        let (arg, val) = (0..k)
                            .map(|p| (p, best[p] + trans[p * k + j]))
                            .fold((0, f32::NEG_INFINITY), |a, c| if c.1 > a.1 { c } else { a });
                        pointers[j] = arg;
                        next[j] = val + em(t, j);
                    }
                    best = next;
                }
                let mut tag = (0..k).fold(0, |a, j| if best[j] + end[j] > best[a] + end[a] { j } else { a });
                let mut path = vec![tag; len];
                for t in (1..len).rev() {
                    tag = back[t][tag];
                    path[t - 1] = tag;
                }
                path
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(t: Tensor<1>) -> Vec<f64> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
    }

    /// Every tag path of length `len` over `k` tags.
    fn paths(len: usize, k: usize) -> Vec<Vec<usize>> {
        (0..k.pow(len as u32)).map(|mut c| (0..len).map(|_| (c % k, c /= k).0).collect()).collect()
    }

    struct Host {
        e: Vec<f32>,
        trans: Vec<f32>,
        start: Vec<f32>,
        end: Vec<f32>,
        n: usize,
        k: usize,
    }

    impl Host {
        fn of(crf: &Crf, emissions: &Tensor<3>) -> Self {
            let [b, n, k] = emissions.dims();
            let h = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            Self {
                e: h(emissions.clone().reshape([b * n * k])),
                trans: h(crf.transitions.val().reshape([k * k])),
                start: h(crf.start.val()),
                end: h(crf.end.val()),
                n,
                k,
            }
        }

        fn score(&self, i: usize, y: &[usize]) -> f64 {
            let (n, k) = (self.n, self.k);
            let mut s = f64::from(self.start[y[0]] + self.end[y[y.len() - 1]]);
            for (t, &tag) in y.iter().enumerate() {
                s += f64::from(self.e[(i * n + t) * k + tag]);
                if t > 0 {
                    s += f64::from(self.trans[y[t - 1] * k + tag]);
                }
            }
            s
        }
    }

    fn setup(seed: u64) -> (Crf, Tensor<3>, Vec<usize>, Device) {
        let device = Device::flex();
        device.seed(seed);
        let crf = Crf::new(3, &device);
        // Larger transitions than the initial ±0.1, so the structure matters.
        let crf = Crf {
            transitions: Param::from_tensor(crf.transitions.val() * 20.0),
            start: Param::from_tensor(crf.start.val() * 20.0),
            end: Param::from_tensor(crf.end.val() * 20.0),
        };
        let emissions = Tensor::<3>::random([3, 4, 3], Distribution::Normal(0.0, 1.5), &device);
        (crf, emissions, vec![4, 2, 1], device)
    }

    #[test]
    fn forward_algorithm_equals_brute_force_enumeration() {
        for seed in 0..3 {
            let (crf, emissions, lengths, device) = setup(seed);
            let padding = kiln_layers::mask::padding_from_lengths(&lengths, 4, &device);
            let got = vals(crf.log_partition(emissions.clone(), &padding));
            let host = Host::of(&crf, &emissions);
            for (i, &len) in lengths.iter().enumerate() {
                let scores: Vec<f64> = paths(len, 3).iter().map(|y| host.score(i, y)).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let want = max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln();
                assert!((got[i] - want).abs() < 1e-4, "seed {seed}, sequence {i}: log Z {} vs {want}", got[i]);
            }
        }
    }

    #[test]
    fn path_score_and_loss_equal_the_formula() {
        let (crf, emissions, lengths, device) = setup(5);
        let tags =
            Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 2, 1, 1, 2, 0, 9, 9, 1, 9, 9, 9], [3, 4]), &device);
        let got = vals(crf.path_score(emissions.clone(), tags.clone(), &lengths));
        let host = Host::of(&crf, &emissions);
        let gold = [vec![0, 2, 1, 1], vec![2, 0], vec![1]];
        for i in 0..3 {
            assert!((got[i] - host.score(i, &gold[i])).abs() < 1e-4, "sequence {i}");
        }
        let loss = vals(crf.loss(emissions.clone(), tags, &lengths))[0];
        let padding = kiln_layers::mask::padding_from_lengths(&lengths, 4, &device);
        let z = vals(crf.log_partition(emissions, &padding));
        let want = (0..3).map(|i| z[i] - host.score(i, &gold[i])).sum::<f64>() / 3.0;
        assert!((loss - want).abs() < 1e-4 && loss > 0.0, "{loss} vs {want}");
    }

    #[test]
    fn viterbi_equals_brute_force_argmax() {
        for seed in 0..4 {
            let (crf, emissions, lengths, _) = setup(seed);
            let got = crf.viterbi(emissions.clone(), &lengths);
            let host = Host::of(&crf, &emissions);
            for (i, &len) in lengths.iter().enumerate() {
                let best =
                    paths(len, 3).into_iter().max_by(|a, b| host.score(i, a).total_cmp(&host.score(i, b))).unwrap();
                assert_eq!(got[i], best, "seed {seed}, sequence {i}");
            }
        }
    }

    #[test]
    fn gradient_of_log_partition_is_the_tag_marginals() {
        // d log Z / d e[t, j] = P(y_t = j): rows sum to 1 at real positions and are 0 at padding.
        let device = Device::flex().autodiff();
        let crf = Crf::new(3, &device);
        let e = Tensor::<3>::random([2, 3, 3], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let padding = kiln_layers::mask::padding_from_lengths(&[3, 2], 3, &device);
        let grads = crf.log_partition(e.clone(), &padding).sum().backward();
        let g = e.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        for (row, want) in [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 0.0)] {
            let s: f32 = g[row * 3..row * 3 + 3].iter().sum();
            assert!((s - want).abs() < 1e-5, "position {row}: marginals sum to {s}");
            assert!(g[row * 3..row * 3 + 3].iter().all(|&p| p >= -1e-6));
        }
    }
}
