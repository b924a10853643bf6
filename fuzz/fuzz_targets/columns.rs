//! Column files (BIO / BIOES / BMES, CoNLL); the first byte's low bit turns on Weibo's digit stripping.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    let options = kiln_data::ner::ColumnOptions { strip_digit_suffix: flags & 1 == 1 };
    let _ = kiln_data::ner::read_columns_from(body, Path::new("fuzz.txt"), options);
});
