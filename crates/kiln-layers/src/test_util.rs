//! Helpers shared by the unit tests: kiln-kernels' test helpers.

pub use kiln_kernels::testing::*;
