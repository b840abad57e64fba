//! Consort's federated operators (reader, PSI, hetero/homo LR, evaluation, ...).
//!
//! Components are pure and synchronous: they see only a `TaskContext` (inputs, params,
//! remote/get, metrics, outputs, cancellation), never actix, libp2p or sled, so that each one
//! is unit-tested with an in-memory multi-party harness. The jobs issue adds the context and
//! the first components; until then the registry is empty.

/// Names of the components this build can run (grows with the jobs and learning issues).
pub const BUILTIN_COMPONENTS: &[&str] = &[];
