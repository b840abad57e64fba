//! `consortd`: one organization's Consort daemon.

fn main() -> std::process::ExitCode {
    consort_daemon::daemon_cli::main()
}
