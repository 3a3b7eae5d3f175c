//! The concurrency plot: concurrent sessions over time, one line per service, as SVG and PNG, each
//! with its title, axes and their units, and a legend. The PNG's text is drawn with the font the
//! project ships (DejaVu Sans, `fonts/`), so it reads the same on any machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::record::format_time;
use crate::{AuditError, Result};

/// The font of every text of the plots, registered as `sans-serif`.
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FONT_NAME: &str = "sans-serif";

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

/// Round steps of a time axis, in seconds: a second to thirty days.
const STEPS: [i64; 17] =
    [1, 5, 10, 30, 60, 300, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800, 2_592_000];

/// At most `count` ticks at a round UTC step inside `[from, to]`, and the step.
pub fn time_ticks(from: i64, to: i64, count: i64) -> (i64, Vec<i64>) {
    let step = STEPS.into_iter().find(|step| (to - from) / step < count).unwrap_or(STEPS[STEPS.len() - 1]);
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    (step, (0..).map(|n| first + n * step).take_while(|t| *t <= to).collect())
}

/// A tick's label: as much of its UTC time as tells its step apart (a day, a time of day, both).
pub fn tick_label(at: i64, step: i64) -> String {
    let text = format_time(at).replace('T', " ");
    if step >= 86_400 {
        text[..10].to_owned()
    } else if step < 60 {
        text[11..19].to_owned()
    } else if at.rem_euclid(86_400) == 0 || step >= 21_600 {
        text[5..16].to_owned()
    } else {
        text[11..16].to_owned()
    }
}

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut failed = false;
    ONCE.call_once(|| failed = plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT).is_err());
    if failed {
        return Err(AuditError::Write("the plot: the shipped font does not load".into()));
    }
    Ok(())
}

/// The time span drawn: the points' first and last, or the range asked when there is none.
fn span(series: &BTreeMap<String, Vec<(i64, u64)>>, range: (i64, i64)) -> (i64, i64) {
    let times = series.values().flatten().map(|(t, _)| *t);
    let (x0, x1) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if x0 > x1 {
        (range.0, range.1.max(range.0 + 10))
    } else {
        (x0, x1.max(x0 + 10))
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Vec<(i64, u64)>>,
    range: (i64, i64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (x0, x1) = span(series, range);
    let y1 = series.values().flatten().map(|(_, c)| *c).max().unwrap_or(0).max(1) + 1;
    let (step, ticks) = time_ticks(x0, x1, 8);
    let title = format!("Concurrent sessions per service, {} to {} UTC", tick_time(x0), tick_time(x1));
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(title, (FONT_NAME, 20))
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((x0..x1).with_key_points(ticks), 0u64..y1)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| tick_label(*x, step))
        .x_desc("time (UTC)")
        .y_desc("concurrent sessions")
        .label_style((FONT_NAME, 14))
        .axis_desc_style((FONT_NAME, 15))
        .draw()?;
    for (index, (service, points)) in series.iter().enumerate() {
        let color = series_color(index);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(3)))?
            .label(service.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT_NAME, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn tick_time(at: i64) -> String {
    format_time(at)[..16].replace('T', " ")
}

/// Writes `<out>.svg` and `<out>.png` of the series over `range` (the range asked: the span drawn
/// when no run is in it); returns their paths.
pub fn concurrency(
    series: &BTreeMap<String, Vec<(i64, u64)>>,
    range: (i64, i64),
    out: &Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    register_font()?;
    let svg = out.with_extension("svg");
    let png = out.with_extension("png");
    let fail = |path: &Path, e: String| AuditError::Write(format!("{}: {e}", path.display()));
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), series, range).map_err(|e| fail(&svg, e.to_string()))?;
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), series, range).map_err(|e| fail(&png, e.to_string()))?;
    Ok((svg, png))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_time;

    #[test]
    fn ticks_fall_on_round_utc_times_and_their_labels_are_distinct() {
        let at = |t| parse_time(t).unwrap();
        // GIVEN ranges of half a minute, ten minutes, a day and a month
        let cases = [
            (at("2026-11-22T10:03:10Z"), at("2026-11-22T10:03:40Z"), "10:03:10"),
            (at("2026-11-22T10:03:10Z"), at("2026-11-22T10:13:00Z"), "10:05"),
            (at("2026-11-22T00:00:00Z"), at("2026-11-23T00:00:00Z"), "11-22 00:00"),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"), "2026-11-05"),
        ];
        for (from, to, first) in cases {
            // WHEN the axis is ticked
            let (step, ticks) = time_ticks(from, to, 8);
            // THEN there are a few ticks, inside the range, a round step apart
            assert!((2..=8).contains(&ticks.len()), "{ticks:?}");
            assert!(ticks.iter().all(|t| (from..=to).contains(t) && t % step == 0));
            // AND no two read the same, the first as expected
            let labels: Vec<String> = ticks.iter().map(|t| tick_label(*t, step)).collect();
            let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
            assert_eq!(distinct.len(), labels.len(), "{labels:?}");
            assert_eq!(labels[0], first);
        }
    }

    #[test]
    fn the_shipped_font_loads() {
        register_font().unwrap();
    }
}
