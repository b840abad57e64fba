//! Online inference benchmark on real release daemons: bank-a (guest) and insurer-b (host) on
//! loopback, the breast hetero LR pipeline (feature_scale + hetero_lr) deployed three ways in
//! the same run:
//!
//! - `alone`: the guest's part only, hosts never asked (`--without-hosts`: the baseline);
//! - `hop`: guest + host, no cache (every request asks the host);
//! - `cached`: guest + host, host partial scores cached (569 ids: all hits once warm).
//!
//! Each over HTTP/JSON (one kept-alive connection per client) and gRPC (one HTTP/2 channel),
//! at concurrency 1, 16 and 64: p50 and p99 latency seen by the client, requests per second,
//! and the CPU time of both daemons per request. The load generator runs on the same 2 cores.
//!
//! Run: `cargo bench -p consort-tests --bench serving [-- SECONDS]` (default 5 s per row).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use consort_tests::serving::*;
use consort_tests::*;

const CONCURRENCY: [usize; 3] = [1, 16, 64];

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Http,
    Grpc,
}

struct Row {
    api: &'static str,
    service: &'static str,
    c: usize,
    p50: f64,
    p99: f64,
    qps: f64,
    cpu_us: f64,
    errors: usize,
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    f64::from(v[i]) / 1000.0
}

/// Runs `c` clients against `service` for `secs`; each client's latencies in µs and errors.
async fn load(
    api: Api,
    setup: &Setup,
    service: &str,
    rows: &Arc<Vec<GuestRow>>,
    c: usize,
    secs: f64,
) -> (Vec<u32>, usize, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let recording = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let channel = match api {
        Api::Grpc => Some(
            tonic::transport::Endpoint::from_shared(format!("http://{}", setup.grpc))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap(),
        ),
        Api::Http => None,
    };
    for k in 0..c {
        let (stop, recording, rows) = (stop.clone(), recording.clone(), rows.clone());
        let (service, addr, channel) = (service.to_owned(), setup.http, channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let path = format!("/v1/services/{service}/infer");
            let bodies: Vec<Vec<u8>> = rows
                .iter()
                .map(|(id, f, _)| {
                    serde_json::json!({"id": id, "features": f})
                        .to_string()
                        .into_bytes()
                })
                .collect();
            let grpc_reqs: Vec<pb::InferRequest> = rows
                .iter()
                .map(|(id, f, _)| pb::InferRequest {
                    service: service.clone(),
                    id: id.clone(),
                    request_id: String::new(),
                    features: f
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                        .collect(),
                })
                .collect();
            let mut http = match api {
                Api::Http => Some(HttpConn::connect(addr, None).await.unwrap()),
                Api::Grpc => None,
            };
            let mut grpc = channel.map(pb::inference_client::InferenceClient::new);
            let mut i = k * 37;
            while !stop.load(Ordering::Relaxed) {
                i = (i + 1) % rows.len();
                let t = Instant::now();
                let ok = match (&mut http, &mut grpc) {
                    (Some(h), _) => matches!(h.post(&path, bodies[i].clone()).await, Ok((200, _))),
                    (_, Some(g)) => g.infer(grpc_reqs[i].clone()).await.is_ok(),
                    _ => false,
                };
                if recording.load(Ordering::Relaxed) {
                    lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    errors += usize::from(!ok);
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    recording.store(true, Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        all.extend(l);
        errors += e;
    }
    (all, errors, elapsed)
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5.0);
    let unlimited = "quota_per_minute = 1000000000\n";
    let setup = setup(
        "",
        &format!(
            "\n[serving.sources.hop]\ntable = \"breast_host\"\n{unlimited}\
         [serving.sources.cached]\ntable = \"breast_host\"\n{unlimited}"
        ),
    );
    let daemons = start(&setup.fed);
    upload_breast_hetero(&setup.fed);
    let (model, version) = train(&setup.fed);
    let rev = format!("{model}@{version}");
    for (service, extra) in [
        ("alone", vec!["--without-hosts"]),
        ("hop", vec![]),
        ("cached", vec!["--cache-ttl-ms", "600000"]),
    ] {
        let mut args = vec!["serve", "deploy", rev.as_str(), "--service", service];
        args.extend(extra);
        let out = setup.fed.parties[0].cli(&args);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let rows = Arc::new(guest_rows());
    let pids: Vec<u32> = daemons.iter().map(|d| d.pid()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut table = Vec::new();
    for (api, name) in [(Api::Http, "HTTP"), (Api::Grpc, "gRPC")] {
        for service in ["alone", "hop", "cached"] {
            for c in CONCURRENCY {
                let cpu0: f64 = pids.iter().map(|p| cpu_s(*p)).sum();
                let (mut lat, errors, elapsed) =
                    rt.block_on(load(api, &setup, service, &rows, c, secs));
                let cpu = pids.iter().map(|p| cpu_s(*p)).sum::<f64>() - cpu0;
                let n = lat.len();
                let row = Row {
                    api: name,
                    service,
                    c,
                    p50: pct(&mut lat, 0.5),
                    p99: pct(&mut lat, 0.99),
                    qps: n as f64 / elapsed,
                    // The CPU window includes the 0.5 s warm-up: count its requests too.
                    cpu_us: cpu * 1e6 / (n as f64 * (elapsed + 0.5) / elapsed),
                    errors,
                };
                eprintln!(
                    "{name} {service} c={c}: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s, {:.0} µs CPU/req, {errors} errors",
                    row.p50, row.p99, row.qps, row.cpu_us
                );
                table.push(row);
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nServing benchmark, {} s per row, {cores} cores, guest + host on loopback, breast \
         hetero LR (feature_scale + hetero_lr), model {rev}\n",
        secs
    );
    println!(
        "| API | service | concurrency | p50 ms | p99 ms | req/s | daemons' CPU µs/req | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &table {
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.0} | {} |",
            r.api, r.service, r.c, r.p50, r.p99, r.qps, r.cpu_us, r.errors
        );
    }
    let stats = setup.fed.parties[0].cli(&["serve", "stats", "cached"]);
    println!(
        "\n`consort serve stats cached` after the run:\n\n```\n{}```",
        stats.stdout
    );
    drop(daemons);
}
