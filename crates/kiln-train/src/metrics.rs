//! `RUN_DIR/metrics.csv` (`step,split,metric,value`, one row per value) and PNG plots of it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

/// Appends metric rows to `metrics.csv`.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Optimiser step.
    pub step: usize,
    /// `train`, `valid` or `test`.
    pub split: String,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

impl MetricsLog {
    /// Open (creating it with a header) `metrics.csv` in `run_dir`, dropping rows after `resume_step`
    /// if resuming so that the log matches the checkpoint.
    pub fn open(run_dir: &Path, resume_step: Option<usize>) -> anyhow::Result<Self> {
        let path = run_dir.join("metrics.csv");
        if let Some(step) = resume_step
            && path.exists()
        {
            // A run killed while appending leaves a last line without its newline: it belongs to a
            // step after the checkpoint and is dropped with the rest.
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
            let kept: Vec<String> = parse(&path, complete)?
                .into_iter()
                .filter(|r| r.step <= step)
                .map(|r| format!("{},{},{},{}", r.step, r.split, r.metric, r.value))
                .collect();
            let body =
                std::iter::once("step,split,metric,value".to_string()).chain(kept).collect::<Vec<_>>().join("\n")
                    + "\n";
            kiln_task::run_dir::write_atomic(&path, body.as_bytes())?;
        } else if !path.exists() {
            std::fs::write(&path, "step,split,metric,value\n")
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let file =
            OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path, file })
    }

    /// Append rows.
    pub fn log(&mut self, step: usize, split: &str, metrics: &[(String, f64)]) -> anyhow::Result<()> {
        let mut out = String::new();
        for (name, value) in metrics {
            out.push_str(&format!("{step},{split},{name},{value}\n"));
        }
        self.file.write_all(out.as_bytes()).with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `name value, name value` with four decimals.
pub fn format_metrics(m: &[(String, f64)]) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ")
}

/// Read `metrics.csv`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let parts: Vec<&str> = line.split(',').collect();
        let parsed = (parts.len() == 4)
            .then(|| {
                Some(Row {
                    step: parts[0].parse().ok()?,
                    split: parts[1].into(),
                    metric: parts[2].into(),
                    value: parts[3].parse().ok()?,
                })
            })
            .flatten();
        match parsed {
            Some(r) => rows.push(r),
            None => anyhow::bail!("{}: line {}: expected step,split,metric,value, got `{line}`", path.display(), i + 1),
        }
    }
    Ok(rows)
}

/// One PNG per metric in `RUN_DIR/plots/`, one line per split; and one per group of validation
/// metrics, one line per metric.
pub fn plot_all(run_dir: &Path, groups: &[(String, Vec<String>)]) -> anyhow::Result<Vec<PathBuf>> {
    kiln_task::chart::register_font();
    let rows = read(&run_dir.join("metrics.csv"))?;
    let dir = run_dir.join("plots");
    std::fs::create_dir_all(&dir)?;
    let mut by_metric: BTreeMap<&str, Series> = BTreeMap::new();
    for r in &rows {
        if r.value.is_finite() {
            by_metric.entry(&r.metric).or_default().entry(&r.split).or_default().push((r.step as f64, r.value));
        }
    }
    let mut written = Vec::new();
    for (name, metrics) in groups {
        let series: Series = metrics
            .iter()
            .filter_map(|m| Some((m.as_str(), by_metric.get(m.as_str())?.get("valid")?.clone())))
            .collect();
        if !series.is_empty() {
            let path = dir.join(format!("{name}.png"));
            plot(&path, name, &series).with_context(|| format!("drawing {}", path.display()))?;
            written.push(path);
        }
    }
    for (metric, splits) in by_metric {
        let path = dir.join(format!("{metric}.png"));
        plot(&path, metric, &splits).with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A tick of the step axis: a whole number as one (`200`, not `200.0`).
fn step_label(x: &f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", *x as i64) } else { format!("{x}") }
}

/// `(step, value)` points of one metric, by split.
type Series<'a> = BTreeMap<&'a str, Vec<(f64, f64)>>;

fn plot(path: &Path, metric: &str, splits: &Series) -> anyhow::Result<()> {
    let all: Vec<(f64, f64)> = splits.values().flatten().copied().collect();
    let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(metric, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&step_label)
        .y_desc(metric)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (split, points)) in splits.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(*split)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::step_label;

    /// Whole steps read as integers on the plots' axis (plotters prints `200.0` by default); a
    /// fractional tick of a very short run keeps its fraction.
    #[test]
    fn step_ticks_are_integers() {
        assert_eq!(step_label(&200.0), "200");
        assert_eq!(step_label(&0.0), "0");
        assert_eq!(step_label(&2.5), "2.5");
    }
}
