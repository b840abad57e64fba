//! The composed libp2p behaviour and how it is built.

use std::time::Duration;

use consort_protocol::peer::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, RR_PROTOCOL};
use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, dcutr, gossipsub, identify, kad, mdns, ping, relay, request_response,
};

use super::codec::MsgpackCodec;

/// Everything a Consort daemon speaks to its partners.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Only partners may hold a connection.
    pub allow: allow_block_list::Behaviour<AllowedPeers>,
    /// Bounds on connections.
    pub limits: connection_limits::Behaviour,
    /// Versions and listen addresses of the other side.
    pub identify: identify::Behaviour,
    /// Round-trip times.
    pub ping: ping::Behaviour,
    /// Replicated records.
    pub gossipsub: gossipsub::Behaviour,
    /// Requests between partners.
    pub rr: request_response::Behaviour<MsgpackCodec>,
    pub stream: libp2p_stream::Behaviour,
    /// Partner addresses learned from any connected partner.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// LAN discovery.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Slots at partner relays, and connections through them.
    pub relay_client: relay::client::Behaviour,
    /// Relaying for partners behind NAT (`[network] relay = true`).
    pub relay: Toggle<relay::Behaviour>,
    /// Hole punching: a relayed connection tries to become a direct one.
    pub dcutr: dcutr::Behaviour,
    /// Whether partners can dial this daemon back (its NAT status).
    pub autonat: autonat::Behaviour,
}

/// What a relay carries for its partners (`[network] relay = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Circuits open at once, over all partners.
    pub max_circuits: usize,
    /// Circuits open at once with one partner at either end.
    pub max_circuits_per_peer: usize,
    /// Bytes one circuit may carry (both directions) before the relay closes it.
    pub max_circuit_bytes: u64,
    /// How long one circuit may stay open.
    pub max_circuit_duration: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_circuits: 64,
            max_circuits_per_peer: 8,
            // A breast job moves ~1 MB between two parties; a credit-default SecureBoost job at
            // 2048 bits tens of MB. A circuit that reaches its limit closes and the daemons
            // redial at once (a new circuit), so the limit bounds a burst, not a job.
            max_circuit_bytes: 1 << 30,
            max_circuit_duration: Duration::from_secs(3600),
        }
    }
}

/// Error type the swarm builder accepts from a behaviour constructor.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Knobs for [`Behaviour::new`].
pub struct BehaviourOptions {
    /// Largest request-response message.
    pub max_message_bytes: usize,
    /// Request-response deadline per attempt.
    pub request_timeout: Duration,
    /// Enable Kademlia.
    pub kademlia: bool,
    /// Enable mDNS.
    pub mdns: bool,
    /// Relay for partners, within these limits.
    pub relay: Option<RelayLimits>,
}

impl Behaviour {
    /// Builds the behaviour for `key`.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        opts: &BehaviourOptions,
    ) -> Result<Self, BoxError> {
        let peer_id = key.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .heartbeat_interval(Duration::from_secs(1))
            .max_transmit_size(256 * 1024)
            .build()
            .map_err(|e| BoxError::from(format!("gossipsub config: {e}")))?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| BoxError::from(format!("gossipsub: {e}")))?;
        let rr = request_response::Behaviour::with_codec(
            MsgpackCodec::new(opts.max_message_bytes),
            [(
                StreamProtocol::new(RR_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(opts.request_timeout)
                .with_max_concurrent_streams(256),
        );
        let kad = opts.kademlia.then(|| {
            let mut cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
            cfg.set_query_timeout(Duration::from_secs(10));
            let mut kad =
                kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), cfg);
            kad.set_mode(Some(kad::Mode::Server));
            kad
        });
        let mdns = if opts.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| BoxError::from(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        let relay = opts.relay.map(|l| {
            let mut server = relay::Behaviour::new(
                peer_id,
                relay::Config {
                    max_reservations: 256,
                    max_reservations_per_peer: 4,
                    max_circuits: l.max_circuits,
                    max_circuits_per_peer: l.max_circuits_per_peer,
                    max_circuit_bytes: l.max_circuit_bytes,
                    max_circuit_duration: l.max_circuit_duration,
                    ..relay::Config::default()
                },
            );
            // Only partners connect at all (the allow list), so the relay is offered to them
            // whatever AutoNAT thinks of this daemon's own addresses.
            server.set_status(Some(relay::Status::Enable));
            server
        });
        let autonat = autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                // Partners are often on private address plans (a VPN, a data centre's 10/8):
                // a verdict between them is still the one that matters.
                only_global_ips: false,
                boot_delay: Duration::from_secs(2),
                retry_interval: Duration::from_secs(20),
                refresh_interval: Duration::from_secs(300),
                throttle_server_period: Duration::from_secs(5),
                ..autonat::Config::default()
            },
        );
        Ok(Self {
            allow: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_pending_incoming(Some(64))
                    .with_max_established_incoming(Some(256))
                    .with_max_established_per_peer(Some(4)),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(format!("consortd/{}", env!("CARGO_PKG_VERSION"))),
            ),
            // The first ping goes out when a connection opens; after that one every 30 s is enough
            // for `consort peers` (at 5 s, pings between 50 daemons were most of their idle CPU).
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(30))),
            gossipsub,
            rr,
            stream: libp2p_stream::Behaviour::new(),
            kad: kad.into(),
            mdns: mdns.into(),
            relay_client,
            relay: relay.into(),
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat,
        })
    }
}
