//! The event loop: sole owner of the Swarm. Commands come in over a bounded channel, events go
//! out over another; nothing else touches libp2p.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use consort_protocol::PartyName;
use consort_protocol::audience::Audience;
use consort_protocol::jobs::{CHANNEL_TOPIC, JobId};
use consort_protocol::peer::{
    GossipEnvelope, IDENTIFY_PROTOCOL, PeerRequest, PeerRequestBody, PeerResponse, Record,
};
use consort_storage::RecordStore;
use futures::StreamExt;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, ping, relay};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::catch_up::{Done, PageRange};
use super::partners::{BACKOFF_START, Diagnosis, Partner, Partners, Traffic};
use super::push_stream::PushEvent;
use super::relay::{Gathering, OUTBOX_MAX, Outbox};
use super::{Command, NetError, NetworkEvent, PartnerView};

/// Milliseconds since the Unix epoch.
pub(crate) use consort_protocol::clock::now_ms;

/// Events held while the actors' channel is full, at most.
const OVERFLOW_MAX: usize = 100_000;

/// `addr` without a trailing `/p2p/<peer>` component.
pub(crate) fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
        .collect()
}

/// The public key behind an ed25519 PeerId (identity multihash), if it is one.
pub(crate) fn public_key_of(peer: &PeerId) -> Option<PublicKey> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(mh.digest()).ok()
}

/// What an outbound request's answer is for.
pub(crate) enum Pending {
    /// A caller waits for it; `channel_bytes` is the size of the data-channel message it
    /// carries (0 for any other request), counted as sent to the partner once it answers.
    Reply {
        reply: oneshot::Sender<Result<PeerResponse, NetError>>,
        channel_bytes: u64,
    },
    /// Records from this peer to apply: the answer to one of our digest pages (with its
    /// range) or to a push (`None`).
    CatchUp {
        peer: PeerId,
        page: Option<PageRange>,
    },
    /// A batch of our records pushed to this peer; the next batch waits for its answer.
    Push { peer: PeerId },
    /// Records from this peer for the jobs whose sums differed in the page ending at `until`.
    Sums { peer: PeerId, until: Option<String> },
}

/// Partners compared with in one period of the anti-entropy safety net.
const SETTLE_PER_PERIOD: usize = 8;
/// How long a lazily written record waits before it is sent (unless superseded).
const LAZY_DELAY: Duration = Duration::from_millis(25);

/// Checks that `record` carries a valid signature by the key behind `origin_peer`.
#[cfg(test)]
pub(crate) fn check_signature(record: &Record, origin_peer: &PeerId) -> Result<(), String> {
    let key = super::admit::verifying_key_of(origin_peer).ok_or("origin key is not ed25519")?;
    if super::admit::signed_by(record, &key) {
        Ok(())
    } else {
        Err(format!("bad signature on a record of '{}'", record.origin))
    }
}

pub(crate) struct EventLoop {
    pub swarm: Swarm<Behaviour>,
    pub key: Keypair,
    pub party: PartyName,
    pub partners: Partners,
    pub records: RecordStore,
    pub topic: gossipsub::IdentTopic,
    pub commands: mpsc::Receiver<Command>,
    pub events: mpsc::Sender<NetworkEvent>,
    pub redial_max: Duration,
    pub antientropy: Duration,
    pub pending: HashMap<OutboundRequestId, Pending>,
    /// Inbound requests waiting for their answer, with who asked.
    pub inbound_app: HashMap<u64, (PeerId, ResponseChannel<PeerResponse>)>,
    pub next_app_id: u64,
    pub refused_logged: HashSet<PeerId>,
    pub refused_total: u64,
    pub listen_addrs: Vec<Multiaddr>,
    pub dropped_events: u64,
    pub overflow: std::collections::VecDeque<NetworkEvent>,
    /// Work finished on blocking threads comes back here.
    pub done_tx: mpsc::Sender<Done>,
    pub done_rx: mpsc::Receiver<Done>,
    /// Partners with a catch-up under way (one at a time each).
    pub catching_up: HashSet<PeerId>,
    /// Of those, the ones in a periodic (settling) round.
    pub settling: HashSet<PeerId>,
    /// Where the periodic rounds go on from (partners in turn, a few per period).
    pub settle_cursor: usize,
    /// Records held and bytes of values, per origin (quotas).
    pub usage: HashMap<PartyName, (u64, u64)>,
    /// Most records, and bytes of values, one partner may have us hold.
    pub quota: (u64, u64),
    /// Our records waiting to be pushed, per partner: one push in flight per partner, the
    /// records written meanwhile go together in the next one (in order).
    pub outbox: HashMap<PeerId, Outbox>,
    /// Partners with a push in flight.
    pub pushing: HashSet<PeerId>,
    /// Partners whose next batch goes as soon as their push in flight is written (answered,
    /// for a push by request).
    pub released: HashSet<PeerId>,
    /// Jobs whose relays are being gathered (this party is their hub).
    pub gathering: HashMap<String, Gathering>,
    /// Per job, the parties of our own job record, or `None` when we hold none (see
    /// `own_job_parties`).
    pub own_jobs: HashMap<JobId, Option<std::sync::Arc<HashSet<PartyName>>>>,
    /// Public keys decoded from PeerIds (decoding costs half a signature check).
    pub keys: HashMap<PeerId, ed25519_dalek::VerifyingKey>,
    /// Our records whose sending waits a little (oldest first): a run's start, dropped if its
    /// end comes first, so a short run costs partners one record instead of two.
    pub deferred: std::collections::VecDeque<(tokio::time::Instant, Record, Option<PartyName>)>,
    /// Per-job sums of the records held, per party that may see them (anti-entropy).
    pub(crate) sums: super::sums::Sums,
    /// The push streams to and from partners.
    pub(crate) pushes: super::push_stream::Pushes,
    pub(crate) push_events: mpsc::Receiver<PushEvent>,
    /// NAT status, relay slots and relay service.
    pub(crate) reach: super::reach::Reach,
}

impl EventLoop {
    pub async fn run(mut self) {
        // The tick redials and drains the overflow; with every partner connected and nothing
        // waiting it is off, so 50 idle daemons do not wake 500 times a second for nothing.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut antientropy = tokio::time::interval(self.antientropy);
        antientropy.tick().await;
        loop {
            let (next_deferred, any_deferred) = (self.next_deferred(), !self.deferred.is_empty());
            let (flush_at, any_flush) = match self.gathering_due() {
                Some(at) => (at, true),
                None => (next_deferred, false),
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                Some(done) = self.done_rx.recv() => self.on_done(done),
                Some(event) = self.push_events.recv() => self.on_push_event(event),
                _ = tick.tick(), if self.tick_needed() => {
                    self.drain_overflow();
                    self.redial_due();
                }
                _ = antientropy.tick() => self.catch_up_all(),
                _ = tokio::time::sleep_until(next_deferred), if any_deferred => {
                    self.publish_due();
                }
                _ = tokio::time::sleep_until(flush_at), if any_flush => {
                    self.gathering_ended();
                }
            }
        }
        debug!("network event loop stopped");
    }

    /// Hands an event to the actors without ever blocking the network. When their channel is
    /// full the event waits in a bounded overflow queue, drained on every tick: a stored
    /// record's event must not be lost, since no catch-up would bring that record again.
    pub(crate) fn emit(&mut self, event: NetworkEvent) {
        self.drain_overflow();
        if !self.overflow.is_empty() {
            return self.queue_overflow(event);
        }
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            self.queue_overflow(event);
        }
    }

    fn queue_overflow(&mut self, event: NetworkEvent) {
        if self.overflow.len() >= OVERFLOW_MAX {
            self.dropped_events += 1;
            if self.dropped_events.is_power_of_two() {
                warn!(
                    dropped = self.dropped_events,
                    "network events dropped: the actors are far behind"
                );
            }
            return;
        }
        self.overflow.push_back(event);
    }

    fn drain_overflow(&mut self) {
        while let Some(event) = self.overflow.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
                self.overflow.push_front(event);
                return;
            }
        }
    }

    // ---- dialing --------------------------------------------------------------------------

    /// Whether the tick has work: events waiting for the actors, or a partner to redial.
    fn tick_needed(&self) -> bool {
        !self.overflow.is_empty() || self.partners.any_disconnected()
    }

    fn redial_due(&mut self) {
        let now = Instant::now();
        let any_connected = self.partners.iter_sorted().iter().any(|p| p.connected());
        let mut to_dial = Vec::new();
        for state in self.partners.iter_mut() {
            if state.connections > 0 || state.next_dial > now {
                continue;
            }
            to_dial.push(state.partner.peer_id);
            state.next_dial = now + state.backoff;
            state.backoff = (state.backoff * 2).min(self.redial_max);
        }
        for peer in to_dial {
            let addrs = self.addrs_to_dial(peer);
            if addrs.is_empty()
                && any_connected
                && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
            {
                kad.get_closest_peers(peer);
            }
            self.dial(peer, addrs);
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            self.on_dial_error(peer, &e);
        }
    }

    fn on_dial_error(&mut self, peer: PeerId, error: &DialError) {
        let diagnosis = match error {
            DialError::WrongPeerId { obtained, address } => Diagnosis::WrongPeerId {
                addr: address.to_string(),
                obtained: *obtained,
            },
            DialError::NoAddresses => Diagnosis::NoAddress,
            DialError::DialPeerConditionFalse(_) => return,
            DialError::Transport(errors) => {
                let mut diag = Diagnosis::Other(error.to_string());
                let mut no_slot = Vec::new();
                for (addr, e) in errors {
                    let text = format!("{e:?}").to_lowercase();
                    if text.contains("noreservation") {
                        no_slot.push(addr.to_string());
                    } else if text.contains("connectionrefused")
                        || text.contains("connection refused")
                    {
                        diag = Diagnosis::NothingListening(addr.to_string());
                    } else if text.contains("resolve")
                        || text.contains("dns")
                        || text.contains("lookup")
                    {
                        diag = Diagnosis::NameResolution(addr.to_string());
                    }
                }
                if !no_slot.is_empty() && !matches!(diag, Diagnosis::NothingListening(_)) {
                    diag = Diagnosis::NoRelaySlot(no_slot);
                }
                diag
            }
            other => Diagnosis::Other(other.to_string()),
        };
        if let Some(state) = self.partners.get_mut(&peer) {
            debug!(party = %state.partner.party, %peer, ?diagnosis, "dial failed");
            state.diagnosis = Some(diagnosis);
            state.direct_failed = true;
        }
    }

    // ---- swarm events ---------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address)
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let why = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => e.to_string(),
                };
                self.listener_closed(listener_id, why);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                debug!(%address, "external address confirmed");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                connection_id,
                ..
            } => {
                self.route_opened(peer_id, connection_id, &endpoint);
                if let Some(state) = self.partners.get_mut(&peer_id) {
                    state.connections = num_established.get();
                    state.connected_at = Some(Instant::now());
                    state.backoff = BACKOFF_START;
                    if endpoint.is_dialer() && !endpoint.is_relayed() {
                        let addr = without_p2p(endpoint.get_remote_address());
                        if !state.partner.addrs.contains(&addr) && !state.discovered.contains(&addr)
                        {
                            state.discovered.push(addr);
                        }
                    }
                    debug!(party = %state.partner.party, %peer_id, "connection established");
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                connection_id,
                ..
            } => {
                self.route_closed(peer_id, connection_id);
                let mut lost = None;
                if num_established == 0 {
                    // Its push stream went with the connection.
                    self.pushes.disconnected(&peer_id);
                }
                if let Some(state) = self.partners.get_mut(&peer_id) {
                    state.connections = num_established;
                    if num_established == 0 {
                        if !state.identified
                            && state
                                .connected_at
                                .is_some_and(|t| t.elapsed() < Duration::from_secs(3))
                        {
                            state.diagnosis = Some(Diagnosis::RefusedByThem);
                        }
                        let was = state.identified;
                        state.identified = false;
                        state.next_dial = Instant::now() + state.backoff;
                        if was {
                            info!(party = %state.partner.party, %peer_id, "partner disconnected");
                            lost = Some(state.partner.party.clone());
                        }
                    }
                }
                if num_established == 0 {
                    // Catch-up brings what was waiting once the partner is back.
                    self.outbox.remove(&peer_id);
                }
                if let Some(party) = lost {
                    self.emit(NetworkEvent::PartnerDisconnected(party));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                self.on_dial_error(peer, &error);
            }
            SwarmEvent::IncomingConnectionError {
                peer_id,
                send_back_addr,
                error,
                ..
            } => {
                if let ListenError::Denied { .. } = error {
                    if let Some(peer) = peer_id
                        && self.partners.get(&peer).is_none()
                    {
                        self.refused_total += 1;
                        if self.refused_logged.insert(peer) {
                            warn!(%peer, addr = %send_back_addr, "refused connection from a peer that is not a partner");
                        }
                    }
                } else {
                    debug!(addr = %send_back_addr, %error, "incoming connection failed");
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identified(peer_id, info)
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(state) = self.partners.get_mut(&peer) {
                    state.rtt = Some(rtt);
                    state.last_seen = Some(now_ms());
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let acceptance = self.on_gossip(&propagation_source, &message);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            BehaviourEvent::Rr(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_request(peer, request, channel),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => match self.pending.remove(&request_id) {
                        Some(Pending::Reply {
                            reply,
                            channel_bytes,
                        }) => {
                            if let Some(t) = self.traffic(&peer) {
                                t.channel_bytes_sent += channel_bytes;
                            }
                            let _ = reply.send(Ok(response));
                        }
                        Some(Pending::CatchUp { peer, page }) => {
                            self.on_catch_up_response(peer, page, response)
                        }
                        Some(Pending::Push { peer }) => self.push_done(peer),
                        Some(Pending::Sums { peer, until }) => {
                            self.on_sums_response(peer, until, response)
                        }
                        None => {}
                    },
                }
            }
            BehaviourEvent::Rr(request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            }) => {
                debug!(%peer, %error, "request failed");
                match self.pending.remove(&request_id) {
                    Some(Pending::Reply { reply, .. }) => {
                        let _ = reply.send(Err(NetError::Request(error.to_string())));
                    }
                    Some(Pending::CatchUp { page: Some(_), .. }) | Some(Pending::Sums { .. }) => {
                        self.catching_up.remove(&peer);
                    }
                    // What failed comes by catch-up; what waits goes on.
                    Some(Pending::Push { peer }) => self.push_done(peer),
                    _ => {}
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            }) => {
                for found in ok.peers {
                    self.learn_addrs(found.peer_id, found.addrs, "kademlia");
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    self.learn_addrs(peer, vec![addr], "mdns");
                }
            }
            BehaviourEvent::Dcutr(event) => self.on_dcutr(event),
            BehaviourEvent::Autonat(event) => self.on_autonat(event),
            BehaviourEvent::RelayClient(event) => self.on_relay_client(event),
            BehaviourEvent::Relay(event) => self.on_relay_server(event),
            _ => {}
        }
    }

    fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, via: &'static str) {
        let Some(state) = self.partners.get_mut(&peer) else {
            return;
        };
        let mut new = false;
        for addr in addrs.iter().map(without_p2p) {
            if !state.partner.addrs.contains(&addr) && !state.discovered.contains(&addr) {
                debug!(party = %state.partner.party, %addr, via, "partner address discovered");
                state.discovered.push(addr);
                new = true;
            }
        }
        if new && state.connections == 0 {
            state.next_dial = Instant::now();
            state.backoff = BACKOFF_START;
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        let Some(state) = self.partners.get_mut(&peer) else {
            return;
        };
        state.offers_relay = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
        let observed = info.observed_addr.clone();
        if info.protocol_version != IDENTIFY_PROTOCOL {
            warn!(party = %state.partner.party, protocol = %info.protocol_version, "partner speaks another protocol version");
        }
        state.agent = Some(info.agent_version.clone());
        state.protocol = Some(info.protocol_version.clone());
        state.last_seen = Some(now_ms());
        state.diagnosis = None;
        let newly = !state.identified && state.connections > 0;
        state.identified = state.connections > 0;
        let party = state.partner.party.clone();
        for addr in &info.listen_addrs {
            if !state.discovered.contains(addr) && !state.partner.addrs.contains(addr) {
                state.discovered.push(addr.clone());
            }
        }
        self.observed(observed);
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            for addr in info.listen_addrs {
                kad.add_address(&peer, addr);
            }
        }
        if newly {
            info!(%party, %peer, agent = %info.agent_version, "partner connected");
            self.emit(NetworkEvent::PartnerConnected(party));
            self.catch_up(peer);
        }
        // A relay partner (re)connected: a private daemon takes a slot there.
        self.reserve_slots();
    }

    // ---- records ----------------------------------------------------------------------------

    pub(crate) fn reject_from(&mut self, peer: &PeerId, why: &str) {
        if let Some(state) = self.partners.get_mut(peer) {
            state.rejected += 1;
            warn!(party = %state.partner.party, %peer, reason = why, "message dropped");
        } else {
            warn!(%peer, reason = why, "message from a non-partner dropped");
        }
    }

    /// What went between us and `peer`, if it is a partner.
    pub(crate) fn traffic(&mut self, peer: &PeerId) -> Option<&mut Traffic> {
        self.partners.get_mut(peer).map(|s| &mut s.traffic)
    }

    /// A record from `peer` refused: a dropped message, and a refused record.
    pub(crate) fn refuse_record_from(&mut self, peer: &PeerId, why: &str) {
        self.reject_from(peer, why);
        if let Some(t) = self.traffic(peer) {
            t.records_refused += 1;
        }
    }

    /// `n` records from `peer` stored here.
    pub(crate) fn count_stored_from(&mut self, peer: &PeerId, n: usize) {
        if let Some(t) = self.traffic(peer) {
            t.records_stored += n as u64;
        }
    }

    /// `n` records sent to `peer`.
    pub(crate) fn count_sent_to(&mut self, peer: &PeerId, n: usize) {
        if let Some(t) = self.traffic(peer) {
            t.records_sent += n as u64;
        }
    }

    fn on_gossip(
        &mut self,
        via: &PeerId,
        message: &gossipsub::Message,
    ) -> gossipsub::MessageAcceptance {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        if let Some(state) = self.partners.get_mut(via) {
            state.last_seen = Some(now_ms());
        }
        let Some(source) = message.source else {
            self.reject_from(via, "unsigned gossip");
            return Reject;
        };
        let envelope: GossipEnvelope = match rmp_serde::from_slice(&message.data) {
            Ok(e) => e,
            Err(_) => {
                self.reject_from(via, "malformed gossip");
                return Reject;
            }
        };
        // Identity binding: the signed gossip source must be the party the record claims.
        let bound = if source == self.key.public().to_peer_id() {
            Some(&self.party)
        } else {
            self.partners.party_of(&source)
        };
        if bound != Some(&envelope.record.origin) {
            let why = format!(
                "gossip from {source} claims to be from '{}'",
                envelope.record.origin
            );
            self.refuse_record_from(via, &why);
            return Reject;
        }
        if envelope.record.origin == self.party {
            return Ignore;
        }
        match self.apply_record(envelope.record) {
            Ok(stored) => {
                if let Some(record) = stored {
                    self.count_stored_from(via, 1);
                    self.emit(NetworkEvent::RecordsUpdated(vec![record]));
                }
                Accept
            }
            Err(why) => {
                self.refuse_record_from(via, &why);
                Reject
            }
        }
    }

    fn publish(&mut self, record: &Record, hub: Option<&PartyName>) {
        if hub == Some(&self.party) && self.send_as_hub(record) {
            return;
        }
        if !record.audience.is_empty() {
            // A record for some parties only never goes on the federation's topic: it is
            // handed to the job's hub, which relays it, or, with no hub connected, to those
            // of them that are connected; the others get it by catch-up.
            if let Some(hub) = hub.filter(|h| **h != self.party && record.audience.contains(h))
                && let Some(peer) = self.partners.peer_of(hub.as_str())
                && self.partners.get(&peer).is_some_and(|s| s.connections > 0)
            {
                return self.push(record, vec![peer]);
            }
            let peers = self.connected_audience(record, &[]);
            return self.push(record, peers);
        }
        let envelope = GossipEnvelope {
            v: 1,
            record: record.clone(),
        };
        let Ok(bytes) = rmp_serde::to_vec_named(&envelope) else {
            return;
        };
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
        {
            // Gossip has no route yet (a partner's subscription is not known): hand the record
            // to every connected partner directly; the others get it by catch-up.
            debug!(error = %e, key = %record.key, "gossip publish failed; pushing directly");
            let peers: Vec<PeerId> = self
                .partners
                .iter_sorted()
                .iter()
                .filter(|s| s.connections > 0)
                .map(|s| s.partner.peer_id)
                .collect();
            self.push(record, peers);
        } else {
            self.count_gossiped();
        }
    }

    /// A record of ours was published: it went to every peer subscribed to the topic
    /// (partners are explicit peers, sent every message published on a topic they are on).
    fn count_gossiped(&mut self) {
        let topic = self.topic.hash();
        let to: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in to {
            self.count_sent_to(&peer, 1);
        }
    }

    /// The connected partners in `record`'s audience, but for us and `except`.
    pub(crate) fn connected_audience(&self, record: &Record, except: &[&PartyName]) -> Vec<PeerId> {
        record
            .audience
            .iter()
            .filter(|p| **p != self.party && !except.contains(p))
            .filter_map(|p| self.partners.peer_of(p.as_str()))
            .filter(|peer| self.partners.get(peer).is_some_and(|s| s.connections > 0))
            .collect()
    }

    /// When the oldest deferred record is due.
    fn next_deferred(&self) -> tokio::time::Instant {
        self.deferred.front().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |(at, _, _)| *at,
        )
    }

    /// Sends the deferred records that are due.
    fn publish_due(&mut self) {
        let now = tokio::time::Instant::now();
        if self.deferred.front().is_none_or(|(at, _, _)| *at > now) {
            return;
        }
        // Written unflushed (see `put_record`): on disk before anyone hears of them.
        if let Err(e) = self.records.flush() {
            warn!(error = %e, "cannot flush the records store; our deferred records wait");
            let later = now + Duration::from_secs(1);
            for (at, _, _) in self.deferred.iter_mut().filter(|(at, _, _)| *at <= now) {
                *at = later;
            }
            return;
        }
        while self.deferred.front().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, record, hub)) = self.deferred.pop_front() {
                self.publish(&record, hub.as_ref());
            }
        }
    }

    fn put_record(
        &mut self,
        key: String,
        value: Vec<u8>,
        audience: Audience,
        hub: Option<PartyName>,
        lazy: bool,
    ) -> Result<Record, NetError> {
        let now = now_ms();
        let held = self
            .records
            .get(self.party.as_str(), &key)
            .map_err(|e| NetError::Storage(e.to_string()))?;
        // Above both the held version and the clock: monotonic across restarts and clock steps.
        let version = held
            .as_ref()
            .map_or(0, |h| h.version)
            .saturating_add(1)
            .max(now);
        let mut record = Record {
            origin: self.party.clone(),
            key,
            version,
            written_at_ms: now,
            value,
            audience,
            signature: Vec::new(),
        };
        super::admit::check_record(&record, &self.party).map_err(NetError::Invalid)?;
        record.signature = self
            .key
            .sign(&record.signing_bytes())
            .map_err(|e| NetError::Storage(format!("cannot sign: {e}")))?;
        self.records
            .store_newer(&record)
            .map_err(|e| NetError::Storage(e.to_string()))?;
        self.sums.account(held.as_ref(), &record);
        self.stored_own_job(&record);
        // A newer version supersedes one still waiting to be sent.
        self.deferred.retain(|(_, r, _)| r.key != record.key);
        if lazy && self.deferred.len() < OUTBOX_MAX {
            // On disk when it leaves (or with the write that replaces it): a run that ends
            // within the delay costs one flush, not two.
            let at = tokio::time::Instant::now() + LAZY_DELAY;
            self.deferred.push_back((at, record.clone(), hub));
        } else {
            // Our own state is what partners rely on: on disk before anyone hears of it.
            self.records
                .flush()
                .map_err(|e| NetError::Storage(e.to_string()))?;
            self.publish(&record, hub.as_ref());
        }
        Ok(record)
    }

    fn catch_up_all(&mut self) {
        let peers: Vec<PeerId> = self
            .partners
            .iter_sorted()
            .iter()
            .filter(|s| s.connected())
            .map(|s| s.partner.peer_id)
            .collect();
        // A few partners per period, in turn: the cost per daemon stays flat as the
        // federation grows, and a record a partner missed is held by most of the others,
        // so the first of them it compares with brings it.
        if peers.is_empty() {
            return;
        }
        let n = peers.len().min(SETTLE_PER_PERIOD);
        debug!(partners = n, of = peers.len(), "periodic catch-up");
        for i in 0..n {
            let peer = peers[(self.settle_cursor + i) % peers.len()];
            self.settle_with(peer);
        }
        self.settle_cursor = (self.settle_cursor + n) % peers.len();
    }

    // ---- inbound requests -------------------------------------------------------------------

    fn on_request(
        &mut self,
        peer: PeerId,
        request: PeerRequest,
        channel: ResponseChannel<PeerResponse>,
    ) {
        let bound = self.partners.party_of(&peer).cloned();
        if let Some(state) = self.partners.get_mut(&peer) {
            state.last_seen = Some(now_ms());
        }
        let response = if bound.as_ref() != Some(&request.from) {
            let why = format!("request from {peer} claims to be from '{}'", request.from);
            self.reject_from(&peer, &why);
            PeerResponse::Error {
                message: "the sender's PeerId is not bound to the party it names".into(),
            }
        } else {
            match request.body {
                PeerRequestBody::Ping { .. } => PeerResponse::Pong {
                    party: self.party.clone(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                },
                PeerRequestBody::Digest {
                    entries,
                    after,
                    until,
                } => {
                    self.next_app_id += 1;
                    let id = self.next_app_id;
                    self.inbound_app.insert(id, (peer, channel));
                    return self.answer_digest(request.from, entries, after, until, id);
                }
                PeerRequestBody::Sums { sums, after, until } => {
                    self.next_app_id += 1;
                    let id = self.next_app_id;
                    self.inbound_app.insert(id, (peer, channel));
                    return self.answer_sums(request.from, sums, after, until, id);
                }
                PeerRequestBody::Echo { data } => PeerResponse::Echo { data },
                PeerRequestBody::Push { records } => {
                    if self.apply_pushed(peer, &records) {
                        PeerResponse::Records {
                            records: Vec::new(),
                            truncated: false,
                        }
                    } else {
                        PeerResponse::Error {
                            message: "undecodable records".into(),
                        }
                    }
                }
                PeerRequestBody::App { topic, body } => {
                    if topic == CHANNEL_TOPIC
                        && let Some(t) = self.traffic(&peer)
                    {
                        t.channel_bytes_received += body.len() as u64;
                    }
                    self.next_app_id += 1;
                    let id = self.next_app_id;
                    self.inbound_app.insert(id, (peer, channel));
                    let party = request.from;
                    self.emit(NetworkEvent::AppRequest {
                        id,
                        party,
                        topic,
                        body,
                    });
                    return;
                }
                PeerRequestBody::Unknown => PeerResponse::Error {
                    message: "unknown request kind".into(),
                },
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .rr
            .send_response(channel, response);
    }

    // ---- commands ---------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Shutdown => {}
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Peers { reply } => {
                let views = self
                    .partners
                    .iter_sorted()
                    .into_iter()
                    .map(PartnerView::from)
                    .collect();
                let _ = reply.send(views);
            }
            Command::Reachability { reply } => {
                let _ = reply.send(self.reachability());
            }
            Command::Away { reply } => {
                let away = self
                    .partners
                    .iter()
                    .filter(|s| !s.connected())
                    .map(|s| (s.partner.party.clone(), s.last_seen))
                    .collect();
                let _ = reply.send(away);
            }
            Command::AddPartner { partner, reply } => {
                let _ = reply.send(self.add_partner(partner));
            }
            Command::RemovePartner { party, reply } => {
                let _ = reply.send(self.remove_partner(&party));
            }
            Command::PutRecord {
                key,
                value,
                audience,
                hub,
                lazy,
                reply,
            } => {
                let _ = reply.send(self.put_record(key, value, audience, hub, lazy));
            }
            Command::Request { party, body, reply } => {
                let Some(peer) = self.partners.peer_of(&party) else {
                    let _ = reply.send(Err(NetError::UnknownPartner(party)));
                    return;
                };
                let addrs = self.addrs_to_dial(peer);
                let channel_bytes = match &body {
                    PeerRequestBody::App { topic, body } if topic == CHANNEL_TOPIC => {
                        body.len() as u64
                    }
                    _ => 0,
                };
                let req = PeerRequest {
                    from: self.party.clone(),
                    body,
                };
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_request_with_addresses(&peer, req, addrs);
                self.pending.insert(
                    id,
                    Pending::Reply {
                        reply,
                        channel_bytes,
                    },
                );
            }
            Command::Respond { id, response } => self.respond_inbound(id, response),
            Command::Dial { party, reply } => {
                let result = match self.partners.peer_of(&party) {
                    None => Err(NetError::UnknownPartner(party)),
                    Some(peer) => {
                        if let Some(state) = self.partners.get_mut(&peer) {
                            state.next_dial = Instant::now();
                            state.backoff = BACKOFF_START;
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Answers the inbound request held under `id` (an app request or a digest page).
    pub(crate) fn respond_inbound(&mut self, id: u64, response: PeerResponse) {
        if let Some((peer, channel)) = self.inbound_app.remove(&id) {
            if let PeerResponse::Records { records, .. } = &response {
                // An answer to its catch-up.
                self.count_sent_to(&peer, records.len());
            }
            let _ = self
                .swarm
                .behaviour_mut()
                .rr
                .send_response(channel, response);
        }
    }

    pub fn add_partner(&mut self, partner: Partner) -> Result<(), NetError> {
        if partner.party == self.party {
            return Err(NetError::Invalid(
                "a party cannot be its own partner".into(),
            ));
        }
        let peer = partner.peer_id;
        if let Some(other) = self.partners.party_of(&peer)
            && *other != partner.party
        {
            return Err(NetError::Invalid(format!(
                "{peer} is already the PeerId of partner '{other}'; remove that partner first"
            )));
        }
        if peer == self.key.public().to_peer_id() {
            return Err(NetError::Invalid("that is this party's own PeerId".into()));
        }
        info!(party = %partner.party, %peer, "partner added");
        if let Some(old) = self.partners.upsert(partner.clone()) {
            self.drop_peer(old);
        }
        let behaviour = self.swarm.behaviour_mut();
        behaviour.allow.allow_peer(peer);
        behaviour.gossipsub.add_explicit_peer(&peer);
        if let Some(kad) = behaviour.kad.as_mut() {
            for addr in &partner.addrs {
                kad.add_address(&peer, addr.clone());
            }
        }
        Ok(())
    }

    fn remove_partner(&mut self, party: &str) -> Result<(), NetError> {
        let peer = self
            .partners
            .remove(party)
            .ok_or_else(|| NetError::UnknownPartner(party.to_owned()))?;
        info!(%party, %peer, "partner removed; disconnecting");
        self.drop_peer(peer);
        Ok(())
    }

    fn drop_peer(&mut self, peer: PeerId) {
        self.pushes.forget(&peer);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.allow.disallow_peer(peer);
        behaviour.gossipsub.remove_explicit_peer(&peer);
        if let Some(kad) = behaviour.kad.as_mut() {
            kad.remove_peer(&peer);
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &Keypair, origin: &str, value: &[u8]) -> Record {
        let mut r = Record {
            origin: PartyName::new(origin).expect("name"),
            key: "task/j/t/1".into(),
            version: 7,
            written_at_ms: 1,
            value: value.to_vec(),
            audience: Audience::default(),
            signature: Vec::new(),
        };
        r.signature = key.sign(&r.signing_bytes()).expect("sign");
        r
    }

    #[test]
    fn records_are_bound_to_their_origin_key() {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (pa, pb) = (a.public().to_peer_id(), b.public().to_peer_id());
        let record = signed(&a, "bank-a", b"running");
        assert_eq!(public_key_of(&pa).map(|k| k.to_peer_id()), Some(pa));
        assert!(check_signature(&record, &pa).is_ok());
        // The same record claimed for a party bound to another key is refused.
        assert!(check_signature(&record, &pb).is_err());
        // b signs a record that says it comes from bank-a: bound to a's key, so refused.
        let forged = signed(&b, "bank-a", b"success");
        assert!(check_signature(&forged, &pa).is_err());
        // Tampering with any signed field breaks the signature.
        let mut tampered = record.clone();
        tampered.value = b"success".to_vec();
        assert!(check_signature(&tampered, &pa).is_err());
        let mut bumped = record;
        bumped.version += 1;
        assert!(check_signature(&bumped, &pa).is_err());
    }
}
