//! Records that scale: N release daemons on loopback, all mutual partners, a chain of 10 noop
//! tasks run by every party, submitted at party 0; submit → success at every party, for the
//! first and the last of `--jobs` consecutive jobs. Then the idle CPU of the N connected
//! daemons, and the catch-up of a daemon that was down while `--jobs` jobs ran without it.
//!
//! Run: `cargo bench -p consort-tests --bench scale -- 3 10 20 50 [--jobs 100] [--keep-logs DIR]`
//! (the daemons' logs copied to `DIR/<parties>/`). Prints a
//! Markdown table (one row per federation size).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_protocol::{Request, Response};
use consort_tests::{Federation, RawConn, cpu_s};

/// A chain of 10 noop tasks run by every one of `parties` (the first is the guest).
fn chain(parties: &[String]) -> String {
    let hosts = parties[1..].join(", ");
    let mut s = format!(
        "name: chain\nparties: {{guest: [{}], host: [{hosts}]}}\ntasks:\n  t0: {{component: noop}}\n",
        parties[0]
    );
    for i in 1..10 {
        s.push_str(&format!(
            "  t{i}: {{component: noop, depends_on: [t{}]}}\n",
            i - 1
        ));
    }
    s
}

/// Submits at `conns[0]` and follows the job at every party (`job watch`, one thread each)
/// until all report success; the time until the last does.
fn run(conns: &mut [RawConn], spec: &str) -> Duration {
    let t = Instant::now();
    let job = match conns[0].call(Request::JobSubmit { spec: spec.into() }) {
        Some(Response::JobSubmitted { job_id }) => job_id,
        other => panic!("{other:?}"),
    };
    std::thread::scope(|s| {
        for c in conns.iter_mut() {
            let job = &job;
            s.spawn(move || {
                let info = c.watch_until_final(job, Duration::from_secs(300));
                assert_eq!(info.status, "success", "{info:?}");
            });
        }
    });
    t.elapsed()
}

struct Row {
    n: usize,
    first: f64,
    last: f64,
    /// Medians of the first and of the last ten jobs (single jobs are noisy).
    first10: f64,
    last10: f64,
    jobs: usize,
    idle_pct: f64,
    cpu_per_job: f64,
    catch_up: f64,
    baseline: f64,
    lost: usize,
}

fn measure(n: usize, jobs: usize, keep_logs: Option<&std::path::Path>) -> Row {
    let names: Vec<String> = (0..n).map(|i| format!("p{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fed = Federation::init(&refs);
    fed.all_mutual();
    let mut daemons = fed.start_connected();
    let mut conns: Vec<RawConn> = fed
        .parties
        .iter()
        .map(|p| RawConn::open(&p.socket()))
        .collect();
    let spec = chain(&names);
    run(&mut conns, &spec); // warm-up: connections, gossip mesh
    let pids: Vec<u32> = daemons.iter().map(|d| d.pid()).collect();
    let cpu_all = || pids.iter().map(|p| cpu_s(*p)).sum::<f64>();
    let mut times = Vec::new();
    let cpu_before = cpu_all();
    for i in 0..jobs {
        let d = run(&mut conns, &spec).as_secs_f64();
        eprintln!("{n} parties, job {}: {d:.3} s", i + 1);
        times.push(d);
    }
    let cpu_per_job = (cpu_all() - cpu_before) / jobs as f64;
    // Idle: every daemon connected, no job running.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_all();
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let after = cpu_all();
    let idle_pct = (after - before) / window.as_secs_f64() * 100.0;

    // Catch-up: the last party is down while `jobs` jobs run among the others; then it comes
    // back and a job of every party runs (its time, against the same job before, is the cost
    // of catching up).
    let last = n - 1;
    drop(conns.pop());
    daemons[last].kill9();
    let others = chain(&names[..last]);
    if last >= 2 {
        for _ in 0..jobs {
            run(&mut conns, &others);
        }
    }
    let t = Instant::now();
    daemons[last] = fed.parties[last].start();
    conns.push(RawConn::open(&fed.parties[last].socket()));
    consort_tests::wait_for("partners connected", Duration::from_secs(120), || {
        let peers = consort_tests::connected_peers(&fed.parties[last]);
        (peers.iter().filter(|(_, c)| *c).count() == n - 1).then_some(())
    });
    run(&mut conns, &spec);
    let catch_up = t.elapsed().as_secs_f64();
    // Record events that never reached a scheduler (its safety resync brought the record) or
    // that the network dropped: each would have stalled a job until that resync.
    let lost = daemons
        .iter()
        .map(|d| {
            let log = d.log();
            log.matches("never reached the scheduler").count()
                + log.matches("network events dropped").count()
        })
        .sum();
    if let Some(dir) = keep_logs {
        let dir = dir.join(format!("{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, d) in daemons.iter().enumerate() {
            std::fs::write(dir.join(format!("p{i:02}.log")), d.log()).unwrap();
        }
    }
    let baseline = *times.last().unwrap();
    let ten = times.len().min(10);
    Row {
        n,
        first: times[0],
        last: *times.last().unwrap(),
        first10: median(&times[..ten]),
        last10: median(&times[times.len() - ten..]),
        jobs,
        idle_pct,
        cpu_per_job,
        catch_up,
        baseline,
        lost,
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn main() {
    let mut sizes = Vec::new();
    let mut jobs = 100;
    let mut keep_logs = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jobs" => jobs = args.next().and_then(|j| j.parse().ok()).unwrap_or(jobs),
            "--bench" => {}
            "--keep-logs" => keep_logs = args.next().map(std::path::PathBuf::from),
            other => {
                if let Ok(n) = other.parse::<usize>() {
                    assert!(n >= 2, "at least 2 parties");
                    sizes.push(n);
                }
            }
        }
    }
    if sizes.is_empty() {
        sizes = vec![3, 10];
    }
    println!(
        "| parties | first job | job {jobs} | median of the first 10 → of the last 10 (ratio) | CPU of all daemons per job | idle CPU of all daemons (% of one core) | back after {jobs} jobs away → connected + a job of all parties done | that job before | record events lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // Each row as soon as it is measured: a long run still leaves the sizes it finished.
    for r in sizes
        .iter()
        .map(|&n| measure(n, jobs, keep_logs.as_deref()))
    {
        println!(
            "| {} | {:.3} s | {:.3} s | {:.3} → {:.3} s ({:.2}) | {:.2} s | {:.1} % | {:.2} s | {:.3} s | {} |",
            r.n,
            r.first,
            r.last,
            r.first10,
            r.last10,
            r.last10 / r.first10,
            r.cpu_per_job,
            r.idle_pct,
            r.catch_up,
            r.baseline,
            r.lost
        );
        let _ = r.jobs;
    }
}
