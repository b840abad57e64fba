//! A party's tables: uploaded CSV files kept as columnar files under `DATA_DIR/tables/`, with
//! their schema in sled. Tables never leave their party; only what a component sends does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use consort_protocol::data::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::files::write_atomically;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

/// What is known of a stored table without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Name.
    pub name: String,
    /// Number of rows.
    pub rows: u64,
    /// Feature columns, in order.
    pub features: Vec<String>,
    /// The label column, if the table has one.
    pub label: Option<String>,
    /// Where it came from (the uploaded file).
    pub source: String,
    /// When it was stored (ms since the epoch).
    pub created_at_ms: u64,
    /// Size of its file.
    pub bytes: u64,
}

impl Record for TableMeta {
    const KIND: &'static str = "table";
    const VERSION: u16 = 1;
}

/// The table store.
#[derive(Debug, Clone)]
pub struct Tables {
    meta: Tree<TableMeta>,
    dir: PathBuf,
}

/// Whether `name` may name a table: 1-64 of `A-Z a-z 0-9 _ - .`, not starting with '.'.
pub fn valid_table_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
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

/// How to read a CSV file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The id column.
    pub id_column: String,
    /// The label column (absent from the file: the table has no label).
    pub label_column: Option<String>,
    /// Field delimiter.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            id_column: "id".into(),
            label_column: Some("y".into()),
            delimiter: b',',
        }
    }
}

/// Why a CSV file is not a table; `line` is 1-based, counting the header as line 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", match line { Some(l) => format!("line {l}: "), None => String::new() })]
pub struct CsvError {
    /// Line of the problem.
    pub line: Option<u64>,
    /// What is wrong, naming the column.
    pub message: String,
}

fn csv_err(line: Option<u64>, message: impl Into<String>) -> CsvError {
    CsvError {
        line,
        message: message.into(),
    }
}

/// Parses a CSV file with a header into a [`Dataset`]: the id column, an optional label
/// column, every other column a numeric feature. Fails on the first problem, naming its line
/// and column.
pub fn parse_csv(input: impl std::io::Read, opts: &CsvOptions) -> Result<Dataset, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| csv_err(Some(1), format!("cannot read the header: {e}")))?
        .clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(csv_err(Some(1), "the file is empty"));
    }
    let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    let id_at = names
        .iter()
        .position(|n| *n == opts.id_column)
        .ok_or_else(|| {
            csv_err(
                Some(1),
                format!(
                    "no id column '{}' in the header (columns: {})",
                    opts.id_column,
                    names.join(", ")
                ),
            )
        })?;
    let label_at = opts
        .label_column
        .as_ref()
        .and_then(|l| names.iter().position(|n| n == l));
    let mut seen_names = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(csv_err(Some(1), format!("column {} has no name", i + 1)));
        }
        if let Some(prev) = seen_names.insert(n.as_str(), i) {
            return Err(csv_err(
                Some(1),
                format!(
                    "column '{n}' appears twice (columns {} and {})",
                    prev + 1,
                    i + 1
                ),
            ));
        }
    }
    let features: Vec<usize> = (0..names.len())
        .filter(|i| *i != id_at && Some(*i) != label_at)
        .collect();
    let mut ids = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); features.len()];
    let mut labels = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map(|p| p.line());
            csv_err(line, format!("malformed CSV: {e}"))
        })?;
        if !more {
            break;
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() == 1 && record[0].trim().is_empty() {
            continue; // blank line
        }
        if record.len() != names.len() {
            return Err(csv_err(
                Some(line),
                format!(
                    "{} fields, but the header has {}",
                    record.len(),
                    names.len()
                ),
            ));
        }
        let id = record[id_at].trim().to_owned();
        if id.is_empty() {
            return Err(csv_err(
                Some(line),
                format!("empty id in column '{}'", names[id_at]),
            ));
        }
        if let Some(prev) = first_line.insert(id.clone(), line) {
            return Err(csv_err(
                Some(line),
                format!("id '{id}' already appears on line {prev}"),
            ));
        }
        let number = |i: usize| -> Result<f64, CsvError> {
            let raw = record[i].trim();
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(csv_err(
                    Some(line),
                    format!("column '{}': '{raw}' is not a finite number", names[i]),
                )),
            }
        };
        for (c, &i) in features.iter().enumerate() {
            columns[c].push(number(i)?);
        }
        if let Some(l) = label_at {
            labels.push(number(l)?);
        }
        ids.push(id);
    }
    let label = label_at.map(|l| (names[l].clone(), labels));
    Dataset::new(
        ids,
        features.iter().map(|&i| names[i].clone()).collect(),
        columns,
        label,
    )
    .map_err(|e| csv_err(None, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dataset, CsvError> {
        parse_csv(text.as_bytes(), &CsvOptions::default())
    }

    #[test]
    fn a_guest_file_has_labels_and_a_host_file_has_none() {
        let d = parse("id,y,x0,x1\na,1,0.5,2\nb,0,-1e-3,3\n").expect("valid");
        assert_eq!(d.ids, vec!["a", "b"]);
        assert_eq!(d.feature_names, vec!["x0", "x1"]);
        assert_eq!(d.labels, Some(vec![1.0, 0.0]));
        assert_eq!(d.column("x0"), Some(&[0.5, -1e-3][..]));
        let h = parse("id,x0\na,1\n").expect("valid");
        assert_eq!(h.labels, None);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = parse("id,y,x0\na,1,0.5\nb,0,abc\n").expect_err("bad number");
        assert_eq!(e.line, Some(3));
        assert!(
            e.message.contains("'x0'") && e.message.contains("'abc'"),
            "{e}"
        );
        let e = parse("key,x0\na,1\n").expect_err("no id");
        assert!(e.to_string().contains("no id column 'id'"), "{e}");
        let e = parse("id,x0\na,1\nb,2\na,3\n").expect_err("duplicate");
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("already appears on line 2"), "{e}");
        let e = parse("id,x0,x1\na,1,2\nb,2\n").expect_err("ragged");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("2 fields, but the header has 3"), "{e}");
        let e = parse("id,x0\na,NaN\n").expect_err("nan");
        assert!(e.message.contains("not a finite number"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn tables_round_trip_and_delete() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::temporary().expect("store");
        let t = Tables::open(&store, dir.path()).expect("tables");
        let d = parse("id,y,x0\na,1,0.5\n").expect("valid");
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
