//! Charts of Consort's jobs and metrics, drawn with plotters: a metric series as a line chart,
//! a job's DAG, and an evaluation's ROC curve, KS curve and confusion matrix. Each returns the
//! bytes of an SVG or a PNG; the CLI writes them to files (`consort metric plot`, `consort job
//! dag`) and the daemon's board serves the SVGs.
//!
//! Text uses the DejaVu Sans font embedded here (no system font lookup, so the same output on
//! any machine); a PNG is drawn into a buffer and encoded by `png`.

mod dag;
mod eval;
mod line;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

pub use dag::dag;
pub use eval::{confusion, ks, roc};
pub use line::{LineChart, line_chart};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The size asked for is out of bounds.
    #[error("a chart is 100 to 8000 pixels wide and high (asked {0}×{1})")]
    Size(u32, u32),
    /// plotters failed.
    #[error("cannot draw: {0}")]
    Draw(String),
    /// The PNG encoder failed.
    #[error("cannot encode the PNG: {0}")]
    Png(String),
    /// The embedded font does not load (a build defect).
    #[error("the embedded font does not load")]
    Font,
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SVG text.
    Svg,
    /// PNG image.
    Png,
}

impl Format {
    /// The format a file name asks for by its extension (`.svg`, `.png`), if any.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Some(Format::Svg),
            Some(e) if e.eq_ignore_ascii_case("png") => Some(Format::Png),
            _ => None,
        }
    }
}

/// Colour of a task or run state, the same in every chart and on the board.
pub fn state_colour(status: &str) -> RGBColor {
    match status {
        "success" => RGBColor(46, 160, 67),
        "running" => RGBColor(31, 111, 235),
        "failed" => RGBColor(207, 34, 46),
        "canceled" | "rejected" => RGBColor(140, 140, 140),
        _ => RGBColor(210, 153, 34),
    }
}

fn check_size((width, height): (u32, u32)) -> Result<(), PlotError> {
    if (100..=8000).contains(&width) && (100..=8000).contains(&height) {
        Ok(())
    } else {
        Err(PlotError::Size(width, height))
    }
}

/// Draws with `svg` or `png` (the same drawing, one per backend type) and returns the file's
/// bytes.
fn render(
    format: Format,
    (width, height): (u32, u32),
    svg: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    png: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, PlotError> {
    check_size((width, height))?;
    register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| PlotError::Font)?;
    Ok(match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
                svg(&root).map_err(PlotError::Draw)?;
            }
            text.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                png(&root).map_err(PlotError::Draw)?;
            }
            encode_png(&rgb, width, height)?
        }
    })
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let io = |e: png::EncodingError| PlotError::Png(e.to_string());
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(io)?;
        w.write_image_data(rgb).map_err(io)?;
    }
    Ok(out)
}

/// plotters' error as text.
fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// A chart on two f64 axes.
type Chart2d<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draws the chart's legend at `position`, then presents the drawing.
fn finish<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut Chart2d<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The finite points of `points`.
fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}
