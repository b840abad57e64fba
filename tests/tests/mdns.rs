//! mDNS discovery between two daemons on a private two-host LAN (network namespaces joined by
//! a veth pair; mDNS never uses loopback). Needs root and iproute2, which CI has: where they
//! are missing, the build script compiles the test as ignored, with the reason
//! (`CONSORT_NETNS=1` forces it in, `CONSORT_NETNS=0` out).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consort_tests::{Federation, TwoHostLan, connected_peers, wait_for};

#[test]
#[cfg_attr(
    not(consort_netns),
    ignore = "needs root and iproute2 (network namespaces); not available when this was built"
)]
fn mdns_finds_partners_without_addresses() {
    let lan = TwoHostLan::create().expect("network namespaces (root and iproute2)");
    let fed = Federation::init(&["a", "b"]);
    for (i, j) in [(0, 1), (1, 0)] {
        fed.edit_config(i, "mdns = false", "mdns = true");
        // Listen on every interface of the namespace; partners are listed with no address.
        fed.edit_config(
            i,
            &format!("listen = [\"{}\"]", fed.addr(i)),
            "listen = [\"/ip4/0.0.0.0/tcp/4750\"]",
        );
        fed.configure_partner(i, j, false);
    }
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let _da = a.start_in(&lan.ns[0]);
    let _db = b.start_in(&lan.ns[1]);
    wait_for("mdns discovery", Duration::from_secs(20), || {
        let both = connected_peers(a) == vec![("b".to_owned(), true)]
            && connected_peers(b) == vec![("a".to_owned(), true)];
        both.then_some(())
    });
    let peers = a.cli(&["--json", "peers"]).json();
    let addrs = peers[0]["addrs"].as_array().unwrap();
    assert!(
        addrs
            .iter()
            .any(|x| x.as_str().unwrap().starts_with("/ip4/10.251.")),
        "discovered address on the LAN: {peers}"
    );
}
