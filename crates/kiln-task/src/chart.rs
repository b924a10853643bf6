//! Charts that tasks draw among their pictures: histograms side by side in one PNG (plotters, with
//! DejaVu Sans embedded, so no system fonts are needed). The trainer's metric plots register the
//! same font through [`register_font`].

use std::path::Path;

use plotters::prelude::*;

use crate::{Result, TaskError};

/// Register the embedded DejaVu Sans as plotters' `sans-serif` (once per process).
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One panel: the histogram of `values`, with an optional vertical reference line.
#[derive(Debug, Clone)]
pub struct Histogram<'a> {
    /// The panel's caption.
    pub title: String,
    /// The x axis' description.
    pub x_desc: String,
    /// The observations (non-finite ones are left out).
    pub values: &'a [f64],
    /// Number of bins.
    pub bins: usize,
    /// Log-spaced bins on a logarithmic axis (values must be positive).
    pub log_x: bool,
    /// A vertical line at `x`, with its legend text.
    pub marker: Option<(f64, String)>,
}

/// The bin edges (`bins + 1`, increasing) covering `values`' range (and the marker), evenly spaced
/// in `x` or in `ln x`. `None` without finite values (or, with `log_x`, without positive ones).
pub fn bin_edges(values: &[f64], bins: usize, log_x: bool, marker: Option<f64>) -> Option<Vec<f64>> {
    let bins = bins.max(1);
    let usable = |v: &f64| v.is_finite() && (!log_x || *v > 0.0);
    let (mut lo, mut hi) = values
        .iter()
        .chain(marker.iter())
        .filter(|v| usable(v))
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    if lo > hi {
        return None;
    }
    let map = |v: f64| if log_x { v.ln() } else { v };
    let unmap = |v: f64| if log_x { v.exp() } else { v };
    if hi <= lo {
        // One distinct value: a bin around it.
        (lo, hi) = if log_x { (lo / 1.1, hi * 1.1) } else { (lo - 0.5, hi + 0.5) };
    }
    let (a, b) = (map(lo), map(hi));
    Some((0..=bins).map(|i| if i == bins { hi } else { unmap(a + (b - a) * i as f64 / bins as f64) }).collect())
}

/// Counts of `values` in the bins of `edges` (a value on an inner edge goes to the bin above it;
/// the last bin includes its upper edge). Values outside the edges or not finite are not counted.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<usize> {
    let bins = edges.len().saturating_sub(1);
    let mut counts = vec![0; bins];
    for &v in values {
        if bins == 0 || !v.is_finite() || v < edges[0] || v > edges[bins] {
            continue;
        }
        let i = edges[1..bins].partition_point(|&e| e <= v);
        counts[i] += 1;
    }
    counts
}

/// An axis tick: whole numbers from 10 up, three significant digits below.
fn tick(x: &f64) -> String {
    if x.abs() >= 10.0 { format!("{x:.0}") } else { format!("{}", (x * 1000.0).round() / 1000.0) }
}

/// Draw `panels` side by side into one PNG at `path`.
///
/// # Errors
///
/// A panel without usable values, or the file cannot be written.
pub fn write_histograms(path: &Path, panels: &[Histogram<'_>]) -> Result<()> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| TaskError::Invalid(format!("drawing {}: {e}", path.display()));
    let width = 640 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        let edges = bin_edges(panel.values, panel.bins, panel.log_x, panel.marker.as_ref().map(|m| m.0))
            .ok_or_else(|| fail(&format!("no usable values for `{}`", panel.title)))?;
        let counts = bin_counts(panel.values, &edges);
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
        let (x0, x1) = (edges[0], edges[edges.len() - 1]);
        let mut builder = ChartBuilder::on(area);
        builder.caption(&panel.title, ("sans-serif", 20)).margin(14).x_label_area_size(44).y_label_area_size(60);
        let bars = edges
            .windows(2)
            .zip(&counts)
            .map(|(e, &c)| Rectangle::new([(e[0], 0.0), (e[1], c as f64)], BLUE.mix(0.55).filled()));
        let marker = panel.marker.clone();
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart.map_err(|e| fail(&e))?;
                chart
                    .configure_mesh()
                    .x_desc(panel.x_desc.as_str())
                    .y_desc("count")
                    .x_labels(12)
                    .x_label_formatter(&tick)
                    .y_label_formatter(&|y: &f64| format!("{y:.0}"))
                    .draw()
                    .map_err(|e| fail(&e))?;
                chart.draw_series(bars).map_err(|e| fail(&e))?;
                if let Some((x, label)) = marker {
                    chart
                        .draw_series(LineSeries::new([(x, 0.0), (x, top)], RED.stroke_width(2)))
                        .map_err(|e| fail(&e))?
                        .label(label)
                        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::UpperLeft)
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .draw()
                        .map_err(|e| fail(&e))?;
                }
            }};
        }
        if panel.log_x {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), 0.0..top));
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, 0.0..top));
        }
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear and logarithmic edges cover the range evenly; every value lands in exactly one bin,
    /// the maximum in the last.
    #[test]
    fn bins_cover_and_count_every_value() {
        let values = [1.0, 2.0, 2.5, 4.0, 7.0, 10.0];
        let edges = bin_edges(&values, 3, false, None).unwrap();
        assert_eq!(edges, vec![1.0, 4.0, 7.0, 10.0]);
        assert_eq!(bin_counts(&values, &edges), vec![3, 1, 2]);
        let log = bin_edges(&[1.0, 10.0, 100.0, 1000.0], 3, true, None).unwrap();
        for (e, want) in log.iter().zip([1.0, 10.0, 100.0, 1000.0]) {
            assert!((e - want).abs() < 1e-9 * want, "{log:?}");
        }
        assert_eq!(bin_counts(&[1.0, 10.0, 100.0, 1000.0, 5.0], &log), vec![2, 1, 2]);
        // The marker widens the range; non-finite and (log) non-positive values are left out.
        let edges = bin_edges(&[2.0, 3.0, f64::NAN, -1.0], 2, true, Some(20.0)).unwrap();
        assert!((edges[0] - 2.0).abs() < 1e-12 && (edges[2] - 20.0).abs() < 1e-12, "{edges:?}");
        assert!(bin_edges(&[f64::NAN], 4, false, None).is_none());
        assert_eq!(bin_edges(&[5.0, 5.0], 1, false, None).unwrap(), vec![4.5, 5.5]);
    }

    /// A two-panel PNG is written with the expected size and some blue bars.
    #[test]
    fn histograms_are_drawn() {
        let dir = std::env::temp_dir().join(format!("kiln-task-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.png");
        let a: Vec<f64> = (1..=200).map(|i| f64::from(i) * 0.5).collect();
        let panels = [
            Histogram {
                title: "a".into(),
                x_desc: "x".into(),
                values: &a,
                bins: 20,
                log_x: true,
                marker: Some((20.0, "20".into())),
            },
            Histogram { title: "b".into(), x_desc: "y".into(), values: &a, bins: 10, log_x: false, marker: None },
        ];
        write_histograms(&path, &panels).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (1280, 440));
        let bluish = buf.chunks(3).filter(|p| p[2] > 150 && p[0] < 150 && p[1] < 150).count();
        assert!(bluish > 1000, "{bluish} bar pixels");
        let empty: [f64; 0] = [];
        let bad =
            [Histogram { title: "e".into(), x_desc: "x".into(), values: &empty, bins: 4, log_x: false, marker: None }];
        assert!(write_histograms(&dir.join("e.png"), &bad).unwrap_err().to_string().contains("no usable values"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
