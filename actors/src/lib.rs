//! Consort's actors and the messages between them.
//!
//! Each actor owns the sled trees of its concern and runs on the actix System of the daemon.
//! Handlers never block: CPU-heavy work goes to blocking threads. The network actor (libp2p)
//! and the serving actor arrive with their issues; the four below are the control plane's
//! skeleton, each already owning its trees.

mod executor;
mod model_manager;
mod scheduler;
mod stats;
mod tracker;

pub use executor::Executor;
pub use model_manager::ModelManager;
pub use scheduler::Scheduler;
pub use stats::{ActorError, StoreStats};
pub use tracker::Tracker;

use actix::{Actor, Addr};
use consort_protocol::control::StoreCount;
use consort_storage::Store;

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
}

impl Actors {
    /// Starts every actor on the current actix System, each with its own trees of `store`.
    pub fn start(store: &Store) -> Self {
        Self {
            scheduler: Scheduler::new(store.clone()).start(),
            executor: Executor::new(store.clone()).start(),
            tracker: Tracker::new(store.clone()).start(),
            model_manager: ModelManager::new(store.clone()).start(),
        }
    }

    /// Asks every actor how many records it holds. An actor that does not answer is an error:
    /// status must not claim a healthy daemon whose actors are gone.
    pub async fn store_counts(&self) -> Result<Vec<StoreCount>, ActorError> {
        let (s, e, t, m) = futures_join(
            self.scheduler.send(StoreStats),
            self.executor.send(StoreStats),
            self.tracker.send(StoreStats),
            self.model_manager.send(StoreStats),
        )
        .await;
        Ok(vec![s??, e??, t??, m??])
    }
}

async fn futures_join<A, B, C, D>(
    a: A,
    b: B,
    c: C,
    d: D,
) -> (A::Output, B::Output, C::Output, D::Output)
where
    A: std::future::Future,
    B: std::future::Future,
    C: std::future::Future,
    D: std::future::Future,
{
    // Requests are already queued in the mailboxes when `send` returns its future, so awaiting
    // them in order costs no more than a join.
    (a.await, b.await, c.await, d.await)
}
