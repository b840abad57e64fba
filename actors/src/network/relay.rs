//! Pushing records to partners, and the hub's relay.
//!
//! Every partner has an outbox: one push to it is in flight at a time, and what is written
//! meanwhile goes together in the next one, a newer version of a record replacing the queued
//! one. A job's records go to the job's initiator, its hub, which relays each to the job's
//! other parties. In a job of more than [`RELAY_BATCH_FROM`] parties the hub gathers a job's
//! relays (its own records of the job with them) until every party of the job has had a
//! record gathered, or none came for [`RELAY_QUIET`], or [`RELAY_HOLD`] has passed: a step of
//! a job ends when its last party's record arrives, so the step's records leave the hub
//! together, one push per party instead of one per record and party, and nobody waits longer
//! for the step's end (a step that some parties have no part in waits [`RELAY_QUIET`] more).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use consort_protocol::PartyName;
use consort_protocol::jobs::{JobId, RecordKey, job_key};
use consort_protocol::peer::{PackedRecords, PeerRequest, PeerRequestBody, Record};
use libp2p::PeerId;
use tokio::time::Instant;

use super::event_loop::{EventLoop, Pending};
use super::push_stream::PushEvent;

/// Records waiting for one partner, at most (older ones are dropped: the partner's catch-up
/// brings them).
pub(crate) const OUTBOX_MAX: usize = 10_000;
/// How long a hub goes on holding a job's relays after the last one came, waiting for the rest
/// of the step.
pub(crate) const RELAY_QUIET: Duration = Duration::from_millis(20);
/// How long a hub holds a job's relays at most.
pub(crate) const RELAY_HOLD: Duration = Duration::from_millis(250);
/// Jobs of more parties than this have their relays gathered.
const RELAY_BATCH_FROM: usize = 4;
/// Jobs whose job record (ours, or none) the hub remembers, at most (then it starts over).
const OWN_JOBS_MAX: usize = 4096;
/// Bytes of record values in one push, at most (one record always goes).
const PUSH_BATCH_BYTES: usize = 256 * 1024;

/// A record on its way out, encoded once however many partners it goes to.
pub(crate) struct Outgoing {
    origin: PartyName,
    key: String,
    version: u64,
    value_len: usize,
    encoded: Vec<u8>,
}

impl Outgoing {
    fn of(record: &Record) -> Arc<Self> {
        Arc::new(Self {
            origin: record.origin.clone(),
            key: record.key.clone(),
            version: record.version,
            value_len: record.value.len(),
            encoded: record.encode(),
        })
    }
}

/// The records waiting for one partner, oldest first, at most one version of each.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: BTreeMap<u64, Arc<Outgoing>>,
    /// (origin, key) → position in `queue`.
    index: HashMap<(PartyName, String), u64>,
    next: u64,
}

impl Outbox {
    /// Queues `record`, or puts it in the place of the older version queued.
    fn put(&mut self, record: &Arc<Outgoing>) {
        let id = (record.origin.clone(), record.key.clone());
        if let Some(at) = self.index.get(&id) {
            if let Some(queued) = self.queue.get_mut(at)
                && queued.version < record.version
            {
                *queued = record.clone();
            }
            return;
        }
        if self.queue.len() >= OUTBOX_MAX
            && let Some((_, dropped)) = self.queue.pop_first()
        {
            self.index
                .remove(&(dropped.origin.clone(), dropped.key.clone()));
        }
        self.queue.insert(self.next, record.clone());
        self.index.insert(id, self.next);
        self.next += 1;
    }

    /// The oldest records, up to [`PUSH_BATCH_BYTES`] of values (at least one).
    fn take_batch(&mut self) -> Vec<Arc<Outgoing>> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while let Some(entry) = self.queue.first_entry() {
            let len = entry.get().value_len;
            if !records.is_empty() && bytes + len > PUSH_BATCH_BYTES {
                break;
            }
            bytes += len;
            let r = entry.remove();
            self.index.remove(&(r.origin.clone(), r.key.clone()));
            records.push(r);
        }
        records
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// A job's records its hub is gathering before relaying them.
pub(crate) struct Gathering {
    /// When they go, whoever is still missing.
    until: Instant,
    /// When the last record came.
    last: Instant,
    /// Parties whose records are gathered.
    from: HashSet<PartyName>,
    /// Parties of the job.
    parties: usize,
}

impl Gathering {
    fn due(&self) -> Instant {
        self.until.min(self.last + RELAY_QUIET)
    }
}

impl EventLoop {
    /// Relays records of jobs this party initiated, pushed to it by their origin, to the
    /// job's other parties (this party is the hub of its jobs' records). Only records just
    /// stored (verified and newer) travel on, and only to parties both the origin signed them
    /// for and this party addressed the job to: a participant cannot use the hub to reach
    /// anybody outside the job.
    pub(crate) fn relay(&mut self, from: &PeerId, stored: &[Record]) {
        let Some(sender) = self.partners.party_of(from).cloned() else {
            return;
        };
        for record in stored.iter().filter(|r| r.origin == sender) {
            let Some(key) = RecordKey::parse(&record.key) else {
                continue;
            };
            let Some(parties) = self.own_job_parties(key.job()) else {
                continue;
            };
            let peers: Vec<PeerId> = self
                .connected_audience(record, &[&sender])
                .into_iter()
                .filter(|peer| {
                    self.partners
                        .party_of(peer)
                        .is_some_and(|p| parties.contains(p))
                })
                .collect();
            if parties.len() > RELAY_BATCH_FROM {
                self.enqueue(record, &peers);
                self.gather(key.job().as_str(), &sender, parties.len());
            } else {
                self.push(record, peers);
            }
        }
    }

    /// The audience of our own record of `job` (the job's parties), if we initiated it: read
    /// once per job, not once per relayed record (storing our job record forgets it).
    fn own_job_parties(&mut self, job: &JobId) -> Option<Arc<HashSet<PartyName>>> {
        if let Some(known) = self.own_jobs.get(job) {
            return known.clone();
        }
        let parties = match self.records.get(self.party.as_str(), &job_key(job)) {
            Ok(held) => held.map(|r| Arc::new(r.audience.iter().cloned().collect::<HashSet<_>>())),
            // Not remembered: the next record asks the store again.
            Err(_) => return None,
        };
        if self.own_jobs.len() >= OWN_JOBS_MAX {
            self.own_jobs.clear();
        }
        self.own_jobs.insert(job.clone(), parties.clone());
        parties
    }

    /// Forgets what [`Self::own_job_parties`] remembers of `record`'s job if it is our job
    /// record (written here, or back from a partner after we lost it).
    pub(crate) fn stored_own_job(&mut self, record: &Record) {
        if record.origin == self.party
            && let Some(RecordKey::Job(job)) = RecordKey::parse(&record.key)
        {
            self.own_jobs.remove(&job);
        }
    }

    /// Sends our own record of a job we are the hub of: with the job's gathered relays when
    /// the job is large enough for them to be gathered, else at once. False when `record`
    /// is of no job.
    pub(crate) fn send_as_hub(&mut self, record: &Record) -> bool {
        let Some(key) = RecordKey::parse(&record.key) else {
            return false;
        };
        let peers = self.connected_audience(record, &[]);
        if record.audience.len() > RELAY_BATCH_FROM {
            self.enqueue(record, &peers);
            let me = self.party.clone();
            self.gather(key.job().as_str(), &me, record.audience.len());
        } else {
            self.push(record, peers);
        }
        true
    }

    /// Counts `origin`'s record into `job`'s gathering; when every party of the job has one
    /// in, everything queued goes.
    fn gather(&mut self, job: &str, origin: &PartyName, parties: usize) {
        let now = Instant::now();
        let g = self
            .gathering
            .entry(job.to_owned())
            .or_insert_with(|| Gathering {
                until: now + RELAY_HOLD,
                last: now,
                from: HashSet::new(),
                parties,
            });
        g.last = now;
        g.from.insert(origin.clone());
        if g.from.len() >= g.parties {
            self.gathering.remove(job);
            self.flush_outboxes();
        }
    }

    /// When the first gathering is due.
    pub(crate) fn gathering_due(&self) -> Option<Instant> {
        self.gathering.values().map(Gathering::due).min()
    }

    /// Ends the gatherings that are due and sends what they held.
    pub(crate) fn gathering_ended(&mut self) {
        let now = Instant::now();
        self.gathering.retain(|_, g| g.due() > now);
        self.flush_outboxes();
    }

    /// Sends `record` to each of `peers` directly: at once if no push to that peer is in
    /// flight, else with the next batch, where it replaces an older version of itself.
    pub(crate) fn push(&mut self, record: &Record, peers: Vec<PeerId>) {
        self.enqueue(record, &peers);
        for peer in peers {
            if !self.pushing.contains(&peer) {
                self.send_outbox(peer);
            }
        }
    }

    /// Sends every outbox that has records: now if no push to that partner is in flight, else
    /// as soon as it is answered.
    fn flush_outboxes(&mut self) {
        let peers: Vec<PeerId> = self.outbox.keys().copied().collect();
        for peer in peers {
            if self.pushing.contains(&peer) {
                self.released.insert(peer);
            } else {
                self.send_outbox(peer);
            }
        }
    }

    /// Queues `record` for each of `peers`, replacing an older queued version of itself.
    fn enqueue(&mut self, record: &Record, peers: &[PeerId]) {
        if peers.is_empty() {
            return;
        }
        let out = Outgoing::of(record);
        for &peer in peers {
            self.outbox.entry(peer).or_default().put(&out);
        }
    }

    /// A push to `peer` was written into its push stream, or answered as a request (or the
    /// request failed: what failed comes by catch-up). The next batch goes now, unless a
    /// gathering holds it back.
    pub(crate) fn push_done(&mut self, peer: PeerId) {
        self.pushing.remove(&peer);
        if self.released.remove(&peer) || self.gathering.is_empty() {
            self.send_outbox(peer);
        }
    }

    /// Sends the next batch of `peer`'s outbox, if any.
    pub(crate) fn send_outbox(&mut self, peer: PeerId) {
        self.pushing.remove(&peer);
        let Some(outbox) = self.outbox.get_mut(&peer) else {
            return;
        };
        let records = outbox.take_batch();
        if outbox.is_empty() {
            self.outbox.remove(&peer);
        }
        if records.is_empty() {
            return;
        }
        self.count_sent_to(&peer, records.len());
        let records = PackedRecords::pack(records.iter().map(|r| r.encoded.as_slice()));
        if self.pushes.by_request.contains(&peer) {
            return self.push_by_request(peer, records);
        }
        match self.pushes.send(peer, records.0) {
            Ok(()) => {
                self.pushing.insert(peer);
            }
            // The writer is busy although no push is in flight: it cannot be, but if it is,
            // the batch goes by request rather than nowhere.
            Err(frame) => self.push_by_request(peer, PackedRecords(frame)),
        }
    }

    /// Sends a batch to `peer` as a request (partners without push streams).
    pub(crate) fn push_by_request(&mut self, peer: PeerId, records: PackedRecords) {
        let req = PeerRequest {
            from: self.party.clone(),
            body: PeerRequestBody::Push { records },
        };
        let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
        self.pending.insert(id, Pending::Push { peer });
        self.pushing.insert(peer);
    }

    /// What a push stream task reports.
    pub(crate) fn on_push_event(&mut self, event: PushEvent) {
        match event {
            PushEvent::Received { peer, packed } => self.on_pushed(peer, &packed),
            PushEvent::Refused { peer, why } => self.reject_from(&peer, &why),
            PushEvent::Written { peer } => self.push_done(peer),
            PushEvent::Broken {
                peer,
                unsupported,
                unsent,
            } => {
                self.pushes.broken(&peer, unsupported);
                self.push_by_request(peer, PackedRecords(unsent));
            }
        }
    }

    /// A batch that came by `peer`'s push stream: checked as a push by request is.
    fn on_pushed(&mut self, peer: PeerId, packed: &PackedRecords) {
        let Some(state) = self.partners.get_mut(&peer) else {
            return self.reject_from(&peer, "push stream from a peer that is not a partner");
        };
        state.last_seen = Some(consort_protocol::clock::now_ms());
        self.apply_pushed(peer, packed);
    }

    /// Applies a partner's pushed batch (by stream or request); false when it does not decode
    /// (the partner is counted).
    pub(crate) fn apply_pushed(&mut self, peer: PeerId, packed: &PackedRecords) -> bool {
        match packed.unpack() {
            Ok(records) => {
                self.apply_from(peer, records, true);
                true
            }
            Err(e) => {
                self.reject_from(&peer, &format!("undecodable push: {e}"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(origin: &str, key: &str, version: u64) -> Record {
        Record {
            origin: PartyName::new(origin).expect("name"),
            key: key.into(),
            version,
            written_at_ms: 0,
            value: vec![0; 10],
            audience: Default::default(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn an_outbox_keeps_the_newest_version_in_the_place_of_the_first() {
        let mut o = Outbox::default();
        for (origin, key, version) in [
            ("a", "k1", 1),
            ("a", "k2", 1),
            ("a", "k1", 3),
            ("a", "k1", 2),
            ("b", "k1", 1),
        ] {
            o.put(&Outgoing::of(&record(origin, key, version)));
        }
        let batch = o.take_batch();
        let packed = PackedRecords::pack(batch.iter().map(|r| r.encoded.as_slice()));
        let records = packed.unpack().expect("unpack");
        let got: Vec<(&str, &str, u64)> = records
            .iter()
            .map(|r| (r.origin.as_str(), r.key.as_str(), r.version))
            .collect();
        assert_eq!(got, [("a", "k1", 3), ("a", "k2", 1), ("b", "k1", 1)]);
        assert!(o.is_empty());
        // Taken records are forgotten: the same key queues again.
        o.put(&Outgoing::of(&record("a", "k1", 4)));
        assert_eq!(o.take_batch().len(), 1);
    }
}
