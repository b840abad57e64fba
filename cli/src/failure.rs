//! How a command fails: a code for scripts, a message for people, and the exit code.

use consort_protocol::ErrorCode;

use crate::client::ClientError;

/// Failure of a CLI command, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    /// For scripts (`--json`): `not_running`, `not_found`, `protocol`, `invalid_job`, ...
    pub(crate) code: &'static str,
    /// One line for a human (stderr).
    pub(crate) message: String,
    /// The process's exit code.
    pub(crate) exit: u8,
    /// The command already printed its JSON document (with `--json`).
    pub(crate) reported: bool,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::NotRunning { .. } => Failure {
                code: "not_running",
                message: e.to_string(),
                exit: 2,
                reported: false,
            },
            ClientError::Daemon(err) => Failure {
                code: error_code_name(err.code),
                message: e.to_string(),
                exit: 1,
                reported: false,
            },
            _ => Failure {
                code: "protocol",
                message: e.to_string(),
                exit: 1,
                reported: false,
            },
        }
    }
}

fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadFrame => "bad_frame",
        ErrorCode::FrameTooLarge => "frame_too_large",
        ErrorCode::VersionMismatch => "version_mismatch",
        ErrorCode::HelloRequired => "hello_required",
        ErrorCode::UnknownRequest => "unknown_request",
        ErrorCode::ShuttingDown => "shutting_down",
        ErrorCode::Internal => "internal",
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Unreachable => "unreachable",
        _ => "other",
    }
}

/// A failure that exits 1 and has not been printed yet.
pub(crate) fn fail(code: &'static str, message: String) -> Failure {
    Failure {
        code,
        message,
        exit: 1,
        reported: false,
    }
}
