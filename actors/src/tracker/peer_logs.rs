//! Log lines across parties: asking a partner for its lines of a job, and answering a
//! partner's ask (the trust boundary: a participant of the job that our policy names).

use std::sync::Arc;
use std::time::Duration;

use consort_protocol::PartyName;
use consort_protocol::jobs::{JobId, LOGS_TOPIC};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::LogLine;
use tracing::warn;

use super::TrackerDeps;
use crate::failure::Failure;
use crate::network::{NetError, NetworkClient};
use crate::scheduler::TakesPart;

/// How long a partner may take to send its lines.
const DEADLINE: Duration = Duration::from_secs(10);

/// Asks `party` for its log lines of `job` (it answers if its policy shares them with us).
pub(super) async fn ask(
    net: &NetworkClient,
    party: &str,
    job: &str,
) -> Result<Vec<LogLine>, Failure> {
    let body = PeerRequestBody::App {
        topic: LOGS_TOPIC.to_owned(),
        body: job.as_bytes().to_vec(),
    };
    match net.request(party, body, DEADLINE).await {
        Ok(PeerResponse::App { body }) => rmp_serde::from_slice(&body)
            .map_err(|e| Failure::Unreachable(format!("{party} sent malformed log lines: {e}"))),
        Ok(PeerResponse::Error { message }) => Err(Failure::Invalid(format!("{party}: {message}"))),
        Ok(other) => Err(Failure::Unreachable(format!(
            "unexpected answer from {party}: {other:?}"
        ))),
        Err(NetError::UnknownPartner(p)) => {
            Err(Failure::NotFound(format!("'{p}' is not a partner")))
        }
        Err(e) => Err(Failure::Unreachable(format!("cannot reach {party}: {e}"))),
    }
}

/// Answers a partner's request for this party's log lines of a job, if the partner takes part
/// in the job and the policy (`share_logs_with`) names it.
pub(super) async fn answer(
    deps: Arc<TrackerDeps>,
    party: PartyName,
    body: Vec<u8>,
) -> PeerResponse {
    let error = |message: String| PeerResponse::Error { message };
    let me = &deps.me;
    let shared = deps
        .share_logs_with
        .iter()
        .any(|p| p == "*" || p == party.as_str());
    if !shared {
        return error(format!(
            "{me} does not share its logs with {party} (policy.share_logs_with)"
        ));
    }
    let Some(job) = std::str::from_utf8(&body).ok().and_then(JobId::parse) else {
        return error("malformed job id".into());
    };
    let asks = TakesPart {
        job: job.clone(),
        party: party.clone(),
    };
    if !deps.takes_part.send(asks).await.unwrap_or(false) {
        warn!(%party, %job, "log request for a job the partner is not in refused");
        return error(format!("{party} takes no part in job {job} here"));
    }
    let tracking = deps.tracking.clone();
    let read = tokio::task::spawn_blocking(move || tracking.lines(job.as_str())).await;
    match read {
        Ok(Ok(lines)) => match rmp_serde::to_vec_named(&lines) {
            Ok(body) => PeerResponse::App { body },
            Err(e) => error(e.to_string()),
        },
        Ok(Err(e)) => error(format!("cannot read logs: {e}")),
        Err(e) => error(format!("handler failed: {e}")),
    }
}
