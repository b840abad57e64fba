//! The Scheduler: authority over this party's task states, deriving every job's state from the
//! replicated records of all parties.

pub mod derive;

use actix::{Actor, Context, Handler};
use consort_storage::{Store, TreeName};

use crate::stats::{self, StoreStats};

/// Authority over this party's task states; derives job states from every party's records.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
}

impl Scheduler {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Jobs, TreeName::Tasks];

    /// Creates the actor over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        tracing::debug!(actor = "scheduler", "actor started");
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Scheduler {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("scheduler", &self.store, Self::TREES)
    }
}
