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
/// Longest record key, in bytes.
pub const MAX_RECORD_KEY_BYTES: usize = 512;
/// Largest record value, in bytes (a job file is at most 256 KiB).
pub const MAX_RECORD_VALUE_BYTES: usize = 1024 * 1024;
pub use crate::audience::{Audience, MAX_AUDIENCE};
/// Most digest entries in one catch-up page.
pub const DIGEST_PAGE_ENTRIES: usize = 4096;
/// Most bytes of record values in one catch-up answer (the rest comes with the next round).
pub const CATCH_UP_ANSWER_BYTES: usize = 8 * 1024 * 1024;

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
    /// Anti-entropy, one page at a time: "here is what I hold in this key range; send me what
    /// is newer or missing in it".
    Digest {
        /// The records the sender holds in the range, as `(origin, key, version)`
        /// (at most [`DIGEST_PAGE_ENTRIES`]).
        entries: Vec<DigestEntry>,
        /// The range: store keys from `after` (exclusive; `None`: from the start) ...
        #[serde(default, with = "opt_bytes")]
        after: Option<Vec<u8>>,
        /// ... up to `until` (inclusive; `None`: to the end).
        #[serde(default, with = "opt_bytes")]
        until: Option<Vec<u8>>,
    },
    /// Anti-entropy by job, one page at a time: "here is a summary of what I hold of each job
    /// in this range; send me the records of the jobs where yours differs". Jobs in sync cost
    /// one hash each, whatever their size.
    Sums {
        /// A summary per job, in job order (at most [`DIGEST_PAGE_ENTRIES`]).
        sums: Vec<JobSum>,
        /// The range: jobs after `after` (exclusive; `None`: from the first) ...
        #[serde(default)]
        after: Option<String>,
        /// ... up to `until` (inclusive; `None`: to the last).
        #[serde(default)]
        until: Option<String>,
    },
    /// Records pushed directly when gossip could not carry them (each is verified).
    Push {
        /// The records, packed.
        records: PackedRecords,
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

/// Records as a MessagePack array in bytes: each record is encoded once by its sender (a hub
/// sends the same records to many parties), and a receiver decodes them straight into
/// records (no buffering through the request's tagged enum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackedRecords(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl PackedRecords {
    /// Packs records encoded by [`Record::encode`].
    pub fn pack<'a>(encoded: impl ExactSizeIterator<Item = &'a [u8]>) -> Self {
        let n = encoded.len();
        let mut out = Vec::new();
        // MessagePack array header (fixarray, array 16, array 32).
        if n < 16 {
            out.push(0x90 | n as u8);
        } else if let Ok(n) = u16::try_from(n) {
            out.push(0xdc);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(0xdd);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        for e in encoded {
            out.extend_from_slice(e);
        }
        Self(out)
    }

    /// Packs `records`.
    pub fn of(records: &[Record]) -> Self {
        let encoded: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        Self::pack(encoded.iter().map(Vec::as_slice))
    }

    /// The records.
    pub fn unpack(&self) -> Result<Vec<Record>, rmp_serde::decode::Error> {
        rmp_serde::from_slice(&self.0)
    }
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
        /// The answer was cut at [`CATCH_UP_ANSWER_BYTES`]: ask for the same page again.
        #[serde(default)]
        truncated: bool,
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

/// The summary of a job's records that one party holds and another may see: an
/// order-independent hash of their `(origin, key, version)`. Records of no job are summed
/// under the empty name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSum {
    /// Job id (empty: records of no job).
    pub job: String,
    /// XOR of [`record_hash`] over the records; 0: the job is changing at the sender right
    /// now (its records are on their way by push), so leave it out of this round.
    pub hash: u64,
}

/// The hash of one held version of a record, for [`JobSum`]s (FNV-1a, then a 64-bit mix).
pub fn record_hash(origin: &str, key: &str, version: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    origin.bytes().for_each(&mut eat);
    eat(0);
    key.bytes().for_each(&mut eat);
    eat(0);
    version.to_le_bytes().into_iter().for_each(&mut eat);
    // splitmix64 finalizer
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    /// The parties the record is for (a job's participants). Empty: every partner of the
    /// federation. A record with an audience is sent to, relayed to and accepted by the parties
    /// it names only.
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub audience: Audience,
    /// ed25519 signature by the origin's identity key over [`Record::signing_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Record {
    /// The record as it travels in [`PackedRecords`].
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings, integers and byte vectors always encodes.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

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
            // Absent when empty, so records without an audience sign as before.
            #[serde(skip_serializing_if = "<[PartyName]>::is_empty")]
            audience: &'a [PartyName],
        }
        // Serializing plain strings, integers and bytes cannot fail.
        rmp_serde::to_vec_named(&Signed {
            domain: "consort-record-v1",
            origin: self.origin.as_str(),
            key: &self.key,
            version: self.version,
            written_at_ms: self.written_at_ms,
            value: &self.value,
            audience: &self.audience,
        })
        .unwrap_or_default()
    }

    /// Whether `party` may hold this record: the audience names it, or there is none.
    pub fn visible_to(&self, party: &PartyName) -> bool {
        self.audience.is_empty() || self.audience.contains(party)
    }

    /// Checks the bounds every record from a peer must keep, before anything else looks at it.
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.key.is_empty() || self.key.len() > MAX_RECORD_KEY_BYTES {
            return Err(format!(
                "record key of {} bytes (1 to {MAX_RECORD_KEY_BYTES})",
                self.key.len()
            ));
        }
        if self.key.contains('\0') {
            return Err("record key contains a NUL byte".into());
        }
        if self.value.len() > MAX_RECORD_VALUE_BYTES {
            return Err(format!(
                "record value of {} bytes (at most {MAX_RECORD_VALUE_BYTES})",
                self.value.len()
            ));
        }
        if self.audience.len() > MAX_AUDIENCE {
            return Err(format!(
                "record audience of {} parties (at most {MAX_AUDIENCE})",
                self.audience.len()
            ));
        }
        if !self.audience.is_empty() && !self.audience.contains(&self.origin) {
            return Err("the record's audience does not name its origin".into());
        }
        Ok(())
    }
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(serde_bytes::Bytes::new(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(|b| b.into_vec()))
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
    fn packed_records_unpack_to_the_records_at_every_array_header_size() {
        for n in [0usize, 1, 15, 16, 300] {
            let records: Vec<Record> = (0..n)
                .map(|i| Record {
                    origin: PartyName::new("a").expect("name"),
                    key: format!("k{i}"),
                    version: i as u64,
                    written_at_ms: 7,
                    value: vec![i as u8; 3],
                    audience: vec![PartyName::new("b").expect("name")].into(),
                    signature: vec![1, 2],
                })
                .collect();
            let packed = PackedRecords::of(&records);
            let bytes = rmp_serde::to_vec_named(&PeerRequestBody::Push {
                records: packed.clone(),
            })
            .expect("encode");
            let body: PeerRequestBody = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(
                body,
                PeerRequestBody::Push {
                    records: packed.clone()
                }
            );
            assert_eq!(packed.unpack().expect("unpack"), records);
        }
        assert!(PackedRecords(vec![0x91, 0xc1]).unpack().is_err());
    }

    #[test]
    fn signing_bytes_cover_every_field() {
        let r = Record {
            origin: PartyName::new("a").expect("name"),
            key: "k".into(),
            version: 1,
            written_at_ms: 2,
            value: vec![3],
            audience: Audience::default(),
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
        let mut changed = r.clone();
        changed.audience = vec![PartyName::new("a").expect("name")].into();
        assert_ne!(changed.signing_bytes(), base, "the audience is signed");
    }

    #[test]
    fn bounds_are_checked() {
        let a = PartyName::new("a").expect("name");
        let b = PartyName::new("b").expect("name");
        let r = Record {
            origin: a.clone(),
            key: "k".into(),
            version: 1,
            written_at_ms: 2,
            value: vec![3],
            audience: vec![a.clone(), b.clone()].into(),
            signature: vec![],
        };
        assert!(r.check_bounds().is_ok());
        assert!(r.visible_to(&b));
        assert!(!r.visible_to(&PartyName::new("c").expect("name")));
        let mut bad = r.clone();
        bad.audience = vec![b.clone()].into();
        assert!(bad.check_bounds().is_err(), "origin outside its audience");
        let mut bad = r.clone();
        bad.value = vec![0; MAX_RECORD_VALUE_BYTES + 1];
        assert!(bad.check_bounds().is_err());
        let mut bad = r.clone();
        bad.key = "k".repeat(MAX_RECORD_KEY_BYTES + 1);
        assert!(bad.check_bounds().is_err());
        let mut bad = r;
        bad.key = String::new();
        assert!(bad.check_bounds().is_err());
    }
}
