//! PNG pictures that tasks write: grids of grey images, and RGB canvases.

use std::path::Path;

use crate::{Context, Result};

/// Write images (`side × side`, values in `[0, 1]`) as a grid of `cols` columns with a 2-pixel
/// border, 8-bit greyscale PNG.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_grid(path: &Path, images: &[Vec<f32>], side: usize, cols: usize) -> Result<()> {
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

/// Write an 8-bit RGB image (`width · height · 3` bytes, row-major).
///
/// # Errors
///
/// The file cannot be written.
pub fn write_rgb(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    write_png(path, width, height, png::ColorType::Rgb, rgb)
}

fn write_png(path: &Path, width: usize, height: usize, colour: png::ColorType, data: &[u8]) -> Result<()> {
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
        let dir = std::env::temp_dir().join(format!("kiln-task-grid-{}", std::process::id()));
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
