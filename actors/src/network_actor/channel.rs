//! The data channel's receiving end: stores partners' channel messages in the mailbox after
//! checking who sent them, to whom, for which run, and that each chunk fits the message it
//! announces. Registered with the router for [`CHANNEL_TOPIC`](consort_protocol::jobs::CHANNEL_TOPIC).

use actix::{Actor, Context, Handler, Recipient, ResponseFuture};
use consort_protocol::PartyName;
use consort_protocol::jobs::{ChannelMessage, valid_tag};
use consort_protocol::peer::PeerResponse;
use consort_storage::{Chunk, Mailbox};
use tracing::{debug, warn};

use super::PeerRequest;
use crate::scheduler::AdmitChannel;

/// Receives data-channel messages.
pub struct ChannelInbox {
    me: PartyName,
    mailbox: Mailbox,
    /// May this message come in? (asked of the Scheduler, which knows the job's runs)
    admit: Recipient<AdmitChannel>,
}

impl ChannelInbox {
    /// An inbox storing into `mailbox`.
    pub fn new(me: PartyName, mailbox: Mailbox, admit: Recipient<AdmitChannel>) -> Self {
        Self { me, mailbox, admit }
    }
}

impl Actor for ChannelInbox {
    type Context = Context<Self>;
}

/// Handler for a partner's channel message: checks it, then stores it on a blocking thread
/// (the mailbox flushes).
impl Handler<PeerRequest> for ChannelInbox {
    type Result = ResponseFuture<PeerResponse>;

    fn handle(&mut self, msg: PeerRequest, _ctx: &mut Context<Self>) -> Self::Result {
        let (admit, mailbox, me) = (self.admit.clone(), self.mailbox.clone(), self.me.clone());
        Box::pin(on_channel(admit, mailbox, me, msg.party, msg.body))
    }
}

/// Runs `work` on a blocking thread.
async fn blocking(work: impl FnOnce() -> PeerResponse + Send + 'static) -> PeerResponse {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| PeerResponse::Error {
            message: format!("handler failed: {e}"),
        })
}

/// Stores a data-channel message after checking who sent it, to whom, for which run, and that
/// its chunk fits the message it announces.
async fn on_channel(
    admit: Recipient<AdmitChannel>,
    mailbox: Mailbox,
    me: PartyName,
    party: PartyName,
    body: Vec<u8>,
) -> PeerResponse {
    let error = |message: String| PeerResponse::Error { message };
    let msg: ChannelMessage = match rmp_serde::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(format!("malformed channel message: {e}")),
    };
    drop(body);
    if msg.from != party {
        warn!(%party, claimed = %msg.from, "channel message claims another sender; dropped");
        return error("the sender is not the party the message names".into());
    }
    if msg.to != me {
        return error(format!("message for {}, this is {}", msg.to, me));
    }
    if !valid_tag(&msg.tag) || !valid_tag(&msg.task) {
        return error("invalid task or tag name".into());
    }
    if let Some(part) = &msg.part
        && let Err(why) = part.check(msg.payload.len())
    {
        warn!(%party, job = %msg.job, reason = %why, "channel chunk refused");
        return error(why);
    }
    let check = AdmitChannel {
        job: msg.job.clone(),
        task: msg.task.clone(),
        attempt: msg.attempt,
        from: msg.from.clone(),
        from_role: msg.from_role,
        to_role: msg.to_role,
    };
    match admit.send(check).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            warn!(%party, job = %msg.job, task = %msg.task, reason = %why, "channel message refused");
            return error(why);
        }
        Err(e) => return error(format!("cannot check the message: {e}")),
    }
    blocking(move || {
        let key = msg.mailbox_key();
        let stored = match msg.part {
            None => mailbox.put(&key, &msg.payload),
            Some(p) => mailbox
                .put_chunk(
                    &key,
                    Chunk {
                        index: p.index,
                        count: p.count,
                        total: p.total,
                        offset: p.offset,
                    },
                    &msg.payload,
                )
                .inspect(|()| {
                    // On disk, about to be acknowledged (tests count these across restarts).
                    debug!(%key, chunk = p.index, of = p.count, "channel chunk stored");
                }),
        };
        match stored {
            Ok(()) => PeerResponse::App {
                body: b"ok".to_vec(),
            },
            Err(e) => PeerResponse::Error {
                message: format!("cannot store the message: {e}"),
            },
        }
    })
    .await
}
