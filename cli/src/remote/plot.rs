//! `consort metric plot` and `consort job dag`: pick what to draw, draw it with `consort-plot`
//! (SVG or PNG by the file's extension), write the file.

use std::path::Path;

use consort_plot::{Format, LineChart, PlotError};
use consort_protocol::{JobInfo, MetricInfo};

use crate::failure::{Failure, fail};
use crate::output::print_json;

fn format_of(output: &Path) -> Result<Format, Failure> {
    Format::of_path(output).ok_or_else(|| {
        fail(
            "invalid_argument",
            format!("{}: write a .svg or a .png", output.display()),
        )
    })
}

fn plot_err(e: PlotError) -> Failure {
    match e {
        PlotError::Size(..) => fail(
            "invalid_argument",
            "--width and --height are 100 to 8000 pixels".into(),
        ),
        e => fail("plot", e.to_string()),
    }
}

fn write(output: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(output, bytes)
        .map_err(|e| fail("io", format!("cannot write {}: {e}", output.display())))
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
    let chart = LineChart {
        title: &title,
        y_name: short,
        lines: &lines,
    };
    let bytes = consort_plot::line_chart(format, (width, height), &chart).map_err(plot_err)?;
    write(output, &bytes)?;
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

/// `consort job dag JOB -o FILE`.
pub(crate) fn dag(job: &JobInfo, output: &Path, json: bool) -> Result<(), Failure> {
    let format = format_of(output)?;
    let bytes = consort_plot::dag(format, job).map_err(plot_err)?;
    write(output, &bytes)?;
    if json {
        print_json(
            &serde_json::json!({"file": output.display().to_string(), "bytes": bytes.len(), "tasks": job.tasks.len()}),
        );
    } else {
        println!("wrote {} ({} tasks)", output.display(), job.tasks.len());
    }
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
