//! Consort's actors and the messages between them.
//!
//! Each actor owns the sled trees of its concern and runs on the actix System of the daemon.
//! Handlers never block: CPU-heavy work goes to blocking threads. The Scheduler, Executor,
//! Tracker and ModelManager run jobs and keep models; the NetworkActor routes partners'
//! messages to them; Serving deploys models and answers inference requests.

pub mod executor;
mod failure;
pub mod model_manager;
pub mod model_rpc;
pub mod network;
pub mod network_actor;
pub mod scheduler;
pub mod serving;
mod stats;
pub mod table_keeper;
pub mod tracker;

pub use executor::Executor;
pub use failure::Failure;
pub use model_manager::ModelManager;
pub use network_actor::{ChannelInbox, NetworkActor, NetworkDeps, PeerRequest, Routes};
pub use scheduler::Scheduler;
pub use serving::Serving;
pub use stats::{ActorError, StoreStats};
pub use table_keeper::TableKeeper;
pub use tracker::Tracker;

use std::path::PathBuf;

use actix::{Actor, Addr, AsyncContext};
use consort_protocol::PartyName;
use consort_protocol::control::StoreCount;
use consort_protocol::jobs::{CHANNEL_TOPIC, LOGS_TOPIC};
use consort_storage::{Mailbox, PartnerOverrides, RecordStore, Store, Tracking};

use executor::ExecDeps;
use model_manager::ModelDeps;
use model_rpc::MODEL_TOPIC;
use network::{NetworkClient, NetworkEvent};
use scheduler::{Policy, SchedulerDeps};
use tracker::{LogWriter, TrackerDeps};

/// What the job machinery needs from the daemon.
pub struct JobDeps {
    /// This party.
    pub me: PartyName,
    /// The network.
    pub net: NetworkClient,
    /// Its events.
    pub events: tokio::sync::mpsc::Receiver<NetworkEvent>,
    /// Replicated records.
    pub records: RecordStore,
    /// Partners added or removed at run time.
    pub overrides: PartnerOverrides,
    /// This party's PeerId (base58).
    pub peer_id: String,
    /// Data-channel mailbox (one handle per process).
    pub mailbox: Mailbox,
    /// Logs and metrics.
    pub tracking: Tracking,
    /// Policy.
    pub policy: Policy,
    /// `<data dir>/jobs`.
    pub work_dir: PathBuf,
    /// Registered script operators.
    pub operators: std::collections::BTreeMap<String, executor::OperatorSpec>,
    /// The control socket (for script operators).
    pub socket: PathBuf,
    /// Parties allowed to read this party's task logs.
    pub share_logs_with: Vec<String>,
    /// This party's tables.
    pub tables: consort_storage::Tables,
    /// This party's models.
    pub models: consort_storage::Models,
    /// Serving's feature sources by service, from `[serving.sources]`.
    pub serving_sources: std::collections::BTreeMap<String, serving::SourceConfig>,
}

/// Addresses of the running actors.
#[derive(Clone)]
pub struct Actors {
    /// Job and task-state authority.
    pub scheduler: Addr<Scheduler>,
    /// Runs this party's part of tasks.
    pub executor: Addr<Executor>,
    /// Task logs and metrics.
    pub tracker: Addr<Tracker>,
    /// Model store.
    pub model_manager: Addr<ModelManager>,
    /// This party's tables.
    pub tables: Addr<TableKeeper>,
    /// Routes network events.
    pub network: Addr<NetworkActor>,
    /// Deployments and inference.
    pub serving: Addr<Serving>,
}

impl Actors {
    /// Starts every actor on the current actix System, each with its own trees of `store`,
    /// and registers each peer topic's owner with the router.
    pub fn start(store: &Store, deps: JobDeps) -> Self {
        let executor = Executor::with_deps(
            store.clone(),
            ExecDeps {
                me: deps.me.clone(),
                net: deps.net.clone(),
                mailbox: deps.mailbox.clone(),
                logs: LogWriter::new(deps.tracking.clone()),
                work_dir: deps.work_dir.clone(),
                operators: deps.operators,
                socket: deps.socket,
                tokens: executor::TaskTokens::default(),
                tables: deps.tables.clone(),
                table_policy: deps.policy.tables.clone(),
            },
        )
        .start();
        // The Tracker asks the Scheduler, which asks the ModelManager, which asks the Tracker:
        // create the Tracker's address first and start it once the Scheduler runs.
        let tracker_ctx = actix::Context::<Tracker>::new();
        let tracker = tracker_ctx.address();
        let model_manager = ModelManager::with_deps(
            store.clone(),
            ModelDeps {
                me: deps.me.clone(),
                models: deps.models,
                net: deps.net.clone(),
                metrics: tracker.clone().recipient(),
            },
        )
        .start();
        let scheduler = Scheduler::with_deps(
            store.clone(),
            SchedulerDeps {
                me: deps.me.clone(),
                net: deps.net.clone(),
                records: deps.records.clone(),
                executor: executor.clone(),
                policy: deps.policy,
                work_dir: deps.work_dir,
                tables: deps.tables.clone(),
                model_inputs: model_manager.clone().recipient(),
                commit_models: model_manager.clone().recipient(),
            },
        )
        .start();
        tracker_ctx.run(Tracker::with_deps(
            store.clone(),
            TrackerDeps {
                me: deps.me.clone(),
                tracking: deps.tracking,
                net: deps.net.clone(),
                share_logs_with: deps.share_logs_with,
                takes_part: scheduler.clone().recipient(),
            },
        ));
        let serving = Serving::with_deps(
            store.clone(),
            serving::ServingDeps {
                me: deps.me.clone(),
                net: deps.net.clone(),
                tables: deps.tables.clone(),
                models: model_manager.clone(),
                sources: deps.serving_sources,
            },
        )
        .start();
        let inbox = ChannelInbox::new(deps.me, deps.mailbox, scheduler.clone().recipient()).start();
        let routes = Routes::default()
            .register(CHANNEL_TOPIC, inbox.recipient())
            .register(LOGS_TOPIC, tracker.clone().recipient())
            .register(MODEL_TOPIC, model_manager.clone().recipient())
            .register(serving::rpc::SERVING_TOPIC, serving.clone().recipient());
        let network = NetworkActor::start_with(
            NetworkDeps {
                client: deps.net,
                overrides: deps.overrides,
                records: deps.records,
                peer_id: deps.peer_id,
            },
            scheduler.clone().recipient(),
            routes,
            deps.events,
        );
        Self {
            scheduler,
            executor,
            tracker,
            model_manager,
            tables: TableKeeper::new(deps.tables).start(),
            network,
            serving,
        }
    }
    /// Asks every actor how many records it holds. An actor that does not answer is an error:
    /// status must not claim a healthy daemon whose actors are gone.
    pub async fn store_counts(&self) -> Result<Vec<StoreCount>, ActorError> {
        Ok(vec![
            self.scheduler.send(StoreStats).await??,
            self.executor.send(StoreStats).await??,
            self.tracker.send(StoreStats).await??,
            self.model_manager.send(StoreStats).await??,
            self.serving.send(StoreStats).await??,
        ])
    }
}
