//! The `consortd` daemon and the `consort` CLI.
//!
//! Thin by design: parse arguments and configuration, wire the libraries together, print.
//! The binaries in `src/bin` only call [`daemon_main`] and [`cli::main`].

pub mod cli;
pub mod client;
pub mod config;
pub mod daemon_cli;
mod data;
pub mod data_cli;
pub mod demo;
mod failure;
pub mod identity;
pub mod init;
pub mod job_cli;
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
