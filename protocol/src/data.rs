//! Datasets: what `reader`, `psi`, the learners and `evaluation` pass to each other, and what a
//! party's tables hold. Columnar in memory (one `Vec<f64>` per feature), MessagePack on disk.

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
}
