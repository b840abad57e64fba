//! A job's DAG: tasks in columns by depth (a task stands right of everything it waits for), an
//! arrow from each upstream task, each box coloured by the task's state and listing its state
//! and attempt at every party.

use std::collections::HashMap;

use consort_protocol::JobInfo;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Format, PlotError, err, render, state_colour};

/// Box width and height, gaps between columns and rows, room for the title.
const BOX: (i32, i32) = (240, 70);
const GAP: (i32, i32) = (70, 30);
const TOP: i32 = 60;

/// Where each task's box goes.
struct Layout<'a> {
    place: HashMap<&'a str, (i32, i32)>,
    size: (u32, u32),
}

fn layout(job: &JobInfo) -> Layout<'_> {
    // Depth: 0 for a task without upstream tasks, else one more than its deepest upstream
    // (tasks arrive in dependency order).
    let mut depth: HashMap<&str, usize> = HashMap::new();
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
    let mut place = HashMap::new();
    let ((bw, bh), (gx, gy)) = (BOX, GAP);
    for t in &job.tasks {
        let d = depth.get(t.name.as_str()).copied().unwrap_or(0);
        let r = rows_in[d];
        rows_in[d] += 1;
        place.insert(
            t.name.as_str(),
            (gx + d as i32 * (bw + gx), TOP + r as i32 * (bh + gy)),
        );
    }
    let rows = rows_in.iter().copied().max().unwrap_or(1).max(1);
    let width = (columns as i32 * (bw + gx) + gx) as u32;
    let height = (TOP + rows as i32 * (bh + gy) + gy) as u32;
    Layout {
        place,
        size: (width.clamp(100, 8000), height.clamp(100, 8000)),
    }
}

/// Draws `job`'s DAG; the size follows from the number of tasks and their depth.
pub fn dag(format: Format, job: &JobInfo) -> Result<Vec<u8>, PlotError> {
    let l = layout(job);
    render(
        format,
        l.size,
        |root| draw(root, job, &l),
        |root| draw(root, job, &l),
    )
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    job: &JobInfo,
    l: &Layout<'_>,
) -> Result<(), String> {
    let (bw, bh) = BOX;
    root.fill(&WHITE).map_err(err)?;
    let title = format!("{} · {} · {}", job.name, job.job_id, job.status);
    root.draw(&Text::new(title, (16, 18), ("sans-serif", 18)))
        .map_err(err)?;
    for t in &job.tasks {
        let Some(&(x, y)) = l.place.get(t.name.as_str()) else {
            continue;
        };
        for u in &t.upstream {
            if let Some(&(ux, uy)) = l.place.get(u.as_str()) {
                let (from, to) = ((ux + bw, uy + bh / 2), (x, y + bh / 2));
                root.draw(&PathElement::new(vec![from, to], BLACK.stroke_width(2)))
                    .map_err(err)?;
                let head = vec![(x - 10, y + bh / 2 - 6), to, (x - 10, y + bh / 2 + 6)];
                root.draw(&PathElement::new(head, BLACK.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        let c = state_colour(&t.status);
        root.draw(&Rectangle::new(
            [(x, y), (x + bw, y + bh)],
            c.mix(0.18).filled(),
        ))
        .map_err(err)?;
        root.draw(&Rectangle::new(
            [(x, y), (x + bw, y + bh)],
            c.stroke_width(2),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            format!("{} ({})", t.name, t.component),
            (x + 8, y + 8),
            ("sans-serif", 15),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            t.status.clone(),
            (x + 8, y + 28),
            ("sans-serif", 13).into_font().color(&c),
        ))
        .map_err(err)?;
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
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_protocol::{PartyRunInfo, TaskInfo};

    #[test]
    fn a_dag_puts_each_task_right_of_what_it_waits_for() {
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
            params: Default::default(),
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
            ended_at_ms: None,
        };
        let svg = String::from_utf8(dag(Format::Svg, &job).expect("svg")).expect("utf-8");
        // Five columns: reader, psi, scale|stats, lr, eval.
        assert!(svg.contains("width=\"1620\""), "{}", &svg[..200]);
        assert_eq!(svg.matches("<polyline").count(), 2 * 6, "six arrows");
        assert!(svg.contains("insurer-b: running #1"));
        let png = dag(Format::Png, &job).expect("png");
        assert!(png.starts_with(b"\x89PNG"));
    }
}
