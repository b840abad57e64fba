//! The partner network on real daemons over loopback TCP (Noise + yamux), through the CLI.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::{Federation, connected_peers, wait_for};

const T: Duration = Duration::from_secs(20);

fn all_connected(peers: &[(String, bool)], n: usize) -> bool {
    peers.len() == n && peers.iter().all(|(_, c)| *c)
}

fn record_value(fed: &Federation, i: usize, origin: &str, key: &str) -> Option<String> {
    let out = fed.parties[i].cli(&["--json", "record", "get", origin, key]);
    (out.code == Some(0)).then(|| out.json()["value"].as_str().unwrap().to_owned())
}

/// Three mutual partners connect, gossip reaches everyone, a daemon that was down catches up
/// without anybody publishing again, and an outsider never gets a connection.
#[test]
fn partners_connect_gossip_and_catch_up_outsider_refused() {
    let fed = Federation::init(&["a", "b", "c", "outsider"]);
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                fed.configure_partner(i, j, true);
            }
        }
        // The outsider lists everybody; nobody lists it.
        fed.configure_partner(3, i, true);
    }
    let started = Instant::now();
    let mut daemons: Vec<_> = fed.parties[..3].iter().map(|p| p.spawn()).collect();
    for p in &fed.parties[..3] {
        wait_for("all three connected", Duration::from_secs(5), || {
            let ok = p.cli(&["--json", "peers"]).code == Some(0)
                && all_connected(&connected_peers(p), 2);
            ok.then_some(())
        });
    }
    let connect_time = started.elapsed();
    eprintln!("3 partners connected {connect_time:?} after start");

    // Gossip: a record written at a is seen at b and c.
    let out = fed.parties[0].cli(&["record", "put", "greeting", "hello"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // The scheduler's keys cannot be written by hand.
    let out = fed.parties[0].cli(&["record", "put", "task/j/t/1/guest", "x"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("belong to the scheduler"),
        "{}",
        out.stderr
    );
    for i in [1, 2] {
        wait_for("gossip delivery", Duration::from_secs(5), || {
            (record_value(&fed, i, "a", "greeting").as_deref() == Some("hello")).then_some(())
        });
    }

    // The outsider dials all three and is refused by each; it never holds a connection.
    let outsider = &fed.parties[3];
    let _o = outsider.start();
    for (i, d) in daemons.iter().enumerate() {
        wait_for("refusal logged", T, || {
            let log = d.log();
            (log.contains("refused connection from a peer that is not a partner")
                && log.contains(&outsider.peer_id))
            .then_some(())
        });
        let log = d.log();
        let mentions = log
            .lines()
            .filter(|l| l.contains("not a partner") && l.contains(&outsider.peer_id))
            .count();
        assert_eq!(mentions, 1, "refusal logged once per peer at party {i}");
    }
    let seen = connected_peers(outsider);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|(_, c)| !c),
        "outsider must not be connected: {seen:?}"
    );
    for p in &fed.parties[..3] {
        assert!(
            connected_peers(p)
                .iter()
                .all(|(name, _)| name != "outsider")
        );
    }

    // Catch-up: c is down while a publishes; after restart it has the record, nobody re-publishes.
    let c = &fed.parties[2];
    assert_eq!(c.cli(&["shutdown"]).code, Some(0));
    daemons[2].wait_exit(T);
    assert_eq!(
        fed.parties[0]
            .cli(&["record", "put", "while-down", "v2"])
            .code,
        Some(0)
    );
    wait_for("b has it", Duration::from_secs(5), || {
        record_value(&fed, 1, "a", "while-down").map(|_| ())
    });
    daemons[2] = c.start();
    let back = Instant::now();
    wait_for("c reconnects", T, || {
        all_connected(&connected_peers(c), 2).then_some(())
    });
    wait_for("c catches up within 5 s", Duration::from_secs(5), || {
        (record_value(&fed, 2, "a", "while-down").as_deref() == Some("v2")).then_some(())
    });
    eprintln!("c caught up {:?} after restart", back.elapsed());
}

#[test]
fn partner_remove_disconnects_and_add_connects_without_restart() {
    let fed = Federation::init(&["a", "b"]);
    fed.configure_partner(0, 1, true);
    fed.configure_partner(1, 0, true);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let mut da = a.start();
    let _db = b.start();
    wait_for("connected", T, || {
        all_connected(&connected_peers(a), 1).then_some(())
    });

    let out = a.cli(&["partner", "remove", "b"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(connected_peers(a).is_empty());
    wait_for("b sees a disconnect", Duration::from_secs(5), || {
        (connected_peers(b) == vec![("a".to_owned(), false)]).then_some(())
    });
    // b keeps redialling a, and a refuses it: the removal holds.
    wait_for("a refuses b", T, || {
        a_refuses(&da, &b.peer_id).then_some(())
    });

    // The removal is persisted: after a restart a still does not list b.
    assert_eq!(a.cli(&["shutdown"]).code, Some(0));
    da.wait_exit(T);
    let _da = a.start();
    assert!(connected_peers(a).is_empty());

    let addr = fed.addr(1);
    let out = a.cli(&[
        "partner",
        "add",
        "--party",
        "b",
        "--peer-id",
        &b.peer_id,
        "--addr",
        &addr,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    wait_for("connected again", Duration::from_secs(5), || {
        (all_connected(&connected_peers(a), 1) && all_connected(&connected_peers(b), 1))
            .then_some(())
    });

    // Bad input is refused and changes nothing.
    let out = a.cli(&[
        "partner",
        "add",
        "--party",
        "Bad Name",
        "--peer-id",
        &b.peer_id,
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("invalid party name 'Bad Name'"),
        "{}",
        out.stderr
    );
    let out = a.cli(&[
        "partner",
        "add",
        "--party",
        "c",
        "--peer-id",
        "not-a-peer-id",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a PeerId"), "{}", out.stderr);
    let out = a.cli(&["partner", "remove", "nobody"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
    // None of the refused commands changed the partner list.
    let peers = connected_peers(a);
    assert_eq!(peers, vec![("b".to_owned(), true)]);
}

fn a_refuses(d: &consort_tests::Daemon, peer: &str) -> bool {
    d.log()
        .lines()
        .any(|l| l.contains("not a partner") && l.contains(peer))
}

#[test]
fn ping_and_doctor_diagnose_unreachable_partners() {
    let fed = Federation::init(&["a", "b", "c"]);
    let strangers = Federation::init(&["ghost", "imposter"]);
    let (a, b, c) = (&fed.parties[0], &fed.parties[1], &fed.parties[2]);
    // a lists b correctly (and b lists a); "imposter" has its own PeerId but b's address (a
    // wrong peer id); "ghost" has an address where nothing listens; c is up but does not list a.
    fed.configure_partner(0, 1, true);
    fed.configure_partner(1, 0, true);
    fed.append_config(
        0,
        &format!(
            "\n[[partners]]\nparty = \"imposter\"\npeer_id = \"{}\"\naddrs = [\"{}\"]\n\
             \n[[partners]]\nparty = \"ghost\"\npeer_id = \"{}\"\naddrs = [\"/ip4/127.0.0.1/tcp/{}\"]\n",
            strangers.parties[1].peer_id,
            fed.addr(1),
            strangers.parties[0].peer_id,
            consort_tests::free_port()
        ),
    );
    fed.configure_partner(0, 2, true); // lists c, which does not list a
    let _da = a.start();
    let _db = b.start();
    let _dc = c.start();

    let out = a.cli(&["ping", "b"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("b: ok"), "{}", out.stdout);
    let v = a.cli(&["--json", "ping", "b"]).json();
    assert_eq!(v["ok"], true);
    assert!(v["rtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    let out = a.cli(&["--json", "ping", "imposter"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], false, "{out:?}");
    assert!(
        v["diagnosis"].as_str().unwrap().contains("wrong peer id"),
        "{v}"
    );

    let v = a.cli(&["--json", "ping", "ghost"]).json();
    assert_eq!(v["ok"], false);
    assert!(
        v["diagnosis"]
            .as_str()
            .unwrap()
            .contains("nothing is listening"),
        "{v}"
    );

    let v = a.cli(&["--json", "ping", "c"]).json();
    assert_eq!(v["ok"], false);
    assert!(
        v["diagnosis"]
            .as_str()
            .unwrap()
            .contains("does not list this party"),
        "{v}"
    );

    let out = a.cli(&["doctor"]);
    assert_eq!(
        out.code,
        Some(1),
        "doctor fails when a partner is unreachable: {out:?}"
    );
    assert!(out.stdout.contains("b: ok"), "{}", out.stdout);
    assert!(out.stdout.contains("ghost: UNREACHABLE"), "{}", out.stdout);
    let reports = a.cli(&["--json", "doctor"]).json();
    assert_eq!(reports.as_array().unwrap().len(), 4);

    let out = a.cli(&["ping", "nobody"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a partner"), "{}", out.stderr);
}

/// a and c know each other only by PeerId; both know b's address, and b knows theirs. a learns
/// c's address from b (Kademlia among partners) and connects.
#[test]
fn kademlia_learns_partner_addresses_from_a_connected_partner() {
    let fed = Federation::init(&["a", "b", "c"]);
    fed.configure_partner(0, 1, true);
    fed.configure_partner(0, 2, false);
    fed.configure_partner(1, 0, true);
    fed.configure_partner(1, 2, true);
    fed.configure_partner(2, 1, true);
    fed.configure_partner(2, 0, false);
    let _d: Vec<_> = fed.parties.iter().map(|p| p.start()).collect();
    let (a, c) = (&fed.parties[0], &fed.parties[2]);
    wait_for("a and c connected through b's knowledge", T, || {
        (all_connected(&connected_peers(a), 2) && all_connected(&connected_peers(c), 2))
            .then_some(())
    });
    let peers = a.cli(&["--json", "peers"]).json();
    let c_entry = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["party"] == "c")
        .unwrap();
    let c_addr = fed.addr(2);
    assert!(
        c_entry["addrs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str() == Some(c_addr.as_str())),
        "a learned c's address: {c_entry}"
    );
}
