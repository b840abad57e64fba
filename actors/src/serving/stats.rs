//! Per-version statistics of a service: requests, errors, latency percentiles, cache hits, and
//! the online AUC/KS of the scores whose labels came back (`serve feedback`).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;

use consort_components::evaluation;
use consort_protocol::serving::{FeedbackReport, ServeStats, VersionStats};
use lru::LruCache;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::infer::Done;
use super::state::Service;

/// Latencies kept per version for the percentiles (the most recent ones).
const LATENCIES: usize = 20_000;

/// Scores kept per service for feedback to join (the most recent ones).
const KEPT_SCORES: usize = 200_000;

/// Labelled scores kept per version.
const LABELLED: usize = 1_000_000;

#[derive(Default)]
struct Counters {
    requests: u64,
    errors: u64,
    guest_only: u64,
    hits: u64,
    misses: u64,
    latencies: VecDeque<u32>,
    /// (label, score) pairs joined by feedback.
    labelled: Vec<(f64, f64)>,
}

/// Labels of a version's series: service and version.
pub type VersionLabels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The Prometheus series of serving, shared with whoever encodes them (cloning shares).
#[derive(Clone)]
pub struct ServingSeries {
    /// Requests answered or failed.
    pub requests: Family<VersionLabels, Counter>,
    /// Failed requests.
    pub errors: Family<VersionLabels, Counter>,
    /// Host partial scores from the cache, and asked for.
    pub cache_hits: Family<VersionLabels, Counter>,
    /// Host partial scores asked for.
    pub cache_misses: Family<VersionLabels, Counter>,
    /// Latency inside the daemon, seconds.
    pub latency: Family<VersionLabels, Histogram>,
}

impl Default for ServingSeries {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            errors: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Every service's statistics.
#[derive(Default)]
pub(crate) struct Stats {
    /// The same, for Prometheus.
    pub(crate) series: ServingSeries,
    /// (service, version) → counters.
    versions: HashMap<(String, String), Counters>,
    /// service → id or request id → (version, score).
    kept: HashMap<String, LruCache<String, (String, f64)>>,
}

impl Stats {
    pub(crate) fn record(&mut self, d: &Done) {
        let labels = vec![
            ("service".to_owned(), d.service.clone()),
            ("version".to_owned(), d.version.clone()),
        ];
        let s = &self.series;
        s.requests.get_or_create(&labels).inc();
        if !d.ok {
            s.errors.get_or_create(&labels).inc();
        }
        s.cache_hits.get_or_create(&labels).inc_by(d.hits);
        s.cache_misses.get_or_create(&labels).inc_by(d.misses);
        s.latency
            .get_or_create(&labels)
            .observe(d.micros as f64 / 1e6);
        let c = self
            .versions
            .entry((d.service.clone(), d.version.clone()))
            .or_default();
        c.requests += 1;
        c.errors += u64::from(!d.ok);
        c.guest_only += u64::from(d.guest_only);
        c.hits += d.hits;
        c.misses += d.misses;
        if c.latencies.len() == LATENCIES {
            c.latencies.pop_front();
        }
        c.latencies
            .push_back(u32::try_from(d.micros).unwrap_or(u32::MAX));
        if let Some((id, request_id, score)) = &d.kept {
            let kept = self.kept.entry(d.service.clone()).or_insert_with(|| {
                LruCache::new(NonZeroUsize::new(KEPT_SCORES).unwrap_or(NonZeroUsize::MIN))
            });
            kept.put(id.clone(), (d.version.clone(), *score));
            if let Some(r) = request_id {
                kept.put(r.clone(), (d.version.clone(), *score));
            }
        }
    }

    /// Joins labels to the scores kept for the same ids (or request ids).
    pub(crate) fn feedback(&mut self, service: &str, labels: &[(String, u8)]) -> FeedbackReport {
        let mut report = FeedbackReport {
            matched: 0,
            unmatched: 0,
        };
        let Some(kept) = self.kept.get_mut(service) else {
            report.unmatched = labels.len() as u64;
            return report;
        };
        for (key, label) in labels {
            match kept.get(key.as_str()).cloned() {
                Some((version, score)) => {
                    let c = self
                        .versions
                        .entry((service.to_owned(), version))
                        .or_default();
                    if c.labelled.len() < LABELLED {
                        c.labelled.push((f64::from(*label), score));
                    }
                    report.matched += 1;
                }
                None => report.unmatched += 1,
            }
        }
        report
    }

    pub(crate) fn report(&self, svc: &Service, quota_refused: u64) -> ServeStats {
        let mut names: Vec<String> = svc.versions.keys().cloned().collect();
        for (s, v) in self.versions.keys() {
            if *s == svc.name && !names.contains(v) {
                names.push(v.clone());
            }
        }
        let versions = names
            .into_iter()
            .map(|v| {
                let weight = svc
                    .split
                    .iter()
                    .find(|(s, _)| *s == v)
                    .map(|(_, w)| *w)
                    .unwrap_or(0);
                let Some(c) = self.versions.get(&(svc.name.clone(), v.clone())) else {
                    return VersionStats {
                        version: v,
                        weight,
                        ..VersionStats::default()
                    };
                };
                let mut lat: Vec<u32> = c.latencies.iter().copied().collect();
                lat.sort_unstable();
                let pct = |p: f64| -> u64 {
                    if lat.is_empty() {
                        return 0;
                    }
                    let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
                    u64::from(lat[i])
                };
                let (labels, scores): (Vec<f64>, Vec<f64>) = c.labelled.iter().copied().unzip();
                let both = labels.contains(&1.0) && labels.contains(&0.0);
                VersionStats {
                    version: v,
                    weight,
                    requests: c.requests,
                    errors: c.errors,
                    guest_only: c.guest_only,
                    p50_micros: pct(0.5),
                    p99_micros: pct(0.99),
                    cache_hits: c.hits,
                    cache_misses: c.misses,
                    labelled: labels.len() as u64,
                    auc: both.then(|| evaluation::auc(&labels, &scores)),
                    ks: both.then(|| evaluation::ks(&labels, &scores)),
                }
            })
            .collect();
        ServeStats {
            service: svc.name.clone(),
            versions,
            quota_refused,
        }
    }
}
