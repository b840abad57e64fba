//! Log lines across parties: asking a partner for its lines of a job, and answering a
//! partner's ask (the trust boundary: a participant of the job that our policy names).

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use consort_protocol::PartyName;
use consort_protocol::jobs::{JobId, LOGS_TOPIC};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::{LogLine, Tracking};
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
    let TrackerDeps {
        me,
        tracking,
        share_logs_with,
        takes_part,
        ..
    } = &*deps;
    shared_lines(
        me,
        share_logs_with,
        takes_part,
        tracking.clone(),
        party,
        body,
    )
    .await
}

async fn shared_lines(
    me: &PartyName,
    share_logs_with: &[String],
    takes_part: &Recipient<TakesPart>,
    tracking: Tracking,
    party: PartyName,
    body: Vec<u8>,
) -> PeerResponse {
    let error = |message: String| PeerResponse::Error { message };
    let shared = share_logs_with
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
    if !takes_part.send(asks).await.unwrap_or(false) {
        warn!(%party, %job, "log request for a job the partner is not in refused");
        return error(format!("{party} takes no part in job {job} here"));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};
    use consort_storage::Store;

    /// A Scheduler that knows one job, run by bank-a and insurer-b.
    struct OneJob(JobId);

    impl Actor for OneJob {
        type Context = Context<Self>;
    }

    impl Handler<TakesPart> for OneJob {
        type Result = bool;

        fn handle(&mut self, msg: TakesPart, _ctx: &mut Context<Self>) -> bool {
            msg.job == self.0 && ["bank-a", "insurer-b"].contains(&msg.party.as_str())
        }
    }

    fn party(s: &str) -> PartyName {
        PartyName::new(s).expect("party")
    }

    #[actix_rt::test]
    async fn lines_go_only_to_participants_the_policy_names() {
        let job = JobId::parse("j0123456789abcdef0123").expect("job id");
        let tracking = Tracking::open(&Store::temporary().expect("store")).expect("tracking");
        let line = LogLine {
            at_ms: 1,
            task: "lr".into(),
            role: "guest".into(),
            attempt: 0,
            line: "hello".into(),
        };
        tracking.log(job.as_str(), &line).expect("log");
        let takes_part = OneJob(job.clone()).start().recipient();
        let me = party("bank-a");
        let ask = |shares: Vec<String>, from: &str, body: &[u8]| {
            let (me, takes_part, tracking) = (me.clone(), takes_part.clone(), tracking.clone());
            let (from, body) = (party(from), body.to_vec());
            async move { shared_lines(&me, &shares, &takes_part, tracking, from, body).await }
        };
        let all = vec!["*".to_owned()];
        match ask(all.clone(), "insurer-b", job.as_str().as_bytes()).await {
            PeerResponse::App { body } => {
                let lines: Vec<LogLine> = rmp_serde::from_slice(&body).expect("lines");
                assert_eq!(lines, vec![line]);
            }
            other => panic!("{other:?}"),
        }
        let refused = |r: PeerResponse, why: &str| match r {
            PeerResponse::Error { message } => assert!(message.contains(why), "{message}"),
            other => panic!("{other:?}"),
        };
        refused(
            ask(all.clone(), "clinic-c", job.as_str().as_bytes()).await,
            "takes no part",
        );
        refused(
            ask(
                vec!["clinic-c".into()],
                "insurer-b",
                job.as_str().as_bytes(),
            )
            .await,
            "does not share its logs",
        );
        refused(ask(all, "insurer-b", b"../etc").await, "malformed job id");
    }
}
