//! The partner table: who may connect, under which party name, and how each one is doing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use consort_protocol::PartyName;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::reach::Route;

/// A partner as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// Its party name.
    pub party: PartyName,
    /// The PeerId bound to that name.
    pub peer_id: PeerId,
    /// Addresses to dial.
    pub addrs: Vec<Multiaddr>,
    /// Where it was configured (`config` or `cli`).
    pub source: &'static str,
}

/// Why the last attempt to reach a partner failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// Something else answers at the address.
    WrongPeerId {
        /// The address dialled.
        addr: String,
        /// Who answered.
        obtained: PeerId,
    },
    /// Nothing listens at the address (connection refused).
    NothingListening(String),
    /// It accepted the connection and closed it before identifying: it does not list us.
    RefusedByThem,
    /// A DNS name did not resolve.
    NameResolution(String),
    /// No address is configured or discovered.
    NoAddress,
    /// Not reachable directly, and it holds no slot at the partner relays tried (their circuit
    /// addresses).
    NoRelaySlot(Vec<String>),
    /// Anything else.
    Other(String),
}

/// What went between this party and one partner since it was added (or since this daemon
/// started): plain counts, kept by the event loop, the only writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Records received from it (by gossip, push or catch-up, its own or relayed) and stored
    /// here: new, or newer than the version held.
    pub records_stored: u64,
    /// Records received from it and refused (bounds, audience, unknown origin, bad signature,
    /// quota). Each one also counts in [`PartnerState::rejected`].
    pub records_refused: u64,
    /// Records sent to it: pushed (ours, or relayed as a job's hub), gossiped while it was
    /// subscribed, or in answer to its catch-up.
    pub records_sent: u64,
    /// Bytes of data-channel messages sent to it (encoded, headers included) that it answered.
    pub channel_bytes_sent: u64,
    /// Bytes of data-channel messages received from it (encoded, headers included).
    pub channel_bytes_received: u64,
}

/// Live state of one partner.
#[derive(Debug)]
pub struct PartnerState {
    /// Configuration.
    pub partner: Partner,
    /// Addresses learned from identify, Kademlia or mDNS.
    pub discovered: Vec<Multiaddr>,
    /// Open connections.
    pub connections: u32,
    /// It identified itself on an open connection (so it accepted us).
    pub identified: bool,
    /// When the latest connection was established.
    pub connected_at: Option<Instant>,
    /// Latest ping round trip.
    pub rtt: Option<Duration>,
    /// Last time anything came from it (Unix ms).
    pub last_seen: Option<u64>,
    /// Dropped messages from it.
    pub rejected: u64,
    /// Records and data-channel bytes exchanged with it.
    pub traffic: Traffic,
    /// Next redial, and the backoff that led to it.
    pub next_dial: Instant,
    /// Current backoff.
    pub backoff: Duration,
    /// Identify's agent and protocol versions.
    pub agent: Option<String>,
    /// Identify's protocol version.
    pub protocol: Option<String>,
    /// Why the latest attempt failed.
    pub diagnosis: Option<Diagnosis>,
    /// How each open connection goes.
    pub routes: HashMap<ConnectionId, Route>,
    /// The other end's address of each open connection.
    pub remotes: HashMap<ConnectionId, Multiaddr>,
    /// Where it was last dialled directly with success.
    pub reached_at: Option<Multiaddr>,
    /// A dial failed since the last direct connection: dial it through relays too.
    pub direct_failed: bool,
    /// It relays for partners (it offers the circuit relay protocol).
    pub offers_relay: bool,
    /// How the latest hole punch with it went.
    pub hole_punch: Option<String>,
    /// When the latest hole punch with it succeeded.
    pub punched_at: Option<Instant>,
}

impl PartnerState {
    /// Every address to try: configured first, then discovered.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        let mut out = self.partner.addrs.clone();
        for a in &self.discovered {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Where to reach it directly, for circuits through it: where it was reached, else its
    /// first configured or discovered address that is not itself a circuit.
    pub fn base_addr(&self) -> Option<Multiaddr> {
        self.reached_at.clone().or_else(|| {
            self.dial_addrs().into_iter().find(|a| {
                !a.iter()
                    .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
            })
        })
    }

    /// Whether it is connected and identified.
    pub fn connected(&self) -> bool {
        self.connections > 0 && self.identified
    }
}

/// Partners by PeerId, with a party-name index.
#[derive(Debug, Default)]
pub struct Partners {
    by_peer: HashMap<PeerId, PartnerState>,
    by_party: HashMap<PartyName, PeerId>,
}

/// Initial redial delay.
pub const BACKOFF_START: Duration = Duration::from_millis(250);

impl Partners {
    /// Adds or replaces a partner; returns the PeerId it replaced, if the party moved.
    pub fn upsert(&mut self, partner: Partner) -> Option<PeerId> {
        let replaced = self
            .by_party
            .insert(partner.party.clone(), partner.peer_id)
            .filter(|old| *old != partner.peer_id);
        if let Some(old) = replaced {
            self.by_peer.remove(&old);
        }
        match self.by_peer.get_mut(&partner.peer_id) {
            Some(state) => {
                if state.partner.party != partner.party {
                    self.by_party.remove(&state.partner.party);
                }
                state.partner = partner;
                state.next_dial = Instant::now();
            }
            None => {
                self.by_peer.insert(
                    partner.peer_id,
                    PartnerState {
                        partner,
                        discovered: Vec::new(),
                        connections: 0,
                        identified: false,
                        connected_at: None,
                        rtt: None,
                        last_seen: None,
                        rejected: 0,
                        traffic: Traffic::default(),
                        next_dial: Instant::now(),
                        backoff: BACKOFF_START,
                        agent: None,
                        protocol: None,
                        diagnosis: None,
                        routes: HashMap::new(),
                        remotes: HashMap::new(),
                        reached_at: None,
                        direct_failed: false,
                        offers_relay: false,
                        hole_punch: None,
                        punched_at: None,
                    },
                );
            }
        }
        replaced
    }

    /// Removes a partner by party name; returns its PeerId.
    pub fn remove(&mut self, party: &str) -> Option<PeerId> {
        let party = PartyName::new(party).ok()?;
        let peer = self.by_party.remove(&party)?;
        self.by_peer.remove(&peer);
        Some(peer)
    }

    /// The state of the partner with this PeerId.
    pub fn get(&self, peer: &PeerId) -> Option<&PartnerState> {
        self.by_peer.get(peer)
    }

    /// Mutable state of the partner with this PeerId.
    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut PartnerState> {
        self.by_peer.get_mut(peer)
    }

    /// PeerId bound to `party`.
    pub fn peer_of(&self, party: &str) -> Option<PeerId> {
        PartyName::new(party)
            .ok()
            .and_then(|p| self.by_party.get(&p).copied())
    }

    /// Party bound to `peer`.
    pub fn party_of(&self, peer: &PeerId) -> Option<&PartyName> {
        self.by_peer.get(peer).map(|s| &s.partner.party)
    }

    /// Every partner, sorted by party name.
    pub fn iter_sorted(&self) -> Vec<&PartnerState> {
        let mut v: Vec<_> = self.by_peer.values().collect();
        v.sort_by(|a, b| a.partner.party.cmp(&b.partner.party));
        v
    }

    /// Every partner.
    pub fn iter(&self) -> impl Iterator<Item = &PartnerState> {
        self.by_peer.values()
    }

    /// Whether some partner has no connection (so there is a dial to make or wait for).
    pub fn any_disconnected(&self) -> bool {
        self.by_peer.values().any(|s| s.connections == 0)
    }

    /// Every partner, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PartnerState> {
        self.by_peer.values_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(party: &str, peer: PeerId) -> Partner {
        Partner {
            party: PartyName::new(party).expect("name"),
            peer_id: peer,
            addrs: vec![],
            source: "config",
        }
    }

    #[test]
    fn binding_follows_upserts_and_removals() {
        let (p1, p2) = (PeerId::random(), PeerId::random());
        let mut t = Partners::default();
        t.upsert(partner("b", p1));
        assert_eq!(t.party_of(&p1).map(|p| p.as_str()), Some("b"));
        // The party moves to a new key: the old PeerId is no longer bound to anything.
        assert_eq!(t.upsert(partner("b", p2)), Some(p1));
        assert!(t.party_of(&p1).is_none());
        assert_eq!(t.peer_of("b"), Some(p2));
        assert_eq!(t.remove("b"), Some(p2));
        assert!(t.get(&p2).is_none());
        assert!(t.peer_of("b").is_none());
    }
}
