//! The `consortd` daemon (the `consort` CLI is the `consort-cli` crate).
//!
//! Thin by design: parse arguments and configuration, wire the libraries together, serve the
//! control socket. The binary in `src/bin` only calls [`daemon_cli::main`].

pub mod config;
pub mod daemon_cli;
mod data;
mod failure;
pub mod identity;
pub mod init;
mod jobs;
pub mod logging;
mod models;
pub mod network;
pub mod paths;
mod peers;
pub mod run;
mod security;
pub(crate) mod server;

pub use run::daemon_main;
