//! The `consort` command-line client.
//!
//! Every command but `job validate` and `demo` talks to the local daemon over its control
//! socket, with typed calls ([`consort_protocol::call`]); this crate knows nothing of actix,
//! libp2p or sled. Human output goes to stdout; with `--json`, stdout carries exactly one JSON
//! document instead (errors too, as `{"error": {"code", "message"}}`). Exit codes: 0 success,
//! 1 failure, 2 no daemon answering.
//!
//! Layers, each using only those above it: `args` (clap) and `client` (the socket);
//! `failure`, `output` and `target`; then `remote/*` (one file per subsystem) and `local/*`;
//! this file dispatches.

pub mod args;
pub mod client;
mod failure;
mod local;
mod output;
mod remote;
pub mod serve_args;
mod target;

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

use crate::args::{Cli, Command};
use crate::failure::Failure;
use crate::target::Target;

/// Entry point of the `consort` binary.
pub fn main() -> ExitCode {
    output::quiet_broken_pipe();
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json && !f.reported {
                println!(
                    "{}",
                    json!({"error": {"code": f.code, "message": f.message}})
                );
            }
            eprintln!("error: {}", f.message);
            ExitCode::from(f.exit)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let target = Target::resolve(&cli);
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => local::demo::run(&args, json).await.map_err(|e| Failure {
            code: "demo",
            message: e.to_string(),
            exit: 1,
            reported: false,
        }),
        Command::Status => remote::node::status(&target, json).await,
        Command::Shutdown { no_wait, timeout } => {
            remote::node::shutdown(&target, no_wait, timeout, json).await
        }
        Command::Security => remote::node::security(&target, json).await,
        Command::Board { open } => remote::node::board(&target, open, json).await,
        Command::Peers => remote::network::peers(&target, json).await,
        Command::Ping { party } => remote::network::ping(&target, party, json).await,
        Command::Doctor => remote::network::doctor(&target, json).await,
        Command::Partner(cmd) => remote::network::partner(&target, cmd, json).await,
        Command::Record(cmd) => remote::network::record(&target, cmd, json).await,
        Command::Job(cmd) => remote::job::run(&target, cmd, json).await,
        Command::Metric(cmd) => remote::job::run_metric(&target, cmd, json).await,
        Command::Task(cmd) => remote::job::run_task(&target, cmd).await,
        Command::Data(cmd) => remote::data::run_data(&target, cmd, json).await,
        Command::Model(cmd) => remote::data::run_model(&target, cmd, json).await,
        Command::Serve(cmd) => remote::serve::run(&target, cmd, json).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "consort", &mut script);
            output::write_stdout(&script)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| failure::fail("io", format!("cannot render the man page: {e}")))?;
            output::write_stdout(&page)
        }
    }
}
