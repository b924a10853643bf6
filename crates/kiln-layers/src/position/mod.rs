//! Position encodings: which one a model uses is one TOML line, `[model.position] kind = "..."`.
//!
//! Absolute encodings ([`LearnedPosition`], [`SinusoidalPosition`]) are added to the token
//! embeddings once, before the first block ([`Position::add_to_input`]); rotary ones
//! ([`Rope`], [`Rope2d`]) rotate queries and keys inside every attention layer
//! ([`Position::rotary`]). See `shared/METHODS.md` §1 for the formulas and conventions.

mod learned;
mod rotary;
mod sinusoidal;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use learned::LearnedPosition;
pub use rotary::Rotary;
pub use sinusoidal::{SinusoidalPosition, sinusoidal_table};

use crate::LayerConfigError;

/// How the tokens of a sequence are laid out, which decides the position of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLayout {
    /// A 1-D sequence: token `i` is at position `i`.
    Sequence,
    /// A `rows × cols` grid flattened row by row (vision patches): token `i` is at
    /// `(i / cols, i % cols)`. 1-D encodings use the flattened index `i`.
    Grid {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
}

/// Which position encoding a model uses. TOML: `[model.position]` with `kind = "rope"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PositionConfig {
    /// No position information at all (a bag of tokens; useful as an ablation).
    None {},
    /// A trained table of `max_seq_len` vectors added to the input (BERT, GPT-2).
    Learned {
        /// Longest sequence the table covers.
        max_seq_len: usize,
    },
    /// Fixed sines and cosines added to the input (Vaswani et al. 2017).
    Sinusoidal {},
    /// 1-D rotary embedding of queries and keys, interleaved pairs (RoFormer).
    Rope {
        /// Frequency base: `θ_i = base^(-2i/d)`.
        #[serde(default = "default_base")]
        base: f64,
    },
    /// 2-D rotary embedding over a grid of patches (Su, "Transformer upgrade path 4").
    Rope2d {
        /// Frequency base of each half's ladder.
        #[serde(default = "default_base")]
        base: f64,
    },
}

fn default_base() -> f64 {
    10_000.0
}

impl Default for PositionConfig {
    fn default() -> Self {
        Self::None {}
    }
}

impl PositionConfig {
    /// Check this encoding against the dimensions it will rotate.
    ///
    /// `rotated` lists `(what, dim)` for every dimension a rotary encoding acts on: the head
    /// dimension, and for linear attention or Performer the feature-map size (RoPE rotates
    /// `φ(q)`, `φ(k)` there).
    pub fn validate(&self, rotated: &[(&'static str, usize)]) -> Result<(), LayerConfigError> {
        match self {
            Self::None {} | Self::Sinusoidal {} => Ok(()),
            Self::Learned { max_seq_len } => {
                if *max_seq_len == 0 {
                    Err(LayerConfigError::Zero { key: "position.max_seq_len" })
                } else {
                    Ok(())
                }
            }
            Self::Rope { base } => {
                check_base(*base)?;
                match rotated.iter().find(|(_, d)| d % 2 != 0) {
                    Some(&(what, dim)) => Err(LayerConfigError::RopeOddDim { what, dim }),
                    None => Ok(()),
                }
            }
            Self::Rope2d { base } => {
                check_base(*base)?;
                match rotated.iter().find(|(_, d)| d % 4 != 0) {
                    Some(&(what, dim)) => Err(LayerConfigError::Rope2dDim { what, dim }),
                    None => Ok(()),
                }
            }
        }
    }

    /// The longest sequence this encoding covers: a learned table's `max_seq_len`; `None` for the
    /// others, which extend to any length.
    pub fn max_seq_len(&self) -> Option<usize> {
        match self {
            Self::Learned { max_seq_len } => Some(*max_seq_len),
            Self::None {} | Self::Sinusoidal {} | Self::Rope { .. } | Self::Rope2d { .. } => None,
        }
    }

    /// Whether this encoding rotates queries and keys (rather than adding to the input).
    pub fn is_rotary(&self) -> bool {
        matches!(self, Self::Rope { .. } | Self::Rope2d { .. })
    }

    /// Build the encoding for a model of width `d_model`.
    pub fn init(&self, d_model: usize, device: &Device) -> Position {
        match self {
            Self::None {} => Position::None(NoPosition),
            Self::Learned { max_seq_len } => Position::Learned(LearnedPosition::new(*max_seq_len, d_model, device)),
            Self::Sinusoidal {} => Position::Sinusoidal(SinusoidalPosition { d_model }),
            Self::Rope { base } => Position::Rope(Rope { base: *base }),
            Self::Rope2d { base } => Position::Rope2d(Rope2d { base: *base }),
        }
    }
}

fn check_base(base: f64) -> Result<(), LayerConfigError> {
    if base.is_finite() && base > 0.0 {
        Ok(())
    } else {
        Err(LayerConfigError::NotPositive { key: "position.base", value: base })
    }
}

/// The position encoding of a model: one variant per [`PositionConfig`] kind.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Position {
    /// No positions.
    None(NoPosition),
    /// Trained absolute positions.
    Learned(LearnedPosition),
    /// Fixed sinusoidal absolute positions.
    Sinusoidal(SinusoidalPosition),
    /// 1-D rotary positions.
    Rope(Rope),
    /// 2-D rotary positions.
    Rope2d(Rope2d),
}

/// The empty encoding.
#[derive(Module, Debug, Default)]
pub struct NoPosition;

/// 1-D RoPE (stateless: only the frequency base).
#[derive(Module, Debug)]
pub struct Rope {
    /// Frequency base.
    pub base: f64,
}

/// 2-D RoPE (stateless: only the frequency base).
#[derive(Module, Debug)]
pub struct Rope2d {
    /// Frequency base.
    pub base: f64,
}

impl Position {
    /// Add an absolute encoding to the token embeddings; rotary and `none` return `x` unchanged.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    ///
    /// # Panics
    ///
    /// Learned positions panic if `n` exceeds `max_seq_len`.
    pub fn add_to_input(&self, x: Tensor<3>, _layout: TokenLayout) -> Tensor<3> {
        match self {
            Self::Learned(p) => p.forward(x),
            Self::Sinusoidal(p) => p.forward(x),
            Self::None(_) | Self::Rope(_) | Self::Rope2d(_) => x,
        }
    }

    /// The rotation that attention layers apply to queries and keys, for `n` tokens laid out as
    /// `layout`; `None` for absolute encodings.
    ///
    /// 1-D RoPE over a grid uses the flattened index `row · cols + col` (the baseline that 2-D RoPE
    /// replaces); 2-D RoPE over a plain sequence puts every token on row 0.
    pub fn rotary(&self, n: usize, layout: TokenLayout, device: &Device) -> Option<Rotary> {
        let flat = || (0..n).map(|i| i as f64).collect::<Vec<_>>();
        match self {
            Self::Rope(r) => Some(Rotary::one_d(flat(), r.base, device)),
            Self::Rope2d(r) => {
                let (rows, cols) = match layout {
                    TokenLayout::Sequence => (vec![0.0; n], flat()),
                    TokenLayout::Grid { cols, .. } => {
                        ((0..n).map(|i| (i / cols) as f64).collect(), (0..n).map(|i| (i % cols) as f64).collect())
                    }
                };
                Some(Rotary::two_d(rows, cols, r.base, device))
            }
            Self::None(_) | Self::Learned(_) | Self::Sinusoidal(_) => None,
        }
    }
}
