//! `consort`: the CLI of a local consortd.

fn main() -> std::process::ExitCode {
    consort_cli::main()
}
