//! `consort peers`, `ping`, `doctor`, `partner` and `record`: partners and replicated records.

use consort_protocol::call;
use consort_protocol::{PeerInfo, PingReport, ReachabilityInfo, RecordInfo};
use serde_json::json;

use crate::args::{PartnerCommand, RecordCommand};
use crate::failure::{Failure, fail};
use crate::output::{ago, print_json};
use crate::target::Target;

/// `consort peers`.
pub(crate) async fn peers(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let peers = client.call(call::Peers {}).await?;
    if !json && let Some(r) = client.call(call::Status {}).await?.reachability {
        for line in reach_lines(&r) {
            println!("{line}");
        }
        println!();
    }
    print_peers(&peers, json);
    Ok(())
}

/// `consort ping PARTY`.
pub(crate) async fn ping(target: &Target, party: String, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let report = client.call(call::Ping { party }).await?;
    print_pings(std::slice::from_ref(&report), json, true)
}

/// `consort doctor`.
pub(crate) async fn doctor(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let reports = client.call(call::Doctor {}).await?;
    if !json && let Some(r) = client.call(call::Status {}).await?.reachability {
        for line in reach_lines(&r) {
            println!("{line}");
        }
    }
    print_pings(&reports, json, false)
}

/// `consort partner ...`
pub(crate) async fn partner(
    target: &Target,
    cmd: PartnerCommand,
    json: bool,
) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let message = match cmd {
        PartnerCommand::Add {
            party,
            peer_id,
            addrs,
        } => {
            client
                .call(call::PartnerAdd {
                    party,
                    peer_id,
                    addrs,
                })
                .await?
        }
        PartnerCommand::Remove { party } => client.call(call::PartnerRemove { party }).await?,
    };
    if json {
        println!("{}", json!({"ok": true, "message": message}));
    } else {
        println!("{message}");
    }
    Ok(())
}

/// `consort record ...`
pub(crate) async fn record(target: &Target, cmd: RecordCommand, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let (record, put) = match cmd {
        RecordCommand::List => {
            let records = client.call(call::RecordList {}).await?;
            print_records(&records, json, false);
            return Ok(());
        }
        RecordCommand::Put { key, value } => {
            let value = value.into_bytes();
            (client.call(call::RecordPut { key, value }).await?, true)
        }
        RecordCommand::Get { origin, key } => {
            (client.call(call::RecordGet { origin, key }).await?, false)
        }
    };
    match record {
        None => Err(fail("not_found", "no such record".into())),
        Some(r) if put && !json => {
            println!(
                "stored {}/{} v{}; published to partners",
                r.origin, r.key, r.version
            );
            Ok(())
        }
        Some(r) => {
            print_records(std::slice::from_ref(&r), json, true);
            Ok(())
        }
    }
}

/// How partners reach this daemon, in a few lines (`status`, `peers`, `doctor`).
pub(crate) fn reach_lines(r: &ReachabilityInfo) -> Vec<String> {
    let mut nat = format!("NAT       {} ({})", r.nat, r.nat_source);
    if let Some(a) = &r.public_addr {
        nat.push_str(&format!(", dialled back at {a}"));
    }
    let mut out = vec![nat];
    if !r.observed.is_empty() {
        out.push(format!("observed  {}", r.observed.join(" ")));
    }
    for s in &r.relay_slots {
        match &s.addr {
            Some(a) => out.push(format!("slot      at relay {}: {} ({a})", s.relay, s.state)),
            None => out.push(format!("slot      at relay {}: {}", s.relay, s.state)),
        }
    }
    if r.nat == "private" && r.relay_slots.is_empty() {
        out.push(
            "slot      none: no connected partner relays (a partner with `[network] relay = true`)"
                .to_owned(),
        );
    }
    if let Some(relay) = &r.relay {
        let slots = if relay.reservations.is_empty() {
            "no partner holds a slot".to_owned()
        } else {
            format!("slots held by {}", relay.reservations.join(", "))
        };
        out.push(format!(
            "relaying  for partners: {slots}; {} circuits open ({} since start, {} refused); limits {} circuits, {} MiB and {} s per circuit",
            relay.circuits,
            relay.circuits_total,
            relay.denied_total,
            relay.max_circuits,
            relay.max_circuit_bytes >> 20,
            relay.max_circuit_s
        ));
    }
    out
}

fn print_peers(peers: &[PeerInfo], json: bool) {
    if json {
        return print_json(&peers);
    }
    if peers.is_empty() {
        println!(
            "no partners; add one with `consort partner add --party P --peer-id ID --addr MULTIADDR`"
        );
        return;
    }
    println!(
        "{:<16} {:<10} {:<28} {:>8} {:>12} {:>8}  {:<54} addrs",
        "party", "state", "route", "rtt", "last seen", "dropped", "peer id"
    );
    for p in peers {
        let rtt = p
            .rtt_ms
            .map(|r| format!("{r:.1}ms"))
            .unwrap_or_else(|| "-".into());
        let state = if p.connected { "connected" } else { "down" };
        println!(
            "{:<16} {:<10} {:<28} {:>8} {:>12} {:>8}  {:<54} {}",
            p.party,
            state,
            route_cell(p),
            rtt,
            ago(p.last_seen),
            p.rejected_messages,
            p.peer_id,
            p.addrs.join(" ")
        );
    }
    for p in peers {
        if let Some(why) = &p.why {
            println!("{}: {why}", p.party);
        }
        if let Some(punch) = p.hole_punch.as_deref().filter(|h| *h != "succeeded") {
            println!("{}: hole punching {punch}", p.party);
        }
    }
}

/// `hole punched, quic`, `relayed via r, tcp`, `direct, tcp`, or `-` while down.
fn route_cell(p: &PeerInfo) -> String {
    let Some(route) = &p.route else {
        return "-".to_owned();
    };
    let transport = match &p.remote {
        Some(a) if a.contains("/p2p-circuit") && a.contains("/quic") => ", quic to relay",
        Some(a) if a.contains("/p2p-circuit") => ", tcp to relay",
        Some(a) if a.contains("/quic") => ", quic",
        Some(_) => ", tcp",
        None => "",
    };
    format!("{route}{transport}")
}

/// Prints ping reports; fails (exit 1) when any partner is unreachable.
fn print_pings(reports: &[PingReport], json: bool, single: bool) -> Result<(), Failure> {
    if json {
        if single {
            print_json(&reports[0]);
        } else {
            print_json(&reports);
        }
    } else {
        if reports.is_empty() {
            println!("no partners configured");
        }
        for r in reports {
            if r.ok {
                println!(
                    "{}: ok, {:.1} ms, {}, consortd {}, {}",
                    r.party,
                    r.rtt_ms.unwrap_or(0.0),
                    r.route.as_deref().unwrap_or("direct"),
                    r.version.as_deref().unwrap_or("?"),
                    r.protocol.as_deref().unwrap_or("?")
                );
            } else {
                println!("{}: UNREACHABLE — {}", r.party, r.diagnosis);
            }
        }
    }
    let down: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.party.as_str())
        .collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: "unreachable",
            message: format!("unreachable: {}", down.join(", ")),
            exit: 1,
            reported: json,
        })
    }
}

fn print_records(records: &[RecordInfo], json: bool, with_value: bool) {
    if json {
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                let mut v = json!({"origin": r.origin, "key": r.key, "version": r.version, "written_at_ms": r.written_at_ms});
                if with_value {
                    v["value"] = json!(String::from_utf8_lossy(&r.value));
                }
                v
            })
            .collect();
        if with_value && rows.len() == 1 {
            print_json(&rows[0]);
        } else {
            print_json(&rows);
        }
        return;
    }
    for r in records {
        if with_value {
            println!(
                "{}/{} v{}: {}",
                r.origin,
                r.key,
                r.version,
                String::from_utf8_lossy(&r.value)
            );
        } else {
            println!("{}/{} v{}", r.origin, r.key, r.version);
        }
    }
}
