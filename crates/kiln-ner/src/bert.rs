//! The pretrained backbone of a NER model: BERT's config and WordPiece tokenizer, and batches of
//! pieces whose spans map to and from words (each word WordPiece-tokenised on its own, as Hugging
//! Face's `is_split_into_words` does; an entity on words `s..=e` is the span from the first piece of
//! `s` to the last piece of `e`).

use std::path::PathBuf;

use burn::prelude::*;
use kiln_data::ner::NerExample;
use kiln_data::tokenizer::BertTokenizer;
use kiln_layers::AttentionConfig;
use kiln_layers::mask::padding_from_lengths;
use kiln_task::Context;
use kiln_transformer::BertConfig;

use crate::{CharFeatures, NerBatch, NerBertConfig, Span};

/// The pretrained backbone's pieces, loaded once per task.
pub(crate) struct BertBackbone {
    pub(crate) dir: PathBuf,
    pub(crate) attention: AttentionConfig,
    pub(crate) config: BertConfig,
    pub(crate) tokenizer: BertTokenizer,
}

impl BertBackbone {
    pub(crate) fn open(config: &NerBertConfig) -> kiln_task::Result<Self> {
        let dir = config.dir.clone().context(
            "model.bert.dir is not set and KILN_BERT_DIR is empty (scripts/download_minilm.sh fetches a checkpoint and prints its directory)",
        )?;
        let mut bert = BertConfig::from_file(&dir.join("config.json"))?;
        bert.attention = config.attention.clone();
        bert.validate()?;
        let tokenizer = BertTokenizer::from_dir(&dir, bert.max_position_embeddings)?;
        tokenizer.check_fits(&dir, bert.vocab_size)?;
        tokenizer.encode_words(&["a"]).with_context(|| format!("{}: the tokenizer", dir.display()))?;
        Ok(Self { dir, attention: config.attention.clone(), config: bert, tokenizer })
    }
}

impl BertBackbone {
    /// A batch of pieces: each word (character) of the first `max` of each sentence tokenised on its
    /// own, its gold spans (`gold(sentence, words kept)`, in words) moved to piece positions.
    pub(crate) fn batch<'a, S: Iterator<Item = Span>>(
        &self,
        examples: &[&'a NerExample],
        max: usize,
        gold: impl Fn(&'a NerExample, usize) -> S,
        device: &Device,
    ) -> NerBatch {
        let bert = self;
        let encoded: Vec<_> = examples
            .iter()
            .map(|x| {
                let words = &x.tokens[..x.tokens.len().min(max)];
                bert.tokenizer.encode_words(words).expect("the tokenizer was checked when the task was built")
            })
            .collect();
        // At least one head column, even for a batch of empty sentences.
        let n = encoded.iter().map(|e| e.encoded.ids.len()).max().unwrap_or(2).max(3);
        let mut ids = Vec::with_capacity(examples.len() * n);
        let (mut lengths, mut head_lengths, mut spans, mut words) = (vec![], vec![], vec![], vec![]);
        for (x, e) in examples.iter().zip(&encoded) {
            let len = e.encoded.ids.len();
            ids.extend(e.encoded.ids.iter().map(|&i| i64::from(i)));
            ids.extend(std::iter::repeat_n(i64::from(bert.tokenizer.pad_id()), n - len));
            lengths.push(len);
            head_lengths.push(len - 2);
            let kept = e.first_token.len();
            spans.push(
                gold(x, kept)
                    .map(|s| Span { start: e.first_token[s.start] - 1, end: e.last_token[s.end] - 1, ..s })
                    .collect(),
            );
            words.push(e.word_of_token[1..len - 1].iter().map(|w| w.expect("a piece has a word")).collect());
        }
        NerBatch {
            ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [examples.len(), n]), device),
            features: CharFeatures::default(),
            padding: padding_from_lengths(&lengths, n, device),
            head_padding: padding_from_lengths(&head_lengths, n - 2, device),
            spans,
            words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    use kiln_data::ner::NerDataConfig;
    use kiln_task::Task;

    /// BERT backbone: words split into several pieces move gold spans to piece positions (first piece
    /// of the first word, last piece of the last word), and predicted piece spans map back to words.
    #[test]
    fn bert_pieces_align_with_words() {
        let dir = std::env::temp_dir().join(format!("kiln-ner-bert-{}", std::process::id()));
        let ckpt = dir.join("bert");
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "barack", "oba", "##ma", "visited", "paris"];
        kiln_transformer::bert::convert::write_random_checkpoint(&ckpt, &vocab, 16, 1, 2, 7).unwrap();
        std::fs::write(dir.join("train.txt"), "Barack B-PER\nObama I-PER\nvisited O\nParis B-LOC\nnow O\n\n").unwrap();
        let data: NerDataConfig = toml::from_str(&format!(
            "format = \"columns\"\ntrain = {:?}\nvalid = {:?}",
            dir.join("train.txt"),
            dir.join("train.txt")
        ))
        .unwrap();
        let model: NerModelConfig =
            toml::from_str(&format!("head = {{ kind = \"global_pointer\", d_head = 8 }}\n[bert]\ndir = {ckpt:?}"))
                .unwrap();
        model.validate().unwrap();
        let task = NerTask::new(model, data).unwrap();
        let device = Device::flex();
        let batch = task.batch(&[&task.train[0]], true, &device);
        let ids: Vec<i64> = batch.ids.clone().into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        // [CLS] barack oba ##ma visited paris [UNK]=now [SEP]
        assert_eq!(ids, vec![2, 4, 5, 6, 7, 8, 1, 3]);
        // LOC = 0, PER = 1; head positions exclude [CLS].
        assert_eq!(batch.spans, vec![vec![Span { kind: 1, start: 0, end: 2 }, Span { kind: 0, start: 4, end: 4 }]]);
        assert_eq!(batch.words, vec![vec![0, 1, 1, 2, 3, 4]]);
        // Positive scores at piece spans (PER, 0..=2) and (LOC, 2..=4) → words (0, 1) and (1, 3).
        let mut scores = vec![-1.0f32; 2 * 6 * 6];
        scores[36 + 2] = 1.0; // type 1, row 0, column 2
        scores[2 * 6 + 4] = 1.0; // type 0, row 2, column 4
        let scores = Tensor::<4>::from_data(TensorData::new(scores, [1, 2, 6, 6]), &device);
        let words = batch.to_words(scores, Decoding::Nested, 0.0);
        assert_eq!(words, vec![vec![Span { kind: 1, start: 0, end: 1 }, Span { kind: 0, start: 1, end: 3 }]]);
        // The model runs on it: scores over the 6 pieces, padding masked.
        let model = task.build_model(&device).unwrap();
        let scores = model.forward(batch.ids, CharFeatures::default(), &batch.padding, &batch.head_padding);
        assert_eq!(scores.dims(), [1, 2, 6, 6]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
