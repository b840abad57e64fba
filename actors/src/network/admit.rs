//! What a record from a partner passes before it is stored: bounds and audience, an origin
//! that is a partner (or us), a newer version than the one held, the origin's signature and
//! the origin's quota.
//!
//! The signatures of a batch (a push, a catch-up answer) are checked together, in one
//! ed25519 batch verification, which costs about half of checking them one by one; when the
//! batch fails, each is checked alone to find the bad ones (so a bad record costs its sender's
//! batch the slower path, and nothing else). A batch accepts what the single check accepts but
//! for signatures with small-order components, which only their signer can make; a hostile
//! origin gains nothing by them that signing two versions of a record does not already give it.

use std::collections::HashMap;

use consort_protocol::PartyName;
use consort_protocol::jobs::is_job_key;
use consort_protocol::peer::Record;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use libp2p::PeerId;
use tracing::{debug, warn};

use super::NetworkEvent;
use super::event_loop::{EventLoop, public_key_of};

/// Public keys cached, at most (then the cache starts over).
const KEYS_MAX: usize = 4096;

/// Checks that need no store: bounds, audience, the key's rules.
pub(crate) fn check_record(record: &Record, me: &PartyName) -> Result<(), String> {
    record.check_bounds()?;
    if !record.visible_to(me) {
        return Err(format!(
            "record '{}' of '{}' is not addressed to this party",
            record.key, record.origin
        ));
    }
    if is_job_key(&record.key) && record.audience.is_empty() {
        return Err(format!(
            "job record '{}' of '{}' names no participants",
            record.key, record.origin
        ));
    }
    Ok(())
}

/// The ed25519 key behind `peer`.
pub(crate) fn verifying_key_of(peer: &PeerId) -> Option<VerifyingKey> {
    let key = public_key_of(peer)?.try_into_ed25519().ok()?;
    VerifyingKey::from_bytes(&key.to_bytes()).ok()
}

/// Whether `record` carries a valid signature by `key`.
pub(crate) fn signed_by(record: &Record, key: &VerifyingKey) -> bool {
    Signature::from_slice(&record.signature)
        .is_ok_and(|sig| key.verify(&record.signing_bytes(), &sig).is_ok())
}

/// For each record, whether it carries a valid signature by the key given with it.
fn signed(batch: &[(Record, VerifyingKey)]) -> Vec<bool> {
    if batch.len() > 1 {
        let messages: Vec<Vec<u8>> = batch.iter().map(|(r, _)| r.signing_bytes()).collect();
        let signatures: Option<Vec<Signature>> = batch
            .iter()
            .map(|(r, _)| Signature::from_slice(&r.signature).ok())
            .collect();
        if let Some(signatures) = signatures {
            let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let keys: Vec<VerifyingKey> = batch.iter().map(|(_, k)| *k).collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
                return vec![true; batch.len()];
            }
        }
    }
    batch.iter().map(|(r, k)| signed_by(r, k)).collect()
}

/// A record that passed every check but its signature.
struct Candidate {
    record: Record,
    held: Option<Record>,
}

impl EventLoop {
    /// Checks a record, then stores it if it is newer: `Ok(Some(record))` when it was stored,
    /// `Ok(None)` when it was not newer. `Err` says why it was refused.
    pub(crate) fn apply_record(&mut self, record: Record) -> Result<Option<Record>, String> {
        self.apply_records(vec![record]).pop().unwrap_or(Ok(None))
    }

    /// Applies records a partner sent (pushed, or an answer to our digest), relays the new
    /// ones if they came by push (see [`EventLoop::relay`]), and tells the actors about them
    /// in one event.
    pub(crate) fn apply_from(&mut self, peer: PeerId, records: Vec<Record>, pushed: bool) {
        let mut stored = Vec::new();
        for outcome in self.apply_records(records) {
            match outcome {
                Ok(Some(record)) => stored.push(record),
                Ok(None) => {}
                Err(why) => self.refuse_record_from(&peer, &why),
            }
        }
        self.count_stored_from(&peer, stored.len());
        if stored.is_empty() {
            return;
        }
        debug!(%peer, stored = stored.len(), "records applied");
        if pushed {
            self.relay(&peer, &stored);
        }
        self.emit(NetworkEvent::RecordsUpdated(stored));
    }

    /// Checks and stores `records` (see [`Self::apply_record`]), the signatures of all in one
    /// batch. Of two versions of a record in one batch only the newer counts.
    fn apply_records(&mut self, records: Vec<Record>) -> Vec<Result<Option<Record>, String>> {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut batch: Vec<(Record, VerifyingKey)> = Vec::new();
        let mut helds = Vec::new();
        // (origin, key) → place in `batch`.
        let mut seen: HashMap<(PartyName, String), usize> = HashMap::new();
        for record in records {
            match self.admit(record) {
                Ok(Some((c, key))) => {
                    let id = (c.record.origin.clone(), c.record.key.clone());
                    match seen.get(&id) {
                        Some(&at) if batch[at].0.version >= c.record.version => {
                            outcomes.push(Ok(None))
                        }
                        Some(&at) => {
                            batch[at] = (c.record, key);
                            outcomes.push(Ok(None));
                        }
                        None => {
                            seen.insert(id, batch.len());
                            batch.push((c.record, key));
                            helds.push(c.held);
                        }
                    }
                }
                Ok(None) => outcomes.push(Ok(None)),
                Err(why) => outcomes.push(Err(why)),
            }
        }
        let good = signed(&batch);
        for (((record, _), held), good) in batch.into_iter().zip(helds).zip(good) {
            outcomes.push(if good {
                self.store(Candidate { record, held })
            } else {
                Err(format!("bad signature on a record of '{}'", record.origin))
            });
        }
        outcomes
    }

    /// The checks before the signature's: `Ok(None)` when we hold this version or a newer one
    /// already (what we hold costs nothing more: catch-up may send a job's records again).
    fn admit(&mut self, record: Record) -> Result<Option<(Candidate, VerifyingKey)>, String> {
        check_record(&record, &self.party)?;
        let held = match self.records.get(record.origin.as_str(), &record.key) {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "cannot read a record");
                return Ok(None);
            }
        };
        if held.as_ref().is_some_and(|h| h.version >= record.version) {
            return Ok(None);
        }
        let origin_peer = if record.origin == self.party {
            self.key.public().to_peer_id()
        } else {
            self.partners
                .peer_of(record.origin.as_str())
                .ok_or_else(|| format!("origin '{}' is not a partner", record.origin))?
        };
        let key = match self.keys.get(&origin_peer) {
            Some(key) => *key,
            None => {
                let key = verifying_key_of(&origin_peer).ok_or("origin key is not ed25519")?;
                if self.keys.len() >= KEYS_MAX {
                    self.keys.clear();
                }
                self.keys.insert(origin_peer, key);
                key
            }
        };
        Ok(Some((Candidate { record, held }, key)))
    }

    /// The origin's quota, then the store.
    fn store(&mut self, c: Candidate) -> Result<Option<Record>, String> {
        let Candidate { record, held } = c;
        let (count, bytes) = self.usage.get(&record.origin).copied().unwrap_or((0, 0));
        let held_bytes = held.as_ref().map_or(0, |h| h.value.len() as u64);
        let new_count = count + u64::from(held.is_none());
        let new_bytes = (bytes + record.value.len() as u64).saturating_sub(held_bytes);
        let (max_count, max_bytes) = self.quota;
        if record.origin != self.party && (new_count > max_count || new_bytes > max_bytes) {
            return Err(format!(
                "'{}' is over its record quota ({max_count} records, {max_bytes} bytes)",
                record.origin
            ));
        }
        // This loop is the store's only writer, and `held` was read in `admit`.
        match self.records.store_newer(&record) {
            Ok(()) => {
                self.usage
                    .insert(record.origin.clone(), (new_count, new_bytes));
                self.sums.account(held.as_ref(), &record);
                self.stored_own_job(&record);
                debug!(origin = %record.origin, key = %record.key, version = record.version, "record stored");
                Ok(Some(record))
            }
            Err(e) => {
                warn!(error = %e, "cannot store a record");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn signed_record(key: &Keypair, k: &str, version: u64) -> Record {
        let mut r = Record {
            origin: PartyName::new("a").expect("name"),
            key: k.into(),
            version,
            written_at_ms: 0,
            value: vec![1, 2, 3],
            audience: Default::default(),
            signature: Vec::new(),
        };
        r.signature = key.sign(&r.signing_bytes()).expect("sign");
        r
    }

    #[test]
    fn a_batch_finds_its_bad_signatures_and_only_them() {
        let ka = Keypair::generate_ed25519();
        let kb = Keypair::generate_ed25519();
        let va = verifying_key_of(&ka.public().to_peer_id()).expect("ed25519");
        let vb = verifying_key_of(&kb.public().to_peer_id()).expect("ed25519");
        let good: Vec<(Record, VerifyingKey)> = (0..5)
            .map(|i| (signed_record(&ka, &format!("k{i}"), 1), va))
            .collect();
        assert_eq!(signed(&good), vec![true; 5]);
        // A record signed by another key, one with a changed value, one with a short
        // signature, amid good ones.
        let mut mixed = good.clone();
        mixed[1] = (signed_record(&kb, "k1", 1), va);
        mixed[2].0.value.push(9);
        mixed[3].0.signature.truncate(10);
        assert_eq!(signed(&mixed), [true, false, false, false, true]);
        // Alone, a record is checked alone.
        assert_eq!(signed(&[(signed_record(&kb, "k", 1), vb)]), [true]);
        assert_eq!(signed(&[(signed_record(&kb, "k", 1), va)]), [false]);
        assert!(signed(&[]).is_empty());
    }
}
