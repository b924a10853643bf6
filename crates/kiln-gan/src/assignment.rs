//! The exact Wasserstein-1 distance between two equal-size point sets: with uniform weights on `n`
//! points each, an optimal transport plan is a permutation (Birkhoff), so
//! `W1 = min_π (1/n) Σ_i ‖a_i − b_π(i)‖`, found by the Hungarian algorithm in `O(n³)` (the
//! shortest-augmenting-path form with potentials, Jonker-Volgenant style): about a second for
//! 1,000 points.

/// An optimal assignment of rows to columns of a square cost matrix (row-major, `n × n`):
/// `assignment[i]` is the column of row `i`, minimising the total cost.
///
/// # Panics
///
/// If `cost.len()` is not `n²` or a cost is not finite.
pub fn min_cost_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    assert_eq!(cost.len(), n * n, "cost must be n x n");
    assert!(cost.iter().all(|c| c.is_finite()), "costs must be finite");
    // 1-based arrays with a virtual row/column 0, as in the classic formulation.
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    let mut row_of = vec![0usize; n + 1]; // row_of[j]: the row matched to column j
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let reduced = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if reduced < min_to[j] {
                        min_to[j] = reduced;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        // Augment along the path back to the virtual column.
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0; n];
    for j in 1..=n {
        assignment[row_of[j] - 1] = j - 1;
    }
    assignment
}

/// The exact W1 distance (Euclidean ground cost) between two sets of `n` points of equal dimension.
///
/// # Panics
///
/// If the sets differ in size or are empty.
pub fn wasserstein1<const D: usize>(a: &[[f32; D]], b: &[[f32; D]]) -> f64 {
    assert!(!a.is_empty() && a.len() == b.len(), "W1 needs two non-empty sets of equal size");
    let n = a.len();
    let cost: Vec<f64> = a
        .iter()
        .flat_map(|p| b.iter().map(move |q| p.iter().zip(q).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt()))
        .collect();
    let assignment = min_cost_assignment(&cost, n);
    assignment.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum::<f64>() / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for k in 0..=p.len() {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }

    /// The Hungarian total equals brute force over all `n!` permutations, on random costs with ties
    /// and on random point sets.
    #[test]
    fn equals_brute_force() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in 1..=7 {
            for trial in 0..20 {
                let cost: Vec<f64> =
                    (0..n * n)
                        .map(|_| {
                            if trial % 3 == 0 {
                                f64::from(rng.random_range(0..4u8))
                            } else {
                                rng.random::<f64>() * 10.0
                            }
                        })
                        .collect();
                let a = min_cost_assignment(&cost, n);
                let mut seen = a.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "a permutation");
                let total = |p: &[usize]| p.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum::<f64>();
                let best = permutations(n).iter().map(|p| total(p)).fold(f64::INFINITY, f64::min);
                assert!((total(&a) - best).abs() < 1e-9, "n {n} trial {trial}: {} vs brute force {best}", total(&a));
            }
        }
    }

    /// W1 by hand: a set against itself is 0; a set against its translate by `t` is `‖t‖`
    /// (translation is optimal for W1 only up to ties, but the identity matching costs `‖t‖` each and
    /// no matching does better by the triangle inequality on the means).
    #[test]
    fn by_hand() {
        let a = [[0.0f32, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]];
        assert_eq!(wasserstein1(&a, &a), 0.0);
        let b: Vec<[f32; 2]> = a.iter().map(|p| [p[0] + 0.3, p[1] - 0.4]).collect();
        assert!((wasserstein1(&a, &b) - 0.5).abs() < 1e-6);
        // Two points swapped across: {0, 10} vs {1, 9} on a line costs (1 + 1) / 2.
        assert!((wasserstein1(&[[0.0f32], [10.0]], &[[9.0], [1.0]]) - 1.0).abs() < 1e-12);
    }
}
