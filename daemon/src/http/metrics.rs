//! `GET /metrics` for Prometheus (text exposition, from prometheus-client), on the board's
//! listener (`[board] listen`, loopback). Each scrape asks the actors that own the numbers —
//! the Scheduler (jobs by state, task durations by component), the NetworkActor (per partner:
//! connected, round trip, rejected messages, records replicated, refused and sent, data-channel
//! bytes each way) and Serving (requests, errors, cache, latency histograms per service and
//! version) — and encodes their answers.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use consort_actors::Actors;
use consort_actors::network_actor::partners::ListPeers;
use consort_actors::scheduler::{List, TaskDurations};
use consort_actors::serving::SeriesOf;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// `GET /metrics`.
pub(crate) fn router(actors: Actors) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(actors)
}

async fn metrics(State(actors): State<Actors>) -> Response {
    match scrape(&actors).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    }
}

async fn scrape(actors: &Actors) -> Result<String, String> {
    let gone = |what: &str| format!("the {what} does not answer");
    let mut registry = Registry::with_prefix("consort");

    let jobs = actors
        .scheduler
        .send(List)
        .await
        .map_err(|_| gone("scheduler"))?;
    let by_state: Family<Labels, Gauge> = Family::default();
    for state in [
        "pending", "running", "success", "failed", "canceled", "rejected",
    ] {
        by_state
            .get_or_create(&vec![("state".to_owned(), state.to_owned())])
            .set(0);
    }
    for j in &jobs {
        by_state
            .get_or_create(&vec![("state".to_owned(), j.status.clone())])
            .inc();
    }
    registry.register("jobs", "Jobs known here, by state", by_state);
    let durations = actors
        .scheduler
        .send(TaskDurations)
        .await
        .map_err(|_| gone("scheduler"))?;
    fn task_histogram() -> Histogram {
        // 10 ms to ~3 min.
        Histogram::new(exponential_buckets(0.01, 2.0, 15))
    }
    let tasks: Family<Labels, Histogram> = Family::new_with_constructor(task_histogram);
    for (component, seconds) in durations {
        tasks
            .get_or_create(&vec![("component".to_owned(), component)])
            .observe(seconds);
    }
    registry.register(
        "task_duration_seconds",
        "How long this party's finished runs took, by component",
        tasks,
    );

    let peers = actors
        .network
        .send(ListPeers)
        .await
        .map_err(|_| gone("network"))?
        .map_err(|e| e.to_string())?;
    let connected: Family<Labels, Gauge> = Family::default();
    let rtt: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    let rejected: Family<Labels, Counter> = Family::default();
    let replicated: Family<Labels, Counter> = Family::default();
    let refused: Family<Labels, Counter> = Family::default();
    let sent: Family<Labels, Counter> = Family::default();
    let channel: Family<Labels, Counter> = Family::default();
    for p in &peers {
        let party = || ("partner".to_owned(), p.party.to_string());
        let l = vec![party()];
        connected.get_or_create(&l).set(i64::from(p.connected));
        if let Some(d) = p.rtt {
            rtt.get_or_create(&l).set(d.as_secs_f64());
        }
        rejected.get_or_create(&l).inc_by(p.rejected);
        let t = &p.traffic;
        replicated.get_or_create(&l).inc_by(t.records_stored);
        refused.get_or_create(&l).inc_by(t.records_refused);
        sent.get_or_create(&l).inc_by(t.records_sent);
        for (direction, bytes) in [
            ("sent", t.channel_bytes_sent),
            ("received", t.channel_bytes_received),
        ] {
            let l = vec![party(), ("direction".to_owned(), direction.to_owned())];
            channel.get_or_create(&l).inc_by(bytes);
        }
    }
    registry.register(
        "partner_connected",
        "Whether a partner is connected (1) or not (0)",
        connected,
    );
    registry.register(
        "partner_rtt_seconds",
        "Last measured round trip to a partner",
        rtt,
    );
    registry.register(
        "partner_rejected_messages",
        "Messages from a partner refused (malformed, misattributed, over a bound), refused records included",
        rejected,
    );
    registry.register(
        "records_replicated",
        "Replicated records received from a partner (gossip, push or catch-up; its own or relayed) and stored here as new or newer versions",
        replicated,
    );
    registry.register(
        "records_refused",
        "Replicated records received from a partner and refused (bounds, audience, unknown origin, bad signature, quota); each also counts in consort_partner_rejected_messages_total",
        refused,
    );
    registry.register(
        "records_sent",
        "Replicated records sent to a partner: pushed (ours, or relayed as a job's hub), gossiped, or in answer to its catch-up",
        sent,
    );
    registry.register(
        "data_channel_bytes",
        "Bytes of data-channel messages (what a job's runs exchange, encoded) with a partner, by direction: sent counts the messages it answered, received all that arrived",
        channel,
    );

    let s = actors
        .serving
        .send(SeriesOf)
        .await
        .map_err(|_| gone("serving actor"))?;
    registry.register(
        "serving_requests",
        "Inference requests answered or failed",
        s.requests,
    );
    registry.register("serving_errors", "Inference requests failed", s.errors);
    registry.register(
        "serving_cache_hits",
        "Host partial scores taken from the cache",
        s.cache_hits,
    );
    registry.register(
        "serving_cache_misses",
        "Host partial scores asked of the hosts",
        s.cache_misses,
    );
    registry.register(
        "serving_latency_seconds",
        "Inference latency inside the guest daemon",
        s.latency,
    );

    let mut text = String::new();
    encode_registry(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(classic_text(&text))
}

/// prometheus-client writes OpenMetrics, whose counter families are named without `_total`
/// in `# HELP`/`# TYPE` while their samples carry it; the classic text format (what
/// `text/plain; version=0.0.4` promises, and what `promtool check metrics` reads) names the
/// family as its samples. Renames those two lines of every counter family.
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let name = rest.split(' ').next()?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_families_are_named_as_their_samples() {
        let open = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\n\
                    # HELP x_jobs Jobs.\n# TYPE x_jobs gauge\nx_jobs 2\n";
        assert_eq!(
            classic_text(open),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total 3\n\
             # HELP x_jobs Jobs.\n# TYPE x_jobs gauge\nx_jobs 2\n"
        );
    }
}
