//! `consort.toml`: the daemon's configuration.
//!
//! Parsed in two stages: serde reads the file strictly (unknown keys are errors, so a typo never
//! silently falls back to a default), then [`Config::validate`] checks values and returns the
//! settings the daemon actually runs with.

use std::path::{Path, PathBuf};

use consort_protocol::{DEFAULT_MAX_FRAME_BYTES, PartyName};
use serde::{Deserialize, Serialize};

use crate::paths;

/// Errors reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the line and key.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The contents of `consort.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This organization's party name, `[a-z0-9][a-z0-9-]{0,62}`.
    pub party: PartyName,
    /// libp2p listen multiaddrs.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Data directory; defaults to the directory holding this file.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Control socket path; defaults to `<data_dir>/consortd.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Largest control-socket frame accepted, in bytes.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Local database.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Partner organizations: the only peers allowed to connect.
    #[serde(default)]
    pub partners: Vec<PartnerConfig>,
    /// What partners may ask of this party.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Locally registered script operators, by name.
    #[serde(default)]
    pub operators: std::collections::BTreeMap<String, OperatorConfig>,
    /// Peer-to-peer network.
    #[serde(default)]
    pub network: NetworkSection,
    /// Online serving: the inference APIs and feature sources.
    #[serde(default)]
    pub serving: crate::serving_config::ServingSection,
    /// The board (jobs, models, serving and partners in a browser) and `/metrics`.
    #[serde(default)]
    pub board: BoardSection,
}

/// `[board]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSection {
    /// Where the board and `/metrics` are served (loopback only); off when absent.
    #[serde(default)]
    pub listen: Option<String>,
    /// Show only: the board refuses every action (stop, rerun, approve, reject, promote,
    /// rollback) with 403.
    #[serde(default)]
    pub read_only: bool,
}

/// `[network]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Federation name: partners gossip records on one topic per federation.
    #[serde(default = "default_federation")]
    pub federation: String,
    /// Find partners on the local network with mDNS.
    #[serde(default)]
    pub mdns: bool,
    /// Learn partner addresses from connected partners (Kademlia among partners only).
    #[serde(default = "default_true")]
    pub kademlia: bool,
    /// Longest pause between redials of an unreachable partner, in seconds.
    #[serde(default = "default_redial_max_s")]
    pub redial_max_s: u64,
    /// Period of the record catch-up with every connected partner, in seconds.
    #[serde(default = "default_antientropy_s")]
    pub antientropy_s: u64,
    /// Deadline of one request attempt to a partner, in seconds.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u64,
    /// Largest message accepted from a partner, in bytes.
    #[serde(default = "default_max_frame_bytes")]
    pub max_message_bytes: usize,
    /// Most replicated records one partner may have this daemon hold (its quota).
    #[serde(default = "default_records_per_partner")]
    pub records_per_partner: u64,
    /// Most bytes of replicated record values one partner may have this daemon hold.
    #[serde(default = "default_record_bytes_per_partner")]
    pub record_bytes_per_partner: u64,
    /// Relay for partners behind NAT (partners only: nobody else may connect).
    #[serde(default)]
    pub relay: bool,
    /// Circuits a relay keeps open at once, over all partners.
    #[serde(default = "default_relay_max_circuits")]
    pub relay_max_circuits: u64,
    /// MiB one relayed circuit may carry before the relay closes it.
    #[serde(default = "default_relay_max_circuit_mb")]
    pub relay_max_circuit_mb: u64,
    /// Seconds one relayed circuit may stay open.
    #[serde(default = "default_relay_max_circuit_s")]
    pub relay_max_circuit_s: u64,
    /// Whether partners can dial this daemon: `auto` (AutoNAT asks partners to dial back),
    /// `public` (never take a relay slot) or `private` (take one at partner relays at once).
    #[serde(default)]
    pub nat: NatSetting,
}

/// `[network] nat`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatSetting {
    /// AutoNAT decides.
    #[default]
    Auto,
    /// Reachable.
    Public,
    /// Behind NAT.
    Private,
}

fn default_relay_max_circuits() -> u64 {
    consort_actors::network::RelayLimits::default().max_circuits as u64
}
fn default_relay_max_circuit_mb() -> u64 {
    consort_actors::network::RelayLimits::default().max_circuit_bytes >> 20
}
fn default_relay_max_circuit_s() -> u64 {
    consort_actors::network::RelayLimits::default()
        .max_circuit_duration
        .as_secs()
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            federation: default_federation(),
            mdns: false,
            kademlia: true,
            redial_max_s: default_redial_max_s(),
            antientropy_s: default_antientropy_s(),
            request_timeout_s: default_request_timeout_s(),
            max_message_bytes: default_max_frame_bytes(),
            records_per_partner: default_records_per_partner(),
            record_bytes_per_partner: default_record_bytes_per_partner(),
            relay: false,
            relay_max_circuits: default_relay_max_circuits(),
            relay_max_circuit_mb: default_relay_max_circuit_mb(),
            relay_max_circuit_s: default_relay_max_circuit_s(),
            nat: NatSetting::Auto,
        }
    }
}

fn default_records_per_partner() -> u64 {
    consort_actors::network::MAX_RECORDS_PER_ORIGIN
}
fn default_record_bytes_per_partner() -> u64 {
    consort_actors::network::MAX_BYTES_PER_ORIGIN
}

fn default_federation() -> String {
    "default".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_redial_max_s() -> u64 {
    30
}
fn default_antientropy_s() -> u64 {
    3
}
fn default_request_timeout_s() -> u64 {
    10
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Filter directive when `RUST_LOG` is not set (`info`, `consort=debug,info`, ...).
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` (readable lines) or `json` (one object per line).
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// sled page cache, in MiB.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            cache_mb: default_cache_mb(),
        }
    }
}

/// `[[partners]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// The partner's party name.
    pub party: PartyName,
    /// The partner's PeerId (printed by its `consortd init`).
    pub peer_id: String,
    /// Where to dial it; may be empty when discovery finds it.
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// `[policy]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Parties whose job proposals are considered (`"*"` for every partner).
    #[serde(default)]
    pub accept_from: Vec<String>,
    /// Components partners may run here (empty: every built-in component).
    #[serde(default)]
    pub components: Vec<String>,
    /// Hold every proposal until `consort job approve`.
    #[serde(default)]
    pub manual_approval: bool,
    /// Parties allowed to read this party's task logs.
    #[serde(default)]
    pub share_logs_with: Vec<String>,
    /// Table (or `"*"`) → parties (or `"*"`) whose jobs may read it.
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[operators.NAME]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Kill the process after this many seconds.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

fn default_listen() -> Vec<String> {
    default_listen_addrs()
}
fn default_max_frame_bytes() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}
fn default_log_level() -> String {
    "info".to_owned()
}
fn default_cache_mb() -> u64 {
    16
}

/// Listen address written by `consortd init` when none is given.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/4750";
/// QUIC next to it, on the same port number (hole punching works best over UDP).
pub const DEFAULT_LISTEN_QUIC: &str = "/ip4/0.0.0.0/udp/4750/quic-v1";

/// The listen addresses when none are given.
pub fn default_listen_addrs() -> Vec<String> {
    vec![DEFAULT_LISTEN.to_owned(), DEFAULT_LISTEN_QUIC.to_owned()]
}

/// Settings resolved from a validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The parsed file.
    pub config: Config,
    /// The file it came from.
    pub config_path: PathBuf,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Absolute control socket path.
    pub socket: PathBuf,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, as read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate(path)
    }

    /// Checks values and resolves paths.
    pub fn validate(self, path: &Path) -> Result<Settings, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        for (i, addr) in self.listen.iter().enumerate() {
            addr.parse::<multiaddr::Multiaddr>().map_err(|e| {
                invalid(
                    &format!("listen[{i}]"),
                    format!("'{addr}' is not a multiaddr: {e}"),
                )
            })?;
        }
        let mut seen = std::collections::HashMap::new();
        for (i, p) in self.partners.iter().enumerate() {
            if let Some(first) = seen.insert(p.peer_id.clone(), p.party.clone()) {
                return Err(invalid(
                    &format!("partners[{i}].peer_id"),
                    format!(
                        "{} is already the PeerId of partner '{first}'; one key, one party",
                        p.peer_id
                    ),
                ));
            }
            if self.partners[..i].iter().any(|q| q.party == p.party) {
                return Err(invalid(
                    &format!("partners[{i}].party"),
                    format!("'{}' is listed twice", p.party),
                ));
            }
            p.peer_id.parse::<libp2p_identity::PeerId>().map_err(|e| {
                invalid(
                    &format!("partners[{i}].peer_id"),
                    format!("'{}': {e}", p.peer_id),
                )
            })?;
            for (j, addr) in p.addrs.iter().enumerate() {
                addr.parse::<multiaddr::Multiaddr>().map_err(|e| {
                    invalid(
                        &format!("partners[{i}].addrs[{j}]"),
                        format!("'{addr}' is not a multiaddr: {e}"),
                    )
                })?;
            }
            if p.party == self.party {
                return Err(invalid(
                    &format!("partners[{i}].party"),
                    "a party cannot be its own partner".into(),
                ));
            }
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > u32::MAX as usize {
            return Err(invalid(
                "max_frame_bytes",
                format!(
                    "{} is out of range (1024 ..= 4294967295)",
                    self.max_frame_bytes
                ),
            ));
        }
        let n = &self.network;
        if n.federation.is_empty()
            || !n
                .federation
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "network.federation",
                format!("'{}' must be letters, digits, '-' or '_'", n.federation),
            ));
        }
        for (key, v) in [
            ("network.redial_max_s", n.redial_max_s),
            ("network.antientropy_s", n.antientropy_s),
            ("network.request_timeout_s", n.request_timeout_s),
            ("network.relay_max_circuit_s", n.relay_max_circuit_s),
            ("network.relay_max_circuits", n.relay_max_circuits),
        ] {
            if v == 0 || v > 86_400 {
                return Err(invalid(key, format!("{v} is out of range (1 ..= 86400)")));
            }
        }
        if n.relay_max_circuit_mb == 0 || n.relay_max_circuit_mb > 1 << 20 {
            return Err(invalid(
                "network.relay_max_circuit_mb",
                format!("{} is out of range (1 ..= 1048576)", n.relay_max_circuit_mb),
            ));
        }
        if n.max_message_bytes < 1024 || n.max_message_bytes > u32::MAX as usize {
            return Err(invalid(
                "network.max_message_bytes",
                format!("{} is out of range", n.max_message_bytes),
            ));
        }
        if self.storage.cache_mb == 0 {
            return Err(invalid("storage.cache_mb", "must be at least 1".into()));
        }
        for (name, op) in &self.operators {
            if op.command.is_empty() {
                return Err(invalid(
                    &format!("operators.{name}.command"),
                    "must name a program".into(),
                ));
            }
        }
        self.serving.check(&invalid)?;
        if let Some(a) = &self.board.listen {
            let parsed: std::net::SocketAddr = a.parse().map_err(|e| {
                invalid(
                    "board.listen",
                    format!("'{a}' is not an address (IP:PORT): {e}"),
                )
            })?;
            if !parsed.ip().is_loopback() {
                return Err(invalid(
                    "board.listen",
                    format!("{a} is beyond loopback; the board listens on loopback only"),
                ));
            }
        }
        let base = paths::absolute(path.parent().unwrap_or(Path::new(".")));
        let data_dir = match &self.data_dir {
            Some(d) => paths::absolute(&base.join(d)),
            None => base,
        };
        let socket = match &self.socket {
            Some(s) => paths::absolute(&data_dir.join(s)),
            None => data_dir.join(paths::SOCKET_FILE),
        };
        Ok(Settings {
            config: self,
            config_path: paths::absolute(path),
            data_dir,
            socket,
        })
    }
}

/// The commented `consort.toml` written by `consortd init`.
pub fn render_template(party: &PartyName, peer_id: &str, listen: &[String]) -> String {
    let listen = listen
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# Consort daemon configuration for party "{party}".
# This party's PeerId (give it to your partners): {peer_id}
# Start the daemon with:  consortd run --dir <this directory>

# This organization's name in federations: [a-z0-9][a-z0-9-]{{0,62}}.
party = "{party}"

# libp2p listen addresses (multiaddrs): TCP and QUIC (/udp/PORT/quic-v1). Partners dial these.
listen = [{listen}]

# Control socket for the `consort` CLI (default: consortd.sock in this directory; mode 0600).
# socket = "/run/consort/consortd.sock"

# Largest control-socket message, in bytes (default 64 MiB).
# max_frame_bytes = 67108864

[log]
# Used when RUST_LOG is not set: "info", "debug", or directives like "consort=debug,info".
level = "info"
# "text" for readable lines, "json" for one JSON object per line.
format = "text"

[storage]
# sled page cache in MiB.
cache_mb = 16

[policy]
# Parties whose job proposals this daemon considers; "*" means every partner.
accept_from = ["*"]
# Components partners may run here; empty means every built-in component.
components = []
# Hold every proposal until an operator runs `consort job approve`.
manual_approval = false
# Parties allowed to read this party's task logs.
share_logs_with = []

# Which of this party's tables (`consort data upload`) may be read in jobs with which
# partners. A table not covered may only be used in jobs of this party alone.
[policy.tables]
# breast_guest = ["insurer-b"]       # this table, in jobs with insurer-b
# "*" = ["*"]                        # every table, with every partner

[network]
# Partners gossip job and task records on one topic per federation.
federation = "default"
# Find partners on the local network by mDNS (then their addrs may be left empty).
mdns = false
# Learn partner addresses from any connected partner (a Kademlia DHT among partners only).
kademlia = true
# Longest pause between redials of an unreachable partner, and the catch-up period (seconds).
redial_max_s = 30
antientropy_s = 3
# Behind NAT: "auto" asks partners to dial back (AutoNAT); "private" takes a slot at partner
# relays at once; "public" never does. A daemon partners can dial may relay for them
# (partners only), within limits per circuit; a relayed connection tries to become direct by
# hole punching and stays relayed when the NATs do not allow it.
nat = "auto"
relay = false
# relay_max_circuits = 64
# relay_max_circuit_mb = 1024
# relay_max_circuit_s = 3600
# Quotas: most replicated records, and bytes of them, that one partner may have us hold.
# records_per_partner = 100000
# record_bytes_per_partner = 268435456

# Partners: the only peers allowed to connect. One block per partner organization:
# [[partners]]
# party = "insurer-b"
# peer_id = "12D3KooW..."
# addrs = ["/ip4/192.0.2.10/tcp/4750"]

# Script operators jobs may name as `component: script:NAME`. Only these run here:
# [operators.prep]
# command = ["python3", "/srv/ops/prep.py"]
# env = {{ PYTHONUNBUFFERED = "1" }}
# timeout_s = 600

# Online serving (`consort serve …`). At a guest, the inference APIs (loopback; beyond it a
# token_file and tls_cert/tls_key are required):
# [serving]
# listen = "127.0.0.1:8470"          # HTTP/JSON: POST /v1/services/NAME/infer
# grpc_listen = "127.0.0.1:8471"     # gRPC: consort.inference.v1.Inference
# token_file = "api.token"           # bearer token, file mode 0600
# At every party, where its features for a service come from (a host needs one; a guest may
# take them from the requests), and a host's quota of partial scores for its guest:
# [serving.sources.breast]
# table = "breast_host"              # or command = ["..."] (JSON lines), or url = "http://..."
# quota_per_minute = 600000

# The board (jobs, DAGs, logs, plots, models, serving, partners) at http://ADDR/ — `consort
# board` prints the address with its login token — and Prometheus metrics at
# http://ADDR/metrics (loopback only):
# [board]
# listen = "127.0.0.1:8480"
# read_only = false                  # true: show only, refuse stop/rerun/approve/promote
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(s: &str) -> PartyName {
        PartyName::new(s).expect("valid")
    }

    #[test]
    fn template_parses_and_validates() {
        let text = render_template(
            &party("bank-a"),
            "12D3KooWx",
            &["/ip4/127.0.0.1/tcp/0".into()],
        );
        let s = Config::parse(&text, Path::new("/srv/consort/consort.toml")).expect("valid");
        assert_eq!(s.config.party.as_str(), "bank-a");
        assert_eq!(s.data_dir, Path::new("/srv/consort"));
        assert_eq!(s.socket, Path::new("/srv/consort/consortd.sock"));
        assert_eq!(s.config.policy.accept_from, vec!["*"]);
        assert!(s.config.partners.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("party = \"Bad\"", "party"),
            ("party = \"a\"\nlisten = [\"nope\"]", "listen[0]"),
            ("party = \"a\"\ntypo = 1", "typo"),
            ("party = \"a\"\nmax_frame_bytes = 3", "max_frame_bytes"),
            (
                "party = \"a\"\n[[partners]]\nparty = \"b\"\npeer_id = \"xyz\"",
                "partners[0].peer_id",
            ),
            (
                "party = \"a\"\n[operators.x]\ncommand = []",
                "operators.x.command",
            ),
            (
                "party = \"a\"\n[serving]\nlisten = \"0.0.0.0:8470\"",
                "serving.listen",
            ),
            (
                "party = \"a\"\n[serving]\nlisten = \"0.0.0.0:1\"\ntoken_file = \"t\"",
                "serving.listen",
            ),
            (
                "party = \"a\"\n[serving]\ngrpc_listen = \"nope\"",
                "serving.grpc_listen",
            ),
            (
                "party = \"a\"\n[serving]\ntls_cert = \"c.pem\"",
                "serving.tls_cert",
            ),
            (
                "party = \"a\"\n[serving.sources.x]\ntable = \"t\"\ncommand = [\"a\"]",
                "serving.sources.x",
            ),
            ("party = \"a\"\n[serving.sources.x]\n", "serving.sources.x"),
            (
                "party = \"a\"\n[serving.sources.X]\ntable = \"t\"",
                "serving.sources.X",
            ),
            (
                "party = \"a\"\n[serving.sources.x]\nurl = \"ftp://h/\"",
                "serving.sources.x.url",
            ),
            (
                "party = \"a\"\n[serving.sources.x]\ntable = \"../t\"",
                "serving.sources.x.table",
            ),
            ("party = \"a\"\n[network]\nnat = \"sideways\"", "nat"),
            (
                "party = \"a\"\n[network]\nrelay_max_circuit_mb = 0",
                "network.relay_max_circuit_mb",
            ),
            (
                "party = \"a\"\n[network]\nrelay_max_circuits = 0",
                "network.relay_max_circuits",
            ),
            (
                "party = \"a\"\n[network]\nrelay_max_circuit_s = 0",
                "network.relay_max_circuit_s",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(text, Path::new("/c/consort.toml"))
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let s = Config::parse(
            "party = \"a\"\ndata_dir = \"data\"\nsocket = \"s.sock\"",
            Path::new("/etc/c/consort.toml"),
        )
        .expect("valid");
        assert_eq!(s.data_dir, Path::new("/etc/c/data"));
        assert_eq!(s.socket, Path::new("/etc/c/data/s.sock"));
    }
}
