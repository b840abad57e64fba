//! Property tests (fuzzing) of model archive import, the one file format a partner or a user
//! hands the model store: arbitrary bytes, byte edits of a real export (with and without a
//! matching checksum) and structured edits of its contents (hostile names, swapped hashes,
//! missing or extra commits and artifacts). Import must never panic, must refuse garbage, and
//! must write nothing outside its directory.
//!
//! Each property runs a bounded number of cases; set `CONSORT_FUZZ_CASES` to run more.
//! Failing seeds are persisted by proptest next to this file and replayed on every run.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use consort_storage::{
    Commit, ImportReport, MAIN, ModelPart, ModelVersion, Models, StorageError, Store, TreeName,
    valid_model_id, valid_ref_name,
};

// ---------------------------------------------------------------------------------------------
// Case counts

/// Cases per property: `default` in CI, `CONSORT_FUZZ_CASES` when set (long runs by hand).
fn cases(default: u32) -> u32 {
    std::env::var("CONSORT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// A real export

const ID: &str = "lr.0123456789";
const TRAILER: usize = 32;

/// A version of [`ID`] whose parts are `(task, bytes)`, artifacts stored (as in the store's
/// own tests).
fn version(m: &Models, v: &str, parts: &[(&str, &[u8])]) -> ModelVersion {
    ModelVersion {
        model_id: ID.into(),
        version: v.into(),
        name: "lr".into(),
        party: "a".into(),
        parties: vec!["guest:a".into(), "host:b".into()],
        created_at_ms: 1_000 + v.len() as u64,
        parts: parts
            .iter()
            .map(|(task, bytes)| ModelPart {
                task: (*task).into(),
                component: "hetero_lr".into(),
                role: "guest".into(),
                artifact: m.put_artifact(bytes).unwrap(),
                bytes: bytes.len() as u64,
                params: serde_json::json!({ "lr": 0.1, "epochs": 3 }),
            })
            .collect(),
        metrics: BTreeMap::from([("eval/auc".to_string(), 0.75)]),
    }
}

/// The archive of the second of two commits on `main` (its parent is named, not shipped), with
/// two artifacts.
fn export() -> &'static [u8] {
    static EXPORT: OnceLock<Vec<u8>> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::temporary().unwrap();
        let m = Models::open(&store, dir.path()).unwrap();
        let v1 = version(&m, "j1", &[("lr", b"w1"), ("scale", b"s")]);
        m.commit(&v1, MAIN, "first", "a").unwrap();
        let v2 = version(&m, "j2", &[("lr", b"weights two"), ("scale", b"s")]);
        m.commit(&v2, MAIN, "second", "a").unwrap();
        let mut out = Vec::new();
        m.export(&format!("{ID}@{MAIN}"), &mut out).unwrap();
        out
    })
}

/// The archive's contents, as `archive.rs` writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Archive {
    format: String,
    version: u16,
    model_id: String,
    head: String,
    commits: Vec<Blob>,
    artifacts: Vec<Blob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    id: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `body` followed by its SHA-256, as an archive file.
fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&Sha256::digest(body));
    out
}

fn parsed_export() -> Archive {
    let bytes = export();
    rmp_serde::from_slice(&bytes[..bytes.len() - TRAILER]).unwrap()
}

fn encode(a: &Archive) -> Vec<u8> {
    seal(&rmp_serde::to_vec_named(a).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Importing into a fresh store, confined

/// A path outside every store that hostile names point at; must never appear.
fn escape_target() -> PathBuf {
    std::env::temp_dir().join(format!("consort-fuzz-escape-{}", std::process::id()))
}

/// Imports `bytes` into a fresh store whose artifacts live in `ROOT/party/models`, then checks
/// that nothing was written outside `ROOT/party/models/objects/xx/<sha-256>`, and that a
/// successful import can be read back and repeated; an import that fails stored nothing.
fn import_fresh(bytes: &[u8]) -> Result<ImportReport, StorageError> {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("party").join("models");
    let store = Store::temporary().unwrap();
    let models = Models::open(&store, &dir).unwrap();
    let result = models.import(bytes);
    let objects = confined(root.path(), &dir);
    assert!(
        !escape_target().exists(),
        "wrote {}",
        escape_target().display()
    );
    match &result {
        Ok(report) => {
            assert!(valid_model_id(&report.model_id), "{report:?}");
            assert!(valid_ref_name(&report.version), "{report:?}");
            let commit = models.get_commit(&report.commit).unwrap().unwrap();
            assert_eq!(commit.model_id, report.model_id);
            assert_eq!(commit.model_version, report.version);
            for p in &commit.parts {
                models.artifact(&p.artifact).unwrap();
            }
            let (at_version, _) = models
                .commit_of_version(&report.model_id, &report.version)
                .unwrap()
                .unwrap();
            assert_eq!(
                at_version, report.commit,
                "the version names another commit"
            );
            let again = models.import(bytes).unwrap();
            assert!(again.already_present, "{again:?}");
            assert_eq!(again.artifacts_written, 0);
        }
        Err(_) => {
            assert_eq!(objects, 0, "a refused archive stored artifacts");
            assert_eq!(
                store.count(TreeName::Models).unwrap(),
                0,
                "a refused archive stored records"
            );
        }
    }
    result
}

/// Checks that every entry under `root` is `dir`, one of its ancestors, or an artifact file at
/// `dir/objects/<first two hex digits>/<64 hex digits>`; returns how many artifact files.
fn confined(root: &Path, dir: &Path) -> usize {
    let objects = dir.join("objects");
    let mut files = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(!meta.file_type().is_symlink(), "symlink {}", path.display());
            if meta.is_dir() {
                assert!(
                    dir.starts_with(&path) || path.starts_with(&objects),
                    "unexpected directory {}",
                    path.display()
                );
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let shard = path.parent().unwrap();
            let ok = shard.parent() == Some(objects.as_path())
                && name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && shard.file_name().map(|s| s.to_string_lossy().into_owned())
                    == Some(name[..2].to_owned());
            assert!(ok, "unexpected file {}", path.display());
            files += 1;
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Edits

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, &'static [u8]),
    Remove(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
}

/// MessagePack bytes that stress a decoder: nil, never-used, huge lengths, 64-bit numbers.
const TOKENS: &[&[u8]] = &[
    b"\xc0",
    b"\xc1",
    b"\xdc\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xde\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xc6\x00\x00\x00\x00",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\x90",
    b"\x80",
    b"\xa0",
    b"\xa2..",
    b"\xa9../../../",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

/// `base` with `edits` applied in order.
fn mutate(base: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    for m in edits {
        let len = b.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
        let at_end = |i: &Index| i.index(len + 1);
        match m {
            Mutation::Flip(i, bit) if len > 0 => b[at(i)] ^= 1 << bit,
            Mutation::Set(i, v) if len > 0 => b[at(i)] = *v,
            Mutation::Insert(i, bytes) => {
                let p = at_end(i);
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Token(i, t) => {
                let p = at_end(i);
                b.splice(p..p, t.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let p = at(i);
                b.drain(p..(p + n).min(len));
            }
            Mutation::Truncate(i) => b.truncate(at_end(i)),
            Mutation::Duplicate(i, n) if len > 0 => {
                let p = at(i);
                let piece = b[p..(p + n).min(len)].to_vec();
                b.splice(p..p, piece);
            }
            _ => {}
        }
    }
    b
}

/// Names a hostile archive might use for a model, a version or an artifact.
fn hostile_name() -> impl Strategy<Value = String> {
    let escape = escape_target().display().to_string();
    prop_oneof![
        3 => prop::sample::select(vec![
            String::new(),
            ".".into(),
            "..".into(),
            "../x".into(),
            "../../../../escape".into(),
            "objects".into(),
            "/etc/passwd".into(),
            escape,
            "a/b".into(),
            "a\0b".into(),
            "j2".into(),
            "j1".into(),
            ID.into(),
            "m".repeat(129),
            "v".repeat(65),
            "0".repeat(64),
            "A".repeat(64),
            format!("../{}", "0".repeat(61)),
            format!("{}/", "a".repeat(63)),
        ]),
        1 => "[a-zA-Z0-9./_-]{0,80}",
        1 => "[0-9a-f]{64}",
        1 => any::<String>(),
    ]
}

/// One edit of an archive's contents, keeping the checksum (and, where it says so, the commit
/// hashes) right so that import looks past them.
#[derive(Debug, Clone)]
enum Edit {
    Format(String),
    Version(u16),
    /// The archive's model id (commits keep theirs).
    ArchiveModelId(String),
    /// The model id of the archive and of every commit (rehashed).
    ModelId(String),
    Head(String),
    /// The head commit's version (rehashed, head follows).
    CommitVersion(String),
    /// An artifact named by the head commit's part (rehashed, head follows).
    PartArtifact(Index, String),
    /// A shipped artifact's id.
    ArtifactId(Index, String),
    /// A shipped artifact's bytes.
    ArtifactBytes(Index, Vec<Mutation>),
    DropArtifact(Index),
    DuplicateArtifact(Index),
    /// A second commit of another version, a copy of the head's with that version (rehashed).
    ExtraCommit(String),
    /// A second commit: the head commit's bytes edited, under their own hash.
    ExtraCommitBytes(Vec<Mutation>),
    /// The head commit's bytes edited, rehashed, head follows.
    CommitBytes(Vec<Mutation>),
    DropCommits,
    DuplicateCommit,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => "[a-z-]{0,24}".prop_map(Edit::Format),
        1 => prop_oneof![Just(0u16), Just(2), any::<u16>()].prop_map(Edit::Version),
        3 => hostile_name().prop_map(Edit::ArchiveModelId),
        3 => hostile_name().prop_map(Edit::ModelId),
        3 => hostile_name().prop_map(Edit::Head),
        3 => hostile_name().prop_map(Edit::CommitVersion),
        3 => (any::<Index>(), hostile_name()).prop_map(|(i, n)| Edit::PartArtifact(i, n)),
        3 => (any::<Index>(), hostile_name()).prop_map(|(i, n)| Edit::ArtifactId(i, n)),
        3 => (any::<Index>(), mutations()).prop_map(|(i, m)| Edit::ArtifactBytes(i, m)),
        3 => any::<Index>().prop_map(Edit::DropArtifact),
        3 => any::<Index>().prop_map(Edit::DuplicateArtifact),
        3 => hostile_name().prop_map(Edit::ExtraCommit),
        3 => mutations().prop_map(Edit::ExtraCommitBytes),
        3 => mutations().prop_map(Edit::CommitBytes),
        3 => Just(Edit::DropCommits),
        3 => Just(Edit::DuplicateCommit),
    ]
}

fn rehash(c: &Commit) -> Blob {
    let bytes = c.canonical_bytes().unwrap();
    Blob {
        id: Commit::id_of(&bytes).as_str().to_owned(),
        bytes,
    }
}

/// The head commit, decoded (when the archive still has one that decodes).
fn head_commit(a: &Archive) -> Option<Commit> {
    let blob = a.commits.iter().find(|b| b.id == a.head)?;
    rmp_serde::from_slice(&blob.bytes).ok()
}

/// Replaces the head commit by `c`, rehashed, and points the head at it.
fn set_head(a: &mut Archive, c: &Commit) {
    let blob = rehash(c);
    a.head = blob.id.clone();
    match a.commits.iter_mut().find(|b| b.id == a.head) {
        Some(b) => *b = blob,
        None => {
            a.commits.retain(|b| b.id != a.head);
            a.commits.insert(0, blob);
        }
    }
}

fn apply(a: &mut Archive, e: &Edit) {
    let n = a.artifacts.len();
    match e {
        Edit::Format(f) => a.format = f.clone(),
        Edit::Version(v) => a.version = *v,
        Edit::ArchiveModelId(id) => a.model_id = id.clone(),
        Edit::ModelId(id) => {
            a.model_id = id.clone();
            let mut out = Vec::new();
            let head = a.head.clone();
            for b in &a.commits {
                match rmp_serde::from_slice::<Commit>(&b.bytes) {
                    Ok(mut c) => {
                        c.model_id = id.clone();
                        let nb = rehash(&c);
                        if b.id == head {
                            a.head = nb.id.clone();
                        }
                        out.push(nb);
                    }
                    Err(_) => out.push(b.clone()),
                }
            }
            a.commits = out;
        }
        Edit::Head(h) => a.head = h.clone(),
        Edit::CommitVersion(v) => {
            if let Some(mut c) = head_commit(a) {
                c.model_version = v.clone();
                c.job_id = v.clone();
                let old = a.head.clone();
                a.commits.retain(|b| b.id != old);
                set_head(a, &c);
            }
        }
        Edit::PartArtifact(i, name) => {
            if let Some(mut c) = head_commit(a)
                && !c.parts.is_empty()
            {
                let k = i.index(c.parts.len());
                c.parts[k].artifact = name.clone();
                let old = a.head.clone();
                a.commits.retain(|b| b.id != old);
                set_head(a, &c);
            }
        }
        Edit::ArtifactId(i, name) if n > 0 => a.artifacts[i.index(n)].id = name.clone(),
        Edit::ArtifactBytes(i, m) if n > 0 => {
            let k = i.index(n);
            a.artifacts[k].bytes = mutate(&a.artifacts[k].bytes, m);
        }
        Edit::DropArtifact(i) if n > 0 => {
            a.artifacts.remove(i.index(n));
        }
        Edit::DuplicateArtifact(i) if n > 0 => {
            let b = a.artifacts[i.index(n)].clone();
            a.artifacts.push(b);
        }
        Edit::ExtraCommit(v) => {
            if let Some(mut c) = head_commit(a) {
                c.model_version = v.clone();
                c.job_id = v.clone();
                a.commits.push(rehash(&c));
            }
        }
        Edit::ExtraCommitBytes(m) => {
            if let Some(b) = a.commits.first() {
                let bytes = mutate(&b.bytes, m);
                a.commits.push(Blob {
                    id: hex(&Sha256::digest(&bytes)),
                    bytes,
                });
            }
        }
        Edit::CommitBytes(m) => {
            if let Some(k) = a.commits.iter().position(|b| b.id == a.head) {
                let bytes = mutate(&a.commits[k].bytes, m);
                let id = hex(&Sha256::digest(&bytes));
                a.head = id.clone();
                a.commits[k] = Blob { id, bytes };
            }
        }
        Edit::DropCommits => a.commits.clear(),
        Edit::DuplicateCommit => {
            if let Some(b) = a.commits.first().cloned() {
                a.commits.push(b);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

#[test]
fn the_export_imports_and_reencodes_byte_for_byte() {
    let bytes = export();
    assert_eq!(
        encode(&parsed_export()),
        bytes,
        "the test's Archive mirrors archive.rs"
    );
    let report = import_fresh(bytes).unwrap();
    assert_eq!(report.version, "j2");
    assert_eq!(report.artifacts_written, 2);
}

/// Found by `import_edited_archive`: an archive whose head commit `j2` came with a second,
/// different commit of the same version `j2` (here: the same commit with another message,
/// under its own correct hash) was accepted; both commits were stored and `ID@j2` and
/// `ID@main` disagreed. Such an archive is refused, and nothing is stored.
#[test]
fn two_commits_of_one_version_in_one_archive() {
    let mut a = parsed_export();
    let mut twin: Commit = rmp_serde::from_slice(&a.commits[0].bytes).unwrap();
    assert_eq!(twin.model_version, "j2");
    twin.message = "a twin of the head commit".into();
    a.commits.push(rehash(&twin));
    let bytes = encode(&a);

    let root = tempfile::tempdir().unwrap();
    let store = Store::temporary().unwrap();
    let models = Models::open(&store, root.path()).unwrap();
    let err = models.import(bytes.as_slice()).unwrap_err();
    assert!(err.to_string().contains("both claim version j2"), "{err}");
    assert!(models.resolve(&format!("{ID}@j2")).is_err());
}

proptest! {
    #![proptest_config(config(128))]

    /// Arbitrary bytes are refused (their checksum cannot match).
    #[test]
    fn import_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let result = import_fresh(&bytes);
        let refused = matches!(result, Err(StorageError::BadArchive { .. }));
        prop_assert!(refused, "{:?}", result);
    }

    /// Arbitrary bytes with a matching checksum reach the decoder, which refuses them.
    #[test]
    fn import_any_sealed_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(import_fresh(&seal(&body)).is_err());
    }

    /// Byte edits of a real export are refused unless they changed nothing.
    #[test]
    fn import_mutated_export(edits in mutations()) {
        let original = export();
        let bytes = mutate(original, &edits);
        let result = import_fresh(&bytes);
        if bytes == original {
            prop_assert!(result.is_ok());
        } else {
            let refused = matches!(result, Err(StorageError::BadArchive { .. }));
            prop_assert!(refused, "{:?}", result);
        }
    }

    /// Byte edits of a real export's body, sealed with a matching checksum: never a panic,
    /// never a write outside the store's directory.
    #[test]
    fn import_mutated_sealed_export(edits in mutations()) {
        let original = export();
        let body = mutate(&original[..original.len() - TRAILER], &edits);
        let _ = import_fresh(&seal(&body));
    }

    /// Structured edits of a real export: hostile names and hashes, missing, extra and edited
    /// commits and artifacts, with checksums (and commit hashes) that match.
    #[test]
    fn import_edited_archive(edits in prop::collection::vec(edit(), 1..4)) {
        let mut a = parsed_export();
        for e in &edits {
            apply(&mut a, e);
        }
        let result = import_fresh(&encode(&a));
        if let Ok(report) = &result {
            // What was accepted is what the archive says, under names the store accepts.
            prop_assert_eq!(&report.model_id, &a.model_id);
            prop_assert_eq!(report.commit.as_str(), a.head.as_str());
        }
    }
}
