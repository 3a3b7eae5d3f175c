//! The concurrency plot: concurrent sessions over time, one line per service, as SVG (with title,
//! axes labels and legend) and PNG (the same lines and grid; no text, so no font is needed).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::record::format_time;
use crate::{AuditError, Result};

/// The colour of the `index`-th series: the same in both images, so a reader (or a test) can
/// tell the series apart in the PNG.
pub fn series_color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
    ];
    COLORS[index % COLORS.len()]
}

const SIZE: (u32, u32) = (1000, 500);

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Vec<(i64, u64)>>,
    text: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let points = series.values().flatten();
    let (x0, x1) = points.clone().fold((i64::MAX, i64::MIN), |(lo, hi), (t, _)| (lo.min(*t), hi.max(*t)));
    let (x0, x1) = if x0 > x1 { (0, 1) } else { (x0, x1.max(x0 + 1)) };
    let y1 = points.map(|(_, c)| *c).max().unwrap_or(0).max(1) + 1;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder.caption("Concurrent sessions", ("sans-serif", 22)).x_label_area_size(40).y_label_area_size(50);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, 0u64..y1)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_labels(6).x_label_formatter(&|x| format_time(*x)[..16].replace('T', " ")).y_desc("sessions");
    }
    mesh.draw()?;
    for (index, (service, points)) in series.iter().enumerate() {
        let color = series_color(index);
        let drawn = chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(3)))?;
        if text {
            drawn
                .label(service.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        }
    }
    if text {
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

/// Writes `<out>.svg` and `<out>.png`; returns their paths.
pub fn concurrency(
    series: &BTreeMap<String, Vec<(i64, u64)>>,
    out: &Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let svg = out.with_extension("svg");
    let png = out.with_extension("png");
    let fail = |path: &Path, e: String| AuditError::Archive(format!("writing {}: {e}", path.display()));
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), series, true).map_err(|e| fail(&svg, e.to_string()))?;
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), series, false).map_err(|e| fail(&png, e.to_string()))?;
    Ok((svg, png))
}
