//! `[serving]` of `consort.toml`: where the inference APIs listen, the bearer token they ask
//! for, and each service's feature source at this party.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use consort_actors::serving::{SourceConfig, SourceKind};
use consort_protocol::serving::valid_service_name;
use serde::{Deserialize, Serialize};

/// `[serving]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSection {
    /// The HTTP/JSON inference API (`POST /v1/services/NAME/infer`); off when absent.
    #[serde(default)]
    pub listen: Option<String>,
    /// The gRPC inference API (`consort.inference.v1.Inference`); off when absent.
    #[serde(default)]
    pub grpc_listen: Option<String>,
    /// A file (mode 0600) holding the bearer token every request must carry; required when an
    /// API listens beyond loopback.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) of both APIs; with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, mode 0600) of both APIs; with `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// This party's feature source per service: `[serving.sources.NAME]`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSection>,
}

impl Default for ServingSection {
    fn default() -> Self {
        Self {
            listen: None,
            grpc_listen: None,
            token_file: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: default_max_body_bytes(),
            sources: BTreeMap::new(),
        }
    }
}

/// `[serving.sources.NAME]`: one of a table, a command or an HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// An uploaded table holding this party's features by id (indexed in memory at deploy).
    #[serde(default)]
    pub table: Option<String>,
    /// A host's feature adapter: a long-running command speaking JSON lines (one request
    /// `{"ids": [...]}` in, one answer `{"rows": [{feature: value} | null, ...]}` out).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A host's feature adapter at an HTTP endpoint (`http://HOST:PORT/PATH`) taking the same
    /// request as the body of a POST and answering as the body of a 200.
    #[serde(default)]
    pub url: Option<String>,
    /// How long the adapter may take to answer one request, in milliseconds.
    #[serde(default = "default_adapter_timeout_ms")]
    pub timeout_ms: u64,
    /// Partial scores this party answers the guest per minute for the service (a host's
    /// quota: scores asked for without limit leak the features they come from).
    #[serde(default = "default_quota")]
    pub quota_per_minute: u64,
}

fn default_max_body_bytes() -> usize {
    1 << 20
}

fn default_adapter_timeout_ms() -> u64 {
    1000
}

fn default_quota() -> u64 {
    consort_actors::serving::DEFAULT_QUOTA_PER_MINUTE
}

/// What the daemon runs the APIs with.
#[derive(Debug, Clone)]
pub struct ServingApi {
    /// HTTP address.
    pub http: Option<SocketAddr>,
    /// gRPC address.
    pub grpc: Option<SocketAddr>,
    /// The bearer token, if one is asked.
    pub token: Option<String>,
    /// Largest body.
    pub max_body_bytes: usize,
    /// TLS certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl ServingSection {
    /// Checks the section; `invalid(key, message)` builds the error.
    pub fn check<E>(&self, invalid: &dyn Fn(&str, String) -> E) -> Result<(), E> {
        for (key, addr) in [
            ("serving.listen", &self.listen),
            ("serving.grpc_listen", &self.grpc_listen),
        ] {
            if let Some(a) = addr {
                let parsed: SocketAddr = a
                    .parse()
                    .map_err(|e| invalid(key, format!("'{a}' is not an address (IP:PORT): {e}")))?;
                if !parsed.ip().is_loopback()
                    && (self.token_file.is_none() || self.tls_cert.is_none())
                {
                    return Err(invalid(
                        key,
                        format!(
                            "{a} is beyond loopback: set serving.token_file (requests need a \
                             token) and serving.tls_cert/tls_key (the token and scores travel \
                             encrypted)"
                        ),
                    ));
                }
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid(
                "serving.tls_cert",
                "tls_cert and tls_key go together".into(),
            ));
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > (64 << 20) {
            return Err(invalid(
                "serving.max_body_bytes",
                format!(
                    "{} is out of range (1024 ..= 67108864)",
                    self.max_body_bytes
                ),
            ));
        }
        for (name, s) in &self.sources {
            let key = format!("serving.sources.{name}");
            if !valid_service_name(name) {
                return Err(invalid(
                    &key,
                    "not a service name ([a-z0-9][a-z0-9_-]{0,63})".into(),
                ));
            }
            match (&s.table, &s.command, &s.url) {
                (None, None, Some(u)) => {
                    if !u.starts_with("http://") {
                        return Err(invalid(
                            &format!("{key}.url"),
                            format!("'{u}' is not http://HOST:PORT/PATH"),
                        ));
                    }
                }
                (Some(t), None, None) => {
                    if !consort_storage::valid_table_name(t) {
                        return Err(invalid(
                            &format!("{key}.table"),
                            format!("'{t}' is not a table name"),
                        ));
                    }
                }
                (None, Some(c), None) => {
                    if c.first().is_none_or(|p| p.is_empty()) {
                        return Err(invalid(
                            &format!("{key}.command"),
                            "must name a program".into(),
                        ));
                    }
                }
                _ => return Err(invalid(&key, "set one of table, command or url".into())),
            }
            if s.timeout_ms == 0 || s.timeout_ms > 60_000 {
                return Err(invalid(
                    &format!("{key}.timeout_ms"),
                    "out of range (1 ..= 60000)".into(),
                ));
            }
            if s.quota_per_minute == 0 {
                return Err(invalid(
                    &format!("{key}.quota_per_minute"),
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// The feature sources, for the Serving actor.
    pub fn sources(&self) -> BTreeMap<String, SourceConfig> {
        self.sources
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    SourceConfig {
                        source: match (&s.table, &s.url) {
                            (Some(t), _) => SourceKind::Table(t.clone()),
                            (None, Some(url)) => SourceKind::Http {
                                url: url.clone(),
                                timeout: std::time::Duration::from_millis(s.timeout_ms),
                            },
                            (None, None) => SourceKind::Command {
                                command: s.command.clone().unwrap_or_default(),
                                timeout: std::time::Duration::from_millis(s.timeout_ms),
                            },
                        },
                        quota_per_minute: s.quota_per_minute,
                    },
                )
            })
            .collect()
    }

    /// The APIs' settings, reading the token file (relative to `base`) and checking its mode.
    pub fn api(&self, base: &Path) -> anyhow::Result<ServingApi> {
        use anyhow::Context;
        use std::os::unix::fs::PermissionsExt;
        let token = match &self.token_file {
            None => None,
            Some(f) => {
                let path = base.join(f);
                let meta = std::fs::metadata(&path)
                    .with_context(|| format!("serving.token_file {}", path.display()))?;
                if meta.permissions().mode() & 0o077 != 0 {
                    anyhow::bail!(
                        "serving.token_file {} is readable by others; chmod 600 it",
                        path.display()
                    );
                }
                let t = std::fs::read_to_string(&path)
                    .with_context(|| format!("serving.token_file {}", path.display()))?
                    .trim()
                    .to_owned();
                if t.len() < 16 {
                    anyhow::bail!(
                        "serving.token_file {} holds fewer than 16 characters",
                        path.display()
                    );
                }
                Some(t)
            }
        };
        let addr = |a: &Option<String>| a.as_deref().and_then(|s| s.parse().ok());
        Ok(ServingApi {
            http: addr(&self.listen),
            grpc: addr(&self.grpc_listen),
            token,
            max_body_bytes: self.max_body_bytes,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                _ => None,
            },
        })
    }
}
