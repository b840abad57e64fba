//! What training needs besides the protocol, shared with the plain reference in the tests:
//! quantile bins, gradients in fixed point, histograms of exact integer sums, the split gain,
//! and the model's trees. Sums are integers (g, h rounded to 2^-[`FRAC`] per row), so a
//! histogram decrypted from the hosts' ciphertexts equals the one summed in the clear, bit for
//! bit, and both find the same split.

use serde::{Deserialize, Serialize};

/// Fractional bits of a row's g and h.
pub const FRAC: u32 = 20;

/// Cut points of one feature, as FATE bins: the distinct quantiles at `i / max_bin` for
/// `i` in `0..max_bin` (linear interpolation between order statistics). A value goes to bin
/// `i`, the number of cuts below it, so bin `t` holds the values in `(cuts[t-1], cuts[t]]`,
/// "bin ≤ t" means "x ≤ cuts[t]", and there are at most `max_bin + 1` bins.
pub fn cuts(values: &[f64], max_bin: usize) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<f64> = (0..max_bin)
        .map(|i| {
            let pos = (i as f64 / max_bin as f64) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        })
        .collect();
    out.dedup();
    // A cut at the largest value would leave its right side empty.
    if out.last() == v.last() {
        out.pop();
    }
    out
}

/// The bin of `x` given `cuts`.
pub fn bin_of(cuts: &[f64], x: f64) -> u16 {
    cuts.partition_point(|c| *c < x) as u16
}

/// A row's g and h in fixed point, offset so every g is non-negative: `g_fx = round((g +
/// g_off)·2^FRAC)`, `h_fx = round(h·2^FRAC)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GradFx {
    pub g: u64,
    pub h: u64,
}

/// Sums of a set of rows: offset g, h, count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    pub g: u128,
    pub h: u128,
    pub n: u64,
}

impl Sums {
    pub fn add(&mut self, r: GradFx) {
        self.g += u128::from(r.g);
        self.h += u128::from(r.h);
        self.n += 1;
    }

    pub fn plus(self, o: Sums) -> Sums {
        Sums {
            g: self.g + o.g,
            h: self.h + o.h,
            n: self.n + o.n,
        }
    }

    /// `self − o` (o a subset of self).
    pub fn minus(self, o: Sums) -> Option<Sums> {
        Some(Sums {
            g: self.g.checked_sub(o.g)?,
            h: self.h.checked_sub(o.h)?,
            n: self.n.checked_sub(o.n)?,
        })
    }

    /// G and H as numbers, undoing the offset (`g_off_fx` per row).
    pub fn gh(self, g_off_fx: u64) -> (f64, f64) {
        let scale = f64::from(1u32 << FRAC);
        let g = self.g as i128 - i128::from(self.n) * i128::from(g_off_fx);
        (g as f64 / scale, self.h as f64 / scale)
    }
}

/// The gradients of one tree in fixed point, and the offset of g.
#[derive(Debug, Clone)]
pub struct Grads {
    pub rows: Vec<GradFx>,
    /// Per-row offset added to g, in fixed point (a power of two ≥ max |g|).
    pub g_off_fx: u64,
}

/// Fixed-point g and h of every row; fails on values that are not finite.
pub fn quantize(g: &[f64], h: &[f64]) -> Grads {
    let bound = g.iter().fold(1.0f64, |m, v| m.max(v.abs())).ceil();
    let g_off = bound.log2().ceil().exp2();
    let scale = f64::from(1u32 << FRAC);
    let g_off_fx = (g_off * scale) as u64;
    let rows = g
        .iter()
        .zip(h)
        .map(|(&g, &h)| GradFx {
            g: ((g + g_off) * scale).round().max(0.0) as u64,
            h: (h * scale).round().max(0.0) as u64,
        })
        .collect();
    Grads { rows, g_off_fx }
}

/// Settings of split finding.
#[derive(Debug, Clone, Copy)]
pub struct SplitRules {
    pub l2: f64,
    pub min_child_weight: f64,
    pub min_leaf_node: u64,
    pub min_sample_split: u64,
    pub min_gain: f64,
}

/// The score of a set of rows: G²/(H+λ).
fn score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

/// The best split of a node over one feature's histogram (`bins[t]`: the sums of bin `t`):
/// (gain, bin) — left is bins `≤ t` — or None when no split satisfies the rules.
pub fn best_in_feature(
    bins: &[Sums],
    total: Sums,
    g_off_fx: u64,
    rules: &SplitRules,
) -> Option<(f64, u16)> {
    let (g, h) = total.gh(g_off_fx);
    let parent = score(g, h, rules.l2);
    let mut left = Sums::default();
    let mut best: Option<(f64, u16)> = None;
    // The last bin cannot be a split (nothing would go right).
    for (t, b) in bins.iter().enumerate().take(bins.len().saturating_sub(1)) {
        left = left.plus(*b);
        let Some(right) = total.minus(left) else {
            break;
        };
        if left.n < rules.min_leaf_node || right.n < rules.min_leaf_node {
            continue;
        }
        let (gl, hl) = left.gh(g_off_fx);
        let (gr, hr) = right.gh(g_off_fx);
        if hl < rules.min_child_weight || hr < rules.min_child_weight {
            continue;
        }
        let gain = score(gl, hl, rules.l2) + score(gr, hr, rules.l2) - parent;
        if gain > rules.min_gain && best.is_none_or(|(b, _)| gain > b) {
            best = Some((gain, t as u16));
        }
    }
    best
}

/// A leaf's weight: −G/(H+λ).
pub fn leaf_weight(total: Sums, g_off_fx: u64, l2: f64) -> f64 {
    let (g, h) = total.gh(g_off_fx);
    -g / (h + l2)
}

/// Where a node's rows go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Split {
    /// At the guest: `header[feature] ≤ threshold` goes left.
    Guest { feature: u32, threshold: f64 },
    /// At a host, which alone knows the feature and threshold of `split_id`.
    Host { party: String, split_id: u32 },
}

/// A node of a tree: a split with two children, or a leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The split; None for a leaf.
    pub split: Option<Split>,
    /// Children (indices into the tree's nodes) of a split.
    pub left: u32,
    pub right: u32,
    /// A leaf's weight (already times the learning rate).
    pub weight: f64,
    /// Gain of the split (0 for a leaf).
    pub gain: f64,
    /// Rows of the training data that reached it.
    pub count: u64,
}

/// One tree: node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf weight for a row, given how each split sends it (`left(split)`).
    pub fn walk(&self, mut left: impl FnMut(&Split) -> Option<bool>) -> Option<f64> {
        let mut i = 0usize;
        for _ in 0..=self.nodes.len() {
            let node = self.nodes.get(i)?;
            match &node.split {
                None => return Some(node.weight),
                Some(s) => i = if left(s)? { node.left } else { node.right } as usize,
            }
        }
        None
    }
}

/// The logistic loss of `scores` (log-odds) against 0/1 `labels`.
pub fn log_loss(labels: &[f64], scores: &[f64]) -> f64 {
    let n = labels.len().max(1) as f64;
    labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| {
            // log(1 + e^s) − y·s, computed stably.
            let softplus = if s > 0.0 {
                s + (-s).exp().ln_1p()
            } else {
                s.exp().ln_1p()
            };
            softplus - y * s
        })
        .sum::<f64>()
        / n
}

/// g and h of the logistic loss at log-odds `s` for label `y`.
pub fn logistic_gh(y: f64, s: f64) -> (f64, f64) {
    let p = 1.0 / (1.0 + (-s).exp());
    (p - y, (p * (1.0 - p)).max(1e-16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_and_bins() {
        let v = [1.0, 2.0, 2.0, 3.0, 4.0];
        let c = cuts(&v, 4);
        assert_eq!(c, vec![1.0, 2.0, 3.0]);
        assert_eq!(
            v.iter().map(|&x| bin_of(&c, x)).collect::<Vec<_>>(),
            vec![0, 1, 1, 2, 3]
        );
        let many: Vec<f64> = (0..1001).map(f64::from).collect();
        let c = cuts(&many, 4);
        assert_eq!(c, vec![0.0, 250.0, 500.0, 750.0]);
        assert!(cuts(&[5.0, 5.0], 32).is_empty());
    }

    #[test]
    fn sums_undo_the_offset_and_a_split_is_found() {
        let g = [-0.5, -0.5, 0.5, 0.5];
        let h = [0.25; 4];
        let q = quantize(&g, &h);
        assert_eq!(q.g_off_fx, 1 << FRAC);
        let mut bins = vec![Sums::default(); 2];
        for (i, r) in q.rows.iter().enumerate() {
            bins[i / 2].add(*r);
        }
        let total = bins[0].plus(bins[1]);
        assert_eq!(total.gh(q.g_off_fx), (0.0, 1.0));
        let rules = SplitRules {
            l2: 0.0,
            min_child_weight: 0.0,
            min_leaf_node: 1,
            min_sample_split: 2,
            min_gain: 0.0,
        };
        let (gain, t) = best_in_feature(&bins, total, q.g_off_fx, &rules).expect("split");
        assert_eq!(t, 0);
        assert!((gain - 4.0).abs() < 1e-9, "{gain}");
        assert!((leaf_weight(bins[0], q.g_off_fx, 0.0) - 2.0).abs() < 1e-9);
    }
}
