//! STS Benchmark and Chinese STS files.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kiln_whiten::sts::parse_sts_benchmark(text, Path::new("sts.tsv"), "test");
        let _ = kiln_whiten::sts::parse_chinese(text, Path::new("STS-B.test.data"));
    }
});
