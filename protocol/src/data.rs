//! Datasets: what `reader`, `psi`, the learners and `evaluation` pass to each other, and what a
//! party's tables hold. Columnar in memory (one `Vec<f64>` per feature), MessagePack on disk.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Schema version of [`Dataset`]'s encoding.
pub const DATASET_VERSION: u16 = 1;

/// A table of samples: ids, numeric feature columns and, at the party that has it, a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Encoding version.
    pub v: u16,
    /// Sample ids, one per row, unique.
    pub ids: Vec<String>,
    /// Feature names, one per column of `columns`.
    pub feature_names: Vec<String>,
    /// Feature values, column by column; every column has `ids.len()` values.
    pub columns: Vec<Vec<f64>>,
    /// Name of the label column, if this party has labels.
    pub label_name: Option<String>,
    /// Labels, one per row, if this party has them.
    pub labels: Option<Vec<f64>>,
}

/// Why bytes are not a dataset, or why a dataset is inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    /// Not MessagePack of a dataset.
    #[error("not a dataset: {0}")]
    Decode(String),
    /// Encoding failed.
    #[error("cannot encode dataset: {0}")]
    Encode(String),
    /// Shapes or ids do not agree.
    #[error("inconsistent dataset: {0}")]
    Shape(String),
}

impl Dataset {
    /// A dataset from its parts, checked.
    pub fn new(
        ids: Vec<String>,
        feature_names: Vec<String>,
        columns: Vec<Vec<f64>>,
        label: Option<(String, Vec<f64>)>,
    ) -> Result<Self, DatasetError> {
        let (label_name, labels) = match label {
            Some((n, l)) => (Some(n), Some(l)),
            None => (None, None),
        };
        let d = Self {
            v: DATASET_VERSION,
            ids,
            feature_names,
            columns,
            label_name,
            labels,
        };
        d.check()?;
        Ok(d)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        self.columns.len()
    }

    /// Feature values of row `i` (allocates; learners should work column-wise where they can).
    pub fn row(&self, i: usize) -> Vec<f64> {
        self.columns.iter().map(|c| c[i]).collect()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.feature_names
            .iter()
            .position(|n| n == name)
            .map(|i| self.columns[i].as_slice())
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            v: DATASET_VERSION,
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            feature_names: self.feature_names.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| indices.iter().map(|&i| c[i]).collect())
                .collect(),
            label_name: self.label_name.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
        }
    }

    /// Checks that every column and the labels have one value per id, names are unique and no
    /// id repeats.
    pub fn check(&self) -> Result<(), DatasetError> {
        let n = self.ids.len();
        if self.feature_names.len() != self.columns.len() {
            return Err(DatasetError::Shape(format!(
                "{} feature names for {} columns",
                self.feature_names.len(),
                self.columns.len()
            )));
        }
        for (name, c) in self.feature_names.iter().zip(&self.columns) {
            if c.len() != n {
                return Err(DatasetError::Shape(format!(
                    "column '{name}' has {} values for {n} ids",
                    c.len()
                )));
            }
        }
        if let Some(l) = &self.labels
            && l.len() != n
        {
            return Err(DatasetError::Shape(format!(
                "{} labels for {n} ids",
                l.len()
            )));
        }
        if self.labels.is_some() != self.label_name.is_some() {
            return Err(DatasetError::Shape("label name without labels".into()));
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.feature_names {
            if !names.insert(f.as_str()) {
                return Err(DatasetError::Shape(format!("feature '{f}' appears twice")));
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        for id in &self.ids {
            if !seen.insert(id.as_str()) {
                return Err(DatasetError::Shape(format!("id '{id}' appears twice")));
            }
        }
        Ok(())
    }

    /// CSV text: `id`, the label (if any), then the feature columns.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("id");
        if let Some(l) = &self.label_name {
            out.push(',');
            out.push_str(l);
        }
        for f in &self.feature_names {
            out.push(',');
            out.push_str(f);
        }
        out.push('\n');
        for i in 0..self.rows() {
            out.push_str(&self.ids[i]);
            if let Some(l) = &self.labels {
                out.push_str(&format!(",{}", l[i]));
            }
            for c in &self.columns {
                out.push_str(&format!(",{}", c[i]));
            }
            out.push('\n');
        }
        out
    }

    /// MessagePack bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DatasetError> {
        rmp_serde::to_vec_named(self).map_err(|e| DatasetError::Encode(e.to_string()))
    }

    /// Decodes and checks bytes written by [`Dataset::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DatasetError> {
        let d: Self =
            rmp_serde::from_slice(bytes).map_err(|e| DatasetError::Decode(e.to_string()))?;
        d.check()?;
        Ok(d)
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

    fn sample() -> Dataset {
        Dataset::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec!["x0".into(), "x1".into()],
            vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]],
            Some(("y".into(), vec![0.0, 1.0, 1.0])),
        )
        .expect("valid")
    }

    #[test]
    fn round_trip_and_select() {
        let d = sample();
        let back = Dataset::from_bytes(&d.to_bytes().expect("encode")).expect("decode");
        assert_eq!(back, d);
        let s = d.select(&[2, 0]);
        assert_eq!(s.ids, vec!["c", "a"]);
        assert_eq!(s.row(0), vec![3.0, 6.0]);
        assert_eq!(s.labels, Some(vec![1.0, 0.0]));
        assert_eq!(d.column("x1"), Some(&[4.0, 5.0, 6.0][..]));
    }

    #[test]
    fn csv_text_round_trips() {
        let d = sample();
        let back = parse_csv(d.to_csv().as_bytes(), &CsvOptions::default()).expect("parses");
        assert_eq!(back, d);
    }

    #[test]
    fn inconsistent_shapes_are_refused() {
        let short = Dataset::new(
            vec!["a".into(), "b".into()],
            vec!["x".into()],
            vec![vec![1.0]],
            None,
        );
        assert!(matches!(short, Err(DatasetError::Shape(_))));
        let dup = Dataset::new(vec!["a".into(), "a".into()], vec![], vec![], None);
        assert!(matches!(dup, Err(DatasetError::Shape(_))));
        assert!(matches!(
            Dataset::from_bytes(b"\x93garbage"),
            Err(DatasetError::Decode(_))
        ));
    }

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
}
