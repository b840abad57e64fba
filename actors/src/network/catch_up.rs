//! Replicated records from partners: the checks every record passes before it is stored, the
//! per-origin quotas, and anti-entropy (catch-up) one bounded page at a time.
//!
//! Scanning the store (a digest page, the records a partner lacks) runs on a blocking thread;
//! the event loop only sends pages and applies answers, so a large store never stalls the
//! network.

use consort_protocol::PartyName;
use consort_protocol::peer::{
    CATCH_UP_ANSWER_BYTES, DIGEST_PAGE_ENTRIES, DigestEntry, JobSum, PeerRequest, PeerRequestBody,
    PeerResponse, Record,
};
use consort_storage::RecordStore;
use libp2p::PeerId;
use tracing::warn;

use super::event_loop::{EventLoop, Pending};

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

impl EventLoop {
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
