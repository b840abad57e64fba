//! Commands that ask the daemon, one file per subsystem.

pub(crate) mod data;
pub(crate) mod job;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod plot;
pub(crate) mod serve;
