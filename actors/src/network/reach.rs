//! How partners are reached: directly, through a partner that relays, or hole punched from a
//! relayed connection (DCUtR); this daemon's NAT status (AutoNAT, or as configured) and its
//! slots at partner relays; and, at a relay, what it carries for partners.
//!
//! Only partners connect at all (the allow list), so only partners reserve slots or open
//! circuits at a relay, and a circuit only reaches a daemon that lists its source as a partner.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use consort_protocol::PartyName;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, autonat, dcutr, relay};
use tracing::{debug, info, warn};

use super::behaviour::RelayLimits;
use super::event_loop::EventLoop;
use super::partners::BACKOFF_START;

/// How this daemon learns whether partners can dial it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatMode {
    /// AutoNAT: partners try to dial it back.
    #[default]
    Auto,
    /// Reachable as configured: never reserves a relay slot.
    Public,
    /// Behind NAT as configured: reserves a slot at partner relays at once.
    Private,
}

/// How one connection to a partner goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Dialled or accepted directly.
    Direct,
    /// Made direct by hole punching from a relayed connection.
    HolePunched,
    /// Through a partner relay.
    Relayed {
        /// The relay.
        via: PeerId,
    },
}

impl Route {
    /// The route of a connection from its endpoint.
    pub fn of(endpoint: &ConnectedPoint) -> Self {
        let addr = match endpoint {
            ConnectedPoint::Dialer { address, .. } => address,
            ConnectedPoint::Listener { local_addr, .. } => local_addr,
        };
        match relay_of(addr) {
            Some(via) => Route::Relayed { via },
            None => Route::Direct,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Route::HolePunched => 2,
            Route::Direct => 1,
            Route::Relayed { .. } => 0,
        }
    }
}

/// The relay in a circuit address (`…/p2p/RELAY/p2p-circuit…`).
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last_peer = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last_peer = Some(peer),
            Protocol::P2pCircuit => return last_peer,
            _ => {}
        }
    }
    None
}

/// Direct connections opened this long after a successful hole punch count as punched.
const PUNCH_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `addr` is a QUIC address.
fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

/// The best of a partner's routes (hole punched, then direct, then relayed).
pub fn best(routes: &HashMap<ConnectionId, Route>) -> Option<Route> {
    best_connection(routes).map(|(_, r)| r)
}

/// The connection with the best route.
pub fn best_connection(routes: &HashMap<ConnectionId, Route>) -> Option<(ConnectionId, Route)> {
    routes
        .iter()
        .map(|(id, r)| (*id, *r))
        .max_by_key(|(id, r)| (r.rank(), *id))
}

/// `direct`, `hole punched` or `relayed via PARTY` (the relay's party among `partners`).
pub fn route_text(route: Route, partners: &[super::PartnerView]) -> String {
    match route {
        Route::Direct => "direct".to_owned(),
        Route::HolePunched => "hole punched".to_owned(),
        Route::Relayed { via } => match partners.iter().find(|p| p.peer_id == via) {
            Some(p) => format!("relayed via {}", p.party),
            None => format!("relayed via {via}"),
        },
    }
}

/// This daemon's NAT status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Nat {
    /// Not known yet (AutoNAT has no verdict).
    #[default]
    Unknown,
    /// Partners can dial it (at this address, when AutoNAT found one).
    Public(Option<Multiaddr>),
    /// Partners cannot dial it.
    Private,
}

/// A slot at a partner relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Asked for.
    Requested,
    /// Held: partners reach this daemon at this address.
    Reserved(Multiaddr),
    /// Refused or lost, and why.
    Failed(String),
}

/// What a relay carries for its partners.
#[derive(Debug, Clone, Default)]
pub struct RelayService {
    /// Its limits.
    pub limits: RelayLimits,
    /// Partners holding a slot.
    pub reservations: HashSet<PeerId>,
    /// Circuits open now.
    pub circuits: u64,
    /// Circuits opened since start.
    pub circuits_total: u64,
    /// Reservations and circuits refused since start.
    pub denied_total: u64,
}

/// A snapshot for `consort status`, `peers` and `doctor`.
#[derive(Debug, Clone)]
pub struct Reachability {
    /// NAT status.
    pub nat: Nat,
    /// `autonat` or `config`.
    pub nat_source: &'static str,
    /// Addresses partners observed this daemon at.
    pub observed: Vec<Multiaddr>,
    /// Slots at partner relays, by relay.
    pub slots: Vec<(PartyName, Slot)>,
    /// Reservations held here by partners (their parties), when this daemon relays.
    pub relaying_for: Vec<PartyName>,
    /// What it relays, when it does.
    pub relay: Option<RelayService>,
}

/// The reachability state the event loop keeps.
#[derive(Debug, Default)]
pub struct Reach {
    /// Configured mode.
    pub mode: NatMode,
    /// Current verdict.
    pub nat: Nat,
    /// Observed addresses (identify), newest last, at most 8.
    pub observed: Vec<Multiaddr>,
    /// Slots at relays, by relay, with their listener.
    pub slots: HashMap<PeerId, (ListenerId, Slot)>,
    /// Relay service, when this daemon relays.
    pub service: Option<RelayService>,
}

impl Reach {
    /// A fresh state.
    pub fn new(mode: NatMode, relay: Option<RelayLimits>) -> Self {
        Self {
            mode,
            nat: match mode {
                NatMode::Auto => Nat::Unknown,
                NatMode::Public => Nat::Public(None),
                NatMode::Private => Nat::Private,
            },
            service: relay.map(|limits| RelayService {
                limits,
                ..RelayService::default()
            }),
            ..Self::default()
        }
    }

    /// Whether this daemon should hold slots at partner relays.
    pub fn wants_slots(&self) -> bool {
        self.nat == Nat::Private
    }
}

impl EventLoop {
    /// A connection to a partner opened: remember its route; a direct one retires the relayed
    /// ones (traffic would otherwise keep going round through the relay).
    pub(crate) fn route_opened(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let route = Route::of(endpoint);
        let Some(state) = self.partners.get_mut(&peer) else {
            return;
        };
        // Simultaneous opens can leave more than one direct connection, and which one DCUtR
        // names is a race: every direct connection opened around a successful punch is one.
        let punched = state.punched_at.is_some_and(|t| t.elapsed() < PUNCH_WINDOW);
        let route = match route {
            Route::Direct if punched => Route::HolePunched,
            other => other,
        };
        let route = *state.routes.entry(id).or_insert(route);
        let remote = match endpoint {
            ConnectedPoint::Dialer { address, .. } => address,
            ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
        };
        state
            .remotes
            .insert(id, super::event_loop::without_p2p(remote));
        if let (Route::Direct, ConnectedPoint::Dialer { address, .. }) = (route, endpoint) {
            state.reached_at = Some(super::event_loop::without_p2p(address));
        }
        if !matches!(route, Route::Relayed { .. }) {
            state.direct_failed = false;
            self.retire_relayed(peer);
        } else {
            info!(party = %state.partner.party, %peer, "connected through a relay");
        }
    }

    /// A connection closed.
    pub(crate) fn route_closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(state) = self.partners.get_mut(&peer) {
            state.routes.remove(&id);
            state.remotes.remove(&id);
        }
    }

    fn retire_relayed(&mut self, peer: PeerId) {
        let Some(state) = self.partners.get(&peer) else {
            return;
        };
        let relayed: Vec<ConnectionId> = state
            .routes
            .iter()
            .filter(|(_, r)| matches!(r, Route::Relayed { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in relayed {
            debug!(party = %state.partner.party, %peer, "closing the relayed connection: a direct one is open");
            self.swarm.close_connection(id);
        }
    }

    /// Hole punching finished, either way.
    pub(crate) fn on_dcutr(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        let Some(state) = self.partners.get_mut(&peer) else {
            return;
        };
        match event.result {
            Ok(id) => {
                info!(party = %state.partner.party, %peer, "hole punched: the connection is direct");
                state.punched_at = Some(Instant::now());
                state.routes.insert(id, Route::HolePunched);
                for route in state.routes.values_mut() {
                    if *route == Route::Direct {
                        *route = Route::HolePunched;
                    }
                }
                state.hole_punch = Some("succeeded".to_owned());
                state.direct_failed = false;
                self.retire_relayed(peer);
            }
            Err(e) => {
                info!(party = %state.partner.party, %peer, error = %e, "hole punching failed; staying relayed");
                state.hole_punch = Some(format!("failed ({e}); staying relayed"));
            }
        }
    }

    /// AutoNAT's verdict changed.
    pub(crate) fn on_autonat(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { new, .. } = event else {
            return;
        };
        if self.reach.mode != NatMode::Auto {
            return;
        }
        let nat = match new {
            autonat::NatStatus::Public(addr) => Nat::Public(Some(addr)),
            autonat::NatStatus::Private => Nat::Private,
            autonat::NatStatus::Unknown => Nat::Unknown,
        };
        info!(?nat, "NAT status");
        self.reach.nat = nat;
        self.reserve_slots();
    }

    /// An address a partner observed us at.
    pub(crate) fn observed(&mut self, addr: Multiaddr) {
        // Over a relayed connection the partner sees no address of ours.
        if !matches!(
            addr.iter().next(),
            Some(Protocol::Ip4(_) | Protocol::Ip6(_))
        ) {
            return;
        }
        let seen = &mut self.reach.observed;
        seen.retain(|a| a != &addr);
        seen.push(addr);
        if seen.len() > 8 {
            seen.remove(0);
        }
    }

    /// Asks every connected partner relay for a slot, when this daemon is private and has none
    /// there yet (or lost it).
    pub(crate) fn reserve_slots(&mut self) {
        if !self.reach.wants_slots() {
            return;
        }
        self.connect_every_transport();
        let relays: Vec<(PeerId, PartyName, Multiaddr)> = self
            .partners
            .iter()
            .filter(|s| s.connected() && s.offers_relay)
            .filter_map(|s| Some((s.partner.peer_id, s.partner.party.clone(), s.base_addr()?)))
            .collect();
        for (peer, party, base) in relays {
            if matches!(
                self.reach.slots.get(&peer),
                Some((_, Slot::Requested | Slot::Reserved(_)))
            ) {
                continue;
            }
            let addr = base.with(Protocol::P2p(peer)).with(Protocol::P2pCircuit);
            match self.swarm.listen_on(addr.clone()) {
                Ok(listener) => {
                    info!(relay = %party, %addr, "asking a partner relay for a slot");
                    self.reach.slots.insert(peer, (listener, Slot::Requested));
                }
                Err(e) => {
                    warn!(relay = %party, %addr, error = %e, "cannot ask a partner relay for a slot");
                    let failed = Slot::Failed(e.to_string());
                    self.reach.slots.insert(peer, (ListenerId::next(), failed));
                }
            }
        }
    }

    /// Behind NAT, one connection to each partner relay over every transport configured for it
    /// (TCP and QUIC): the relay then observes this daemon's NAT mapping for each, and hole
    /// punching tries both (a NAT or firewall may let UDP through and not TCP, or the reverse).
    fn connect_every_transport(&mut self) {
        let mut dials: Vec<(PeerId, Multiaddr)> = Vec::new();
        for s in self
            .partners
            .iter()
            .filter(|s| s.connected() && s.offers_relay)
        {
            let open = |quic: bool| {
                s.remotes
                    .values()
                    .any(|a| relay_of(a).is_none() && is_quic(a) == quic)
            };
            for quic in [false, true] {
                if open(quic) {
                    continue;
                }
                if let Some(addr) = s.partner.addrs.iter().find(|a| is_quic(a) == quic) {
                    dials.push((s.partner.peer_id, addr.clone()));
                }
            }
        }
        for (peer, addr) in dials {
            debug!(%peer, %addr, "connecting to a partner relay over a second transport");
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(PeerCondition::Always)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, error = %e, "cannot dial the relay over that transport");
            }
        }
    }

    /// A listener closed: if it was a relay slot, it is lost (the relay went away or refused).
    pub(crate) fn listener_closed(&mut self, listener: ListenerId, why: String) {
        let slot = self
            .reach
            .slots
            .iter_mut()
            .find(|(_, (id, _))| *id == listener);
        if let Some((relay, (_, slot))) = slot {
            let party = self.partners.party_of(relay).cloned();
            warn!(relay = ?party, reason = %why, "relay slot lost");
            *slot = Slot::Failed(why);
        }
    }

    /// Events of the relay client: slots held, circuits opened.
    pub(crate) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                let party = self.partners.party_of(&relay_peer_id).cloned();
                let addr = self
                    .partners
                    .get(&relay_peer_id)
                    .and_then(|s| s.base_addr())
                    .map(|b| {
                        b.with(Protocol::P2p(relay_peer_id))
                            .with(Protocol::P2pCircuit)
                            .with(Protocol::P2p(*self.swarm.local_peer_id()))
                    });
                if let (Some((_, slot)), Some(addr)) =
                    (self.reach.slots.get_mut(&relay_peer_id), addr)
                {
                    if !renewal {
                        info!(relay = ?party, %addr, "relay slot reserved: partners reach us there");
                    }
                    *slot = Slot::Reserved(addr);
                }
                // Partners we could not reach may now be reached through it (and they us).
                for state in self.partners.iter_mut() {
                    if state.connections == 0 {
                        state.next_dial = Instant::now();
                        state.backoff = BACKOFF_START;
                    }
                }
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                debug!(relay = %relay_peer_id, "circuit opened through a relay");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                debug!(source = %src_peer_id, "circuit accepted through a relay");
            }
        }
    }

    /// Events of the relay service (when this daemon relays for partners).
    #[allow(deprecated)]
    pub(crate) fn on_relay_server(&mut self, event: relay::Event) {
        let Some(service) = self.reach.service.as_mut() else {
            return;
        };
        let name = |p: &PeerId| {
            self.partners
                .party_of(p)
                .map(|n| n.to_string())
                .unwrap_or_else(|| p.to_string())
        };
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. }
                if service.reservations.insert(src_peer_id) =>
            {
                info!(party = %name(&src_peer_id), "relaying for a partner: slot reserved");
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                service.denied_total += 1;
                warn!(party = %name(&src_peer_id), ?status, "relay slot refused");
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                service.reservations.remove(&src_peer_id);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                service.circuits += 1;
                service.circuits_total += 1;
                info!(from = %name(&src_peer_id), to = %name(&dst_peer_id), "relaying a circuit");
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                service.denied_total += 1;
                let (from, to) = (name(&src_peer_id), name(&dst_peer_id));
                if matches!(status, relay::StatusCode::NoReservation) {
                    // Usual while a partner behind NAT has not taken its slot yet.
                    debug!(%from, %to, "relay circuit refused: no slot held by its destination");
                } else {
                    warn!(%from, %to, ?status, "relay circuit refused");
                }
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                service.circuits = service.circuits.saturating_sub(1);
                debug!(from = %name(&src_peer_id), to = %name(&dst_peer_id), ?error, "relayed circuit closed");
            }
            _ => {}
        }
    }

    /// Circuit addresses of `target` through every connected partner relay (the swarm appends
    /// `/p2p/TARGET`).
    pub(crate) fn relay_addrs(&self, target: PeerId) -> Vec<Multiaddr> {
        self.partners
            .iter()
            .filter(|s| s.partner.peer_id != target && s.connected() && s.offers_relay)
            .filter_map(|s| {
                let base = s.base_addr()?;
                Some(
                    base.with(Protocol::P2p(s.partner.peer_id))
                        .with(Protocol::P2pCircuit),
                )
            })
            .collect()
    }

    /// Addresses to dial `peer` at: its own, and through partner relays once a direct attempt
    /// failed (or when it has no address of its own).
    pub(crate) fn addrs_to_dial(&self, peer: PeerId) -> Vec<Multiaddr> {
        let Some(state) = self.partners.get(&peer) else {
            return Vec::new();
        };
        let mut addrs: Vec<Multiaddr> = state
            .dial_addrs()
            .into_iter()
            .filter(|a| relay_of(a).is_none())
            .collect();
        if state.direct_failed || addrs.is_empty() {
            addrs.extend(self.relay_addrs(peer));
        }
        addrs
    }

    /// The reachability snapshot.
    pub(crate) fn reachability(&self) -> Reachability {
        let party = |p: &PeerId| self.partners.party_of(p).cloned();
        let mut slots: Vec<(PartyName, Slot)> = self
            .reach
            .slots
            .iter()
            .filter_map(|(p, (_, s))| Some((party(p)?, s.clone())))
            .collect();
        slots.sort_by(|a, b| a.0.cmp(&b.0));
        let mut relaying_for: Vec<PartyName> = self
            .reach
            .service
            .iter()
            .flat_map(|s| s.reservations.iter().filter_map(party))
            .collect();
        relaying_for.sort();
        Reachability {
            nat: self.reach.nat.clone(),
            nat_source: if self.reach.mode == NatMode::Auto {
                "autonat"
            } else {
                "config"
            },
            observed: self.reach.observed.clone(),
            slots,
            relaying_for,
            relay: self.reach.service.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_of_a_circuit_address_is_the_peer_before_p2p_circuit() {
        let (r, b) = (PeerId::random(), PeerId::random());
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/4750/p2p/{r}/p2p-circuit/p2p/{b}")
            .parse()
            .expect("addr");
        assert_eq!(relay_of(&addr), Some(r));
        let direct: Multiaddr = format!("/ip4/10.0.0.1/tcp/4750/p2p/{b}")
            .parse()
            .expect("addr");
        assert_eq!(relay_of(&direct), None);
    }

    #[test]
    fn the_best_route_prefers_hole_punched_then_direct() {
        let r = PeerId::random();
        let mut routes = HashMap::new();
        routes.insert(ConnectionId::new_unchecked(1), Route::Relayed { via: r });
        assert_eq!(best(&routes), Some(Route::Relayed { via: r }));
        routes.insert(ConnectionId::new_unchecked(2), Route::Direct);
        assert_eq!(best(&routes), Some(Route::Direct));
        routes.insert(ConnectionId::new_unchecked(3), Route::HolePunched);
        assert_eq!(best(&routes), Some(Route::HolePunched));
        assert_eq!(best(&HashMap::new()), None);
    }
}
