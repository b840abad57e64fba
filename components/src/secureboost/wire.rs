//! `hetero_secureboost`'s messages (MessagePack, named fields, version `v`; sent and received
//! with `hetero_lr`'s helpers). Every count, index and length in a peer's message is checked
//! against what this party expects before it is used.

use serde::{Deserialize, Serialize};

use crate::hetero_lr::wire::Versioned;
pub use crate::hetero_lr::wire::{Align, WIRE_VERSION, recv, recv_one, send};

use super::pack::Layout;

/// Guest → hosts, tag `setup`: whether rows agree, the shared settings and the public key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Setup {
    pub v: u16,
    /// Empty if every party's data agrees; else why not (every party fails with it).
    pub error: String,
    pub rows: u64,
    pub num_trees: u32,
    pub max_depth: u32,
    pub max_bin: u32,
    /// N of the guest's Paillier key, big-endian.
    #[serde(with = "serde_bytes")]
    pub n: Vec<u8>,
    /// Whether training continues a model (hosts then send directions of its splits first).
    pub warm: bool,
    /// Whether the guest scores `test_data` after training (hosts send its directions).
    pub score_test: bool,
    /// Whether the guest follows the loss on `validate_data` after each tree (hosts send the
    /// directions of that tree's splits over it, tag `vdir.{tree}`).
    #[serde(default)]
    pub validate: bool,
}

/// Guest → hosts, tag `gh.{tree}`: every row's encrypted slot; or, with `stop`, no more trees
/// (early stopping).
#[derive(Debug, Serialize, Deserialize)]
pub struct Gh {
    pub v: u16,
    #[serde(default)]
    pub stop: bool,
    pub layout: Layout,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Guest → hosts, tag `level.{tree}.{depth}`: the node of every row that may still split
/// (`u32::MAX`: none) and the nodes whose histograms the hosts compute (the others the guest
/// derives: parent minus sibling). Empty `compute` and `row_node`: the tree is done.
#[derive(Debug, Serialize, Deserialize)]
pub struct Level {
    pub v: u16,
    pub row_node: Vec<u32>,
    pub compute: Vec<u32>,
}

/// A host's histograms of one node: for each of its feature slots (its features in an order
/// of its own), the non-empty bins; their packed sums follow in [`Hist::data`].
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeHist {
    pub node: u32,
    pub slots: Vec<Vec<u16>>,
}

/// Host → guest, tag `hist.{tree}.{depth}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hist {
    pub v: u16,
    pub nodes: Vec<NodeHist>,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A split the guest chose at a host: node, feature slot, bin (left: bin ≤ `bin`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Chosen {
    pub node: u32,
    pub slot: u32,
    pub bin: u16,
}

/// Guest → each host, tag `split.{tree}.{depth}`: the splits chosen at that host (maybe none).
#[derive(Debug, Serialize, Deserialize)]
pub struct Splits {
    pub v: u16,
    pub chosen: Vec<Chosen>,
}

/// Host → guest, tag `dir.{tree}.{depth}`: per chosen split, in order, the host's id for it
/// and which of the node's rows (in row order) go left, as a bitmap.
#[derive(Debug, Serialize, Deserialize)]
pub struct Dirs {
    pub v: u16,
    pub split_ids: Vec<u32>,
    pub bitmaps: Vec<serde_bytes::ByteBuf>,
}

/// Host → guest (tags `pdir` for predict data, `wdir` for a warm start's training data,
/// `tdir` for test data): for each split id of the host's model, which rows go left.
#[derive(Debug, Serialize, Deserialize)]
pub struct AllDirs {
    pub v: u16,
    /// Empty if usable; else why not.
    pub error: String,
    pub rows: u64,
    #[serde(with = "serde_bytes")]
    pub ids_hash: Vec<u8>,
    pub split_ids: Vec<u32>,
    pub bitmaps: Vec<serde_bytes::ByteBuf>,
}

/// Guest → each host, tag `finish`: the gain of each of its splits in the model's trees (for
/// its feature importance; a split not listed belongs to a tree early stopping dropped), or
/// why training failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Finish {
    pub v: u16,
    pub error: String,
    pub gains: Vec<(u32, f64)>,
}

macro_rules! versioned {
    ($($t:ty),*) => { $(impl Versioned for $t { fn version(&self) -> u16 { self.v } })* };
}
versioned!(Setup, Gh, Level, Hist, Splits, Dirs, AllDirs, Finish);

/// A bitmap of `bits`.
pub fn bitmap(bits: impl ExactSizeIterator<Item = bool>) -> serde_bytes::ByteBuf {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    serde_bytes::ByteBuf::from(out)
}

/// Bit `i` of a bitmap (false beyond its end).
pub fn bit(map: &[u8], i: usize) -> bool {
    map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}
