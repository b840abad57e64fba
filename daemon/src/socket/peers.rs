//! Control-socket requests about partners and replicated records, translated into messages to
//! the network's router (which owns the partner overrides and reads the record store).

use consort_actors::network::PartnerView;
use consort_actors::network_actor::partners::{AddPartner, Doctor, ListPeers, Ping, RemovePartner};
use consort_actors::network_actor::records::{GetRecord, ListRecords, PutRecord};
use consort_protocol::peer::Record;
use consort_protocol::{ControlError, ErrorCode, PeerInfo, RecordInfo, Request, Response};

use crate::failure::{control_error, mailbox_error};
use crate::server::ServerState;

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
            Ok(Response::Peers {
                peers: peers.into_iter().map(peer_info).collect(),
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
