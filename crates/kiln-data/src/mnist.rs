//! MNIST (LeCun et al. 1998) from the IDX files of `yann.lecun.com`, gzipped (`.gz`) or not.
//!
//! IDX: a big-endian header — magic `0x00000803` for images (`u32` count, rows, cols) or
//! `0x00000801` for labels (`u32` count) — then one unsigned byte per pixel or label.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;

/// `[data] kind = "mnist"`: the IDX files in `dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnistDataConfig {
    /// Folder with `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
    pub dir: PathBuf,
    /// The last `n_valid` training images are the validation split.
    #[serde(default = "default_n_valid")]
    pub n_valid: usize,
    /// Use only the first `train_limit` training images (quick runs).
    #[serde(default)]
    pub train_limit: Option<usize>,
}

fn default_n_valid() -> usize {
    5000
}

impl MnistDataConfig {
    /// Read the official training and test files from `dir`; their images must have one size.
    ///
    /// # Errors
    ///
    /// Unreadable or malformed files, or test images of another size than the training images.
    pub fn read_train_and_test(&self) -> Result<(Mnist, Mnist), DataError> {
        let train = Mnist::read_split(&self.dir, "train")?;
        let test = Mnist::read_split(&self.dir, "t10k")?;
        if (test.rows, test.cols) != (train.rows, train.cols) {
            return Err(DataError::format(
                find(&self.dir, "t10k-images-idx3-ubyte")?,
                "header",
                format!(
                    "{}x{} images, but the training images are {}x{}",
                    test.rows, test.cols, train.rows, train.cols
                ),
            ));
        }
        Ok((train, test))
    }

    /// Training and validation splits of the official training file: validation is its last
    /// `n_valid` images, training the first `train_limit` of the rest.
    ///
    /// # Errors
    ///
    /// `n_valid` is zero or leaves no training image.
    pub fn split(&self, all: &Mnist) -> Result<(Mnist, Mnist), DataError> {
        if self.n_valid == 0 || self.n_valid >= all.len() {
            return Err(DataError::Invalid(format!("data.n_valid must be in 1..{}, got {}", all.len(), self.n_valid)));
        }
        let n_train = self.train_limit.unwrap_or(usize::MAX).min(all.len() - self.n_valid);
        Ok((all.subset(0..n_train), all.subset(all.len() - self.n_valid..all.len())))
    }
}

/// Images and labels of one split.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// Pixels, `count × rows × cols`, 0-255, row-major.
    pub pixels: Vec<u8>,
    /// Labels `0..=9`.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Mnist {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Images `range` as a new split.
    pub fn subset(&self, range: std::ops::Range<usize>) -> Self {
        let size = self.rows * self.cols;
        Self {
            pixels: self.pixels[range.start * size..range.end * size].to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Pixels of image `i` scaled to `[0, 1]`.
    pub fn image(&self, i: usize) -> Vec<f32> {
        let size = self.rows * self.cols;
        self.pixels[i * size..(i + 1) * size].iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// Read split `"train"` or `"t10k"` from `dir`, taking `{split}-images-idx3-ubyte[.gz]` and
    /// `{split}-labels-idx1-ubyte[.gz]`.
    pub fn read_split(dir: &Path, split: &str) -> Result<Self, DataError> {
        let images = find(dir, &format!("{split}-images-idx3-ubyte"))?;
        let labels = find(dir, &format!("{split}-labels-idx1-ubyte"))?;
        Self::read(&images, &labels)
    }

    /// Read an image file and a label file.
    pub fn read(images: &Path, labels: &Path) -> Result<Self, DataError> {
        Self::from_bytes(images, &read_maybe_gz(images)?, labels, &read_maybe_gz(labels)?)
    }

    /// Parse the (decompressed) contents of an image file and a label file; the paths name them in
    /// errors.
    ///
    /// # Errors
    ///
    /// As [`Mnist::read`].
    pub fn from_bytes(images: &Path, img: &[u8], labels: &Path, lab: &[u8]) -> Result<Self, DataError> {
        let (count, dims) = header(images, img, 0x0803, 3)?;
        let (rows, cols) = (dims[1], dims[2]);
        if count == 0 {
            return Err(DataError::format(images, "header", "no images"));
        }
        let (label_count, _) = header(labels, lab, 0x0801, 1)?;
        if count != label_count {
            return Err(DataError::format(
                labels,
                "header",
                format!("{label_count} labels but {} has {count} images", images.display()),
            ));
        }
        let pixels = img[16..].to_vec();
        let labels_v = lab[8..].to_vec();
        if let Some(pos) = labels_v.iter().position(|&l| l > 9) {
            return Err(DataError::format(
                labels,
                format!("byte {}", 8 + pos),
                format!("label {} is not a digit", labels_v[pos]),
            ));
        }
        Ok(Self { pixels, labels: labels_v, rows, cols })
    }
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for candidate in [dir.join(stem), dir.join(format!("{stem}.gz"))] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(DataError::io(
        dir.join(format!("{stem}[.gz]")),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found (run scripts/download_mnist.sh, or set the data directory)",
        ),
    ))
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, "gzip stream", format!("corrupt or truncated: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Check the magic and the size; return the item count and all dimensions.
fn header(path: &Path, data: &[u8], magic: u32, n_dims: usize) -> Result<(usize, Vec<usize>), DataError> {
    let header_len = 4 + 4 * n_dims;
    if data.len() < header_len {
        return Err(DataError::format(
            path,
            "header",
            format!("file has {} bytes, shorter than an IDX header", data.len()),
        ));
    }
    let word = |i: usize| u32::from_be_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]) as usize;
    let found = word(0) as u32;
    if found != magic {
        return Err(DataError::format(path, "byte 0", format!("IDX magic {found:#010x}, expected {magic:#010x}")));
    }
    let dims: Vec<usize> = (1..=n_dims).map(word).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::format(path, "byte 4", format!("dimensions {dims:?} are too large for any file")))?;
    let body = data.len() - header_len;
    if body != expected {
        return Err(DataError::format(
            path,
            format!("byte {header_len}"),
            format!("header promises {} items of {:?} = {expected} bytes, file has {body}", dims[0], &dims[1..]),
        ));
    }
    Ok((dims[0], dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
        v.extend(body);
        v
    }

    /// Dimensions whose product overflows `usize` are an error, not an overflow panic.
    #[test]
    fn absurd_dimensions_are_refused() {
        let images = idx(0x0803, &[u32::MAX, u32::MAX, u32::MAX], &[0; 8]);
        let labels = idx(0x0801, &[1], &[0]);
        let err = Mnist::from_bytes(Path::new("img"), &images, Path::new("lab"), &labels).unwrap_err().to_string();
        assert!(err.contains("img: byte 4: dimensions") && err.contains("too large"), "{err}");
        let empty = idx(0x0803, &[0, 28, 28], &[]);
        let err = Mnist::from_bytes(Path::new("img"), &empty, Path::new("lab"), &labels).unwrap_err().to_string();
        assert_eq!(err, "img: header: no images");
    }

    #[test]
    fn reads_plain_and_gzipped_files_and_names_errors() {
        let dir = std::env::temp_dir().join(format!("kiln-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = idx(0x0803, &[2, 2, 2], &[0, 255, 51, 0, 1, 2, 3, 4]);
        std::fs::write(dir.join("train-images-idx3-ubyte"), &images).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(0x0801, &[2], &[7, 3])).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let m = Mnist::read_split(&dir, "train").unwrap();
        assert_eq!((m.len(), m.rows, m.cols, m.labels.clone()), (2, 2, 2, vec![7, 3]));
        assert_eq!(m.image(0), vec![0.0, 1.0, 0.2, 0.0]);

        let bad = dir.join("bad-images");
        std::fs::write(&bad, idx(0x0801, &[2, 2, 2], &[0; 8])).unwrap();
        let err = Mnist::read(&bad, &dir.join("train-labels-idx1-ubyte.gz")).unwrap_err().to_string();
        assert!(err.contains("bad-images") && err.contains("magic"), "{err}");
        std::fs::write(&bad, idx(0x0803, &[2, 2, 2], &[0; 7])).unwrap();
        let err = Mnist::read(&bad, &dir.join("train-labels-idx1-ubyte.gz")).unwrap_err().to_string();
        assert!(err.contains("promises"), "{err}");
        std::fs::write(&bad, idx(0x0803, &[3, 2, 2], &[0; 12])).unwrap();
        let err = Mnist::read(&bad, &dir.join("train-labels-idx1-ubyte.gz")).unwrap_err().to_string();
        assert!(err.contains("2 labels but"), "{err}");
        let err = Mnist::read_split(&dir, "t10k").unwrap_err().to_string();
        assert!(err.contains("t10k-images"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
