//! Plots drawn by the CLI with plotters: a metric series as a line chart, SVG or PNG. Text uses
//! the DejaVu Sans font embedded in the binary (no system font lookup); a PNG is drawn into a
//! buffer and encoded by `png`.

use std::path::Path;

use consort_protocol::{JobInfo, MetricInfo};
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
    let bytes = render(
        format,
        (width, height),
        |root| chart(root, &title, short, &lines),
        |root| chart(root, &title, short, &lines),
    )?;
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

/// Draws with `svg` or `png` (the same drawing, one per backend type) and returns the file's
/// bytes.
fn render(
    format: Format,
    (width, height): (u32, u32),
    svg: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    png: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, Failure> {
    fonts()?;
    let draw_err = |e: String| fail("plot", format!("cannot draw: {e}"));
    Ok(match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
                svg(&root).map_err(draw_err)?;
            }
            text.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                png(&root).map_err(draw_err)?;
            }
            encode_png(&rgb, width, height)?
        }
    })
}

/// `consort job dag JOB -o FILE`: tasks in columns by depth (a task stands right of everything
/// it waits for), an arrow from each upstream task, each box coloured by the task's state.
pub(crate) fn dag(job: &JobInfo, output: &Path, json: bool) -> Result<(), Failure> {
    let format = format_of(output)?;
    // Depth: 0 for a task without upstream tasks, else one more than its deepest upstream
    // (tasks arrive in dependency order).
    let mut depth: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in &job.tasks {
        let d = t
            .upstream
            .iter()
            .filter_map(|u| depth.get(u.as_str()))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(&t.name, d);
    }
    let columns = depth.values().max().map_or(1, |d| d + 1);
    let mut rows_in = vec![0usize; columns];
    let mut place: std::collections::HashMap<&str, (usize, usize)> = Default::default();
    for t in &job.tasks {
        let d = depth.get(t.name.as_str()).copied().unwrap_or(0);
        place.insert(&t.name, (d, rows_in[d]));
        rows_in[d] += 1;
    }
    let rows = rows_in.iter().copied().max().unwrap_or(1).max(1);
    let (bw, bh, gx, gy, top) = (240i32, 70i32, 70i32, 30i32, 60i32);
    let width = (columns as i32 * (bw + gx) + gx) as u32;
    let height = (top + rows as i32 * (bh + gy) + gy) as u32;
    let title = format!("{} · {} · {}", job.name, job.job_id, job.status);
    let at = |name: &str| -> Option<(i32, i32)> {
        let (c, r) = *place.get(name)?;
        Some((gx + c as i32 * (bw + gx), top + r as i32 * (bh + gy)))
    };
    fn colour(status: &str) -> RGBColor {
        match status {
            "success" => RGBColor(46, 160, 67),
            "running" => RGBColor(31, 111, 235),
            "failed" => RGBColor(207, 34, 46),
            "canceled" => RGBColor(140, 140, 140),
            _ => RGBColor(210, 153, 34),
        }
    }
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        job: &JobInfo,
        title: &str,
        at: &dyn Fn(&str) -> Option<(i32, i32)>,
        (bw, bh): (i32, i32),
    ) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        root.draw(&Text::new(title.to_owned(), (16, 18), ("sans-serif", 18)))
            .map_err(e)?;
        for t in &job.tasks {
            let Some((x, y)) = at(&t.name) else { continue };
            for u in &t.upstream {
                if let Some((ux, uy)) = at(u) {
                    let (from, to) = ((ux + bw, uy + bh / 2), (x, y + bh / 2));
                    root.draw(&PathElement::new(vec![from, to], BLACK.stroke_width(2)))
                        .map_err(e)?;
                    let head = vec![(x - 10, y + bh / 2 - 6), to, (x - 10, y + bh / 2 + 6)];
                    root.draw(&PathElement::new(head, BLACK.stroke_width(2)))
                        .map_err(e)?;
                }
            }
            let c = colour(&t.status);
            root.draw(&Rectangle::new(
                [(x, y), (x + bw, y + bh)],
                c.mix(0.18).filled(),
            ))
            .map_err(e)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + bw, y + bh)],
                c.stroke_width(2),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                format!("{} ({})", t.name, t.component),
                (x + 8, y + 8),
                ("sans-serif", 15),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                t.status.clone(),
                (x + 8, y + 28),
                ("sans-serif", 13).into_font().color(&c),
            ))
            .map_err(e)?;
            let parties: Vec<String> = t
                .parties
                .iter()
                .map(|(p, r)| format!("{p}: {} #{}", r.state, r.attempt))
                .collect();
            root.draw(&Text::new(
                parties.join("  "),
                (x + 8, y + 48),
                ("sans-serif", 11),
            ))
            .map_err(e)?;
        }
        root.present().map_err(e)?;
        Ok(())
    }
    let size = (bw, bh);
    let bytes = render(
        format,
        (width, height),
        |root| draw(root, job, &title, &at, size),
        |root| draw(root, job, &title, &at, size),
    )?;
    std::fs::write(output, &bytes)
        .map_err(|e| fail("io", format!("cannot write {}: {e}", output.display())))?;
    if json {
        print_json(
            &serde_json::json!({"file": output.display().to_string(), "bytes": bytes.len(), "tasks": job.tasks.len()}),
        );
    } else {
        println!("wrote {} ({} tasks)", output.display(), job.tasks.len());
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
    fn a_dag_puts_each_task_right_of_what_it_waits_for() {
        use consort_protocol::{PartyRunInfo, TaskInfo};
        let run = |state: &str| PartyRunInfo {
            state: state.into(),
            attempt: 1,
            started_at: None,
            elapsed_s: None,
            error: None,
        };
        let task = |name: &str, component: &str, status: &str, up: &[&str]| TaskInfo {
            name: name.into(),
            component: component.into(),
            status: status.into(),
            parties: [
                ("bank-a".to_owned(), run(status)),
                ("insurer-b".to_owned(), run(status)),
            ]
            .into_iter()
            .collect(),
            upstream: up.iter().map(|u| u.to_string()).collect(),
        };
        let job = JobInfo {
            job_id: "j1".into(),
            name: "breast".into(),
            status: "running".into(),
            initiator: "bank-a".into(),
            parties: Default::default(),
            submitted_at_ms: 0,
            reason: None,
            tasks: vec![
                task("reader", "reader", "success", &[]),
                task("psi", "psi", "success", &["reader"]),
                task("scale", "feature_scale", "success", &["psi"]),
                task("lr", "hetero_lr", "running", &["scale"]),
                task("stats", "statistics", "failed", &["psi"]),
                task("eval", "evaluation", "waiting", &["lr", "stats"]),
            ],
            revision: 0,
        };
        let dir = std::env::temp_dir().join(format!("consort-dag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for file in ["dag.svg", "dag.png"] {
            dag(&job, &dir.join(file), true).expect("drawn");
        }
        let svg = std::fs::read_to_string(dir.join("dag.svg")).expect("svg");
        // Five columns: reader, psi, scale|stats, lr, eval.
        assert!(svg.contains("width=\"1620\""), "{}", &svg[..200]);
        assert_eq!(svg.matches("<polyline").count(), 2 * 6, "six arrows");
        if std::env::var_os("CONSORT_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
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
