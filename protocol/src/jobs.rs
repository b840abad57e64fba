//! Replicated job and task-state records: what parties tell each other about jobs.
//!
//! Scheduling is decentralized. Each party is the only writer of its own records (they are
//! signed by its key); every party derives the same job state from the same set of records.
//! Keys, under each record's origin party:
//! - `job/<job>`: the job, written by its initiator;
//! - `decision/<job>`: a participant's acceptance or rejection;
//! - `task/<job>/<task>/<attempt>/<role>`: this party's state of one run of a task;
//! - `stop/<job>`: a participant asked to cancel the job.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::PartyName;
use crate::job::Role;

/// Schema version of the values below.
pub const RECORD_VERSION: u16 = 1;

/// A job's id: unique across parties and sortable by submission time. Checked when it is
/// deserialized too: an id from a peer is never anything but `j` and 20 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JobId::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid job id '{}'", s.escape_debug()))
        })
    }
}

impl JobId {
    /// Mints an id from the time (ms since the epoch) and 32 random bits: `j` + 12 + 8 hex digits.
    pub fn mint(now_ms: u64, random: u32) -> Self {
        Self(format!("j{:012x}{random:08x}", now_ms & 0xffff_ffff_ffff))
    }

    /// Checks an id given by a user or a peer.
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            s.len() == 21 && s.starts_with('j') && s[1..].chars().all(|c| c.is_ascii_hexdigit());
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `job/<job>`: the job as proposed by its initiator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Schema version.
    pub v: u16,
    /// The job id.
    pub job_id: JobId,
    /// Who submitted it.
    pub initiator: PartyName,
    /// The job file, verbatim; every party validates it itself.
    pub spec: String,
    /// Submission time (Unix ms).
    pub submitted_at_ms: u64,
}

/// A participant's answer to a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// It takes part.
    Accepted,
    /// It refuses, and says why.
    Rejected {
        /// Why.
        reason: String,
    },
    /// An operator must run `consort job approve` or `reject`.
    AwaitingApproval,
}

/// `decision/<job>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Schema version.
    pub v: u16,
    /// The answer.
    pub decision: Decision,
}

/// State of one run of a task at one party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not started.
    Waiting,
    /// Running.
    Running,
    /// Finished successfully.
    Success,
    /// Finished with an error.
    Failed,
    /// Stopped because the job was stopped (or another party's failure made it moot).
    Canceled,
}

impl RunState {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Success | RunState::Failed | RunState::Canceled
        )
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Waiting => "waiting",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Canceled => "canceled",
        }
    }
}

/// `task/<job>/<task>/<attempt>/<role>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStateRecord {
    /// Schema version.
    pub v: u16,
    /// State.
    pub state: RunState,
    /// When it started (Unix ms).
    pub started_at_ms: Option<u64>,
    /// When it ended (Unix ms).
    pub ended_at_ms: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// `stop/<job>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    /// Schema version.
    pub v: u16,
    /// Why (shown in `job show`).
    pub reason: String,
    /// The rerun epoch it stops (0 before any rerun); a rerun lifts older stops.
    #[serde(default)]
    pub epoch: u32,
}

/// `rerun/<job>`: run a failed or canceled job again, reusing what succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunRecord {
    /// Schema version.
    pub v: u16,
    /// Epoch, from 1; the highest seen from any party wins.
    pub epoch: u32,
    /// Tasks to run again, each with the first attempt number of the rerun.
    pub tasks: std::collections::BTreeMap<String, u32>,
}

/// Prefixes of the record keys that belong to the scheduler (job-scoped records).
pub const JOB_KEY_PREFIXES: [&str; 5] = ["job/", "decision/", "task/", "stop/", "rerun/"];

/// Whether `key` is a job-scoped record key: such records must name their audience (the job's
/// participants) and only the scheduler writes them.
pub fn is_job_key(key: &str) -> bool {
    JOB_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The key of a rerun record.
pub fn rerun_key(job: &JobId) -> String {
    format!("rerun/{job}")
}

/// The key of a job record.
pub fn job_key(job: &JobId) -> String {
    format!("job/{job}")
}

/// The key of a decision record.
pub fn decision_key(job: &JobId) -> String {
    format!("decision/{job}")
}

/// The key of a stop record.
pub fn stop_key(job: &JobId) -> String {
    format!("stop/{job}")
}

/// The key of a task-state record.
pub fn task_key(job: &JobId, task: &str, attempt: u32, role: Role) -> String {
    format!("task/{job}/{task}/{attempt}/{role}")
}

/// What a record key is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// `job/<job>`.
    Job(JobId),
    /// `decision/<job>`.
    Decision(JobId),
    /// `stop/<job>`.
    Stop(JobId),
    /// `rerun/<job>`.
    Rerun(JobId),
    /// `task/<job>/<task>/<attempt>/<role>`.
    Task {
        /// Job.
        job: JobId,
        /// Task name.
        task: String,
        /// Attempt, from 1.
        attempt: u32,
        /// Role of the run.
        role: Role,
    },
}

impl RecordKey {
    /// Parses a record key; `None` for keys of other subsystems or malformed ones.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let kind = parts.next()?;
        let job = JobId::parse(parts.next()?)?;
        let out = match kind {
            "job" => RecordKey::Job(job),
            "decision" => RecordKey::Decision(job),
            "stop" => RecordKey::Stop(job),
            "rerun" => RecordKey::Rerun(job),
            "task" => RecordKey::Task {
                job,
                task: parts.next()?.to_owned(),
                attempt: parts.next()?.parse().ok()?,
                role: Role::parse(parts.next()?)?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(out)
    }

    /// The job the key belongs to.
    pub fn job(&self) -> &JobId {
        match self {
            RecordKey::Job(j)
            | RecordKey::Decision(j)
            | RecordKey::Stop(j)
            | RecordKey::Rerun(j) => j,
            RecordKey::Task { job, .. } => job,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_sort_by_time_and_parse_back() {
        let a = JobId::mint(1_000, 0xffff_ffff);
        let b = JobId::mint(1_001, 0);
        assert!(a < b);
        assert_eq!(JobId::parse(a.as_str()), Some(a));
        assert_eq!(JobId::parse("j123"), None);
        assert_eq!(JobId::parse("x0000000000010000000a"), None);
    }

    #[test]
    fn keys_round_trip() {
        let job = JobId::mint(5, 6);
        assert_eq!(
            RecordKey::parse(&job_key(&job)),
            Some(RecordKey::Job(job.clone()))
        );
        assert_eq!(
            RecordKey::parse(&stop_key(&job)),
            Some(RecordKey::Stop(job.clone()))
        );
        let k = task_key(&job, "lr", 2, Role::Arbiter);
        assert_eq!(
            RecordKey::parse(&k),
            Some(RecordKey::Task {
                job: job.clone(),
                task: "lr".into(),
                attempt: 2,
                role: Role::Arbiter
            })
        );
        for bad in [
            "task/x/lr/1/guest",
            "task/j/lr",
            "other/thing",
            &format!("{k}/extra"),
            &format!("task/{job}/lr/x/guest"),
        ] {
            assert_eq!(RecordKey::parse(bad), None, "{bad}");
        }
    }
}

/// Request-response topic of the data channel.
pub const CHANNEL_TOPIC: &str = "channel";

/// Request-response topic of log sharing: the body is a job id (text), the answer the
/// MessagePack of the party's log lines, if its policy shares them with the asker.
pub const LOGS_TOPIC: &str = "logs";

/// One data-channel message: `remote(to, tag, bytes)` of one run to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Schema version.
    pub v: u16,
    /// Job.
    pub job: JobId,
    /// Task.
    pub task: String,
    /// Attempt: messages of another attempt never mix in.
    pub attempt: u32,
    /// Tag chosen by the component.
    pub tag: String,
    /// Sender's role.
    pub from_role: Role,
    /// Sender's party (must be the requesting peer's party).
    pub from: PartyName,
    /// Receiver's role.
    pub to_role: Role,
    /// Receiver's party.
    pub to: PartyName,
    /// Sequence number per (tag, sender, receiver), from 0.
    pub seq: u64,
    /// The bytes (of this chunk, for a chunked message).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Set when the message is one chunk of a large payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<ChunkPart>,
}

/// Payloads larger than this travel as several chunks of at most this size.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Largest data-channel message a partner may announce (its chunks' `total`): 16 GiB.
pub const MAX_CHANNEL_MESSAGE_BYTES: u64 = 16 << 30;

impl ChunkPart {
    /// Checks that a chunk from a peer is one of the chunks the sender would cut: `count`
    /// chunks of [`CHUNK_BYTES`] for `total` bytes (at most [`MAX_CHANNEL_MESSAGE_BYTES`]),
    /// at its index's offset, `len` bytes long.
    pub fn check(&self, len: usize) -> Result<(), String> {
        let chunk = CHUNK_BYTES as u64;
        if self.total > MAX_CHANNEL_MESSAGE_BYTES {
            return Err(format!(
                "a message of {} bytes is over the {MAX_CHANNEL_MESSAGE_BYTES}-byte limit",
                self.total
            ));
        }
        let expected_len = self
            .total
            .saturating_sub(u64::from(self.index) * chunk)
            .min(chunk);
        if u64::from(self.count) != self.total.div_ceil(chunk)
            || self.index >= self.count
            || self.offset != u64::from(self.index) * chunk
            || len as u64 != expected_len
        {
            return Err(format!(
                "chunk {} of {} at {} ({len} bytes) does not fit a {}-byte message",
                self.index, self.count, self.offset, self.total
            ));
        }
        Ok(())
    }
}

/// Where a chunk goes in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPart {
    /// Index, from 0.
    pub index: u32,
    /// Number of chunks.
    pub count: u32,
    /// Length of the whole payload.
    pub total: u64,
    /// Byte offset of this chunk.
    pub offset: u64,
}

/// Mailbox key of a channel message (all parts are validated names without '/').
#[allow(clippy::too_many_arguments)]
pub fn mailbox_key(
    job: &JobId,
    task: &str,
    attempt: u32,
    tag: &str,
    from: (Role, &PartyName),
    to: (Role, &PartyName),
    seq: u64,
) -> String {
    format!(
        "{job}/{task}/{attempt}/{tag}/{}@{}/{}@{}/{seq:016x}",
        from.0, from.1, to.0, to.1
    )
}

impl ChannelMessage {
    /// Where the receiver stores it.
    pub fn mailbox_key(&self) -> String {
        mailbox_key(
            &self.job,
            &self.task,
            self.attempt,
            &self.tag,
            (self.from_role, &self.from),
            (self.to_role, &self.to),
            self.seq,
        )
    }
}

/// Whether `tag` is usable in a channel message (or as a task or output name there): it
/// passes the one name rule, [`crate::names::check`].
pub fn valid_tag(tag: &str) -> bool {
    crate::names::check("tag", tag).is_ok()
}
