//! The `consortd` daemon (the `consort` CLI is the `consort-cli` crate).
//!
//! Thin by design: parse arguments and configuration, wire the libraries together, serve the
//! control socket. The binary in `src/bin` only calls [`args::main`]. The folders say what
//! they hold:
//!
//! - `boot/`: from the command line to running actors — arguments, configuration, identity,
//!   `init`, logging, the data directory's layout, the network's start and the run loop;
//! - `socket/`: the control socket — the server (framing, hello, dispatch) and one file per
//!   subsystem that translates requests into actor messages and their replies into responses.
//!
//! - `http/`: the inference APIs (HTTP/JSON and gRPC), translating the same way; the board
//!   will join them.

mod boot;
pub mod http;
mod socket;

pub use boot::{args, config, identity, init, logging, network, paths, run, serving_config};
pub use run::daemon_main;
pub(crate) use socket::{data, failure, jobs, models, peers, security, serve, server};
