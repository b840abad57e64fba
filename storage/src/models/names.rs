//! Names of models, versions, branches and tags: the one name rule of
//! [`consort_protocol::names`], with storage's error type.

use consort_protocol::names::{self, MAX_LEN, MODEL_ID_MAX_LEN};

use crate::error::StorageError;

fn checked(what: &'static str, s: &str, max: usize) -> Result<(), StorageError> {
    names::check_len(what, s, max).map_err(|e| StorageError::InvalidName {
        what,
        name: s.to_owned(),
        reason: e.reason,
    })
}

/// Whether `s` may name a branch or tag: 1 to 64 of `[A-Za-z0-9._-]`, not starting with '.'
/// (so never '~', '@' or '/').
pub fn valid_ref_name(s: &str) -> bool {
    names::check("branch or tag", s).is_ok()
}

/// Whether `s` may be a model id: 1 to 128 of `[A-Za-z0-9._-]`, not starting with '.'.
pub fn valid_model_id(s: &str) -> bool {
    names::check_len("model id", s, MODEL_ID_MAX_LEN).is_ok()
}

/// Checks a branch, tag or version name.
pub(crate) fn check_name(what: &'static str, s: &str) -> Result<(), StorageError> {
    checked(what, s, MAX_LEN)
}

/// Checks a model id.
pub(crate) fn check_model_id(s: &str) -> Result<(), StorageError> {
    checked("model id", s, MODEL_ID_MAX_LEN)
}
