//! Sentence boundaries in column files (one token per line, CoNLL style), the one rule that the NER
//! reader ([`crate::ner::read_columns`]), `kiln predict --format conll` and the conlleval scorer share:
//! a line ends a sentence when it has no fields, or when its first field is CoNLL-2003's document
//! separator `-DOCSTART-` (as conlleval reads it); every other line is a token of the current
//! sentence. Runs of several such lines end one sentence, not several empty ones.

use std::convert::Infallible;

/// Whether `line` ends a sentence instead of holding a token: blank (or whitespace only), or a
/// `-DOCSTART-` line.
pub fn is_sentence_break(line: &str) -> bool {
    line.split_whitespace().next().is_none_or(|first| first == "-DOCSTART-")
}

/// Groups numbered lines into sentences: each item is one sentence's token lines, in order, with
/// their numbers. An error from `lines` is passed on where it comes, after the sentences before it;
/// the unfinished sentence it interrupts is dropped (a reader stops at its first error).
pub fn column_sentences<I, S, E>(lines: I) -> ColumnSentences<I::IntoIter>
where
    I: IntoIterator<Item = Result<(usize, S), E>>,
    S: AsRef<str>,
{
    ColumnSentences { lines: lines.into_iter() }
}

/// [`column_sentences`] of lines held in memory, numbered from 0.
pub fn sentences_of_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = Vec<(usize, &'a str)>> {
    column_sentences(lines.into_iter().enumerate().map(Ok::<_, Infallible>))
        .map(|sentence| sentence.unwrap_or_else(|never| match never {}))
}

/// The iterator of [`column_sentences`].
#[derive(Debug)]
pub struct ColumnSentences<I> {
    lines: I,
}

impl<I, S, E> Iterator for ColumnSentences<I>
where
    I: Iterator<Item = Result<(usize, S), E>>,
    S: AsRef<str>,
{
    type Item = Result<Vec<(usize, S)>, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut sentence = Vec::new();
        for line in self.lines.by_ref() {
            match line {
                Err(error) => return Some(Err(error)),
                Ok((_, text)) if is_sentence_break(text.as_ref()) => {
                    if !sentence.is_empty() {
                        return Some(Ok(sentence));
                    }
                }
                Ok(token) => sentence.push(token),
            }
        }
        (!sentence.is_empty()).then_some(Ok(sentence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_are_blank_and_docstart_lines() {
        for line in ["", "   ", "\t", "\u{3000}", "-DOCSTART- -X- O O", " -DOCSTART-", "-DOCSTART-"] {
            assert!(is_sentence_break(line), "{line:?} ends a sentence");
        }
        for line in ["Anna B-PER", "-DOCSTART-x O", "O O", "科 B-LOC", "x"] {
            assert!(!is_sentence_break(line), "{line:?} is a token");
        }
    }

    /// Leading, repeated and trailing breaks make no empty sentences; a last sentence without a
    /// blank line after it counts; the numbers are the lines'.
    #[test]
    fn groups_token_lines_between_breaks() {
        let text = "-DOCSTART- O\n\nA O\nB B-X\n\n\n  \nC O\n-DOCSTART- O\nD O\nE O";
        let got: Vec<Vec<(usize, &str)>> = sentences_of_lines(text.lines()).collect();
        assert_eq!(got, vec![vec![(2, "A O"), (3, "B B-X")], vec![(7, "C O")], vec![(9, "D O"), (10, "E O")]]);
        assert_eq!(sentences_of_lines("\n\n".lines()).count(), 0);
    }

    /// An error comes where it occurs: after the sentences before it (the unfinished one it cuts is
    /// dropped), then what follows.
    #[test]
    fn errors_pass_through_in_order() {
        let lines = vec![Ok((1, "A")), Ok((2, "")), Ok((3, "B")), Err("bad line 4"), Ok((5, "C"))];
        let got: Vec<Result<Vec<(usize, &str)>, &str>> = column_sentences(lines).collect();
        assert_eq!(got, vec![Ok(vec![(1, "A")]), Err("bad line 4"), Ok(vec![(5, "C")])]);
    }
}
