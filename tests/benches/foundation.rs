//! Foundation benchmarks on the real release binaries:
//! - time from `consortd run` to a socket that answers `status`, next to a bare process spawn;
//! - idle RSS after 10 s;
//! - `status` round trip on an open connection, next to a raw Unix-socket echo of the same
//!   frame in the same run, and a whole `consort status` process.
//!
//! Run: `cargo bench -p consort-tests --bench foundation`. Prints a Markdown table.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consort_protocol::frame::{decode_body, encode_frame};
use consort_protocol::{
    CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, Request, ServerMessage,
};
use consort_tests::{Party, bin};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (percentile(&v, 0.5), percentile(&v, 0.99), v[v.len() - 1])
}

fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let party = Party::init("bench");
    let runs = 10;

    // 1. Ready time, next to spawning a trivial process (`consort --version`).
    let mut ready = Vec::new();
    let mut spawn = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(bin("consort"))
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        assert!(out.unwrap().success());
        spawn.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let mut d = party.spawn();
        // Poll every 1 ms (tests poll at 10 ms; here the granularity would be the result).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !UnixStream::connect(party.socket())
            .map(|mut s| status_round_trip(&mut s, 1))
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "daemon not ready; log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        ready.push(t.elapsed().as_secs_f64() * 1e3);
        d.signal(libc::SIGTERM);
        d.wait_exit(Duration::from_secs(20));
    }

    // 2. Idle RSS after 10 s, and 3. round trips on the running daemon.
    let d = party.start();
    std::thread::sleep(Duration::from_secs(10)); // the measurement is "after 10 s idle"
    let rss = rss_kib(d.pid());

    let mut s = UnixStream::connect(party.socket()).unwrap();
    assert!(status_round_trip(&mut s, 1));
    let n = 5000;
    let mut rtt = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        assert!(status_round_trip(&mut s, i as u64 + 2));
        rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let frame_len = {
        let req = ClientMessage::Request {
            id: 1,
            request: Request::Status,
        };
        encode_frame(&req, 1 << 20).unwrap().len()
    };
    let echo = raw_echo_rtt(n, frame_len);

    let mut cli = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let out = party.cli(&["status"]);
        assert_eq!(out.code, Some(0));
        cli.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let (r50, _, rmax) = summary(ready);
    let (s50, _, _) = summary(spawn);
    let (q50, q99, _) = summary(rtt);
    let (e50, e99, _) = summary(echo);
    let (c50, c99, _) = summary(cli);
    println!("| measure | p50 | p99 / max | baseline in the same run | ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| `consortd run` → socket answers status ({runs} starts) | {r50:.1} ms | max {rmax:.1} ms | spawn+exit of `consort --version`: {s50:.1} ms | {:.1}× |",
        r50 / s50
    );
    println!(
        "| idle RSS after 10 s | {:.1} MB | | | |",
        rss as f64 / 1024.0
    );
    println!(
        "| status round trip, open connection ({n}) | {q50:.0} µs | {q99:.0} µs | raw Unix-socket echo of a {frame_len}-byte frame: {e50:.0} µs (p99 {e99:.0}) | {:.1}× |",
        q50 / e50
    );
    println!(
        "| `consort status`, whole CLI process (50) | {c50:.2} ms | {c99:.2} ms | spawn+exit of `consort --version`: {s50:.1} ms | {:.1}× |",
        c50 / s50
    );
    drop(d);
}

/// Hello (on the first call of a connection, `id == 1`) plus one status request.
fn status_round_trip(s: &mut UnixStream, id: u64) -> bool {
    if id == 1 {
        let hello = ClientMessage::Hello {
            protocol: CONTROL_PROTOCOL.into(),
            version: CONTROL_PROTOCOL_VERSION,
            client: "bench".into(),
        };
        if s.write_all(&encode_frame(&hello, 1 << 20).unwrap())
            .is_err()
        {
            return false;
        }
        if !matches!(
            decode_body(&read_frame(s)),
            Ok(ServerMessage::Welcome { .. })
        ) {
            return false;
        }
    }
    let req = ClientMessage::Request {
        id,
        request: Request::Status,
    };
    s.write_all(&encode_frame(&req, 1 << 20).unwrap()).unwrap();
    matches!(
        decode_body(&read_frame(s)),
        Ok(ServerMessage::Response { .. })
    )
}

/// Round trips of `len`-byte frames through a thread that echoes them on a Unix socket.
fn raw_echo_rtt(n: usize, len: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        for _ in 0..n {
            let body = read_frame(&mut c);
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            c.write_all(&frame).unwrap();
        }
    });
    let mut s = UnixStream::connect(&path).unwrap();
    let mut frame = ((len - 4) as u32).to_be_bytes().to_vec();
    frame.resize(len, 7);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&frame).unwrap();
        read_frame(&mut s);
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    server.join().unwrap();
    out
}
