//! The socket's questions about partners, answered by the router from the network: who they
//! are and how they are doing ([`ListPeers`], [`Ping`], [`Doctor`], [`ListenAddrs`]), and
//! partners added or removed at run time ([`AddPartner`], [`RemovePartner`], remembered in the
//! partner overrides so a restart keeps them; [`PartnerChanges`] lists them).

use std::time::{Duration, Instant};

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_protocol::{PartyName, PingReport};
use consort_storage::{PartnerEntry, PartnerOverrides};
use libp2p::Multiaddr;

use super::NetworkActor;
use crate::failure::{Failure, blocking};
use crate::network::{
    Diagnosis, NetError, NetworkClient, Partner, PartnerView, Reachability, parse_multiaddr,
    parse_peer_id, route_text,
};

/// Deadline of `consort ping` per partner.
const PING_DEADLINE: Duration = Duration::from_secs(5);

/// A network error by kind.
pub(crate) fn net_failure(e: NetError) -> Failure {
    match e {
        NetError::UnknownPartner(_) => Failure::NotFound(e.to_string()),
        NetError::Invalid(_) => Failure::Invalid(e.to_string()),
        NetError::Request(_) | NetError::Deadline(_) => Failure::Unreachable(e.to_string()),
        _ => Failure::Internal(e.to_string()),
    }
}

/// The addresses the swarm listens on.
#[derive(Debug, Clone)]
pub struct ListenAddrs;

impl Message for ListenAddrs {
    type Result = Result<Vec<Multiaddr>, Failure>;
}

/// Handler for [`ListenAddrs`].
impl Handler<ListenAddrs> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<Multiaddr>, Failure>>;

    fn handle(&mut self, _msg: ListenAddrs, _ctx: &mut Context<Self>) -> Self::Result {
        let net = self.client.clone();
        Box::pin(async move { net.listen_addrs().await.map_err(net_failure) })
    }
}

/// Every partner's state.
#[derive(Debug, Clone)]
pub struct ListPeers;

impl Message for ListPeers {
    type Result = Result<Vec<PartnerView>, Failure>;
}

/// Handler for [`ListPeers`].
impl Handler<ListPeers> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<PartnerView>, Failure>>;

    fn handle(&mut self, _msg: ListPeers, _ctx: &mut Context<Self>) -> Self::Result {
        let net = self.client.clone();
        Box::pin(async move { net.peers().await.map_err(net_failure) })
    }
}

/// This daemon's NAT status, relay slots and relay service.
#[derive(Debug, Clone)]
pub struct GetReachability;

impl Message for GetReachability {
    type Result = Result<Reachability, Failure>;
}

/// Handler for [`GetReachability`].
impl Handler<GetReachability> for NetworkActor {
    type Result = ResponseFuture<Result<Reachability, Failure>>;

    fn handle(&mut self, _msg: GetReachability, _ctx: &mut Context<Self>) -> Self::Result {
        let net = self.client.clone();
        Box::pin(async move { net.reachability().await.map_err(net_failure) })
    }
}

/// Pings one partner and explains a failure.
#[derive(Debug, Clone)]
pub struct Ping {
    /// The partner.
    pub party: String,
}

impl Message for Ping {
    type Result = Result<PingReport, Failure>;
}

/// Handler for [`Ping`].
impl Handler<Ping> for NetworkActor {
    type Result = ResponseFuture<Result<PingReport, Failure>>;

    fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> Self::Result {
        let (net, me) = (self.client.clone(), self.peer_id.clone());
        Box::pin(async move { ping(&net, &msg.party, &me).await })
    }
}

/// Pings every partner.
#[derive(Debug, Clone)]
pub struct Doctor;

impl Message for Doctor {
    type Result = Result<Vec<PingReport>, Failure>;
}

/// Handler for [`Doctor`].
impl Handler<Doctor> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<PingReport>, Failure>>;

    fn handle(&mut self, _msg: Doctor, _ctx: &mut Context<Self>) -> Self::Result {
        let (net, me) = (self.client.clone(), self.peer_id.clone());
        Box::pin(async move {
            let parties: Vec<String> = net
                .peers()
                .await
                .map_err(net_failure)?
                .into_iter()
                .map(|v| v.party.to_string())
                .collect();
            let pings = parties.iter().map(|p| ping(&net, p, &me));
            futures::future::join_all(pings).await.into_iter().collect()
        })
    }
}

/// A partner's [`Diagnosis`] in words an operator can act on.
pub fn explain(d: &Diagnosis, party: &str, configured: &str, me: &str) -> String {
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
        Diagnosis::NoRelaySlot(tried) => format!(
            "{party} cannot be dialled directly and holds no slot at the partner relays tried ({}): it is down, or behind NAT without a partner relay it can reach (see `consort status` there)",
            tried.join(", ")
        ),
        Diagnosis::Other(e) => e.clone(),
    }
}

/// `consort ping PARTY`.
async fn ping(net: &NetworkClient, party: &str, me: &str) -> Result<PingReport, Failure> {
    let view = net
        .peers()
        .await
        .map_err(net_failure)?
        .into_iter()
        .find(|v| v.party.as_str() == party)
        .ok_or_else(|| {
            Failure::NotFound(format!("'{party}' is not a partner (see `consort peers`)"))
        })?;
    net.dial(party).await.map_err(net_failure)?;
    let started = Instant::now();
    let body = PeerRequestBody::Ping {
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let result = net.request(party, body, PING_DEADLINE).await;
    let rtt = started.elapsed();
    let views = net.peers().await.map_err(net_failure)?;
    let after = views
        .iter()
        .find(|v| v.party.as_str() == party)
        .cloned()
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
        route: after.route.map(|r| route_text(r, &views)),
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

/// Adds (or replaces) a partner now and for later starts.
#[derive(Debug, Clone)]
pub struct AddPartner {
    /// Its party name.
    pub party: String,
    /// Its PeerId (base58).
    pub peer_id: String,
    /// Its addresses.
    pub addrs: Vec<String>,
}

impl Message for AddPartner {
    type Result = Result<(), Failure>;
}

/// Handler for [`AddPartner`].
impl Handler<AddPartner> for NetworkActor {
    type Result = ResponseFuture<Result<(), Failure>>;

    fn handle(&mut self, msg: AddPartner, _ctx: &mut Context<Self>) -> Self::Result {
        let (net, overrides) = (self.client.clone(), self.overrides.clone());
        Box::pin(async move {
            let AddPartner {
                party,
                peer_id,
                addrs,
            } = msg;
            let name = PartyName::new(&party).map_err(|e| Failure::Invalid(e.to_string()))?;
            let peer = parse_peer_id(&peer_id).map_err(net_failure)?;
            let parsed = addrs
                .iter()
                .map(|a| parse_multiaddr(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(net_failure)?;
            let partner = Partner {
                party: name,
                peer_id: peer,
                addrs: parsed,
                source: "cli",
            };
            net.add_partner(partner).await.map_err(net_failure)?;
            let entry = PartnerEntry::Added { peer_id, addrs };
            remember(overrides, party, entry).await
        })
    }
}

/// Removes a partner and closes its connections, now and for later starts.
#[derive(Debug, Clone)]
pub struct RemovePartner {
    /// Its party name.
    pub party: String,
}

impl Message for RemovePartner {
    type Result = Result<(), Failure>;
}

/// Handler for [`RemovePartner`].
impl Handler<RemovePartner> for NetworkActor {
    type Result = ResponseFuture<Result<(), Failure>>;

    fn handle(&mut self, msg: RemovePartner, _ctx: &mut Context<Self>) -> Self::Result {
        let (net, overrides) = (self.client.clone(), self.overrides.clone());
        Box::pin(async move {
            net.remove_partner(&msg.party).await.map_err(net_failure)?;
            remember(overrides, msg.party, PartnerEntry::Removed).await
        })
    }
}

/// Stores a run-time partner change (a small sled write, off the actor's thread).
async fn remember(
    overrides: PartnerOverrides,
    party: String,
    entry: PartnerEntry,
) -> Result<(), Failure> {
    blocking(move || overrides.set(&party, &entry).map_err(Failure::internal)).await
}

/// The partners added or removed at run time (applied over the config's at every start).
#[derive(Debug, Clone)]
pub struct PartnerChanges;

impl Message for PartnerChanges {
    type Result = Result<Vec<(String, PartnerEntry)>, Failure>;
}

/// Handler for [`PartnerChanges`]: reads them on a blocking thread.
impl Handler<PartnerChanges> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<(String, PartnerEntry)>, Failure>>;

    fn handle(&mut self, _msg: PartnerChanges, _ctx: &mut Context<Self>) -> Self::Result {
        let overrides = self.overrides.clone();
        Box::pin(async move { blocking(move || overrides.all().map_err(Failure::internal)).await })
    }
}
