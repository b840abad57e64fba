//! Online serving (issue 12): what `consort serve …` asks of the local daemon and what it
//! answers, and the inference request and reply shared by the HTTP/JSON API, the gRPC API and
//! `serve predict`.
//!
//! A *service* is a name bound, at every party of a model, to one or more loaded versions of it
//! and a traffic split between them. The guest coordinates every change (deploy, route, promote,
//! rollback, undeploy) in two phases and answers inference requests; each host answers its
//! partial scores.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest service name.
pub const MAX_SERVICE_NAME: usize = 64;

/// Whether `name` may name a service: `[a-z0-9][a-z0-9_-]{0,63}` (it is data, never a path).
pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SERVICE_NAME
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// What the guest does when a host cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostFailure {
    /// The request fails, naming the party (HTTP 503, gRPC UNAVAILABLE).
    #[default]
    Fail,
    /// The guest's partial score alone is used, and the reply says so (`guest_only`).
    GuestOnly,
}

/// The declared pre- and post-processing of a deployment, and how it treats hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingOptions {
    /// Pre: values for guest features missing from a request, by feature name.
    #[serde(default)]
    pub defaults: BTreeMap<String, f64>,
    /// Pre: each named guest feature is clipped into `[low, high]` before scoring.
    #[serde(default)]
    pub clip: BTreeMap<String, (f64, f64)>,
    /// Post: calibration of the score, `sigmoid(a · logit(score) + b)`.
    #[serde(default)]
    pub calibration: Option<(f64, f64)>,
    /// Post: a label (1 when score ≥ threshold, else 0).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// A host down or late: fail, or answer with the guest's part alone (flagged).
    #[serde(default)]
    pub on_host_failure: HostFailure,
    /// How long the guest waits for the hosts' partial scores, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// How long a host's partial score is reused for the same version and id (0: no cache).
    #[serde(default)]
    pub cache_ttl_ms: u64,
    /// Most partial scores cached per host.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Score with the guest's part alone, never asking the hosts (a baseline for the cost of
    /// the host hop); every reply is flagged `guest_only`. The hosts take no part in it.
    #[serde(default)]
    pub without_hosts: bool,
}

impl Default for ServingOptions {
    fn default() -> Self {
        Self {
            defaults: BTreeMap::new(),
            clip: BTreeMap::new(),
            calibration: None,
            threshold: None,
            on_host_failure: HostFailure::Fail,
            deadline_ms: default_deadline_ms(),
            cache_ttl_ms: 0,
            cache_entries: default_cache_entries(),
            without_hosts: false,
        }
    }
}

/// The default deadline for the hosts' answers.
pub fn default_deadline_ms() -> u64 {
    1000
}

fn default_cache_entries() -> usize {
    100_000
}

/// A traffic split: version → weight (weights need not sum to 100; 0 keeps a version loaded
/// without traffic).
pub type Split = Vec<(String, u32)>;

/// `consort serve …`, as sent to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServeRequest {
    /// Loads `model` (`ID@REV`) at every party under `service`: a new service gets all its
    /// traffic; an existing service of the same model gets the version loaded without traffic.
    Deploy {
        /// Service name.
        service: String,
        /// `ID@REV` (a version, tag, branch or commit).
        model: String,
        /// Pre/post-processing and host handling (a new service only).
        options: ServingOptions,
    },
    /// Every service here.
    List,
    /// One service.
    Show {
        /// Service name.
        service: String,
    },
    /// Removes a service at every party.
    Undeploy {
        /// Service name.
        service: String,
    },
    /// Sets the traffic split, loading any version not loaded yet, at every party.
    Route {
        /// Service name.
        service: String,
        /// Versions (or unique prefixes of loaded ones) and weights.
        split: Split,
    },
    /// All traffic to one version.
    Promote {
        /// Service name.
        service: String,
        /// Version (or a unique prefix).
        version: String,
    },
    /// Back to the split before the last route or promote.
    Rollback {
        /// Service name.
        service: String,
    },
    /// Per version: requests, errors, latency, cache hits, online AUC/KS.
    Stats {
        /// Service name.
        service: String,
    },
    /// Labels that arrived later, joined to the scores given for the same ids.
    Feedback {
        /// Service name.
        service: String,
        /// (id or request id, label 0/1).
        labels: Vec<(String, u8)>,
    },
    /// Scores rows through the same path as the APIs.
    Predict {
        /// Service name.
        service: String,
        /// The rows.
        rows: Vec<InferInput>,
    },
}

/// One inference request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferInput {
    /// The id every party's feature source knows.
    pub id: String,
    /// Optional; echoed and kept with the score for feedback.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The guest's features by name (none: the guest's own feature source, if configured).
    #[serde(default)]
    pub features: BTreeMap<String, f64>,
}

impl InferInput {
    /// One request per row of `data` (its ids, and its features by name).
    pub fn rows_of(data: &crate::data::Dataset) -> Vec<InferInput> {
        (0..data.ids.len())
            .map(|i| InferInput {
                id: data.ids[i].clone(),
                request_id: None,
                features: data
                    .feature_names
                    .iter()
                    .zip(&data.columns)
                    .map(|(n, c)| (n.clone(), c[i]))
                    .collect(),
            })
            .collect()
    }
}

/// How long one party's part took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyTiming {
    /// The party.
    pub party: String,
    /// Microseconds (a host: its round trip; 0 on a cache hit).
    pub micros: u64,
    /// Answered from the cache.
    pub cached: bool,
}

/// One inference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferOutput {
    /// The id.
    pub id: String,
    /// The request id, if one was given.
    pub request_id: Option<String>,
    /// The score (after calibration, if declared).
    pub score: f64,
    /// 1/0 when the deployment has a threshold.
    pub label: Option<i32>,
    /// The model version that answered.
    pub version: String,
    /// A host failed and the deployment allows guest-only scores.
    pub guest_only: bool,
    /// Per party.
    pub timings: Vec<PartyTiming>,
    /// Microseconds from receipt to answer, inside the daemon.
    pub total_micros: u64,
}

/// Why a request was not answered, with the status an API gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum InferError {
    /// No such service here (HTTP 404, gRPC NOT_FOUND).
    #[error("{message}")]
    NotFound {
        /// Message.
        message: String,
    },
    /// The request is malformed or lacks a feature (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{message}")]
    BadRequest {
        /// Message naming the feature or id.
        message: String,
    },
    /// A host failed or was late (HTTP 503, gRPC UNAVAILABLE); names the party.
    #[error("{message}")]
    Unavailable {
        /// Message naming the party.
        message: String,
        /// The party.
        party: String,
    },
    /// This party is not the one that answers (a host), or another internal failure (HTTP 500).
    #[error("{message}")]
    Internal {
        /// Message.
        message: String,
    },
}

/// One loaded version of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedVersion {
    /// The model version (training job id).
    pub version: String,
    /// The commit at this party.
    pub commit: String,
    /// Its traffic weight.
    pub weight: u32,
}

/// A service as `serve show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Name.
    pub name: String,
    /// Model id.
    pub model_id: String,
    /// This party's role (`guest`, `host`, `local` for homo LR).
    pub role: String,
    /// The guest (who answers requests).
    pub guest: String,
    /// The hosts.
    pub hosts: Vec<String>,
    /// Loaded versions and their weights.
    pub versions: Vec<ServedVersion>,
    /// The split `serve rollback` returns to, if any.
    pub previous: Option<Split>,
    /// Declared options.
    pub options: ServingOptions,
    /// When the last change took effect (ms since the epoch).
    pub changed_at_ms: u64,
}

/// Per-version statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionStats {
    /// The version.
    pub version: String,
    /// Its weight now.
    pub weight: u32,
    /// Requests answered or failed.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Answers with the guest's part alone.
    pub guest_only: u64,
    /// Median latency inside the daemon, µs.
    pub p50_micros: u64,
    /// 99th percentile, µs.
    pub p99_micros: u64,
    /// Host partial scores from the cache.
    pub cache_hits: u64,
    /// Host partial scores asked for.
    pub cache_misses: u64,
    /// Scores joined with a label.
    pub labelled: u64,
    /// AUC of the labelled scores (at least one of each class).
    pub auc: Option<f64>,
    /// KS of the labelled scores.
    pub ks: Option<f64>,
}

/// `serve stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeStats {
    /// Service.
    pub service: String,
    /// One entry per version that is loaded or answered since the start.
    pub versions: Vec<VersionStats>,
    /// Host partial-score requests refused by a host's quota (at a host: refused here).
    pub quota_refused: u64,
}

/// `serve feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReport {
    /// Labels joined to a score.
    pub matched: u64,
    /// Labels for ids (or request ids) no kept score has.
    pub unmatched: u64,
}

/// Answers to [`ServeRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ServeResponse {
    /// Deploy, route, promote, rollback, show.
    Service {
        /// The service after the change (boxed: the largest answer).
        service: Box<ServiceInfo>,
    },
    /// List.
    Services {
        /// Every service.
        services: Vec<ServiceInfo>,
    },
    /// Undeploy.
    Undeployed {
        /// The parties that removed it.
        parties: Vec<String>,
    },
    /// Stats.
    Stats(ServeStats),
    /// Feedback.
    Feedback(FeedbackReport),
    /// Predict: one outcome per row.
    Predictions {
        /// In row order.
        items: Vec<Result<InferOutput, InferError>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_data_not_paths() {
        for ok in ["breast", "a", "risk-v2_b", "0x"] {
            assert!(valid_service_name(ok), "{ok}");
        }
        for bad in ["", "../x", "A", "a/b", "-a", "a b", &"x".repeat(65)] {
            assert!(!valid_service_name(bad), "{bad}");
        }
    }
}
