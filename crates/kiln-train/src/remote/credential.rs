//! What a trainer presents to a worker and how the worker checks it: the trainer's Kiln version and
//! the shared token, as one Burn Remote credential (`kiln VERSION\nTOKEN`). A worker refuses a
//! trainer of another Kiln version (model code and checkpoints may differ between versions) and one
//! without its token, and logs which.

use std::path::Path;

use anyhow::{Context, bail};

/// The Kiln version on the wire. `KILN_WIRE_VERSION` replaces it, for the test that two versions
/// refuse each other; nothing else should set it.
pub fn version() -> String {
    std::env::var("KILN_WIRE_VERSION").unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string())
}

/// A shared secret, read from a token file.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Read a token file: its first line, surrounding whitespace removed.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is empty, or its token is shorter than 16 characters.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the token file {}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            bail!(
                "the token file {} is empty; put a long random string in it (e.g. `openssl rand -hex 32`)",
                path.display()
            );
        }
        if token.len() < 16 {
            bail!(
                "the token in {} is {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
                path.display(),
                token.len()
            );
        }
        Ok(Self(token.to_string()))
    }
}

/// The credential a trainer presents: its version and its token (if any).
pub fn present(token: Option<&Token>) -> String {
    format!("kiln {}\n{}", version(), token.map_or("", |t| t.0.as_str()))
}

/// Why a worker refuses a credential, or `None` to accept it. `expected`: the worker's token, if it
/// requires one.
pub fn check(presented: &[u8], expected: Option<&Token>) -> Option<String> {
    let text = String::from_utf8_lossy(presented);
    let (first, token) = text.split_once('\n').unwrap_or((&text, ""));
    let Some(theirs) = first.strip_prefix("kiln ") else {
        return Some("it is not a Kiln trainer (no Kiln version in its credential)".into());
    };
    let ours = version();
    if theirs != ours {
        return Some(format!("it runs Kiln {theirs} and this worker Kiln {ours}; use the same release on both"));
    }
    match expected {
        Some(_) if token.is_empty() => Some("it presented no token (the trainer's [device] token_file)".into()),
        Some(expected) if !same(token.as_bytes(), expected.0.as_bytes()) => Some("it presented the wrong token".into()),
        _ => None,
    }
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> Token {
        Token(s.into())
    }

    /// The right token is accepted; a wrong, missing, prefixed or extended one is refused, and so
    /// is a credential without a Kiln version or with another version.
    #[test]
    fn only_the_same_version_and_token_pass() {
        let t = token("0123456789abcdef0123");
        assert_eq!(check(present(Some(&t)).as_bytes(), Some(&t)), None);
        assert_eq!(check(present(None).as_bytes(), None), None);
        let wrong = token("0123456789abcdef0124");
        assert!(check(present(Some(&wrong)).as_bytes(), Some(&t)).unwrap().contains("wrong token"));
        assert!(check(present(None).as_bytes(), Some(&t)).unwrap().contains("no token"));
        let longer = token("0123456789abcdef01234");
        assert!(check(present(Some(&longer)).as_bytes(), Some(&t)).unwrap().contains("wrong token"));
        let shorter = token("0123456789abcdef012");
        assert!(check(present(Some(&shorter)).as_bytes(), Some(&t)).unwrap().contains("wrong token"));
        assert!(check(b"0123456789abcdef0123", Some(&t)).unwrap().contains("not a Kiln trainer"));
        let other = format!("kiln 0.0.0-other\n{}", t.0);
        let why = check(other.as_bytes(), Some(&t)).unwrap();
        assert!(why.contains("Kiln 0.0.0-other") && why.contains(&version()), "{why}");
    }

    /// Token files: the first line, trimmed; empty and short ones are refused by name.
    #[test]
    fn token_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.token");
        std::fs::write(&path, "  0123456789abcdef0123  \nignored\n").unwrap();
        assert_eq!(Token::read(&path).unwrap().0, "0123456789abcdef0123");
        std::fs::write(&path, "\n").unwrap();
        assert!(Token::read(&path).unwrap_err().to_string().contains("is empty"));
        std::fs::write(&path, "short").unwrap();
        assert!(Token::read(&path).unwrap_err().to_string().contains("at least 16"));
        let missing = dir.path().join("none.token");
        assert!(format!("{:#}", Token::read(&missing).unwrap_err()).contains("none.token"));
    }
}
