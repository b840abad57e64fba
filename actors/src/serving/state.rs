//! A service as this party holds it: its loaded versions, its split, its feature source, and
//! the record that survives a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use consort_components::serving::{FeatureTable, ServedPart};
use consort_protocol::PartyName;
use consort_protocol::serving::{ServedVersion, ServiceInfo, ServingOptions, Split};
use consort_storage::Record;
use serde::{Deserialize, Serialize};

use crate::model_manager::ServingModel;

use super::rpc::WireState;

/// This party's role in a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Answers requests, asks the hosts.
    Guest,
    /// Answers the guest's partial-score requests.
    Host,
    /// A homo LR model: scores alone.
    Local,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Local => "local",
        }
    }
}

/// One loaded version.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) commit: String,
    pub(crate) part: Arc<ServedPart>,
    /// Every `role:party` of the training job.
    pub(crate) parties: Vec<String>,
}

/// A running service.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) model_id: String,
    pub(crate) role: Role,
    pub(crate) guest: PartyName,
    pub(crate) hosts: Vec<PartyName>,
    pub(crate) versions: BTreeMap<String, Loaded>,
    pub(crate) split: Split,
    pub(crate) previous: Option<Split>,
    pub(crate) options: ServingOptions,
    /// This party's features by id (a host's source; a guest's when configured).
    pub(crate) source: Option<Source>,
    pub(crate) changed_at_ms: u64,
}

/// A loaded feature source.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A table indexed by id.
    Table(Arc<FeatureTable>),
    /// A running adapter, and its time limit per request.
    Command(Arc<super::adapter::Adapter>, std::time::Duration),
}

/// What is persisted per service (the models and tables are reloaded from their stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Deployment {
    pub(crate) name: String,
    pub(crate) state: WireState,
    pub(crate) options: ServingOptions,
    pub(crate) changed_at_ms: u64,
}

impl Record for Deployment {
    const KIND: &'static str = "deployment";
    const VERSION: u16 = 1;
}

/// Writes a service's new state (None: removed) under its name and flushes, on a blocking
/// thread: the switch of a change, at the guest and at a host alike.
pub(crate) async fn persist(
    tree: consort_storage::Tree<Deployment>,
    name: String,
    state: Option<Deployment>,
) -> Result<(), crate::failure::Failure> {
    crate::failure::blocking(move || {
        match &state {
            Some(d) => tree.put(&name, d)?,
            None => {
                tree.remove(&name)?;
            }
        }
        tree.flush()?;
        Ok(())
    })
    .await
}

/// The parties with `role` in a `role:party` list.
pub(crate) fn with_role(parties: &[String], role: &str) -> Vec<String> {
    parties
        .iter()
        .filter_map(|rp| rp.split_once(':'))
        .filter(|(r, _)| *r == role)
        .map(|(_, p)| p.to_owned())
        .collect()
}

/// Builds this party's scoring part of a version, and its role.
pub(crate) fn load_part(me: &str, m: &ServingModel) -> Result<(Role, Loaded), String> {
    // The scoring part: a hetero_lr or hetero_secureboost part this party played as guest
    // (else host), or a homo_lr part; then the feature_scale part of the same role, which fed
    // it in training.
    let lr = ["guest", "host"]
        .iter()
        .find_map(|r| {
            m.parts.iter().find(|p| {
                (p.component == "hetero_lr" || p.component == "hetero_secureboost") && p.role == *r
            })
        })
        .or_else(|| {
            // A data party's homo LR part (the arbiter's holds the same model, but an arbiter
            // has no features to score).
            m.parts
                .iter()
                .find(|p| p.component == "homo_lr" && p.role != "arbiter")
        })
        .ok_or_else(|| {
            format!(
                "model {}@{} has no hetero_lr or hetero_secureboost part as guest or host, nor \
                 a homo_lr part, at {me}; only LR and SecureBoost models serve",
                m.model_id, m.version
            )
        })?;
    let scales: Vec<_> = m
        .parts
        .iter()
        .filter(|p| p.component == "feature_scale" && p.role == lr.role)
        .collect();
    if scales.len() > 1 {
        return Err(format!(
            "model {}@{} has {} feature_scale parts as {} at {me}; serving needs at most one",
            m.model_id,
            m.version,
            scales.len(),
            lr.role
        ));
    }
    let scale = scales.first().map(|p| p.bytes.as_slice());
    let bad = |e: consort_components::serving::ServingError| {
        format!("{me} cannot load {}@{}: {e}", m.model_id, m.version)
    };
    let (role, part) = match (lr.component.as_str(), lr.role.as_str()) {
        ("hetero_lr", "guest") => (Role::Guest, ServedPart::hetero_lr(&lr.bytes, scale)),
        ("hetero_lr", _) => (Role::Host, ServedPart::hetero_lr(&lr.bytes, scale)),
        ("hetero_secureboost", "guest") => (Role::Guest, ServedPart::secureboost(&lr.bytes, scale)),
        ("hetero_secureboost", _) => (Role::Host, ServedPart::secureboost(&lr.bytes, scale)),
        _ => (Role::Local, ServedPart::homo_lr(&lr.bytes, scale)),
    };
    Ok((
        role,
        Loaded {
            commit: m.commit.clone(),
            part: Arc::new(part.map_err(bad)?),
            parties: m.parties.clone(),
        },
    ))
}

/// Picks the version for `id`: the same id always lands on the same version while the split
/// holds (FNV-1a of the id, over the weights in the split's order).
pub(crate) fn route<'a>(split: &'a Split, id: &str) -> Option<&'a str> {
    let total: u64 = split.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Mix the high bits in: FNV's low bits are weak for short, similar ids.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    let mut point = h % total;
    for (v, w) in split {
        let w = u64::from(*w);
        if point < w {
            return Some(v);
        }
        point -= w;
    }
    None
}

/// Every version a state keeps loaded: those of its split and of the split before.
pub(crate) fn needed(split: &Split, previous: &Option<Split>) -> Vec<String> {
    let mut v: Vec<String> = split
        .iter()
        .chain(previous.iter().flatten())
        .map(|(v, _)| v.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

impl Service {
    pub(crate) fn wire(&self) -> WireState {
        WireState {
            model_id: self.model_id.clone(),
            versions: self.versions.keys().cloned().collect(),
            split: self.split.clone(),
            previous: self.previous.clone(),
        }
    }

    /// The hosts this service asks (none when deployed without hosts).
    pub(crate) fn asked_hosts(&self) -> &[PartyName] {
        if self.options.without_hosts {
            &[]
        } else {
            &self.hosts
        }
    }

    pub(crate) fn deployment(&self) -> Deployment {
        Deployment {
            name: self.name.clone(),
            state: self.wire(),
            options: self.options.clone(),
            changed_at_ms: self.changed_at_ms,
        }
    }

    pub(crate) fn info(&self) -> ServiceInfo {
        let weight = |v: &str| {
            self.split
                .iter()
                .find(|(s, _)| s == v)
                .map(|(_, w)| *w)
                .unwrap_or(0)
        };
        ServiceInfo {
            name: self.name.clone(),
            model_id: self.model_id.clone(),
            role: self.role.as_str().to_owned(),
            guest: self.guest.to_string(),
            hosts: self.hosts.iter().map(|h| h.to_string()).collect(),
            versions: self
                .versions
                .iter()
                .map(|(v, l)| ServedVersion {
                    version: v.clone(),
                    commit: l.commit.clone(),
                    weight: weight(v),
                })
                .collect(),
            previous: self.previous.clone(),
            options: self.options.clone(),
            changed_at_ms: self.changed_at_ms,
        }
    }

    /// A loaded version named by its full id or a unique prefix.
    pub(crate) fn version_named(&self, name: &str) -> Result<String, String> {
        if self.versions.contains_key(name) {
            return Ok(name.to_owned());
        }
        let matches: Vec<&String> = self
            .versions
            .keys()
            .filter(|v| v.starts_with(name))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "service {} has no loaded version '{name}' (loaded: {})",
                self.name,
                self.versions.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => Err(format!(
                "'{name}' names more than one version of service {}",
                self.name
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_sticky_and_follows_the_weights() {
        let split: Split = vec![("v1".into(), 90), ("v2".into(), 10)];
        let mut v2 = 0;
        for i in 0..20_000 {
            let id = format!("{i}");
            let a = route(&split, &id).expect("routed");
            assert_eq!(route(&split, &id), Some(a), "sticky");
            if a == "v2" {
                v2 += 1;
            }
        }
        let share = f64::from(v2) / 20_000.0;
        assert!((share - 0.10).abs() < 0.01, "{share}");
        assert_eq!(route(&vec![("v1".into(), 0)], "x"), None);
        assert_eq!(
            route(&vec![("v1".into(), 0), ("v2".into(), 5)], "x"),
            Some("v2")
        );
    }

    #[test]
    fn a_state_keeps_the_versions_of_both_splits() {
        let split: Split = vec![("b".into(), 100)];
        let prev = Some(vec![("a".into(), 90), ("b".into(), 10)]);
        assert_eq!(needed(&split, &prev), vec!["a", "b"]);
    }
}
