//! An evaluation's charts: the ROC curve, the KS curve (true and false positive rates against
//! the share of rows predicted positive, with the largest gap marked) and the confusion matrix.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Format, PlotError, err, finish, finite, render};

const TPR: RGBColor = RGBColor(31, 111, 235);
const FPR: RGBColor = RGBColor(207, 34, 46);

/// The ROC curve through `points` (false positive rate, true positive rate), with the diagonal.
pub fn roc(
    format: Format,
    size: (u32, u32),
    title: &str,
    points: &[(f64, f64)],
) -> Result<Vec<u8>, PlotError> {
    let points = finite(points);
    render(
        format,
        size,
        |r| draw_roc(r, title, &points),
        |r| draw_roc(r, title, &points),
    )
}

fn draw_roc<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(f64, f64)],
) -> Result<(), String> {
    unit_chart(
        root,
        title,
        "false positive rate",
        "true positive rate",
        |chart| {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.0), (1.0, 1.0)],
                    BLACK.mix(0.3).stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(points.to_vec(), TPR.stroke_width(2)))
                .map_err(err)?
                .label("ROC")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], TPR.stroke_width(2)));
            Ok(())
        },
    )
}

/// The KS curve from the ROC `points` and the counts of `positives` and `negatives`; returns
/// the chart and the KS statistic.
pub fn ks(
    format: Format,
    size: (u32, u32),
    title: &str,
    points: &[(f64, f64)],
    positives: u64,
    negatives: u64,
) -> Result<(Vec<u8>, f64), PlotError> {
    let total = (positives + negatives).max(1) as f64;
    let share = |(fpr, tpr): (f64, f64)| (tpr * positives as f64 + fpr * negatives as f64) / total;
    let points = finite(points);
    let tpr: Vec<(f64, f64)> = points.iter().map(|&p| (share(p), p.1)).collect();
    let fpr: Vec<(f64, f64)> = points.iter().map(|&p| (share(p), p.0)).collect();
    let (at, ks) = points
        .iter()
        .map(|&p| (share(p), p.1 - p.0))
        .fold((0.0, 0.0), |best, c| if c.1 > best.1 { c } else { best });
    let top = points
        .iter()
        .find(|&&p| share(p) == at)
        .copied()
        .unwrap_or((0.0, 0.0));
    let caption = format!("{title} · KS {ks:.4}");
    let k = Ks {
        caption: &caption,
        tpr: &tpr,
        fpr: &fpr,
        at,
        top,
        ks,
    };
    let bytes = render(format, size, |r| draw_ks(r, &k), |r| draw_ks(r, &k))?;
    Ok((bytes, ks))
}

struct Ks<'a> {
    caption: &'a str,
    tpr: &'a [(f64, f64)],
    fpr: &'a [(f64, f64)],
    /// Where the gap is largest, the rates there, and the gap.
    at: f64,
    top: (f64, f64),
    ks: f64,
}

fn draw_ks<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, k: &Ks<'_>) -> Result<(), String> {
    unit_chart(
        root,
        k.caption,
        "share of rows predicted positive",
        "rate",
        |chart| {
            for (label, line, colour) in [("TPR", k.tpr, TPR), ("FPR", k.fpr, FPR)] {
                chart
                    .draw_series(LineSeries::new(line.to_vec(), colour.stroke_width(2)))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .draw_series(LineSeries::new(
                    vec![(k.at, k.top.0), (k.at, k.top.1)],
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("KS {:.4}", k.ks))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2))
                });
            Ok(())
        },
    )
}

/// The confusion matrix `[tp, fp, tn, fn]`: rows are the truth, columns the prediction.
pub fn confusion(
    format: Format,
    size: (u32, u32),
    title: &str,
    [tp, fp, tn, fn_]: [u64; 4],
) -> Result<Vec<u8>, PlotError> {
    let cells = [tp, fp, tn, fn_];
    render(
        format,
        size,
        |r| draw_confusion(r, title, cells),
        |r| draw_confusion(r, title, cells),
    )
}

fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    [tp, fp, tn, fn_]: [u64; 4],
) -> Result<(), String> {
    let total = (tp + fp + tn + fn_).max(1) as f64;
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(title.to_owned(), (16, 12), ("sans-serif", 18)))
        .map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (left, top) = (150i32, 80i32);
    let cell = ((w as i32 - left - 20) / 2)
        .min((h as i32 - top - 20) / 2)
        .max(20);
    let cells = [
        (0, 0, "true positive", tp),
        (1, 0, "false negative", fn_),
        (0, 1, "false positive", fp),
        (1, 1, "true negative", tn),
    ];
    for (label, col) in [("predicted 1", 0), ("predicted 0", 1)] {
        root.draw(&Text::new(
            label,
            (left + col * cell + 8, top - 24),
            ("sans-serif", 14),
        ))
        .map_err(err)?;
    }
    for (label, row) in [("actual 1", 0), ("actual 0", 1)] {
        root.draw(&Text::new(
            label,
            (16, top + row * cell + cell / 2),
            ("sans-serif", 14),
        ))
        .map_err(err)?;
    }
    for (col, row, name, n) in cells {
        let (x, y) = (left + col * cell, top + row * cell);
        let colour = if col == row { TPR } else { FPR };
        root.draw(&Rectangle::new(
            [(x, y), (x + cell, y + cell)],
            colour.mix(0.1 + 0.6 * n as f64 / total).filled(),
        ))
        .map_err(err)?;
        root.draw(&Rectangle::new(
            [(x, y), (x + cell, y + cell)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            n.to_string(),
            (x + 12, y + cell / 2 - 14),
            ("sans-serif", 24),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            name,
            (x + 12, y + cell / 2 + 16),
            ("sans-serif", 12),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

use plotters::coord::types::RangedCoordf64;

type Unit<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart on [0, 1]², drawn by `series`, with its legend.
fn unit_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_name: &str,
    y_name: &str,
    series: impl FnOnce(&mut Unit<'_, DB>) -> Result<(), String>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_name)
        .y_desc(y_name)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    series(&mut chart)?;
    finish(root, &mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_ks_and_confusion_are_drawn() {
        let points = [(0.0, 0.0), (0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (1.0, 1.0)];
        let svg = roc(Format::Svg, (480, 480), "eval · ROC · AUC 0.9", &points).expect("roc");
        let svg = String::from_utf8(svg).expect("utf-8");
        assert!(svg.contains("AUC 0.9") && svg.contains("<polyline"));
        let (svg, ks) = ks(Format::Svg, (480, 480), "eval", &points, 4, 4).expect("ks");
        assert!((ks - 0.5).abs() < 1e-12, "{ks}");
        assert!(String::from_utf8(svg).expect("utf-8").contains("KS 0.5000"));
        let svg = confusion(Format::Svg, (480, 400), "eval", [3, 1, 4, 2]).expect("confusion");
        let svg = String::from_utf8(svg).expect("utf-8");
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for s in ["true positive", "false negative", "3", "4"] {
            assert!(texts.contains(&s), "{s} in {svg}");
        }
        assert!(
            confusion(Format::Png, (480, 400), "eval", [3, 1, 4, 2])
                .expect("png")
                .starts_with(b"\x89PNG")
        );
    }
}
