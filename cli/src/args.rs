//! The command line: every `consort` command and its arguments (clap), in one place.
//!
//! Parsing only; what each command does is in `remote/` (commands that ask the daemon) and
//! `local/` (commands that need no daemon).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Drive a local consortd: the daemon that federates your organization's ML with partners.
#[derive(Debug, Parser)]
#[command(
    name = "consort",
    version,
    about = "Drive a local consortd: partners, federated jobs, tables, model versions and serving",
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
    Demo(DemoArgs),
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
    Data(DataCommand),
    /// Model versions: list, history, tags, branches, rollback agreed by every party, export.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Metrics logged by tasks (loss per iteration, AUC, ...).
    #[command(subcommand)]
    Metric(MetricCommand),
    /// Online serving: deploy a model version at every party, route traffic between versions,
    /// score ids, and compare versions on labels that come back.
    #[command(subcommand)]
    Serve(crate::serve_args::ServeCommand),
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
    /// Print the address of this daemon's board (jobs, DAGs, logs, plots, models, serving,
    /// partners in a browser), with its login token, and optionally open it.
    ///
    /// The board is served by consortd when its consort.toml has `[board] listen =
    /// "127.0.0.1:PORT"` (loopback only). The URL carries the login token kept in the data
    /// directory (board.token, mode 0600): anyone with it can see this party's jobs and, unless
    /// `[board] read_only = true`, stop, rerun, approve or reject them and promote or roll back
    /// services. Treat it as a password. --json prints {"url", "read_only"}.
    Board {
        /// Open the URL in the desktop's browser (xdg-open, or $BROWSER).
        #[arg(long)]
        open: bool,
    },
    /// Print a completion script for a shell, e.g. `consort completions bash >
    /// /etc/bash_completion.d/consort` or `consort completions zsh > "${fpath[1]}/_consort"`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions: `consort man > consort.1`.
    Man,
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
    /// Draw the job's DAG, each task coloured by its state and its parties listed, as SVG or
    /// PNG by the output's extension: `consort job dag JOB -o dag.svg`.
    Dag {
        /// Job id.
        id: String,
        /// The file to write: .svg or .png.
        #[arg(short = 'o', long)]
        output: PathBuf,
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
    /// Draw a series as a line chart, SVG or PNG by the output's extension (one line per role
    /// that logged it), e.g. `consort metric plot JOB lr loss -o loss.svg`.
    Plot {
        /// Job id.
        id: String,
        /// Task.
        task: String,
        /// NAME, or NAMESPACE/NAME when two namespaces have one.
        name: String,
        /// The file to write: .svg or .png.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Width in pixels.
        #[arg(long, default_value_t = 800)]
        width: u32,
        /// Height in pixels.
        #[arg(long, default_value_t = 500)]
        height: u32,
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

/// `consort data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Store a CSV file (with a header) as a table of this party: an id column, an optional
    /// label column, every other column a numeric feature. Errors name the line and column;
    /// nothing is stored on error.
    Upload {
        /// The CSV file.
        file: PathBuf,
        /// Table name (what jobs name in `reader`'s `table` param).
        #[arg(long)]
        name: String,
        /// The id column (the key PSI matches across parties).
        #[arg(long, default_value = "id")]
        id_column: String,
        /// The label column; a file without it (a host's) has no label.
        #[arg(long, default_value = "y")]
        label_column: String,
        /// Field delimiter (one character; `\t` for tabs).
        #[arg(long, default_value = ",")]
        delimiter: String,
        /// Replace a table of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// List this party's tables.
    List,
    /// Show a table's schema and first rows.
    Show {
        /// Table name.
        name: String,
        /// Rows to show.
        #[arg(long, default_value_t = 5)]
        head: u32,
    },
    /// Delete a table.
    Delete {
        /// Table name.
        name: String,
    },
}

/// `consort model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every model version stored at this party (one per successful training job).
    List,
    /// One version: parts, params, metrics, job. `ID@REV` where REV is a version (job id),
    /// a tag, a branch, `BRANCH~N` or a commit hash prefix; `ID` alone is `ID@main`.
    Show {
        /// `MODEL_ID[@REV]`.
        model: String,
    },
    /// History, newest first: one line per commit with its branch and tag names.
    Log {
        /// Model id.
        model: String,
        /// This branch (default main).
        #[arg(long)]
        branch: Option<String>,
        /// Every commit of the model, on any branch.
        #[arg(long)]
        all: bool,
    },
    /// Tag a revision at every participant (agreed in two phases; nothing changes anywhere
    /// if one refuses or is unreachable).
    Tag {
        /// `ID@REV`.
        rev: String,
        /// Tag name.
        name: String,
        /// Message.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Create a branch at every participant (two phases).
    Branch {
        /// Model id.
        model: String,
        /// Branch name.
        name: String,
        /// Start from this revision (default: the head of main).
        #[arg(long)]
        from: Option<String>,
    },
    /// Move a branch to a revision at every participant (two phases); the move is in the
    /// reflog and another rollback undoes it.
    Rollback {
        /// Model id.
        model: String,
        /// Target revision.
        #[arg(long)]
        to: String,
        /// Branch to move.
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Differences between two revisions: params, metrics, artifact hashes.
    Diff {
        /// `ID@REV`.
        a: String,
        /// `ID@REV`.
        b: String,
    },
    /// Write this party's part of `ID@REV` to one checksummed archive.
    Export {
        /// `ID@REV`.
        rev: String,
        /// Archive file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Verify an archive and store it (identical commit hash and artifacts).
    Import {
        /// Archive file.
        file: PathBuf,
    },
    /// Delete a version here; refused while a branch or tag points at it unless --force.
    Delete {
        /// `ID@VERSION`.
        model: String,
        /// Delete even if refs point at it.
        #[arg(long)]
        force: bool,
    },
    /// Ask every participant which version `ID@REV` names there: consistent, or who differs.
    Verify {
        /// `ID@REV`.
        rev: String,
    },
    /// Every move of the model's branches and tags (who, when, why), newest first.
    Reflog {
        /// Model id.
        model: String,
        /// Only this ref (`main`, `heads/main`, `tags/v1`).
        #[arg(long = "ref")]
        reference: Option<String>,
    },
}

/// Options of `consort demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many organizations: 2 (bank-a is guest and arbiter, insurer-b is host) or 3 (the
    /// arbiter is a third party, clinic-c).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub parties: u8,
    /// Data set: `breast` (569 samples, shipped inside the binary) or `default_credit` (30000
    /// samples, read from --data-dir).
    #[arg(long, default_value = "breast", value_parser = ["breast", "default_credit"])]
    pub data: String,
    /// Directory holding `<data>_hetero_guest.csv` and `<data>_hetero_host.csv` (needed for
    /// default_credit).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Paillier key size of the training (FATE's examples use 1024; the component's default is
    /// 2048).
    #[arg(long, default_value_t = 1024)]
    pub key_bits: u32,
    /// Leave the daemons running and print how to talk to each.
    #[arg(long)]
    pub keep: bool,
}
