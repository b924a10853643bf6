//! How a NER run cuts raw text into the tokens it was trained on, with each token's character offsets
//! in the text, so that predicted spans map back to the input.
//!
//! - [`TokenUnit::Characters`]: one token per character (CLUENER, CMeEE, and character-per-line column
//!   files such as MSRA or People's Daily).
//! - [`TokenUnit::Words`]: word-per-line column files (CoNLL-2003 style). Raw text is split by
//!   [`split_words`]: at whitespace, then punctuation is split off the ends of each piece as
//!   CoNLL's tokenisation does (`Paris,` → `Paris` `,`; `(EU)` → `(` `EU` `)`; `Germany's` → `Germany`
//!   `'s`). A piece made only of punctuation (`...`, `--`) stays whole, and so does the final period of
//!   an abbreviation that has another period inside (`U.S.`, `a.m.`); punctuation inside a piece stays
//!   (`e-mail`, `3.5`, `don't`). Input that is already tokenised is split at whitespace only
//!   ([`split_whitespace`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// What one token of a NER run is. TOML (`[data] tokens`): `"characters"` or `"words"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUnit {
    /// One token per character.
    Characters,
    /// Words, as a word-per-line column file has them.
    Words,
}

/// A token of a text and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub text: String,
    /// Its characters in the text (offsets in characters, not bytes).
    pub chars: Range<usize>,
}

impl TokenUnit {
    /// The unit's name in the plural, for messages: `characters` or `words`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Characters => "characters",
            Self::Words => "words",
        }
    }

    /// Tokens of raw text (`kiln predict --text`).
    pub fn split(self, text: &str) -> Vec<Token> {
        match self {
            Self::Characters => split_characters(text),
            Self::Words => split_words(text),
        }
    }

    /// Tokens of a line that is already tokenised (`kiln predict --file`): characters as they are
    /// for a character run, the whitespace-separated tokens for a word run.
    pub fn split_tokenised(self, text: &str) -> Vec<Token> {
        match self {
            Self::Characters => split_characters(text),
            Self::Words => split_whitespace(text),
        }
    }
}

/// One token per character.
pub fn split_characters(text: &str) -> Vec<Token> {
    text.chars().enumerate().map(|(i, c)| Token { text: c.to_string(), chars: i..i + 1 }).collect()
}

/// The maximal runs of non-whitespace characters.
pub fn split_whitespace(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut current: Option<Token> = None;
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() {
            out.extend(current.take());
        } else {
            let t = current.get_or_insert_with(|| Token { text: String::new(), chars: i..i });
            t.text.push(c);
            t.chars.end = i + 1;
        }
    }
    out.extend(current);
    out
}

fn is_punctuation(c: char) -> bool {
    !c.is_alphanumeric()
}

/// Words of raw text, punctuation split off as the module's rule says.
pub fn split_words(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for piece in split_whitespace(text) {
        let chars: Vec<char> = piece.text.chars().collect();
        if chars.iter().all(|&c| is_punctuation(c)) {
            out.push(piece);
            continue;
        }
        let at = |r: Range<usize>| Token {
            text: chars[r.clone()].iter().collect(),
            chars: piece.chars.start + r.start..piece.chars.start + r.end,
        };
        let (mut start, mut end) = (0, chars.len());
        while is_punctuation(chars[start]) {
            out.push(at(start..start + 1));
            start += 1;
        }
        // The core is not empty: the piece has an alphanumeric character.
        let mut tail = Vec::new();
        while is_punctuation(chars[end - 1]) {
            let abbreviation = chars[end - 1] == '.'
                && end - start >= 2
                && chars[end - 2].is_alphanumeric()
                && chars[start..end - 1].contains(&'.');
            if abbreviation {
                break;
            }
            tail.push(at(end - 1..end));
            end -= 1;
        }
        let clitic = end - start > 2 && matches!(chars[end - 2], '\'' | '’') && matches!(chars[end - 1], 's' | 'S');
        if clitic {
            tail.push(at(end - 2..end));
            end -= 2;
        }
        out.push(at(start..end));
        out.extend(tail.into_iter().rev());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tokens: &[Token]) -> Vec<&str> {
        tokens.iter().map(|t| t.text.as_str()).collect()
    }

    /// The rule on the cases it names, and offsets that give each token back from the text.
    #[test]
    fn words_split_as_conll_tokenises() {
        let cases: [(&str, &[&str]); 6] = [
            ("Barack Obama visited Paris, France.", &["Barack", "Obama", "visited", "Paris", ",", "France", "."]),
            (
                "the U.S. economy grew 3.5% in a.m. trading",
                &["the", "U.S.", "economy", "grew", "3.5", "%", "in", "a.m.", "trading"],
            ),
            (
                "Germany's (EU) \"best\" e-mail...",
                &["Germany", "'s", "(", "EU", ")", "\"", "best", "\"", "e-mail", ".", ".", "."],
            ),
            ("Wait ... don't -- go!", &["Wait", "...", "don't", "--", "go", "!"]),
            ("  北京 Zürich’s  ", &["北京", "Zürich", "’s"]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            let tokens = split_words(text);
            assert_eq!(texts(&tokens), expected, "{text:?}");
            let chars: Vec<char> = text.chars().collect();
            for t in &tokens {
                assert_eq!(chars[t.chars.clone()].iter().collect::<String>(), t.text, "{text:?}");
            }
        }
    }

    /// Pre-tokenised lines split at whitespace only; characters one by one, with offsets.
    #[test]
    fn tokenised_lines_and_characters() {
        let t = TokenUnit::Words.split_tokenised("Paris , France .");
        assert_eq!(texts(&t), ["Paris", ",", "France", "."]);
        assert_eq!(t[2].chars, 8..14);
        let c = TokenUnit::Characters.split("张三 去");
        assert_eq!(texts(&c), ["张", "三", " ", "去"]);
        assert_eq!(c[3].chars, 3..4);
        assert_eq!(TokenUnit::Characters.split_tokenised("ab"), TokenUnit::Characters.split("ab"));
    }
}
