//! The gRPC inference API: `consort.inference.v1.Inference` (`proto/inference.proto`), with
//! `Infer` and `BatchInfer`. Errors map to NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE (the party
//! named in the message) and INTERNAL; a missing or wrong bearer token is UNAUTHENTICATED.

use consort_actors::serving::Infer;
use consort_protocol::serving::{InferError, InferInput, InferOutput};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::ApiState;

/// The code generated from `proto/inference.proto` (server and client).
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("consort.inference.v1");
}

use pb::inference_server::{Inference, InferenceServer};

/// Serves the API on `listener` until `stop`.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    state: ApiState,
    stop: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let limit = state.max_body_bytes;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &state.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    builder
        .add_service(
            InferenceServer::new(Api(state))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(64 << 20),
        )
        .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
        .await?;
    Ok(())
}

struct Api(ApiState);

fn status(e: InferError) -> Status {
    match e {
        InferError::NotFound { message } => Status::not_found(message),
        InferError::BadRequest { message } => Status::invalid_argument(message),
        InferError::Unavailable { message, .. } => Status::unavailable(message),
        InferError::Internal { message } => Status::internal(message),
    }
}

fn input(r: pb::InferRequest) -> InferInput {
    InferInput {
        id: r.id,
        request_id: (!r.request_id.is_empty()).then_some(r.request_id),
        features: r.features.into_iter().collect(),
    }
}

fn reply(o: InferOutput) -> pb::InferReply {
    pb::InferReply {
        id: o.id,
        request_id: o.request_id.unwrap_or_default(),
        score: o.score,
        label: o.label,
        version: o.version,
        guest_only: o.guest_only,
        timings: o
            .timings
            .into_iter()
            .map(|t| pb::PartyTiming {
                party: t.party,
                micros: t.micros,
                cached: t.cached,
            })
            .collect(),
        total_micros: o.total_micros,
    }
}

impl Api {
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let auth = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if self.0.authorized(auth) {
            Ok(())
        } else {
            Err(Status::unauthenticated("a valid bearer token is required"))
        }
    }

    async fn one(&self, service: String, input: InferInput) -> Result<InferOutput, Status> {
        if let Some((name, _)) = input.features.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Status::invalid_argument(format!(
                "feature '{name}' is not a finite number"
            )));
        }
        self.0
            .serving
            .send(Infer { service, input })
            .await
            .map_err(|e| Status::internal(format!("the serving actor is unavailable: {e}")))?
            .map_err(status)
    }
}

#[tonic::async_trait]
impl Inference for Api {
    async fn infer(
        &self,
        request: Request<pb::InferRequest>,
    ) -> Result<Response<pb::InferReply>, Status> {
        self.check(&request)?;
        let r = request.into_inner();
        let service = r.service.clone();
        Ok(Response::new(reply(self.one(service, input(r)).await?)))
    }

    async fn batch_infer(
        &self,
        request: Request<pb::BatchInferRequest>,
    ) -> Result<Response<pb::BatchInferReply>, Status> {
        self.check(&request)?;
        let r = request.into_inner();
        let service = r.service;
        let answers = futures::future::join_all(
            r.requests
                .into_iter()
                .map(|q| self.one(service.clone(), input(q))),
        )
        .await;
        let items = answers
            .into_iter()
            .map(|a| pb::BatchItem {
                outcome: Some(match a {
                    Ok(o) => pb::batch_item::Outcome::Reply(reply(o)),
                    Err(s) => pb::batch_item::Outcome::Error(s.message().to_owned()),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchInferReply { items }))
    }
}
