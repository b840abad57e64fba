//! The Serving actor: owns this party's deployments (persisted in sled, restored at start) and
//! the inference path.
//!
//! Messages:
//! - [`ServeControl`]: `consort serve …` (deploy, route, promote, rollback, undeploy coordinated
//!   in two phases by the guest; list, show, stats, feedback, predict);
//! - [`Infer`]: one inference request from the HTTP or gRPC API (the guest computes its partial
//!   score, asks every host for theirs, combines and post-processes);
//! - [`PeerRequest`] on [`SERVING_TOPIC`](rpc::SERVING_TOPIC): a guest asks this host to prepare,
//!   commit or abort a service's new state, or for partial scores;
//! - [`StoreStats`].
//!
//! The folder holds the parts: [`rpc`] (wire), `state` (a service and its record), `prepare`
//! (building a state: versions, checks, feature source), `coordinate` (the guest's two phases),
//! `peer` (the host's side: changes, partial scores, quota), `infer` (the request path, host
//! batching and the cache), `adapter` (a host's feature command or endpoint), `stats`
//! (latency, errors, online AUC/KS).

mod adapter;
mod coordinate;
mod infer;
mod peer;
mod prepare;
pub mod rpc;
mod state;
mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use consort_protocol::PartyName;
use consort_protocol::serving::{ServeRequest, ServeResponse};
use consort_storage::{Store, Tables, Tree, TreeName};
use tracing::{info, warn};

pub use infer::Infer;
pub use peer::DEFAULT_QUOTA_PER_MINUTE;
pub use stats::{ServingSeries, VersionLabels};

use crate::failure::Failure;
use crate::model_manager::ModelManager;
use crate::network::NetworkClient;
use crate::stats::{self as store_stats, StoreStats};
use state::{Deployment, Service};

/// Where a party's features for a service come from, and the quota its guest gets.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// The features.
    pub source: SourceKind,
    /// Partial scores a host answers per minute for this service (ids, not requests).
    pub quota_per_minute: u64,
}

/// A feature source as configured.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// An uploaded table, indexed by id in memory at deploy.
    Table(String),
    /// A long-running command speaking JSON lines (see `adapter`), with its time limit per
    /// request.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// How long one answer may take.
        timeout: std::time::Duration,
    },
    /// An HTTP endpoint taking the same JSON (`POST`), with its time limit per request.
    Http {
        /// `http://HOST:PORT/PATH`.
        url: String,
        /// How long one answer may take.
        timeout: std::time::Duration,
    },
}

/// What a working Serving actor needs.
pub struct ServingDeps {
    /// This party.
    pub me: PartyName,
    /// The network (hosts' partial scores, two-phase changes).
    pub net: NetworkClient,
    /// This party's tables (feature sources).
    pub tables: Tables,
    /// Loads model parts.
    pub models: Addr<ModelManager>,
    /// Feature sources by service name, from `[serving.sources.NAME]`.
    pub sources: BTreeMap<String, SourceConfig>,
}

/// Serves deployed models.
pub struct Serving {
    store: Store,
    deps: Option<Arc<ServingDeps>>,
    deployments: Option<Tree<Deployment>>,
    services: HashMap<String, Arc<Service>>,
    /// Services read from the store and still loading.
    restoring: HashSet<String>,
    /// Services with a change in progress (coordinated here).
    busy: HashSet<String>,
    peer: peer::PeerState,
    infer: infer::InferState,
    stats: stats::Stats,
}

impl Serving {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Deployments];

    /// A Serving actor that only answers store statistics (tests, tools).
    pub fn new(store: Store) -> Self {
        Self::build(store, None)
    }

    /// A working Serving actor.
    pub fn with_deps(store: Store, deps: ServingDeps) -> Self {
        Self::build(store, Some(Arc::new(deps)))
    }

    fn build(store: Store, deps: Option<Arc<ServingDeps>>) -> Self {
        let deployments = match store.tree(TreeName::Deployments) {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(error = %e, "cannot open the deployments tree; serving is off");
                None
            }
        };
        Self {
            store,
            deps,
            deployments,
            services: HashMap::new(),
            restoring: HashSet::new(),
            busy: HashSet::new(),
            peer: peer::PeerState::default(),
            infer: infer::InferState::default(),
            stats: stats::Stats::default(),
        }
    }

    fn deps(&self) -> Result<Arc<ServingDeps>, Failure> {
        self.deps
            .clone()
            .ok_or_else(|| Failure::Internal("serving is not configured".into()))
    }

    /// Installs a service's new state (None: removed) and drops what the old one held.
    fn install(&mut self, name: &str, service: Option<Service>) {
        self.infer.forget(name);
        match service {
            Some(s) => {
                self.services.insert(name.to_owned(), Arc::new(s));
            }
            None => {
                self.services.remove(name);
            }
        }
    }

    /// Reloads every persisted deployment (models from the model store, tables from theirs).
    fn restore(&mut self, ctx: &mut Context<Self>) {
        let (Ok(deps), Some(tree)) = (self.deps(), self.deployments.clone()) else {
            return;
        };
        let mut saved: Vec<Deployment> = Vec::new();
        for item in tree.scan_prefix("") {
            match item {
                Ok((_, d)) => saved.push(d),
                Err(e) => warn!(error = %e, "cannot read a deployment; skipped"),
            }
        }
        for d in saved {
            self.restoring.insert(d.name.clone());
            let name = d.name.clone();
            let deps = deps.clone();
            ctx.spawn(
                async move {
                    prepare::prepare(&deps, None, &d.name, &d.state, &d.options, prepare::Asker::Restore)
                        .await
                        .map(|mut s| {
                            s.changed_at_ms = d.changed_at_ms;
                            s
                        })
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.restoring.remove(&name);
                    match res {
                        Ok(s) => {
                            info!(service = %name, versions = s.versions.len(), "deployment restored");
                            act.install(&name, Some(s));
                        }
                        Err(e) => warn!(service = %name, error = %e, "cannot restore deployment"),
                    }
                }),
            );
        }
    }
}

impl Actor for Serving {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(actor = "serving", "actor started");
        self.restore(ctx);
    }
}

/// `consort serve …`.
#[derive(Debug, Clone)]
pub struct ServeControl(pub ServeRequest);

impl Message for ServeControl {
    type Result = Result<ServeResponse, Failure>;
}

/// Handler for [`ServeControl`].
impl Handler<ServeControl> for Serving {
    type Result = ResponseActFuture<Self, Result<ServeResponse, Failure>>;

    fn handle(&mut self, msg: ServeControl, ctx: &mut Context<Self>) -> Self::Result {
        let ready =
            |r: Result<ServeResponse, Failure>| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        match msg.0 {
            ServeRequest::List => {
                let mut services: Vec<_> = self.services.values().map(|s| s.info()).collect();
                services.sort_by(|a, b| a.name.cmp(&b.name));
                ready(Ok(ServeResponse::Services { services }))
            }
            ServeRequest::Show { service } => {
                ready(self.service(&service).map(|s| ServeResponse::Service {
                    service: Box::new(s.info()),
                }))
            }
            ServeRequest::Stats { service } => ready(self.service(&service).map(|s| {
                let quota = self.peer.refused(&service);
                ServeResponse::Stats(self.stats.report(&s, quota))
            })),
            ServeRequest::Feedback { service, labels } => ready(
                self.service(&service)
                    .map(|_| ServeResponse::Feedback(self.stats.feedback(&service, &labels))),
            ),
            ServeRequest::Predict { service, rows } => {
                let futs: Vec<_> = rows
                    .into_iter()
                    .map(|input| {
                        self.start_infer(
                            Infer {
                                service: service.clone(),
                                input,
                            },
                            ctx,
                        )
                    })
                    .collect();
                Box::pin(
                    async move {
                        Ok(ServeResponse::Predictions {
                            items: futures::future::join_all(futs).await,
                        })
                    }
                    .into_actor(self),
                )
            }
            change => self.change(change, ctx),
        }
    }
}

impl Serving {
    fn service(&self, name: &str) -> Result<Arc<Service>, Failure> {
        if let Some(s) = self.services.get(name) {
            return Ok(s.clone());
        }
        if self.restoring.contains(name) {
            return Err(Failure::Unreachable(format!(
                "service {name} is still being restored; try again in a moment"
            )));
        }
        Err(Failure::NotFound(format!("no service {name} here")))
    }
}

/// The Prometheus series of serving (shared: the caller encodes them).
#[derive(Debug, Clone, Copy)]
pub struct SeriesOf;

impl Message for SeriesOf {
    type Result = ServingSeries;
}

impl Handler<SeriesOf> for Serving {
    type Result = actix::MessageResult<SeriesOf>;

    fn handle(&mut self, _msg: SeriesOf, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.stats.series.clone())
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Serving {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        store_stats::count("serving", &self.store, Self::TREES)
    }
}
