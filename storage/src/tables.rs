//! A party's tables: uploaded CSV files kept as columnar files under `DATA_DIR/tables/`, with
//! their schema in sled. Tables never leave their party; only what a component sends does.

use std::path::{Path, PathBuf};

use consort_protocol::TableInfo;
use consort_protocol::data::Dataset;

use crate::error::StorageError;
use crate::files::write_atomically;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

/// What is known of a stored table without reading it: the protocol's [`TableInfo`], kept
/// as is.
pub type TableMeta = TableInfo;

impl Record for TableInfo {
    const KIND: &'static str = "table";
    const VERSION: u16 = 1;
}

/// The table store.
#[derive(Debug, Clone)]
pub struct Tables {
    meta: Tree<TableMeta>,
    dir: PathBuf,
}

/// Whether `name` may name a table: the one name rule ([`consort_protocol::names::check`]):
/// 1-64 of `A-Z a-z 0-9 _ - .`, not starting with '.'.
pub fn valid_table_name(name: &str) -> bool {
    consort_protocol::names::check("table name", name).is_ok()
}

impl Tables {
    /// Opens the store; table files live under `dir`.
    pub fn open(store: &Store, dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            meta: store.tree(TreeName::Tables)?,
            dir: dir.to_owned(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.table"))
    }

    /// Stores `data` as table `name` (replacing one of that name): the file first (fsynced),
    /// then its metadata.
    pub fn put(&self, name: &str, data: &Dataset, source: &str) -> Result<TableMeta, StorageError> {
        let bytes = data.to_bytes().map_err(|e| StorageError::Encode {
            kind: "table",
            reason: e.to_string(),
        })?;
        let path = self.file(name);
        write_atomically(&path, &bytes).map_err(|source| StorageError::Io {
            op: "write",
            path: path.clone(),
            source,
        })?;
        let meta = TableMeta {
            name: name.to_owned(),
            rows: data.rows() as u64,
            features: data.feature_names.clone(),
            label: data.label_name.clone(),
            source: source.to_owned(),
            created_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            bytes: bytes.len() as u64,
        };
        self.meta.put(name, &meta)?;
        self.meta.flush()?;
        Ok(meta)
    }

    /// The metadata of table `name`.
    pub fn meta(&self, name: &str) -> Result<Option<TableMeta>, StorageError> {
        self.meta.get(name)
    }

    /// Every table, by name.
    pub fn list(&self) -> Result<Vec<TableMeta>, StorageError> {
        self.meta
            .scan_prefix("")
            .map(|r| r.map(|(_, m)| m))
            .collect()
    }

    /// Reads table `name`.
    pub fn get(&self, name: &str) -> Result<Option<Dataset>, StorageError> {
        if self.meta.get(name)?.is_none() {
            return Ok(None);
        }
        let path = self.file(name);
        let bytes = std::fs::read(&path).map_err(|source| StorageError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        Dataset::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                kind: "table",
                tree: "tables".into(),
                reason: format!("{}: {e}", path.display()),
            })
    }

    /// Deletes table `name`; whether it existed.
    pub fn delete(&self, name: &str) -> Result<bool, StorageError> {
        let existed = self.meta.remove(name)?.is_some();
        self.meta.flush()?;
        let _ = std::fs::remove_file(self.file(name));
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_and_delete() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::temporary().expect("store");
        let t = Tables::open(&store, dir.path()).expect("tables");
        let d = consort_protocol::data::parse_csv(
            "id,y,x0\na,1,0.5\n".as_bytes(),
            &consort_protocol::data::CsvOptions::default(),
        )
        .expect("valid");
        let meta = t.put("breast_guest", &d, "/tmp/x.csv").expect("put");
        assert_eq!(meta.rows, 1);
        assert_eq!(t.get("breast_guest").expect("get"), Some(d));
        assert_eq!(t.list().expect("list").len(), 1);
        assert!(t.delete("breast_guest").expect("delete"));
        assert_eq!(t.get("breast_guest").expect("get"), None);
        assert!(!t.delete("breast_guest").expect("delete"));
        assert!(valid_table_name("breast_hetero.v2"));
        assert!(!valid_table_name("../x") && !valid_table_name(".hidden") && !valid_table_name(""));
    }
}
