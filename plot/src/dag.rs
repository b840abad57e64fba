//! A job's DAG: tasks in columns by depth (a task stands right of everything it waits for), an
//! arrow from each upstream task, each box coloured by the task's state and listing its state
//! and attempt at every party. A DAG too deep for the widest chart goes top to bottom instead
//! (a task below everything it waits for).

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
    /// Depth grows downwards rather than rightwards.
    vertical: bool,
}

/// The widest (or highest) chart drawn.
const MAX_SIDE: i32 = 8000;

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
    let levels = depth.values().max().map_or(1, |d| d + 1);
    let mut in_level = vec![0usize; levels];
    let mut slot = HashMap::new();
    for t in &job.tasks {
        let d = depth.get(t.name.as_str()).copied().unwrap_or(0);
        slot.insert(t.name.as_str(), (d, in_level[d]));
        in_level[d] += 1;
    }
    let across = in_level.iter().copied().max().unwrap_or(1).max(1) as i32;
    let ((bw, bh), (gx, gy)) = (BOX, GAP);
    let vertical = levels as i32 * (bw + gx) + gx > MAX_SIDE;
    let place = slot
        .into_iter()
        .map(|(name, (d, i))| {
            let (d, i) = (d as i32, i as i32);
            let at = if vertical {
                (gx + i * (bw + gx), TOP + d * (bh + 2 * gy))
            } else {
                (gx + d * (bw + gx), TOP + i * (bh + gy))
            };
            (name, at)
        })
        .collect();
    let (width, height) = if vertical {
        (across * (bw + gx) + gx, TOP + levels as i32 * (bh + 2 * gy))
    } else {
        (
            levels as i32 * (bw + gx) + gx,
            TOP + across * (bh + gy) + gy,
        )
    };
    Layout {
        place,
        size: (
            width.clamp(100, MAX_SIDE) as u32,
            height.clamp(100, MAX_SIDE) as u32,
        ),
        vertical,
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
                let (from, to, head) = if l.vertical {
                    let to = (x + bw / 2, y);
                    let head = vec![(to.0 - 6, y - 10), to, (to.0 + 6, y - 10)];
                    ((ux + bw / 2, uy + bh), to, head)
                } else {
                    let to = (x, y + bh / 2);
                    let head = vec![(x - 10, to.1 - 6), to, (x - 10, to.1 + 6)];
                    ((ux + bw, uy + bh / 2), to, head)
                };
                root.draw(&PathElement::new(vec![from, to], BLACK.stroke_width(2)))
                    .map_err(err)?;
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

        // Fifty tasks in one chain: top to bottom, every box inside the chart.
        let chain = JobInfo {
            tasks: (0..50)
                .map(|i| {
                    let up = format!("t{}", i.max(1) - 1);
                    let up: &[&str] = if i == 0 { &[] } else { &[up.as_str()] };
                    task(&format!("t{i}"), "noop", "success", up)
                })
                .collect(),
            ..job
        };
        let svg = String::from_utf8(dag(Format::Svg, &chain).expect("svg")).expect("utf-8");
        assert!(svg.contains("width=\"380\""), "{}", &svg[..200]);
        assert!(svg.contains("t49 (noop)"));
        let height: i32 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .and_then(|h| h.parse().ok())
            .expect("height");
        assert_eq!(height, TOP + 50 * (BOX.1 + 2 * GAP.1));
    }
}
