//! What the reference-fixture tests share: reading the JSON the scripts in `scripts/reference/` write.

use serde_json::Value;

/// A JSON array of numbers as `f32`s.
///
/// # Panics
///
/// If `v` is not an array of numbers (a broken fixture).
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}
