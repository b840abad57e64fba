//! Board page load on real release daemons: bank-a, insurer-b and clinic-c on loopback run a
//! job of 50 `noop` tasks (five chains of ten, every task at all three parties: 150 runs), then
//! the job's page is loaded again and again, each load making the requests the browser makes:
//! the page, its script and style, the job, its DAG (an SVG drawn by consort-plot), its metrics
//! and its log lines. Each request's time is measured by the client on loopback (connect,
//! request, whole answer): the server's time plus the loopback round trip.
//!
//! The static style sheet is the baseline in the same run (the cost of the HTTP stack alone).
//!
//! Run: `cargo bench -p consort-tests --bench board [-- LOADS]` (default 200 loads).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::board::{Session, request};
use consort_tests::*;

const T: Duration = Duration::from_secs(300);

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn main() {
    let loads: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    let port = free_port();
    fed.append_config(0, &format!("\n[board]\nlisten = \"127.0.0.1:{port}\"\n"));
    let d = fed.start_connected();
    let a = &fed.parties[0];

    let mut yaml = String::from(
        "name: fifty\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n",
    );
    for i in 0..50 {
        if i < 5 {
            yaml.push_str(&format!("  t{i:02}: {{component: noop}}\n"));
        } else {
            yaml.push_str(&format!(
                "  t{i:02}: {{component: noop, depends_on: [t{:02}]}}\n",
                i - 5
            ));
        }
    }
    let id = submit(a, &fed.job_file("fifty.yaml", &yaml));
    let started = Instant::now();
    assert_succeeds(&fed.parties, &id, T);
    println!(
        "job of 50 tasks × 3 parties: success in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let job = job_show(a, &id);
    let runs: usize = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["parties"].as_object().unwrap().len())
        .sum();
    assert_eq!(runs, 150);

    let url = a.cli(&["--json", "board"]).json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = Session::login(&url);
    let paths = [
        "/".to_owned(),
        "/assets/board.js".to_owned(),
        "/assets/board.css".to_owned(),
        format!("/api/jobs/{id}"),
        format!("/api/jobs/{id}/dag.svg"),
        format!("/api/jobs/{id}/metrics"),
        format!("/api/jobs/{id}/log"),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut totals = Vec::new();
    let mut bytes = vec![0usize; paths.len()];
    let cookie = [("Cookie", s.cookie.as_str())];
    // Warm up: a few loads not counted.
    for _ in 0..5 {
        for p in &paths {
            request(s.addr, "GET", p, &cookie, "").unwrap();
        }
    }
    let cpu0 = cpu_s(d[0].pid());
    for _ in 0..loads {
        let mut total = 0.0;
        for (i, p) in paths.iter().enumerate() {
            let t = Instant::now();
            let r = request(s.addr, "GET", p, &cookie, "").unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.status, 200, "{p}: {}", r.body);
            bytes[i] = r.body.len();
            times[i].push(ms);
            total += ms;
        }
        totals.push(total);
    }
    let cpu = cpu_s(d[0].pid()) - cpu0;
    let base = pct(&mut times[2].clone(), 0.5);
    println!(
        "\n{loads} loads of the job page (50 tasks × 3 parties), client-side times on loopback:"
    );
    println!(
        "| request | bytes | p50 ms | p99 ms | p50 / static baseline |\n|---|---|---|---|---|"
    );
    for (i, p) in paths.iter().enumerate() {
        let shown = p.replace(&id, "JOB");
        let (p50, p99) = (pct(&mut times[i], 0.5), pct(&mut times[i], 0.99));
        println!(
            "| `{shown}` | {} | {p50:.2} | {p99:.2} | {:.1}× |",
            bytes[i],
            p50 / base
        );
    }
    println!(
        "| **whole page (sequential)** | {} | **{:.2}** | **{:.2}** | {:.1}× |",
        bytes.iter().sum::<usize>(),
        pct(&mut totals, 0.5),
        pct(&mut totals, 0.99),
        pct(&mut totals, 0.5) / base
    );
    println!(
        "\nguest daemon CPU per page load: {:.2} ms (goal: page load ≤ 100 ms server time)",
        cpu * 1e3 / loads as f64
    );
}
