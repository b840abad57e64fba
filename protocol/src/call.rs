//! Typed control requests: one struct per [`Request`] kind, each paired with its reply type.
//!
//! The wire stays one [`Request`] and one [`Response`] enum (what the daemon matches on and what
//! older clients send); these structs are how a client builds a request and learns what the
//! answer is: `client.call(call::JobShow { job })` returns a [`JobInfo`], never a [`Response`]
//! to match. A reply of the wrong kind is detected in one place, [`Call::reply`].

use crate::control::{
    BoardInfo, JobInfo, LogLineInfo, MetricInfo, ModelInfo, PeerInfo, PingReport, RecordInfo,
    SecurityReport, StatusInfo, TableInfo, TaskPart,
};
use crate::models::{
    DeleteReport, ExportReport, ImportReport, ModelDiffInfo, ModelLogEntry, MoveReport, ReflogInfo,
    VerifyReport,
};
use crate::{Request, Response};

/// A request whose answer has a known type.
pub trait Call: Into<Request> {
    /// What a successful answer carries.
    type Reply;

    /// The reply carried by `response`, or `response` itself (boxed: it is the rare path) when
    /// it answers another kind of request.
    fn reply(response: Response) -> Result<Self::Reply, Box<Response>>;
}

/// Declares one struct per request (the fields of its [`Request`] variant), its conversion to
/// the wire enum, and how its reply is taken out of a [`Response`].
macro_rules! calls {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)? }
            -> $reply:ty { $pat:pat => $val:expr }
    )*) => {$(
        $(#[$meta])*
        #[doc = concat!("\n\nSent as [`Request::", stringify!($name), "`].")]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name { $( $(#[$fmeta])* pub $field: $fty ),* }

        impl From<$name> for Request {
            fn from(r: $name) -> Request {
                let $name { $($field),* } = r;
                Request::$name { $($field),* }
            }
        }

        impl Call for $name {
            type Reply = $reply;

            fn reply(response: Response) -> Result<$reply, Box<Response>> {
                match response {
                    $pat => Ok($val),
                    other => Err(Box::new(other)),
                }
            }
        }
    )*};
}

calls! {
    /// Who and how the daemon is.
    Status {} -> StatusInfo { Response::Status(s) => s }
    /// Stop the daemon gracefully.
    Shutdown {} -> () { Response::ShuttingDown => () }
    /// Partners and their connection state.
    Peers {} -> Vec<PeerInfo> { Response::Peers { peers } => peers }
    /// Dial a partner and measure a request round trip.
    Ping {
        /// The partner's party name.
        party: String,
    } -> PingReport { Response::Ping(report) => report }
    /// Ping every partner and diagnose the unreachable ones.
    Doctor {} -> Vec<PingReport> { Response::Doctor { reports } => reports }
    /// Add (or replace) a partner. Replies what was done.
    PartnerAdd {
        /// Party name.
        party: String,
        /// Its PeerId.
        peer_id: String,
        /// Multiaddrs to dial.
        addrs: Vec<String>,
    } -> String { Response::Done { message } => message }
    /// Remove a partner. Replies what was done.
    PartnerRemove {
        /// Party name.
        party: String,
    } -> String { Response::Done { message } => message }
    /// Write one of this party's replicated records; replies the record as stored.
    RecordPut {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    } -> Option<RecordInfo> { Response::Record { record } => record }
    /// Read a replicated record (None: not held here).
    RecordGet {
        /// Party that wrote it.
        origin: String,
        /// Key.
        key: String,
    } -> Option<RecordInfo> { Response::Record { record } => record }
    /// List every replicated record held here (values omitted).
    RecordList {} -> Vec<RecordInfo> { Response::Records { records } => records }
    /// Submit a job file; replies the new job's id.
    JobSubmit {
        /// The job file's text (YAML or JSON).
        spec: String,
    } -> String { Response::JobSubmitted { job_id } => job_id }
    /// One job with its tasks × parties matrix.
    JobShow {
        /// Job id.
        job: String,
    } -> JobInfo { Response::Job(info) => info }
    /// The job once it differs from `revision` (or after `timeout_ms`, at most 60 s).
    JobWatch {
        /// Job id.
        job: String,
        /// The revision last seen (0: none).
        revision: u64,
        /// How long to wait for a change, in ms.
        timeout_ms: u64,
        /// Wait for the job's end rather than for any change.
        until_end: bool,
    } -> JobInfo { Response::Job(info) => info }
    /// Every job known here, newest first.
    JobList {} -> Vec<JobInfo> { Response::Jobs { jobs } => jobs }
    /// Cancel a job at every party. Replies what was done.
    JobStop {
        /// Job id.
        job: String,
    } -> String { Response::Done { message } => message }
    /// Run a failed or canceled job again. Replies what was done.
    JobRerun {
        /// Job id.
        job: String,
        /// Rerun from this task.
        from: Option<String>,
    } -> String { Response::Done { message } => message }
    /// Accept a job held for manual approval. Replies what was done.
    JobApprove {
        /// Job id.
        job: String,
    } -> String { Response::Done { message } => message }
    /// Refuse a job held for manual approval. Replies what was done.
    JobReject {
        /// Job id.
        job: String,
        /// Why.
        reason: String,
    } -> String { Response::Done { message } => message }
    /// Log lines of a job.
    JobLog {
        /// Job id.
        job: String,
        /// Whose logs; default this party.
        party: Option<String>,
    } -> Vec<LogLineInfo> { Response::JobLog { lines } => lines }
    /// This party's metrics of a job.
    MetricList {
        /// Job id.
        job: String,
    } -> Vec<MetricInfo> { Response::Metrics { metrics } => metrics }
    /// Store a CSV file as a table; replies the table.
    DataUpload {
        /// Table name.
        name: String,
        /// Absolute path of the CSV file.
        path: String,
        /// The id column.
        id_column: String,
        /// The label column.
        label_column: Option<String>,
        /// Field delimiter.
        delimiter: u8,
        /// Replace an existing table of that name.
        replace: bool,
    } -> TableInfo { Response::Table { table } => table }
    /// This party's tables.
    DataList {} -> Vec<TableInfo> { Response::Tables { tables } => tables }
    /// One table's schema and first rows.
    DataShow {
        /// Table name.
        name: String,
        /// How many rows.
        head: u32,
    } -> TableHead {
        Response::TableHead { table, header, rows } => TableHead { table, header, rows }
    }
    /// Delete a table; replies the deleted table.
    DataDelete {
        /// Table name.
        name: String,
    } -> TableInfo { Response::Table { table } => table }
    /// History of a model, newest first.
    ModelLog {
        /// Model id.
        model: String,
        /// Only this branch's history.
        branch: Option<String>,
        /// Every commit of the model.
        all: bool,
    } -> Vec<ModelLogEntry> { Response::ModelLog { entries } => entries }
    /// Tag `ID@REV` at every participant.
    ModelTag {
        /// `ID@REV`.
        rev: String,
        /// Tag name.
        name: String,
        /// Message.
        message: String,
    } -> MoveReport { Response::ModelMoved(report) => report }
    /// Create a branch at every participant.
    ModelBranch {
        /// Model id.
        model: String,
        /// Branch name.
        name: String,
        /// Where it starts.
        from: Option<String>,
    } -> MoveReport { Response::ModelMoved(report) => report }
    /// Move a branch at every participant.
    ModelRollback {
        /// Model id.
        model: String,
        /// Target revision.
        to: String,
        /// Branch to move.
        branch: String,
    } -> MoveReport { Response::ModelMoved(report) => report }
    /// Differences between two revisions here.
    ModelDiff {
        /// `ID@REV`.
        a: String,
        /// `ID@REV`.
        b: String,
    } -> ModelDiffInfo { Response::ModelDiff(diff) => diff }
    /// Write an archive of `ID@REV` (this party's part).
    ModelExport {
        /// `ID@REV`.
        rev: String,
        /// Absolute path of the archive to write.
        path: String,
    } -> ExportReport { Response::ModelExported(report) => report }
    /// Verify and store an archive.
    ModelImport {
        /// Absolute path of the archive.
        path: String,
    } -> ImportReport { Response::ModelImported(report) => report }
    /// Delete a version here.
    ModelDelete {
        /// Model id.
        model: String,
        /// Version (job id).
        version: String,
        /// Also when refs point at it.
        force: bool,
    } -> DeleteReport { Response::ModelDeleted(report) => report }
    /// Ask every participant which version `ID@REV` names there.
    ModelVerify {
        /// `ID@REV`.
        rev: String,
    } -> VerifyReport { Response::ModelVerified(report) => report }
    /// Every move of a model's refs, newest first.
    ModelReflog {
        /// Model id.
        model: String,
        /// Only this ref.
        reference: Option<String>,
    } -> Vec<ReflogInfo> { Response::ModelReflog { entries } => entries }
    /// An output a task wrote at this party.
    JobOutput {
        /// Job id.
        job: String,
        /// Task.
        task: String,
        /// Output name.
        name: String,
    } -> Output { Response::Output { role, attempt, data } => Output { role, attempt, data } }
    /// This party's models, every version.
    ModelList {} -> Vec<ModelInfo> { Response::Models { models } => models }
    /// One version of a model.
    ModelShow {
        /// Model id.
        model: String,
        /// Version (the newest if None).
        version: Option<String>,
    } -> ModelInfo { Response::Model { model } => model }
    /// From a script operator: send bytes to another party of the task.
    TaskRemote {
        /// The task's token.
        token: String,
        /// `ROLE`, `PARTY` or `ROLE@PARTY`.
        to: String,
        /// Tag.
        tag: String,
        /// Bytes (empty when `path` is given).
        data: Vec<u8>,
        /// A file the daemon streams instead.
        path: Option<String>,
    } -> String { Response::Done { message } => message }
    /// From a script operator: receive what other parties sent under a tag.
    TaskGet {
        /// The task's token.
        token: String,
        /// `ROLE`, `PARTY` or `ROLE@PARTY`.
        from: String,
        /// Tag.
        tag: String,
        /// Where the daemon writes the payload instead.
        into: Option<String>,
    } -> Vec<TaskPart> { Response::TaskData { parts } => parts }
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
    } -> String { Response::Done { message } => message }
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
    } -> String { Response::Done { message } => message }
    /// From a script operator: write a line to the task log.
    TaskLog {
        /// The task's token.
        token: String,
        /// The line.
        text: String,
    } -> String { Response::Done { message } => message }
    /// This daemon's exposure, for an operator's audit.
    Security {} -> Box<SecurityReport> { Response::Security { report } => report }
    /// Where the board is, with its login token.
    Board {} -> BoardInfo { Response::Board(info) => info }
}

/// Reply to [`DataShow`]: a table's schema and first rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableHead {
    /// The table.
    pub table: TableInfo,
    /// Column names: id, label (if any), features.
    pub header: Vec<String>,
    /// The first rows, as text.
    pub rows: Vec<Vec<String>>,
}

/// Reply to [`JobOutput`].
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The role that wrote it.
    pub role: String,
    /// Attempt.
    pub attempt: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_builds_its_request_and_takes_its_reply() {
        let req: Request = JobShow { job: "j".into() }.into();
        assert_eq!(req, Request::JobShow { job: "j".into() });
        assert_eq!(Request::from(Status {}), Request::Status);
        assert_eq!(
            JobSubmit::reply(Response::JobSubmitted { job_id: "x".into() }),
            Ok("x".to_owned())
        );
        // Another kind of answer comes back untouched, for the caller's error.
        assert_eq!(
            JobSubmit::reply(Response::ShuttingDown),
            Err(Box::new(Response::ShuttingDown))
        );
        assert_eq!(Shutdown::reply(Response::ShuttingDown), Ok(()));
    }
}

/// `consort serve …`: one request type, its answer one of [`ServeResponse`]'s kinds.
///
/// [`ServeResponse`]: crate::serving::ServeResponse
#[derive(Debug, Clone, PartialEq)]
pub struct Serve(pub crate::serving::ServeRequest);

impl From<Serve> for Request {
    fn from(r: Serve) -> Request {
        Request::Serve(r.0)
    }
}

impl Call for Serve {
    type Reply = crate::serving::ServeResponse;

    fn reply(response: Response) -> Result<Self::Reply, Box<Response>> {
        match response {
            Response::Serve(r) => Ok(r),
            other => Err(Box::new(other)),
        }
    }
}
