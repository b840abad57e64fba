//! Parameters, and the model each party keeps: the guest its trees (its own splits in full, a
//! host's as `(host, split id)` only), a host the feature and threshold of each of its split
//! ids, and each its own features' importance.

use std::collections::BTreeMap;

use consort_protocol::job::Role;
use serde::{Deserialize, Serialize};

use super::tree::Tree;
use crate::context::{TaskContext, TaskError};
use crate::hetero_lr::common::fail;

/// Version of [`SecureBoostModel`]'s encoding.
pub const MODEL_VERSION: u16 = 1;

/// A host's split: `header[feature] ≤ threshold` goes left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSplit {
    pub id: u32,
    pub feature: u32,
    pub threshold: f64,
}

/// How much a feature was used: splits and their total gain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub splits: u32,
    pub gain: f64,
}

/// One party's part of a trained model (MessagePack, named fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureBoostModel {
    pub v: u16,
    /// "guest" or "host".
    pub role: String,
    /// This party's feature names.
    pub header: Vec<String>,
    /// The trees (guest only).
    pub trees: Vec<Tree>,
    /// Log-odds every score starts from (guest only).
    pub init_score: f64,
    /// The hosts, by party name, in the order the guest asked them (guest only).
    pub hosts: Vec<String>,
    /// This host's splits (host only).
    pub splits: Vec<HostSplit>,
    /// Per feature of this party: splits and gain.
    pub importance: BTreeMap<String, Importance>,
    /// "binary:bce".
    pub objective: String,
}

impl SecureBoostModel {
    /// MessagePack bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TaskError> {
        rmp_serde::to_vec_named(self).map_err(|e| fail(format!("cannot encode model: {e}")))
    }

    /// Decodes and checks a model part.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaskError> {
        let m: Self = rmp_serde::from_slice(bytes).map_err(|e| {
            fail(format!(
                "input 'model' is not a hetero_secureboost model: {e}"
            ))
        })?;
        if m.v != MODEL_VERSION {
            return Err(fail(format!(
                "hetero_secureboost model version {} is not supported",
                m.v
            )));
        }
        let bad = m
            .splits
            .iter()
            .any(|s| s.feature as usize >= m.header.len());
        let bad_tree = m.trees.iter().any(|t| {
            t.nodes.is_empty()
                || t.nodes.iter().any(|n| {
                    n.split.is_some()
                        && (n.left as usize >= t.nodes.len() || n.right as usize >= t.nodes.len())
                })
        });
        if bad || bad_tree {
            return Err(fail(
                "hetero_secureboost model refers to nodes or features it lacks",
            ));
        }
        Ok(m)
    }
}

/// Parameters, with FATE's names and defaults.
#[derive(Debug, Clone)]
pub struct Params {
    pub num_trees: u32,
    pub max_depth: u32,
    pub learning_rate: f64,
    pub max_bin: u32,
    pub l2: f64,
    pub min_child_weight: f64,
    pub min_sample_split: u64,
    pub min_leaf_node: u64,
    pub min_impurity_split: f64,
    pub goss: bool,
    pub top_rate: f64,
    pub other_rate: f64,
    pub key_bits: u64,
    pub seed: u64,
    /// Stop when the loss on `validate_data` has not improved for this many trees (0: off);
    /// the model keeps the trees up to the best.
    pub early_stopping_rounds: u32,
}

impl Params {
    /// Reads and checks the parameters.
    pub fn from_ctx(ctx: &dyn TaskContext) -> Result<Self, TaskError> {
        let bad = |name: &str, why: &str| TaskError::Param(name.into(), why.into());
        let int = |name: &str, default: i64, lo: i64, hi: i64| -> Result<i64, TaskError> {
            let v = ctx.param_int(name, default)?;
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(bad(name, &format!("must be between {lo} and {hi}")))
            }
        };
        let float = |name: &str, default: f64, lo: f64| -> Result<f64, TaskError> {
            let v = ctx.param_float(name, default)?;
            if v.is_finite() && v >= lo {
                Ok(v)
            } else {
                Err(bad(name, &format!("must be a number ≥ {lo}")))
            }
        };
        match ctx.params().get("objective").and_then(|v| v.as_str()) {
            None | Some("binary:bce") | Some("binary") => {}
            Some(other) => {
                return Err(bad(
                    "objective",
                    &format!("'{other}' is not supported (binary:bce)"),
                ));
            }
        }
        let key_bits = int("key_bits", 2048, 512, 8192)?;
        if key_bits % 2 != 0 {
            return Err(bad("key_bits", "must be even"));
        }
        let learning_rate = float("learning_rate", 0.3, 0.0)?;
        if learning_rate == 0.0 {
            return Err(bad("learning_rate", "must be positive"));
        }
        let top_rate = float("top_rate", 0.2, 0.0)?;
        let other_rate = float("other_rate", 0.1, 0.0)?;
        let goss = ctx.param_bool("goss", false)?;
        if goss && (top_rate + other_rate > 1.0 || other_rate == 0.0) {
            return Err(bad(
                "other_rate",
                "with goss, top_rate + other_rate ≤ 1 and other_rate > 0",
            ));
        }
        Ok(Self {
            num_trees: int("num_trees", 3, 1, 1000)? as u32,
            max_depth: int("max_depth", 3, 1, 16)? as u32,
            learning_rate,
            max_bin: int("max_bin", 32, 2, 1024)? as u32,
            l2: float("l2", 0.1, 0.0)?,
            min_child_weight: float("min_child_weight", 1.0, 0.0)?,
            min_sample_split: int("min_sample_split", 2, 2, i64::from(u32::MAX))? as u64,
            min_leaf_node: int("min_leaf_node", 1, 1, i64::from(u32::MAX))? as u64,
            min_impurity_split: float("min_impurity_split", 1e-2, 0.0)?,
            goss,
            top_rate,
            other_rate,
            key_bits: key_bits as u64,
            seed: int("seed", 42, 0, i64::MAX)? as u64,
            early_stopping_rounds: int("early_stopping_rounds", 0, 0, 1000)? as u32,
        })
    }
}

/// Exactly one guest and at least one host.
pub fn check_roles(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let count = |r: Role| ctx.endpoints().iter().filter(|e| e.role == r).count();
    let (g, h, a) = (count(Role::Guest), count(Role::Host), count(Role::Arbiter));
    if g != 1 || h < 1 || a != 0 {
        return Err(fail(format!(
            "hetero_secureboost needs exactly one guest, at least one host and no arbiter \
             (this task has {g} guest(s), {h} host(s), {a} arbiter(s))"
        )));
    }
    Ok(())
}
