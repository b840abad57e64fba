//! The `consort` command-line client.
//!
//! Every command talks to the local daemon over its control socket. Human output goes to
//! stdout; with `--json`, stdout carries exactly one JSON document instead (errors too, as
//! `{"error": {"code", "message"}}`). Exit codes: 0 success, 1 failure, 2 no daemon answering.

use std::fs::{OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use consort_protocol::control::{FileReport, SecurityReport, TableRule};
use consort_protocol::{
    ErrorCode, PeerInfo, PingReport, RecordInfo, Request, Response, StatusInfo,
};
use serde_json::json;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::paths;

/// Drive a local consortd: the daemon that federates your organization's ML with partners.
#[derive(Debug, Parser)]
#[command(
    name = "consort",
    version,
    about = "Drive a local consortd: partners, federated jobs, tables and model versions",
    long_about = None
)]
pub struct Cli {
    /// Data directory of the daemon to talk to (its consort.toml names the socket).
    #[arg(long, global = true, env = "CONSORT_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Control socket path; overrides --dir.
    #[arg(long, global = true, env = "CONSORT_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print one machine-readable JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `consort` commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon's party, PeerId, version, uptime, listen addresses and data directory.
    Status,
    /// Stop the daemon gracefully: answer in-flight requests, flush, remove the socket.
    Shutdown {
        /// Return as soon as the daemon has accepted the request, without waiting for it to exit.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the daemon to exit.
        #[arg(long, default_value_t = 30, value_name = "S")]
        timeout: u64,
    },
    /// Run the demonstration: start daemons in a temporary directory and drive them.
    Demo(crate::demo::DemoArgs),
    /// List partners: connected or not, addresses, round-trip time, last seen, dropped messages.
    Peers,
    /// Reach one partner: dial, round trip, versions, or why it cannot be reached.
    Ping {
        /// The partner's party name.
        party: String,
    },
    /// Ping every partner and explain each one that cannot be reached.
    Doctor,
    /// Add or remove partners (persisted; effective without a restart).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Replicated records: versioned values each party writes and every partner keeps.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Federated jobs: DAGs of tasks every party runs on its own data.
    #[command(subcommand)]
    Job(JobCommand),
    /// This party's tables: upload CSV files, list, show, delete. Tables never leave the party.
    #[command(subcommand)]
    Data(crate::data_cli::DataCommand),
    /// Model versions: list, history, tags, branches, rollback agreed by every party, export.
    #[command(subcommand)]
    Model(crate::data_cli::ModelCommand),
    /// Metrics logged by tasks (loss per iteration, AUC, ...).
    #[command(subcommand)]
    Metric(MetricCommand),
    /// For script operators: take part in the task (uses CONSORT_TASK_TOKEN and CONSORT_SOCKET).
    #[command(subcommand)]
    Task(TaskCommand),
    /// Audit this daemon's exposure: who may connect, what partners may do and read, file modes.
    ///
    /// Prints, as the daemon sees it:
    ///
    /// - identity: party, PeerId, and the configuration file in force (the file as the daemon
    ///   started with it; a warning says when it has been edited since);
    ///
    /// - policy ([policy] of consort.toml): whose job proposals are considered (accept_from),
    ///   which components partners may run (components), whether every proposal waits for
    ///   `consort job approve` (manual_approval), who may read this party's task logs
    ///   (share_logs_with);
    ///
    /// - tables ([policy.tables]): every uploaded table and every table the policy names, with
    ///   the partners whose jobs may read it and the rule that decides ("(default: no partner)"
    ///   when no rule covers it: then only jobs of this party alone may use it);
    ///
    /// - script operators ([operators.NAME]): the only commands jobs may run here;
    ///
    /// - network: partners (the only PeerIds allowed to connect), listen addresses as configured
    ///   and as bound;
    ///
    /// - files: control socket (expected 0600), identity key (0600), data directory (0700) and
    ///   consort.toml, with mode and owner, and any entry under the data directory that group
    ///   or others may access.
    ///
    /// Lines marked `!` need attention. Exits 0 even then; with --json, the same report as one
    /// document, its "warnings" array empty when nothing needs attention.
    #[command(verbatim_doc_comment)]
    Security,
}

/// `consort task ...` (inside a script operator).
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Send a file to every party of a role, or to one party.
    Remote {
        /// ROLE, PARTY or ROLE@PARTY.
        #[arg(long)]
        to: String,
        /// Tag naming this exchange.
        #[arg(long)]
        tag: String,
        /// The file to send.
        file: PathBuf,
        /// The task token.
        #[arg(long, env = "CONSORT_TASK_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Receive what a role or a party sent under a tag (waits for it).
    Get {
        /// ROLE, PARTY or ROLE@PARTY.
        #[arg(long)]
        from: String,
        /// Tag naming this exchange.
        #[arg(long)]
        tag: String,
        /// Write here (with several senders: FILE.<role@party>); default: stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The task token.
        #[arg(long, env = "CONSORT_TASK_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Log a metric point.
    Metric {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// x.
        x: f64,
        /// y.
        y: f64,
        /// The task token.
        #[arg(long, env = "CONSORT_TASK_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Set a metric's metadata (JSON), e.g. '{"unit": "nats", "curve": "loss"}'.
    MetricMeta {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// JSON object.
        meta: String,
        /// The task token.
        #[arg(long, env = "CONSORT_TASK_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Write a line to the task log.
    Log {
        /// The text.
        text: String,
        /// The task token.
        #[arg(long, env = "CONSORT_TASK_TOKEN", hide_env_values = true)]
        token: String,
    },
}

/// `consort job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Check a job file (YAML or JSON) without a daemon: print the plan, or every problem with
    /// its key path.
    Validate {
        /// The job file.
        file: PathBuf,
    },
    /// Submit a job file; this party becomes the initiator. Prints the job id.
    Submit {
        /// The job file (YAML or JSON).
        file: PathBuf,
        /// Wait for the end, showing task progress; exit codes as `job wait`.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 2).
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
    },
    /// A job and its tasks × parties matrix.
    Show {
        /// Job id.
        id: String,
    },
    /// Jobs known here, newest first.
    List {
        /// Only jobs in this state (pending, running, success, failed, canceled, rejected).
        #[arg(long)]
        status: Option<String>,
    },
    /// Wait for a job to end: exit 0 on success, 1 on failed/canceled/rejected, 2 on timeout.
    Wait {
        /// Job id.
        id: String,
        /// Give up after this many seconds.
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
    },
    /// Cancel a job at every party.
    Stop {
        /// Job id.
        id: String,
    },
    /// Run a failed or canceled job again at every party, reusing what succeeded upstream.
    Rerun {
        /// Job id.
        id: String,
        /// Rerun this task and everything downstream (default: every task that did not succeed).
        #[arg(long, value_name = "TASK")]
        from: Option<String>,
    },
    /// Accept a job held for manual approval (policy.manual_approval).
    Approve {
        /// Job id.
        id: String,
    },
    /// Refuse a job held for manual approval.
    Reject {
        /// Job id.
        id: String,
        /// Why; shown at every party.
        #[arg(long)]
        reason: String,
    },
    /// An output a task wrote at this party (e.g. the guest's scores: `lr predict_output`).
    /// Datasets print as CSV (id, label, columns); other outputs as they are.
    Output {
        /// Job id.
        id: String,
        /// Task.
        task: String,
        /// Output name.
        name: String,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Task log lines of a job: this party's, or a partner's that shares its logs with us.
    Log {
        /// Job id.
        id: String,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// Another party's logs (its policy.share_logs_with must name this party).
        #[arg(long)]
        party: Option<String>,
        /// Keep printing new lines until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

/// `consort metric ...`
#[derive(Debug, Subcommand)]
pub enum MetricCommand {
    /// Metric series this party logged for a job.
    List {
        /// Job id.
        id: String,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
    },
    /// The points of one series.
    Get {
        /// Job id.
        id: String,
        /// Task.
        task: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// `consort partner ...`
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Allow a partner and connect to it now.
    Add {
        /// Its party name.
        #[arg(long)]
        party: String,
        /// Its PeerId (printed by its `consortd init`).
        #[arg(long)]
        peer_id: String,
        /// Where to reach it (repeatable), e.g. /ip4/192.0.2.10/tcp/4750.
        #[arg(long = "addr", value_name = "MULTIADDR")]
        addrs: Vec<String>,
    },
    /// Disallow a partner; its connections close at once.
    Remove {
        /// Its party name.
        party: String,
    },
}

/// `consort record ...`
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Write one of this party's records; partners receive it by gossip or catch-up.
    Put {
        /// Key.
        key: String,
        /// Value (text).
        value: String,
    },
    /// Read the record KEY written by party ORIGIN.
    Get {
        /// The party that wrote it.
        origin: String,
        /// Key.
        key: String,
    },
    /// List every record held here.
    List,
}

/// Failure of a CLI command, with its exit code.
pub(crate) struct Failure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) exit: u8,
    /// The command already printed its JSON document (with `--json`).
    pub(crate) reported: bool,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::NotRunning { .. } => Failure {
                code: "not_running",
                message: e.to_string(),
                exit: 2,
                reported: false,
            },
            ClientError::Daemon(err) => Failure {
                code: error_code_name(err.code),
                message: e.to_string(),
                exit: 1,
                reported: false,
            },
            _ => Failure {
                code: "protocol",
                message: e.to_string(),
                exit: 1,
                reported: false,
            },
        }
    }
}

fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadFrame => "bad_frame",
        ErrorCode::FrameTooLarge => "frame_too_large",
        ErrorCode::VersionMismatch => "version_mismatch",
        ErrorCode::HelloRequired => "hello_required",
        ErrorCode::UnknownRequest => "unknown_request",
        ErrorCode::ShuttingDown => "shutting_down",
        ErrorCode::Internal => "internal",
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Unreachable => "unreachable",
        _ => "other",
    }
}

/// Entry point of the `consort` binary.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
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

pub(crate) struct Target {
    socket: PathBuf,
    dir: Option<PathBuf>,
}

impl Target {
    fn resolve(cli: &Cli) -> Self {
        if let Some(socket) = &cli.socket {
            return Self {
                socket: paths::absolute(socket),
                dir: cli.dir.as_deref().map(paths::absolute),
            };
        }
        let dir = paths::absolute(&cli.dir.clone().unwrap_or_else(paths::default_data_dir));
        let socket = Config::load(&dir.join(paths::CONFIG_FILE))
            .map(|s| s.socket)
            .unwrap_or_else(|_| dir.join(paths::SOCKET_FILE));
        Self {
            socket,
            dir: Some(dir),
        }
    }

    pub(crate) async fn connect(&self) -> Result<Client, Failure> {
        Client::connect(&self.socket).await.map_err(|e| {
            let mut f = Failure::from(e);
            if f.exit == 2 {
                let dir = self.dir.as_deref().unwrap_or(Path::new("DIR"));
                f.message = format!(
                    "{}. Start one with `consortd run --dir {}`",
                    f.message,
                    dir.display()
                );
            }
            f
        })
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let target = Target::resolve(&cli);
    match cli.command {
        Command::Demo(args) => crate::demo::run(&args, cli.json)
            .await
            .map_err(|e| Failure {
                code: "demo",
                message: e.to_string(),
                exit: 1,
                reported: false,
            }),
        Command::Status => {
            let mut client = target.connect().await?;
            match client.request(Request::Status).await? {
                Response::Status(s) => {
                    print_status(&s, cli.json);
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Job(cmd) => crate::job_cli::run(&target, cmd, cli.json).await,
        Command::Data(cmd) => crate::data_cli::run_data(&target, cmd, cli.json).await,
        Command::Model(cmd) => crate::data_cli::run_model(&target, cmd, cli.json).await,
        Command::Metric(cmd) => crate::job_cli::run_metric(&target, cmd, cli.json).await,
        Command::Task(cmd) => crate::job_cli::run_task(&target, cmd).await,
        Command::Security => {
            let mut client = target.connect().await?;
            match client.request(Request::Security).await? {
                Response::Security { report } => {
                    if cli.json {
                        print_json(&report);
                    } else {
                        print_security(&report);
                    }
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Peers => {
            let mut client = target.connect().await?;
            match client.request(Request::Peers).await? {
                Response::Peers { peers } => {
                    print_peers(&peers, cli.json);
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Ping { party } => {
            let mut client = target.connect().await?;
            match client.request(Request::Ping { party }).await? {
                Response::Ping(report) => {
                    print_pings(std::slice::from_ref(&report), cli.json, true)
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Doctor => {
            let mut client = target.connect().await?;
            match client.request(Request::Doctor).await? {
                Response::Doctor { reports } => print_pings(&reports, cli.json, false),
                other => Err(unexpected(&other)),
            }
        }
        Command::Partner(cmd) => {
            let request = match cmd {
                PartnerCommand::Add {
                    party,
                    peer_id,
                    addrs,
                } => Request::PartnerAdd {
                    party,
                    peer_id,
                    addrs,
                },
                PartnerCommand::Remove { party } => Request::PartnerRemove { party },
            };
            let mut client = target.connect().await?;
            match client.request(request).await? {
                Response::Done { message } => {
                    if cli.json {
                        println!("{}", json!({"ok": true, "message": message}));
                    } else {
                        println!("{message}");
                    }
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Record(cmd) => {
            let put = matches!(cmd, RecordCommand::Put { .. });
            let request = match cmd {
                RecordCommand::Put { key, value } => Request::RecordPut {
                    key,
                    value: value.into_bytes(),
                },
                RecordCommand::Get { origin, key } => Request::RecordGet { origin, key },
                RecordCommand::List => Request::RecordList,
            };
            let mut client = target.connect().await?;
            match client.request(request).await? {
                Response::Record { record: None } => Err(Failure {
                    code: "not_found",
                    message: "no such record".into(),
                    exit: 1,
                    reported: false,
                }),
                Response::Record { record: Some(r) } if put && !cli.json => {
                    println!(
                        "stored {}/{} v{}; published to partners",
                        r.origin, r.key, r.version
                    );
                    Ok(())
                }
                Response::Record { record: Some(r) } => {
                    print_records(std::slice::from_ref(&r), cli.json, true);
                    Ok(())
                }
                Response::Records { records } => {
                    print_records(&records, cli.json, false);
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Shutdown { no_wait, timeout } => {
            let mut client = target.connect().await?;
            let status = match client.request(Request::Status).await? {
                Response::Status(s) => s,
                other => return Err(unexpected(&other)),
            };
            match client.request(Request::Shutdown).await? {
                Response::ShuttingDown => {}
                other => return Err(unexpected(&other)),
            }
            drop(client);
            let stopped = if no_wait {
                false
            } else {
                wait_stopped(
                    &target.socket,
                    Path::new(&status.data_dir),
                    Duration::from_secs(timeout),
                )
                .await?;
                true
            };
            if cli.json {
                println!(
                    "{}",
                    json!({"party": status.party, "pid": status.pid, "stopped": stopped})
                );
            } else if stopped {
                println!(
                    "consortd of party {} (pid {}) stopped",
                    status.party, status.pid
                );
            } else {
                println!(
                    "consortd of party {} (pid {}) is shutting down",
                    status.party, status.pid
                );
            }
            Ok(())
        }
    }
}

pub(crate) fn unexpected(r: &Response) -> Failure {
    Failure {
        code: "protocol",
        message: format!("unexpected answer from consortd: {r:?}"),
        exit: 1,
        reported: false,
    }
}

/// Waits until the socket is gone and the data directory's lock is released.
async fn wait_stopped(socket: &Path, data_dir: &Path, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let lock = data_dir.join(paths::LOCK_FILE);
    loop {
        if !socket.exists() && lock_is_free(&lock) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure {
                code: "timeout",
                message: format!("consortd did not stop within {}s", timeout.as_secs()),
                exit: 1,
                reported: false,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lock_is_free(path: &Path) -> bool {
    match OpenOptions::new().read(true).open(path) {
        Err(_) => true,
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => true,
        },
    }
}

fn print_status(s: &StatusInfo, json: bool) {
    if json {
        match serde_json::to_string_pretty(s) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        }
        return;
    }
    let stores = s
        .stores
        .iter()
        .map(|c| format!("{} {}", c.actor, c.records))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = [
        ("party", s.party.clone()),
        ("peer id", s.peer_id.clone()),
        ("version", s.version.clone()),
        ("uptime", format_duration(s.uptime_s)),
        ("listen", s.listen.join(" ")),
        ("data dir", s.data_dir.clone()),
        ("socket", s.socket.clone()),
        ("pid", s.pid.to_string()),
        ("records", stores),
    ];
    for (k, v) in rows {
        println!("{k:<9} {v}");
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

fn ago(unix_ms: Option<u64>) -> String {
    let Some(ms) = unix_ms else {
        return "never".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(ms);
    format!(
        "{} ago",
        format_duration(now.saturating_sub(ms) as f64 / 1e3)
    )
}

fn print_peers(peers: &[PeerInfo], json: bool) {
    if json {
        return print_json(&peers);
    }
    if peers.is_empty() {
        println!(
            "no partners; add one with `consort partner add --party P --peer-id ID --addr MULTIADDR`"
        );
        return;
    }
    println!(
        "{:<16} {:<10} {:>8} {:>12} {:>8}  {:<54} addrs",
        "party", "state", "rtt", "last seen", "dropped", "peer id"
    );
    for p in peers {
        let rtt = p
            .rtt_ms
            .map(|r| format!("{r:.1}ms"))
            .unwrap_or_else(|| "-".into());
        let state = if p.connected { "connected" } else { "down" };
        println!(
            "{:<16} {:<10} {:>8} {:>12} {:>8}  {:<54} {}",
            p.party,
            state,
            rtt,
            ago(p.last_seen),
            p.rejected_messages,
            p.peer_id,
            p.addrs.join(" ")
        );
    }
}

/// Prints ping reports; fails (exit 1) when any partner is unreachable.
fn print_pings(reports: &[PingReport], json: bool, single: bool) -> Result<(), Failure> {
    if json {
        if single {
            print_json(&reports[0]);
        } else {
            print_json(&reports);
        }
    } else {
        if reports.is_empty() {
            println!("no partners configured");
        }
        for r in reports {
            if r.ok {
                println!(
                    "{}: ok, {:.1} ms, consortd {}, {}",
                    r.party,
                    r.rtt_ms.unwrap_or(0.0),
                    r.version.as_deref().unwrap_or("?"),
                    r.protocol.as_deref().unwrap_or("?")
                );
            } else {
                println!("{}: UNREACHABLE — {}", r.party, r.diagnosis);
            }
        }
    }
    let down: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.party.as_str())
        .collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: "unreachable",
            message: format!("unreachable: {}", down.join(", ")),
            exit: 1,
            reported: json,
        })
    }
}

fn print_records(records: &[RecordInfo], json: bool, with_value: bool) {
    if json {
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                let mut v = json!({"origin": r.origin, "key": r.key, "version": r.version, "written_at_ms": r.written_at_ms});
                if with_value {
                    v["value"] = json!(String::from_utf8_lossy(&r.value));
                }
                v
            })
            .collect();
        if with_value && rows.len() == 1 {
            print_json(&rows[0]);
        } else {
            print_json(&rows);
        }
        return;
    }
    for r in records {
        if with_value {
            println!(
                "{}/{} v{}: {}",
                r.origin,
                r.key,
                r.version,
                String::from_utf8_lossy(&r.value)
            );
        } else {
            println!("{}/{} v{}", r.origin, r.key, r.version);
        }
    }
}

/// `*` as words; an empty list as `none`.
fn parties_or(list: &[String], none: &str) -> String {
    if list.is_empty() {
        none.to_owned()
    } else if list.iter().any(|p| p == "*") {
        "every partner (*)".to_owned()
    } else {
        list.join(", ")
    }
}

fn print_security(r: &SecurityReport) {
    println!("party     {}", r.party);
    println!("peer id   {}", r.peer_id);
    println!("config    {} (as in force)", r.config_path);

    println!("\nwarnings");
    if r.warnings.is_empty() {
        println!("  none");
    }
    for w in &r.warnings {
        println!("  ! {w}");
    }

    println!("\nfiles");
    let file = |what: &str, expected: &str, f: &FileReport| {
        let mode = f.mode.map_or("?".to_owned(), |m| format!("{m:04o}"));
        let owner = match (&f.owner, f.owner_uid) {
            (Some(name), _) => name.clone(),
            (None, Some(uid)) => format!("uid {uid}"),
            (None, None) => "?".to_owned(),
        };
        let flag = if f.warning.is_some() { "!" } else { " " };
        println!(
            "  {flag} {what:<14} {mode:<5} (want {expected:<4}) {owner:<10} {}",
            f.path
        );
    };
    file("control socket", "0600", &r.socket);
    file("identity key", "0600", &r.identity_key);
    file("data dir", "0700", &r.data_dir);
    file("config", "0600", &r.config_file);
    let s = &r.data_dir_scan;
    let more = if s.truncated { "+" } else { "" };
    if s.exposed == 0 {
        println!(
            "    data dir contents: {}{more} entries, none accessible to group or others",
            s.scanned
        );
    } else {
        println!(
            "  ! data dir contents: {}{more} of {}{more} entries accessible to group or others",
            s.exposed, s.scanned
        );
    }

    println!("\nnetwork");
    println!("  listen     {}", r.listen.join(" "));
    println!("  listening  {}", r.listening.join(" "));
    if r.partners.is_empty() {
        println!("  partners   none: no peer may connect");
    } else {
        println!("  partners (the only peers allowed to connect):");
        println!(
            "    {:<16} {:<54} {:<7} addrs",
            "party", "peer id", "source"
        );
        for p in &r.partners {
            let addrs = if p.addrs.is_empty() {
                "(discovered)".to_owned()
            } else {
                p.addrs.join(" ")
            };
            println!(
                "    {:<16} {:<54} {:<7} {addrs}",
                p.party, p.peer_id, p.source
            );
        }
    }

    let pol = &r.policy;
    println!("\npolicy");
    println!(
        "  accept jobs from   {}",
        parties_or(&pol.accept_from, "no partner")
    );
    let components = if pol.components.is_empty() {
        "every built-in component".to_owned()
    } else {
        pol.components.join(", ")
    };
    println!("  components         {components}");
    let approval = if pol.manual_approval {
        "yes: proposals wait for `consort job approve`"
    } else {
        "no: accepted proposals start at once"
    };
    println!("  manual approval    {approval}");
    println!(
        "  share logs with    {}",
        parties_or(&pol.share_logs_with, "no partner")
    );
    let other_tables = match pol.tables.get("*") {
        Some(readers) => format!(
            "{} (policy.tables.\"*\")",
            parties_or(readers, "no partner")
        ),
        None => "(default: no partner)".to_owned(),
    };
    println!("  other tables       {other_tables}");

    println!("\ntables (who may read them in jobs)");
    if r.tables.is_empty() {
        println!("  none uploaded");
    } else {
        println!(
            "  {:<24} {:<8} {:<32} rule",
            "table", "uploaded", "readable in jobs with"
        );
        for t in &r.tables {
            let readers = match t.rule {
                TableRule::Default => "(default: no partner)".to_owned(),
                _ => parties_or(&t.readers, "no partner"),
            };
            let rule = match t.rule {
                TableRule::Named => format!("policy.tables.{}", t.name),
                TableRule::Wildcard => "policy.tables.\"*\"".to_owned(),
                TableRule::Default => "not covered".to_owned(),
                _ => "?".to_owned(),
            };
            let uploaded = if t.uploaded { "yes" } else { "no" };
            println!("  {:<24} {uploaded:<8} {readers:<32} {rule}", t.name);
        }
    }

    println!("\nscript operators (jobs may run these here as script:NAME)");
    if r.operators.is_empty() {
        println!("  none");
    }
    for op in &r.operators {
        let mut extra = String::new();
        if !op.env.is_empty() {
            extra.push_str(&format!("  env: {}", op.env.join(", ")));
        }
        if let Some(t) = op.timeout_s {
            extra.push_str(&format!("  timeout: {t}s"));
        }
        println!("  {:<16} {:?}{extra}", op.name, op.command);
    }
}

fn format_duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `consort job submit --wait | head -1`: when the reader goes away, stop quietly with the
/// shell's SIGPIPE status instead of a panic message (println! panics on a closed stdout).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
