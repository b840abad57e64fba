//! Charts as SVG, drawn by `consort-plot` from the same answers the CLI plots: a job's DAG,
//! any metric series as a line chart, and an evaluation's ROC, KS and confusion matrix.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use consort_plot::{Format, LineChart, PlotError};
use consort_protocol::{MetricInfo, Request, Response as Answer};
use serde::Deserialize;

use super::api::ask;
use super::{Board, refuse};

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/jobs/{job}/dag.svg", get(dag))
        .route("/jobs/{job}/chart.svg", get(chart))
}

fn svg(drawn: Result<Vec<u8>, PlotError>) -> Response {
    match drawn {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(PlotError::Size(..)) => refuse(StatusCode::BAD_REQUEST, "w and h are 100 to 8000"),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Draws on a blocking thread: a chart costs milliseconds of CPU.
async fn drawn(f: impl FnOnce() -> Result<Vec<u8>, PlotError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => svg(r),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("drawing failed: {e}"),
        ),
    }
}

async fn dag(State(b): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    match ask(&b, Request::JobShow { job }).await {
        Ok(Answer::Job(info)) => drawn(move || consort_plot::dag(Format::Svg, &info)).await,
        Ok(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer"),
        Err(e) => e,
    }
}

/// `?task=T&metric=NS/NAME[&role=R][&kind=line|roc|ks|confusion][&w=W&h=H]`.
#[derive(Deserialize)]
struct ChartQuery {
    task: String,
    /// `NAMESPACE/NAME`; for `roc`, `ks` and `confusion`, the evaluation's namespace is enough.
    metric: String,
    role: Option<String>,
    #[serde(default)]
    kind: Kind,
    w: Option<u32>,
    h: Option<u32>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Line,
    Roc,
    Ks,
    Confusion,
}

async fn chart(
    State(b): State<Arc<Board>>,
    Path(job): Path<String>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let metrics = match ask(&b, Request::MetricList { job: job.clone() }).await {
        Ok(Answer::Metrics { metrics }) => metrics,
        Ok(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer"),
        Err(e) => return e,
    };
    let size = (q.w.unwrap_or(560), q.h.unwrap_or(360));
    let namespace = q.metric.split('/').next().unwrap_or_default().to_owned();
    let of = |name: &str| -> Option<MetricInfo> {
        metrics
            .iter()
            .find(|m| {
                m.task == q.task
                    && m.namespace == namespace
                    && m.name == name
                    && q.role.as_ref().is_none_or(|r| &m.role == r)
            })
            .cloned()
    };
    let missing = |what: &str| {
        refuse(
            StatusCode::NOT_FOUND,
            format!("task {} of job {job} logged no {what} here", q.task),
        )
    };
    let title = format!("{} · {}", q.task, q.metric);
    match q.kind {
        Kind::Line => {
            let lines: Vec<(String, Vec<(f64, f64)>)> = metrics
                .iter()
                .filter(|m| {
                    m.task == q.task
                        && format!("{}/{}", m.namespace, m.name) == q.metric
                        && q.role.as_ref().is_none_or(|r| &m.role == r)
                })
                .map(|m| (m.role.clone(), m.points.clone()))
                .collect();
            if lines.is_empty() {
                return missing(&format!("metric {}", q.metric));
            }
            let y = q.metric.rsplit('/').next().unwrap_or_default().to_owned();
            drawn(move || {
                let c = LineChart {
                    title: &title,
                    y_name: &y,
                    lines: &lines,
                };
                consort_plot::line_chart(Format::Svg, size, &c)
            })
            .await
        }
        Kind::Roc => {
            let Some(roc) = of("roc") else {
                return missing("ROC curve");
            };
            let auc = of("auc")
                .and_then(|m| m.points.first().map(|p| p.1))
                .map_or(String::new(), |a| format!(" · AUC {a:.4}"));
            let title = format!("{} · ROC{auc}", q.task);
            drawn(move || consort_plot::roc(Format::Svg, size, &title, &roc.points)).await
        }
        Kind::Ks => {
            let (Some(roc), Some([tp, fp, tn, fn_])) = (of("roc"), of("confusion").and_then(cells))
            else {
                return missing("ROC curve and confusion matrix");
            };
            let title = q.task.clone();
            drawn(move || {
                consort_plot::ks(Format::Svg, size, &title, &roc.points, tp + fn_, tn + fp)
                    .map(|(bytes, _)| bytes)
            })
            .await
        }
        Kind::Confusion => {
            let Some(c) = of("confusion").and_then(cells) else {
                return missing("confusion matrix");
            };
            let title = format!("{} · confusion", q.task);
            drawn(move || consort_plot::confusion(Format::Svg, size, &title, c)).await
        }
    }
}

/// `[tp, fp, tn, fn]` from a confusion matrix's metadata.
fn cells(m: MetricInfo) -> Option<[u64; 4]> {
    let v = m.meta?.value()?;
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    Some([n("tp")?, n("fp")?, n("tn")?, n("fn")?])
}
