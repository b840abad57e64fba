//! Wiring of the partner network into the daemon: effective partner list, network settings,
//! and the control-socket requests about partners and records.

use std::time::{Duration, Instant};

use consort_actors::network::{
    Diagnosis, NetError, NetworkClient, NetworkConfig, Partner, PartnerView, parse_multiaddr,
    parse_peer_id,
};
use consort_protocol::peer::{PeerRequestBody, PeerResponse, Record};
use consort_protocol::{
    ControlError, ErrorCode, PartyName, PeerInfo, PingReport, RecordInfo, Response,
};
use consort_storage::{PartnerEntry, PartnerOverrides, RecordStore};
use libp2p_identity::Keypair;

use crate::config::Settings;

/// Deadline of `consort ping` per partner.
const PING_DEADLINE: Duration = Duration::from_secs(5);

/// Network settings from the configuration.
pub fn network_config(settings: &Settings, key: Keypair) -> anyhow::Result<NetworkConfig> {
    let c = &settings.config;
    let listen = c
        .listen
        .iter()
        .map(|a| parse_multiaddr(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetworkConfig {
        party: c.party.clone(),
        key,
        listen,
        federation: c.network.federation.clone(),
        mdns: c.network.mdns,
        kademlia: c.network.kademlia,
        max_message_bytes: c.network.max_message_bytes,
        request_timeout: Duration::from_secs(c.network.request_timeout_s),
        redial_max: Duration::from_secs(c.network.redial_max_s),
        antientropy: Duration::from_secs(c.network.antientropy_s),
        records_per_partner: c.network.records_per_partner,
        record_bytes_per_partner: c.network.record_bytes_per_partner,
    })
}

/// The config's `[[partners]]` with the run-time overrides applied.
pub fn effective_partners(
    settings: &Settings,
    overrides: &PartnerOverrides,
) -> anyhow::Result<Vec<Partner>> {
    let mut out: Vec<Partner> = Vec::new();
    for p in &settings.config.partners {
        out.push(Partner {
            party: p.party.clone(),
            peer_id: parse_peer_id(&p.peer_id)?,
            addrs: p
                .addrs
                .iter()
                .map(|a| parse_multiaddr(a))
                .collect::<Result<_, _>>()?,
            source: "config",
        });
    }
    for (party, entry) in overrides.all()? {
        out.retain(|p| p.party.as_str() != party);
        if let PartnerEntry::Added { peer_id, addrs } = entry {
            out.push(Partner {
                party: PartyName::new(&party)?,
                peer_id: parse_peer_id(&peer_id)?,
                addrs: addrs
                    .iter()
                    .map(|a| parse_multiaddr(a))
                    .collect::<Result<_, _>>()?,
                source: "cli",
            });
        }
    }
    Ok(out)
}

fn err(code: ErrorCode, msg: impl Into<String>) -> ControlError {
    ControlError::new(code, msg)
}

fn net_err(e: NetError) -> ControlError {
    let code = match e {
        NetError::UnknownPartner(_) => ErrorCode::NotFound,
        NetError::Invalid(_) => ErrorCode::InvalidArgument,
        NetError::Request(_) | NetError::Deadline(_) => ErrorCode::Unreachable,
        _ => ErrorCode::Internal,
    };
    err(code, e.to_string())
}

fn peer_info(v: PartnerView) -> PeerInfo {
    PeerInfo {
        party: v.party.to_string(),
        peer_id: v.peer_id.to_base58(),
        connected: v.connected,
        addrs: v.addrs.iter().map(|a| a.to_string()).collect(),
        rtt_ms: v.rtt.map(|d| d.as_secs_f64() * 1e3),
        last_seen: v.last_seen,
        rejected_messages: v.rejected,
        source: v.source.to_owned(),
    }
}

/// `consort peers`.
pub async fn peers(net: &NetworkClient) -> Result<Response, ControlError> {
    let peers = net.peers().await.map_err(net_err)?;
    Ok(Response::Peers {
        peers: peers.into_iter().map(peer_info).collect(),
    })
}

fn explain(d: &Diagnosis, party: &str, configured: &str, me: &str) -> String {
    match d {
        Diagnosis::WrongPeerId { addr, obtained } => format!(
            "wrong peer id: {addr} answers as {obtained}, not {configured}; check the peer_id configured for {party}"
        ),
        Diagnosis::NothingListening(addr) => format!(
            "nothing is listening at {addr} (connection refused): is {party}'s consortd running, on that address?"
        ),
        Diagnosis::RefusedByThem => format!(
            "{party} accepted the connection and closed it at once: it does not list this party ({me}) as a partner"
        ),
        Diagnosis::NameResolution(addr) => format!("the name in {addr} does not resolve"),
        Diagnosis::NoAddress => format!(
            "no address is known for {party}: add one with `consort partner add`, or enable mdns/kademlia"
        ),
        Diagnosis::Other(e) => e.clone(),
    }
}

/// `consort ping PARTY`.
pub async fn ping(net: &NetworkClient, party: &str, me: &str) -> Result<PingReport, ControlError> {
    let view = net
        .peers()
        .await
        .map_err(net_err)?
        .into_iter()
        .find(|v| v.party.as_str() == party)
        .ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!("'{party}' is not a partner (see `consort peers`)"),
            )
        })?;
    net.dial(party).await.map_err(net_err)?;
    let started = Instant::now();
    let body = PeerRequestBody::Ping {
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let result = net.request(party, body, PING_DEADLINE).await;
    let rtt = started.elapsed();
    let after = net
        .peers()
        .await
        .map_err(net_err)?
        .into_iter()
        .find(|v| v.party.as_str() == party)
        .unwrap_or(view);
    let configured = after.peer_id.to_base58();
    let mut report = PingReport {
        party: party.to_owned(),
        peer_id: configured.clone(),
        ok: false,
        rtt_ms: None,
        version: None,
        protocol: after.protocol.clone().map(|p| match &after.agent {
            Some(a) => format!("{p} ({a})"),
            None => p,
        }),
        diagnosis: String::new(),
    };
    match result {
        Ok(PeerResponse::Pong { version, .. }) => {
            report.ok = true;
            report.rtt_ms = Some(rtt.as_secs_f64() * 1e3);
            report.version = Some(version);
            report.diagnosis = "reachable".into();
        }
        Ok(PeerResponse::Error { message }) => {
            report.diagnosis = format!("{party} refused the request: {message}")
        }
        Ok(other) => report.diagnosis = format!("unexpected answer: {other:?}"),
        Err(e) => {
            report.diagnosis = match &after.diagnosis {
                Some(d) => explain(d, party, &configured, me),
                None => format!("no answer: {e}"),
            }
        }
    }
    Ok(report)
}

/// `consort doctor`: ping every partner.
pub async fn doctor(net: &NetworkClient, me: &str) -> Result<Response, ControlError> {
    let parties: Vec<String> = net
        .peers()
        .await
        .map_err(net_err)?
        .into_iter()
        .map(|v| v.party.to_string())
        .collect();
    let pings = parties.iter().map(|p| ping(net, p, me));
    let reports = futures::future::join_all(pings)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::Doctor { reports })
}

/// `consort partner add`.
pub async fn partner_add(
    net: &NetworkClient,
    overrides: &PartnerOverrides,
    party: &str,
    peer_id: &str,
    addrs: &[String],
) -> Result<Response, ControlError> {
    let invalid = |m: String| err(ErrorCode::InvalidArgument, m);
    let name = PartyName::new(party).map_err(|e| invalid(e.to_string()))?;
    let peer = parse_peer_id(peer_id).map_err(net_err)?;
    let parsed = addrs
        .iter()
        .map(|a| parse_multiaddr(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(net_err)?;
    let partner = Partner {
        party: name,
        peer_id: peer,
        addrs: parsed,
        source: "cli",
    };
    net.add_partner(partner).await.map_err(net_err)?;
    overrides
        .set(
            party,
            &PartnerEntry::Added {
                peer_id: peer_id.to_owned(),
                addrs: addrs.to_vec(),
            },
        )
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    Ok(Response::Done {
        message: format!("partner {party} ({peer_id}) added"),
    })
}

/// `consort partner remove`.
pub async fn partner_remove(
    net: &NetworkClient,
    overrides: &PartnerOverrides,
    party: &str,
) -> Result<Response, ControlError> {
    net.remove_partner(party).await.map_err(net_err)?;
    overrides
        .set(party, &PartnerEntry::Removed)
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    Ok(Response::Done {
        message: format!("partner {party} removed and disconnected"),
    })
}

fn record_info(r: Record, with_value: bool) -> RecordInfo {
    RecordInfo {
        origin: r.origin.to_string(),
        key: r.key,
        version: r.version,
        written_at_ms: r.written_at_ms,
        value: if with_value { r.value } else { Vec::new() },
    }
}

/// `consort record put`.
pub async fn record_put(
    net: &NetworkClient,
    key: String,
    value: Vec<u8>,
) -> Result<Response, ControlError> {
    if key.is_empty() || key.len() > 512 {
        return Err(err(
            ErrorCode::InvalidArgument,
            "a record key is 1 to 512 bytes",
        ));
    }
    if consort_protocol::jobs::is_job_key(&key) {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!(
                "'{key}': keys under {} belong to the scheduler",
                consort_protocol::jobs::JOB_KEY_PREFIXES.join(", ")
            ),
        ));
    }
    let r = net
        .put_record(key, value, Vec::new())
        .await
        .map_err(net_err)?;
    Ok(Response::Record {
        record: Some(record_info(r, false)),
    })
}

/// `consort record get`.
pub fn record_get(
    records: &RecordStore,
    origin: &str,
    key: &str,
) -> Result<Response, ControlError> {
    let r = records
        .get(origin, key)
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    Ok(Response::Record {
        record: r.map(|r| record_info(r, true)),
    })
}

/// `consort record list`.
pub fn record_list(records: &RecordStore) -> Result<Response, ControlError> {
    let all = records
        .all()
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    Ok(Response::Records {
        records: all.into_iter().map(|r| record_info(r, false)).collect(),
    })
}
