//! Partners added or removed at run time with `consort partner add/remove`.
//!
//! The configuration file stays as the operator wrote it; these overrides are layered on top
//! of its `[[partners]]` and survive restarts.

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

/// One override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PartnerEntry {
    /// The partner is added (or replaced) with these details.
    Added {
        /// PeerId (base58).
        peer_id: String,
        /// Multiaddrs.
        addrs: Vec<String>,
    },
    /// The partner is removed, even if the config lists it.
    Removed,
}

impl Record for PartnerEntry {
    const KIND: &'static str = "partner override";
    const VERSION: u16 = 1;
}

/// The overrides, by party name.
#[derive(Debug, Clone)]
pub struct PartnerOverrides {
    tree: Tree<PartnerEntry>,
    store: Store,
}

impl PartnerOverrides {
    /// Opens the partners tree of `store`.
    pub fn open(store: &Store) -> Result<Self, StorageError> {
        Ok(Self {
            tree: store.tree(TreeName::Partners)?,
            store: store.clone(),
        })
    }

    /// Records `entry` for `party` and flushes (the operator was told it is done).
    pub fn set(&self, party: &str, entry: &PartnerEntry) -> Result<(), StorageError> {
        self.tree.put(party, entry)?;
        self.store.flush()?;
        Ok(())
    }

    /// Every override, by party.
    pub fn all(&self) -> Result<Vec<(String, PartnerEntry)>, StorageError> {
        self.tree
            .scan_prefix([])
            .map(|r| r.map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_persist_and_replace() {
        let store = Store::temporary().expect("open");
        let o = PartnerOverrides::open(&store).expect("open");
        o.set(
            "b",
            &PartnerEntry::Added {
                peer_id: "x".into(),
                addrs: vec![],
            },
        )
        .expect("set");
        o.set("c", &PartnerEntry::Removed).expect("set");
        o.set("b", &PartnerEntry::Removed).expect("set");
        assert_eq!(
            o.all().expect("all"),
            vec![
                ("b".into(), PartnerEntry::Removed),
                ("c".into(), PartnerEntry::Removed)
            ]
        );
    }
}
