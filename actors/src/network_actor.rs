use actix::{Actor, AsyncContext, Context, Recipient, StreamHandler, WrapFuture};
use consort_protocol::PartyName;
use consort_protocol::jobs::{CHANNEL_TOPIC, ChannelMessage, JobId, LOGS_TOPIC, valid_tag};
use consort_protocol::peer::PeerResponse;
use consort_storage::{Chunk, Mailbox, Models, Tracking};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::model_rpc::{self, MODEL_TOPIC, Prepared};
use crate::network::{NetworkClient, NetworkEvent};
use crate::scheduler::RecordChanged;

/// This party's logs and with whom it shares them.
pub struct LogSharing {
    /// The logs.
    pub tracking: Tracking,
    /// `policy.share_logs_with` (`*` for every partner).
    pub share_logs_with: Vec<String>,
    /// The model store (partners ask about shared models).
    pub models: Models,
    /// Model moves prepared here, waiting for their commit.
    pub prepared: Prepared,
}

/// The actors' side of the network: consumes its events and routes them — records to the
/// Scheduler, data-channel messages to the mailbox, other requests to their subsystem. Holds
/// only a [`NetworkClient`]; the Swarm runs on its own thread.
pub struct NetworkActor {
    client: NetworkClient,
    me: PartyName,
    mailbox: Mailbox,
    scheduler: Recipient<RecordChanged>,
    tracking: Tracking,
    share_logs_with: Vec<String>,
    models: Models,
    prepared: Prepared,
}

impl NetworkActor {
    /// Starts the actor, draining `events`.
    pub fn start_with(
        client: NetworkClient,
        me: PartyName,
        mailbox: Mailbox,
        scheduler: Recipient<RecordChanged>,
        events: mpsc::Receiver<NetworkEvent>,
        logs: LogSharing,
    ) -> actix::Addr<Self> {
        NetworkActor::create(|ctx| {
            let stream = futures::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            ctx.add_stream(stream);
            NetworkActor {
                client,
                me,
                mailbox,
                scheduler,
                tracking: logs.tracking,
                share_logs_with: logs.share_logs_with,
                models: logs.models,
                prepared: logs.prepared,
            }
        })
    }
}

impl Actor for NetworkActor {
    type Context = Context<Self>;
}

/// Routes one network event.
impl StreamHandler<NetworkEvent> for NetworkActor {
    fn handle(&mut self, event: NetworkEvent, ctx: &mut Context<Self>) {
        match event {
            NetworkEvent::AppRequest {
                id,
                party,
                topic,
                body,
            } => {
                // Both handlers touch sled (the mailbox flushes): never on the actor's thread.
                let work: Box<dyn FnOnce() -> PeerResponse + Send> = if topic == CHANNEL_TOPIC {
                    let (mailbox, me) = (self.mailbox.clone(), self.me.clone());
                    Box::new(move || on_channel(&mailbox, &me, &party, &body))
                } else if topic == LOGS_TOPIC {
                    let (tracking, me) = (self.tracking.clone(), self.me.clone());
                    let shares = self.share_logs_with.clone();
                    Box::new(move || on_logs(&tracking, &me, &shares, &party, &body))
                } else if topic == MODEL_TOPIC {
                    let (models, prepared, me) =
                        (self.models.clone(), self.prepared.clone(), self.me.clone());
                    Box::new(move || model_rpc::handle(&models, &prepared, &me, &party, &body))
                } else {
                    debug!(%party, %topic, "no handler for partner request");
                    let message = format!("no handler for '{topic}' in this consortd");
                    Box::new(move || PeerResponse::Error { message })
                };
                let client = self.client.clone();
                ctx.spawn(
                    async move {
                        let response =
                            tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                                PeerResponse::Error {
                                    message: format!("handler failed: {e}"),
                                }
                            });
                        let _ = client.respond(id, response).await;
                    }
                    .into_actor(self),
                );
            }
            NetworkEvent::RecordUpdated(r) => {
                debug!(origin = %r.origin, key = %r.key, version = r.version, "record updated");
                // Never drop: the record is already stored, so no catch-up would bring it again.
                // Waiting for mailbox room gives back-pressure instead.
                let scheduler = self.scheduler.clone();
                ctx.spawn(
                    async move {
                        if scheduler.send(RecordChanged(r)).await.is_err() {
                            warn!("the scheduler is gone; a record update was not processed");
                        }
                    }
                    .into_actor(self),
                );
            }
            NetworkEvent::PartnerConnected(p) => debug!(party = %p, "partner up"),
            NetworkEvent::PartnerDisconnected(p) => debug!(party = %p, "partner down"),
        }
    }
}

/// Answers a partner's request for this party's log lines of a job, if the policy
/// (`share_logs_with`) names it.
fn on_logs(
    tracking: &Tracking,
    me: &PartyName,
    share_logs_with: &[String],
    party: &PartyName,
    body: &[u8],
) -> PeerResponse {
    let error = |message: String| PeerResponse::Error { message };
    let shared = share_logs_with
        .iter()
        .any(|p| p == "*" || p == party.as_str());
    if !shared {
        return error(format!(
            "{} does not share its logs with {party} (policy.share_logs_with)",
            me
        ));
    }
    let Some(job) = std::str::from_utf8(body).ok().and_then(JobId::parse) else {
        return error("malformed job id".into());
    };
    match tracking.lines(job.as_str()) {
        Ok(lines) => match rmp_serde::to_vec_named(&lines) {
            Ok(body) => PeerResponse::App { body },
            Err(e) => error(e.to_string()),
        },
        Err(e) => error(format!("cannot read logs: {e}")),
    }
}

/// Stores a data-channel message after checking who sent it and to whom.
fn on_channel(mailbox: &Mailbox, me: &PartyName, party: &PartyName, body: &[u8]) -> PeerResponse {
    let error = |message: String| PeerResponse::Error { message };
    let msg: ChannelMessage = match rmp_serde::from_slice(body) {
        Ok(m) => m,
        Err(e) => return error(format!("malformed channel message: {e}")),
    };
    if &msg.from != party {
        warn!(%party, claimed = %msg.from, "channel message claims another sender; dropped");
        return error("the sender is not the party the message names".into());
    }
    if &msg.to != me {
        return error(format!("message for {}, this is {}", msg.to, me));
    }
    if !valid_tag(&msg.tag) || !valid_tag(&msg.task) {
        return error("invalid task or tag name".into());
    }
    let stored = match msg.part {
        None => mailbox.put(&msg.mailbox_key(), &msg.payload),
        Some(p) => mailbox.put_chunk(
            &msg.mailbox_key(),
            Chunk {
                index: p.index,
                count: p.count,
                total: p.total,
                offset: p.offset,
            },
            &msg.payload,
        ),
    };
    match stored {
        Ok(()) => PeerResponse::App {
            body: b"ok".to_vec(),
        },
        Err(e) => error(format!("cannot store the message: {e}")),
    }
}
