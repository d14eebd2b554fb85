//! `results.png`: throughput against the pgbench reference, and latency, per scenario.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Report;

/// Fonts tried in turn (Debian's fonts-dejavu-core ships the first).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// The bottom of the log-scale throughput axis.
const FLOOR: f64 = 10.0;

const SERVICE: RGBColor = RGBColor(31, 119, 180);
const PGBENCH: RGBColor = RGBColor(190, 190, 190);
const P50: RGBColor = RGBColor(44, 160, 44);
const P99: RGBColor = RGBColor(214, 39, 40);

pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let title = format!(
        "make loadtest: {} instance(s), wrk -c{}, {} s per scenario, peak RSS {:.0} MiB",
        report.instances, report.connections, report.duration_secs, report.rss_peak_mib
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(760);
    throughput(report, &left)?;
    latency(report, &right)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn labels(report: &Report) -> Vec<String> {
    report.rows.iter().map(|r| r.label.to_owned()).collect()
}

/// Grouped bars: the service (requests or pairs per second) beside pgbench.
fn throughput(report: &Report, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()> {
    let names = labels(report);
    let top = report.rows.iter().map(|r| r.service_per_sec.max(r.pgbench_per_sec)).fold(FLOOR * 10.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("per second, log scale (ratio to pgbench above the bars)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..names.len() as f64, (FLOOR..top).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| label_at(&names, *x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    for (i, row) in report.rows.iter().enumerate() {
        let x = i as f64;
        chart
            .draw_series([
                Rectangle::new([(x + 0.12, FLOOR), (x + 0.5, row.service_per_sec.max(FLOOR))], SERVICE.filled()),
                Rectangle::new([(x + 0.5, FLOOR), (x + 0.88, row.pgbench_per_sec.max(FLOOR))], PGBENCH.filled()),
            ])
            .map_err(plot_error)?;
        chart
            .draw_series([Text::new(
                format!("{:.2}", row.ratio),
                (x + 0.2, row.service_per_sec.max(row.pgbench_per_sec).max(FLOOR) * 1.25),
                ("sans-serif", 15),
            )])
            .map_err(plot_error)?;
    }
    legend(&mut chart, &[("service", SERVICE), ("pgbench, same SQL", PGBENCH)])
}

/// Grouped bars: p50 and p99 latency in milliseconds.
fn latency(report: &Report, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()> {
    let names = labels(report);
    let top = report.rows.iter().map(|r| r.p99_ms).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("service latency, ms", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..names.len() as f64, 0f64..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| label_at(&names, *x))
        .draw()
        .map_err(plot_error)?;
    for (i, row) in report.rows.iter().enumerate() {
        let x = i as f64;
        chart
            .draw_series([
                Rectangle::new([(x + 0.12, 0.0), (x + 0.5, row.p50_ms)], P50.filled()),
                Rectangle::new([(x + 0.5, 0.0), (x + 0.88, row.p99_ms)], P99.filled()),
            ])
            .map_err(plot_error)?;
    }
    legend(&mut chart, &[("p50", P50), ("p99", P99)])
}

fn legend<'a, 'b: 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    entries: &[(&str, RGBColor)],
) -> anyhow::Result<()> {
    for (name, color) in entries {
        let color = *color;
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_error)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

/// The scenario name under the middle of its group, nothing elsewhere.
fn label_at(names: &[String], x: f64) -> String {
    let centre = x - 0.5;
    if (centre - centre.round()).abs() < 1e-6 && centre >= 0.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return names.get(centre.round() as usize).cloned().unwrap_or_default();
    }
    String::new()
}

fn register_font() -> anyhow::Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .context("no DejaVu Sans font found (Debian: apt-get install fonts-dejavu-core)")?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a font plotters can read"))
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {error}")
}
