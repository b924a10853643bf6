//! `kiln bench attention`: every attention kind as a whole multi-head layer (query, key, value and
//! output projections around the kind), forward and forward+backward, over a range of sequence
//! lengths; wall time, peak memory, and the relative error of each kind's attention against exact
//! softmax on the same queries, keys and values.
//!
//! Each (kind, length, mode) point runs in a fresh child process (`--point`), so that its peak
//! memory is its own: the growth of the resident set's high-water mark (`VmHWM` in
//! `/proc/self/status`) over the resident set once the layer and its input exist. The PyTorch twin
//! (`scripts/bench/attention_torch.py`) measures the same way. A point's time is the median of
//! `--repeats` runs after one untimed warm-up, the device synchronised after each.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::*;
use burn::tensor::Distribution;
use kiln_layers::attention::FeatureMap;
use kiln_layers::{AttentionConfig, AttentionOptions, MultiHeadAttentionConfig};
use serde::{Deserialize, Serialize};

use crate::backend;

/// The kinds measured by default, as `--kinds` names them.
pub const KINDS: [&str; 5] = ["softmax", "linear-elu", "linear-exp", "performer", "nystrom"];

/// Performer's random features: `⌊d ln d⌋` for `d = 64`, performer-pytorch's default.
const PERFORMER_FEATURES: usize = 266;
/// Nyström landmarks, pseudo-inverse iterations and the convolution residual's taps.
const NYSTROM: (usize, usize, usize) = (64, 6, 33);

/// `kiln bench attention`.
#[derive(clap::Args)]
pub struct BenchAttentionArgs {
    /// Attention kinds, comma-separated: softmax, linear-elu, linear-exp, performer, nystrom.
    #[arg(long, value_delimiter = ',', default_values_t = KINDS.map(String::from))]
    kinds: Vec<String>,
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [256, 512, 1024, 2048, 4096, 8192, 16384])]
    n: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Number of heads.
    #[arg(long, default_value_t = 8)]
    heads: usize,
    /// Head dimension.
    #[arg(long, default_value_t = 64)]
    head_dim: usize,
    /// Timed runs per point (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Skip softmax points whose score matrices alone would need more than this many GiB (also with
    /// `--point`, which then prints the point as skipped).
    #[arg(long, default_value_t = 10.0)]
    max_gib: f64,
    /// Lengths at which the relative error against softmax is measured.
    #[arg(long, value_delimiter = ',', default_values_t = [256, 1024, 4096])]
    error_n: Vec<usize>,
    /// Backend.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Only measure the relative errors (at `--error-n`), no timing.
    #[arg(long)]
    errors_only: bool,
    /// Also write every point as a JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measure one point `KIND,N,MODE` (MODE: forward or backward) in this process and print it as
    /// JSON; used by the parent run and by scripts/bench/run.py.
    #[arg(long)]
    point: Option<String>,
}

/// One measured point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Who measured it: `kiln` here.
    pub impl_name: String,
    /// Attention kind.
    pub kind: String,
    /// Sequence length.
    pub n: usize,
    /// `forward` or `backward` (forward + backward).
    pub mode: String,
    /// Median wall time in milliseconds; `None` when skipped or failed.
    pub ms: Option<f64>,
    /// Peak memory growth in MiB.
    pub peak_mib: Option<f64>,
    /// Why there is no figure.
    pub note: Option<String>,
}

impl Point {
    /// A point of Kiln's without a figure, and why.
    fn missing(kind: &str, n: usize, mode: &str, note: String) -> Self {
        Self {
            impl_name: "kiln".into(),
            kind: kind.into(),
            n,
            mode: mode.into(),
            ms: None,
            peak_mib: None,
            note: Some(note),
        }
    }
}

/// The config of a kind name.
///
/// # Errors
///
/// An unknown name.
pub fn kind_config(kind: &str) -> anyhow::Result<AttentionConfig> {
    let (landmarks, pinv, conv) = NYSTROM;
    Ok(match kind {
        "softmax" => AttentionConfig::Softmax {},
        "linear-elu" => {
            AttentionConfig::Linear { feature_map: FeatureMap::EluPlusOne, feature_dim: None, chunk_size: 64 }
        }
        "linear-exp" => AttentionConfig::Linear { feature_map: FeatureMap::Exp, feature_dim: None, chunk_size: 64 },
        "performer" => AttentionConfig::Performer {
            num_features: Some(PERFORMER_FEATURES),
            redraw_interval: 0,
            seed: 0,
            chunk_size: 64,
        },
        "nystrom" => AttentionConfig::Nystrom { num_landmarks: landmarks, conv_kernel: conv, pinv_iterations: pinv },
        other => bail!("unknown attention kind `{other}` (expected one of: {})", KINDS.join(", ")),
    })
}

/// A field of `/proc/self/status` in MiB (Linux; `None` elsewhere).
fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// Measure one point in this process.
fn run_point(args: &BenchAttentionArgs, kind: &str, n: usize, mode: &str) -> anyhow::Result<Point> {
    let device = backend::device(&args.device)?;
    let backward = match mode {
        "forward" => false,
        "backward" => true,
        other => bail!("mode `{other}`: expected forward or backward"),
    };
    let d_model = args.heads * args.head_dim;
    let config =
        MultiHeadAttentionConfig { d_model, n_heads: args.heads, causal: false, attention: kind_config(kind)? };
    config.validate()?;
    let device = if backward { device.autodiff() } else { device };
    device.seed(0);
    let layer = config.init(0, &device);
    let x = Tensor::<3>::random([args.batch, n, d_model], Distribution::Normal(0.0, 1.0), &device);
    let upstream = Tensor::<3>::random([args.batch, n, d_model], Distribution::Normal(0.0, 1.0), &device);
    let x = if backward { x.require_grad() } else { x };
    device.sync().context("synchronising the device")?;
    let base = proc_status_mib("VmRSS:");
    let mut times = Vec::with_capacity(args.repeats);
    for i in 0..=args.repeats {
        let start = Instant::now();
        let out = layer.forward(x.clone(), None, None);
        if backward {
            let grads = (out * upstream.clone()).sum().backward();
            drop(grads);
        } else {
            drop(out);
        }
        device.sync().context("synchronising the device")?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    let peak_mib = match (base, proc_status_mib("VmHWM:")) {
        (Some(b), Some(p)) => Some((p - b).max(0.0)),
        _ => None,
    };
    Ok(Point { impl_name: "kiln".into(), kind: kind.into(), n, mode: mode.into(), ms: Some(ms), peak_mib, note: None })
}

/// GiB of the `[b, h, n, n]` score matrices that exact attention keeps: four (scores, probabilities
/// and their gradients) for the backward pass on backends where Burn's autodiff runs the decomposed
/// attention; none for the forward pass, which flex runs as a flash kernel over key tiles, nor for
/// flex's backward pass (Kiln's blockwise backward, `kiln_layers::attention::fused`).
fn softmax_gib(args: &BenchAttentionArgs, n: usize, backward: bool) -> f64 {
    if !backward || args.device.starts_with("flex") {
        return 0.0;
    }
    4.0 * (args.batch * args.heads) as f64 * (n as f64).powi(2) * 4.0 / (1u64 << 30) as f64
}

/// The point, skipped, when softmax's score matrices would exceed `--max-gib`.
fn too_big(args: &BenchAttentionArgs, kind: &str, n: usize, mode: &str) -> Option<Point> {
    let gib = softmax_gib(args, n, mode == "backward");
    (kind == "softmax" && gib > args.max_gib)
        .then(|| Point::missing(kind, n, mode, format!("skipped: needs {gib:.0} GiB > --max-gib {}", args.max_gib)))
}

/// Measure one point in a child process (which applies `--max-gib` itself).
fn spawn_point(args: &BenchAttentionArgs, kind: &str, n: usize, mode: &str) -> anyhow::Result<Point> {
    let exe = std::env::current_exe().context("locating the kiln binary")?;
    let out = Command::new(exe)
        .args(["bench", "attention", "--point", &format!("{kind},{n},{mode}")])
        .args(["--batch", &args.batch.to_string(), "--heads", &args.heads.to_string()])
        .args(["--head-dim", &args.head_dim.to_string(), "--repeats", &args.repeats.to_string()])
        .args(["--device", &args.device, "--max-gib", &args.max_gib.to_string()])
        .output()
        .context("starting a measurement process")?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string();
        return Ok(Point::missing(kind, n, mode, format!("failed ({}): {why}", out.status)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| format!("reading the measurement `{}`", stdout.trim()))
}

/// `‖approx − exact‖ / ‖exact‖` of each kind's attention against exact softmax, on Gaussian queries,
/// keys and values `[1, h, n, d]`. Nyström is measured without its convolution residual, which is
/// an addition to the approximation, not part of it.
///
/// # Errors
///
/// An unknown kind or backend.
pub fn relative_errors(
    kinds: &[String],
    n: usize,
    heads: usize,
    head_dim: usize,
    device: &Device,
) -> anyhow::Result<Vec<f64>> {
    device.seed(1);
    let qkv = || Tensor::<4>::random([1, heads, n, head_dim], Distribution::Normal(0.0, 1.0), device);
    let (q, k, v) = (qkv(), qkv(), qkv());
    let exact = AttentionConfig::Softmax {}.init(heads, head_dim, 0, device).forward(
        q.clone(),
        k.clone(),
        v.clone(),
        AttentionOptions::default(),
    );
    let norm = (exact.clone().powi_scalar(2).sum().into_scalar::<f32>() as f64).sqrt();
    let mut out = Vec::new();
    for kind in kinds {
        let config = match kind_config(kind)? {
            AttentionConfig::Nystrom { num_landmarks, pinv_iterations, .. } => {
                AttentionConfig::Nystrom { num_landmarks, conv_kernel: 0, pinv_iterations }
            }
            c => c,
        };
        let approx = config.init(heads, head_dim, 0, device).forward(
            q.clone(),
            k.clone(),
            v.clone(),
            AttentionOptions::default(),
        );
        let diff = ((approx - exact.clone()).powi_scalar(2).sum().into_scalar::<f32>() as f64).sqrt();
        out.push(diff / norm);
    }
    Ok(out)
}

/// The exponent `p` of `t ∝ nᵖ` between two points.
fn exponent(n0: usize, t0: f64, n1: usize, t1: f64) -> f64 {
    (t1 / t0).ln() / (n1 as f64 / n0 as f64).ln()
}

/// `(ms, peak MiB)` of a measured `(kind, n, mode)`.
type Lookup<'a> = dyn Fn(&str, usize, &str) -> Option<(f64, f64)> + 'a;

/// The fitted exponents between `lo` and `hi`, and the first length where each kind beats softmax.
fn print_fits(args: &BenchAttentionArgs, lo: usize, hi: usize, find: &Lookup) {
    println!(
        "\nfitted exponent of time (memory) in n between {lo} and {hi}, and the first n where the kind is faster than softmax:\n"
    );
    println!("| kind | forward | forward + backward | faster than softmax from (fwd / fwd+bwd) |");
    println!("|---|---|---|---|");
    for kind in &args.kinds {
        let fit = |mode: &str| match (find(kind, lo, mode), find(kind, hi, mode)) {
            (Some((t0, m0)), Some((t1, m1))) => {
                format!("{:.2} ({:.2})", exponent(lo, t0, hi, t1), exponent(lo, m0.max(1.0), hi, m1.max(1.0)))
            }
            _ => "—".into(),
        };
        let overtakes = |mode: &str| {
            args.n
                .iter()
                .find(|&&n| matches!((find(kind, n, mode), find("softmax", n, mode)), (Some((t, _)), Some((s, _))) if t < s))
                .map_or("—".into(), |n| n.to_string())
        };
        println!(
            "| {kind} | {} | {} | {} / {} |",
            fit("forward"),
            fit("backward"),
            overtakes("forward"),
            overtakes("backward")
        );
    }
}

/// Run the benchmark: one table per mode, the fitted exponents, where each kind overtakes softmax,
/// and the relative errors.
///
/// # Errors
///
/// Bad arguments, an unknown kind, or a measurement that cannot be read.
pub fn attention(args: BenchAttentionArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    anyhow::ensure!(
        args.heads > 0 && args.head_dim > 0 && args.batch > 0,
        "--batch, --heads and --head-dim must be positive"
    );
    anyhow::ensure!(
        args.n.iter().chain(&args.error_n).all(|&n| n > 0),
        "--n and --error-n: sequence lengths must be at least 1"
    );
    if let Some(point) = &args.point {
        let parts: Vec<&str> = point.split(',').collect();
        let [kind, n, mode] = parts[..] else { bail!("--point `{point}`: expected KIND,N,MODE") };
        let n: usize = n.parse().with_context(|| format!("--point `{point}`: N must be a length"))?;
        anyhow::ensure!(n > 0, "--point `{point}`: N must be at least 1");
        let p = match too_big(&args, kind, n, mode) {
            Some(skipped) => skipped,
            None => run_point(&args, kind, n, mode)?,
        };
        println!("{}", serde_json::to_string(&p)?);
        return Ok(0);
    }
    for kind in &args.kinds {
        kind_config(kind)?;
    }
    let mut json = match &args.json {
        Some(path) => Some(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => None,
    };
    println!(
        "attention layers: batch {}, {} heads × {} dims (d_model {}), median of {} runs; time ms (peak MiB)",
        args.batch,
        args.heads,
        args.head_dim,
        args.heads * args.head_dim,
        args.repeats
    );
    let mut all = Vec::new();
    let modes: &[&str] = if args.errors_only { &[] } else { &["forward", "backward"] };
    for &mode in modes {
        println!("\n{}:\n", if mode == "forward" { "forward" } else { "forward + backward" });
        println!("| n | {} |", args.kinds.join(" | "));
        println!("|---|{}", "---|".repeat(args.kinds.len()));
        for &n in &args.n {
            let mut cells = Vec::new();
            for kind in &args.kinds {
                let p = spawn_point(&args, kind, n, mode)?;
                eprintln!(
                    "{kind} n={n} {mode}: {:?} ms, {:?} MiB {}",
                    p.ms,
                    p.peak_mib,
                    p.note.as_deref().unwrap_or("")
                );
                if let Some(f) = json.as_mut() {
                    use std::io::Write;
                    writeln!(f, "{}", serde_json::to_string(&p)?)?;
                }
                cells.push(match (p.ms, p.peak_mib) {
                    (Some(ms), Some(mib)) => format!("{ms:.1} ({mib:.0})"),
                    (Some(ms), None) => format!("{ms:.1}"),
                    _ => "—".into(),
                });
                all.push(p);
            }
            println!("| {n} | {} |", cells.join(" | "));
        }
    }
    let find = |kind: &str, n: usize, mode: &str| {
        all.iter().find(|p| p.kind == kind && p.n == n && p.mode == mode).and_then(|p| p.ms.zip(p.peak_mib))
    };
    let (lo, hi) = (4096, 16384);
    if !args.errors_only {
        print_fits(&args, lo, hi, &find);
    }
    let device = backend::device(&args.device)?;
    println!("\nrelative error ‖A − softmax‖/‖softmax‖ of the attention output (Gaussian q, k, v):\n");
    println!("| n | {} |", args.kinds.join(" | "));
    println!("|---|{}", "---|".repeat(args.kinds.len()));
    for &n in &args.error_n {
        let errors = relative_errors(&args.kinds, n, args.heads, args.head_dim, &device)?;
        println!("| {n} | {} |", errors.iter().map(|e| format!("{e:.3}")).collect::<Vec<_>>().join(" | "));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_of_a_power_law() {
        assert!((exponent(4096, 2.0, 16384, 32.0) - 2.0).abs() < 1e-12);
        assert!((exponent(4096, 3.0, 16384, 12.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn softmax_is_its_own_reference_and_nystrom_is_exact_with_a_landmark_per_key() {
        let kinds: Vec<String> = KINDS.map(String::from).to_vec();
        let errors = relative_errors(&kinds, 64, 2, 16, &Device::flex()).unwrap();
        assert!(errors[0] < 1e-6, "{errors:?}");
        // Nyström with 64 landmarks over 64 keys is exact up to the pseudo-inverse's iterations.
        assert!(errors[4] < 0.05, "{errors:?}");
        // The others are different attentions (linear) or random estimates (Performer): a real error.
        assert!(errors[1..4].iter().all(|&e| e > 1e-3 && e < 2.0), "{errors:?}");
    }

    /// The memory rule for skipping: a backward point's four `[b, h, n, n]` f32 matrices on backends
    /// that run Burn's decomposed attention in training, nothing on flex (blockwise backward), nothing
    /// for a forward point; over `--max-gib` the point is reported as skipped with the figure.
    #[test]
    fn softmax_points_are_skipped_by_their_score_matrices() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchAttentionArgs,
        }
        let args = |device: &str| Cli::parse_from(["bench", "--device", device, "--max-gib", "1"]).args;
        let wgpu = args("wgpu");
        assert_eq!(softmax_gib(&wgpu, 4096, true), 2.0);
        assert_eq!(softmax_gib(&wgpu, 4096, false), 0.0);
        assert_eq!(softmax_gib(&args("flex"), 16384, true), 0.0);
        let skipped = too_big(&wgpu, "softmax", 4096, "backward").expect("2 GiB > 1 GiB");
        assert!(skipped.ms.is_none() && skipped.note.as_deref().unwrap().contains("needs 2 GiB > --max-gib 1"));
        assert!(too_big(&wgpu, "softmax", 2048, "backward").is_none());
        assert!(too_big(&wgpu, "linear-elu", 16384, "backward").is_none());
        assert!(too_big(&args("flex"), "softmax", 16384, "backward").is_none());
    }

    #[test]
    fn unknown_kinds_and_points_are_named() {
        let err = kind_config("flash").unwrap_err().to_string();
        assert!(err.contains("flash") && err.contains("nystrom"), "{err}");
    }
}
