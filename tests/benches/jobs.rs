//! Job benchmarks on real release daemons (3 parties on loopback):
//! - submit → success of a chain of 10 noop tasks, next to a 1-task job in the same run;
//! - task-state propagation: from a task's end at one party to the next task's start at
//!   another (what decentralized scheduling costs per step), p50/p99.
//!
//! - 1 GiB through the data channel: time and peak RSS at both ends.
//!
//! Run: `cargo bench -p consort-tests --bench jobs`. Prints a Markdown table.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use consort_protocol::{JobInfo, Request, Response};
use consort_tests::{Federation, RawConn};

fn chain(n: usize) -> String {
    let mut s = String::from(
        "name: chain\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n  t0: {component: noop}\n",
    );
    for i in 1..n {
        s.push_str(&format!(
            "  t{i}: {{component: noop, depends_on: [t{}]}}\n",
            i - 1
        ));
    }
    s
}

/// Submits at party 0 and polls every party in `conns` (1 ms) until all report success. Pass
/// only the job's parties: the others never hear of it.
fn run(conns: &mut [RawConn], spec: &str) -> (Duration, JobInfo) {
    let t = Instant::now();
    let job = match conns[0].call(Request::JobSubmit { spec: spec.into() }) {
        Some(Response::JobSubmitted { job_id }) => job_id,
        other => panic!("{other:?}"),
    };
    let mut done = vec![false; conns.len()];
    let mut last = None;
    while done.iter().any(|d| !d) {
        for (i, c) in conns.iter_mut().enumerate() {
            if !done[i]
                && let Some(info) = c.show(&job)
            {
                assert!(info.status != "failed", "{info:?}");
                if info.status == "success" {
                    done[i] = true;
                    last = Some(info);
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "job did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
    (t.elapsed(), last.unwrap())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    let _d = fed.start_connected();
    let mut conns: Vec<RawConn> = fed
        .parties
        .iter()
        .map(|p| RawConn::open(&p.socket()))
        .collect();
    let (ten, one) = (chain(10), chain(1));
    run(&mut conns, &ten); // warm-up
    let (mut t10, mut t1, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        let (d, info) = run(&mut conns, &ten);
        t10.push(d.as_secs_f64() * 1e3);
        for w in info.tasks.windows(2) {
            let ends: Vec<f64> = w[0]
                .parties
                .values()
                .map(|r| r.started_at.unwrap() as f64 + r.elapsed_s.unwrap() * 1e3)
                .collect();
            let upstream_done = ends.iter().cloned().fold(0.0, f64::max);
            for r in w[1].parties.values() {
                gaps.push(r.started_at.unwrap() as f64 - upstream_done);
            }
        }
        t1.push(run(&mut conns, &one).0.as_secs_f64() * 1e3);
    }
    let (a50, amax) = (pct(&mut t10, 0.5), pct(&mut t10, 1.0));
    let b50 = pct(&mut t1, 0.5);
    let (g50, g99) = (pct(&mut gaps, 0.5), pct(&mut gaps, 0.99));
    println!("| measure | result | baseline in the same run | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| submit → success at all 3 parties, chain of 10 noop tasks (10 runs) | p50 {a50:.0} ms, max {amax:.0} ms | 1-task job: p50 {b50:.0} ms | {:.1}× |",
        a50 / b50
    );
    println!(
        "| task-state propagation: upstream done everywhere → next task started at a party ({} steps) | p50 {g50:.1} ms, p99 {g99:.1} ms | | |",
        gaps.len()
    );

    // 1 GiB through the data channel (the `blob` component: the guest writes 1 GiB of seeded
    // random bytes to a file, streams it in 4 MiB chunks, the host hashes what it received).
    // Baseline: the same bytes copied from file to file on this disk.
    let hwm = |pid: u32| -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        kb / 1024.0
    };
    let before: Vec<f64> = _d[..2].iter().map(|d| hwm(d.pid())).collect();
    let blob = |mb: u32| {
        format!(
            "name: blob\nparties: {{guest: [bank-a], host: [insurer-b]}}\ntasks:\n  blob: {{component: blob, params: {{size_mb: {mb}}}}}\n"
        )
    };
    // Only bank-a and insurer-b take part: clinic-c never sees these jobs.
    let (small, _) = run(&mut conns[..2], &blob(1));
    let (big, big_info) = run(&mut conns[..2], &blob(1024));
    // The guest logs how long the streaming itself took ("sent ... in X s").
    let log = fed.parties[0].cli(&["job", "log", &big_info.job_id]).stdout;
    let send_s: f64 = log
        .split("in ")
        .filter_map(|s| s.split(" s").next()?.parse().ok())
        .next()
        .unwrap_or(f64::NAN);
    let after: Vec<f64> = _d[..2].iter().map(|d| hwm(d.pid())).collect();
    let src = fed.parties[0].dir.join("copy-src.bin");
    let dst = fed.parties[0].dir.join("copy-dst.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let block = vec![7u8; 1 << 20];
        for _ in 0..1024 {
            f.write_all(&block).unwrap();
        }
    }
    let t = Instant::now();
    std::fs::copy(&src, &dst).unwrap();
    std::fs::File::open(&dst).unwrap().sync_all().unwrap();
    let copy = t.elapsed();
    let _ = (std::fs::remove_file(&src), std::fs::remove_file(&dst));
    println!(
        "| 1 GiB through the data channel, bank-a → insurer-b: submit → success (generating and hashing at both ends included); streaming alone | {:.1} s; streaming {send_s:.1} s ({:.0} MiB/s) | file copy + fsync of 1 GiB: {:.1} s; 1 MiB blob job: {:.0} ms | {:.1}× the copy |",
        big.as_secs_f64(),
        1024.0 / send_s,
        copy.as_secs_f64(),
        small.as_secs_f64() * 1e3,
        big.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "| peak RSS during the 1 GiB transfer (VmHWM) | sender {:.0} MB, receiver {:.0} MB | before: {:.0} MB, {:.0} MB | |",
        after[0], after[1], before[0], before[1]
    );
}
