//! The 2-D picture: real and generated points over the critic's landscape.

use std::path::Path;

/// Grid cells per side of the critic landscape.
const GRID: usize = 120;
/// Pixels per grid cell.
const CELL: usize = 5;

/// Scores a batch of points (the critic).
pub type Scorer<'a> = &'a dyn Fn(&[[f32; 2]]) -> kiln_task::Result<Vec<f32>>;

/// Write a PNG: the critic's value over the region holding the real points (blue low, red high,
/// ten contour levels in grey), real points black, generated points orange. `critic` scores a batch
/// of points.
///
/// # Errors
///
/// The critic fails or the file cannot be written.
pub fn write_scatter(path: &Path, real: &[[f32; 2]], fake: &[[f32; 2]], critic: Scorer) -> kiln_task::Result<()> {
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for p in real {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-3) * 1.3;
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let origin = [centre[0] - span / 2.0, centre[1] - span / 2.0];
    let grid: Vec<[f32; 2]> = (0..GRID * GRID)
        .map(|k| {
            let (row, col) = (k / GRID, k % GRID);
            [
                origin[0] + span * (col as f32 + 0.5) / GRID as f32,
                origin[1] + span * (1.0 - (row as f32 + 0.5) / GRID as f32),
            ]
        })
        .collect();
    let values = critic(&grid)?;
    let (vmin, vmax) = values.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let level = |v: f32| (((v - vmin) / (vmax - vmin).max(1e-12)) * 10.0).floor().min(9.0) as i32;
    let side = GRID * CELL;
    let mut rgb = vec![255u8; side * side * 3];
    for row in 0..GRID {
        for col in 0..GRID {
            let v = values[row * GRID + col];
            let t = (v - vmin) / (vmax - vmin).max(1e-12);
            // Blue (low) → white → red (high).
            let colour = if t < 0.5 {
                let s = t * 2.0;
                [(90.0 + 165.0 * s) as u8, (140.0 + 115.0 * s) as u8, 255]
            } else {
                let s = (t - 0.5) * 2.0;
                [255, (255.0 - 155.0 * s) as u8, (255.0 - 165.0 * s) as u8]
            };
            let edge = (col + 1 < GRID && level(values[row * GRID + col + 1]) != level(v))
                || (row + 1 < GRID && level(values[(row + 1) * GRID + col]) != level(v));
            for y in row * CELL..(row + 1) * CELL {
                for x in col * CELL..(col + 1) * CELL {
                    let on_line = edge && (x == (col + 1) * CELL - 1 || y == (row + 1) * CELL - 1);
                    let c = if on_line { [110, 110, 110] } else { colour };
                    rgb[(y * side + x) * 3..(y * side + x) * 3 + 3].copy_from_slice(&c);
                }
            }
        }
    }
    let mut dot = |p: &[f32; 2], colour: [u8; 3]| {
        let x = ((p[0] - origin[0]) / span * side as f32).round() as i64;
        let y = ((1.0 - (p[1] - origin[1]) / span) * side as f32).round() as i64;
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (px, py) = (x + dx, y + dy);
                if (0..side as i64).contains(&px) && (0..side as i64).contains(&py) {
                    let i = (py as usize * side + px as usize) * 3;
                    rgb[i..i + 3].copy_from_slice(&colour);
                }
            }
        }
    };
    real.iter().for_each(|p| dot(p, [0, 0, 0]));
    fake.iter().for_each(|p| dot(p, [255, 140, 0]));
    kiln_task::picture::write_rgb(path, side, side, &rgb)
}
