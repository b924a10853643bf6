//! PNG pictures: latent codes on the sphere coloured by class (grids of digits are
//! `kiln_task::picture::write_grid`).

use std::path::Path;

/// Matplotlib's `tab10` colours, one per class 0-9.
pub const TAB10: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Points on the unit sphere `S²` in two orthographic views, the hemisphere `z ≥ 0` seen from
/// above (left disk) and `z < 0` seen from below (right disk, mirrored so that the two views meet at
/// the equator like an opened globe), each point a dot in its class's [`TAB10`] colour.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_sphere(path: &Path, points: &[[f32; 3]], classes: &[u8]) -> kiln_task::Result<()> {
    let radius = 200usize;
    let (width, height) = (4 * radius + 60, 2 * radius + 40);
    let mut rgb = vec![255u8; width * height * 3];
    let centres = [(20 + radius, 20 + radius), (40 + 3 * radius, 20 + radius)];
    // Disk outlines.
    for &(cx, cy) in &centres {
        for step in 0..4000 {
            let t = step as f64 / 4000.0 * std::f64::consts::TAU;
            let x = (cx as f64 + radius as f64 * t.cos()).round() as usize;
            let y = (cy as f64 + radius as f64 * t.sin()).round() as usize;
            rgb[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(&[0, 0, 0]);
        }
    }
    for (p, &class) in points.iter().zip(classes) {
        let (view, sx) = if p[2] >= 0.0 { (0, p[0]) } else { (1, -p[0]) };
        let (cx, cy) = centres[view];
        let x = cx as f64 + f64::from(sx) * (radius - 2) as f64;
        let y = cy as f64 - f64::from(p[1]) * (radius - 2) as f64;
        let colour = TAB10[usize::from(class) % 10];
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (px, py) = ((x.round() as i64 + dx) as usize, (y.round() as i64 + dy) as usize);
                if px < width && py < height {
                    rgb[(py * width + px) * 3..(py * width + px) * 3 + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    // Class key: a swatch per class along the bottom, in class order 0-9.
    for (k, colour) in TAB10.iter().enumerate() {
        for y in height - 14..height - 4 {
            for x in 20 + k * 24..30 + k * 24 {
                rgb[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(colour);
            }
        }
    }
    kiln_task::picture::write_rgb(path, width, height, &rgb)
}
