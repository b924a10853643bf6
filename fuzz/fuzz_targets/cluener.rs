//! CLUENER JSON lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = kiln_data::ner::read_cluener_from(data, Path::new("fuzz.json"));
});
