//! NER batches of characters (from scratch) and what a batch knows to map predictions back to
//! characters.

use std::collections::BTreeSet;

use burn::prelude::*;
use kiln_data::ner::NerExample;
use kiln_layers::mask::padding_from_lengths;

use crate::features::bigram_key;
use crate::task::NerTask;
use crate::{CharFeatures, Decoding, Lexicon, Span, UNK_ID};

/// A training or evaluation batch.
pub struct NerBatch {
    pub(crate) ids: Tensor<2, Int>,
    /// Bigram ids and lexicon indicators (from scratch; see [`CharFeatures`]).
    pub(crate) features: CharFeatures,
    pub(crate) padding: Tensor<2, Bool>,
    /// Padding of the head's positions (= `padding` from scratch; BERT: pieces only).
    pub(crate) head_padding: Tensor<2, Bool>,
    /// Gold spans in head positions.
    pub(crate) spans: Vec<Vec<Span>>,
    /// For each row, the word (character) of each head position.
    pub(crate) words: Vec<Vec<usize>>,
}

impl NerBatch {
    /// Predicted spans of each row in word (character) positions, from scores over head positions.
    pub(crate) fn to_words(&self, scores: Tensor<4>, decoding: Decoding, threshold: f64) -> Vec<Vec<Span>> {
        decoding
            .decode(scores, threshold as f32)
            .into_iter()
            .zip(&self.words)
            .map(|(spans, words)| {
                let mut out: Vec<Span> = spans
                    .into_iter()
                    .map(|s| Span { kind: s.kind, start: words[s.start], end: words[s.end] })
                    .collect();
                out.sort_by_key(|s| (s.start, s.end, s.kind));
                out.dedup();
                out
            })
            .collect()
    }
}

impl NerTask {
    /// Ids, padding and the gold spans (within the cut, of known types) of some sentences;
    /// `training` for sentences of the training file (their lexicon indicators leave their own
    /// labels out).
    pub(crate) fn batch(&self, examples: &[&NerExample], training: bool, device: &Device) -> NerBatch {
        match &self.bert {
            None => self.char_batch(examples, training, device),
            Some(bert) => bert.batch(examples, self.data.max_len, |x, kept| self.gold_spans(x, kept), device),
        }
    }

    /// A from-scratch batch: character ids, and bigram ids and lexicon indicators where the model
    /// has them.
    pub(crate) fn char_batch(&self, examples: &[&NerExample], training: bool, device: &Device) -> NerBatch {
        let max = self.data.max_len;
        let lengths: Vec<usize> = examples.iter().map(|x| x.tokens.len().clamp(1, max)).collect();
        let n = lengths.iter().copied().max().unwrap_or(1);
        let mut ids = Vec::with_capacity(examples.len() * n);
        for (x, &len) in examples.iter().zip(&lengths) {
            ids.extend(x.tokens.iter().take(len).map(|t| self.vocab.get(t).map_or(UNK_ID, |&i| i as i64)));
            ids.extend(std::iter::repeat_n(0i64, n - len.min(x.tokens.len())));
        }
        let spans = examples.iter().zip(&lengths).map(|(x, &len)| self.gold_spans(x, len).collect()).collect();
        let padding = padding_from_lengths(&lengths, n, device);
        let bigrams = self.model.bigrams.then(|| {
            let mut bigrams = vec![0i64; examples.len() * 2 * n];
            for (r, (x, &len)) in examples.iter().zip(&lengths).enumerate() {
                let row = &mut bigrams[r * 2 * n..(r + 1) * 2 * n];
                for i in 0..len.min(x.tokens.len()) {
                    let id = |a: Option<&String>, b: Option<&String>| {
                        self.bigram_vocab.get(&bigram_key(a, b)).map_or(UNK_ID, |&id| id as i64)
                    };
                    let c = x.tokens.get(i);
                    row[i] = id(i.checked_sub(1).and_then(|j| x.tokens.get(j)), c);
                    row[n + i] = id(c, x.tokens.get(i + 1));
                }
            }
            Tensor::<2, Int>::from_data(TensorData::new(bigrams, [examples.len(), 2 * n]), device)
        });
        let lexicon = self.lexicon.as_ref().map(|lexicon| {
            let width = 4 * self.types.len();
            let mut values = vec![0.0f32; examples.len() * n * width];
            for (r, (x, &len)) in examples.iter().zip(&lengths).enumerate() {
                let leave_out = if training {
                    Lexicon::own(x, self.data.max_len, |label| self.type_index(label))
                } else {
                    BTreeSet::new()
                };
                let row = lexicon.indicators(&x.tokens, len.min(x.tokens.len()), &leave_out);
                values[r * n * width..][..row.len()].copy_from_slice(&row);
            }
            Tensor::<3>::from_data(TensorData::new(values, [examples.len(), n, width]), device)
        });
        NerBatch {
            ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [examples.len(), n]), device),
            features: CharFeatures { bigrams, lexicon },
            head_padding: padding.clone(),
            padding,
            spans,
            words: lengths.iter().map(|&len| (0..len).collect()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{features::*, *};

    use kiln_task::Task;

    use crate::task::testing::*;

    /// A batch carries each character's bigram with the previous and with the next character (the
    /// next one even past the cut), unseen bigrams as `[UNK]`, padding 0; a model with bigram
    /// embeddings uses them, and with its bigram table zeroed equals the model without one.
    #[test]
    fn bigram_ids_in_batches_and_their_embeddings() {
        let dir = scratch_dir("bigram");
        let mut task = setup(&dir);
        task.model.bigrams = true;
        task.model.bigram_min_count = 1;
        task.bigram_vocab = bigram_vocabulary(&task.train, 1);
        let device = Device::flex();
        // valid[0] = 张三到上海 cut to 4; train[1] = 李四 (padded to 4).
        let batch = task.batch(&[&task.valid[0], &task.train[1]], false, &device);
        let got: Vec<i64> =
            batch.features.bigrams.clone().unwrap().into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        let id = |a: Option<&str>, b: Option<&str>| {
            let key = bigram_key(a.map(String::from).as_ref(), b.map(String::from).as_ref());
            task.bigram_vocab.get(&key).map_or(UNK_ID, |&i| i as i64)
        };
        let (z, s, d, u, h) = (Some("张"), Some("三"), Some("到"), Some("上"), Some("海"));
        let (l, f) = (Some("李"), Some("四"));
        assert!(id(None, z) > 1 && id(z, s) > 1 && id(l, f) > 1 && id(f, None) > 1);
        assert_eq!(id(s, d), UNK_ID);
        #[rustfmt::skip]
        let expected = vec![
            id(None, z), id(z, s), UNK_ID, UNK_ID, /* right: */ id(z, s), UNK_ID, UNK_ID, id(u, h),
            id(None, l), id(l, f), 0, 0, /* right: */ id(l, f), id(f, None), 0, 0,
        ];
        assert_eq!(got, expected);
        // The model: bigrams change the encoding; a zero table is the model without bigrams.
        let model = task.build_model(&device).unwrap();
        let table = model.bigram_embedding.clone().unwrap();
        let encode = |m: &NerModel, bigrams| {
            m.encode(batch.ids.clone(), CharFeatures { bigrams, lexicon: None }, &batch.padding)
        };
        let with = encode(&model, batch.features.bigrams.clone());
        let other = batch.features.bigrams.clone().unwrap().ones_like() * 2; // every bigram → id 2
        let diff = (with.clone() - encode(&model, Some(other))).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-2, "bigram ids matter: {diff}");
        let mut zeroed = model.clone();
        zeroed.bigram_embedding =
            Some(burn::nn::Embedding { weight: burn::module::Param::from_tensor(table.weight.val().zeros_like()) });
        let mut without = model.clone();
        without.bigram_embedding = None;
        without.bigram_projection = None;
        let a = encode(&zeroed, batch.features.bigrams.clone());
        let b = encode(&without, None);
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "zero bigram table = no bigrams: {diff}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Training batches leave their own labels out of the lexicon; evaluation batches do not; the
    /// model reads the indicators.
    #[test]
    fn lexicon_in_batches_and_the_model() {
        let dir = scratch_dir("lexicon");
        let mut task = setup(&dir);
        task.model.lexicon = true;
        let lexicon = Lexicon::new(&task.train, task.data.max_len, 2, |l| task.type_index(l));
        task.lexicon = Some(lexicon);
        let device = Device::flex();
        let indicators = |training| {
            let batch = task.batch(&[&task.train[0]], training, &device);
            batch.features.lexicon.unwrap().into_data().try_to_vec::<f32>().unwrap()
        };
        // 张三 (PER, type 1) is labelled by this training sentence only.
        let (eval, train) = (indicators(false), indicators(true));
        assert_eq!(eval.len(), 4 * 8);
        assert_eq!((eval[4], eval[8 + 6]), (1.0, 1.0), "PER begins at 0 and ends at 1");
        assert_eq!(eval.iter().sum::<f32>(), 2.0, "北京 is cut at max_len 4");
        assert_eq!(train.iter().sum::<f32>(), 0.0, "left out in training");
        let model = task.build_model(&device).unwrap();
        let batch = task.batch(&[&task.train[0]], false, &device);
        let zeros = batch.features.lexicon.clone().unwrap().zeros_like();
        let encode = |lexicon| {
            let features = CharFeatures { bigrams: None, lexicon: Some(lexicon) };
            model.encode(batch.ids.clone(), features, &batch.padding)
        };
        let lexicon = batch.features.lexicon.clone().unwrap();
        let diff = (encode(lexicon) - encode(zeros)).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-2, "the indicators matter: {diff}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
