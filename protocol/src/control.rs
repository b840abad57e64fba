//! The control-socket protocol between `consort` (or a script operator) and its local `consortd`.
//!
//! A connection starts with [`ClientMessage::Hello`]; the daemon answers
//! [`ServerMessage::Welcome`] when it speaks the same protocol version, or
//! [`ServerMessage::Error`] and closes. Then the client sends requests, each with an id that the
//! response echoes. Any protocol violation (bad frame, unknown request, request before hello) is
//! answered with an error and the connection is closed; the daemon itself carries on.

use serde::{Deserialize, Serialize};

/// Protocol name sent in the hello, so that a stray client of another program is told apart.
pub const CONTROL_PROTOCOL: &str = "consort-control";

/// Version of the control protocol spoken by this build.
pub const CONTROL_PROTOCOL_VERSION: u16 = 1;

/// A message from the client to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message of every connection.
    Hello {
        /// Must be [`CONTROL_PROTOCOL`].
        protocol: String,
        /// The client's [`CONTROL_PROTOCOL_VERSION`].
        version: u16,
        /// Free-form client description, for the daemon's log (e.g. `consort 0.1.0`).
        client: String,
    },
    /// A request; the response carries the same id.
    Request {
        /// Chosen by the client; echoed in the response.
        id: u64,
        /// What is asked.
        request: Request,
    },
}

/// Requests a client can make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Who and how the daemon is.
    Status,
    /// Stop the daemon gracefully (answer in-flight requests, flush, remove the socket).
    Shutdown,
    /// Partners and their connection state.
    Peers,
    /// Dial a partner and measure a request round trip.
    Ping {
        /// The partner's party name.
        party: String,
    },
    /// Ping every partner and diagnose the unreachable ones.
    Doctor,
    /// Add (or replace) a partner; effective at once and persisted.
    PartnerAdd {
        /// Party name.
        party: String,
        /// Its PeerId.
        peer_id: String,
        /// Multiaddrs to dial (may be empty when discovery finds it).
        addrs: Vec<String>,
    },
    /// Remove a partner; it is disconnected at once. Persisted.
    PartnerRemove {
        /// Party name.
        party: String,
    },
    /// Write one of this party's replicated records (published to every partner).
    RecordPut {
        /// Key.
        key: String,
        /// Value (UTF-8 text from the CLI).
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Read a replicated record.
    RecordGet {
        /// Party that wrote it.
        origin: String,
        /// Key.
        key: String,
    },
    /// List every replicated record held here (values omitted).
    RecordList,
    /// Submit a job file; this party becomes its initiator.
    JobSubmit {
        /// The job file's text (YAML or JSON).
        spec: String,
    },
    /// One job with its tasks × parties matrix.
    JobShow {
        /// Job id.
        job: String,
    },
    /// The job as soon as it differs from the `revision` the asker has seen (or at once if it
    /// does already), else as it is after `timeout_ms` (at most 60 000): a long poll, so
    /// waiting for a job costs no polling.
    JobWatch {
        /// Job id.
        job: String,
        /// The [`JobInfo::revision`] last seen (0: none).
        revision: u64,
        /// How long to wait for a change, in ms.
        timeout_ms: u64,
        /// Wait for the job's end rather than for any change.
        #[serde(default)]
        until_end: bool,
    },
    /// Every job known here, newest first.
    JobList,
    /// Cancel a job at every party.
    JobStop {
        /// Job id.
        job: String,
    },
    /// Run a failed or canceled job again, reusing the outputs of tasks that succeeded.
    JobRerun {
        /// Job id.
        job: String,
        /// Rerun from this task (and everything downstream).
        #[serde(default)]
        from: Option<String>,
    },
    /// Accept a job held for manual approval.
    JobApprove {
        /// Job id.
        job: String,
    },
    /// Refuse a job held for manual approval.
    JobReject {
        /// Job id.
        job: String,
        /// Why (shown at every party).
        reason: String,
    },
    /// Log lines of a job: this party's, or another's (if its `share_logs_with` names us).
    JobLog {
        /// Job id.
        job: String,
        /// Whose logs; default this party.
        #[serde(default)]
        party: Option<String>,
    },
    /// This party's metrics of a job.
    MetricList {
        /// Job id.
        job: String,
    },
    /// Stores a CSV file as a table (the daemon reads the file at `path`).
    DataUpload {
        /// Table name.
        name: String,
        /// Absolute path of the CSV file.
        path: String,
        /// The id column.
        id_column: String,
        /// The label column (if the file has it).
        label_column: Option<String>,
        /// Field delimiter (one byte).
        delimiter: u8,
        /// Replace an existing table of that name.
        replace: bool,
    },
    /// This party's tables.
    DataList,
    /// One table's schema and first rows.
    DataShow {
        /// Table name.
        name: String,
        /// How many rows.
        head: u32,
    },
    /// Deletes a table.
    DataDelete {
        /// Table name.
        name: String,
    },
    /// History of a model, newest first, with branch and tag names.
    ModelLog {
        /// Model id.
        model: String,
        /// Only this branch's history (default `main`).
        branch: Option<String>,
        /// Every commit of the model.
        all: bool,
    },
    /// Tags `ID@REV` at every participant (two phases).
    ModelTag {
        /// `ID@REV`.
        rev: String,
        /// Tag name.
        name: String,
        /// Message.
        message: String,
    },
    /// Creates a branch at every participant (two phases).
    ModelBranch {
        /// Model id.
        model: String,
        /// Branch name.
        name: String,
        /// Where it starts (default: the head of `main`).
        from: Option<String>,
    },
    /// Moves a branch back (or forward) at every participant (two phases).
    ModelRollback {
        /// Model id.
        model: String,
        /// Target revision.
        to: String,
        /// Branch to move.
        branch: String,
    },
    /// Differences between two revisions here (params, metrics, artifacts).
    ModelDiff {
        /// `ID@REV`.
        a: String,
        /// `ID@REV`.
        b: String,
    },
    /// Writes one checksummed archive of `ID@REV` (this party's part) to `path`.
    ModelExport {
        /// `ID@REV`.
        rev: String,
        /// Absolute path of the archive to write.
        path: String,
    },
    /// Verifies and stores an archive written by `ModelExport`.
    ModelImport {
        /// Absolute path of the archive.
        path: String,
    },
    /// Deletes a version here (refused while a ref points at it, unless `force`).
    ModelDelete {
        /// Model id.
        model: String,
        /// Version (job id).
        version: String,
        /// Also when refs point at it.
        force: bool,
    },
    /// Asks every participant which version `ID@REV` names there.
    ModelVerify {
        /// `ID@REV`.
        rev: String,
    },
    /// Every move of a model's refs, newest first.
    ModelReflog {
        /// Model id.
        model: String,
        /// Only this ref (`heads/main`, `tags/v1`, or a bare name).
        reference: Option<String>,
    },
    /// An output a task wrote at this party (its latest attempt).
    JobOutput {
        /// Job id.
        job: String,
        /// Task.
        task: String,
        /// Output name (`data`, `model`, `predict_output`, `report`, ...).
        name: String,
    },
    /// This party's models, every version.
    ModelList,
    /// One version of a model (the newest if `version` is None).
    ModelShow {
        /// Model id.
        model: String,
        /// Version (job id).
        version: Option<String>,
    },
    /// From a script operator: send bytes to another party of the task.
    TaskRemote {
        /// The task's token (`CONSORT_TASK_TOKEN`).
        token: String,
        /// `ROLE`, `PARTY` or `ROLE@PARTY`.
        to: String,
        /// Tag.
        tag: String,
        /// Bytes (empty when `path` is given).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Absolute path of a file the daemon streams instead (large payloads).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// From a script operator: receive what other parties sent under a tag (waits).
    TaskGet {
        /// The task's token.
        token: String,
        /// `ROLE`, `PARTY` or `ROLE@PARTY`.
        from: String,
        /// Tag.
        tag: String,
        /// Absolute path the daemon writes the payload to (`PATH.<role@party>` with several
        /// senders) instead of answering with the bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        into: Option<String>,
    },
    /// From a script operator: log a metric point.
    TaskMetric {
        /// The task's token.
        token: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// From a script operator: set a metric's metadata.
    TaskMetricMeta {
        /// The task's token.
        token: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Metadata (JSON text).
        meta: String,
    },
    /// From a script operator: write a line to the task log.
    TaskLog {
        /// The task's token.
        token: String,
        /// The line.
        text: String,
    },
    /// This daemon's exposure, for an operator's audit: identity, the policy in force, who may
    /// read each table, script operators, partners, file modes and listen addresses.
    Security,
    /// Where this daemon's board is, with its login token.
    Board,
    /// `consort serve …`.
    Serve(crate::serving::ServeRequest),
    /// Any request kind this daemon does not know (sent by a newer client).
    #[serde(other)]
    Unknown,
}

/// A message from the daemon to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to a compatible hello.
    Welcome {
        /// The daemon's [`CONTROL_PROTOCOL_VERSION`].
        version: u16,
        /// The daemon's build version.
        daemon_version: String,
    },
    /// Successful answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        response: Response,
    },
    /// A failed request, or a protocol violation (then `id` is absent and the connection closes).
    Error {
        /// The request's id, when the error answers one.
        id: Option<u64>,
        /// What went wrong.
        error: ControlError,
    },
}

/// A stored table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Feature columns.
    pub features: Vec<String>,
    /// Label column, if any.
    pub label: Option<String>,
    /// The file it was uploaded from.
    pub source: String,
    /// When (ms since the epoch).
    pub created_at_ms: u64,
    /// Size on disk.
    pub bytes: u64,
}

/// One part of a model version at this party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPartInfo {
    /// Task of the training job.
    pub task: String,
    /// Component.
    pub component: String,
    /// Role this party played.
    pub role: String,
    /// SHA-256 of the artifact.
    pub artifact: String,
    /// Its size.
    pub bytes: u64,
    /// Params of the run (JSON text).
    pub params: String,
}

/// A version of a model at this party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id.
    pub model_id: String,
    /// Version (the training job's id).
    pub version: String,
    /// Job name.
    pub name: String,
    /// This party.
    pub party: String,
    /// `role:party` of every participant.
    pub parties: Vec<String>,
    /// When it was stored (ms since the epoch).
    pub created_at_ms: u64,
    /// This party's parts.
    pub parts: Vec<ModelPartInfo>,
    /// Scalar metrics at this party (`task/namespace/name`).
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// Successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusInfo),
    /// Answer to [`Request::Shutdown`]: the daemon is stopping.
    ShuttingDown,
    /// Answer to [`Request::Peers`].
    Peers {
        /// One entry per partner.
        peers: Vec<PeerInfo>,
    },
    /// Answer to [`Request::Ping`].
    Ping(PingReport),
    /// Answer to [`Request::Doctor`].
    Doctor {
        /// One report per partner.
        reports: Vec<PingReport>,
    },
    /// Answer to partner add/remove and record put.
    Done {
        /// What was done, for a human.
        message: String,
    },
    /// Answer to [`Request::RecordGet`].
    Record {
        /// The record, if held.
        record: Option<RecordInfo>,
    },
    /// Answer to [`Request::RecordList`].
    Records {
        /// Every record held (values omitted).
        records: Vec<RecordInfo>,
    },
    /// Answer to [`Request::JobSubmit`].
    JobSubmitted {
        /// The new job's id.
        job_id: String,
    },
    /// Answer to [`Request::JobShow`].
    Job(JobInfo),
    /// Answer to [`Request::JobList`].
    Jobs {
        /// Jobs, newest first (tasks omitted).
        jobs: Vec<JobInfo>,
    },
    /// Answer to [`Request::JobLog`].
    JobLog {
        /// Lines in order.
        lines: Vec<LogLineInfo>,
    },
    /// Answer to [`Request::MetricList`].
    Metrics {
        /// Every series.
        metrics: Vec<MetricInfo>,
    },
    /// A table (upload, delete).
    Table {
        /// The table.
        table: TableInfo,
    },
    /// Answer to [`Request::DataList`].
    Tables {
        /// Every table.
        tables: Vec<TableInfo>,
    },
    /// Answer to [`Request::DataShow`].
    TableHead {
        /// The table.
        table: TableInfo,
        /// Column names: id, label (if any), features.
        header: Vec<String>,
        /// The first rows, as text.
        rows: Vec<Vec<String>>,
    },
    /// Answer to [`Request::JobOutput`].
    Output {
        /// The role that wrote it.
        role: String,
        /// Attempt.
        attempt: u32,
        /// Its bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Answer to [`Request::ModelLog`].
    ModelLog {
        /// Commits, newest first.
        entries: Vec<crate::models::ModelLogEntry>,
    },
    /// Answer to [`Request::ModelReflog`].
    ModelReflog {
        /// Ref moves, newest first.
        entries: Vec<crate::models::ReflogInfo>,
    },
    /// Answer to [`Request::ModelDiff`].
    ModelDiff(crate::models::ModelDiffInfo),
    /// Answer to [`Request::ModelTag`], [`Request::ModelBranch`] and [`Request::ModelRollback`].
    ModelMoved(crate::models::MoveReport),
    /// Answer to [`Request::ModelVerify`].
    ModelVerified(crate::models::VerifyReport),
    /// Answer to [`Request::ModelExport`].
    ModelExported(crate::models::ExportReport),
    /// Answer to [`Request::ModelImport`].
    ModelImported(crate::models::ImportReport),
    /// Answer to [`Request::ModelDelete`].
    ModelDeleted(crate::models::DeleteReport),
    /// Answer to [`Request::ModelList`].
    Models {
        /// Every version of every model.
        models: Vec<ModelInfo>,
    },
    /// Answer to [`Request::ModelShow`].
    Model {
        /// The version.
        model: ModelInfo,
    },
    /// Answer to [`Request::TaskGet`]: one part per sending party.
    TaskData {
        /// The parts.
        parts: Vec<TaskPart>,
    },
    /// Answer to [`Request::Serve`].
    Serve(crate::serving::ServeResponse),
    /// Answer to [`Request::Security`].
    Security {
        /// The daemon's exposure (boxed: by far the largest answer).
        report: Box<SecurityReport>,
    },
    /// Answer to [`Request::Board`].
    Board(BoardInfo),
}

/// Where the board is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardInfo {
    /// The board's address with the login token (`http://IP:PORT/?token=…`); None when
    /// `[board] listen` is not configured.
    pub url: Option<String>,
    /// Whether the board only shows (`[board] read_only`).
    pub read_only: bool,
}

/// A job as `consort job show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub job_id: String,
    /// Job (model) name.
    pub name: String,
    /// pending, running, success, failed, canceled or rejected.
    pub status: String,
    /// Who submitted it.
    pub initiator: String,
    /// Role → parties.
    pub parties: std::collections::BTreeMap<String, Vec<String>>,
    /// Submission time (Unix ms).
    pub submitted_at_ms: u64,
    /// Why it was rejected, failed or canceled, naming the party.
    pub reason: Option<String>,
    /// Tasks in dependency order (empty in listings).
    pub tasks: Vec<TaskInfo>,
    /// Changes whenever the daemon's view of the job does (what [`Request::JobWatch`]
    /// compares); only meaningful to the daemon that answered.
    #[serde(default)]
    pub revision: u64,
    /// When the job ended (Unix ms: the last run's end seen here), once it has.
    #[serde(default)]
    pub ended_at_ms: Option<u64>,
}

/// One task of a job, with its state at each party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task name.
    pub name: String,
    /// Component.
    pub component: String,
    /// waiting, running, success, failed or canceled.
    pub status: String,
    /// State per party (a party with two roles shows its least advanced run).
    pub parties: std::collections::BTreeMap<String, PartyRunInfo>,
    /// The tasks that must succeed first (inputs and `depends_on`).
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Each run's merged parameters (`role@party` → a JSON object), as the job file set them
    /// for every party.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, crate::json_text::JsonText>,
}

/// A task's run at one party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyRunInfo {
    /// waiting, running, success, failed or canceled.
    pub state: String,
    /// Attempt, from 1.
    pub attempt: u32,
    /// Start (Unix ms).
    pub started_at: Option<u64>,
    /// Seconds from start to end (or to now while running).
    pub elapsed_s: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A task log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLineInfo {
    /// Unix ms.
    pub at_ms: u64,
    /// Task.
    pub task: String,
    /// Role of the run.
    pub role: String,
    /// Attempt.
    pub attempt: u32,
    /// Text.
    pub line: String,
}

/// A metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricInfo {
    /// Task.
    pub task: String,
    /// Role of the run that logged it.
    pub role: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Metadata set with `set_metric_meta`.
    pub meta: Option<crate::json_text::JsonText>,
}

/// A partner as seen by this daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Partner party name.
    pub party: String,
    /// Its PeerId.
    pub peer_id: String,
    /// Whether a connection is open and the partner identified itself on it.
    pub connected: bool,
    /// Known addresses (configured and discovered).
    pub addrs: Vec<String>,
    /// Latest ping round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// When we last heard from it (Unix milliseconds).
    pub last_seen: Option<u64>,
    /// Messages from it that were dropped (identity mismatch, bad signature, malformed).
    pub rejected_messages: u64,
    /// `config` (consort.toml) or `cli` (`consort partner add`).
    pub source: String,
    /// How it is reached while connected: `direct`, `hole punched` or `relayed via PARTY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The partner's address on that connection (TCP or QUIC; a circuit address when relayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// How the latest hole punch with it went (`succeeded`, or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hole_punch: Option<String>,
    /// Why it is unreachable, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// How partners reach this daemon: its NAT status, its slots at partner relays and what it
/// relays for partners (`consort status`, `peers`, `doctor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachabilityInfo {
    /// `public`, `private` or `unknown`.
    pub nat: String,
    /// `autonat` (partners tried to dial back) or `config` (`[network] nat`).
    pub nat_source: String,
    /// The address partners dialled back, when public.
    pub public_addr: Option<String>,
    /// Addresses partners observed this daemon at.
    pub observed: Vec<String>,
    /// Slots at partner relays.
    pub relay_slots: Vec<RelaySlotInfo>,
    /// What this daemon relays for partners, when `[network] relay = true`.
    pub relay: Option<RelayServiceInfo>,
}

/// A slot at a partner relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelaySlotInfo {
    /// The relay's party.
    pub relay: String,
    /// `requested`, `reserved` or `failed: WHY`.
    pub state: String,
    /// The address partners reach this daemon at through it, once reserved.
    pub addr: Option<String>,
}

/// What a relay carries for its partners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayServiceInfo {
    /// Partners holding a slot here.
    pub reservations: Vec<String>,
    /// Circuits open now.
    pub circuits: u64,
    /// Circuits opened since the daemon started.
    pub circuits_total: u64,
    /// Slots and circuits refused since the daemon started.
    pub denied_total: u64,
    /// Circuits open at once, at most.
    pub max_circuits: u64,
    /// Bytes one circuit may carry.
    pub max_circuit_bytes: u64,
    /// Seconds one circuit may stay open.
    pub max_circuit_s: u64,
}

/// Result of pinging one partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    /// Partner party name.
    pub party: String,
    /// Its configured PeerId.
    pub peer_id: String,
    /// Whether a request round trip succeeded.
    pub ok: bool,
    /// Round trip of the ping request, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// The partner's consortd version.
    pub version: Option<String>,
    /// The partner's identify protocol and agent version.
    pub protocol: Option<String>,
    /// Plain-language diagnosis.
    pub diagnosis: String,
    /// How it is reached: `direct`, `hole punched` or `relayed via PARTY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// A replicated record, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// Party that wrote it.
    pub origin: String,
    /// Key.
    pub key: String,
    /// Version.
    pub version: u64,
    /// Writer's clock, Unix milliseconds.
    pub written_at_ms: u64,
    /// Value bytes (empty in listings).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// What `consort status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// This daemon's party name.
    pub party: String,
    /// This daemon's libp2p PeerId (base58), which partners list.
    pub peer_id: String,
    /// Build version of `consortd`.
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// Listen multiaddrs.
    pub listen: Vec<String>,
    /// Data directory (absolute).
    pub data_dir: String,
    /// Control socket path.
    pub socket: String,
    /// Process id of the daemon.
    pub pid: u32,
    /// Records held by each actor's store, by actor name.
    pub stores: Vec<StoreCount>,
    /// How partners reach this daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability: Option<Box<ReachabilityInfo>>,
}

/// Number of records an actor's store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreCount {
    /// Actor name (`scheduler`, `executor`, ...).
    pub actor: String,
    /// Records in the trees it owns.
    pub records: u64,
}

/// An error that travels to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// Machine-readable class of the error.
    pub code: ErrorCode,
    /// One line for a human.
    pub message: String,
}

impl ControlError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Classes of control errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame could not be decoded.
    BadFrame,
    /// The frame exceeded the size limit.
    FrameTooLarge,
    /// The client speaks another protocol or protocol version.
    VersionMismatch,
    /// The first message was not a hello, or a second hello came.
    HelloRequired,
    /// The request kind is not known to this daemon.
    UnknownRequest,
    /// The daemon is shutting down and takes no new work.
    ShuttingDown,
    /// The daemon failed to serve the request.
    Internal,
    /// The request's arguments are invalid.
    InvalidArgument,
    /// The named thing (partner, record) does not exist.
    NotFound,
    /// The network did not deliver in time or the partner is unreachable.
    Unreachable,
    /// Any code this client does not know (sent by a newer daemon).
    #[serde(other)]
    Other,
}

/// What `consort security` shows: what this daemon exposes, and to whom.
///
/// Read from the configuration the daemon started with (not the file as it is now), its
/// tables, and the file system; `warnings` lists everything that needs an operator's attention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityReport {
    /// This daemon's party name.
    pub party: String,
    /// This daemon's PeerId (base58): partners list it to let us connect.
    pub peer_id: String,
    /// The configuration file the policy below was read from.
    #[serde(default)]
    pub config_path: String,
    /// `[policy]` in force.
    #[serde(default)]
    pub policy: PolicyReport,
    /// Every uploaded table, then every table `[policy.tables]` names that is not uploaded,
    /// each with the partners whose jobs may read it.
    #[serde(default)]
    pub tables: Vec<TableExposure>,
    /// `[operators.NAME]`: the only script operators jobs may run here.
    #[serde(default)]
    pub operators: Vec<OperatorReport>,
    /// Partners (configured and added at run time): the only peers allowed to connect.
    #[serde(default)]
    pub partners: Vec<PartnerReport>,
    /// The control socket: any local user who can open it drives the daemon.
    #[serde(default)]
    pub socket: FileReport,
    /// The identity key: whoever reads it can speak as this party.
    #[serde(default)]
    pub identity_key: FileReport,
    /// The data directory (tables, models, database).
    #[serde(default)]
    pub data_dir: FileReport,
    /// The configuration file: whoever writes it sets the policy at the next start.
    #[serde(default)]
    pub config_file: FileReport,
    /// Entries under the data directory that group or others may access.
    #[serde(default)]
    pub data_dir_scan: DataDirScan,
    /// Listen multiaddrs as configured.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Addresses actually bound (a configured port 0 shows the port chosen).
    #[serde(default)]
    pub listening: Vec<String>,
    /// What needs attention, one line each; empty when nothing does.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `[policy]` of consort.toml, as in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Parties whose job proposals are considered (`*`: every partner).
    #[serde(default)]
    pub accept_from: Vec<String>,
    /// Components partners may run here (empty: every built-in component).
    #[serde(default)]
    pub components: Vec<String>,
    /// Every proposal waits for `consort job approve`.
    #[serde(default)]
    pub manual_approval: bool,
    /// Parties allowed to read this party's task logs (`*`: every partner).
    #[serde(default)]
    pub share_logs_with: Vec<String>,
    /// `[policy.tables]`: table (or `*`) → parties (or `*`) whose jobs may read it.
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, Vec<String>>,
}

/// Who may read one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableExposure {
    /// Table name.
    pub name: String,
    /// Whether the table is stored here (a policy may name a table not uploaded yet).
    #[serde(default)]
    pub uploaded: bool,
    /// Partners whose jobs may read it (`*`: every partner); empty: jobs of this party alone.
    #[serde(default)]
    pub readers: Vec<String>,
    /// Which rule decides.
    #[serde(default)]
    pub rule: TableRule,
}

/// The `[policy.tables]` rule that applies to a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TableRule {
    /// An entry naming the table.
    Named,
    /// The `"*"` entry (tables without an entry of their own).
    Wildcard,
    /// No entry: the table may only be used in jobs of this party alone.
    #[default]
    Default,
    /// A rule this client does not know (sent by a newer daemon).
    #[serde(other)]
    Other,
}

/// A registered script operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorReport {
    /// Name (jobs say `component: script:NAME`).
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Names of the extra environment variables (values omitted: they may be secrets).
    #[serde(default)]
    pub env: Vec<String>,
    /// Kill after this many seconds.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// A partner allowed to connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerReport {
    /// Party name.
    pub party: String,
    /// The PeerId bound to it.
    pub peer_id: String,
    /// Configured addresses.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// `config` (consort.toml) or `cli` (`consort partner add`).
    #[serde(default)]
    pub source: String,
}

/// A file or directory the daemon relies on, as the daemon sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// Absolute path.
    pub path: String,
    /// Permission bits (`st_mode & 0o7777`); None when it cannot be examined.
    #[serde(default)]
    pub mode: Option<u32>,
    /// Owner's uid.
    #[serde(default)]
    pub owner_uid: Option<u32>,
    /// Owner's user name, when known.
    #[serde(default)]
    pub owner: Option<String>,
    /// What is wrong with it; None when nothing is.
    #[serde(default)]
    pub warning: Option<String>,
}

/// A walk of the data directory looking for entries group or others may access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataDirScan {
    /// Entries examined.
    #[serde(default)]
    pub scanned: u64,
    /// Entries with any group or other permission bit.
    #[serde(default)]
    pub exposed: u64,
    /// Some of them (paths).
    #[serde(default)]
    pub examples: Vec<String>,
    /// The walk stopped at its limit before the end.
    #[serde(default)]
    pub truncated: bool,
}

/// What one party sent to a script operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPart {
    /// `role@party` of the sender.
    pub from: String,
    /// Bytes (empty when written to `path`).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Where the daemon wrote it, for [`Request::TaskGet`] with `into`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameCodec, encode_frame};
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(msg: &T) -> T {
        let frame = encode_frame(msg, 1 << 20).expect("encode");
        let mut codec = FrameCodec::<T, T>::new(1 << 20);
        codec
            .decode(&mut BytesMut::from(&frame[..]))
            .expect("decode")
            .expect("one frame")
    }

    #[test]
    fn client_messages_round_trip() {
        let msgs = [
            ClientMessage::Hello {
                protocol: CONTROL_PROTOCOL.into(),
                version: CONTROL_PROTOCOL_VERSION,
                client: "test".into(),
            },
            ClientMessage::Request {
                id: 1,
                request: Request::Status,
            },
            ClientMessage::Request {
                id: u64::MAX,
                request: Request::Shutdown,
            },
        ];
        for msg in msgs {
            assert_eq!(round_trip(&msg), msg);
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let status = StatusInfo {
            party: "bank-a".into(),
            peer_id: "12D3KooW".into(),
            version: "0.1.0".into(),
            uptime_s: 1.5,
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            data_dir: "/tmp/x".into(),
            socket: "/tmp/x/consortd.sock".into(),
            pid: 42,
            stores: vec![StoreCount {
                actor: "scheduler".into(),
                records: 3,
            }],
            reachability: None,
        };
        let msgs = [
            ServerMessage::Welcome {
                version: 1,
                daemon_version: "0.1.0".into(),
            },
            ServerMessage::Response {
                id: 9,
                response: Response::Status(status),
            },
            ServerMessage::Response {
                id: 10,
                response: Response::ShuttingDown,
            },
            ServerMessage::Error {
                id: None,
                error: ControlError::new(ErrorCode::VersionMismatch, "v2 vs v1"),
            },
        ];
        for msg in msgs {
            assert_eq!(round_trip(&msg), msg);
        }
    }

    #[test]
    fn security_report_round_trips_and_old_fields_default() {
        let mut report = SecurityReport {
            party: "bank-a".into(),
            peer_id: "12D3KooW".into(),
            tables: vec![TableExposure {
                name: "t".into(),
                uploaded: true,
                readers: vec!["insurer-b".into()],
                rule: TableRule::Named,
            }],
            ..SecurityReport::default()
        };
        report.socket.mode = Some(0o600);
        let msg = ServerMessage::Response {
            id: 3,
            response: Response::Security {
                report: Box::new(report),
            },
        };
        assert_eq!(round_trip(&msg), msg);
        assert_eq!(
            round_trip(&ClientMessage::Request {
                id: 4,
                request: Request::Security
            }),
            ClientMessage::Request {
                id: 4,
                request: Request::Security
            }
        );

        // A report from a daemon that knew only party and peer id still decodes.
        #[derive(Serialize)]
        struct Old {
            party: &'static str,
            peer_id: &'static str,
        }
        let bytes = rmp_serde::to_vec_named(&Old {
            party: "a",
            peer_id: "p",
        })
        .expect("encode");
        let got: SecurityReport = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(got.party, "a");
        assert!(got.tables.is_empty() && got.socket.mode.is_none());
    }

    /// A newer client's request decodes as `Unknown` instead of failing the whole frame.
    #[test]
    fn unknown_request_kind_decodes_as_unknown() {
        #[derive(Serialize)]
        struct FutureRequest {
            kind: &'static str,
            extra: u32,
        }
        #[derive(Serialize)]
        struct FutureMessage {
            r#type: &'static str,
            id: u64,
            request: FutureRequest,
        }
        let msg = FutureMessage {
            r#type: "request",
            id: 5,
            request: FutureRequest {
                kind: "frobnicate",
                extra: 1,
            },
        };
        let frame = encode_frame(&msg, 1024).expect("encode");
        let mut codec = FrameCodec::<ClientMessage, ClientMessage>::new(1024);
        let got = codec
            .decode(&mut BytesMut::from(&frame[..]))
            .expect("decode");
        assert_eq!(
            got,
            Some(ClientMessage::Request {
                id: 5,
                request: Request::Unknown
            })
        );
    }

    #[test]
    fn unknown_error_code_decodes_as_other() {
        #[derive(Serialize)]
        struct E {
            code: &'static str,
            message: &'static str,
        }
        let bytes = rmp_serde::to_vec_named(&E {
            code: "from_the_future",
            message: "m",
        })
        .expect("encode");
        let err: ControlError = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(err.code, ErrorCode::Other);
    }
}
