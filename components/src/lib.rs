//! Consort's federated operators, written only against [`TaskContext`].
//!
//! Components are synchronous and deterministic given their inputs: they see a
//! [`TaskContext`] (params, inputs, outputs, remote/get, metrics, log, cancellation), never
//! actix, libp2p or sled. The executor gives them a context backed by the data channel; the
//! [`harness`] gives them one backed by memory, so every algorithm is unit-tested with all
//! parties in one process. [`serving`] scores one id at a time exactly as a batch `predict`
//! scores a table: the arithmetic the online serving path is built on.

mod blob;
pub mod context;
pub mod evaluation;
pub mod feature_scale;
pub mod harness;
pub mod hetero_lr;
pub mod homo_lr;
pub mod paillier;
pub mod psi;
mod reader;
pub mod reference;
mod registry;
pub mod secureboost;
pub mod serving;
#[cfg(test)]
mod test_util;
mod testing;

pub use context::{Endpoint, Target, TaskContext, TaskError};
pub use registry::{BUILTIN_COMPONENTS, ComponentFn, component, schema};
