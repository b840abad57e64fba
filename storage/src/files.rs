//! Files next to the database, written so that a crash leaves either the old or the new
//! content, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `data` to `path`: a temporary file in the same directory, fsync, rename over `path`,
/// fsync of the directory.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The canonical path of `relative` under `dir`, if it exists and stays inside `dir` once every
/// symlink is resolved: what a name from a job or a peer (or a file a script left behind) may
/// be read through. `relative` must be plain components (no `..`, not absolute); a symlink
/// leading out of `dir` is refused with [`std::io::ErrorKind::PermissionDenied`], a missing file
/// is [`std::io::ErrorKind::NotFound`]. Errors name `relative` only, never `dir`.
pub fn resolve_inside(dir: &Path, relative: impl AsRef<Path>) -> std::io::Result<PathBuf> {
    use std::io::{Error, ErrorKind};
    use std::path::Component;
    let relative = relative.as_ref();
    let plain = !relative.as_os_str().is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("'{}' is not a plain relative path", relative.display()),
        ));
    }
    let root = dir.canonicalize()?;
    let full = dir.join(relative).canonicalize()?;
    if full != root && full.starts_with(&root) {
        Ok(full)
    } else {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("'{}' leads outside its directory", relative.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn resolve_inside_follows_only_links_that_stay_inside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(dir.join("out")).expect("mkdir");
        std::fs::write(dir.join("out/model"), b"m").expect("write");
        std::fs::write(tmp.path().join("secret"), b"s").expect("write");
        symlink(tmp.path().join("secret"), dir.join("out/escape")).expect("symlink");
        symlink("model", dir.join("out/alias")).expect("symlink");
        symlink(tmp.path(), dir.join("up")).expect("symlink");

        let canonical = dir.canonicalize().expect("canonical");
        assert_eq!(
            resolve_inside(&dir, "out/model").expect("inside"),
            canonical.join("out/model")
        );
        assert_eq!(
            resolve_inside(&dir, "out/alias").expect("link inside"),
            canonical.join("out/model")
        );
        for (rel, kind) in [
            ("out/escape", ErrorKind::PermissionDenied),
            ("up/secret", ErrorKind::PermissionDenied),
            ("up", ErrorKind::PermissionDenied),
            ("../secret", ErrorKind::InvalidInput),
            ("out/../../secret", ErrorKind::InvalidInput),
            ("/etc/passwd", ErrorKind::InvalidInput),
            ("", ErrorKind::InvalidInput),
            ("out/missing", ErrorKind::NotFound),
        ] {
            let err = resolve_inside(&dir, rel).expect_err(rel);
            assert_eq!(err.kind(), kind, "{rel}: {err}");
            assert!(
                !err.to_string().contains(&*tmp.path().to_string_lossy()),
                "{err}"
            );
        }
    }
}
