use actix::{Actor, Context, Handler};
use consort_storage::{Store, TreeName};

use crate::stats::{self, StoreStats};

/// Stores task logs and metrics and answers queries about them.
#[derive(Debug)]
pub struct Tracker {
    store: Store,
}

impl Tracker {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Logs, TreeName::Metrics];

    /// Creates the actor over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
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
