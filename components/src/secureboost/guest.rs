//! The guest: labels, its features, the Paillier key. Per tree it computes every row's g and h,
//! encrypts them for the hosts, and grows the tree level by level: its own histograms in the
//! clear, the hosts' decrypted from their packed sums, a sibling's as its parent's minus the
//! other child's; it picks each node's best split by gain and asks a host to apply the splits
//! chosen on its features.

use std::collections::{BTreeMap, HashMap, HashSet};

use consort_protocol::data::Dataset;
use consort_protocol::job::Role;
use rayon::prelude::*;

use super::model::{MODEL_VERSION, Params, SecureBoostModel};
use super::pack::{Layout, encrypt_rows};
use super::tree::{
    Grads, Node, Split, SplitRules, Sums, Tree, best_in_feature, bin_of, cuts, leaf_weight,
    log_loss, logistic_gh, quantize,
};
use super::wire::{
    Align, AllDirs, Chosen, Dirs, Finish, Gh, Hist, Level, Setup, Splits, WIRE_VERSION, bit, recv,
    send,
};
use crate::context::{Endpoint, Target, TaskContext, TaskError};
use crate::hetero_lr::common::{
    columns_for, dataset, fail, hosts, ids_hash, required_dataset, score_output, sigmoid,
};
use crate::paillier::{PrivateKey, PublicKey, generate_keypair};

/// Histograms of one node: per feature, per bin.
#[derive(Clone, Default)]
struct NodeHists {
    own: Vec<Vec<Sums>>,
    /// Per host (in [`hosts`] order), per slot.
    hosts: Vec<Vec<Vec<Sums>>>,
}

impl NodeHists {
    fn minus(&self, o: &NodeHists) -> Option<NodeHists> {
        let sub = |a: &Vec<Vec<Sums>>, b: &Vec<Vec<Sums>>| -> Option<Vec<Vec<Sums>>> {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.iter().zip(y).map(|(p, c)| p.minus(*c)).collect())
                .collect()
        };
        Some(NodeHists {
            own: sub(&self.own, &o.own)?,
            hosts: self
                .hosts
                .iter()
                .zip(&o.hosts)
                .map(|(a, b)| sub(a, b))
                .collect::<Option<_>>()?,
        })
    }
}

/// The best split of a node: gain, and where.
#[derive(Clone, Copy)]
enum Where {
    Own { feature: usize, bin: u16 },
    Host { host: usize, slot: u32, bin: u16 },
}

/// What the guest's tree growing shares across levels and trees.
struct Grower<'a> {
    ctx: &'a dyn TaskContext,
    hosts: Vec<Endpoint>,
    rules: SplitRules,
    p: &'a Params,
    own_cuts: Vec<Vec<f64>>,
    own_bins: Vec<Vec<u16>>,
    pk: PublicKey,
    sk: PrivateKey,
    /// Bins per feature at most (`max_bin` cuts make `max_bin + 1` bins).
    max_bin: usize,
    n: usize,
}

/// Trains the guest's part.
pub fn train(ctx: &dyn TaskContext, p: &Params) -> Result<(), TaskError> {
    let data = required_dataset(ctx, "train_data")?;
    let test = dataset(ctx, "test_data")?;
    let validate = dataset(ctx, "validate_data")?;
    let host_t = Target::Role(Role::Host);
    let n = data.rows();
    let hosts = hosts(ctx);

    let my_hash = ids_hash(&data.ids);
    let mut problems = Vec::new();
    let train_labels = labels(&data);
    if let Err(e) = &train_labels {
        problems.push(e.to_string());
    }
    if n == 0 {
        problems.push("hetero_secureboost: train_data has no rows".into());
    }
    if let Some((f, i)) = data
        .columns
        .iter()
        .enumerate()
        .find_map(|(f, c)| c.iter().position(|x| !x.is_finite()).map(|i| (f, i)))
    {
        problems.push(format!(
            "hetero_secureboost: feature '{}' of row {i} is not a finite number",
            data.feature_names[f]
        ));
    }
    for (from, a) in recv::<Align>(ctx, &host_t, "align")? {
        if !a.error.is_empty() {
            problems.push(format!("{from}: {}", a.error));
        } else if a.rows != n as u64 || a.ids_hash != my_hash {
            problems.push(format!(
                "hetero_secureboost: rows are not aligned: {from}'s ids differ from the guest's \
                 ({} rows here, {} there; run psi first)",
                n, a.rows
            ));
        }
    }
    let warm = crate::hetero_lr::common::warm_start(ctx);
    let y_val = match (&validate, p.early_stopping_rounds) {
        (Some(v), _) => match labels(v) {
            Ok(y) => Some(y),
            Err(e) => {
                problems.push(format!("validate_data: {e}"));
                None
            }
        },
        (None, 0) => None,
        (None, _) => {
            problems.push("early_stopping_rounds needs a validate_data input".into());
            None
        }
    };
    if warm && validate.is_some() {
        problems
            .push("a warm start does not follow validate_data yet: wire one or the other".into());
    }
    let prior = if warm {
        match ctx.input("model")? {
            Some(b) => Some(SecureBoostModel::from_bytes(&b)?),
            None => {
                problems.push("warm_start: input 'model' is not wired at the guest".into());
                None
            }
        }
    } else {
        None
    };
    let keys = if problems.is_empty() {
        Some(generate_keypair(p.key_bits).map_err(|e| fail(format!("hetero_secureboost: {e}")))?)
    } else {
        None
    };
    let setup = Setup {
        v: WIRE_VERSION,
        error: problems.join("; "),
        rows: n as u64,
        num_trees: p.num_trees,
        max_depth: p.max_depth,
        max_bin: p.max_bin,
        n: keys
            .as_ref()
            .map(|(pk, _)| pk.to_bytes())
            .unwrap_or_default(),
        warm,
        score_test: test.is_some(),
        validate: validate.is_some(),
    };
    send(ctx, &host_t, "setup", &setup)?;
    let (Some((pk, sk)), Ok(y)) = (keys, train_labels) else {
        return Err(fail(setup.error));
    };

    let own_cuts: Vec<Vec<f64>> = data
        .columns
        .iter()
        .map(|c| cuts(c, p.max_bin as usize))
        .collect();
    let own_bins = data
        .columns
        .iter()
        .zip(&own_cuts)
        .map(|(col, c)| col.iter().map(|&x| bin_of(c, x)).collect())
        .collect();
    let mut model = SecureBoostModel {
        v: MODEL_VERSION,
        role: "guest".into(),
        header: data.feature_names.clone(),
        trees: Vec::new(),
        init_score: 0.0,
        hosts: hosts.iter().map(|h| h.party.to_string()).collect(),
        splits: Vec::new(),
        importance: BTreeMap::new(),
        objective: "binary:bce".into(),
    };
    let mut scores = match prior {
        Some(prior) => {
            if prior.header != data.feature_names || prior.hosts != model.hosts {
                return Err(fail(
                    "warm start: the model's features or hosts are not this task's",
                ));
            }
            let dirs = host_dirs(ctx, &hosts, "wdir", &data)?;
            let s = score_rows(prior.init_score, &prior.trees, &data, &dirs)?;
            ctx.log(&format!(
                "hetero_secureboost: warm start from {} trees",
                prior.trees.len()
            ));
            model.trees = prior.trees;
            model.init_score = prior.init_score;
            model.importance = prior.importance;
            s
        }
        None => {
            let mean = y.iter().sum::<f64>() / n as f64;
            let mean = mean.clamp(1e-6, 1.0 - 1e-6);
            model.init_score = (mean / (1.0 - mean)).ln();
            vec![model.init_score; n]
        }
    };
    let grower = Grower {
        ctx,
        hosts,
        rules: SplitRules {
            l2: p.l2,
            min_child_weight: p.min_child_weight,
            min_leaf_node: p.min_leaf_node,
            min_sample_split: p.min_sample_split,
            min_gain: p.min_impurity_split,
        },
        p,
        own_cuts,
        own_bins,
        pk,
        sk,
        max_bin: p.max_bin as usize + 1,
        n,
    };
    let first = model.trees.len();
    // Early stopping: the validation rows' log-odds, and the best count of trees so far with
    // the training scores then.
    let validate = validate
        .map(|v| columns_for(&v, &model.header))
        .transpose()?;
    let mut val_scores = validate.as_ref().map(|v| vec![model.init_score; v.rows()]);
    let mut best: Option<(f64, usize, Vec<f64>)> = None;
    let result = (|| -> Result<(), TaskError> {
        for t in 0..p.num_trees {
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let started = std::time::Instant::now();
            let (g, h) = gradients(&y, &scores, p, t);
            let grads = quantize(&g, &h);
            let (tree, leaf_of) = grower.grow(t, &grads)?;
            for (r, s) in scores.iter_mut().enumerate() {
                *s += tree.nodes[leaf_of[r] as usize].weight;
            }
            let loss = log_loss(&y, &scores);
            let x = (first as u32 + t) as f64;
            ctx.log_metric("train", "loss", &[(x, loss)])?;
            ctx.log(&format!(
                "hetero_secureboost guest: tree {} ({} nodes) in {:.2} s, loss {loss:.6}",
                first as u32 + t,
                tree.nodes.len(),
                started.elapsed().as_secs_f64()
            ));
            model.trees.push(tree);
            let (Some(v), Some(vs), Some(yv)) = (&validate, &mut val_scores, &y_val) else {
                continue;
            };
            let dirs = host_dirs(ctx, &grower.hosts, &format!("vdir.{t}"), v)?;
            let last = &model.trees[model.trees.len() - 1..];
            for (s, d) in vs.iter_mut().zip(score_rows(0.0, last, v, &dirs)?) {
                *s += d;
            }
            let vloss = log_loss(yv, vs);
            ctx.log_metric("validate", "loss", &[(x, vloss)])?;
            if best.as_ref().is_none_or(|(b, _, _)| vloss < *b) {
                best = Some((vloss, model.trees.len(), scores.clone()));
            } else if let Some((b, kept, _)) = &best
                && model.trees.len() - kept >= p.early_stopping_rounds as usize
                && p.early_stopping_rounds > 0
            {
                ctx.log(&format!(
                    "hetero_secureboost guest: validation loss {vloss:.6} has not improved on \
                     {b:.6} for {} trees: stopping, keeping {kept} trees",
                    p.early_stopping_rounds
                ));
                if t + 1 < p.num_trees {
                    let stop = Gh {
                        v: WIRE_VERSION,
                        stop: true,
                        layout: Layout {
                            wg: 0,
                            wh: 0,
                            wc: 0,
                            per_cipher: 0,
                        },
                        data: Vec::new(),
                    };
                    send(
                        ctx,
                        &Target::Role(Role::Host),
                        &format!("gh.{}", t + 1),
                        &stop,
                    )?;
                }
                break;
            }
        }
        Ok(())
    })();
    if result.is_ok()
        && p.early_stopping_rounds > 0
        && let Some((_, kept, kept_scores)) = best
    {
        model.trees.truncate(kept);
        scores = kept_scores;
    }
    // Importance and the hosts' gains over the model's trees.
    model.importance.clear();
    let mut host_gains: Vec<Vec<(u32, f64)>> = vec![Vec::new(); grower.hosts.len()];
    for node in model.trees.iter().flat_map(|t| &t.nodes) {
        match &node.split {
            Some(Split::Guest { feature, .. }) => {
                let e = model
                    .importance
                    .entry(model.header[*feature as usize].clone())
                    .or_default();
                e.splits += 1;
                e.gain += node.gain;
            }
            Some(Split::Host { party, split_id }) => {
                if let Some(i) = model.hosts.iter().position(|h| h == party) {
                    host_gains[i].push((*split_id, node.gain));
                }
            }
            None => {}
        }
    }
    for (i, host) in grower.hosts.iter().enumerate() {
        let finish = Finish {
            v: WIRE_VERSION,
            error: result
                .as_ref()
                .err()
                .map(|e| format!("the guest failed: {e}"))
                .unwrap_or_default(),
            gains: std::mem::take(&mut host_gains[i]),
        };
        send(ctx, &Target::One(host.clone()), "finish", &finish)?;
    }
    result?;

    let probs: Vec<f64> = scores.iter().map(|&s| sigmoid(s)).collect();
    ctx.output("train_output", &score_output(&data, probs)?)?;
    if let Some(test) = test {
        let test = columns_for(&test, &model.header)?;
        let dirs = host_dirs(ctx, &grower.hosts, "tdir", &test)?;
        let s = score_rows(model.init_score, &model.trees, &test, &dirs)?;
        let probs = s.iter().map(|&s| sigmoid(s)).collect();
        ctx.output("predict_output", &score_output(&test, probs)?)?;
    }
    super::log_importance(ctx, &model)?;
    ctx.output("model", &model.to_bytes()?)?;
    ctx.log_metric("train", "trees", &[(0.0, model.trees.len() as f64)])?;
    Ok(())
}

/// 0/1 labels.
fn labels(ds: &Dataset) -> Result<Vec<f64>, TaskError> {
    let labels = ds
        .labels
        .as_ref()
        .ok_or_else(|| fail("hetero_secureboost: the guest's train_data has no labels"))?;
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if y == 0.0 || y == 1.0 {
                Ok(y)
            } else {
                Err(fail(format!(
                    "hetero_secureboost: label {y} of row {i} (id '{}') is not 0 or 1",
                    ds.ids[i]
                )))
            }
        })
        .collect()
}

/// g and h of every row for tree `t`; with GOSS, the rows with the largest |g| and a seeded
/// sample of the rest (amplified), the others zero.
pub(super) fn gradients(y: &[f64], scores: &[f64], p: &Params, t: u32) -> (Vec<f64>, Vec<f64>) {
    let (mut g, mut h): (Vec<f64>, Vec<f64>) = y
        .iter()
        .zip(scores)
        .map(|(&y, &s)| logistic_gh(y, s))
        .unzip();
    if p.goss {
        let n = g.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
        let top = (p.top_rate * n as f64).ceil() as usize;
        let mut rest: Vec<usize> = order[top.min(n)..].to_vec();
        let take = (p.other_rate * n as f64).ceil() as usize;
        let mut state = p.seed ^ u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in (1..rest.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            rest.swap(i, j);
        }
        let amplify = (1.0 - p.top_rate) / p.other_rate;
        for (k, &r) in rest.iter().enumerate() {
            if k < take {
                g[r] *= amplify;
                h[r] *= amplify;
            } else {
                g[r] = 0.0;
                h[r] = 0.0;
            }
        }
    }
    (g, h)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Grower<'_> {
    /// Grows tree `t` on `grads`; returns it and each row's leaf.
    fn grow(&self, t: u32, grads: &Grads) -> Result<(Tree, Vec<u32>), TaskError> {
        let ctx = self.ctx;
        let p = self.p;
        let layout = Layout::new(grads, p.key_bits).ok_or_else(|| {
            fail(format!(
                "hetero_secureboost: {} rows do not fit a {}-bit key's plaintext; use a larger \
                 key_bits",
                self.n, p.key_bits
            ))
        })?;
        let enc = self.pk.encryptor();
        let cs = encrypt_rows(&layout, grads, &enc);
        let gh = Gh {
            v: WIRE_VERSION,
            stop: false,
            layout,
            data: self.pk.encode_ciphertexts(&cs),
        };
        send(ctx, &Target::Role(Role::Host), &format!("gh.{t}"), &gh)?;

        let mut row_leaf = vec![0u32; self.n];
        let mut total = Sums::default();
        for r in &grads.rows {
            total.add(*r);
        }
        let mut nodes = vec![Node {
            split: None,
            left: 0,
            right: 0,
            weight: 0.0,
            gain: 0.0,
            count: total.n,
        }];
        let mut sums = vec![total];
        let mut parent_of: Vec<Option<u32>> = vec![None];
        let mut active: Vec<u32> = if total.n >= self.rules.min_sample_split {
            vec![0]
        } else {
            Vec::new()
        };
        let mut prev: HashMap<u32, NodeHists> = HashMap::new();
        let mut depth = 0u32;
        while depth < p.max_depth && !active.is_empty() {
            let active_set: HashSet<u32> = active.iter().copied().collect();
            // Compute the smaller of two active siblings, derive the other from the parent.
            let mut compute = Vec::new();
            let mut derive = Vec::new();
            for &a in &active {
                let sibling = parent_of[a as usize].map(|par| {
                    let pn = &nodes[par as usize];
                    if pn.left == a { pn.right } else { pn.left }
                });
                match sibling {
                    Some(s)
                        if active_set.contains(&s)
                            && prev.contains_key(&parent_of[a as usize].unwrap_or(0)) =>
                    {
                        let (ca, cs) = (sums[a as usize].n, sums[s as usize].n);
                        if (ca, a) < (cs, s) {
                            compute.push(a);
                        } else {
                            derive.push((a, s));
                        }
                    }
                    _ => compute.push(a),
                }
            }
            let row_node: Vec<u32> = row_leaf
                .iter()
                .map(|l| if active_set.contains(l) { *l } else { u32::MAX })
                .collect();
            let level = Level {
                v: WIRE_VERSION,
                row_node,
                compute: compute.clone(),
            };
            send(
                ctx,
                &Target::Role(Role::Host),
                &format!("level.{t}.{depth}"),
                &level,
            )?;
            let mut hists = self.own_hists(&compute, &level.row_node, grads);
            self.host_hists(t, depth, &compute, &sums, &layout, &mut hists)?;
            for (a, s) in derive {
                let par = parent_of[a as usize].unwrap_or(0);
                let derived = prev
                    .get(&par)
                    .zip(hists.get(&s))
                    .and_then(|(ph, sh)| ph.minus(sh))
                    .ok_or_else(|| fail("hetero_secureboost: a host's histograms do not add up"))?;
                hists.insert(a, derived);
            }
            // Best split per active node.
            let mut chosen: Vec<Vec<Chosen>> = vec![Vec::new(); self.hosts.len()];
            let mut splits: Vec<(u32, f64, Where)> = Vec::new();
            for &a in &active {
                let Some(hs) = hists.get(&a) else { continue };
                if let Some((gain, at)) = self.best(hs, sums[a as usize], grads.g_off_fx) {
                    if let Where::Host { host, slot, bin } = at {
                        chosen[host].push(Chosen { node: a, slot, bin });
                    }
                    splits.push((a, gain, at));
                }
            }
            for (i, host) in self.hosts.iter().enumerate() {
                let msg = Splits {
                    v: WIRE_VERSION,
                    chosen: std::mem::take(&mut chosen[i]),
                };
                send(
                    ctx,
                    &Target::One(host.clone()),
                    &format!("split.{t}.{depth}"),
                    &msg,
                )?;
            }
            // The rows of each node split at this level, in row order.
            let mut rows_of: HashMap<u32, Vec<usize>> = splits
                .iter()
                .map(|(node, _, _)| (*node, Vec::new()))
                .collect();
            for (r, l) in row_leaf.iter().enumerate() {
                if let Some(rows) = rows_of.get_mut(l) {
                    rows.push(r);
                }
            }
            let dirs = self.host_directions(t, depth, &splits, &rows_of)?;
            // Apply the splits.
            let mut next = Vec::new();
            let mut goes_left: HashMap<u32, Vec<bool>> = HashMap::new();
            let mut split_of: HashMap<u32, Split> = HashMap::new();
            for (node, _, at) in &splits {
                let rows = &rows_of[node];
                let (left, split) = match *at {
                    Where::Own { feature, bin } => (
                        rows.iter()
                            .map(|&r| self.own_bins[feature][r] <= bin)
                            .collect(),
                        Split::Guest {
                            feature: feature as u32,
                            threshold: self.own_cuts[feature][usize::from(bin)],
                        },
                    ),
                    Where::Host { host, .. } => {
                        let (id, map) = dirs.get(node).ok_or_else(|| {
                            fail("hetero_secureboost: a host did not apply its split")
                        })?;
                        (
                            (0..rows.len()).map(|i| bit(map, i)).collect(),
                            Split::Host {
                                party: self.hosts[host].party.to_string(),
                                split_id: *id,
                            },
                        )
                    }
                };
                goes_left.insert(*node, left);
                split_of.insert(*node, split);
            }
            let mut cursor: HashMap<u32, usize> = HashMap::new();
            let mut children: HashMap<u32, (u32, u32)> = HashMap::new();
            for (node, gain, _) in &splits {
                let l = nodes.len() as u32;
                for _ in 0..2 {
                    nodes.push(Node {
                        split: None,
                        left: 0,
                        right: 0,
                        weight: 0.0,
                        gain: 0.0,
                        count: 0,
                    });
                    sums.push(Sums::default());
                    parent_of.push(Some(*node));
                }
                let nd = &mut nodes[*node as usize];
                nd.left = l;
                nd.right = l + 1;
                nd.gain = *gain;
                nd.split = split_of.remove(node);
                children.insert(*node, (l, l + 1));
            }
            for (r, leaf) in row_leaf.iter_mut().enumerate() {
                let node = *leaf;
                if let (Some(&(l, rt)), Some(left)) = (children.get(&node), goes_left.get(&node)) {
                    let i = cursor.entry(node).or_insert(0);
                    let child = if left[*i] { l } else { rt };
                    *i += 1;
                    *leaf = child;
                    sums[child as usize].add(grads.rows[r]);
                    nodes[child as usize].count += 1;
                }
            }
            for (node, _, _) in &splits {
                let (l, r) = children[node];
                for c in [l, r] {
                    if sums[c as usize].n >= self.rules.min_sample_split {
                        next.push(c);
                    }
                }
            }
            prev = splits
                .iter()
                .filter_map(|(node, _, _)| hists.remove(node).map(|h| (*node, h)))
                .collect();
            active = next;
            depth += 1;
        }
        let done = Level {
            v: WIRE_VERSION,
            row_node: Vec::new(),
            compute: Vec::new(),
        };
        send(
            ctx,
            &Target::Role(Role::Host),
            &format!("level.{t}.{depth}"),
            &done,
        )?;
        for (i, node) in nodes.iter_mut().enumerate() {
            if node.split.is_none() {
                node.weight = p.learning_rate * leaf_weight(sums[i], grads.g_off_fx, p.l2);
            }
        }
        Ok((Tree { nodes }, row_leaf))
    }

    /// The guest's own histograms of `compute` nodes.
    fn own_hists(
        &self,
        compute: &[u32],
        row_node: &[u32],
        grads: &Grads,
    ) -> HashMap<u32, NodeHists> {
        let index: HashMap<u32, usize> = compute.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let per_feature: Vec<Vec<Vec<Sums>>> = self
            .own_bins
            .par_iter()
            .zip(&self.own_cuts)
            .map(|(bins, c)| {
                let mut h = vec![vec![Sums::default(); c.len() + 1]; compute.len()];
                for (r, node) in row_node.iter().enumerate() {
                    if let Some(&i) = index.get(node) {
                        h[i][usize::from(bins[r])].add(grads.rows[r]);
                    }
                }
                h
            })
            .collect();
        compute
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let own = per_feature.iter().map(|f| f[i].clone()).collect();
                (
                    c,
                    NodeHists {
                        own,
                        hosts: Vec::new(),
                    },
                )
            })
            .collect()
    }

    /// Receives, checks, decrypts and unpacks every host's histograms of `compute` nodes.
    fn host_hists(
        &self,
        t: u32,
        depth: u32,
        compute: &[u32],
        sums: &[Sums],
        layout: &Layout,
        hists: &mut HashMap<u32, NodeHists>,
    ) -> Result<(), TaskError> {
        let tag = format!("hist.{t}.{depth}");
        let per = layout.per_cipher as usize;
        for host in &self.hosts {
            let (from, msg): (_, Hist) =
                super::wire::recv_one(self.ctx, &Target::One(host.clone()), &tag)?;
            let bad = |why: &str| fail(format!("hetero_secureboost: {from}'s histograms: {why}"));
            if msg.nodes.len() != compute.len()
                || msg.nodes.iter().zip(compute).any(|(h, c)| h.node != *c)
            {
                return Err(bad("not the nodes asked for"));
            }
            let slots = msg.nodes.first().map_or(0, |n| n.slots.len());
            let mut expect = 0usize;
            for nh in &msg.nodes {
                if nh.slots.len() != slots {
                    return Err(bad("a different number of features per node"));
                }
                for bins in &nh.slots {
                    if bins.len() > self.max_bin
                        || bins.windows(2).any(|w| w[0] >= w[1])
                        || bins.last().is_some_and(|&b| usize::from(b) >= self.max_bin)
                    {
                        return Err(bad("bins out of order or range"));
                    }
                    expect += bins.len().div_ceil(per);
                }
            }
            let cs = self
                .pk
                .decode_ciphertexts(&msg.data)
                .map_err(|e| bad(&e.to_string()))?;
            if cs.len() != expect {
                return Err(bad("not as many sums as bins"));
            }
            let plain = self.sk.decrypt_many(&cs);
            let mut next = plain.iter();
            for nh in &msg.nodes {
                let mut node_slots = Vec::with_capacity(slots);
                for bins in &nh.slots {
                    let mut dense = vec![Sums::default(); self.max_bin];
                    let mut opened = Vec::with_capacity(bins.len());
                    for chunk in bins.chunks(per) {
                        let m = next.next().ok_or_else(|| bad("short"))?;
                        opened.extend(layout.unpack(m, chunk.len()));
                    }
                    let mut count = 0;
                    for (&b, s) in bins.iter().zip(opened) {
                        count += s.n;
                        dense[usize::from(b)] = s;
                    }
                    if count != sums[nh.node as usize].n {
                        return Err(bad("a feature's bins do not hold the node's rows"));
                    }
                    node_slots.push(dense);
                }
                if let Some(h) = hists.get_mut(&nh.node) {
                    h.hosts.push(node_slots);
                }
            }
        }
        Ok(())
    }

    /// A node's best split over every feature, own first, then each host's slots.
    fn best(&self, hs: &NodeHists, total: Sums, g_off_fx: u64) -> Option<(f64, Where)> {
        let mut best: Option<(f64, Where)> = None;
        let mut consider = |found: Option<(f64, u16)>, at: &dyn Fn(u16) -> Where| {
            if let Some((gain, bin)) = found
                && best.is_none_or(|(b, _)| gain > b)
            {
                best = Some((gain, at(bin)));
            }
        };
        for (feature, bins) in hs.own.iter().enumerate() {
            let found = best_in_feature(bins, total, g_off_fx, &self.rules);
            consider(found, &|bin| Where::Own { feature, bin });
        }
        for (host, slots) in hs.hosts.iter().enumerate() {
            for (slot, bins) in slots.iter().enumerate() {
                let found = best_in_feature(bins, total, g_off_fx, &self.rules);
                consider(found, &|bin| Where::Host {
                    host,
                    slot: slot as u32,
                    bin,
                });
            }
        }
        best
    }

    /// Each host's answer to the splits chosen at it: node → (split id, bitmap of its rows).
    fn host_directions(
        &self,
        t: u32,
        depth: u32,
        splits: &[(u32, f64, Where)],
        rows_of: &HashMap<u32, Vec<usize>>,
    ) -> Result<HashMap<u32, (u32, Vec<u8>)>, TaskError> {
        let tag = format!("dir.{t}.{depth}");
        let mut out = HashMap::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let (from, msg): (_, Dirs) =
                super::wire::recv_one(self.ctx, &Target::One(host.clone()), &tag)?;
            let mine: Vec<u32> = splits
                .iter()
                .filter(|(_, _, at)| matches!(at, Where::Host { host, .. } if *host == i))
                .map(|(node, _, _)| *node)
                .collect();
            if msg.split_ids.len() != mine.len() || msg.bitmaps.len() != mine.len() {
                return Err(fail(format!(
                    "hetero_secureboost: {from} answered {} splits, {} were asked",
                    msg.split_ids.len(),
                    mine.len()
                )));
            }
            for ((node, id), map) in mine.iter().zip(msg.split_ids).zip(msg.bitmaps) {
                let rows = rows_of.get(node).map_or(0, Vec::len);
                if map.len() != rows.div_ceil(8) {
                    return Err(fail(format!(
                        "hetero_secureboost: {from}'s directions do not cover the node's rows"
                    )));
                }
                out.insert(*node, (id, map.into_vec()));
            }
        }
        Ok(out)
    }
}

/// Every host's directions for `data` under `tag`: (party, split id) → bitmap.
fn host_dirs(
    ctx: &dyn TaskContext,
    hosts: &[Endpoint],
    tag: &str,
    data: &Dataset,
) -> Result<HashMap<(String, u32), Vec<u8>>, TaskError> {
    let hash = ids_hash(&data.ids);
    let mut out = HashMap::new();
    for host in hosts {
        let (from, msg): (_, AllDirs) =
            super::wire::recv_one(ctx, &Target::One(host.clone()), tag)?;
        if !msg.error.is_empty() {
            return Err(fail(format!("{from}: {}", msg.error)));
        }
        if msg.rows != data.rows() as u64 || msg.ids_hash != hash {
            return Err(fail(format!(
                "hetero_secureboost: rows are not aligned with {from} ({} here, {} there; run \
                 psi first)",
                data.rows(),
                msg.rows
            )));
        }
        if msg.split_ids.len() != msg.bitmaps.len()
            || msg
                .bitmaps
                .iter()
                .any(|b| b.len() != data.rows().div_ceil(8))
        {
            return Err(fail(format!(
                "hetero_secureboost: {from}'s directions are malformed"
            )));
        }
        for (id, map) in msg.split_ids.into_iter().zip(msg.bitmaps) {
            out.insert((host.party.to_string(), id), map.into_vec());
        }
    }
    Ok(out)
}

/// Log-odds of every row of `data` (its columns in the model's header order): `init` plus
/// each of `trees`, host splits answered by `dirs`.
fn score_rows(
    init: f64,
    trees: &[Tree],
    data: &Dataset,
    dirs: &HashMap<(String, u32), Vec<u8>>,
) -> Result<Vec<f64>, TaskError> {
    (0..data.rows())
        .map(|r| {
            let mut s = init;
            for tree in trees {
                s += tree
                    .walk(|split| match split {
                        Split::Guest { feature, threshold } => data
                            .columns
                            .get(*feature as usize)
                            .map(|c| c[r] <= *threshold),
                        Split::Host { party, split_id } => {
                            dirs.get(&(party.clone(), *split_id)).map(|m| bit(m, r))
                        }
                    })
                    .ok_or_else(|| {
                        fail("hetero_secureboost: a host did not send the directions of a split")
                    })?;
            }
            Ok(s)
        })
        .collect()
}

/// Predict mode: scores `test_data`, asking each host for the directions of its splits.
pub fn predict(ctx: &dyn TaskContext, model: &[u8]) -> Result<(), TaskError> {
    let model = SecureBoostModel::from_bytes(model)?;
    if model.role != "guest" {
        return Err(fail(
            "hetero_secureboost: this party's model part is not a guest's",
        ));
    }
    let test = required_dataset(ctx, "test_data")?;
    let test = columns_for(&test, &model.header)?;
    let hosts = hosts(ctx);
    let parties: Vec<String> = hosts.iter().map(|h| h.party.to_string()).collect();
    if parties != model.hosts {
        return Err(fail(format!(
            "hetero_secureboost: the model was trained with hosts {}, this task has {}",
            model.hosts.join(", "),
            parties.join(", ")
        )));
    }
    let dirs = host_dirs(ctx, &hosts, "pdir", &test)?;
    let s = score_rows(model.init_score, &model.trees, &test, &dirs)?;
    let probs = s.iter().map(|&s| sigmoid(s)).collect();
    ctx.output("predict_output", &score_output(&test, probs)?)?;
    ctx.log(&format!(
        "hetero_secureboost guest: scored {} rows with {} trees",
        test.rows(),
        model.trees.len()
    ));
    Ok(())
}
