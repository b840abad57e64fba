//! Replicated records from partners: the checks every record passes before it is stored, the
//! per-origin quotas, and anti-entropy (catch-up) one bounded page at a time.
//!
//! Scanning the store (a digest page, the records a partner lacks) runs on a blocking thread;
//! the event loop only sends pages and applies answers, so a large store never stalls the
//! network.

use consort_protocol::PartyName;
use consort_protocol::jobs::is_job_key;
use consort_protocol::peer::{
    CATCH_UP_ANSWER_BYTES, DIGEST_PAGE_ENTRIES, DigestEntry, JobSum, PeerRequest, PeerRequestBody,
    PeerResponse, Record,
};
use consort_storage::{Applied, RecordStore};
use libp2p::PeerId;
use tracing::{debug, warn};

use super::NetworkEvent;
use super::event_loop::{EventLoop, Pending, check_signature_with, public_key_of};

/// Most records one partner (as origin) may have us hold, by default.
pub const MAX_RECORDS_PER_ORIGIN: u64 = 100_000;
/// Most bytes of record values one partner (as origin) may have us hold, by default.
pub const MAX_BYTES_PER_ORIGIN: u64 = 256 * 1024 * 1024;

/// A digest page's store-key range: after (exclusive) .. until (inclusive); open ends `None`.
pub(crate) type PageRange = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Work finished off the network thread.
pub(crate) enum Done {
    /// Our digest page for a partner is ready to send.
    DigestPage {
        peer: PeerId,
        after: Option<Vec<u8>>,
        entries: Vec<DigestEntry>,
        until: Option<Vec<u8>>,
    },
    /// The answer to a partner's digest page is ready.
    Answer { id: u64, response: PeerResponse },
}

/// Checks that need no store: bounds, audience, the key's rules. `origin_is_partner` tells
/// whether the origin party is one of ours (or us).
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

impl EventLoop {
    /// Checks a record's bounds, audience, origin, signature and the origin's quota, then
    /// stores it if it is newer: `Ok(Some(record))` when it was stored (the caller tells the
    /// actors, in one batch), `Ok(None)` when it was not newer. `Err` says why it was refused.
    pub(crate) fn apply_record(&mut self, record: Record) -> Result<Option<Record>, String> {
        check_record(&record, &self.party)?;
        let held = match self.records.get(record.origin.as_str(), &record.key) {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "cannot read a record");
                return Ok(None);
            }
        };
        // What we hold already costs nothing more (no signature check): catch-up may send a
        // job's records again.
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
            Some(key) => key.clone(),
            None => {
                let key = public_key_of(&origin_peer).ok_or("origin key is not ed25519")?;
                if self.keys.len() >= 4096 {
                    self.keys.clear();
                }
                self.keys.insert(origin_peer, key.clone());
                key
            }
        };
        check_signature_with(&record, &key)?;
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
        match self.records.apply(&record) {
            Ok(Applied::Stored) => {
                self.usage
                    .insert(record.origin.clone(), (new_count, new_bytes));
                self.sums.account(held.as_ref(), &record);
                debug!(origin = %record.origin, key = %record.key, version = record.version, "record stored");
                Ok(Some(record))
            }
            Ok(Applied::Stale) => Ok(None),
            Err(e) => {
                warn!(error = %e, "cannot store a record");
                Ok(None)
            }
        }
    }

    /// Starts anti-entropy with one partner (unless one is already under way): our digest,
    /// page by page, each answered with what we lack.
    pub(crate) fn catch_up(&mut self, peer: PeerId) {
        // A full round: jobs changing right now are compared too.
        self.settling.remove(&peer);
        if self.catching_up.insert(peer) {
            self.send_sums(peer, None);
        }
    }

    /// The periodic safety net with one partner: like [`Self::catch_up`], but jobs that
    /// changed here within the last period are left out (their records are on their way).
    pub(crate) fn settle_with(&mut self, peer: PeerId) {
        if self.catching_up.insert(peer) {
            self.settling.insert(peer);
            self.send_sums(peer, None);
        }
    }

    /// Sends our per-job sums after job `after` for `peer` (kept in memory: no store read).
    fn send_sums(&mut self, peer: PeerId, after: Option<String>) {
        let Some(party) = self.partners.party_of(&peer).cloned() else {
            self.catching_up.remove(&peer);
            return;
        };
        let settle = self.settling.contains(&peer).then_some(self.antientropy);
        let (sums, until) = self
            .sums
            .page(&party, after.as_deref(), DIGEST_PAGE_ENTRIES, settle);
        let req = PeerRequest {
            from: self.party.clone(),
            body: PeerRequestBody::Sums {
                sums,
                after,
                until: until.clone(),
            },
        };
        let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
        self.pending.insert(id, Pending::Sums { peer, until });
    }

    /// A partner's answer to our sums: the records of the jobs that differed. A partner that
    /// does not know sums (an older build), or an answer cut at its budget, falls back to
    /// the digest by record.
    pub(crate) fn on_sums_response(
        &mut self,
        peer: PeerId,
        until: Option<String>,
        response: PeerResponse,
    ) {
        match response {
            PeerResponse::Records { records, truncated } => {
                self.apply_from(peer, records, false);
                match (truncated, until) {
                    (true, _) => self.prepare_page(peer, None),
                    (false, Some(until)) => self.send_sums(peer, Some(until)),
                    (false, None) => {
                        self.catching_up.remove(&peer);
                    }
                }
            }
            _ => self.prepare_page(peer, None),
        }
    }

    /// A partner's sums: answer, off the network thread, with the records it may see of the
    /// jobs where ours differ.
    pub(crate) fn answer_sums(
        &mut self,
        party: PartyName,
        sums: Vec<JobSum>,
        after: Option<String>,
        until: Option<String>,
        id: u64,
    ) {
        if sums.len() > DIGEST_PAGE_ENTRIES {
            let response = PeerResponse::Error {
                message: format!("a sums page holds at most {DIGEST_PAGE_ENTRIES} entries"),
            };
            return self.on_done(Done::Answer { id, response });
        }
        // In memory, bounded by our own jobs in the range.
        let jobs = self
            .sums
            .differing(&party, &sums, after.as_deref(), until.as_deref());
        drop(sums);
        if jobs.is_empty() {
            let response = PeerResponse::Records {
                records: Vec::new(),
                truncated: false,
            };
            return self.on_done(Done::Answer { id, response });
        }
        let (records, done) = (self.records.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let response = answer_jobs(&records, &party, &jobs, CATCH_UP_ANSWER_BYTES);
            let _ = done.blocking_send(Done::Answer { id, response });
        });
    }

    /// Computes our digest page after `after` for `peer` on a blocking thread.
    fn prepare_page(&mut self, peer: PeerId, after: Option<Vec<u8>>) {
        let Some(party) = self.partners.party_of(&peer).cloned() else {
            self.catching_up.remove(&peer);
            return;
        };
        let (records, done) = (self.records.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let visible = |r: &Record| r.visible_to(&party);
            let page = records.digest_page(after.as_deref(), DIGEST_PAGE_ENTRIES, &visible);
            let (entries, until) = match page {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "cannot read the record digest");
                    (Vec::new(), None)
                }
            };
            let _ = done.blocking_send(Done::DigestPage {
                peer,
                after,
                entries,
                until,
            });
        });
    }

    /// Work finished on a blocking thread.
    pub(crate) fn on_done(&mut self, done: Done) {
        match done {
            Done::DigestPage {
                peer,
                after,
                entries,
                until,
            } => {
                let req = PeerRequest {
                    from: self.party.clone(),
                    body: PeerRequestBody::Digest {
                        entries,
                        after: after.clone(),
                        until: until.clone(),
                    },
                };
                let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
                self.pending.insert(
                    id,
                    Pending::CatchUp {
                        peer,
                        page: Some((after, until)),
                    },
                );
            }
            Done::Answer { id, response } => self.respond_inbound(id, response),
        }
    }

    /// A partner's answer to one of our digest pages (or to a push, `page` = `None`).
    pub(crate) fn on_catch_up_response(
        &mut self,
        peer: PeerId,
        page: Option<PageRange>,
        response: PeerResponse,
    ) {
        let (records, truncated) = match response {
            PeerResponse::Records { records, truncated } => (records, truncated),
            _ => (Vec::new(), false),
        };
        self.apply_from(peer, records, false);
        let Some((after, until)) = page else { return };
        match (truncated, until) {
            // The answer was cut: ask for the same range again (what came is now held).
            (true, _) => self.prepare_page(peer, after),
            (false, Some(until)) => self.prepare_page(peer, Some(until)),
            (false, None) => {
                self.catching_up.remove(&peer);
            }
        }
    }

    /// Applies records a partner sent (pushed, or an answer to our digest), relays the new
    /// ones if they came by push (see [`EventLoop::relay`]), and tells the actors about them
    /// in one event.
    pub(crate) fn apply_from(&mut self, peer: PeerId, records: Vec<Record>, pushed: bool) {
        let mut stored = Vec::new();
        for record in records {
            match self.apply_record(record) {
                Ok(Some(record)) => stored.push(record),
                Ok(None) => {}
                Err(why) => self.reject_from(&peer, &why),
            }
        }
        if stored.is_empty() {
            return;
        }
        debug!(%peer, stored = stored.len(), "records applied");
        if pushed {
            self.relay(&peer, &stored);
        }
        self.emit(NetworkEvent::RecordsUpdated(stored));
    }

    /// A partner's digest page: answer, off the network thread, with the records of that
    /// range it lacks and may see.
    pub(crate) fn answer_digest(
        &mut self,
        party: PartyName,
        entries: Vec<DigestEntry>,
        after: Option<Vec<u8>>,
        until: Option<Vec<u8>>,
        id: u64,
    ) {
        if entries.len() > DIGEST_PAGE_ENTRIES {
            let response = PeerResponse::Error {
                message: format!("a digest page holds at most {DIGEST_PAGE_ENTRIES} entries"),
            };
            return self.on_done(Done::Answer { id, response });
        }
        let (records, done) = (self.records.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let response = answer(&records, &party, &entries, after, until);
            let _ = done.blocking_send(Done::Answer { id, response });
        });
    }
}

/// The records of `jobs` (by the job index; the empty name: records of no job) that `party`
/// may see, up to `budget` bytes of values.
fn answer_jobs(
    records: &RecordStore,
    party: &PartyName,
    jobs: &[String],
    budget: usize,
) -> PeerResponse {
    let mut out = Vec::new();
    let mut used = 0usize;
    for job in jobs {
        let held = if job.is_empty() {
            records.without_job()
        } else {
            records.of_job(job)
        };
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                return PeerResponse::Error {
                    message: format!("cannot read records: {e}"),
                };
            }
        };
        for r in held.into_iter().filter(|r| r.visible_to(party)) {
            if used + r.value.len() > budget && !out.is_empty() {
                return PeerResponse::Records {
                    records: out,
                    truncated: true,
                };
            }
            used += r.value.len();
            out.push(r);
        }
    }
    PeerResponse::Records {
        records: out,
        truncated: false,
    }
}

fn answer(
    records: &RecordStore,
    party: &PartyName,
    entries: &[DigestEntry],
    after: Option<Vec<u8>>,
    until: Option<Vec<u8>>,
) -> PeerResponse {
    let visible = |r: &Record| r.visible_to(party);
    match records.newer_in_range(
        entries,
        after.as_deref(),
        until.as_deref(),
        &visible,
        CATCH_UP_ANSWER_BYTES,
    ) {
        Ok((records, truncated)) => PeerResponse::Records { records, truncated },
        Err(e) => PeerResponse::Error {
            message: format!("cannot read records: {e}"),
        },
    }
}
