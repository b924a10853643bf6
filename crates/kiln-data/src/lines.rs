//! Reading a text file line by line with errors that name the line: invalid UTF-8 and lines longer
//! than [`MAX_LINE_BYTES`] (a binary or wrong file, which would otherwise be read whole into memory).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::DataError;

/// The longest line a line-oriented reader accepts: 16 MiB.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Lines of a UTF-8 file, numbered from 1, without their `\n` or `\r\n`.
pub struct Lines<R> {
    reader: R,
    path: PathBuf,
    number: usize,
    done: bool,
}

impl Lines<BufReader<File>> {
    /// Open `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Ok(Self::new(BufReader::new(file), path))
    }
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`; `path` names it in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        Self { reader, path: path.to_path_buf(), number: 0, done: false }
    }

    fn next_line(&mut self) -> Result<Option<(usize, String)>, DataError> {
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| DataError::io(&self.path, e))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let at = format!("line {}", self.number);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        } else if read > MAX_LINE_BYTES {
            return Err(DataError::format(
                &self.path,
                at,
                format!("longer than {} MiB; is this the right file?", MAX_LINE_BYTES >> 20),
            ));
        }
        let line = String::from_utf8(bytes).map_err(|e| {
            DataError::format(
                &self.path,
                &at,
                format!("invalid UTF-8 at byte {} of the line", e.utf8_error().valid_up_to()),
            )
        })?;
        Ok(Some((self.number, line)))
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<(usize, String), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_line().transpose();
        if matches!(item, None | Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

/// Read a whole UTF-8 file; invalid UTF-8 is named by line and byte.
///
/// # Errors
///
/// The file cannot be read, or is not UTF-8.
pub fn read_utf8(path: &Path) -> Result<String, DataError> {
    utf8(path, std::fs::read(path).map_err(|e| DataError::io(path, e))?)
}

/// `bytes` (the contents of `path`) as UTF-8; invalid UTF-8 is named by line and byte.
///
/// # Errors
///
/// The bytes are not UTF-8.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, DataError> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::format(path, format!("line {line} (byte {offset})"), "invalid UTF-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(bytes: &[u8]) -> Result<Vec<(usize, String)>, String> {
        Lines::new(bytes, Path::new("f.txt")).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_lines_and_names_bad_ones() {
        assert_eq!(
            collect(b"a\r\nb\n\nc").unwrap(),
            vec![(1, "a".into()), (2, "b".into()), (3, String::new()), (4, "c".into())]
        );
        assert_eq!(collect(b"").unwrap(), vec![]);
        assert_eq!(collect(b"ok\nbad \xff\n").unwrap_err(), "f.txt: line 2: invalid UTF-8 at byte 4 of the line");
        let mut huge = b"x\n".to_vec();
        huge.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES + 10));
        assert_eq!(collect(&huge).unwrap_err(), "f.txt: line 2: longer than 16 MiB; is this the right file?");
        // A line of exactly the limit is accepted.
        let mut edge = vec![b'z'; MAX_LINE_BYTES];
        edge.push(b'\n');
        assert_eq!(collect(&edge).unwrap()[0].1.len(), MAX_LINE_BYTES);
    }
}
