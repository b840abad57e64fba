use actix::{Actor, AsyncContext, Context, Recipient, StreamHandler, WrapFuture};
use consort_protocol::PartyName;
use consort_protocol::jobs::{CHANNEL_TOPIC, ChannelMessage, JobId, LOGS_TOPIC, valid_tag};
use consort_protocol::peer::PeerResponse;
use consort_storage::{Chunk, Mailbox, Models, Tracking};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::model_rpc::{self, MODEL_TOPIC, Prepared};
use crate::network::{NetworkClient, NetworkEvent};
use crate::scheduler::{AdmitChannel, RecordChanged, TakesPart};

/// What the network actor asks the Scheduler before it lets a partner touch a job.
pub struct JobGate {
    /// May this data-channel message come in?
    pub admit: Recipient<AdmitChannel>,
    /// Does this party take part in that job?
    pub takes_part: Recipient<TakesPart>,
}

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
    gate: std::sync::Arc<JobGate>,
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
        gate: JobGate,
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
                gate: std::sync::Arc::new(gate),
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
                // The handlers touch sled (the mailbox flushes): never on the actor's thread.
                // Job-scoped requests first ask the Scheduler whether the sender takes part.
                let gate = self.gate.clone();
                let client = self.client.clone();
                let work: std::pin::Pin<Box<dyn std::future::Future<Output = PeerResponse>>> =
                    if topic == CHANNEL_TOPIC {
                        let (mailbox, me) = (self.mailbox.clone(), self.me.clone());
                        Box::pin(on_channel(gate, mailbox, me, party, body))
                    } else if topic == LOGS_TOPIC {
                        let (tracking, me) = (self.tracking.clone(), self.me.clone());
                        let shares = self.share_logs_with.clone();
                        Box::pin(on_logs(gate, tracking, me, shares, party, body))
                    } else if topic == MODEL_TOPIC {
                        let (models, prepared, me) =
                            (self.models.clone(), self.prepared.clone(), self.me.clone());
                        Box::pin(blocking(move || {
                            model_rpc::handle(&models, &prepared, &me, &party, &body)
                        }))
                    } else {
                        debug!(%party, %topic, "no handler for partner request");
                        let message = format!("no handler for '{topic}' in this consortd");
                        Box::pin(async move { PeerResponse::Error { message } })
                    };
                ctx.spawn(
                    async move {
                        let response = work.await;
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

/// Runs `work` on a blocking thread.
async fn blocking(work: impl FnOnce() -> PeerResponse + Send + 'static) -> PeerResponse {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| PeerResponse::Error {
            message: format!("handler failed: {e}"),
        })
}

/// Answers a partner's request for this party's log lines of a job, if the partner takes part
/// in the job and the policy (`share_logs_with`) names it.
async fn on_logs(
    gate: std::sync::Arc<JobGate>,
    tracking: Tracking,
    me: PartyName,
    share_logs_with: Vec<String>,
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
    if !gate.takes_part.send(asks).await.unwrap_or(false) {
        warn!(%party, %job, "log request for a job the partner is not in refused");
        return error(format!("{party} takes no part in job {job} here"));
    }
    blocking(move || match tracking.lines(job.as_str()) {
        Ok(lines) => match rmp_serde::to_vec_named(&lines) {
            Ok(body) => PeerResponse::App { body },
            Err(e) => error(e.to_string()),
        },
        Err(e) => error(format!("cannot read logs: {e}")),
    })
    .await
}

/// Stores a data-channel message after checking who sent it, to whom, for which run, and that
/// its chunk fits the message it announces.
async fn on_channel(
    gate: std::sync::Arc<JobGate>,
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
    let admit = AdmitChannel {
        job: msg.job.clone(),
        task: msg.task.clone(),
        attempt: msg.attempt,
        from: msg.from.clone(),
        from_role: msg.from_role,
        to_role: msg.to_role,
    };
    match gate.admit.send(admit).await {
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
