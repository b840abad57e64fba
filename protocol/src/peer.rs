//! The peer protocols between partner daemons: request-response messages, gossip envelopes and
//! replicated records.
//!
//! Every request names the party it speaks for; the receiver checks that this party is bound
//! to the sender's PeerId. Every replicated record is signed by its origin party's identity
//! key, so a record relayed by a third party during catch-up is as trustworthy as one received
//! from its origin.

use serde::{Deserialize, Serialize};

use crate::ids::PartyName;

/// Request-response protocol name (versioned).
pub const RR_PROTOCOL: &str = "/consort/rr/1";
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/consort/1";
/// Kademlia protocol name: a private DHT among partners, never the public one.
pub const KAD_PROTOCOL: &str = "/consort/kad/1";
/// Default cap of one request or response on the wire: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Gossip topic of a federation's replicated records.
pub fn records_topic(federation: &str) -> String {
    format!("consort/{federation}/records/1")
}

/// A request from one daemon to a partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRequest {
    /// The party the sender speaks for; must be bound to the sender's PeerId.
    pub from: PartyName,
    /// What is asked.
    pub body: PeerRequestBody,
}

/// Kinds of peer requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerRequestBody {
    /// Liveness and version check.
    Ping {
        /// The sender's build version.
        version: String,
    },
    /// Anti-entropy: "here is what I hold; send me what is newer or missing".
    Digest {
        /// Every record the sender holds, as `(origin, key, version)`.
        entries: Vec<DigestEntry>,
    },
    /// Records pushed directly when gossip could not carry them (each is verified).
    Push {
        /// The records.
        records: Vec<Record>,
    },
    /// Opaque bytes echoed back (throughput measurement and diagnostics).
    Echo {
        /// Payload.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A request for another subsystem (jobs, models, serving), routed by `topic`.
    App {
        /// Which subsystem handles it.
        topic: String,
        /// Its MessagePack body.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Any kind this build does not know.
    #[serde(other)]
    Unknown,
}

/// Answers to peer requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerResponse {
    /// Answer to `Ping`.
    Pong {
        /// The responder's party.
        party: PartyName,
        /// The responder's build version.
        version: String,
    },
    /// Answer to `Digest`: the records the requester lacks or holds older versions of.
    Records {
        /// The records.
        records: Vec<Record>,
    },
    /// Answer to `Echo`.
    Echo {
        /// The same payload.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Answer to `App`.
    App {
        /// Its MessagePack body.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// The request was refused or failed.
    Error {
        /// Why, for the requester's log.
        message: String,
    },
    /// Any kind this build does not know.
    #[serde(other)]
    Unknown,
}

/// One line of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// Party that wrote the record.
    pub origin: PartyName,
    /// Key within the origin's records.
    pub key: String,
    /// Version held.
    pub version: u64,
}

/// A replicated record: a versioned value under `(origin, key)`, signed by the origin.
///
/// Only the origin party writes its keys; everybody keeps the highest version per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Party that wrote it.
    pub origin: PartyName,
    /// Key within the origin's records (e.g. `task/<job>/<task>/<attempt>`).
    pub key: String,
    /// Monotonic per key; the highest wins.
    pub version: u64,
    /// Writer's wall clock, Unix milliseconds (informational).
    pub written_at_ms: u64,
    /// The value (MessagePack of a subsystem's type, or any bytes).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// ed25519 signature by the origin's identity key over [`Record::signing_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Record {
    /// The bytes the origin signs: every field but the signature, in a fixed encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Signed<'a> {
            domain: &'static str,
            origin: &'a str,
            key: &'a str,
            version: u64,
            written_at_ms: u64,
            #[serde(with = "serde_bytes")]
            value: &'a [u8],
        }
        // Serializing plain strings, integers and bytes cannot fail.
        rmp_serde::to_vec_named(&Signed {
            domain: "consort-record-v1",
            origin: self.origin.as_str(),
            key: &self.key,
            version: self.version,
            written_at_ms: self.written_at_ms,
            value: &self.value,
        })
        .unwrap_or_default()
    }
}

/// What is published on a federation's gossip topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GossipEnvelope {
    /// Envelope schema version.
    pub v: u16,
    /// The record.
    pub record: Record,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_peer_request_kind_is_tolerated() {
        #[derive(Serialize)]
        struct Future {
            from: &'static str,
            body: Kind,
        }
        #[derive(Serialize)]
        struct Kind {
            kind: &'static str,
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            from: "a",
            body: Kind { kind: "x" },
        })
        .expect("encode");
        let req: PeerRequest = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(req.body, PeerRequestBody::Unknown);
    }

    #[test]
    fn signing_bytes_cover_every_field() {
        let r = Record {
            origin: PartyName::new("a").expect("name"),
            key: "k".into(),
            version: 1,
            written_at_ms: 2,
            value: vec![3],
            signature: vec![],
        };
        let base = r.signing_bytes();
        let mut changed = r.clone();
        changed.version = 2;
        assert_ne!(changed.signing_bytes(), base);
        let mut changed = r.clone();
        changed.value = vec![4];
        assert_ne!(changed.signing_bytes(), base);
        let mut changed = r.clone();
        changed.signature = vec![9];
        assert_eq!(changed.signing_bytes(), base, "the signature is not signed");
    }
}
