//! Task logs and metrics (FATE-Flow's `log_metric_data` / `get_metric_data`).

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

/// One log line of a task run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix ms.
    pub at_ms: u64,
    /// Task name.
    pub task: String,
    /// Role of the run.
    pub role: String,
    /// Attempt.
    pub attempt: u32,
    /// The line.
    pub line: String,
}

impl Record for LogLine {
    const KIND: &'static str = "log line";
    const VERSION: u16 = 1;
}

/// A metric series: points and optional metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// `(x, y)` points in the order logged.
    pub points: Vec<(f64, f64)>,
    /// Free-form metadata (`set_metric_meta`).
    pub meta: Option<serde_json::Value>,
}

impl Record for MetricSeries {
    const KIND: &'static str = "metric";
    const VERSION: u16 = 1;
}

/// Identifies a metric series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricKey {
    /// Job id.
    pub job: String,
    /// Task name.
    pub task: String,
    /// Role of the run that logged it.
    pub role: String,
    /// Namespace (e.g. `train`).
    pub namespace: String,
    /// Name (e.g. `loss`).
    pub name: String,
}

impl MetricKey {
    fn db_key(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}",
            self.job, self.task, self.role, self.namespace, self.name
        )
    }

    fn from_db_key(k: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(k).ok()?;
        let mut p = s.split('\0');
        Some(Self {
            job: p.next()?.to_owned(),
            task: p.next()?.to_owned(),
            role: p.next()?.to_owned(),
            namespace: p.next()?.to_owned(),
            name: p.next()?.to_owned(),
        })
    }
}

/// Logs and metrics of task runs.
#[derive(Debug, Clone)]
pub struct Tracking {
    logs: Tree<LogLine>,
    metrics: Tree<MetricSeries>,
    seq: sled::Db,
}

impl Tracking {
    /// Opens the trees.
    pub fn open(store: &Store) -> Result<Self, StorageError> {
        Ok(Self {
            logs: store.tree(TreeName::Logs)?,
            metrics: store.tree(TreeName::Metrics)?,
            seq: store.db().clone(),
        })
    }

    /// Appends a log line to job `job`.
    pub fn log(&self, job: &str, line: &LogLine) -> Result<(), StorageError> {
        let id = self.seq.generate_id().map_err(|source| StorageError::Db {
            op: "generate_id",
            tree: "logs".into(),
            source,
        })?;
        let mut key = format!("{job}\0").into_bytes();
        key.extend_from_slice(&id.to_be_bytes());
        self.logs.put(key, line)
    }

    /// Every log line of `job`, in order.
    pub fn lines(&self, job: &str) -> Result<Vec<LogLine>, StorageError> {
        self.logs
            .scan_prefix(format!("{job}\0"))
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    /// Appends points to a metric series.
    pub fn log_metric(&self, key: &MetricKey, points: &[(f64, f64)]) -> Result<(), StorageError> {
        let k = key.db_key();
        let mut series = self.metrics.get(&k)?.unwrap_or_default();
        series.points.extend_from_slice(points);
        self.metrics.put(&k, &series)
    }

    /// Sets a series' metadata.
    pub fn set_metric_meta(
        &self,
        key: &MetricKey,
        meta: serde_json::Value,
    ) -> Result<(), StorageError> {
        let k = key.db_key();
        let mut series = self.metrics.get(&k)?.unwrap_or_default();
        series.meta = Some(meta);
        self.metrics.put(&k, &series)
    }

    /// Every series of `job`.
    pub fn metrics(&self, job: &str) -> Result<Vec<(MetricKey, MetricSeries)>, StorageError> {
        self.metrics
            .scan_prefix(format!("{job}\0"))
            .filter_map(|r| match r {
                Ok((k, v)) => MetricKey::from_db_key(&k).map(|k| Ok((k, v))),
                Err(e) => Some(Err(e)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_append_and_list_by_job() {
        let store = Store::temporary().expect("open");
        let t = Tracking::open(&store).expect("open");
        let key = MetricKey {
            job: "j1".into(),
            task: "lr".into(),
            role: "guest".into(),
            namespace: "train".into(),
            name: "loss".into(),
        };
        t.log_metric(&key, &[(0.0, 0.7)]).expect("log");
        t.log_metric(&key, &[(1.0, 0.5)]).expect("log");
        t.set_metric_meta(&key, serde_json::json!({"unit": "nats"}))
            .expect("meta");
        let other = MetricKey {
            job: "j2".into(),
            ..key.clone()
        };
        t.log_metric(&other, &[(0.0, 1.0)]).expect("log");
        let got = t.metrics("j1").expect("list");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, key);
        assert_eq!(got[0].1.points, vec![(0.0, 0.7), (1.0, 0.5)]);
        assert_eq!(got[0].1.meta, Some(serde_json::json!({"unit": "nats"})));
    }

    #[test]
    fn log_lines_keep_their_order() {
        let store = Store::temporary().expect("open");
        let t = Tracking::open(&store).expect("open");
        for i in 0..5 {
            let line = LogLine {
                at_ms: i,
                task: "t".into(),
                role: "guest".into(),
                attempt: 1,
                line: format!("l{i}"),
            };
            t.log("j", &line).expect("log");
        }
        let lines: Vec<String> = t
            .lines("j")
            .expect("lines")
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(lines, ["l0", "l1", "l2", "l3", "l4"]);
    }
}
