//! Partners behind NAT, on real networks built from network namespaces (`consort_tests::netlab`):
//! a public partner relay R, parties A and B each behind its own masquerading router. A and B
//! learn from AutoNAT that they are private, take a slot at R, meet through it, and go direct by
//! hole punching where the NATs allow it (or stay relayed where they do not); the breast job
//! runs between them either way. Also: a non-partner cannot use the relay, and the breast job
//! runs over a link with 50 ms delay and 1 % loss (`tc netem`).
//!
//! Needs root, iproute2 and iptables (CI installs them); compiled as ignored elsewhere.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consort_tests::netlab::{
    Host, LISTEN, NatKind, NatLab, SlowLink, add_partner, lab_federation, peer, reach,
    run_breast_job, share_tables, start_lab, wait_slot,
};
use consort_tests::{Federation, upload_breast_hetero, wait_for};
use serde_json::Value;

#[test]
#[cfg_attr(
    not(consort_netlab),
    ignore = "needs root, iproute2 and iptables (network namespaces, NAT); not available when this was built"
)]
fn behind_two_nats_partners_meet_through_a_relay_then_hole_punch_and_run_the_job() {
    let lab = NatLab::create(NatKind::Cone);
    let fed = lab_federation(&lab);
    let (a, b, r) = (&fed.parties[0], &fed.parties[1], &fed.parties[2]);
    let daemons = start_lab(&lab, &fed);
    // AutoNAT: the relay could not dial A or B back; each takes a slot at the relay, at an
    // address through it.
    for p in [a, b] {
        let reach = wait_slot(p);
        let slot = &reach["relay_slots"][0];
        assert!(
            slot["addr"].as_str().unwrap().contains("/p2p-circuit/p2p/"),
            "{reach}"
        );
        // The relay observed it at its NAT's public address.
        let nat_ip = lab.nat_ip(if p.name == "bank-a" { Host::A } else { Host::B });
        assert!(
            reach["observed"].to_string().contains(&nat_ip),
            "{reach} (NAT at {nat_ip})"
        );
    }
    // A and B connect through the relay, then hole punching makes the connection direct.
    let punched = wait_for("a hole punched connection", Duration::from_secs(60), || {
        let (pa, pb) = (peer(a, "insurer-b"), peer(b, "bank-a"));
        (pa["route"] == "hole punched" && pb["route"] == "hole punched").then_some((pa, pb))
    });
    assert!(
        punched.0["hole_punch"] == "succeeded" || punched.1["hole_punch"] == "succeeded",
        "{punched:?}"
    );
    // It went through the relay first: the relay opened a circuit between them.
    let relay = reach(r)["relay"].clone();
    assert!(relay["circuits_total"].as_u64().unwrap() >= 1, "{relay}");
    let mut holding: Vec<&str> = relay["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    holding.sort();
    assert_eq!(holding, ["bank-a", "insurer-b"], "{relay}");
    // B advertised the address through the relay to its partners (identify, Kademlia).
    let addrs = peer(a, "insurer-b")["addrs"].to_string();
    assert!(addrs.contains("/p2p-circuit"), "{addrs}");
    // The relay itself is reached directly.
    assert_eq!(peer(a, "relay-r")["route"], "direct");
    // `consort peers` (text) shows the path and the NAT status.
    let out = a.cli(&["peers"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("NAT       private (autonat)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("at relay relay-r: reserved"),
        "{}",
        out.stdout
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("insurer-b"))
        .unwrap();
    assert!(
        line.contains("connected") && line.contains("hole punched"),
        "{}",
        out.stdout
    );
    let out = r.cli(&["status"]);
    assert!(
        out.stdout.contains("relaying  for partners: slots held by"),
        "{}",
        out.stdout
    );
    // The breast job between A and B.
    upload_breast_hetero(&fed);
    let took = run_breast_job(&fed);
    eprintln!("breast job between two NATs, hole punched: {took:?}");
    assert_eq!(peer(a, "insurer-b")["route"], "hole punched");
    drop(daemons);
}

#[test]
#[cfg_attr(
    not(consort_netlab),
    ignore = "needs root, iproute2 and iptables (network namespaces, NAT); not available when this was built"
)]
fn with_tcp_blocked_between_the_nats_the_hole_is_punched_over_quic() {
    let lab = NatLab::create(NatKind::Cone);
    lab.block_tcp_between_nats();
    let fed = lab_federation(&lab);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let _daemons = start_lab(&lab, &fed);
    let (pa, _) = wait_for("a hole punched over QUIC", Duration::from_secs(90), || {
        let (pa, pb) = (peer(a, "insurer-b"), peer(b, "bank-a"));
        (pa["route"] == "hole punched" && pb["route"] == "hole punched").then_some((pa, pb))
    });
    let remote = pa["remote"].as_str().unwrap();
    assert!(
        remote.contains("/udp/") && remote.contains("/quic-v1"),
        "{pa}"
    );
    assert!(remote.contains(&lab.nat_ip(Host::B)), "{pa}");
    let line = a.cli(&["peers"]).stdout;
    assert!(line.contains("hole punched, quic"), "{line}");
    upload_breast_hetero(&fed);
    run_breast_job(&fed);
    assert_eq!(peer(a, "insurer-b")["route"], "hole punched");
}

#[test]
#[cfg_attr(
    not(consort_netlab),
    ignore = "needs root, iproute2 and iptables (network namespaces, NAT); not available when this was built"
)]
fn behind_symmetric_nats_the_job_runs_over_the_relay() {
    let lab = NatLab::create(NatKind::Symmetric);
    let fed = lab_federation(&lab);
    let (a, b, r) = (&fed.parties[0], &fed.parties[1], &fed.parties[2]);
    let daemons = start_lab(&lab, &fed);
    wait_slot(a);
    wait_slot(b);
    // Connected through the relay; hole punching fails (each NAT maps a new port per
    // destination) and the connection stays relayed.
    let (pa, pb) = wait_for("a failed hole punch", Duration::from_secs(90), || {
        let (pa, pb) = (peer(a, "insurer-b"), peer(b, "bank-a"));
        let failed = |p: &Value| {
            p["hole_punch"]
                .as_str()
                .is_some_and(|h| h.starts_with("failed"))
        };
        (pa["connected"] == true && (failed(&pa) || failed(&pb))).then_some((pa, pb))
    });
    assert_eq!(pa["route"], "relayed via relay-r", "{pa}");
    assert_eq!(pb["route"], "relayed via relay-r", "{pb}");
    // The side that tried says why in `consort peers`.
    let tried = if pa["hole_punch"].is_string() { a } else { b };
    let out = tried.cli(&["peers"]);
    assert!(out.stdout.contains("relayed via relay-r"), "{}", out.stdout);
    assert!(
        out.stdout.contains("hole punching failed"),
        "{}",
        out.stdout
    );
    let out = a.cli(&["doctor"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("insurer-b: ok") && out.stdout.contains("relayed via relay-r"),
        "{}",
        out.stdout
    );
    // The job runs over the relay.
    upload_breast_hetero(&fed);
    let took = run_breast_job(&fed);
    eprintln!("breast job between two symmetric NATs, relayed: {took:?}");
    assert_eq!(peer(a, "insurer-b")["route"], "relayed via relay-r");
    let relay = reach(r)["relay"].clone();
    assert!(relay["circuits"].as_u64().unwrap() >= 1, "{relay}");
    drop(daemons);
}

#[test]
#[cfg_attr(
    not(consort_netlab),
    ignore = "needs root, iproute2 and iptables (network namespaces, NAT); not available when this was built"
)]
fn a_non_partner_cannot_use_the_relay() {
    let lab = NatLab::create(NatKind::Cone);
    // relay-r lists bank-a and mallory-2, not mallory; bank-a lists only relay-r.
    let fed = Federation::init(&["bank-a", "mallory", "relay-r", "mallory-2"]);
    for i in 0..4 {
        let listen = if i == 3 {
            LISTEN.replace("4750", "4751")
        } else {
            LISTEN.to_owned()
        };
        fed.edit_config(i, &format!("listen = [\"{}\"]", fed.addr(i)), &listen);
    }
    fed.edit_config(2, "relay = false", "relay = true");
    let r = format!("/ip4/{}/tcp/4750", lab.ip(Host::R));
    for (i, j, addr) in [
        (0, 2, Some(r.clone())),
        (2, 0, None),
        (1, 2, Some(r.clone())),
        (1, 0, None),
        (3, 2, Some(r)),
        (2, 3, None),
        (3, 0, None),
    ] {
        add_partner(&fed, i, j, addr.as_slice());
    }
    let (a, m, relay, m2) = (
        &fed.parties[0],
        &fed.parties[1],
        &fed.parties[2],
        &fed.parties[3],
    );
    let dr = relay.start_in(lab.ns(Host::R));
    let da = a.start_in(lab.ns(Host::A));
    let _dm = m.start_in(lab.ns(Host::B));
    let _dm2 = m2.start_in(lab.ns(Host::R));
    wait_slot(a);
    // mallory is not the relay's partner: its connections are refused, so it holds no slot and
    // reaches nobody through the relay; the relay logs the refusal.
    wait_for(
        "the relay refusing mallory",
        Duration::from_secs(30),
        || {
            dr.log()
                .lines()
                .any(|l| {
                    l.contains("refused connection from a peer that is not a partner")
                        && l.contains(&m.peer_id)
                })
                .then_some(())
        },
    );
    let pm = peer(m, "relay-r");
    assert_eq!(pm["connected"], false, "{pm}");
    assert!(
        pm["why"]
            .as_str()
            .is_some_and(|w| w.contains("does not list this party")),
        "{pm}"
    );
    assert!(
        !reach(m)["relay_slots"].to_string().contains("reserved"),
        "{}",
        reach(m)
    );
    // mallory-2 is the relay's partner but not bank-a's: the relay may carry its circuit, but
    // bank-a refuses the connection at the other end, and logs it.
    wait_for(
        "bank-a refusing mallory-2 through the relay",
        Duration::from_secs(60),
        || {
            da.log()
                .lines()
                .any(|l| {
                    l.contains("refused connection from a peer that is not a partner")
                        && l.contains(&m2.peer_id)
                })
                .then_some(())
        },
    );
    assert_eq!(peer(m2, "bank-a")["connected"], false);
    let holding = reach(relay)["relay"]["reservations"].clone();
    assert_eq!(holding, serde_json::json!(["bank-a"]), "{holding}");
    for p in [m, m2] {
        assert_eq!(peer(a, &p.name), Value::Null, "bank-a lists no {}", p.name);
    }
}

#[test]
#[cfg_attr(
    not(consort_netlab),
    ignore = "needs root, iproute2 and iptables (network namespaces); not available when this was built"
)]
fn the_breast_job_succeeds_over_50ms_delay_and_1pct_loss() {
    let mut link = SlowLink::create();
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    for (i, j) in [(0, 1), (1, 0)] {
        fed.edit_config(i, &format!("listen = [\"{}\"]", fed.addr(i)), LISTEN);
        add_partner(&fed, i, j, &[format!("/ip4/{}/tcp/4750", link.ip(j))]);
    }
    share_tables(&fed, 2);
    // 50 ms each way, and 1 % of the packets lost each way, on the only path between them.
    let how = link.impair(50, 1.0, env!("CARGO_BIN_EXE_delay_line"));
    let _da = fed.parties[0].start_in(link.ns(0));
    let _db = fed.parties[1].start_in(link.ns(1));
    wait_for(
        "partners connected over the slow link",
        Duration::from_secs(60),
        || (peer(&fed.parties[0], "insurer-b")["connected"] == true).then_some(()),
    );
    // The impairment is in force: a ping's round trip takes at least the two delays.
    let out = fed.parties[0].cli(&["--json", "ping", "insurer-b"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let rtt = out.json()["rtt_ms"].as_f64().unwrap();
    assert!(rtt >= 100.0, "round trip {rtt} ms over 2 x 50 ms ({how})");
    upload_breast_hetero(&fed);
    let took = run_breast_job(&fed);
    eprintln!("breast job over 50 ms / 1 % loss each way ({how}): {took:?}, ping {rtt:.1} ms");
}
