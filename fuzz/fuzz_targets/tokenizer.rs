//! A BERT checkpoint's tokenizer files: `vocab.txt` (with `tokenizer_config.json`) or `tokenizer.json`.
//! The tokenizers crate reads them from a path, so each input is written to a scratch directory.
//! The first byte picks the file; a tokenizer that loads then encodes text and pre-split words.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kiln-fuzz-tokenizer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let dir = scratch();
    for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    match pick % 3 {
        0 => std::fs::write(dir.join("vocab.txt"), body).unwrap(),
        1 => std::fs::write(dir.join("tokenizer.json"), body).unwrap(),
        _ => {
            // tokenizer_config.json, then a NUL, then vocab.txt
            let cut = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            std::fs::write(dir.join("tokenizer_config.json"), &body[..cut]).unwrap();
            std::fs::write(dir.join("vocab.txt"), body.get(cut + 1..).unwrap_or_default()).unwrap();
        }
    }
    let max_seq_len = 2 + usize::from(pick / 3) % 40;
    if let Ok(tok) = kiln_data::tokenizer::BertTokenizer::from_dir(dir, max_seq_len) {
        let _ = tok.check_fits(dir, 30_000);
        let _ = tok.batch(&["Hello, world! Ünïcödé 中文 text\u{0}\t", "", "a b"]);
        let _ = tok.encode_words(&["New", "York", "", "中", "é"]);
    }
});
