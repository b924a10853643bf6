//! NumPy `.npy` files (format version 1.0) of `float32` matrices, the interchange format for vectors:
//! `numpy.load("vectors.npy")` reads what [`write_f32`] writes.

use std::io::Write;
use std::path::Path;

use crate::WhitenError;

/// Write a row-major `[rows, cols]` `f32` matrix as `.npy` (little-endian, C order).
///
/// # Errors
///
/// The file cannot be written, or `data.len() != rows * cols`.
pub fn write_f32(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<(), WhitenError> {
    if data.len() != rows * cols {
        return Err(WhitenError::Invalid(format!("{} values do not make a {rows} x {cols} matrix", data.len())));
    }
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64
    // and ended by a newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    let io = |source| WhitenError::Io { path: path.into(), error: source };
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(&out).map_err(io)
}

/// Read a `.npy` written by [`write_f32`] (or numpy: `<f4`, C order, 2-D): `(data, rows, cols)`.
///
/// # Errors
///
/// The file is missing or not a 2-D little-endian `float32` C-order array.
pub fn read_f32(path: &Path) -> Result<(Vec<f32>, usize, usize), WhitenError> {
    let bad = |message: &str| WhitenError::Format { path: path.into(), message: message.into() };
    let bytes = std::fs::read(path).map_err(|source| WhitenError::Io { path: path.into(), error: source })?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" || bytes[6] != 1 {
        return Err(bad("not a version 1 .npy file"));
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + len).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("expected a little-endian float32 array in C order"));
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("bad shape"))?;
    let [rows, cols] = dims[..] else { return Err(bad("expected a 2-D array")) };
    let body = &bytes[10 + len..];
    if body.len() != rows * cols * 4 {
        return Err(bad("data length does not match the shape"));
    }
    Ok((body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(), rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_round_trips() {
        let path = std::env::temp_dir().join(format!("kiln-npy-{}.npy", std::process::id()));
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_f32(&path, &data, 2, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "numpy requires 64-byte alignment of the data");
        assert_eq!(bytes[10 + header_len - 1], b'\n');
        assert_eq!(read_f32(&path).unwrap(), (data, 2, 3));
        assert!(write_f32(&path, &[1.0], 2, 3).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
