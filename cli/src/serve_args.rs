//! `consort serve …` arguments.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

/// `consort serve ...`
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Load MODEL@REV at every party of the model under a service name (run at the guest).
    ///
    /// Every party loads its part and indexes its feature source (a host's is
    /// `[serving.sources.NAME]` in its consort.toml), then all switch together; one refusal or
    /// an unreachable party changes nothing anywhere, and the error names the party. A new
    /// service gets all the traffic; deploying another version of the same model into an
    /// existing service loads it without traffic (then `serve route` or `serve promote`); the
    /// service keeps its options.
    Deploy {
        /// The model: ID@REV (a version, tag, branch or commit; ID alone: its main branch).
        model: String,
        /// The service name ([a-z0-9][a-z0-9_-]{0,63}).
        #[arg(long)]
        service: String,
        /// Post-processing: answer a label, 1 when the score is at least T.
        #[arg(long, value_name = "T")]
        threshold: Option<f64>,
        /// Pre-processing: the value of a guest feature missing from a request (repeatable).
        #[arg(long = "default", value_name = "FEATURE=VALUE")]
        defaults: Vec<String>,
        /// Pre-processing: clip a guest feature into [LOW, HIGH] (repeatable).
        #[arg(long, value_name = "FEATURE=LOW:HIGH")]
        clip: Vec<String>,
        /// Post-processing: calibrate the score as sigmoid(A·logit(score) + B).
        #[arg(long, value_name = "A,B")]
        calibrate: Option<String>,
        /// When a host is down or late: fail the request (503) or answer with the guest's part
        /// alone, flagged `guest_only`.
        #[arg(long, value_enum, default_value_t = OnHostFailure::Fail)]
        on_host_failure: OnHostFailure,
        /// How long the guest waits for the hosts, in milliseconds.
        #[arg(long, default_value_t = consort_protocol::serving::default_deadline_ms())]
        deadline_ms: u64,
        /// Reuse a host's partial score for the same version and id for this long (0: off).
        #[arg(long, default_value_t = 0)]
        cache_ttl_ms: u64,
        /// Most partial scores cached per host.
        #[arg(long, default_value_t = 100_000)]
        cache_entries: usize,
        /// Score with the guest's part alone and never ask the hosts (a baseline for the cost
        /// of the host hop; replies are flagged guest_only). The hosts take no part.
        #[arg(long)]
        without_hosts: bool,
    },
    /// List the services this party serves.
    List,
    /// One service: role, parties, loaded versions and their traffic weights, options.
    Show {
        /// Service name.
        service: String,
    },
    /// Remove a service at every party.
    Undeploy {
        /// Service name.
        service: String,
    },
    /// Split traffic between versions, sticky by id (e.g. --split v1=90,v2=10), agreed by every
    /// party; versions not loaded yet are loaded everywhere first.
    Route {
        /// Service name.
        service: String,
        /// VERSION=WEIGHT,... (a version or a unique prefix of a loaded one).
        #[arg(long)]
        split: String,
    },
    /// Send all traffic to one version, at every party.
    Promote {
        /// Service name.
        service: String,
        /// Version (or a unique prefix).
        version: String,
    },
    /// Return to the split before the last route or promote, at every party.
    Rollback {
        /// Service name.
        service: String,
    },
    /// Per version: requests, errors, p50/p99 latency, cache hits, and online AUC/KS from
    /// feedback.
    Stats {
        /// Service name.
        service: String,
    },
    /// Join labels that arrived later to the scores given (CSV with an id and a label column).
    Feedback {
        /// Service name.
        service: String,
        /// The CSV file.
        file: PathBuf,
        /// The id column (ids, or the request ids given with the requests).
        #[arg(long, default_value = "id")]
        id_column: String,
        /// The label column (0/1).
        #[arg(long, default_value = "y")]
        label_column: String,
    },
    /// Score ids through the same path as the APIs: a CSV with an id column and, optionally,
    /// the guest's features (without them, the guest's feature source is used).
    Predict {
        /// Service name.
        service: String,
        /// The CSV file.
        #[arg(long)]
        input: PathBuf,
        /// Write the scores here as CSV (default: stdout).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The id column.
        #[arg(long, default_value = "id")]
        id_column: String,
    },
}

/// `--on-host-failure`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnHostFailure {
    /// Fail the request, naming the party.
    Fail,
    /// Answer with the guest's part alone, flagged.
    GuestOnly,
}
