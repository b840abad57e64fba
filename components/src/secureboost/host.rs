//! A host: bins its own features, builds encrypted histograms of the guest's gradients for the
//! nodes the guest names, and keeps the feature and threshold of every split chosen on its
//! features; the guest knows such a split only by the id the host gives it. Never sees a
//! label, a gradient or a score.

use std::collections::{BTreeMap, HashMap};

use consort_protocol::data::Dataset;
use consort_protocol::job::Role;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::model::{HostSplit, Importance, MODEL_VERSION, SecureBoostModel};
use super::pack::{Layout, pack};
use super::tree::{bin_of, cuts};
use super::wire::{
    Align, AllDirs, Chosen, Dirs, Finish, Gh, Hist, Level, NodeHist, Setup, Splits, WIRE_VERSION,
    bitmap, recv_one, send,
};
use crate::context::{Target, TaskContext, TaskError};
use crate::hetero_lr::common::{columns_for, dataset, fail, ids_hash, one, required_dataset};
use crate::paillier::{Ciphertext, PublicKey};

/// A host's binned features.
struct Binned {
    cuts: Vec<Vec<f64>>,
    /// `bins[f][row]`.
    bins: Vec<Vec<u16>>,
}

fn bin_all(data: &Dataset, max_bin: usize) -> Result<Binned, TaskError> {
    for (f, col) in data.columns.iter().enumerate() {
        if let Some(i) = col.iter().position(|x| !x.is_finite()) {
            return Err(fail(format!(
                "hetero_secureboost: feature '{}' of row {i} is not a finite number",
                data.feature_names[f]
            )));
        }
    }
    let cuts: Vec<Vec<f64>> = data.columns.iter().map(|c| cuts(c, max_bin)).collect();
    let bins = data
        .columns
        .iter()
        .zip(&cuts)
        .map(|(col, c)| col.iter().map(|&x| bin_of(c, x)).collect())
        .collect();
    Ok(Binned { cuts, bins })
}

/// Which of `rows` go left at each split: one bitmap per split, rows in order.
fn all_dirs(data: &Dataset, splits: &[HostSplit]) -> (Vec<u32>, Vec<serde_bytes::ByteBuf>) {
    let ids = splits.iter().map(|s| s.id).collect();
    let maps = splits
        .par_iter()
        .map(|s| {
            let col = &data.columns[s.feature as usize];
            bitmap(col.iter().map(|&x| x <= s.threshold))
        })
        .collect();
    (ids, maps)
}

/// Sends directions of every split of `model` for `data` (or why it cannot) under `tag`.
fn send_dirs(
    ctx: &dyn TaskContext,
    guest: &Target,
    tag: &str,
    data: Result<Dataset, TaskError>,
    model: &SecureBoostModel,
) -> Result<(), TaskError> {
    let data = data.and_then(|d| columns_for(&d, &model.header));
    let msg = match &data {
        Ok(d) => {
            let (split_ids, bitmaps) = all_dirs(d, &model.splits);
            AllDirs {
                v: WIRE_VERSION,
                error: String::new(),
                rows: d.rows() as u64,
                ids_hash: ids_hash(&d.ids),
                split_ids,
                bitmaps,
            }
        }
        Err(e) => AllDirs {
            v: WIRE_VERSION,
            error: e.to_string(),
            rows: 0,
            ids_hash: Vec::new(),
            split_ids: Vec::new(),
            bitmaps: Vec::new(),
        },
    };
    send(ctx, guest, tag, &msg)?;
    data.map(|_| ())
}

/// Trains the host's part.
pub fn train(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let guest = one(ctx, Role::Guest)?;
    let data = required_dataset(ctx, "train_data");
    let align = Align::of(data.as_ref());
    send(ctx, &guest, "align", &align)?;
    let (_, setup): (_, Setup) = recv_one(ctx, &guest, "setup")?;
    if !setup.error.is_empty() {
        return Err(fail(setup.error));
    }
    let data = data?;
    let n = data.rows();
    let pk = PublicKey::from_bytes(&setup.n)
        .map_err(|e| fail(format!("hetero_secureboost: the guest's key: {e}")))?;
    if !(2..=1024).contains(&setup.max_bin) || setup.max_depth > 16 || setup.num_trees > 1000 {
        return Err(fail(
            "hetero_secureboost: the guest's settings are out of bounds",
        ));
    }
    let binned = bin_all(&data, setup.max_bin as usize)?;
    let m = data.cols();
    // The order the guest sees this host's features in: private, fixed for the training.
    let mut perm: Vec<usize> = (0..m).collect();
    perm.shuffle(&mut rand::rng());

    let mut model = SecureBoostModel {
        v: MODEL_VERSION,
        role: "host".into(),
        header: data.feature_names.clone(),
        trees: Vec::new(),
        init_score: 0.0,
        hosts: Vec::new(),
        splits: Vec::new(),
        importance: BTreeMap::new(),
        objective: "binary:bce".into(),
    };
    if setup.warm {
        let prior = match ctx.input("model")? {
            Some(bytes) => SecureBoostModel::from_bytes(&bytes)?,
            None => return Err(fail("warm_start: input 'model' is not wired at this host")),
        };
        if prior.header != data.feature_names {
            return Err(fail(
                "warm start: the model's features are not train_data's at this host",
            ));
        }
        send_dirs(ctx, &guest, "wdir", Ok(data.clone()), &prior)?;
        model.splits = prior.splits;
        model.importance = prior.importance;
    }
    let mut next_id = model.splits.iter().map(|s| s.id + 1).max().unwrap_or(0);
    let validate = if setup.validate {
        Some(columns_for(
            &required_dataset(ctx, "validate_data")?,
            &model.header,
        )?)
    } else {
        None
    };
    let encryptor = pk.encryptor();

    for tree in 0..setup.num_trees {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let (from, gh): (_, Gh) = recv_one(ctx, &guest, &format!("gh.{tree}"))?;
        if gh.stop {
            ctx.log(&format!(
                "hetero_secureboost host: the guest stopped early, after {tree} trees"
            ));
            break;
        }
        let first_split = next_id;
        if !gh.layout.fits(&pk) {
            return Err(fail(format!(
                "hetero_secureboost: {from} sent an unusable layout"
            )));
        }
        let rows_gh = pk
            .decode_ciphertexts(&gh.data)
            .map_err(|e| fail(format!("hetero_secureboost: gradients from {from}: {e}")))?;
        if rows_gh.len() != n {
            return Err(fail(format!(
                "hetero_secureboost: {from} sent {} gradients for {n} rows",
                rows_gh.len()
            )));
        }
        for depth in 0.. {
            let (_, level): (_, Level) = recv_one(ctx, &guest, &format!("level.{tree}.{depth}"))?;
            if level.row_node.is_empty() && level.compute.is_empty() {
                break;
            }
            if level.row_node.len() != n || depth >= setup.max_depth {
                return Err(fail("hetero_secureboost: the guest's level is malformed"));
            }
            let rows_of = group_rows(&level.row_node);
            let hist = histograms(
                &level.compute,
                &rows_of,
                &binned,
                &perm,
                &rows_gh,
                &gh.layout,
                &pk,
                &encryptor,
            )?;
            send(ctx, &guest, &format!("hist.{tree}.{depth}"), &hist)?;
            let (_, splits): (_, Splits) = recv_one(ctx, &guest, &format!("split.{tree}.{depth}"))?;
            let mut ids = Vec::new();
            let mut maps = Vec::new();
            for Chosen { node, slot, bin } in splits.chosen {
                let rows = rows_of
                    .get(&node)
                    .ok_or_else(|| fail("hetero_secureboost: a split of a node with no rows"))?;
                let feature = *perm
                    .get(slot as usize)
                    .ok_or_else(|| fail("hetero_secureboost: a split of an unknown feature"))?;
                let threshold = *binned.cuts[feature]
                    .get(usize::from(bin))
                    .ok_or_else(|| fail("hetero_secureboost: a split at an unknown bin"))?;
                let col = &binned.bins[feature];
                maps.push(bitmap(rows.iter().map(|&r| col[r] <= bin)));
                ids.push(next_id);
                model.splits.push(HostSplit {
                    id: next_id,
                    feature: feature as u32,
                    threshold,
                });
                next_id += 1;
            }
            let dirs = Dirs {
                v: WIRE_VERSION,
                split_ids: ids,
                bitmaps: maps,
            };
            send(ctx, &guest, &format!("dir.{tree}.{depth}"), &dirs)?;
        }
        if let Some(v) = &validate {
            let mine = SecureBoostModel {
                splits: model
                    .splits
                    .iter()
                    .filter(|s| s.id >= first_split)
                    .cloned()
                    .collect(),
                ..model.clone()
            };
            send_dirs(ctx, &guest, &format!("vdir.{tree}"), Ok(v.clone()), &mine)?;
        }
    }
    let (_, finish): (_, Finish) = recv_one(ctx, &guest, "finish")?;
    if !finish.error.is_empty() {
        return Err(fail(finish.error));
    }
    // Keep the splits of the model's trees (early stopping may have dropped the last ones);
    // importance over all of them.
    let kept: std::collections::HashSet<u32> = finish.gains.iter().map(|(id, _)| *id).collect();
    model.splits.retain(|s| kept.contains(&s.id));
    model.importance.clear();
    let feature_of: HashMap<u32, u32> = model.splits.iter().map(|s| (s.id, s.feature)).collect();
    for (id, gain) in finish.gains {
        if let Some(&f) = feature_of.get(&id) {
            let e: &mut Importance = model
                .importance
                .entry(model.header[f as usize].clone())
                .or_default();
            e.splits += 1;
            e.gain += gain;
        }
    }
    if setup.score_test {
        send_dirs(
            ctx,
            &guest,
            "tdir",
            required_dataset(ctx, "test_data"),
            &model,
        )?;
    }
    super::log_importance(ctx, &model)?;
    ctx.output("model", &model.to_bytes()?)?;
    ctx.log(&format!(
        "hetero_secureboost host: {} splits on its features over {} trees",
        model.splits.len(),
        setup.num_trees
    ));
    Ok(())
}

/// Rows by node (rows in order), for rows with a node.
fn group_rows(row_node: &[u32]) -> HashMap<u32, Vec<usize>> {
    let mut out: HashMap<u32, Vec<usize>> = HashMap::new();
    for (r, &node) in row_node.iter().enumerate() {
        if node != u32::MAX {
            out.entry(node).or_default().push(r);
        }
    }
    out
}

/// The packed, re-randomized histograms of the `compute` nodes, features in `perm` order.
#[allow(clippy::too_many_arguments)]
fn histograms(
    compute: &[u32],
    rows_of: &HashMap<u32, Vec<usize>>,
    binned: &Binned,
    perm: &[usize],
    rows_gh: &[Ciphertext],
    layout: &Layout,
    pk: &PublicKey,
    encryptor: &crate::paillier::Encryptor,
) -> Result<Hist, TaskError> {
    let empty = Vec::new();
    let mut jobs = Vec::new();
    for &node in compute {
        let rows = rows_of.get(&node).unwrap_or(&empty);
        for &f in perm {
            jobs.push((node, f, rows));
        }
    }
    if jobs.len() > 1 << 20 {
        return Err(fail(
            "hetero_secureboost: the guest asked for too many histograms",
        ));
    }
    let done: Vec<(Vec<u16>, Vec<Ciphertext>)> = jobs
        .par_iter()
        .map(|&(_, f, rows)| {
            let nbins = binned.cuts[f].len() + 1;
            let mut sums: Vec<Option<Ciphertext>> = vec![None; nbins];
            let col = &binned.bins[f];
            for &r in rows {
                let slot = &mut sums[usize::from(col[r])];
                match slot {
                    Some(c) => pk.add_assign(c, &rows_gh[r]),
                    None => *slot = Some(rows_gh[r].clone()),
                }
            }
            let (bins, cs): (Vec<u16>, Vec<Ciphertext>) = sums
                .into_iter()
                .enumerate()
                .filter_map(|(b, c)| c.map(|c| (b as u16, c)))
                .unzip();
            let packed = pack(layout, pk, encryptor, &cs);
            (bins, packed)
        })
        .collect();
    let mut nodes: Vec<NodeHist> = compute
        .iter()
        .map(|&node| NodeHist {
            node,
            slots: Vec::with_capacity(perm.len()),
        })
        .collect();
    let mut all = Vec::new();
    for (i, (bins, packed)) in done.into_iter().enumerate() {
        nodes[i / perm.len().max(1)].slots.push(bins);
        all.extend(packed);
    }
    Ok(Hist {
        v: WIRE_VERSION,
        nodes,
        data: pk.encode_ciphertexts(&all),
    })
}

/// Predict mode: directions of every split of this host's model for `test_data`.
pub fn predict(ctx: &dyn TaskContext, model: &[u8]) -> Result<(), TaskError> {
    let guest = one(ctx, Role::Guest)?;
    let model = SecureBoostModel::from_bytes(model)?;
    if model.role != "host" {
        return Err(fail(
            "hetero_secureboost: this party's model part is not a host's",
        ));
    }
    let test = dataset(ctx, "test_data")?
        .ok_or_else(|| fail("hetero_secureboost: input 'test_data' is not wired"));
    send_dirs(ctx, &guest, "pdir", test, &model)?;
    ctx.log(&format!(
        "hetero_secureboost host: sent the directions of {} splits",
        model.splits.len()
    ));
    Ok(())
}
