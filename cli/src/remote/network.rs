//! `consort peers`, `ping`, `doctor`, `partner` and `record`: partners and replicated records.

use consort_protocol::call;
use consort_protocol::{PeerInfo, PingReport, RecordInfo};
use serde_json::json;

use crate::args::{PartnerCommand, RecordCommand};
use crate::failure::{Failure, fail};
use crate::output::{ago, print_json};
use crate::target::Target;

/// `consort peers`.
pub(crate) async fn peers(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let peers = client.call(call::Peers {}).await?;
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
        "{:<16} {:<10} {:>8} {:>12} {:>8}  {:<54} addrs",
        "party", "state", "rtt", "last seen", "dropped", "peer id"
    );
    for p in peers {
        let rtt = p
            .rtt_ms
            .map(|r| format!("{r:.1}ms"))
            .unwrap_or_else(|| "-".into());
        let state = if p.connected { "connected" } else { "down" };
        println!(
            "{:<16} {:<10} {:>8} {:>12} {:>8}  {:<54} {}",
            p.party,
            state,
            rtt,
            ago(p.last_seen),
            p.rejected_messages,
            p.peer_id,
            p.addrs.join(" ")
        );
    }
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
                    "{}: ok, {:.1} ms, consortd {}, {}",
                    r.party,
                    r.rtt_ms.unwrap_or(0.0),
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
