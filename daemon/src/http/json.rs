//! The HTTP/JSON inference API.
//!
//! - `POST /v1/services/NAME/infer`: `{"id": "...", "request_id": "...", "features": {...}}`
//!   → the score, label, version and per-party timings;
//! - `POST /v1/services/NAME/batch`: `{"requests": [...]}` → `{"items": [...]}`, each an answer
//!   or `{"error": ...}`, in request order;
//! - `POST /v1/services/NAME/feedback`: `{"labels": [{"id": "...", "label": 1}, ...]}`.
//!
//! Errors are JSON `{"error": "...", "code": "...", "party": "..."}` with 400 (a missing or
//! mistyped feature, named), 401 (no or wrong token), 404 (no such service), 413 (body too
//! large), 503 (a host down or late, named) or 500.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use consort_actors::serving::{Infer, ServeControl};
use consort_protocol::serving::{InferError, InferInput, ServeRequest, ServeResponse};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ApiState, http_status};

/// Most requests in one batch.
const MAX_BATCH: usize = 4096;

/// Serves the API on `listener` until `stop`.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    state: ApiState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let limit = state.max_body_bytes;
    let tls = state.tls.clone();
    let app = Router::new()
        .route("/v1/services/{name}/infer", post(infer))
        .route("/v1/services/{name}/batch", post(batch))
        .route("/v1/services/{name}/feedback", post(feedback))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    if let Some(tls) = &tls {
        return super::tls::serve(listener, app, tls.config.clone(), stop).await;
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

fn error(status: u16, message: impl Into<String>, party: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({"error": message.into(), "code": code.as_u16()});
    if let Some(p) = party {
        body["party"] = json!(p);
    }
    (code, axum::Json(body)).into_response()
}

fn infer_error(e: &InferError) -> Response {
    let party = match e {
        InferError::Unavailable { party, .. } => Some(party.as_str()),
        _ => None,
    };
    error(http_status(e), e.to_string(), party)
}

/// Checks the token and parses the body as JSON; the error response otherwise.
fn admit(state: &ApiState, headers: &HeaderMap, body: &Bytes) -> Result<Value, (u16, String)> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.authorized(auth) {
        return Err((401, "a valid bearer token is required".into()));
    }
    serde_json::from_slice(body).map_err(|e| (400, format!("the body is not JSON: {e}")))
}

/// One request from its JSON: the id, the request id and the features, each checked by name.
pub(crate) fn input(v: &Value) -> Result<InferInput, String> {
    let obj = v.as_object().ok_or("a request is a JSON object")?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "id" | "request_id" | "features") {
            return Err(format!(
                "unknown field '{key}' (expected id, request_id, features)"
            ));
        }
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("'id' must be a string".into()),
        None => return Err("'id' is missing".into()),
    };
    let request_id = match obj.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("'request_id' must be a string".into()),
    };
    let mut features = BTreeMap::new();
    match obj.get("features") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, x) in m {
                match x {
                    Value::Number(n) => {
                        let f = n
                            .as_f64()
                            .ok_or_else(|| format!("feature '{name}' is not a finite number"))?;
                        features.insert(name.clone(), f);
                    }
                    // null: missing (the deployment's default, if any, applies).
                    Value::Null => {}
                    other => {
                        return Err(format!(
                            "feature '{name}' must be a number, not {}",
                            kind(other)
                        ));
                    }
                }
            }
        }
        Some(_) => return Err("'features' must be an object of name → number".into()),
    }
    Ok(InferInput {
        id,
        request_id,
        features,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

async fn infer(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match admit(&state, &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message, None),
    };
    let input = match input(&v) {
        Ok(i) => i,
        Err(m) => return error(400, m, None),
    };
    match state
        .serving
        .send(Infer {
            service: name,
            input,
        })
        .await
    {
        Ok(Ok(out)) => axum::Json(out).into_response(),
        Ok(Err(e)) => infer_error(&e),
        Err(e) => error(500, format!("the serving actor is unavailable: {e}"), None),
    }
}

async fn batch(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match admit(&state, &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message, None),
    };
    let Some(requests) = v.get("requests").and_then(Value::as_array) else {
        return error(400, "'requests' (an array) is missing", None);
    };
    if requests.len() > MAX_BATCH {
        return error(400, format!("at most {MAX_BATCH} requests per batch"), None);
    }
    let mut inputs = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        match input(r) {
            Ok(x) => inputs.push(x),
            Err(m) => return error(400, format!("requests[{i}]: {m}"), None),
        }
    }
    let futs = inputs.into_iter().map(|input| {
        state.serving.send(Infer {
            service: name.clone(),
            input,
        })
    });
    let items: Vec<Value> = futures::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(Ok(out)) => serde_json::to_value(out).unwrap_or(Value::Null),
            Ok(Err(e)) => json!({"error": e.to_string(), "code": http_status(&e)}),
            Err(e) => {
                json!({"error": format!("the serving actor is unavailable: {e}"), "code": 500})
            }
        })
        .collect();
    axum::Json(json!({ "items": items })).into_response()
}

async fn feedback(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v = match admit(&state, &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message, None),
    };
    let Some(list) = v.get("labels").and_then(Value::as_array) else {
        return error(400, "'labels' (an array) is missing", None);
    };
    let mut labels = Vec::with_capacity(list.len());
    for (i, l) in list.iter().enumerate() {
        let id = l
            .get("request_id")
            .or_else(|| l.get("id"))
            .and_then(Value::as_str);
        let label = l.get("label").and_then(Value::as_u64).filter(|x| *x <= 1);
        match (id, label) {
            (Some(id), Some(label)) => labels.push((id.to_owned(), label as u8)),
            _ => {
                return error(
                    400,
                    format!("labels[{i}]: needs \"id\" (or \"request_id\") and \"label\" 0 or 1"),
                    None,
                );
            }
        }
    }
    let req = ServeRequest::Feedback {
        service: name,
        labels,
    };
    match state.serving.send(ServeControl(req)).await {
        Ok(Ok(ServeResponse::Feedback(r))) => axum::Json(r).into_response(),
        Ok(Ok(_)) => error(500, "unexpected answer", None),
        Ok(Err(e)) => {
            let status = match e {
                consort_actors::Failure::NotFound(_) => 404,
                consort_actors::Failure::Invalid(_) => 400,
                consort_actors::Failure::Unreachable(_) => 503,
                _ => 500,
            };
            error(status, e.to_string(), None)
        }
        Err(e) => error(500, format!("the serving actor is unavailable: {e}"), None),
    }
}
