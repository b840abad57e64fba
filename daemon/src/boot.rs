//! From the command line to running actors: arguments, configuration, identity, `init`,
//! logging, the data directory's layout, the network's start and the run loop.

pub mod args;
pub mod config;
pub mod identity;
pub mod init;
pub mod logging;
pub mod network;
pub mod paths;
pub mod run;
pub mod serving_config;
