//! The breast job (hetero LR, FATE's example settings; submit → success at both parties) between
//! two release daemons in network namespaces, side by side in one run:
//!
//! - over one router, on a clean link and then with 50 ms delay and 1 % loss each way (`tc
//!   netem`, or `delay_line` where the kernel has no netem), partners dialled over TCP and
//!   over QUIC;
//! - behind two NATs (`netlab::NatLab`): hole punched, and relayed through a partner relay
//!   (symmetric NATs, where hole punching fails).
//!
//! Needs root, iproute2 and iptables. Run: `cargo bench -p consort-tests --bench links [-- N]`
//! (N jobs per case, default 3; the median is reported).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::netlab::{
    self, LISTEN, NatKind, NatLab, SlowLink, add_partner, lab_federation, peer, run_breast_job,
    share_tables, start_lab, wait_slot,
};
use consort_tests::{Federation, upload_breast_hetero, wait_for};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn jobs(fed: &Federation, n: usize) -> Duration {
    median((0..n).map(|_| run_breast_job(fed)).collect())
}

/// (transport, clean, impaired, how the link was impaired)
fn slow_link(transport: &str, n: usize) -> (Duration, Duration, &'static str) {
    let mut link = SlowLink::create();
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    for (i, j) in [(0, 1), (1, 0)] {
        fed.edit_config(i, &format!("listen = [\"{}\"]", fed.addr(i)), LISTEN);
        let addr = match transport {
            "quic" => format!("/ip4/{}/udp/4750/quic-v1", link.ip(j)),
            _ => format!("/ip4/{}/tcp/4750", link.ip(j)),
        };
        add_partner(&fed, i, j, &[addr]);
    }
    share_tables(&fed, 2);
    let _da = fed.parties[0].start_in(link.ns(0));
    let _db = fed.parties[1].start_in(link.ns(1));
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    wait_for("partners connected", Duration::from_secs(60), || {
        (peer(a, "insurer-b")["connected"] == true && peer(b, "bank-a")["connected"] == true)
            .then_some(())
    });
    let remote = peer(a, "insurer-b")["remote"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        remote.contains(if transport == "quic" { "/quic" } else { "/tcp" }),
        "connected over {remote}"
    );
    upload_breast_hetero(&fed);
    run_breast_job(&fed); // warm-up
    let clean = jobs(&fed, n);
    let how = link.impair(50, 1.0, env!("CARGO_BIN_EXE_delay_line"));
    let impaired = jobs(&fed, n);
    link.clear();
    (clean, impaired, how)
}

/// (time per job, route, seconds until connected)
fn behind_nats(kind: NatKind, n: usize) -> (Duration, String, f64) {
    let lab = NatLab::create(kind);
    let fed = lab_federation(&lab);
    let started = Instant::now();
    let _daemons = start_lab(&lab, &fed);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    wait_slot(a);
    wait_slot(b);
    let want = match kind {
        NatKind::Cone => "hole punched",
        NatKind::Symmetric => "relayed via relay-r",
    };
    wait_for(want, Duration::from_secs(120), || {
        let p = peer(a, "insurer-b");
        let settled = match kind {
            NatKind::Cone => p["route"] == want,
            // Relayed, and hole punching has given up (or it would still move).
            NatKind::Symmetric => {
                p["route"] == want
                    && (p["hole_punch"].is_string() || peer(b, "bank-a")["hole_punch"].is_string())
            }
        };
        settled.then_some(())
    });
    let ready = started.elapsed().as_secs_f64();
    let p = peer(a, "insurer-b");
    let route = format!(
        "{} ({})",
        p["route"].as_str().unwrap_or("?"),
        p["remote"].as_str().unwrap_or("?")
    );
    upload_breast_hetero(&fed);
    run_breast_job(&fed);
    (jobs(&fed, n), route, ready)
}

fn main() {
    if !netlab::available() {
        eprintln!("links: needs root, iproute2, iptables and tc; skipped");
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    println!("breast job, submit → success, median of {n} (release daemons, network namespaces)");
    println!(
        "{:<44} {:>10} {:>12} {:>8}",
        "link", "clean", "50ms/1%", "ratio"
    );
    for transport in ["tcp", "quic"] {
        let (clean, impaired, how) = slow_link(transport, n);
        println!(
            "{:<44} {:>9.2}s {:>11.2}s {:>7.1}x",
            format!("one router, {transport} ({how})"),
            clean.as_secs_f64(),
            impaired.as_secs_f64(),
            impaired.as_secs_f64() / clean.as_secs_f64()
        );
    }
    for kind in [NatKind::Cone, NatKind::Symmetric] {
        let (t, route, ready) = behind_nats(kind, n);
        println!(
            "behind two {:?} NATs: {:.2}s per job, {route}, settled {ready:.1}s after start",
            kind,
            t.as_secs_f64()
        );
    }
}
