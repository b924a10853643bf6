//! MNIST IDX files: the first two bytes say where the image file ends and the label file begins.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_le_bytes([data[0], data[1]])) + 2).min(data.len());
    let (images, labels) = (&data[2..split], &data[split..]);
    if let Ok(m) = kiln_data::mnist::Mnist::from_bytes(Path::new("images"), images, Path::new("labels"), labels) {
        for i in 0..m.len() {
            let _ = m.image(i);
        }
    }
});
