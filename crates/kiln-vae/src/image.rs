//! PNG pictures: grids of grey images, and latent codes on the sphere coloured by class.

use std::path::Path;

use anyhow::Context;

/// Write images (`side × side`, values in `[0, 1]`) as a grid of `cols` columns with a 2-pixel
/// border, 8-bit greyscale PNG.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_grid(path: &Path, images: &[Vec<f32>], side: usize, cols: usize) -> anyhow::Result<()> {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (pad, cell) = (2, side + 2);
    let (width, height) = (cols * cell + pad, rows * cell + pad);
    let mut pixels = vec![64u8; width * height];
    for (k, image) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        for y in 0..side {
            for x in 0..side {
                let v = image[y * side + x].clamp(0.0, 1.0);
                pixels[(pad + r * cell + y) * width + pad + c * cell + x] = (v * 255.0).round() as u8;
            }
        }
    }
    write_png(path, width, height, png::ColorType::Grayscale, &pixels)
}

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
pub fn write_sphere(path: &Path, points: &[[f32; 3]], classes: &[u8]) -> anyhow::Result<()> {
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
    write_png(path, width, height, png::ColorType::Rgb, &rgb)
}

fn write_png(path: &Path, width: usize, height: usize, colour: png::ColorType, data: &[u8]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().with_context(|| format!("writing {}", path.display()))?;
    writer.write_image_data(data).with_context(|| format!("writing {}", path.display()))?;
    writer.finish().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid round-trips through the PNG decoder pixel for pixel.
    #[test]
    fn grid_pixels_land_in_their_cells() {
        let dir = std::env::temp_dir().join(format!("kiln-vae-grid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.png");
        let images = vec![vec![1.0; 4], vec![0.0, 0.5, 1.0, 0.25], vec![0.0; 4]];
        write_grid(&path, &images, 2, 2).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2 * 4 + 2, 2 * 4 + 2));
        let at = |x: usize, y: usize| buf[y * info.width as usize + x];
        assert_eq!(at(2, 2), 255, "image 0 top-left");
        assert_eq!((at(6, 2), at(7, 2), at(6, 3), at(7, 3)), (0, 128, 255, 64), "image 1");
        assert_eq!(at(2, 6), 0, "image 2 in row 2");
        assert_eq!(at(0, 0), 64, "border");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
