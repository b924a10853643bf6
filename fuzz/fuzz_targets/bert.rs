//! A BERT checkpoint's safetensors header and config.json.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = kiln_transformer::bert::convert::safetensors_shapes_from(data, Path::new("model.safetensors"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kiln_transformer::BertConfig::parse(text, Path::new("config.json"));
    }
});
