//! The task threads' way to append to the Tracker's trees.
//!
//! Task threads log a line or a metric point at a rate the actor's mailbox should not carry
//! (a training loop, a chatty script), and they are already blocking threads: they append
//! directly, through this handle, which can only append — reading and answering stay with the
//! Tracker.

use consort_storage::{LogLine, MetricKey, StorageError, Tracking};

/// Appends task log lines and metrics (the one exception to the Tracker's ownership).
#[derive(Debug, Clone)]
pub struct LogWriter(Tracking);

impl LogWriter {
    /// A writer over `tracking`.
    pub fn new(tracking: Tracking) -> Self {
        Self(tracking)
    }

    /// Appends one line of `job`'s log.
    pub fn log(&self, job: &str, line: &LogLine) -> Result<(), StorageError> {
        self.0.log(job, line)
    }

    /// Appends points to a metric series.
    pub fn log_metric(&self, key: &MetricKey, points: &[(f64, f64)]) -> Result<(), StorageError> {
        self.0.log_metric(key, points)
    }

    /// Sets a metric series' metadata.
    pub fn set_metric_meta(
        &self,
        key: &MetricKey,
        meta: serde_json::Value,
    ) -> Result<(), StorageError> {
        self.0.set_metric_meta(key, meta)
    }
}
