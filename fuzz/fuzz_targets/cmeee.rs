//! CMeEE (CBLUE) JSON: an array or JSON lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kiln_data::ner::parse_cmeee(text, Path::new("fuzz.json"));
    }
});
