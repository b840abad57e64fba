use actix::{Actor, ActorFutureExt, AsyncContext, Context, StreamHandler, WrapFuture};
use consort_protocol::peer::PeerResponse;
use tokio::sync::mpsc;
use tracing::debug;

use crate::network::{NetworkClient, NetworkEvent};

/// The actors' side of the network: consumes its events and routes them (records to the
/// scheduler, requests to their subsystem). Holds only a [`NetworkClient`]; the Swarm runs on
/// its own thread.
pub struct NetworkActor {
    client: NetworkClient,
}

impl NetworkActor {
    /// Starts the actor, draining `events`.
    pub fn start_with(
        client: NetworkClient,
        events: mpsc::Receiver<NetworkEvent>,
    ) -> actix::Addr<Self> {
        NetworkActor::create(|ctx| {
            let stream = futures::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            ctx.add_stream(stream);
            NetworkActor { client }
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
                id, party, topic, ..
            } => {
                debug!(%party, %topic, "no handler for partner request");
                let client = self.client.clone();
                let message = format!("no handler for '{topic}' in this consortd");
                ctx.spawn(
                    async move {
                        let _ = client.respond(id, PeerResponse::Error { message }).await;
                    }
                    .into_actor(self)
                    .map(|_, _, _| ()),
                );
            }
            NetworkEvent::RecordUpdated(r) => {
                debug!(origin = %r.origin, key = %r.key, version = r.version, "record updated");
            }
            NetworkEvent::PartnerConnected(p) => debug!(party = %p, "partner up"),
            NetworkEvent::PartnerDisconnected(p) => debug!(party = %p, "partner down"),
        }
    }
}
