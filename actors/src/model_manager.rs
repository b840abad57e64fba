use actix::{Actor, Context, Handler};
use consort_storage::{Store, TreeName};

use crate::stats::{self, StoreStats};

/// Keeps this party's model commits, artifacts and refs.
#[derive(Debug)]
pub struct ModelManager {
    store: Store,
}

impl ModelManager {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Models];

    /// Creates the actor over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
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
