//! Commands that need no daemon: checking job files, and the demo (which starts its own).

pub mod demo;
mod demo_online;
pub(crate) mod validate;
