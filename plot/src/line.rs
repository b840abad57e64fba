//! A line chart of metric series, with a point at each value.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Format, PlotError, err, finish, finite, render};

/// What a line chart shows.
pub struct LineChart<'a> {
    /// Caption.
    pub title: &'a str,
    /// Name of the y axis.
    pub y_name: &'a str,
    /// The series: a legend label and its points.
    pub lines: &'a [(String, Vec<(f64, f64)>)],
}

/// Draws `chart` at `size` pixels.
pub fn line_chart(
    format: Format,
    size: (u32, u32),
    chart: &LineChart<'_>,
) -> Result<Vec<u8>, PlotError> {
    render(
        format,
        size,
        |root| draw(root, chart),
        |root| draw(root, chart),
    )
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart<'_>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in c.lines.iter().flat_map(|(_, p)| finite(p)) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |lo: f64, hi: f64| {
        let d = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
        (lo - d, hi + d)
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
    let mut chart = ChartBuilder::on(root)
        .caption(c.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .y_desc(c.y_name)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in c.lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = finite(points);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(err)?;
    }
    finish(root, &mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_draw_a_point_per_value() {
        let loss = |n: usize| (0..n).map(|i| (i as f64, 0.7 / (1.0 + i as f64))).collect();
        let lines = vec![
            ("guest".to_owned(), loss(10)),
            ("arbiter".to_owned(), loss(10)),
        ];
        let c = LineChart {
            title: "lr · train/loss",
            y_name: "loss",
            lines: &lines,
        };
        let svg = String::from_utf8(line_chart(Format::Svg, (640, 400), &c).expect("svg"))
            .expect("utf-8");
        assert!(svg.starts_with("<svg") && svg.contains("guest") && svg.contains("arbiter"));
        assert_eq!(svg.matches("<circle").count(), 20);
        let png = line_chart(Format::Png, (640, 400), &c).expect("png");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
        assert!(matches!(
            line_chart(Format::Svg, (50, 400), &c),
            Err(PlotError::Size(50, 400))
        ));
    }
}
