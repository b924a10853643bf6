//! The character-corpus reader: bytes to UTF-8 (with the line of an error), then the split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = kiln_data::lines::utf8(Path::new("fuzz.txt"), data.to_vec()) {
        let _ = kiln_data::text::CharCorpus::from_text(&text, 0.1);
    }
});
