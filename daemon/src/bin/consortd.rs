//! `consortd`: one organization's Consort daemon.

fn main() -> std::process::ExitCode {
    consort_daemon::args::main()
}
