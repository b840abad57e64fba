use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::tree::Tree;

fn open(dir: &Path) -> (Store, Models) {
    let store = Store::temporary().expect("store");
    let m = Models::open(&store, dir).expect("models");
    (store, m)
}

const ID: &str = "lr.0123456789";

/// A version whose parts are `(task, bytes)`, artifacts stored.
fn version(m: &Models, v: &str, parts: &[(&str, &[u8])], auc: f64) -> ModelVersion {
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
                artifact: m.put_artifact(bytes).expect("artifact"),
                bytes: bytes.len() as u64,
                params: serde_json::json!({ "lr": auc, "epochs": 3 }),
            })
            .collect(),
        metrics: BTreeMap::from([("eval/auc".to_string(), auc)]),
    }
}

/// Two commits on main: (v1, v2).
fn two(m: &Models) -> (CommitId, CommitId) {
    let a = m
        .commit(
            &version(m, "j1", &[("lr", b"w1"), ("scale", b"s")], 0.7),
            MAIN,
            "first",
            "a",
        )
        .expect("commit 1");
    let b = m
        .commit(
            &version(m, "j2", &[("lr", b"w2"), ("scale", b"s")], 0.8),
            MAIN,
            "second",
            "a",
        )
        .expect("commit 2");
    (a, b)
}

#[test]
fn artifacts_are_stored_once_and_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let h1 = m.put_artifact(b"weights").expect("put");
    let h2 = m.put_artifact(b"weights").expect("put again");
    assert_eq!(h1, h2);
    assert_eq!(m.artifact(&h1).expect("read"), b"weights");
    let path = m.object_path(&h1).expect("path");
    std::fs::write(&path, b"tampered").expect("write");
    assert!(m.artifact(&h1).is_err());
    assert!(m.artifact("../../etc/passwd").is_err());
}

#[test]
fn versions_sort_by_job_id_and_the_newest_is_found() {
    let (_s, m) = open(Path::new("/nonexistent"));
    let id = model_id("lr", &["host:b".into(), "guest:a".into()]);
    assert_eq!(id, model_id("lr", &["guest:a".into(), "host:b".into()]));
    for v in ["j0001", "j0002"] {
        m.put_version(&ModelVersion {
            model_id: id.clone(),
            version: v.into(),
            name: "lr".into(),
            party: "a".into(),
            parties: vec![],
            created_at_ms: 0,
            parts: vec![],
            metrics: BTreeMap::new(),
        })
        .expect("put");
    }
    assert_eq!(
        m.version(&id, None).expect("get").expect("some").version,
        "j0002"
    );
    assert_eq!(m.versions_of(&id).expect("list").len(), 2);
    assert_eq!(m.list().expect("list").len(), 2);
    assert!(m.version(&id, Some("j0003")).expect("get").is_none());
    assert_eq!(
        m.version(&id, Some("main~1"))
            .expect("get")
            .expect("some")
            .version,
        "j0001"
    );
}

#[test]
fn two_commits_are_in_order_on_main() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let (a, b) = two(&m);
    assert_ne!(a, b);
    let log = m.log(ID, None, false).expect("log");
    let ids: Vec<_> = log.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, vec![b.clone(), a.clone()]);
    assert_eq!(log[0].commit.parents, vec![a.clone()]);
    assert!(log[1].commit.parents.is_empty());
    assert_eq!(log[0].branches, vec!["main".to_string()]);
    assert_eq!(log[0].commit.message, "second");
    // The id is the hash of the canonical bytes.
    assert_eq!(
        Commit::id_of(&log[0].commit.canonical_bytes().expect("bytes")),
        b
    );
    // The same version cannot be committed twice; the shared artifact is stored once.
    let again = m.commit(&version(&m, "j2", &[], 0.1), MAIN, "x", "a");
    assert!(
        matches!(again, Err(StorageError::VersionExists { .. })),
        "{again:?}"
    );
    let files = std::fs::read_dir(m.objects_dir())
        .expect("objects")
        .map(|d| {
            std::fs::read_dir(d.expect("entry").path())
                .expect("dir")
                .count()
        })
        .sum::<usize>();
    assert_eq!(files, 3, "w1, w2 and s once");
    // A commit on another branch starts it; its parent is that branch's head (none).
    let c = m
        .commit(&version(&m, "j3", &[("lr", b"w3")], 0.9), "exp", "try", "a")
        .expect("commit on exp");
    assert_eq!(m.head(ID, "exp").expect("head"), Some(c));
    assert_eq!(m.head(ID, MAIN).expect("head"), Some(b));
    assert_eq!(m.log(ID, None, true).expect("all").len(), 3);
    // Missing artifacts are refused.
    let mut v = version(&m, "j4", &[], 0.1);
    v.parts.push(ModelPart {
        artifact: sha256_hex(b"never stored"),
        ..version(&m, "x", &[("t", b"w1")], 0.1).parts[0].clone()
    });
    assert!(matches!(
        m.commit(&v, MAIN, "m", "a"),
        Err(StorageError::MissingArtifact { .. })
    ));
}

#[test]
fn tag_rollback_and_roll_forward_are_in_the_reflog() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let (a, b) = two(&m);
    assert_eq!(
        m.tag(&format!("{ID}@j1"), "good", "AUC 0.7", "alice")
            .expect("tag"),
        a
    );
    assert_eq!(m.rollback(ID, MAIN, "good", "alice").expect("rollback"), a);
    assert_eq!(m.resolve(&format!("{ID}@main")).expect("resolve").0, a);
    assert_eq!(m.resolve(ID).expect("bare id").0, a);
    assert_eq!(m.version(ID, None).expect("v").expect("some").version, "j1");
    let log = m.log(ID, None, false).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].tags, vec!["good".to_string()]);
    assert_eq!(m.log(ID, None, true).expect("all").len(), 2);

    let reflog = m.reflog(ID, Some("heads/main")).expect("reflog");
    assert_eq!(reflog.len(), 3, "two commits and the rollback");
    assert_eq!(reflog[0].old, Some(b.clone()));
    assert_eq!(reflog[0].new, Some(a.clone()));
    assert_eq!(reflog[0].who, "alice");
    assert!(reflog[0].why.contains("rollback"), "{}", reflog[0].why);
    assert_eq!(m.reflog(ID, None).expect("all")[1].ref_name, "tags/good");

    // Roll forward by hash prefix; the reflog grows, newest first.
    assert_eq!(
        m.rollback(ID, MAIN, &b.as_str()[..7], "bob")
            .expect("forward"),
        b
    );
    assert_eq!(m.resolve(ID).expect("main").0, b);
    let reflog = m.reflog(ID, Some("heads/main")).expect("reflog");
    assert_eq!(reflog.len(), 4);
    assert_eq!(
        (reflog[0].old.clone(), reflog[0].new.clone()),
        (Some(a.clone()), Some(b.clone()))
    );

    // Tags are immutable until deleted.
    let again = m.tag(&format!("{ID}@j2"), "good", "", "bob");
    assert!(
        matches!(again, Err(StorageError::RefExists { .. })),
        "{again:?}"
    );
    assert_eq!(m.delete_tag(ID, "good", "bob").expect("delete tag"), a);
    assert_eq!(
        m.tag(&format!("{ID}@j2"), "good", "", "bob")
            .expect("retag"),
        b
    );

    // Branch from a revision; diff.
    assert_eq!(
        m.branch(ID, "exp", Some("main~1"), "bob").expect("branch"),
        a
    );
    let d = m
        .diff(&format!("{ID}@exp"), &format!("{ID}@main"))
        .expect("diff");
    assert_eq!(d.metrics.len(), 1);
    assert_eq!(d.metrics[0].kind, ChangeKind::Changed);
    assert_eq!(d.metrics[0].new, Some(0.8));
    assert_eq!(
        d.artifacts
            .iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>(),
        ["lr/guest"]
    );
    assert_eq!(
        d.params.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
        ["lr/lr", "scale/lr"]
    );
}

#[test]
fn delete_is_refused_while_referenced_and_collects_artifacts() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let (a, b) = two(&m);
    m.tag(&format!("{ID}@j1"), "v1", "", "a").expect("tag");
    let err = m.delete(ID, "j1", false).expect_err("tagged");
    assert!(
        matches!(&err, StorageError::RefInUse { refs, .. } if refs == &["tags/v1".to_string()]),
        "{err}"
    );
    assert!(matches!(
        m.delete(ID, "j2", false),
        Err(StorageError::RefInUse { .. })
    ));
    assert!(matches!(
        m.delete(ID, "j9", false),
        Err(StorageError::RevNotFound { .. })
    ));
    assert!(matches!(
        m.delete("nope", "j1", false),
        Err(StorageError::ModelNotFound { .. })
    ));
    // A third commit frees j2, whose own artifact goes; the shared one stays.
    m.commit(
        &version(&m, "j3", &[("lr", b"w3"), ("scale", b"s")], 0.9),
        MAIN,
        "third",
        "a",
    )
    .expect("commit 3");
    let w2 = sha256_hex(b"w2");
    let r = m.delete(ID, "j2", false).expect("delete j2");
    assert_eq!(r.commit, b);
    assert_eq!(r.artifacts_removed, vec![w2.clone()]);
    assert!(!m.object_path(&w2).expect("path").exists());
    assert!(m.artifact(&sha256_hex(b"s")).is_ok());
    // Forced: the tag goes, in the reflog.
    let r = m.delete(ID, "j1", true).expect("forced");
    assert_eq!((r.commit, r.refs), (a, vec!["tags/v1".to_string()]));
    assert_eq!(m.reflog(ID, Some("tags/v1")).expect("reflog")[0].new, None);
    // The log stops at the deleted parent.
    assert_eq!(m.log(ID, None, false).expect("log").len(), 1);
}

#[test]
fn export_import_gives_the_same_commit_and_artifacts() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let (_, b) = two(&m);
    let mut archive = Vec::new();
    let (id, size) = m
        .export(&format!("{ID}@main"), &mut archive)
        .expect("export");
    assert_eq!((id.clone(), size), (b.clone(), archive.len() as u64));

    let dir2 = tempfile::tempdir().expect("tmp");
    let (_s2, m2) = open(dir2.path());
    let r = m2.import(archive.as_slice()).expect("import");
    assert_eq!(r.commit, b);
    assert_eq!(r.version, "j2");
    assert_eq!(r.artifacts_written, 2);
    assert_eq!(r.branch_created.as_deref(), Some("main"));
    assert!(!r.already_present);
    let (id2, c2) = m2.resolve(ID).expect("resolve");
    let (_, c1) = m.resolve(ID).expect("resolve");
    assert_eq!((id2, &c2), (b.clone(), &c1));
    for p in &c1.parts {
        assert_eq!(
            m2.artifact(&p.artifact).expect("artifact"),
            m.artifact(&p.artifact).expect("a")
        );
    }
    // The parent is named but not shipped: the log stops there; main~1 is beyond history.
    assert_eq!(m2.log(ID, None, false).expect("log").len(), 1);
    assert!(matches!(
        m2.resolve(&format!("{ID}@main~1")),
        Err(StorageError::BeyondHistory {
            wanted: 1,
            available: 0,
            ..
        })
    ));
    // Importing again changes nothing.
    let again = m2.import(archive.as_slice()).expect("again");
    assert!(again.already_present);
    assert_eq!(again.artifacts_written, 0);
}

#[test]
fn a_corrupted_archive_is_refused_and_nothing_stored() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    two(&m);
    let mut archive = Vec::new();
    m.export(ID, &mut archive).expect("export");

    let dir2 = tempfile::tempdir().expect("tmp");
    let (s2, m2) = open(dir2.path());
    for i in 0..archive.len() {
        let mut bad = archive.clone();
        bad[i] ^= 0x01;
        let err = m2.import(bad.as_slice()).expect_err("corrupt");
        assert!(
            matches!(err, StorageError::BadArchive { .. }),
            "byte {i}: {err}"
        );
    }
    for bad in [&archive[..archive.len() - 1], &archive[..10], &[][..]] {
        assert!(matches!(
            m2.import(bad),
            Err(StorageError::BadArchive { .. })
        ));
    }
    // A well-checksummed archive with garbage inside is refused too.
    let mut junk = b"not msgpack".to_vec();
    junk.extend_from_slice(&Sha256::digest(&junk));
    assert!(matches!(
        m2.import(junk.as_slice()),
        Err(StorageError::BadArchive { .. })
    ));
    assert!(!m2.has_model(ID).expect("has"));
    assert_eq!(s2.count(TreeName::Models).expect("count"), 0);
    assert!(!m2.objects_dir().exists());
}

#[test]
fn revision_parsing_edge_cases() {
    let spec = |base: &str, back| RevSpec {
        base: base.into(),
        back,
    };
    assert_eq!(parse_rev("m").expect("bare"), ("m".into(), spec("main", 0)));
    assert_eq!(parse_rev("m@v1").expect("tag"), ("m".into(), spec("v1", 0)));
    assert_eq!(
        parse_rev("m@main~2").expect("~2"),
        ("m".into(), spec("main", 2))
    );
    assert_eq!(
        parse_rev("m@main~").expect("~"),
        ("m".into(), spec("main", 1))
    );
    assert_eq!(
        parse_rev("m@main~1~2").expect("~1~2"),
        ("m".into(), spec("main", 3))
    );
    assert_eq!(
        parse_rev("m@main~0").expect("~0"),
        ("m".into(), spec("main", 0))
    );
    for bad in [
        "",
        "m@",
        "@main",
        "m@~1",
        "m@a@b",
        "m@main~x",
        "m@main~-1",
        "m@main~99999999999999999999999",
        "m@main~18446744073709551615~1",
        "m@a/b",
        "m@.hidden",
        "m/x@main",
        "m@ma in",
        "m@é",
    ] {
        assert!(
            matches!(parse_rev(bad), Err(StorageError::BadRev { .. })),
            "{bad:?} should be refused"
        );
    }
    assert!(valid_ref_name("v1.0-rc_1"));
    assert!(!valid_ref_name(&"x".repeat(65)));

    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    let (a, b) = two(&m);
    let r = |rev: &str| m.resolve(&format!("{ID}@{rev}"));
    assert_eq!(r("main~1").expect("main~1").0, a);
    assert_eq!(r("j2~1").expect("version~1").0, a);
    assert_eq!(r(&b.as_str()[..7]).expect("7 hex").0, b);
    assert_eq!(
        r(&b.as_str()[..7].to_ascii_uppercase()).expect("upper").0,
        b
    );
    assert_eq!(r(b.as_str()).expect("full").0, b);
    assert!(matches!(
        r(&b.as_str()[..6]),
        Err(StorageError::RevNotFound { .. })
    ));
    assert!(matches!(r("nope"), Err(StorageError::RevNotFound { .. })));
    assert!(matches!(
        r("main~2"),
        Err(StorageError::BeyondHistory {
            wanted: 2,
            available: 1,
            ..
        })
    ));
    assert!(matches!(
        m.resolve("other@main"),
        Err(StorageError::ModelNotFound { .. })
    ));
    assert!(matches!(
        m.resolve("bad/id"),
        Err(StorageError::BadRev { .. })
    ));
    assert!(matches!(
        m.resolve_in(ID, "other@main"),
        Err(StorageError::BadRev { .. })
    ));
    // A tag and a branch of one name on different commits are ambiguous; on one commit, not.
    m.tag(&format!("{ID}@j1"), "x", "", "a").expect("tag");
    m.branch(ID, "x", Some("j2"), "a").expect("branch");
    let err = r("x").expect_err("ambiguous");
    assert!(
        matches!(&err, StorageError::AmbiguousRev { candidates, .. } if candidates.len() == 2),
        "{err}"
    );
    m.tag(&format!("{ID}@j2"), "y", "", "a").expect("tag");
    m.branch(ID, "y", Some("j2"), "a").expect("branch");
    assert_eq!(r("y").expect("same target").0, b);
}

#[test]
fn check_move_refuses_what_apply_move_refuses() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_s, m) = open(dir.path());
    two(&m);
    m.tag(&format!("{ID}@j1"), "v1", "", "a").expect("tag");
    let tag = |name: &str, rev: &str| RefMove::Tag {
        model_id: ID.into(),
        name: name.into(),
        rev: rev.into(),
        message: String::new(),
        who: "a".into(),
    };
    let branch = |name: &str, from: Option<&str>| RefMove::Branch {
        model_id: ID.into(),
        name: name.into(),
        from: from.map(Into::into),
        who: "a".into(),
    };
    let rollback = |model: &str, b: &str, to: &str| RefMove::Rollback {
        model_id: model.into(),
        branch: b.into(),
        to: to.into(),
        who: "a".into(),
    };
    let refused = [
        tag("v1", "j2"),
        tag("bad/name", "j2"),
        tag(".x", "j2"),
        tag("v2", "j9"),
        tag("v2", "main~5"),
        branch("main", None),
        branch("exp", Some("nope")),
        rollback(ID, "nope", "j1"),
        rollback(ID, MAIN, "j9"),
        rollback("other", MAIN, "j1"),
        rollback(ID, MAIN, "other@j1"),
    ];
    let before = m.reflog(ID, None).expect("reflog").len();
    for op in &refused {
        let check = m.check_move(op).expect_err("check refuses");
        let apply = m.apply_move(op).expect_err("apply refuses");
        assert_eq!(
            std::mem::discriminant(&check),
            std::mem::discriminant(&apply),
            "{op:?}: {check} vs {apply}"
        );
    }
    assert_eq!(m.reflog(ID, None).expect("reflog").len(), before);
    for op in [
        tag("v2", "j2"),
        branch("exp", Some("v1")),
        rollback(ID, MAIN, "v1"),
    ] {
        // Ops travel between parties.
        let wire = rmp_serde::to_vec_named(&op).expect("encode");
        let op: RefMove = rmp_serde::from_slice(&wire).expect("decode");
        m.check_move(&op).expect("check accepts");
        m.apply_move(&op).expect("apply accepts");
    }
    assert_eq!(m.reflog(ID, None).expect("reflog").len(), before + 3);
}

#[test]
fn the_first_layout_is_migrated_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("db");
    {
        let store = Store::open(&db, &crate::StoreOptions::default()).expect("store");
        let legacy: Tree<ModelVersion> = store.tree(TreeName::Models).expect("tree");
        let m = Models::open(&store, dir.path()).expect("models");
        for v in ["j2", "j1"] {
            let mut mv = version(&m, v, &[("lr", v.as_bytes())], 0.5);
            mv.created_at_ms = 0;
            legacy.put(format!("{ID}@{v}"), &mv).expect("legacy put");
        }
        store.flush().expect("flush");
    }
    let store = Store::open(&db, &crate::StoreOptions::default()).expect("reopen");
    let m = Models::open(&store, dir.path()).expect("models");
    let log = m.log(ID, None, false).expect("log");
    let versions: Vec<_> = log
        .iter()
        .map(|e| e.commit.model_version.as_str())
        .collect();
    assert_eq!(versions, ["j2", "j1"]);
    assert_eq!(m.versions_of(ID).expect("versions").len(), 2);
    drop(m);
    drop(store);
    let store = Store::open(&db, &crate::StoreOptions::default()).expect("reopen again");
    let m = Models::open(&store, dir.path()).expect("models");
    assert_eq!(m.resolve(ID).expect("main").1.model_version, "j2");
}
