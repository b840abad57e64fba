//! Consort's actors and the messages between them.
//!
//! Each actor owns the sled trees of its concern and runs on the actix System of the daemon.
//! Handlers never block: CPU-heavy work goes to blocking threads. The network actor (libp2p)
//! and the serving actor arrive with their issues; the four below are the control plane's
//! skeleton, each already owning its trees.

pub mod executor;
mod model_manager;
pub mod model_rpc;
pub mod network;
mod network_actor;
pub mod scheduler;
mod stats;
mod tracker;

pub use executor::Executor;
pub use model_manager::ModelManager;
pub use network_actor::NetworkActor;
pub use scheduler::Scheduler;
pub use stats::{ActorError, StoreStats};
pub use tracker::Tracker;

use std::path::PathBuf;

use actix::{Actor, Addr};
use consort_protocol::PartyName;
use consort_protocol::control::StoreCount;
use consort_storage::{Mailbox, RecordStore, Store, Tracking};

use executor::ExecDeps;
use network::{NetworkClient, NetworkEvent};
use scheduler::{Policy, SchedulerDeps};

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
    /// Tokens of running script tasks (shared with the socket server).
    pub tokens: executor::TaskTokens,
    /// Parties allowed to read this party's task logs.
    pub share_logs_with: Vec<String>,
    /// This party's tables.
    pub tables: consort_storage::Tables,
    /// This party's models.
    pub models: consort_storage::Models,
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
    /// Routes network events.
    pub network: Addr<NetworkActor>,
}

impl Actors {
    /// Starts every actor on the current actix System, each with its own trees of `store`.
    pub fn start(store: &Store, deps: JobDeps) -> Self {
        let executor = Executor::with_deps(
            store.clone(),
            ExecDeps {
                me: deps.me.clone(),
                net: deps.net.clone(),
                mailbox: deps.mailbox.clone(),
                tracking: deps.tracking.clone(),
                work_dir: deps.work_dir.clone(),
                operators: deps.operators,
                socket: deps.socket,
                tokens: deps.tokens,
                tables: deps.tables.clone(),
                table_policy: deps.policy.tables.clone(),
            },
        )
        .start();
        let scheduler = Scheduler::with_deps(
            store.clone(),
            SchedulerDeps {
                me: deps.me.clone(),
                net: deps.net.clone(),
                records: deps.records,
                executor: executor.clone(),
                policy: deps.policy,
                work_dir: deps.work_dir,
                tables: deps.tables,
                models: deps.models.clone(),
                tracking: deps.tracking.clone(),
            },
        )
        .start();
        let network = NetworkActor::start_with(
            deps.net,
            deps.me,
            deps.mailbox,
            scheduler.clone().recipient(),
            network_actor::JobGate {
                admit: scheduler.clone().recipient(),
                takes_part: scheduler.clone().recipient(),
            },
            deps.events,
            network_actor::LogSharing {
                tracking: deps.tracking,
                share_logs_with: deps.share_logs_with,
                models: deps.models.clone(),
                prepared: model_rpc::Prepared::default(),
            },
        );
        Self {
            scheduler,
            executor,
            tracker: Tracker::new(store.clone()).start(),
            model_manager: ModelManager::new(store.clone()).start(),
            network,
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
        ])
    }
}
