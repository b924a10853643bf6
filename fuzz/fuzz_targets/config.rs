//! The config parser and validator: any text, with its first line as a `--set` override.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (first, rest) = text.split_once('\n').unwrap_or(("", text));
        let _ = kiln_train::config::RunConfig::parse(rest, "fuzz.toml", &[]);
        if first.contains('=') {
            let _ = kiln_train::config::RunConfig::parse(rest, "fuzz.toml", &[first.to_string()]);
        }
    }
});
