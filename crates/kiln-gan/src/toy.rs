//! Mode coverage of samples from the 2-D mixtures of [`kiln_data::toy2d`]: how many of the modes a
//! generator reaches.

/// Radius around a mode centre within which a sample counts for that mode.
pub const MODE_RADIUS: f32 = 0.25;

/// Modes covered by `samples`: a mode counts when at least `min_fraction` of the samples lie within
/// [`MODE_RADIUS`] of its centre. Also returns the fraction of samples near any mode.
pub fn mode_coverage(centres: &[[f32; 2]], samples: &[[f32; 2]], min_fraction: f64) -> (usize, f64) {
    let mut counts = vec![0usize; centres.len()];
    let mut near = 0;
    for s in samples {
        if let Some(k) = centres.iter().position(|c| (c[0] - s[0]).hypot(c[1] - s[1]) <= MODE_RADIUS) {
            counts[k] += 1;
            near += 1;
        }
    }
    let needed = min_fraction * samples.len() as f64;
    (counts.iter().filter(|&&c| c as f64 >= needed).count(), near as f64 / samples.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_data::toy2d::Toy2d;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Real samples of the mixtures cover every mode, all near a centre; a collapsed generator
    /// covers one.
    #[test]
    fn real_samples_cover_all_modes() {
        let mut rng = StdRng::seed_from_u64(0);
        for toy in [Toy2d::EightGaussians, Toy2d::TwentyFiveGaussians] {
            let (centres, _) = toy.modes().unwrap();
            let s = toy.sample(5000, &mut rng);
            let (covered, near) = mode_coverage(&centres, &s, 0.01);
            assert_eq!(covered, centres.len(), "{toy:?}");
            assert!(near > 0.999, "{toy:?}: {near}");
            let collapsed = vec![centres[3]; 100];
            assert_eq!(mode_coverage(&centres, &collapsed, 0.01).0, 1);
        }
    }
}
