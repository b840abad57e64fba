//! The partner network: a libp2p Swarm on its own thread and tokio runtime, behind a
//! cloneable [`NetworkClient`].
//!
//! The EventLoop + Client pattern of rust-libp2p's file-sharing example: the event loop owns the
//! Swarm; the client sends it commands over a bounded channel, each with a oneshot for its
//! reply; events come out over another bounded channel. Actors never poll the swarm, and a busy
//! actor never stalls the network (events are dropped and counted rather than blocking it).

mod admit;
mod behaviour;
mod catch_up;
mod codec;
mod event_loop;
mod partners;
mod push_stream;
mod reach;
mod relay;
mod sums;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use consort_protocol::PartyName;
use consort_protocol::audience::Audience;
use consort_protocol::peer::{PeerRequestBody, PeerResponse, Record, records_topic};
use consort_storage::RecordStore;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, gossipsub, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

pub use behaviour::RelayLimits;
pub use catch_up::{MAX_BYTES_PER_ORIGIN, MAX_RECORDS_PER_ORIGIN};
pub use partners::{Diagnosis, Partner, Traffic};
pub use reach::{Nat, NatMode, Reachability, RelayService, Route, Slot, route_text};

use behaviour::{Behaviour, BehaviourOptions};
use event_loop::EventLoop;
use partners::{PartnerState, Partners};

/// Errors of the network layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm could not be built or could not listen.
    #[error("network start-up failed: {0}")]
    Startup(String),
    /// The named party is not a partner.
    #[error("'{0}' is not a partner")]
    UnknownPartner(String),
    /// A request failed (dial failure, timeout, closed connection, ...).
    #[error("request failed: {0}")]
    Request(String),
    /// No answer before the deadline.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// Invalid argument.
    #[error("{0}")]
    Invalid(String),
    /// The record store failed.
    #[error("record store: {0}")]
    Storage(String),
    /// The event loop is gone.
    #[error("the network is stopped")]
    Stopped,
}

/// Network settings, validated by the daemon.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// This party.
    pub party: PartyName,
    /// Identity key.
    pub key: Keypair,
    /// Listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Federation name (gossip topic).
    pub federation: String,
    /// Enable mDNS.
    pub mdns: bool,
    /// Enable Kademlia.
    pub kademlia: bool,
    /// Largest request-response message.
    pub max_message_bytes: usize,
    /// Request-response deadline per attempt.
    pub request_timeout: Duration,
    /// Longest redial backoff.
    pub redial_max: Duration,
    /// Period of anti-entropy with every connected partner.
    pub antientropy: Duration,
    /// Most records one partner (as origin) may have us hold.
    pub records_per_partner: u64,
    /// Most bytes of record values one partner (as origin) may have us hold.
    pub record_bytes_per_partner: u64,
    /// Relay for partners behind NAT, within these limits.
    pub relay: Option<RelayLimits>,
    /// How this daemon learns whether partners can dial it.
    pub nat: NatMode,
}

/// Things the network tells the actors.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// A partner connected and identified itself.
    PartnerConnected(PartyName),
    /// The last connection to a partner closed.
    PartnerDisconnected(PartyName),
    /// Replicated records were stored (new or newer), from gossip, a push or catch-up: the
    /// records of one message, in one event.
    RecordsUpdated(Vec<Record>),
    /// A partner's request for a subsystem; answer with [`NetworkClient::respond`].
    AppRequest {
        /// Reply handle.
        id: u64,
        /// Sender (already checked against its PeerId).
        party: PartyName,
        /// Subsystem.
        topic: String,
        /// Body.
        body: Vec<u8>,
    },
}

/// A snapshot of one partner's state.
#[derive(Debug, Clone)]
pub struct PartnerView {
    /// Party.
    pub party: PartyName,
    /// PeerId.
    pub peer_id: PeerId,
    /// Connected and identified.
    pub connected: bool,
    /// Known addresses.
    pub addrs: Vec<Multiaddr>,
    /// Latest ping round trip.
    pub rtt: Option<Duration>,
    /// Last heard from (Unix ms).
    pub last_seen: Option<u64>,
    /// Dropped messages (refused records included).
    pub rejected: u64,
    /// Records and data-channel bytes exchanged with it.
    pub traffic: Traffic,
    /// `config` or `cli`.
    pub source: &'static str,
    /// Identify agent version.
    pub agent: Option<String>,
    /// Identify protocol version.
    pub protocol: Option<String>,
    /// Latest failure to reach it.
    pub diagnosis: Option<Diagnosis>,
    /// How it is reached now (the best of its connections).
    pub route: Option<Route>,
    /// The other end's address of that connection.
    pub remote: Option<Multiaddr>,
    /// How the latest hole punch with it went.
    pub hole_punch: Option<String>,
}

impl From<&PartnerState> for PartnerView {
    fn from(s: &PartnerState) -> Self {
        Self {
            party: s.partner.party.clone(),
            peer_id: s.partner.peer_id,
            connected: s.connected(),
            addrs: s.dial_addrs(),
            rtt: s.rtt,
            last_seen: s.last_seen,
            rejected: s.rejected,
            traffic: s.traffic,
            source: s.partner.source,
            agent: s.agent.clone(),
            protocol: s.protocol.clone(),
            diagnosis: s.diagnosis.clone(),
            route: reach::best(&s.routes),
            remote: reach::best_connection(&s.routes)
                .and_then(|(id, _)| s.remotes.get(&id).cloned()),
            hole_punch: s.hole_punch.clone(),
        }
    }
}

type Reply<T> = oneshot::Sender<T>;

/// Commands to the event loop.
pub(crate) enum Command {
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    Peers {
        reply: Reply<Vec<PartnerView>>,
    },
    Reachability {
        reply: Reply<Reachability>,
    },
    Away {
        reply: Reply<BTreeMap<PartyName, Option<u64>>>,
    },
    AddPartner {
        partner: Partner,
        reply: Reply<Result<(), NetError>>,
    },
    RemovePartner {
        party: String,
        reply: Reply<Result<(), NetError>>,
    },
    PutRecord {
        key: String,
        value: Vec<u8>,
        audience: Audience,
        hub: Option<PartyName>,
        lazy: bool,
        reply: Reply<Result<Record, NetError>>,
    },
    Request {
        party: String,
        body: PeerRequestBody,
        reply: Reply<Result<PeerResponse, NetError>>,
    },
    Respond {
        id: u64,
        response: PeerResponse,
    },
    Dial {
        party: String,
        reply: Reply<Result<(), NetError>>,
    },
    Shutdown,
}

/// Handle on the network; cheap to clone.
#[derive(Clone)]
pub struct NetworkClient {
    tx: mpsc::Sender<Command>,
}

impl NetworkClient {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Addresses the swarm listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Every partner's state.
    pub async fn peers(&self) -> Result<Vec<PartnerView>, NetError> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// This daemon's NAT status, relay slots and relay service.
    pub async fn reachability(&self) -> Result<Reachability, NetError> {
        self.call(|reply| Command::Reachability { reply }).await
    }

    /// The partners not connected now, each with when it was last heard from (Unix ms): what
    /// a job's view needs, without a whole [`PartnerView`] per partner.
    pub async fn away(&self) -> Result<BTreeMap<PartyName, Option<u64>>, NetError> {
        self.call(|reply| Command::Away { reply }).await
    }

    /// Adds (or replaces) a partner: allowed at once, dialled at once.
    pub async fn add_partner(&self, partner: Partner) -> Result<(), NetError> {
        self.call(|reply| Command::AddPartner { partner, reply })
            .await?
    }

    /// Removes a partner and closes its connections.
    pub async fn remove_partner(&self, party: &str) -> Result<(), NetError> {
        let party = party.to_owned();
        self.call(|reply| Command::RemovePartner { party, reply })
            .await?
    }

    /// Writes one of this party's records (signed, stored, sent). With an empty `audience`
    /// it goes to every partner by gossip; otherwise only to the parties named (a job's
    /// participants), which alone may hold it.
    pub async fn put_record(
        &self,
        key: String,
        value: Vec<u8>,
        audience: Audience,
    ) -> Result<Record, NetError> {
        self.call(|reply| Command::PutRecord {
            key,
            value,
            audience,
            hub: None,
            lazy: false,
            reply,
        })
        .await?
    }

    /// Writes one of this party's records of a job whose initiator is `hub`: sent to the hub
    /// alone while it is connected, which relays it to the rest of `audience` (one message
    /// per party per step instead of one per pair of parties); to every party otherwise.
    /// A `lazy` record is stored at once but sent only after a moment, and not at all if a
    /// newer version of it is written meanwhile (a run's start, when the run is short).
    pub async fn put_job_record(
        &self,
        key: String,
        value: Vec<u8>,
        audience: Audience,
        hub: PartyName,
        lazy: bool,
    ) -> Result<Record, NetError> {
        self.call(|reply| Command::PutRecord {
            key,
            value,
            audience,
            hub: Some(hub),
            lazy,
            reply,
        })
        .await?
    }

    /// Sends `body` to `party` and waits for the answer, retrying failed attempts until
    /// `deadline` has passed.
    pub async fn request(
        &self,
        party: &str,
        body: PeerRequestBody,
        deadline: Duration,
    ) -> Result<PeerResponse, NetError> {
        let until = Instant::now() + deadline;
        let mut pause = Duration::from_millis(100);
        loop {
            let attempt = self.call(|reply| Command::Request {
                party: party.to_owned(),
                body: body.clone(),
                reply,
            });
            let left = until.saturating_duration_since(Instant::now());
            let err = match tokio::time::timeout(left, attempt).await {
                Ok(Ok(Ok(resp))) => return Ok(resp),
                Ok(Ok(Err(NetError::UnknownPartner(p)))) => {
                    return Err(NetError::UnknownPartner(p));
                }
                Ok(Ok(Err(e))) | Ok(Err(e)) => e,
                Err(_) => NetError::Deadline(deadline),
            };
            if Instant::now() + pause >= until {
                return Err(err);
            }
            tracing::debug!(%party, error = %err, "request failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Answers an [`NetworkEvent::AppRequest`].
    pub async fn respond(&self, id: u64, response: PeerResponse) -> Result<(), NetError> {
        self.tx
            .send(Command::Respond { id, response })
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Dials a partner now, skipping its backoff.
    pub async fn dial(&self, party: &str) -> Result<(), NetError> {
        let party = party.to_owned();
        self.call(|reply| Command::Dial { party, reply }).await?
    }

    /// Stops the event loop.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

#[cfg(test)]
impl NetworkClient {
    /// A client whose commands come out of the returned channel, for tests to answer.
    pub(crate) fn detached() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (Self { tx }, rx)
    }
}

/// A started network: the client, the events, and the thread running the event loop.
pub struct Network {
    /// Handle for commands.
    pub client: NetworkClient,
    /// Events for the actors.
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The network thread (joined at shutdown).
    pub thread: std::thread::JoinHandle<()>,
}

/// Builds the swarm, starts listening and runs the event loop on a dedicated thread.
///
/// Returns once every listen address is bound (or failed, which is an error).
pub fn start(
    config: NetworkConfig,
    partners: Vec<Partner>,
    records: RecordStore,
) -> Result<Network, NetError> {
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("consort-net".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(NetError::Startup(format!("runtime: {e}"))));
                    return;
                }
            };
            rt.block_on(async move {
                match build(config, partners, records, cmd_rx, ev_tx).await {
                    Ok(event_loop) => {
                        let _ = ready_tx.send(Ok(()));
                        event_loop.run().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| NetError::Startup(format!("thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Network {
            client: NetworkClient { tx: cmd_tx },
            events: ev_rx,
            thread,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(NetError::Startup("the network thread died".into())),
    }
}

async fn build(
    config: NetworkConfig,
    partners: Vec<Partner>,
    records: RecordStore,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
) -> Result<EventLoop, NetError> {
    let startup = |e: String| NetError::Startup(e);
    // What each origin already has us hold, for the quotas (one scan at start-up).
    let usage = records
        .usage_by_origin()
        .map_err(|e| startup(format!("cannot read the records: {e}")))?
        .into_iter()
        .filter_map(|(origin, used)| PartyName::new(&origin).ok().map(|p| (p, used)))
        .collect();
    // The per-job sums for anti-entropy (one more scan at start-up).
    let mut sums = sums::Sums::default();
    for r in records
        .all()
        .map_err(|e| startup(format!("cannot read the records: {e}")))?
    {
        sums.account(None, &r);
    }
    let (done_tx, done_rx) = mpsc::channel(64);
    let opts = BehaviourOptions {
        max_message_bytes: config.max_message_bytes,
        request_timeout: config.request_timeout,
        kademlia: config.kademlia,
        mdns: config.mdns,
        relay: config.relay,
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| startup(format!("tcp transport: {e}")))?
        .with_quic()
        .with_dns()
        .map_err(|e| startup(format!("dns: {e}")))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| startup(format!("relay client: {e}")))?
        .with_behaviour(|key, relay_client| Behaviour::new(key, relay_client, &opts))
        .map_err(|e| startup(format!("behaviour: {e}")))?
        // Partners are few and precious: keep their connections open while idle.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();

    let topic = gossipsub::IdentTopic::new(records_topic(&config.federation));
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| startup(format!("gossip subscribe: {e}")))?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| startup(format!("cannot listen on {addr}: {e}")))?;
    }
    // Wait until each listener reports its address (port 0 resolved) or fails.
    let mut listen_addrs = Vec::new();
    let mut pending = config.listen.len();
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    use futures::StreamExt;
    let mut early = Vec::new();
    while pending > 0 {
        tokio::select! {
            _ = &mut deadline => return Err(startup("listeners did not start within 5 s".into())),
            event = swarm.select_next_some() => match event {
                libp2p::swarm::SwarmEvent::NewListenAddr { address, listener_id } => {
                    if !early.contains(&listener_id) {
                        early.push(listener_id);
                        pending -= 1;
                    }
                    listen_addrs.push(address);
                }
                libp2p::swarm::SwarmEvent::ListenerError { error, .. } |
                libp2p::swarm::SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                    return Err(startup(format!("listener failed: {error}")));
                }
                _ => {}
            }
        }
    }

    let control = swarm.behaviour().stream.new_control();
    let (pushes, push_events) =
        push_stream::Pushes::start(control, config.max_message_bytes, config.request_timeout)
            .map_err(startup)?;
    let mut event_loop = EventLoop {
        swarm,
        pushes,
        push_events,
        key: config.key,
        party: config.party,
        partners: Partners::default(),
        records,
        topic,
        commands,
        events,
        redial_max: config.redial_max,
        antientropy: config.antientropy,
        pending: HashMap::new(),
        inbound_app: HashMap::new(),
        next_app_id: 0,
        refused_logged: HashSet::new(),
        refused_total: 0,
        listen_addrs,
        dropped_events: 0,
        overflow: Default::default(),
        done_tx,
        done_rx,
        catching_up: HashSet::new(),
        settling: HashSet::new(),
        settle_cursor: 0,
        usage,
        quota: (config.records_per_partner, config.record_bytes_per_partner),
        outbox: HashMap::new(),
        pushing: HashSet::new(),
        deferred: Default::default(),
        keys: HashMap::new(),
        released: Default::default(),
        gathering: Default::default(),
        own_jobs: Default::default(),
        sums,
        reach: reach::Reach::new(config.nat, config.relay),
    };
    for partner in partners {
        event_loop.add_partner(partner)?;
    }
    Ok(event_loop)
}

/// Parses a base58 PeerId with a clear error.
pub fn parse_peer_id(s: &str) -> Result<PeerId, NetError> {
    s.parse::<PeerId>()
        .map_err(|e| NetError::Invalid(format!("'{s}' is not a PeerId: {e}")))
}

/// Parses a multiaddr with a clear error.
pub fn parse_multiaddr(s: &str) -> Result<Multiaddr, NetError> {
    s.parse::<Multiaddr>()
        .map_err(|e| NetError::Invalid(format!("'{s}' is not a multiaddr: {e}")))
}
