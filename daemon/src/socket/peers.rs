//! Control-socket requests about partners and replicated records, translated into messages to
//! the network's router (which owns the partner overrides and reads the record store).

use consort_actors::network::{Nat, PartnerView, Reachability, Slot, route_text};
use consort_actors::network_actor::partners::{
    AddPartner, Doctor, ListPeers, Ping, RemovePartner, explain,
};
use consort_actors::network_actor::records::{GetRecord, ListRecords, PutRecord};
use consort_protocol::peer::Record;
use consort_protocol::{
    ControlError, ErrorCode, PeerInfo, ReachabilityInfo, RecordInfo, RelayServiceInfo,
    RelaySlotInfo, Request, Response,
};

use crate::failure::{control_error, mailbox_error};
use crate::server::ServerState;

fn peer_info(v: &PartnerView, all: &[PartnerView], me: &str) -> PeerInfo {
    let why = match (&v.diagnosis, v.connected) {
        (Some(d), false) => Some(explain(d, v.party.as_str(), &v.peer_id.to_base58(), me)),
        _ => None,
    };
    PeerInfo {
        party: v.party.to_string(),
        peer_id: v.peer_id.to_base58(),
        connected: v.connected,
        addrs: v.addrs.iter().map(|a| a.to_string()).collect(),
        rtt_ms: v.rtt.map(|d| d.as_secs_f64() * 1e3),
        last_seen: v.last_seen,
        rejected_messages: v.rejected,
        source: v.source.to_owned(),
        route: v.route.filter(|_| v.connected).map(|r| route_text(r, all)),
        remote: v
            .remote
            .as_ref()
            .filter(|_| v.connected)
            .map(|a| a.to_string()),
        hole_punch: v.hole_punch.clone(),
        why,
    }
}

/// The network's reachability snapshot, for the control protocol.
pub(crate) fn reachability_info(r: Reachability) -> ReachabilityInfo {
    let (nat, public_addr) = match r.nat {
        Nat::Unknown => ("unknown", None),
        Nat::Public(addr) => ("public", addr.map(|a| a.to_string())),
        Nat::Private => ("private", None),
    };
    ReachabilityInfo {
        nat: nat.to_owned(),
        nat_source: r.nat_source.to_owned(),
        public_addr,
        observed: r.observed.iter().map(|a| a.to_string()).collect(),
        relay_slots: r
            .slots
            .into_iter()
            .map(|(relay, slot)| {
                let (state, addr) = match slot {
                    Slot::Requested => ("requested".to_owned(), None),
                    Slot::Reserved(a) => ("reserved".to_owned(), Some(a.to_string())),
                    Slot::Failed(why) => (format!("failed: {why}"), None),
                };
                RelaySlotInfo {
                    relay: relay.to_string(),
                    state,
                    addr,
                }
            })
            .collect(),
        relay: r.relay.map(|s| {
            let limits = s.limits;
            RelayServiceInfo {
                reservations: r.relaying_for.iter().map(|p| p.to_string()).collect(),
                circuits: s.circuits,
                circuits_total: s.circuits_total,
                denied_total: s.denied_total,
                max_circuits: limits.max_circuits as u64,
                max_circuit_bytes: limits.max_circuit_bytes,
                max_circuit_s: limits.max_circuit_duration.as_secs(),
            }
        }),
    }
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

/// Answers partner and record requests.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let network = &state.actors.network;
    let gone = |e| mailbox_error("network", e);
    match request {
        Request::Peers => {
            let peers = network
                .send(ListPeers)
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            let me = &state.status.peer_id;
            Ok(Response::Peers {
                peers: peers.iter().map(|v| peer_info(v, &peers, me)).collect(),
            })
        }
        Request::Ping { party } => network
            .send(Ping { party })
            .await
            .map_err(gone)?
            .map(Response::Ping)
            .map_err(control_error),
        Request::Doctor => {
            let reports = network
                .send(Doctor)
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Doctor { reports })
        }
        Request::PartnerAdd {
            party,
            peer_id,
            addrs,
        } => {
            let message = format!("partner {party} ({peer_id}) added");
            network
                .send(AddPartner {
                    party,
                    peer_id,
                    addrs,
                })
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Done { message })
        }
        Request::PartnerRemove { party } => {
            let message = format!("partner {party} removed and disconnected");
            network
                .send(RemovePartner { party })
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Done { message })
        }
        Request::RecordPut { key, value } => {
            let r = network
                .send(PutRecord { key, value })
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Record {
                record: Some(record_info(r, false)),
            })
        }
        Request::RecordGet { origin, key } => {
            let r = network
                .send(GetRecord { origin, key })
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Record {
                record: r.map(|r| record_info(r, true)),
            })
        }
        Request::RecordList => {
            let all = network
                .send(ListRecords)
                .await
                .map_err(gone)?
                .map_err(control_error)?;
            Ok(Response::Records {
                records: all.into_iter().map(|r| record_info(r, false)).collect(),
            })
        }
        _ => Err(ControlError::new(
            ErrorCode::Internal,
            "not a partner or record request",
        )),
    }
}
