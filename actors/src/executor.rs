use actix::{Actor, Context, Handler};
use consort_storage::{Store, TreeName};

use crate::stats::{self, StoreStats};

/// Runs this party's role of tasks on blocking threads and child processes.
#[derive(Debug)]
pub struct Executor {
    store: Store,
}

impl Executor {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Runs];

    /// Creates the actor over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        tracing::debug!(actor = "executor", "actor started");
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Executor {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("executor", &self.store, Self::TREES)
    }
}
