//! Names of models, versions, branches and tags.

use crate::error::StorageError;

fn name_problem(s: &str, max: usize) -> Option<&'static str> {
    if s.is_empty() {
        Some("empty")
    } else if s.len() > max {
        Some("too long")
    } else if s.starts_with('.') {
        Some("starts with '.'")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    }
}

/// Whether `s` may name a branch or tag: 1 to 64 of `[A-Za-z0-9._-]`, not starting with '.'
/// (so never '~', '@' or '/').
pub fn valid_ref_name(s: &str) -> bool {
    name_problem(s, 64).is_none()
}

/// Whether `s` may be a model id: 1 to 128 of `[A-Za-z0-9._-]`, not starting with '.'.
pub fn valid_model_id(s: &str) -> bool {
    name_problem(s, 128).is_none()
}

/// Checks a branch, tag or version name.
pub(crate) fn check_name(what: &'static str, s: &str) -> Result<(), StorageError> {
    match name_problem(s, 64) {
        None => Ok(()),
        Some(reason) => Err(StorageError::InvalidName {
            what,
            name: s.to_owned(),
            reason,
        }),
    }
}

/// Checks a model id.
pub(crate) fn check_model_id(s: &str) -> Result<(), StorageError> {
    match name_problem(s, 128) {
        None => Ok(()),
        Some(reason) => Err(StorageError::InvalidName {
            what: "model id",
            name: s.to_owned(),
            reason,
        }),
    }
}
