//! What a from-scratch NER model reads besides the characters: character bigrams (each character
//! with its neighbours, from a table built on the training file), the lexicon of the training file's
//! entity strings, and token dropout.

use std::collections::{BTreeSet, HashMap};

use burn::prelude::*;
use burn::tensor::Distribution;
use kiln_data::ner::NerExample;

/// The training file's entity strings: for each string (tokens joined by `\u{1f}`), the number of
/// training sentences that label it as each type.
#[derive(Debug, Default)]
pub struct Lexicon {
    pub(crate) counts: HashMap<String, Vec<usize>>,
    /// The longest string, in tokens.
    pub(crate) longest: usize,
    pub(crate) n_types: usize,
}

impl Lexicon {
    /// The entities of `examples` within the first `max_len` tokens; `type_index` numbers the types
    /// (entities of other types are left out).
    pub fn new(
        examples: &[NerExample],
        max_len: usize,
        n_types: usize,
        type_index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let mut lexicon = Self { n_types, ..Self::default() };
        for x in examples {
            for (key, t) in Self::own(x, max_len, &type_index) {
                lexicon.longest = lexicon.longest.max(Self::tokens_in(&key));
                lexicon.counts.entry(key).or_insert_with(|| vec![0; n_types])[t] += 1;
            }
        }
        lexicon
    }

    /// The number of tokens of a lexicon key (tokens joined by `\u{1f}`).
    pub(crate) fn tokens_in(key: &str) -> usize {
        key.matches('\u{1f}').count() + 1
    }

    /// A lexicon saved with a run: each string's count per type.
    pub(crate) fn from_counts(counts: HashMap<String, Vec<usize>>, n_types: usize) -> Result<Self, String> {
        if let Some((key, c)) = counts.iter().find(|(_, c)| c.len() != n_types) {
            return Err(format!("{key:?} has {} counts for {n_types} types", c.len()));
        }
        let longest = counts.keys().map(|k| Self::tokens_in(k)).max().unwrap_or(0);
        Ok(Self { counts, longest, n_types })
    }

    /// The distinct (string, type) pairs a sentence labels within the cut.
    pub(crate) fn own(
        x: &NerExample,
        max_len: usize,
        type_index: impl Fn(&str) -> Option<usize>,
    ) -> BTreeSet<(String, usize)> {
        x.entities
            .iter()
            .filter(|e| e.end < max_len)
            .filter_map(|e| type_index(&e.label).map(|t| (x.tokens[e.start..=e.end].join("\u{1f}"), t)))
            .collect()
    }

    /// Distinct strings in the lexicon.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether the training file labels no entity.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The indicators of the first `len` tokens of `tokens`, row-major `[len, 4 × types]`: for every
    /// substring in the lexicon as type `t`, 1 at `4t` (begins) on its first token, `4t + 1`
    /// (inside) on its middle ones, `4t + 2` (ends) on its last, or `4t + 3` (single) on a one-token
    /// string. `leave_out` (a training sentence's own labels, from [`Self::own`]) discounts the
    /// sentence's own count, so that a string only it labels does not light up.
    pub(crate) fn indicators(&self, tokens: &[String], len: usize, leave_out: &BTreeSet<(String, usize)>) -> Vec<f32> {
        let width = 4 * self.n_types;
        let mut out = vec![0.0f32; len * width];
        let mut key = String::new();
        for i in 0..len {
            key.clear();
            for j in i..len.min(i + self.longest) {
                if j > i {
                    key.push('\u{1f}');
                }
                key.push_str(&tokens[j]);
                let Some(counts) = self.counts.get(&key) else { continue };
                for (t, &c) in counts.iter().enumerate() {
                    let own = leave_out.iter().any(|(k, u)| *u == t && *k == key);
                    if c > usize::from(own) {
                        if i == j {
                            out[i * width + 4 * t + 3] = 1.0;
                        } else {
                            out[i * width + 4 * t] = 1.0;
                            (i + 1..j).for_each(|m| out[m * width + 4 * t + 1] = 1.0);
                            out[j * width + 4 * t + 2] = 1.0;
                        }
                    }
                }
            }
        }
        out
    }
}

/// The position of `label` in the sorted type list.
pub(crate) fn type_position(types: &[String], label: &str) -> Option<usize> {
    types.binary_search_by(|t| t.as_str().cmp(label)).ok()
}

/// The key of the bigram of tokens `a` then `b` in [`NerTask`]'s bigram vocabulary; `None` is the
/// sentence boundary (before the first token, after the last).
pub(crate) fn bigram_key(a: Option<&String>, b: Option<&String>) -> String {
    // Control characters that no reader yields inside a token mark the boundary and the join.
    format!("{}\u{1f}{}", a.map_or("\u{2}", String::as_str), b.map_or("\u{3}", String::as_str))
}

/// The bigrams of the training sentences seen at least `min_count` times, numbered from 2 in key
/// order (0 is padding, 1 `[UNK]`), so that the same file gives the same ids.
pub(crate) fn bigram_vocabulary(examples: &[NerExample], min_count: usize) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for x in examples {
        for i in 0..=x.tokens.len() {
            let before = i.checked_sub(1).and_then(|j| x.tokens.get(j));
            *counts.entry(bigram_key(before, x.tokens.get(i))).or_default() += 1;
        }
    }
    let mut kept: Vec<String> = counts.into_iter().filter(|&(_, c)| c >= min_count).map(|(k, _)| k).collect();
    kept.sort_unstable();
    kept.into_iter().enumerate().map(|(i, k)| (k, i + 2)).collect()
}

/// The id of `[UNK]` in a from-scratch vocabulary (`[PAD]` is 0).
pub const UNK_ID: i64 = 1;

/// Token dropout: on an autodiff device (training), each id that is not padding becomes `unk` with
/// probability `prob`, drawn from the device's generator (so the trainer's per-step seed fixes it);
/// elsewhere, and with `prob = 0`, the ids unchanged.
///
/// # Shapes
///
/// - `ids`, `padding`: `[b, n]` → `[b, n]`
pub fn drop_tokens(ids: Tensor<2, Int>, padding: &Tensor<2, Bool>, prob: f64, unk: i64) -> Tensor<2, Int> {
    let device = ids.device();
    if prob == 0.0 || !device.is_autodiff() {
        return ids;
    }
    let draw = Tensor::<2>::random(ids.dims(), Distribution::Bernoulli(prob), &device);
    let drop = draw.equal_elem(1.0).bool_and(padding.clone().bool_not());
    ids.mask_fill(drop, unk)
}

#[cfg(test)]
mod tests {
    use super::*;

    use kiln_layers::mask::padding_from_lengths;

    use kiln_data::ner::NerExample;

    /// Token dropout replaces a `prob` fraction of the characters, never padding, by `[UNK]`, only
    /// on an autodiff device.
    #[test]
    fn token_dropout_replaces_characters_by_unk_in_training_only() {
        let device = Device::flex().autodiff();
        let (b, n) = (64, 100);
        // Ids 2.. everywhere; the last 30 columns of every row are padding (id 0).
        let ids: Vec<i64> = (0..b * n).map(|i| if i % n < 70 { 2 + (i % 50) as i64 } else { 0 }).collect();
        let lengths = vec![70; b];
        let padding = padding_from_lengths(&lengths, n, &device);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, n]), &device);
        let to_vec = |t: Tensor<2, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        let dropped = to_vec(drop_tokens(ids.clone(), &padding, 0.2, UNK_ID));
        let before = to_vec(ids.clone());
        let mut replaced = 0;
        for (i, (&a, &d)) in before.iter().zip(&dropped).enumerate() {
            if i % n >= 70 {
                assert_eq!(d, 0, "padding stays padding");
            } else if d != a {
                assert_eq!(d, UNK_ID);
                replaced += 1;
            }
        }
        // 4,480 characters, p = 0.2: standard deviation 26.8; 5 sigma.
        let expected = 0.2 * (b * 70) as f64;
        assert!((f64::from(replaced) - expected).abs() < 134.0, "{replaced} of {}", b * 70);
        // That the device seed fixes the draw is tests/seeded_token_dropout.rs: the generator is global.
        assert_eq!(to_vec(drop_tokens(ids.clone(), &padding, 0.0, UNK_ID)), before);
        let plain = Device::flex();
        let plain_ids = Tensor::<2, Int>::from_data(TensorData::new(before.clone(), [b, n]), &plain);
        let plain_padding = padding_from_lengths(&lengths, n, &plain);
        assert_eq!(to_vec(drop_tokens(plain_ids, &plain_padding, 0.2, UNK_ID)), before, "evaluation");
    }

    /// The bigram vocabulary keeps what is seen `min_count` times, boundaries included, numbered from
    /// 2 in key order.
    #[test]
    fn bigram_vocabulary_counts_boundaries_and_filters() {
        let ex = |t: &str| NerExample { tokens: t.chars().map(String::from).collect(), entities: vec![] };
        let examples = [ex("ab"), ex("abc")];
        let s = |c: &str| Some(c.to_string());
        let all = bigram_vocabulary(&examples, 1);
        // ^a ab b$ bc c$
        assert_eq!(all.len(), 5);
        let mut ids: Vec<usize> = all.values().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 3, 4, 5, 6]);
        let two = bigram_vocabulary(&examples, 2);
        assert_eq!(two.len(), 2);
        assert!(two.contains_key(&bigram_key(None, s("a").as_ref())));
        assert!(two.contains_key(&bigram_key(s("a").as_ref(), s("b").as_ref())));
        assert!(!two.contains_key(&bigram_key(s("b").as_ref(), None)), "seen once");
        let mut a = two.values().copied().collect::<Vec<_>>();
        a.sort_unstable();
        assert_eq!(a, vec![2, 3]);
    }

    /// The lexicon marks every substring labelled in training — nested and overlapping ones too —
    /// as begins / inside / ends / single of its type, and a training sentence does not see the
    /// strings only it labels.
    #[test]
    fn lexicon_indicators_mark_training_entity_strings() {
        use kiln_data::ner::Entity;
        let ex = |text: &str, entities: &[(&str, usize, usize)]| NerExample {
            tokens: text.chars().map(String::from).collect(),
            entities: entities.iter().map(|&(l, start, end)| Entity { label: l.into(), start, end }).collect(),
        };
        let train = [
            ex("张三去北京", &[("PER", 0, 1), ("LOC", 3, 4)]),
            ex("北京的张三", &[("LOC", 0, 1), ("PER", 3, 4)]),
            ex("李四去上海", &[("PER", 0, 1), ("LOC", 3, 4)]),
            ex("张三丰在京", &[("PER", 0, 2), ("LOC", 4, 4)]),
            ex("王五到武汉市", &[("PER", 0, 1), ("LOC", 3, 5)]),
        ];
        let types = ["LOC", "PER"];
        let index = |l: &str| types.iter().position(|t| *t == l);
        // max_len 5 drops 武汉市 (ends at 5) from the lexicon.
        let lexicon = Lexicon::new(&train, 5, 2, index);
        assert_eq!(lexicon.len(), 7, "张三 北京 李四 上海 张三丰 京 王五");
        let tokens = |t: &str| t.chars().map(String::from).collect::<Vec<_>>();
        // Which indicators are on, as (position, type, B/I/E/S).
        let on = |v: Vec<f32>| {
            v.iter()
                .enumerate()
                .filter(|(_, x)| **x == 1.0)
                .map(|(i, _)| (i / 8, ["LOC", "PER"][i % 8 / 4], ["B", "I", "E", "S"][i % 4]))
                .collect::<Vec<_>>()
        };
        let none = BTreeSet::new();
        assert_eq!(
            on(lexicon.indicators(&tokens("李四和张三丰在北京市"), 10, &none)),
            vec![
                (0, "PER", "B"),
                (1, "PER", "E"),
                (3, "PER", "B"), // 张三 and 张三丰 both begin here
                (4, "PER", "I"), // inside 张三丰
                (4, "PER", "E"), // the end of 张三
                (5, "PER", "E"),
                (7, "LOC", "B"),
                (8, "LOC", "E"),
                (8, "LOC", "S"), // 京 alone
            ]
        );
        // Beyond `len` nothing is matched, and 武汉市 (cut from the lexicon) is not there.
        assert_eq!(on(lexicon.indicators(&tokens("李四"), 1, &none)), vec![]);
        assert!(on(lexicon.indicators(&tokens("武汉市"), 3, &none)).is_empty());
        // Leave one out: 李四 and 上海 are labelled by sentence 3 only, 张三 and 北京 twice.
        let own = |x: &NerExample| Lexicon::own(x, 5, index);
        assert!(on(lexicon.indicators(&train[2].tokens, 5, &own(&train[2]))).is_empty());
        assert_eq!(
            on(lexicon.indicators(&train[0].tokens, 5, &own(&train[0]))),
            vec![(0, "PER", "B"), (1, "PER", "E"), (3, "LOC", "B"), (4, "LOC", "E"), (4, "LOC", "S")]
        );
        // An unlabelled occurrence in the sentence itself does not count as its own.
        assert_eq!(on(lexicon.indicators(&train[3].tokens, 5, &own(&train[3]))).len(), 2, "张三 from sentences 1-2");
    }
}
