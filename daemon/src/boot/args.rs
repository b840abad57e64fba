//! Arguments of the `consortd` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;
use crate::run::{ConfigSource, daemon_main};
use crate::{init, paths};

/// consortd: one organization's Consort daemon. It trains, versions and serves models with
/// partner organizations peer to peer, without pooling raw data.
#[derive(Debug, Parser)]
#[command(
    name = "consortd",
    version,
    about = "One organization's Consort daemon: trains and versions models with partner organizations, peer to peer, without pooling raw data",
    long_about = None
)]
pub struct DaemonCli {
    /// What to do.
    #[command(subcommand)]
    pub command: DaemonCommand,
}

/// `consortd` commands.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Create a data directory: identity key (your PeerId) and a commented consort.toml.
    Init {
        /// Data directory to create (mode 0700).
        #[arg(long, env = "CONSORT_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// This organization's party name: [a-z0-9][a-z0-9-]{0,62}.
        #[arg(long, value_name = "NAME")]
        party: String,
        /// libp2p listen multiaddr (repeatable); default /ip4/0.0.0.0/tcp/4750 and
        /// /ip4/0.0.0.0/udp/4750/quic-v1 (TCP and QUIC).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Print {"party", "peer_id", "config"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon in the foreground until SIGTERM, SIGINT or `consort shutdown`.
    Run {
        /// Data directory (holding consort.toml).
        #[arg(
            long,
            env = "CONSORT_DIR",
            value_name = "DIR",
            conflicts_with = "config"
        )]
        dir: Option<PathBuf>,
        /// Configuration file (its directory is the data directory unless it sets data_dir).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log format; overrides [log] format in the config.
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<LogFormat>,
    },
}

/// Makes everything this process creates owner-only from the moment it exists.
///
/// Otherwise files get the inherited umask (often 022: readable by all) and are restricted
/// afterwards, if at all: the control socket is bound under a temporary name and chmod-ed
/// before its rename, and in between any local user could connect to it; sled's files, tables,
/// models and the lock file are never restricted, and stay private only while the data
/// directory keeps its 0700. A data directory holds a party's raw data and its identity:
/// nothing in it is for group or others. Set before any thread exists, so that nothing is
/// created under the old mask; script operators inherit it.
fn private_umask() {
    use rustix::fs::Mode;
    rustix::process::umask(Mode::RWXG | Mode::RWXO);
}

/// Entry point of the `consortd` binary.
pub fn main() -> ExitCode {
    let cli = DaemonCli::parse();
    // Both commands create the party's files (init: the key and config; run: everything else).
    private_umask();
    match cli.command {
        DaemonCommand::Init {
            dir,
            party,
            listen,
            json,
        } => {
            let dir = dir.unwrap_or_else(paths::default_data_dir);
            match init::init(&dir, &party, &listen) {
                Ok(out) => {
                    if json {
                        match serde_json::to_string(&out) {
                            Ok(s) => println!("{s}"),
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::from(1);
                            }
                        }
                    } else {
                        println!("initialised party {} in {}", out.party, dir.display());
                        println!("peer id: {}", out.peer_id);
                        println!("config:  {}", out.config);
                        println!("next:    consortd run --dir {}", dir.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        DaemonCommand::Run {
            dir,
            config,
            log_format,
        } => {
            let source = match config {
                Some(file) => ConfigSource::File(file),
                None => ConfigSource::Dir(dir.unwrap_or_else(paths::default_data_dir)),
            };
            let config_path = match &source {
                ConfigSource::File(file) => file.clone(),
                ConfigSource::Dir(dir) => dir.join(paths::CONFIG_FILE),
            };
            crate::security::remember_start_config(&config_path);
            match daemon_main(source, log_format) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Before the config is read there is no subscriber: then say it plainly.
                    if tracing::dispatcher::has_been_set() {
                        tracing::error!(error = %format!("{e:#}"), "consortd failed");
                    } else {
                        eprintln!("error: {e:#}");
                    }
                    ExitCode::from(1)
                }
            }
        }
    }
}
