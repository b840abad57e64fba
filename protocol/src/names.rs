//! The one rule for names that arrive in a job file or from a peer.
//!
//! Task, input, output, tag, table, branch, tag and service names, and model ids: a partner
//! chooses them, and several end up as file names on our disk. So they are checked by one
//! function, here, and only names it accepts are ever joined to a directory: 1 to 64 bytes
//! (model ids up to 128) of ASCII letters, digits, `_`, `-` and `.`, not starting with `.`.
//! That rules out `.`, `..`, `/`, NUL, absolute paths and hidden files by construction.
//!
//! This crate does no I/O, so [`join_inside`] is purely lexical; the storage layer resolves
//! existing paths and checks that symlinks do not lead out of their directory.

use std::path::{Path, PathBuf};

use crate::ids::InvalidName;

/// Longest accepted name, in bytes.
pub const MAX_LEN: usize = 64;

/// Longest accepted model id, in bytes (`<job name>.<10 hex digits>` and then some).
pub const MODEL_ID_MAX_LEN: usize = 128;

/// Checks `s` as a name of kind `kind` ("task name", "output name", ...): 1 to [`MAX_LEN`]
/// bytes of `[A-Za-z0-9_.-]`, not starting with '.'.
pub fn check(kind: &'static str, s: &str) -> Result<(), InvalidName> {
    check_len(kind, s, MAX_LEN)
}

/// [`check`] with another maximum length (model ids: [`MODEL_ID_MAX_LEN`]).
pub fn check_len(kind: &'static str, s: &str, max: usize) -> Result<(), InvalidName> {
    let reason = if s.is_empty() {
        Some("it is empty")
    } else if s.len() > max {
        Some(match max {
            MAX_LEN => "it is longer than 64 bytes",
            MODEL_ID_MAX_LEN => "it is longer than 128 bytes",
            _ => "it is too long",
        })
    } else if s.starts_with('.') {
        Some("it must not start with '.'")
    } else if s.contains('/') {
        Some("it must not contain '/'")
    } else if s.contains('\0') {
        Some("it must not contain a NUL byte")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        Some("only ASCII letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(InvalidName {
            kind,
            // Shown in error messages: no control characters from a peer reach a terminal.
            value: s
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
                .to_string(),
            reason,
        }),
    }
}

/// `dir/name`, if `name` passes [`check`] (so it is one plain component: the result is
/// directly inside `dir`). Lexical only: symlinks are the storage layer's concern.
pub fn join_inside(dir: &Path, name: &str) -> Option<PathBuf> {
    check("name", name).ok().map(|()| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        let long = "x".repeat(64);
        for ok in [
            "a",
            "data",
            "train_data",
            "psi.blinded.0",
            "lr.grad",
            "homo_lr.down.12",
            "breast_hetero.v2",
            "v1.0-rc_1",
            "Model-9",
            "a..b",
            "x.",
            long.as_str(),
        ] {
            assert_eq!(check("name", ok), Ok(()), "{ok:?} should be accepted");
        }
        assert_eq!(
            check_len("model id", &"m".repeat(128), MODEL_ID_MAX_LEN),
            Ok(())
        );
    }

    #[test]
    fn rejects_anything_path_like() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            (".", "it must not start with '.'"),
            ("..", "it must not start with '.'"),
            (".hidden", "it must not start with '.'"),
            ("/etc/passwd", "it must not contain '/'"),
            ("../../identity.key", "it must not start with '.'"),
            ("a/../b", "it must not contain '/'"),
            ("a/b", "it must not contain '/'"),
            ("a\0b", "it must not contain a NUL byte"),
            (
                "a b",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
            (
                "a\\b",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
            (
                "é",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
            (
                "a~1",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
            (
                "a@b",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
            (
                "x\n",
                "only ASCII letters, digits, '_', '-' and '.' are allowed",
            ),
        ];
        for (bad, reason) in cases {
            let err = check("output name", bad).expect_err(bad);
            assert_eq!(err.reason, *reason, "{bad:?}");
            assert_eq!(err.kind, "output name");
        }
        let long = "x".repeat(65);
        assert_eq!(
            check("tag", &long).map_err(|e| e.reason),
            Err("it is longer than 64 bytes")
        );
        assert!(check_len("model id", &"m".repeat(129), MODEL_ID_MAX_LEN).is_err());
    }

    #[test]
    fn errors_name_the_kind_and_escape_the_value() {
        let err = check("input name", "a\nb/c").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "invalid input name 'a\\nb/c': it must not contain '/'"
        );
    }

    #[test]
    fn join_inside_only_joins_plain_names() {
        let dir = Path::new("/data/jobs/j1/t/0/guest/out");
        assert_eq!(join_inside(dir, "model"), Some(dir.join("model")));
        for bad in ["", ".", "..", "../x", "/etc/x", "a/b", "a\0"] {
            assert_eq!(join_inside(dir, bad), None, "{bad:?}");
        }
    }
}
