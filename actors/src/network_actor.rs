//! The router: the actors' side of the network. It consumes the network's events and hands each
//! to the actor that owns it — records to the Scheduler, each partner request to the one
//! recipient registered for its topic. It decides nothing about those itself.
//!
//! It also answers the socket's questions about the network: partners ([`partners`]) and
//! replicated records ([`records`]).

mod channel;
pub mod partners;
pub mod records;

use std::collections::HashMap;

use actix::{Actor, AsyncContext, Context, Message, Recipient, StreamHandler, WrapFuture};
use consort_protocol::PartyName;
use consort_protocol::peer::PeerResponse;
use consort_storage::{PartnerOverrides, RecordStore};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::network::{NetworkClient, NetworkEvent};
use crate::scheduler::RecordsChanged;

pub use channel::ChannelInbox;

/// A partner's request on one topic, for the actor that owns the topic. The sender is already
/// authenticated (its PeerId checked against its party); everything else is the owner's to
/// check.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    /// The sender.
    pub party: PartyName,
    /// The request's bytes (the topic's own encoding).
    pub body: Vec<u8>,
}

impl Message for PeerRequest {
    type Result = PeerResponse;
}

/// One recipient per peer topic.
#[derive(Default)]
pub struct Routes(HashMap<String, Recipient<PeerRequest>>);

impl Routes {
    /// Routes `topic` to `to` (replacing any earlier recipient of the topic).
    pub fn register(mut self, topic: &str, to: Recipient<PeerRequest>) -> Self {
        self.0.insert(topic.to_owned(), to);
        self
    }
}

/// Consumes the network's events and routes them. Holds only a [`NetworkClient`] (to send the
/// answers); the Swarm runs on its own thread.
pub struct NetworkActor {
    client: NetworkClient,
    scheduler: Recipient<RecordsChanged>,
    routes: Routes,
    /// Partners added or removed at run time.
    overrides: PartnerOverrides,
    /// Replicated records (read here; written through the network).
    records: RecordStore,
    /// This party's PeerId (base58), named in ping diagnoses.
    peer_id: String,
}

/// What the router keeps besides its routes.
pub struct NetworkDeps {
    /// The network.
    pub client: NetworkClient,
    /// Partners added or removed at run time.
    pub overrides: PartnerOverrides,
    /// Replicated records.
    pub records: RecordStore,
    /// This party's PeerId (base58).
    pub peer_id: String,
}

impl NetworkActor {
    /// Starts the actor, draining `events`.
    pub fn start_with(
        deps: NetworkDeps,
        scheduler: Recipient<RecordsChanged>,
        routes: Routes,
        events: mpsc::Receiver<NetworkEvent>,
    ) -> actix::Addr<Self> {
        NetworkActor::create(|ctx| {
            let stream = futures::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            ctx.add_stream(stream);
            NetworkActor {
                client: deps.client,
                scheduler,
                routes,
                overrides: deps.overrides,
                records: deps.records,
                peer_id: deps.peer_id,
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
                let client = self.client.clone();
                let route = self.routes.0.get(&topic).cloned();
                ctx.spawn(
                    async move {
                        let response = match route {
                            // `send` waits for mailbox room: partners cannot overfill it.
                            Some(to) => {
                                to.send(PeerRequest { party, body })
                                    .await
                                    .unwrap_or_else(|e| PeerResponse::Error {
                                        message: format!("handler failed: {e}"),
                                    })
                            }
                            None => {
                                debug!(%party, %topic, "no handler for partner request");
                                PeerResponse::Error {
                                    message: format!("no handler for '{topic}' in this consortd"),
                                }
                            }
                        };
                        let _ = client.respond(id, response).await;
                    }
                    .into_actor(self),
                );
            }
            NetworkEvent::RecordsUpdated(r) => {
                debug!(records = r.len(), "records updated");
                // Never drop: the record is already stored, so no catch-up would bring it again.
                // Waiting for mailbox room gives back-pressure instead.
                let scheduler = self.scheduler.clone();
                ctx.spawn(
                    async move {
                        if scheduler.send(RecordsChanged(r)).await.is_err() {
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
