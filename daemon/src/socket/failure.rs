//! An actor's [`Failure`] as the control protocol's error.

use consort_actors::Failure;
use consort_protocol::{ControlError, ErrorCode};

/// The error code of each kind of failure.
pub(crate) fn control_error(e: Failure) -> ControlError {
    let code = match &e {
        Failure::NotFound(_) => ErrorCode::NotFound,
        Failure::Invalid(_) => ErrorCode::InvalidArgument,
        Failure::Unreachable(_) => ErrorCode::Unreachable,
        _ => ErrorCode::Internal,
    };
    ControlError::new(code, e.to_string())
}

/// An actor that did not answer.
pub(crate) fn mailbox_error(actor: &str, e: actix::MailboxError) -> ControlError {
    ControlError::new(ErrorCode::Internal, format!("{actor} unavailable: {e}"))
}
