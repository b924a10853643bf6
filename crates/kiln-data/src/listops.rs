//! ListOps (Nangia & Bowman 2018, arXiv:1804.06028), as generated for the Long Range Arena
//! (Tay et al. 2021, arXiv:2011.04006; `google-research/long-range-arena`, `lra_benchmarks/data/listops.py`).
//!
//! A node is a digit `0-9` with probability 0.75 (always at the maximum depth), otherwise an operator
//! chosen uniformly from `[MIN`, `[MAX`, `[MED`, `[SM` with `2..=max_args` children generated the same
//! way one level deeper, closed by `]`. The root is at depth 1. Values: min, max, median (numpy's
//! median truncated to an integer, so the median of 1 and 2 is 1), sum modulo 10. The length counts
//! every operator, `]` and digit token. The full LRA task keeps trees with `500 < length < 2000`,
//! depth up to 10 and up to 10 arguments, and samples 96,000 / 2,000 / 2,000 distinct trees.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::DataError;

/// Token ids: `0` is padding, digits are `1..=10`, then the operators and `]`.
pub const PAD: u32 = 0;
/// The vocabulary: padding, ten digits, four operators, the closing bracket.
pub const VOCAB: [&str; 16] =
    ["<pad>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"];

/// The ListOps operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Minimum of the arguments.
    Min,
    /// Maximum.
    Max,
    /// Median, truncated to an integer.
    Med,
    /// Sum modulo 10.
    Sm,
}

/// The operators in the order of their token ids, [`FIRST_OP`]`..`: `[MIN`, `[MAX`, `[MED`, `[SM`.
const OPS: [Op; 4] = [Op::Min, Op::Max, Op::Med, Op::Sm];

/// The token id of the first operator in [`VOCAB`]; `]` follows the last.
const FIRST_OP: u32 = 11;

/// The token id of `]`.
const CLOSE: u32 = FIRST_OP + OPS.len() as u32;

/// A ListOps expression tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// A digit.
    Digit(u8),
    /// An operator over its arguments.
    Node(Op, Vec<Tree>),
}

impl Tree {
    /// The value of the expression, `0..=9`.
    pub fn value(&self) -> u8 {
        match self {
            Tree::Digit(d) => *d,
            Tree::Node(op, args) => {
                let mut v: Vec<u32> = args.iter().map(|a| a.value() as u32).collect();
                match op {
                    Op::Min => *v.iter().min().expect("operators have arguments") as u8,
                    Op::Max => *v.iter().max().expect("operators have arguments") as u8,
                    Op::Sm => (v.iter().sum::<u32>() % 10) as u8,
                    Op::Med => {
                        v.sort_unstable();
                        let n = v.len();
                        // numpy median, then int(): the mean of the two middle values, truncated.
                        if n % 2 == 1 { v[n / 2] as u8 } else { ((v[n / 2 - 1] + v[n / 2]) / 2) as u8 }
                    }
                }
            }
        }
    }

    /// The token ids of the expression (see [`VOCAB`]).
    pub fn tokens(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.push_tokens(&mut out);
        out
    }

    fn push_tokens(&self, out: &mut Vec<u32>) {
        match self {
            Tree::Digit(d) => out.push(1 + *d as u32),
            Tree::Node(op, args) => {
                out.push(FIRST_OP + OPS.iter().position(|o| o == op).expect("every operator is in OPS") as u32);
                args.iter().for_each(|a| a.push_tokens(out));
                out.push(CLOSE);
            }
        }
    }

    /// The expression as LRA writes it, e.g. `[MAX 2 9 [MIN 4 7 ] 0 ]`.
    pub fn to_text(&self) -> String {
        self.tokens().iter().map(|&t| VOCAB[t as usize]).collect::<Vec<_>>().join(" ")
    }

    /// Parse an expression as LRA writes it (tokens separated by white space, e.g.
    /// `[MAX 2 9 [MIN 4 7 ] 0 ]`): one digit, or an operator, its arguments and `]`. The error names
    /// the first token (1-based) that breaks the grammar.
    pub fn parse(text: &str) -> Result<Tree, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err("the expression is empty".into());
        }
        // Open operators with the arguments read so far, innermost last.
        let mut open: Vec<(Op, Vec<Tree>, usize)> = Vec::new();
        let mut root = None;
        for (i, w) in words.iter().enumerate() {
            let at = i + 1;
            if root.is_some() {
                return Err(format!("token {at} `{w}` follows a complete expression"));
            }
            let id = VOCAB.iter().position(|v| v == w).map_or(PAD, |i| i as u32);
            let done = match id {
                PAD => {
                    return Err(format!(
                        "token {at} `{w}` is not a ListOps token (expected a digit, [MIN, [MAX, [MED, [SM or ])"
                    ));
                }
                1..FIRST_OP => Some(Tree::Digit((id - 1) as u8)),
                CLOSE => match open.pop() {
                    None => return Err(format!("token {at} `]` closes no operator")),
                    Some((_, args, from)) if args.is_empty() => {
                        return Err(format!("the operator at token {from} has no arguments"));
                    }
                    Some((op, args, _)) => Some(Tree::Node(op, args)),
                },
                _ => {
                    open.push((OPS[(id - FIRST_OP) as usize], Vec::new(), at));
                    None
                }
            };
            if let Some(tree) = done {
                match open.last_mut() {
                    Some((_, args, _)) => args.push(tree),
                    None => root = Some(tree),
                }
            }
        }
        match (root, open.last()) {
            (Some(tree), _) => Ok(tree),
            (None, Some((_, _, from))) => Err(format!("the operator at token {from} is not closed by `]`")),
            (None, None) => Err("the expression is incomplete".into()),
        }
    }

    /// Generate a tree with the LRA rules, the root at depth `depth` (LRA starts at 1).
    pub fn generate(rng: &mut StdRng, depth: usize, max_depth: usize, max_args: usize) -> Tree {
        let r: f64 = if depth < max_depth { rng.random() } else { 1.0 };
        if r > 0.25 {
            Tree::Digit(rng.random_range(0..10))
        } else {
            let n = rng.random_range(2..=max_args);
            let args = (0..n).map(|_| Tree::generate(rng, depth + 1, max_depth, max_args)).collect();
            let op = OPS[rng.random_range(0..OPS.len())];
            Tree::Node(op, args)
        }
    }
}

/// Parameters of a generated ListOps dataset. TOML: `[data] kind = "listops"` and these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOpsConfig {
    /// Training examples.
    pub n_train: usize,
    /// Validation examples.
    pub n_valid: usize,
    /// Test examples.
    pub n_test: usize,
    /// Keep trees longer than this many tokens (LRA: 500).
    #[serde(default)]
    pub min_len: usize,
    /// Keep trees shorter than this many tokens (LRA: 2000).
    pub max_len: usize,
    /// Maximum nesting depth (LRA: 10).
    #[serde(default = "default_depth")]
    pub max_depth: usize,
    /// Maximum arguments per operator (LRA: 10).
    #[serde(default = "default_args")]
    pub max_args: usize,
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
    /// Pad every batch to this many tokens instead of to its longest sequence: static shapes, for
    /// timing against a fixed-shape twin and for GPU backends, which compile kernels per shape.
    /// At least `max_len − 1`, the longest tree kept.
    #[serde(default)]
    pub pad_to: Option<usize>,
    /// Training batches of trees of similar length (Hugging Face's `group_by_length`): with lengths
    /// spread over 500-2,000 tokens, random batches pad to nearly 2,000 and softmax attention pays
    /// for the padding quadratically. Each tree is still seen once per epoch.
    #[serde(default)]
    pub group_by_length: bool,
}

fn default_depth() -> usize {
    10
}
fn default_args() -> usize {
    10
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// The value `0..=9`.
    pub label: u8,
}

/// Train, validation and test splits.
#[derive(Debug, Clone)]
pub struct ListOps {
    /// Training split.
    pub train: Vec<Example>,
    /// Validation split.
    pub valid: Vec<Example>,
    /// Test split.
    pub test: Vec<Example>,
}

impl ListOpsConfig {
    /// Check that the parameters can produce trees at all.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.max_depth < 2 {
            return Err(DataError::Invalid(format!(
                "listops max_depth ({}) must be at least 2: at depth 1 every tree is a single digit",
                self.max_depth
            )));
        }
        if self.max_args < 2 {
            return Err(DataError::Invalid(format!("listops max_args ({}) must be at least 2", self.max_args)));
        }
        if self.min_len + 1 >= self.max_len {
            return Err(DataError::Invalid(format!(
                "listops keeps lengths with min_len < length < max_len, but min_len = {} and max_len = {} leave none",
                self.min_len, self.max_len
            )));
        }
        if let Some(pad_to) = self.pad_to
            && pad_to + 1 < self.max_len
        {
            return Err(DataError::Invalid(format!(
                "listops pad_to ({pad_to}) must be at least max_len - 1 = {}, the longest tree kept",
                self.max_len - 1
            )));
        }
        if self.n_train == 0 || self.n_valid == 0 || self.n_test == 0 {
            return Err(DataError::Invalid("listops n_train, n_valid and n_test must be at least 1".into()));
        }
        Ok(())
    }

    /// Generate `n_train + n_valid + n_test` distinct trees with `min_len < length < max_len` and
    /// split them. Fails if too few distinct trees turn up (the length window is too narrow).
    pub fn generate(&self) -> Result<ListOps, DataError> {
        self.validate()?;
        let total = self.n_train + self.n_valid + self.n_test;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut seen = HashSet::new();
        let mut examples = Vec::with_capacity(total);
        let budget = 200 * total + 100_000;
        for _ in 0..budget {
            if examples.len() == total {
                break;
            }
            let tree = Tree::generate(&mut rng, 1, self.max_depth, self.max_args);
            let tokens = tree.tokens();
            if tokens.len() > self.min_len && tokens.len() < self.max_len && seen.insert(tokens.clone()) {
                examples.push(Example { label: tree.value(), tokens });
            }
        }
        if examples.len() < total {
            return Err(DataError::Invalid(format!(
                "listops: found only {} distinct trees with {} < length < {} after {budget} draws (asked for {total}); \
                 widen the length window or raise max_depth",
                examples.len(),
                self.min_len,
                self.max_len
            )));
        }
        let test = examples.split_off(self.n_train + self.n_valid);
        let valid = examples.split_off(self.n_train);
        Ok(ListOps { train: examples, valid, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: u8) -> Tree {
        Tree::Digit(v)
    }

    #[test]
    fn values_follow_the_lra_rules() {
        assert_eq!(Tree::Node(Op::Max, vec![d(2), d(9), d(4)]).value(), 9);
        assert_eq!(Tree::Node(Op::Min, vec![d(2), d(9), d(4)]).value(), 2);
        assert_eq!(Tree::Node(Op::Sm, vec![d(7), d(9), d(4)]).value(), 0); // 20 mod 10
        assert_eq!(Tree::Node(Op::Med, vec![d(1), d(2)]).value(), 1); // 1.5 truncated
        assert_eq!(Tree::Node(Op::Med, vec![d(3), d(8), d(1), d(6)]).value(), 4); // (3+6)/2 = 4.5
        assert_eq!(Tree::Node(Op::Med, vec![d(3), d(8), d(1)]).value(), 3);
        // [MAX 2 9 [MIN 4 7 ] 0 ] = 9; [SM [MED 1 2 ] [MAX 5 8 ] ] = (1 + 8) mod 10 = 9
        let t = Tree::Node(Op::Max, vec![d(2), d(9), Tree::Node(Op::Min, vec![d(4), d(7)]), d(0)]);
        assert_eq!(t.to_text(), "[MAX 2 9 [MIN 4 7 ] 0 ]");
        assert_eq!(t.value(), 9);
        assert_eq!(t.tokens().len(), 9);
    }

    /// `Tree::parse` reads back every generated tree's text, and rejects malformed expressions
    /// naming the token.
    #[test]
    fn parse_reads_generated_trees_and_names_the_bad_token() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let t = Tree::generate(&mut rng, 1, 6, 5);
            assert_eq!(Tree::parse(&t.to_text()), Ok(t.clone()));
        }
        assert_eq!(Tree::parse(" 7 "), Ok(d(7)));
        let err = |text: &str| Tree::parse(text).unwrap_err();
        assert_eq!(err(""), "the expression is empty");
        assert_eq!(err("[MAX 2 9"), "the operator at token 1 is not closed by `]`");
        assert_eq!(err("[MAX 2 [MIN ] ]"), "the operator at token 3 has no arguments");
        assert_eq!(err("[MAX 2 ] ]"), "token 4 `]` follows a complete expression");
        assert_eq!(err("] 2"), "token 1 `]` closes no operator");
        assert_eq!(err("3 4"), "token 2 `4` follows a complete expression");
        assert!(err("[MAX 12 ]").starts_with("token 2 `12` is not a ListOps token"));
        assert!(err("[max 1 ]").starts_with("token 1 `[max` is not a ListOps token"));
    }

    #[test]
    fn generated_splits_respect_the_parameters() {
        let c = ListOpsConfig {
            n_train: 200,
            n_valid: 20,
            n_test: 20,
            min_len: 5,
            max_len: 60,
            max_depth: 4,
            max_args: 5,
            seed: 1,
            pad_to: None,
            group_by_length: false,
        };
        let data = c.generate().unwrap();
        assert_eq!((data.train.len(), data.valid.len(), data.test.len()), (200, 20, 20));
        let all: Vec<&Example> = data.train.iter().chain(&data.valid).chain(&data.test).collect();
        assert!(all.iter().all(|e| e.tokens.len() > 5 && e.tokens.len() < 60 && e.label < 10));
        let distinct: HashSet<&Vec<u32>> = all.iter().map(|e| &e.tokens).collect();
        assert_eq!(distinct.len(), all.len());
        // Operators take at most max_args arguments: a tree never has 6 digits in a row under one op
        // at depth 4 with max_args 5 (checked through the generator directly).
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..500 {
            fn check(t: &Tree, depth: usize) {
                if let Tree::Node(_, args) = t {
                    assert!((2..=5).contains(&args.len()) && depth < 4);
                    args.iter().for_each(|a| check(a, depth + 1));
                }
            }
            check(&Tree::generate(&mut rng, 1, 4, 5), 1);
        }
        // Same seed, same data.
        assert_eq!(c.generate().unwrap().train[..5], data.train[..5]);
    }

    #[test]
    fn impossible_parameters_are_errors() {
        let c = ListOpsConfig {
            n_train: 10,
            n_valid: 1,
            n_test: 1,
            min_len: 50,
            max_len: 51,
            max_depth: 4,
            max_args: 5,
            seed: 1,
            pad_to: None,
            group_by_length: false,
        };
        assert!(c.validate().unwrap_err().to_string().contains("leave none"));
        let short = ListOpsConfig { max_len: 60, pad_to: Some(58), ..c.clone() };
        assert!(short.validate().unwrap_err().to_string().contains("pad_to (58) must be at least max_len - 1 = 59"));
        let c = ListOpsConfig { max_len: 52, ..c };
        let err = c.generate().unwrap_err().to_string();
        assert!(err.contains("distinct trees"), "{err}");
    }
}
