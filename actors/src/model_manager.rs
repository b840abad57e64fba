//! The ModelManager: owns this party's model commits, refs and artifacts, and is the only
//! actor that reads or changes them.
//!
//! Messages:
//! - jobs: [`CommitJob`] (store a successful job's models, once), [`ResolveInput`] (the artifact
//!   a task's `model:` names, for parties that all trained the model);
//! - history ([`history`]): [`ListModels`], [`ShowModel`], [`ModelLog`], [`ModelReflog`],
//!   [`ModelDiff`], [`ModelExport`], [`ModelImport`], [`ModelDelete`];
//! - agreement, both sides: [`Agree`] and [`Verify`] (this party coordinates), and
//!   [`PeerRequest`](crate::network_actor::PeerRequest) on [`MODEL_TOPIC`](crate::model_rpc::MODEL_TOPIC)
//!   (a participant asks us to prepare, commit, abort or resolve);
//! - serving: [`LoadForServing`] (this party's parts of a version, for the Serving actor);
//! - [`StoreStats`].
//!
//! Every handler does its sled and file work on a blocking thread.

mod agree;
mod commit;
pub mod history;
mod input;
mod peer;
mod serving;

use std::sync::Arc;

use actix::{Actor, Context, Handler, Recipient};
use consort_protocol::PartyName;
use consort_storage::{Models, Store, TreeName};

pub use agree::{Agree, Verify};
pub use commit::{CommitJob, RunOutput};
pub use history::{
    ListModels, ModelDelete, ModelDiff, ModelExport, ModelImport, ModelLog, ModelReflog, ShowModel,
};
pub use input::ResolveInput;
pub use serving::{LoadForServing, PartBytes, ServingModel};

use crate::failure::Failure;
use crate::network::NetworkClient;
use crate::stats::{self, StoreStats};
use crate::tracker::Metrics;
use peer::Prepared;

/// What a working ModelManager needs.
pub struct ModelDeps {
    /// This party.
    pub me: PartyName,
    /// The model store.
    pub models: Models,
    /// The network (to coordinate agreement).
    pub net: NetworkClient,
    /// The Tracker's metrics (a version keeps its job's scalar metrics).
    pub metrics: Recipient<Metrics>,
}

/// Shared with the handlers' futures and blocking threads.
pub(crate) struct Inner {
    pub(crate) deps: ModelDeps,
    /// Moves prepared here for partners, waiting for their commit.
    pub(crate) prepared: Prepared,
}

/// Keeps this party's model commits, artifacts and refs.
pub struct ModelManager {
    store: Store,
    inner: Option<Arc<Inner>>,
}

impl ModelManager {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Models];

    /// A ModelManager that only answers store statistics (tests, tools).
    pub fn new(store: Store) -> Self {
        Self { store, inner: None }
    }

    /// A working ModelManager.
    pub fn with_deps(store: Store, deps: ModelDeps) -> Self {
        Self {
            store,
            inner: Some(Arc::new(Inner {
                deps,
                prepared: Prepared::default(),
            })),
        }
    }

    pub(crate) fn inner(&self) -> Result<Arc<Inner>, Failure> {
        self.inner
            .clone()
            .ok_or_else(|| Failure::Internal("the model manager is not configured".into()))
    }
}

impl Actor for ModelManager {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        tracing::debug!(actor = "model_manager", "actor started");
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for ModelManager {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("model_manager", &self.store, Self::TREES)
    }
}
