//! Control-socket requests of `consort serve …`, translated into one
//! [`ServeControl`] message for the Serving actor (which coordinates changes with the hosts).

use consort_actors::serving::ServeControl;
use consort_protocol::serving::ServeRequest;
use consort_protocol::{ControlError, Response};

use crate::failure::{control_error, mailbox_error};
use crate::server::ServerState;

/// Answers a serve request.
pub(crate) async fn handle(
    state: &ServerState,
    request: ServeRequest,
) -> Result<Response, ControlError> {
    let answer = state
        .actors
        .serving
        .send(ServeControl(request))
        .await
        .map_err(|e| mailbox_error("serving", e))?
        .map_err(control_error)?;
    Ok(Response::Serve(answer))
}
