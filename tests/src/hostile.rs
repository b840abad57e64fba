//! A hostile partner for end-to-end tests: a real libp2p node (our own network layer, on
//! loopback) with a real identity, listed as a partner by the daemons under test, that signs
//! and sends whatever a test tells it to — records any daemon would refuse to write, channel
//! messages for jobs it is not in, requests for other parties' logs.

use std::time::Duration;

use consort_actors::network::{self, Network, NetworkClient, NetworkConfig, Partner};
use consort_protocol::PartyName;
use consort_protocol::jobs::{JobId, JobRecord, RECORD_VERSION};
use consort_protocol::peer::{PackedRecords, PeerRequestBody, PeerResponse, Record};
use consort_storage::{RecordStore, Store};
use libp2p_identity::Keypair;

use crate::{Party, free_port};

/// The misbehaving partner.
pub struct Hostile {
    pub name: String,
    pub peer_id: String,
    pub addr: String,
    key: Keypair,
    rt: tokio::runtime::Runtime,
    client: NetworkClient,
    /// What this node holds (records honest daemons sent it).
    pub records: RecordStore,
    _dir: tempfile::TempDir,
}

impl Hostile {
    /// Starts the node as party `name`, with `partners` (each with its listen address) as its
    /// partners. The partners must list it too ([`Hostile::partner_toml`]).
    pub fn start(name: &str, partners: &[(&Party, String)]) -> Self {
        // Nobody asks the hostile node anything it answers: refuse.
        let refuse: Answerer = Box::new(|_, _, _| {
            Some(PeerResponse::Error {
                message: "no".into(),
            })
        });
        Self::start_answering(name, partners, refuse)
    }

    /// The `[[partners]]` entry a daemon needs to list this node.
    pub fn partner_toml(&self) -> String {
        format!(
            "\n[[partners]]\nparty = \"{}\"\npeer_id = \"{}\"\naddrs = [\"{}\"]\n",
            self.name, self.peer_id, self.addr
        )
    }

    /// A record of ours, signed, with any key, value and audience.
    pub fn signed(&self, key: &str, value: Vec<u8>, audience: &[&str]) -> Record {
        let mut r = Record {
            origin: PartyName::new(&self.name).unwrap(),
            key: key.to_owned(),
            version: now_ms(),
            written_at_ms: now_ms(),
            value,
            audience: audience
                .iter()
                .map(|p| PartyName::new(p).unwrap())
                .collect(),
            signature: Vec::new(),
        };
        r.signature = self.key.sign(&r.signing_bytes()).unwrap();
        r
    }

    /// A signed `job/<id>` record proposing `spec`, addressed to `audience`.
    pub fn job_record(&self, id: &JobId, spec: &str, audience: &[&str]) -> Record {
        let rec = JobRecord {
            v: RECORD_VERSION,
            job_id: id.clone(),
            initiator: PartyName::new(&self.name).unwrap(),
            spec: spec.to_owned(),
            submitted_at_ms: now_ms(),
        };
        let value = rmp_serde::to_vec_named(&rec).unwrap();
        self.signed(&format!("job/{id}"), value, audience)
    }

    /// Pushes `records` straight to `party`, as a partner's catch-up push.
    pub fn push(&self, party: &str, records: Vec<Record>) -> Result<PeerResponse, String> {
        self.request(
            party,
            PeerRequestBody::Push {
                records: PackedRecords::of(&records),
            },
        )
    }

    /// Any request to `party`; the answer, or why none came.
    pub fn request(&self, party: &str, body: PeerRequestBody) -> Result<PeerResponse, String> {
        self.rt
            .block_on(self.client.request(party, body, Duration::from_secs(20)))
            .map_err(|e| e.to_string())
    }

    /// An `App` request (data channel, logs, models) to `party`.
    pub fn app(&self, party: &str, topic: &str, body: Vec<u8>) -> Result<PeerResponse, String> {
        self.request(
            party,
            PeerRequestBody::App {
                topic: topic.to_owned(),
                body,
            },
        )
    }

    /// A record claiming to come from `origin` (another party), signed with this node's key:
    /// a forgery no honest party can tell from a relayed record except by its signature.
    pub fn forged(&self, origin: &str, key: &str, value: Vec<u8>) -> Record {
        let mut r = self.signed(key, value, &[]);
        r.origin = PartyName::new(origin).unwrap();
        r.signature = self.key.sign(&r.signing_bytes()).unwrap();
        r
    }

    /// Every record this node holds whose key contains `needle`.
    pub fn holds(&self, needle: &str) -> Vec<Record> {
        self.records
            .all()
            .unwrap()
            .into_iter()
            .filter(|r| r.key.contains(needle))
            .collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let client = self.client.clone();
        self.rt.block_on(async move { client.shutdown().await });
    }
}

pub use consort_protocol::clock::now_ms;

/// Peak resident memory of process `pid` (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// How a [`Hostile::start_answering`] node answers a partner's `App` request (asking party,
/// topic, body): `Some` is sent back, `None` is never answered — the asker waits until its own
/// deadline, as with a partner that went silent.
pub type Answerer = Box<dyn FnMut(&PartyName, &str, &[u8]) -> Option<PeerResponse> + Send>;

impl Hostile {
    /// Like [`Hostile::start`], but the partners' `App` requests are answered by `answer`
    /// (e.g. a participant of a model that agrees to a move, then never confirms it).
    pub fn start_answering(name: &str, partners: &[(&Party, String)], answer: Answerer) -> Self {
        let key = Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id().to_string();
        let addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Default::default()).unwrap();
        let records = RecordStore::open(&store).unwrap();
        let partners = partners
            .iter()
            .map(|(p, a)| Partner {
                party: PartyName::new(&p.name).unwrap(),
                peer_id: p.peer_id.parse().unwrap(),
                addrs: vec![a.parse().unwrap()],
                source: "config",
            })
            .collect();
        let config = NetworkConfig {
            party: PartyName::new(name).unwrap(),
            key: key.clone(),
            listen: vec![addr.parse().unwrap()],
            federation: "default".into(),
            mdns: false,
            kademlia: false,
            max_message_bytes: 64 << 20,
            request_timeout: Duration::from_secs(10),
            redial_max: Duration::from_secs(1),
            antientropy: Duration::from_secs(3600),
            records_per_partner: network::MAX_RECORDS_PER_ORIGIN,
            record_bytes_per_partner: network::MAX_BYTES_PER_ORIGIN,
            relay: None,
            nat: network::NatMode::Public,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let Network {
            client, mut events, ..
        } = rt
            .block_on(async { network::start(config, partners, records.clone()) })
            .unwrap();
        let responder = client.clone();
        let mut answer = answer;
        rt.spawn(async move {
            while let Some(event) = events.recv().await {
                if let network::NetworkEvent::AppRequest {
                    id,
                    party,
                    topic,
                    body,
                } = event
                    && let Some(response) = answer(&party, &topic, &body)
                {
                    let _ = responder.respond(id, response).await;
                }
            }
        });
        Self {
            name: name.to_owned(),
            peer_id,
            addr,
            key,
            rt,
            client,
            records,
            _dir: dir,
        }
    }
}
