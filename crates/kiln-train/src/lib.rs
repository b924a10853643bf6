//! The `kiln` trainer as a library: the binary's modules, public so that tools (the fuzz targets in
//! `fuzz/`, for one) can reach the config parser, checkpoints and metrics log without running `kiln`.

pub mod backend;
pub mod bench;
pub mod bench_attention;
pub mod commands;
pub mod config;
pub mod ema;
pub mod metrics;
pub mod models;
pub mod optim;
pub mod parallel;
pub mod remote;
pub mod run;
pub mod sentences;
pub mod trainer;
pub mod watchdog;
