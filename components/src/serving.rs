//! Scoring one id at a time, as the batch `predict` job scores a table: the arithmetic of
//! online serving (issue 12; the Serving actor, deployments and the APIs build on it).
//!
//! A party's deployed unit is its part of the trained pipeline: the `feature_scale` fitted in
//! training, when the pipeline had one, and its `hetero_lr` or `hetero_secureboost` part or its
//! `homo_lr` model.
//! [`ServedPart::partial`] takes one row of named features and computes the party's partial
//! score with the same operations in the same order as the batch path (`feature_scale::apply`,
//! then `hetero_lr::common::linear`), so an id's online score equals its batch score exactly,
//! not just closely. The guest adds the hosts' partial scores in the order of their party names,
//! as the batch guest receives them, and applies the logistic function ([`combine`]). A homo LR
//! model scores alone ([`ServedPart::local`], as `homo_lr::score`).

use std::collections::HashMap;

use crate::feature_scale::FeatureScaleModel;
use crate::hetero_lr::common::{HeteroLrModel, sigmoid};
use crate::homo_lr::{self, HomoLrModel};
use crate::secureboost::SecureBoostModel;
use crate::secureboost::tree::Split;

/// Why a part cannot be loaded or cannot score a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServingError {
    /// The model bytes are not a usable model.
    #[error("cannot load the model: {0}")]
    Model(String),
    /// A feature the model needs is not in the request.
    #[error("feature '{0}' is missing")]
    Missing(String),
    /// A hetero part asked to score alone, or a homo model asked for a partial score.
    #[error("a {0} part does not score that way")]
    Kind(String),
    /// A host's answer does not fit the model.
    #[error("{0}")]
    Host(String),
}

/// What a host answers for one id.
#[derive(Debug, Clone, PartialEq)]
pub enum HostValue {
    /// An LR part's partial score.
    Score(f64),
    /// A tree part's directions: bit `i` set when its `i`-th split (by id) sends the row left.
    Dirs(std::sync::Arc<[u8]>),
}

/// What the guest computes for one id before the hosts answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestValue {
    /// An LR guest's partial score (with the intercept).
    Score(f64),
    /// A tree guest's features, in its header's order.
    Row(Vec<f64>),
}

/// The model inside a part.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Hetero or homo LR.
    Linear { weights: Vec<f64>, intercept: f64 },
    /// A SecureBoost guest: its trees, and each host's split ids in order.
    TreesGuest {
        model: Box<SecureBoostModel>,
        host_splits: HashMap<String, Vec<u32>>,
    },
    /// A SecureBoost host: its splits, by id.
    TreesHost { splits: Vec<(u32, usize, f64)> },
}

/// One party's deployed part of an LR pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedPart {
    /// `guest` or `host` (hetero LR), `homo` (homo LR: scores alone).
    pub role: String,
    /// The features it needs, in the order of its weights.
    pub features: Vec<String>,
    kind: Kind,
    /// Per feature: the training scaler's offset and scale, when it scaled that feature.
    scaling: Vec<Option<(f64, f64)>>,
}

impl ServedPart {
    /// Loads a `hetero_lr` part (guest or host) and the `feature_scale` model that fed it in
    /// training, if any.
    pub fn hetero_lr(model: &[u8], scale: Option<&[u8]>) -> Result<Self, ServingError> {
        let model =
            HeteroLrModel::from_bytes(model).map_err(|e| ServingError::Model(e.to_string()))?;
        if model.role != "guest" && model.role != "host" {
            return Err(ServingError::Model(format!(
                "a hetero_lr part of role '{}' does not score",
                model.role
            )));
        }
        let scaling = scaling_for(&model.header, scale)?;
        Ok(Self {
            kind: Kind::Linear {
                intercept: if model.role == "guest" {
                    model.intercept
                } else {
                    0.0
                },
                weights: model.weights,
            },
            role: model.role,
            features: model.header,
            scaling,
        })
    }

    /// Loads a `hetero_secureboost` part (guest or host) and the `feature_scale` model that fed
    /// it in training, if any.
    pub fn secureboost(model: &[u8], scale: Option<&[u8]>) -> Result<Self, ServingError> {
        let model =
            SecureBoostModel::from_bytes(model).map_err(|e| ServingError::Model(e.to_string()))?;
        let scaling = scaling_for(&model.header, scale)?;
        let (role, features) = (model.role.clone(), model.header.clone());
        let kind = match role.as_str() {
            "guest" => {
                let mut host_splits: HashMap<String, Vec<u32>> = HashMap::new();
                for node in model.trees.iter().flat_map(|t| &t.nodes) {
                    if let Some(Split::Host { party, split_id }) = &node.split {
                        host_splits
                            .entry(party.clone())
                            .or_default()
                            .push(*split_id);
                    }
                }
                for ids in host_splits.values_mut() {
                    ids.sort_unstable();
                    ids.dedup();
                }
                Kind::TreesGuest {
                    model: Box::new(model),
                    host_splits,
                }
            }
            "host" => {
                let mut splits: Vec<(u32, usize, f64)> = model
                    .splits
                    .iter()
                    .map(|s| (s.id, s.feature as usize, s.threshold))
                    .collect();
                splits.sort_by_key(|s| s.0);
                Kind::TreesHost { splits }
            }
            other => {
                return Err(ServingError::Model(format!(
                    "a hetero_secureboost part of role '{other}' does not score"
                )));
            }
        };
        Ok(Self {
            role,
            features,
            kind,
            scaling,
        })
    }

    /// Loads a `homo_lr` model and the `feature_scale` model that fed it in training, if any.
    pub fn homo_lr(model: &[u8], scale: Option<&[u8]>) -> Result<Self, ServingError> {
        let model: HomoLrModel = rmp_serde::from_slice(model)
            .map_err(|e| ServingError::Model(format!("not a homo_lr model: {e}")))?;
        if model.feature_names.len() != model.weights.len() {
            return Err(ServingError::Model(format!(
                "homo_lr model has {} feature names for {} weights",
                model.feature_names.len(),
                model.weights.len()
            )));
        }
        Ok(Self {
            role: "homo".into(),
            scaling: scaling_for(&model.feature_names, scale)?,
            features: model.feature_names,
            kind: Kind::Linear {
                weights: model.weights,
                intercept: model.intercept,
            },
        })
    }

    /// This hetero part's partial score for one row: `b + Σ w_j · scaled(x_j)` (b only at the
    /// guest), the features looked up by name.
    pub fn partial(&self, feature: impl Fn(&str) -> Option<f64>) -> Result<f64, ServingError> {
        let Kind::Linear { weights, intercept } = &self.kind else {
            return Err(ServingError::Kind(self.role.clone()));
        };
        if self.role == "homo" {
            return Err(ServingError::Kind(self.role.clone()));
        }
        let mut u = *intercept;
        for (x, w) in self.row(feature)?.into_iter().zip(weights) {
            u += w * x;
        }
        Ok(u)
    }

    /// A homo LR model's score for one row: `sigmoid(w · scaled(x) + b)`.
    pub fn local(&self, feature: impl Fn(&str) -> Option<f64>) -> Result<f64, ServingError> {
        let Kind::Linear { weights, intercept } = &self.kind else {
            return Err(ServingError::Kind(self.role.clone()));
        };
        if self.role != "homo" {
            return Err(ServingError::Kind(self.role.clone()));
        }
        let x = self.row(feature)?;
        Ok(homo_lr::sigmoid(homo_lr::dot(weights, &x) + intercept))
    }

    /// Whether this part is a tree model's (its hosts answer directions, not scores).
    pub fn is_trees(&self) -> bool {
        !matches!(self.kind, Kind::Linear { .. })
    }

    /// A host's answer for one row: its partial score (LR) or its splits' directions (trees).
    pub fn host_value(
        &self,
        feature: impl Fn(&str) -> Option<f64>,
    ) -> Result<HostValue, ServingError> {
        match &self.kind {
            Kind::TreesHost { splits } => {
                let x = self.row(feature)?;
                let mut bits = vec![0u8; splits.len().div_ceil(8)];
                for (i, (_, f, threshold)) in splits.iter().enumerate() {
                    if x.get(*f).is_some_and(|v| v <= threshold) {
                        bits[i / 8] |= 1 << (i % 8);
                    }
                }
                Ok(HostValue::Dirs(bits.into()))
            }
            _ => self.partial(feature).map(HostValue::Score),
        }
    }

    /// The guest's part for one row, before the hosts answer.
    pub fn guest_value(
        &self,
        feature: impl Fn(&str) -> Option<f64>,
    ) -> Result<GuestValue, ServingError> {
        match &self.kind {
            Kind::TreesGuest { .. } => self.row(feature).map(GuestValue::Row),
            _ => self.partial(feature).map(GuestValue::Score),
        }
    }

    /// The score from the guest's part and the hosts' answers `(party, value)`: LR sums the
    /// partial scores ([`combine`]); trees walk the guest's trees, a host's split going the way
    /// the host said. Without hosts (`hosts` empty) an LR guest scores its part alone; trees
    /// cannot.
    pub fn score(
        &self,
        guest: &GuestValue,
        hosts: &[(&str, &HostValue)],
    ) -> Result<f64, ServingError> {
        match (&self.kind, guest) {
            (Kind::TreesGuest { model, host_splits }, GuestValue::Row(x)) => {
                let dirs: HashMap<&str, &[u8]> = hosts
                    .iter()
                    .map(|(p, v)| match v {
                        HostValue::Dirs(d) => Ok((*p, &d[..])),
                        HostValue::Score(_) => Err(ServingError::Host(format!(
                            "{p} answered a score for a tree model"
                        ))),
                    })
                    .collect::<Result<_, _>>()?;
                let mut s = model.init_score;
                for tree in &model.trees {
                    s += tree
                        .walk(|split| match split {
                            Split::Guest { feature, threshold } => {
                                x.get(*feature as usize).map(|v| v <= threshold)
                            }
                            Split::Host { party, split_id } => {
                                let i = host_splits.get(party)?.binary_search(split_id).ok()?;
                                let d = dirs.get(party.as_str())?;
                                Some(d.get(i / 8)? & (1 << (i % 8)) != 0)
                            }
                        })
                        .ok_or_else(|| {
                            ServingError::Host("a tree model needs every host's directions".into())
                        })?;
                }
                Ok(sigmoid(s))
            }
            (Kind::Linear { .. }, GuestValue::Score(u)) => {
                let scores: Vec<(&str, f64)> = hosts
                    .iter()
                    .map(|(p, v)| match v {
                        HostValue::Score(s) => Ok((*p, *s)),
                        HostValue::Dirs(_) => Err(ServingError::Host(format!(
                            "{p} answered directions for an LR model"
                        ))),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(combine(*u, &scores))
            }
            _ => Err(ServingError::Kind(self.role.clone())),
        }
    }

    /// The row's features in the model's order, scaled as in training.
    fn row(&self, feature: impl Fn(&str) -> Option<f64>) -> Result<Vec<f64>, ServingError> {
        self.features
            .iter()
            .zip(&self.scaling)
            .map(|(name, scaling)| {
                let x = feature(name).ok_or_else(|| ServingError::Missing(name.clone()))?;
                Ok(match scaling {
                    Some((o, s)) => (x - o) / s,
                    None => x,
                })
            })
            .collect()
    }
}

/// Per feature of `header`: the offset and scale of the training scaler, if it scaled it.
fn scaling_for(
    header: &[String],
    scale: Option<&[u8]>,
) -> Result<Vec<Option<(f64, f64)>>, ServingError> {
    let scale: Option<FeatureScaleModel> = scale
        .map(rmp_serde::from_slice)
        .transpose()
        .map_err(|e| ServingError::Model(format!("not a feature_scale model: {e}")))?;
    let scaled: HashMap<&str, (f64, f64)> = match &scale {
        Some(s) => {
            if s.offset.len() != s.feature_names.len() || s.scale.len() != s.feature_names.len() {
                return Err(ServingError::Model(
                    "feature_scale model has inconsistent lengths".into(),
                ));
            }
            s.feature_names
                .iter()
                .enumerate()
                .map(|(k, n)| (n.as_str(), (s.offset[k], s.scale[k])))
                .collect()
        }
        None => HashMap::new(),
    };
    Ok(header
        .iter()
        .map(|n| scaled.get(n.as_str()).copied())
        .collect())
}

/// A party's table indexed by id, for scoring one id at a time (a host's feature source).
#[derive(Debug, Clone)]
pub struct FeatureTable {
    data: consort_protocol::data::Dataset,
    rows: HashMap<String, usize>,
    columns: HashMap<String, usize>,
}

impl FeatureTable {
    /// Indexes `data` (its ids are unique, as every table's are).
    pub fn new(data: consort_protocol::data::Dataset) -> Self {
        let index = |names: &[String]| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect::<HashMap<_, _>>()
        };
        let (rows, columns) = (index(&data.ids), index(&data.feature_names));
        Self {
            data,
            rows,
            columns,
        }
    }

    /// Whether the table has a column `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    /// The features of `id`, looked up by name; `None` when the table has no such id.
    pub fn row(&self, id: &str) -> Option<impl Fn(&str) -> Option<f64> + '_> {
        let i = *self.rows.get(id)?;
        Some(move |name: &str| {
            let j = *self.columns.get(name)?;
            self.data.columns.get(j)?.get(i).copied()
        })
    }
}

/// The score from the guest's partial score and the hosts' `(party, partial)`: summed in the
/// order of the hosts' names (as the batch guest receives them), then the logistic function.
pub fn combine(guest: f64, hosts: &[(&str, f64)]) -> f64 {
    let mut hosts = hosts.to_vec();
    hosts.sort_by(|a, b| a.0.cmp(b.0));
    sigmoid(hosts.iter().fold(guest, |u, (_, v)| u + v))
}

#[cfg(test)]
mod tests {
    use consort_protocol::data::Dataset;

    use super::*;
    use crate::feature_scale;
    use crate::hetero_lr::common::{columns_for, linear};

    fn table(names: &[&str], rows: usize, seed: f64) -> Dataset {
        let ids = (0..rows).map(|i| format!("id{i}")).collect();
        let columns = (0..names.len())
            .map(|j| {
                (0..rows)
                    .map(|i| ((i * 7 + j * 13) as f64 * seed).sin() * (j + 1) as f64 * 10.0)
                    .collect()
            })
            .collect();
        Dataset::new(
            ids,
            names.iter().map(|n| n.to_string()).collect(),
            columns,
            None,
        )
        .expect("dataset")
    }

    fn model(role: &str, header: &[&str], weights: &[f64], intercept: f64) -> Vec<u8> {
        HeteroLrModel {
            v: 1,
            role: role.into(),
            header: header.iter().map(|n| n.to_string()).collect(),
            weights: weights.to_vec(),
            intercept,
            fit_intercept: true,
            iterations: 1,
            converged: true,
        }
        .to_bytes()
        .expect("model")
    }

    fn row<'a>(d: &'a Dataset, i: usize) -> impl Fn(&str) -> Option<f64> + 'a {
        move |name| {
            let j = d.feature_names.iter().position(|n| n == name)?;
            Some(d.columns[j][i])
        }
    }

    #[test]
    fn online_scores_equal_the_batch_scores_exactly() {
        // The guest has x0..x2 (scaled in training, x2 not: the scaler saw x0, x1 only), the
        // hosts y0, y1 (scaled) and z0 (not scaled); columns come in another order than the
        // models' headers.
        let guest = table(&["x2", "x0", "x1"], 40, 0.37);
        let host_a = table(&["y1", "y0"], 40, 0.71);
        let host_b = table(&["z0"], 40, 1.13);
        let g_scale = feature_scale::fit(
            &columns_for(&guest, &["x0".into(), "x1".into()]).expect("cols"),
            "standard",
        )
        .expect("fit");
        let a_scale = feature_scale::fit(&host_a, "min_max").expect("fit");
        let g_model = model("guest", &["x0", "x1", "x2"], &[0.7, -1.3, 0.05], 0.25);
        let a_model = model("host", &["y0", "y1"], &[-0.4, 0.9], 99.0);
        let b_model = model("host", &["z0"], &[0.011], 0.0);

        // The batch path: scale, take the header's columns, linear, add the hosts in name order.
        let (g_scaled, _) = feature_scale::apply(&g_scale, &guest).expect("apply");
        let (a_scaled, _) = feature_scale::apply(&a_scale, &host_a).expect("apply");
        let gm = HeteroLrModel::from_bytes(&g_model).expect("model");
        let am = HeteroLrModel::from_bytes(&a_model).expect("model");
        let bm = HeteroLrModel::from_bytes(&b_model).expect("model");
        let mut u = linear(
            &columns_for(&g_scaled, &gm.header).expect("cols"),
            &gm.weights,
            gm.intercept,
            None,
        );
        for (d, m) in [(&a_scaled, &am), (&host_b, &bm)] {
            let part = linear(
                &columns_for(d, &m.header).expect("cols"),
                &m.weights,
                0.0,
                None,
            );
            u.iter_mut().zip(part).for_each(|(a, v)| *a += v);
        }
        let batch: Vec<f64> = u.into_iter().map(sigmoid).collect();

        let g = ServedPart::hetero_lr(
            &g_model,
            Some(&rmp_serde::to_vec_named(&g_scale).expect("enc")),
        )
        .expect("guest");
        let a = ServedPart::hetero_lr(
            &a_model,
            Some(&rmp_serde::to_vec_named(&a_scale).expect("enc")),
        )
        .expect("host a");
        let b = ServedPart::hetero_lr(&b_model, None).expect("host b");
        for (i, want) in batch.iter().enumerate() {
            let hosts = [
                ("host-b", b.partial(row(&host_b, i)).expect("b")),
                ("host-a", a.partial(row(&host_a, i)).expect("a")),
            ];
            let got = combine(g.partial(row(&guest, i)).expect("g"), &hosts);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "row {i}: {got} against {want}"
            );
        }
    }

    #[test]
    fn a_missing_feature_is_named_and_bad_models_are_refused() {
        let g = ServedPart::hetero_lr(&model("guest", &["a", "b"], &[1.0, 2.0], 0.0), None)
            .expect("guest");
        let only_a = |n: &str| (n == "a").then_some(1.0);
        assert_eq!(g.partial(only_a), Err(ServingError::Missing("b".into())));
        assert!(matches!(
            ServedPart::hetero_lr(b"not a model", None),
            Err(ServingError::Model(_))
        ));
        assert!(matches!(
            ServedPart::hetero_lr(&model("arbiter", &[], &[], 0.0), None),
            Err(ServingError::Model(m)) if m.contains("arbiter")
        ));
        assert!(matches!(
            ServedPart::hetero_lr(&model("guest", &["a"], &[1.0], 0.0), Some(b"\x93")),
            Err(ServingError::Model(_))
        ));
    }

    #[test]
    fn a_homo_model_scores_alone_as_the_batch_does() {
        let data = table(&["a", "b", "c"], 30, 0.53);
        let scale = feature_scale::fit(&data, "standard").expect("fit");
        let (scaled, _) = feature_scale::apply(&scale, &data).expect("apply");
        let model = HomoLrModel {
            v: 1,
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            weights: vec![0.3, -0.8, 1.7],
            intercept: -0.2,
            fit_intercept: true,
            rounds: 1,
            loss_history: vec![],
        };
        let batch =
            Dataset::from_bytes(&homo_lr::score(&model, &scaled).expect("score")).expect("scores");
        let bytes = rmp_serde::to_vec_named(&model).expect("enc");
        let part =
            ServedPart::homo_lr(&bytes, Some(&rmp_serde::to_vec_named(&scale).expect("enc")))
                .expect("part");
        for (i, want) in batch.columns[0].iter().enumerate() {
            let got = part.local(row(&data, i)).expect("score");
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "row {i}: {got} against {want}"
            );
        }
        assert_eq!(
            part.partial(row(&data, 0)),
            Err(ServingError::Kind("homo".into()))
        );
        let hetero = ServedPart::hetero_lr(&model_bytes_guest(), None).expect("guest");
        assert_eq!(
            hetero.local(|_| Some(1.0)),
            Err(ServingError::Kind("guest".into()))
        );
    }

    fn model_bytes_guest() -> Vec<u8> {
        model("guest", &["a"], &[1.0], 0.0)
    }

    #[test]
    fn a_table_gives_the_features_of_an_id() {
        let t = FeatureTable::new(table(&["a", "b"], 3, 0.5));
        let d = table(&["a", "b"], 3, 0.5);
        let row = t.row("id2").expect("id2");
        assert_eq!(row("b"), Some(d.columns[1][2]));
        assert_eq!(row("c"), None);
        assert!(t.row("id9").is_none());
    }

    #[test]
    fn a_host_part_ignores_any_intercept() {
        let h = ServedPart::hetero_lr(&model("host", &["a"], &[2.0], 5.0), None).expect("host");
        assert_eq!(h.partial(|_| Some(3.0)), Ok(6.0));
    }

    /// A tree guest with one host split at the root: a host's answer that is short, of the
    /// wrong kind or missing is an error, never a panic or a guess.
    #[test]
    fn a_tree_guest_refuses_host_answers_that_do_not_fit() {
        use crate::secureboost::model::{MODEL_VERSION, SecureBoostModel};
        use crate::secureboost::tree::{Node, Tree};
        let leaf = |w: f64| Node {
            split: None,
            left: 0,
            right: 0,
            weight: w,
            gain: 0.0,
            count: 1,
        };
        let root = Node {
            split: Some(Split::Host {
                party: "insurer-b".into(),
                split_id: 9,
            }),
            left: 1,
            right: 2,
            weight: 0.0,
            gain: 1.0,
            count: 2,
        };
        let model = SecureBoostModel {
            v: MODEL_VERSION,
            role: "guest".into(),
            header: vec!["a".into()],
            trees: vec![Tree {
                nodes: vec![root, leaf(1.0), leaf(-1.0)],
            }],
            init_score: 0.0,
            hosts: vec!["insurer-b".into()],
            splits: Vec::new(),
            importance: Default::default(),
            objective: "binary:bce".into(),
        };
        let g = ServedPart::secureboost(&model.to_bytes().expect("bytes"), None).expect("guest");
        let row = g.guest_value(|_| Some(0.5)).expect("row");
        let left = HostValue::Dirs(vec![1u8].into());
        assert_eq!(g.score(&row, &[("insurer-b", &left)]), Ok(sigmoid(1.0)));
        let right = HostValue::Dirs(vec![0u8].into());
        assert_eq!(g.score(&row, &[("insurer-b", &right)]), Ok(sigmoid(-1.0)));
        for bad in [
            vec![("insurer-b", HostValue::Dirs(Vec::new().into()))],
            vec![("insurer-b", HostValue::Score(3.0))],
            vec![("clinic-c", HostValue::Dirs(vec![1u8].into()))],
            Vec::new(),
        ] {
            let hosts: Vec<(&str, &HostValue)> = bad.iter().map(|(p, v)| (*p, v)).collect();
            assert!(
                matches!(g.score(&row, &hosts), Err(ServingError::Host(_))),
                "{bad:?}"
            );
        }
    }
}
