//! Plots drawn by the CLI with plotters: a metric series as a line chart, SVG or PNG. Text uses
//! the DejaVu Sans font embedded in the binary (no system font lookup); a PNG is drawn into a
//! buffer and encoded by `png`.

use std::path::Path;

use consort_protocol::MetricInfo;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::failure::{Failure, fail};
use crate::output::print_json;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn fonts() -> Result<(), Failure> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| fail("internal", "the embedded font does not load".into()))
}

/// The file format, by extension.
enum Format {
    Svg,
    Png,
}

fn format_of(output: &Path) -> Result<Format, Failure> {
    match output.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(Format::Png),
        _ => Err(fail(
            "invalid_argument",
            format!("{}: write a .svg or a .png", output.display()),
        )),
    }
}

/// `consort metric plot JOB TASK NAME -o FILE`.
pub(crate) fn metric(
    metrics: &[MetricInfo],
    job: &str,
    task: &str,
    name: &str,
    output: &Path,
    (width, height): (u32, u32),
    json: bool,
) -> Result<(), Failure> {
    let format = format_of(output)?;
    if !(100..=8000).contains(&width) || !(100..=8000).contains(&height) {
        return Err(fail(
            "invalid_argument",
            "--width and --height are 100 to 8000 pixels".into(),
        ));
    }
    let of_task: Vec<&MetricInfo> = metrics.iter().filter(|m| m.task == task).collect();
    let series: Vec<&MetricInfo> = of_task
        .iter()
        .copied()
        .filter(|m| m.name == name || format!("{}/{}", m.namespace, m.name) == name)
        .collect();
    if series.is_empty() {
        let known: Vec<String> = of_task
            .iter()
            .map(|m| format!("{}/{}", m.namespace, m.name))
            .collect();
        return Err(fail(
            "not_found",
            format!(
                "no metric '{name}' for task {task} of job {job} here{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (it has: {})", known.join(", "))
                }
            ),
        ));
    }
    if series.iter().any(|m| m.namespace != series[0].namespace) {
        return Err(fail(
            "invalid_argument",
            format!("'{name}' is in more than one namespace: say NAMESPACE/{name}"),
        ));
    }
    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|m| (m.role.clone(), m.points.clone()))
        .collect();
    let (namespace, short) = (&series[0].namespace, &series[0].name);
    let title = format!("{task} · {namespace}/{short} · {job}");
    fonts()?;
    let draw_err = |e: String| fail("plot", format!("cannot draw the chart: {e}"));
    let bytes = match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
                chart(&root, &title, short, &lines).map_err(draw_err)?;
            }
            text.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                chart(&root, &title, short, &lines).map_err(draw_err)?;
            }
            encode_png(&rgb, width, height)?
        }
    };
    std::fs::write(output, &bytes)
        .map_err(|e| fail("io", format!("cannot write {}: {e}", output.display())))?;
    let points: usize = lines.iter().map(|(_, p)| p.len()).sum();
    if json {
        print_json(
            &serde_json::json!({"file": output.display().to_string(), "bytes": bytes.len(), "series": lines.len(), "points": points}),
        );
    } else {
        println!(
            "wrote {} ({} series, {points} points)",
            output.display(),
            lines.len()
        );
    }
    Ok(())
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let io = |e: png::EncodingError| fail("plot", format!("cannot encode the PNG: {e}"));
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(io)?;
        w.write_image_data(rgb).map_err(io)?;
    }
    Ok(out)
}

/// A line chart of `lines` (label, points) with a point at each value.
fn chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_name: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all = lines.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
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
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .y_desc(y_name)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    for (i, (label, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let finite: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(finite.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(finite.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(role: &str, n: usize) -> MetricInfo {
        MetricInfo {
            task: "lr".into(),
            role: role.into(),
            namespace: "train".into(),
            name: "loss".into(),
            points: (0..n).map(|i| (i as f64, 0.7 / (1.0 + i as f64))).collect(),
            meta: None,
        }
    }

    #[test]
    fn both_formats_are_drawn_and_a_bad_name_lists_the_known_ones() {
        let dir = std::env::temp_dir().join(format!("consort-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let m = [series("guest", 10), series("arbiter", 10)];
        for file in ["loss.svg", "loss.png"] {
            let out = dir.join(file);
            metric(&m, "j1", "lr", "loss", &out, (640, 400), true).expect("drawn");
            assert!(std::fs::metadata(&out).expect("written").len() > 1000);
        }
        let svg = std::fs::read_to_string(dir.join("loss.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("guest") && svg.contains("arbiter"));
        let err = metric(&m, "j1", "lr", "auc", &dir.join("x.svg"), (640, 400), true)
            .expect_err("no such metric");
        assert!(err.message.contains("train/loss"), "{}", err.message);
        let err = metric(&m, "j1", "lr", "loss", &dir.join("x.jpg"), (640, 400), true)
            .expect_err("format");
        assert!(err.message.contains(".svg or a .png"), "{}", err.message);
        if std::env::var_os("CONSORT_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
