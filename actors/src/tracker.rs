//! The Tracker: owns this party's task logs and metrics, and answers every question about them.
//!
//! Messages: [`JobLog`] (a job's log lines, here or at a partner), [`Metrics`] (a job's metric
//! series), [`PeerRequest`] on [`LOGS_TOPIC`] (a partner asks for our lines of a job: answered
//! only to a participant of the job that `policy.share_logs_with` names), and [`StoreStats`].
//!
//! The one exception to "only the Tracker touches its trees": task threads append lines and
//! metric points through a [`LogWriter`] (see there for why).

mod peer_logs;
mod writer;

use actix::{Actor, Context, Handler, Message, Recipient, ResponseFuture};
use consort_protocol::PartyName;
use consort_protocol::jobs::LOGS_TOPIC;
use consort_protocol::peer::PeerResponse;
use consort_storage::{LogLine, MetricKey, MetricSeries, Store, Tracking, TreeName};

pub use writer::LogWriter;

use crate::failure::{Failure, blocking};
use crate::network::NetworkClient;
use crate::network_actor::PeerRequest;
use crate::scheduler::TakesPart;
use crate::stats::{self, StoreStats};

/// What a working Tracker needs.
pub struct TrackerDeps {
    /// This party.
    pub me: PartyName,
    /// The logs and metrics.
    pub tracking: Tracking,
    /// The network (to ask partners for their lines).
    pub net: NetworkClient,
    /// `policy.share_logs_with` (`*` for every partner).
    pub share_logs_with: Vec<String>,
    /// Does a party take part in a job? (asked of the Scheduler before sharing lines)
    pub takes_part: Recipient<TakesPart>,
}

/// Stores task logs and metrics and answers queries about them.
pub struct Tracker {
    store: Store,
    deps: Option<std::sync::Arc<TrackerDeps>>,
}

impl Tracker {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Logs, TreeName::Metrics];

    /// A Tracker that only answers store statistics (tests, tools).
    pub fn new(store: Store) -> Self {
        Self { store, deps: None }
    }

    /// A working Tracker.
    pub fn with_deps(store: Store, deps: TrackerDeps) -> Self {
        Self {
            store,
            deps: Some(std::sync::Arc::new(deps)),
        }
    }

    fn deps(&self) -> Result<std::sync::Arc<TrackerDeps>, Failure> {
        self.deps
            .clone()
            .ok_or_else(|| Failure::Internal("the tracker is not configured".into()))
    }
}

impl Actor for Tracker {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        tracing::debug!(actor = "tracker", "actor started");
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Tracker {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("tracker", &self.store, Self::TREES)
    }
}

/// A job's log lines: this party's, or those of `party` (asked over the network).
#[derive(Debug, Clone)]
pub struct JobLog {
    /// The job.
    pub job: String,
    /// Another party whose lines are wanted; `None` or this party: ours.
    pub party: Option<String>,
}

impl Message for JobLog {
    type Result = Result<Vec<LogLine>, Failure>;
}

/// Handler for [`JobLog`]: reads ours on a blocking thread, or asks the partner.
impl Handler<JobLog> for Tracker {
    type Result = ResponseFuture<Result<Vec<LogLine>, Failure>>;

    fn handle(&mut self, msg: JobLog, _ctx: &mut Context<Self>) -> Self::Result {
        let deps = self.deps();
        Box::pin(async move {
            let deps = deps?;
            let remote = msg.party.filter(|p| p.as_str() != deps.me.as_str());
            match remote {
                None => {
                    let tracking = deps.tracking.clone();
                    blocking(move || tracking.lines(&msg.job).map_err(Failure::internal)).await
                }
                Some(party) => peer_logs::ask(&deps.net, &party, &msg.job).await,
            }
        })
    }
}

/// A job's metric series at this party.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The job.
    pub job: String,
}

impl Message for Metrics {
    type Result = Result<Vec<(MetricKey, MetricSeries)>, Failure>;
}

/// Handler for [`Metrics`]: reads them on a blocking thread.
impl Handler<Metrics> for Tracker {
    type Result = ResponseFuture<Result<Vec<(MetricKey, MetricSeries)>, Failure>>;

    fn handle(&mut self, msg: Metrics, _ctx: &mut Context<Self>) -> Self::Result {
        let deps = self.deps();
        Box::pin(async move {
            let tracking = deps?.tracking.clone();
            blocking(move || tracking.metrics(&msg.job).map_err(Failure::internal)).await
        })
    }
}

/// Handler for a partner's [`PeerRequest`] on [`LOGS_TOPIC`]: our lines of a job, if the
/// policy shares them with the partner and it takes part in the job.
impl Handler<PeerRequest> for Tracker {
    type Result = ResponseFuture<PeerResponse>;

    fn handle(&mut self, msg: PeerRequest, _ctx: &mut Context<Self>) -> Self::Result {
        let deps = self.deps();
        Box::pin(async move {
            match deps {
                Ok(deps) => peer_logs::answer(deps, msg.party, msg.body).await,
                Err(e) => PeerResponse::Error {
                    message: format!("{LOGS_TOPIC}: {e}"),
                },
            }
        })
    }
}
