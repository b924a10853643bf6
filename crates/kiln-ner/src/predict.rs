//! `kiln predict` and evaluation for NER: entities found sentence by sentence, a long sentence in
//! overlapping windows, printed as JSON lines with character offsets.

use std::ops::Range;
use std::path::Path;

use burn::prelude::*;
use kiln_data::ner::{ColumnOptions, NerExample};
use kiln_data::sentences::sentences_of_lines;
use kiln_data::words::Token;
use kiln_task::Context;
use serde::Serialize;

use crate::task::NerTask;
use crate::{Decoding, NerModel, Span, SpanHeadConfig};

/// Sentences (windows) per batch of evaluation and prediction.
const EVAL_BATCH: usize = 32;

/// One line of `kiln predict` output.
#[derive(Serialize)]
pub(crate) struct Prediction<'a> {
    pub(crate) text: &'a str,
    pub(crate) entities: Vec<PredictedEntity<'a>>,
}

/// An entity with inclusive character offsets.
#[derive(Serialize)]
pub(crate) struct PredictedEntity<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
}

impl NerTask {
    /// The entities of each sentence (token positions), sorted by `(start, end, kind)`: what
    /// `kiln eval` scores and `kiln predict` prints. A sentence longer than
    /// [`window_len`](Self::window_len) is labelled whole, in overlapping windows
    /// ([`prediction_windows`]); with flat decoding, a span that overlaps one kept before it (two
    /// windows' spans across their boundary) is dropped. Windows run in batches sorted by length.
    pub(crate) fn find_spans(&self, model: &NerModel, sentences: &[&[String]], device: &Device) -> Vec<Vec<Span>> {
        // (sentence, window, the positions whose spans this window keeps)
        let mut pieces: Vec<(usize, Range<usize>, Range<usize>)> = sentences
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                prediction_windows(t.len(), self.window_len()).into_iter().map(move |(w, own)| (i, w, own))
            })
            .collect();
        pieces.sort_by_key(|(_, w, _)| w.len());
        let mut found: Vec<Vec<Span>> = vec![vec![]; sentences.len()];
        for chunk in pieces.chunks(EVAL_BATCH) {
            let examples: Vec<NerExample> = chunk
                .iter()
                .map(|(i, w, _)| NerExample { tokens: sentences[*i][w.clone()].to_vec(), entities: vec![] })
                .collect();
            let refs: Vec<&NerExample> = examples.iter().collect();
            let batch = self.batch(&refs, false, device);
            let predicted = batch.to_words(
                model.forward(batch.ids.clone(), batch.features.clone(), &batch.padding, &batch.head_padding),
                self.model.decode,
                self.model.threshold,
            );
            for ((i, w, own), spans) in chunk.iter().zip(predicted) {
                found[*i].extend(
                    spans
                        .into_iter()
                        .map(|s| Span { start: s.start + w.start, end: s.end + w.start, ..s })
                        .filter(|s| own.contains(&s.start)),
                );
            }
        }
        for spans in &mut found {
            // No duplicates to remove: windows own disjoint start positions.
            spans.sort_by_key(|s| (s.start, s.end, s.kind));
            // The CRF's tag path is flat too.
            if self.model.decode == Decoding::Flat || matches!(self.model.head, SpanHeadConfig::Crf { .. }) {
                keep_flat(spans);
            }
        }
        found
    }
}

/// Of spans sorted by `(start, end, kind)`, keep each that starts after the last one kept ends.
pub(crate) fn keep_flat(spans: &mut Vec<Span>) {
    let mut free_from = 0;
    spans.retain(|s| {
        let keep = s.start >= free_from;
        if keep {
            free_from = s.end + 1;
        }
        keep
    });
}

impl NerTask {
    /// One JSON line per text (`kiln predict`): its entities with character offsets of the text and
    /// their surface text. Each text is cut into the run's tokens ([`TokenUnit`]): raw text by the
    /// word rule of `kiln_data::words` (or into characters), or, when `tokenised`, at whitespace only.
    pub(crate) fn predict_texts(
        &self,
        model: &NerModel,
        texts: &[String],
        tokenised: bool,
        device: &Device,
    ) -> kiln_task::Result<Vec<String>> {
        let tokens: Vec<Vec<Token>> = texts
            .iter()
            .map(|t| if tokenised { self.tokens.split_tokenised(t) } else { self.tokens.split(t) })
            .collect();
        let words: Vec<Vec<String>> = tokens.iter().map(|t| t.iter().map(|w| w.text.clone()).collect()).collect();
        let sentences: Vec<&[String]> = words.iter().map(Vec::as_slice).collect();
        let found = self.find_spans(model, &sentences, device);
        texts
            .iter()
            .zip(&tokens)
            .zip(found)
            .map(|((text, tokens), spans)| {
                let chars: Vec<char> = text.chars().collect();
                let entities = spans
                    .iter()
                    .map(|s| {
                        let (start, end) = (tokens[s.start].chars.start, tokens[s.end].chars.end - 1);
                        PredictedEntity {
                            kind: &self.types[s.kind],
                            start,
                            end,
                            text: chars[start..=end].iter().collect(),
                        }
                    })
                    .collect();
                serde_json::to_string(&Prediction { text, entities }).context("encoding a prediction")
            })
            .collect()
    }

    /// `kiln predict --format conll`: a column file (a token per line in the first column, sentences
    /// separated by blank lines, any other columns kept) written back line for line with one more
    /// column, the predicted tag in BIO. The spans are made flat first (as flat decoding does), since
    /// tags cannot hold nested entities; `-DOCSTART-` lines get an `O`. With the gold tags in the last
    /// input column, the output is what conlleval scores (gold, then predicted).
    pub(crate) fn label_column_file(
        &self,
        model: &NerModel,
        text: &str,
        source: &Path,
        device: &Device,
    ) -> kiln_task::Result<Vec<String>> {
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        // Sentences as their token lines with their numbers (0-based).
        let sentences: Vec<Vec<(usize, &str)>> = sentences_of_lines(lines.iter().copied()).collect();
        kiln_task::ensure!(!sentences.is_empty(), "{}: no tokens (expected a column file)", source.display());
        let options = ColumnOptions { strip_digit_suffix: self.data.strip_digit_suffix };
        let words: Vec<Vec<String>> = sentences
            .iter()
            .map(|s| {
                s.iter()
                    .map(|(_, line)| options.token(line.split(['\t', ' ']).find(|c| !c.is_empty()).unwrap_or("")))
                    .collect()
            })
            .collect();
        let refs: Vec<&[String]> = words.iter().map(Vec::as_slice).collect();
        let mut tags: Vec<String> = vec![String::new(); lines.len()];
        for (sentence, mut spans) in sentences.iter().zip(self.find_spans(model, &refs, device)) {
            keep_flat(&mut spans);
            for &(i, _) in sentence {
                tags[i] = "O".into();
            }
            for s in spans {
                for (k, &(i, _)) in sentence[s.start..=s.end].iter().enumerate() {
                    tags[i] = format!("{}-{}", if k == 0 { 'B' } else { 'I' }, self.types[s.kind]);
                }
            }
        }
        Ok(lines
            .iter()
            .zip(tags)
            .map(|(line, tag)| {
                if line.trim().is_empty() {
                    String::new()
                } else if tag.is_empty() {
                    format!("{line} O") // a -DOCSTART- line
                } else {
                    format!("{line} {tag}")
                }
            })
            .collect())
    }
}

/// The windows `kiln predict` labels a text of `len` characters in, at most `max` each: pairs of
/// the window and the positions it owns, whose spans it keeps. A text that fits is one window.
/// A longer one is covered by windows that overlap by half their length, the last one flush with
/// the end; the owned ranges split each overlap in the middle and together cover `0..len` once, so
/// an entity cut by one window's edge is taken from its neighbour, which sees it whole (unless it
/// is longer than a quarter window). Spans never cross a window, so a kept span lies inside the
/// window that found it.
pub(crate) fn prediction_windows(len: usize, max: usize) -> Vec<(Range<usize>, Range<usize>)> {
    if len <= max {
        return if len == 0 { vec![] } else { vec![(0..len, 0..len)] };
    }
    let stride = (max / 2).max(1);
    let mut starts = vec![0];
    while starts[starts.len() - 1] + max < len {
        starts.push((starts[starts.len() - 1] + stride).min(len - max));
    }
    let mut out = Vec::with_capacity(starts.len());
    let mut owned_from = 0;
    for (k, &s) in starts.iter().enumerate() {
        let owned_to = starts.get(k + 1).map_or(len, |&next| (next + s + max) / 2);
        out.push((s..s + max, owned_from..owned_to));
        owned_from = owned_to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    use kiln_task::Task;

    use crate::task::testing::*;

    /// The prediction windows of a text longer than `max`: each at most `max` long and inside the
    /// text, the owned ranges inside their windows and covering the text once, in order, and every
    /// owned position at least a quarter window from its window's right edge (unless that edge is
    /// the text's end), so a short entity cut by one window is whole in the window that keeps it.
    #[test]
    fn prediction_windows_cover_the_text_once() {
        assert!(prediction_windows(0, 4).is_empty());
        assert_eq!(prediction_windows(3, 4), [(0..3, 0..3)]);
        assert_eq!(prediction_windows(10, 4), [(0..4, 0..3), (2..6, 3..5), (4..8, 5..7), (6..10, 7..10)]);
        for max in 1..12 {
            for len in max + 1..60 {
                let windows = prediction_windows(len, max);
                let mut next = 0;
                for (w, own) in &windows {
                    assert!(w.len() == max && w.end <= len, "len {len}, max {max}: {windows:?}");
                    assert_eq!(own.start, next, "len {len}, max {max}: {windows:?}");
                    assert!(own.start >= w.start && own.end <= w.end && !own.is_empty(), "{len} {max}: {windows:?}");
                    assert!(w.end == len || w.end - (own.end - 1) > max / 4, "len {len}, max {max}: {windows:?}");
                    next = own.end;
                }
                assert_eq!(next, len, "len {len}, max {max}: {windows:?}");
            }
        }
    }

    /// `kiln predict` labels a text longer than `max_len` (4 here) in windows: with the threshold far
    /// below every score each window finds all its spans, and the output holds exactly those that
    /// start in the window's owned positions (10 characters: 25 spans of each of the 2 types, the last
    /// characters included); an empty text has no entities, a short one all of its 6 spans per type.
    #[test]
    fn predict_labels_long_texts_in_windows() {
        let dir = scratch_dir("windows");
        let mut task = setup(&dir);
        let device = Device::flex();
        let model = task.build_model(&device).unwrap();
        task.model.threshold = -1e6;
        let texts = ["张三去北京李四到上海".to_string(), String::new(), "张三去".to_string()];
        let lines = task.predict(&model, &texts, &device).unwrap();
        let spans = |line: &str| -> Vec<(String, u64, u64)> {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (e["type"].as_str().unwrap().to_string(), e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap())
                })
                .collect()
        };
        let mut expected = vec![];
        for (window, own) in [(0..4, 0..3), (2..6, 3..5), (4..8, 5..7), (6..10, 7..10)] {
            for start in own {
                for end in start..window.end {
                    for kind in ["LOC", "PER"] {
                        expected.push((kind.to_string(), start as u64, end as u64));
                    }
                }
            }
        }
        expected.sort_by_key(|(k, s, e)| (*s, *e, k.clone()));
        assert_eq!(expected.len(), 50);
        assert_eq!(spans(&lines[0]), expected);
        assert!(lines[0].contains("\"text\":\"上海\""), "{}", lines[0]);
        assert_eq!(lines[1], r#"{"text":"","entities":[]}"#);
        assert_eq!(spans(&lines[2]).len(), 12);
        // Flat decoding stays flat across window boundaries: no two entities share a character.
        task.model.decode = Decoding::Flat;
        for seed in 0..8 {
            device.seed(seed);
            let model = task.build_model(&device).unwrap();
            let flat = spans(&task.predict(&model, &texts[..1], &device).unwrap()[0]);
            assert!(!flat.is_empty());
            for pair in flat.windows(2) {
                assert!(pair[0].2 < pair[1].1, "seed {seed}: {pair:?} overlap in {flat:?}");
            }
        }
        task.model.threshold = 1e6;
        assert!(task.predict(&model, &texts, &device).unwrap().iter().all(|l| l.ends_with("\"entities\":[]}")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
