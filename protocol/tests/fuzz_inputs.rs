//! Property tests (fuzzing) of everything a partner or a file feeds the protocol crate: job
//! files, CSV uploads, control frames, peer messages and replicated records, record keys and
//! names. None of them may panic; garbage must come back as an error.
//!
//! Each property runs a bounded number of cases; set `CONSORT_FUZZ_CASES` to run more.
//! Failing seeds are persisted by proptest next to this file and replayed on every run.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Component, Path};

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

use consort_protocol::data::{CsvOptions, parse_csv};
use consort_protocol::frame::encode_frame;
use consort_protocol::job::{
    ComponentSchema, JobSpec, MAX_DEPTH, MAX_JOB_BYTES, MAX_NODES, ParamSpec, ParamType, Ports,
    Role, validate,
};
use consort_protocol::jobs::{
    self, CHUNK_BYTES, ChannelMessage, ChunkPart, Decision, DecisionRecord, JobId, JobRecord,
    MAX_CHANNEL_MESSAGE_BYTES, RecordKey, RerunRecord, RunState, StopRecord, TaskStateRecord,
};
use consort_protocol::names;
use consort_protocol::peer::{
    DigestEntry, GossipEnvelope, PackedRecords, PeerRequest, PeerRequestBody, PeerResponse, Record,
};
use consort_protocol::{
    CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, FrameCodec, PartyName, Request,
    ServerMessage,
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

/// [`config`] for slow properties whose inputs vary little: a long run gives them a
/// hundredth of `CONSORT_FUZZ_CASES`.
fn slow_config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default * 100).div_ceil(100).max(default),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

const EXAMPLES: [(&str, &str); 6] = [
    (
        "breast_hetero_lr",
        include_str!("../../examples/breast_hetero_lr.yaml"),
    ),
    (
        "breast_hetero_predict",
        include_str!("../../examples/breast_hetero_predict.yaml"),
    ),
    (
        "breast_homo_lr",
        include_str!("../../examples/breast_homo_lr.yaml"),
    ),
    (
        "default_credit_hetero_lr",
        include_str!("../../examples/default_credit_hetero_lr.yaml"),
    ),
    (
        "default_credit_homo_lr",
        include_str!("../../examples/default_credit_homo_lr.yaml"),
    ),
    ("smoke", include_str!("../../examples/smoke.yaml")),
];

const CSV_FILES: [&str; 5] = [
    include_str!("../../examples/data/breast_hetero_guest.csv"),
    include_str!("../../examples/data/breast_hetero_host.csv"),
    include_str!("../../examples/data/breast_homo_guest.csv"),
    include_str!("../../examples/data/breast_homo_host.csv"),
    include_str!("../../examples/data/breast_homo_test.csv"),
];

/// The first 20 lines of an example CSV file.
fn csv_head(i: usize) -> String {
    let mut out = String::new();
    for line in CSV_FILES[i % CSV_FILES.len()].lines().take(20) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The component schemas of `protocol/src/job/tests.rs`, plus the other components the example
/// job files name, so that the examples validate and mutations reach deep into validation.
fn registry(name: &str) -> Option<ComponentSchema> {
    let all = vec![Role::Guest, Role::Host, Role::Arbiter];
    let schema = |roles: Vec<Role>, inputs, outputs, params| ComponentSchema {
        name: name.into(),
        roles,
        inputs,
        outputs,
        params,
    };
    match name {
        "reader" => Some(schema(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec![]),
            Ports::Named(vec!["data"]),
            Some(vec![ParamSpec::required("table", ParamType::Str)]),
        )),
        "psi" => Some(schema(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec!["data"]),
            Ports::Named(vec!["data"]),
            Some(vec![]),
        )),
        "hetero_lr" | "homo_lr" => Some(schema(
            all,
            Ports::Named(vec!["train_data", "test_data", "data"]),
            Ports::Named(vec!["train_output", "predict_output", "data", "model"]),
            Some(vec![
                ParamSpec::with_default("max_iter", ParamType::Int, json!(10)),
                ParamSpec::with_default("learning_rate", ParamType::Float, json!(0.1)),
                ParamSpec::optional("alpha", ParamType::Float),
                ParamSpec::optional("batch_size", ParamType::Int),
                ParamSpec::optional("key_bits", ParamType::Int),
                ParamSpec::optional("local_epochs", ParamType::Int),
                ParamSpec::optional("rounds", ParamType::Int),
            ]),
        )),
        "evaluation" => Some(schema(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec!["data"]),
            Ports::Named(vec!["metrics"]),
            Some(vec![]),
        )),
        "noop" | "relay" => Some(schema(
            all,
            Ports::Any,
            Ports::Named(vec!["data"]),
            Some(vec![]),
        )),
        "sum" => Some(schema(
            all,
            Ports::Any,
            Ports::Named(vec!["data"]),
            Some(vec![
                ParamSpec::required("value", ParamType::Int),
                ParamSpec::optional("expect", ParamType::Int),
            ]),
        )),
        "sleep" => Some(schema(
            all,
            Ports::Any,
            Ports::Named(vec!["data"]),
            Some(vec![ParamSpec::required("seconds", ParamType::Float)]),
        )),
        n if n.starts_with("script:") => Some(schema(all, Ports::Any, Ports::Any, None)),
        _ => None,
    }
}

/// Parses `text` as a job file and, when it parses, validates it; checks what a valid plan
/// promises. Never panics (that is the property).
fn parse_and_validate(text: &str) {
    let Ok(spec) = JobSpec::parse(text) else {
        return;
    };
    let Ok(plan) = validate(&spec, &registry) else {
        return;
    };
    // A valid plan: every task once, each after its upstream tasks, every name a plain name.
    assert_eq!(plan.tasks.len(), spec.tasks.len());
    assert!(names::check("job name", &plan.name).is_ok());
    for (i, t) in plan.tasks.iter().enumerate() {
        assert!(names::check("task name", &t.name).is_ok(), "{:?}", t.name);
        for up in &t.upstream {
            assert!(
                plan.tasks[..i].iter().any(|u| &u.name == up),
                "task {} before its upstream {up}",
                t.name
            );
        }
        for (input, (_, output)) in &t.inputs {
            assert!(names::check("input", input).is_ok(), "{input:?}");
            assert!(names::check("output", output).is_ok(), "{output:?}");
        }
        for run in &t.runs {
            assert!(plan.parties[&run.role].contains(&run.party));
        }
    }
}

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
    Swap(Index, Index),
}

/// Byte sequences that mean something to YAML, CSV or MessagePack.
const TOKENS: &[&[u8]] = &[
    // YAML
    b"&a ",
    b"*a",
    b"!!str ",
    b"!t ",
    b"{",
    b"}",
    b"[",
    b"]",
    b": ",
    b"- ",
    b"? ",
    b"\n",
    b"\n  ",
    b"\t",
    b"---\n",
    b"...\n",
    b"%YAML 1.2\n",
    b"<<: *a\n",
    b"|\n",
    b">-\n",
    b"'",
    b"\"",
    b"\\",
    b"#",
    b"~",
    b"null",
    b".inf",
    b"1e999",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"0x",
    b"\xef\xbb\xbf",
    b"\0",
    b"..",
    b"/",
    b"../../etc/passwd",
    b"script:",
    // CSV
    b",",
    b";",
    b"\r\n",
    b"\"\"",
    b"NaN",
    b"inf",
    b"-0",
    b"1e308",
    b"1e309",
    // MessagePack: nil, never-used, huge array/map/str/bin lengths, 64-bit numbers, ext
    b"\xc0",
    b"\xc1",
    b"\xc2",
    b"\xdc\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xde\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xd9\xff",
    b"\xda\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc4\xff",
    b"\xc5\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xd4\x00\x00",
    b"\xc7\xff\x01",
    b"\x9f",
    b"\x8f",
    b"\xbf",
    b"\xa4kind",
    b"\xa7unknown",
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
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

/// `base` with `edits` applied in order.
fn mutate(base: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    for m in edits {
        let len = b.len();
        // An index into the bytes, or 0 when there are none; `at_end` may also be `len`.
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
            Mutation::Swap(x, y) if len > 0 => b.swap(at(x), at(y)),
            _ => {}
        }
    }
    b
}

/// Any text: arbitrary characters, mostly ASCII.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => proptest::char::range(' ', '~'),
            1 => prop::sample::select(vec!['\n', '\t', '\r', '\0', '\u{feff}', '\u{85}', 'é']),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(String::from_iter)
}

// ---------------------------------------------------------------------------------------------
// YAML-ish documents

/// A YAML node as a generator sees it; rendered to text by [`render`].
#[derive(Debug, Clone)]
enum Y {
    Scalar(String),
    Block(Vec<(String, Y)>),
    List(Vec<Y>),
    FlowMap(Vec<(String, Y)>),
    FlowSeq(Vec<Y>),
    Anchored(String, Box<Y>),
    Tagged(String, Box<Y>),
    Alias(String),
}

const SCALARS: &[&str] = &[
    "a",
    "name",
    "tasks",
    "parties",
    "component",
    "noop",
    "guest",
    "bank-a",
    "~",
    "null",
    "true",
    "1",
    "-1",
    "1.5",
    "1e999",
    ".nan",
    "0x1f",
    "''",
    "\"\"",
    "\"\\u0000\"",
    "\"a\\nb\"",
    "'it''s'",
    "..",
    "/etc/passwd",
    "a.b",
    "script:x",
    "<<",
    "|",
    ">",
    "@",
    "`",
    "%",
    "?",
    "-",
    ":",
    "é",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(SCALARS).prop_map(str::to_owned),
        1 => "[a-z0-9_.:-]{1,12}",
        1 => text(12),
    ]
}

fn yaml_node() -> impl Strategy<Value = Y> {
    let leaf = prop_oneof![
        6 => scalar().prop_map(Y::Scalar),
        1 => "[a-c]".prop_map(Y::Alias),
    ];
    leaf.prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            3 => prop::collection::vec((scalar(), inner.clone()), 0..6).prop_map(Y::Block),
            2 => prop::collection::vec(inner.clone(), 0..6).prop_map(Y::List),
            2 => prop::collection::vec((scalar(), inner.clone()), 0..5).prop_map(Y::FlowMap),
            2 => prop::collection::vec(inner.clone(), 0..5).prop_map(Y::FlowSeq),
            1 => ("[a-c]", inner.clone()).prop_map(|(a, y)| Y::Anchored(a, Box::new(y))),
            1 => (prop::sample::select(vec!["!!str", "!!map", "!t", "!<tag:x>"]), inner)
                .prop_map(|(t, y)| Y::Tagged(t.to_owned(), Box::new(y))),
        ]
    })
}

/// `y` as YAML text at indentation `indent` (block nodes start on a new line).
fn render(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Scalar(s) => out.push_str(s),
        Y::Alias(a) => {
            out.push('*');
            out.push_str(a);
        }
        Y::Anchored(a, inner) | Y::Tagged(a, inner) => {
            if matches!(y, Y::Anchored(..)) {
                out.push('&');
            }
            out.push_str(a);
            out.push(' ');
            render(inner, indent, out);
        }
        Y::Block(entries) if entries.is_empty() => out.push_str("{}"),
        Y::List(items) if items.is_empty() => out.push_str("[]"),
        Y::Block(entries) => {
            for (k, v) in entries {
                out.push('\n');
                out.push_str(&pad);
                out.push_str(k);
                out.push_str(": ");
                render(v, indent + 2, out);
            }
        }
        Y::List(items) => {
            for v in items {
                out.push('\n');
                out.push_str(&pad);
                out.push_str("- ");
                render(v, indent + 2, out);
            }
        }
        Y::FlowMap(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                render(v, indent, out);
            }
            out.push('}');
        }
        Y::FlowSeq(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(v, indent, out);
            }
            out.push(']');
        }
    }
}

/// A generated node and its text: the whole document, or the value of a parameter of a job
/// whose component takes any parameter (so that it reaches validation).
fn yaml_doc() -> impl Strategy<Value = (Y, String)> {
    (yaml_node(), 0..3u8).prop_map(|(y, how)| {
        let mut out = String::from(match how {
            0 => "",
            1 => "---\n",
            _ => "name: j\nparties: {guest: [a]}\ntasks:\n  x:\n    component: script:x\n    params:\n      p: ",
        });
        render(&y, if how == 2 { 8 } else { 0 }, &mut out);
        out.push('\n');
        (y, out)
    })
}

fn has_anchor_alias_or_tag(y: &Y) -> bool {
    match y {
        Y::Scalar(_) => false,
        Y::Anchored(..) | Y::Tagged(..) | Y::Alias(_) => true,
        Y::Block(e) | Y::FlowMap(e) => e.iter().any(|(_, v)| has_anchor_alias_or_tag(v)),
        Y::List(v) | Y::FlowSeq(v) => v.iter().any(has_anchor_alias_or_tag),
    }
}

/// Whether every scalar is plain text that cannot hide an anchor, alias or tag in a comment,
/// a quoted string or a block scalar.
fn plain(y: &Y) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./~".contains(c))
    };
    match y {
        Y::Scalar(s) => ok(s),
        Y::Alias(_) => true,
        Y::Anchored(_, v) | Y::Tagged(_, v) => plain(v),
        Y::Block(e) | Y::FlowMap(e) => e.iter().all(|(k, v)| ok(k) && plain(v)),
        Y::List(v) | Y::FlowSeq(v) => v.iter().all(plain),
    }
}

/// Nested collections `depth` deep, in one of several styles (some unbalanced).
fn deep(style: u8, depth: usize) -> String {
    match style % 6 {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}x{}", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => (0..depth)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect(),
        3 => (0..depth)
            .map(|i| format!("{}-\n", " ".repeat(i)))
            .collect(),
        4 => "[".repeat(depth),
        _ => format!(
            "name: j\ntasks: {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Job-shaped documents

const NAME_POOL: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "reader",
    "lr",
    "x.y",
    "..",
    ".hidden",
    "/etc/passwd",
    "a/b",
    "",
    "a b",
    "é",
    "bank-a",
    "insurer-b",
    "Bad_Name",
];

fn pool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAME_POOL).prop_map(str::to_owned),
        1 => "[a-z0-9._/-]{0,70}",
    ]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        pool_name().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(pool_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn params() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            "table",
            "max_iter",
            "learning_rate",
            "value",
            "expect",
            "seconds",
            "colour",
        ])
        .prop_map(str::to_owned),
        json_value(),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn task_doc() -> impl Strategy<Value = Value> {
    let component = prop_oneof![
        prop::sample::select(vec![
            "reader",
            "psi",
            "hetero_lr",
            "homo_lr",
            "evaluation",
            "noop",
            "relay",
            "sum",
            "sleep",
            "script:echo",
            "frobnicate",
        ])
        .prop_map(str::to_owned),
        pool_name(),
    ];
    let role = prop::sample::select(vec!["guest", "host", "arbiter", "boss", ""]);
    let source = (
        pool_name(),
        prop::sample::select(vec!["data", "model", "x", ""]),
    )
        .prop_map(|(t, o)| format!("{t}.{o}"));
    (
        component,
        prop::option::of(prop::collection::vec(
            role.clone().prop_map(Value::from),
            0..4,
        )),
        prop::collection::btree_map(pool_name(), source.prop_map(Value::from), 0..3),
        prop::collection::vec(pool_name().prop_map(Value::from), 0..3),
        params(),
        prop::collection::btree_map(role.prop_map(str::to_owned), params(), 0..2),
        prop::collection::btree_map(pool_name(), params(), 0..2),
        prop::option::of((
            pool_name(),
            prop::option::of(pool_name()),
            prop::option::of(pool_name()),
        )),
        any::<Index>(),
    )
        .prop_map(
            |(component, roles, inputs, deps, params, role_params, party_params, model, junk)| {
                let mut t = serde_json::Map::new();
                t.insert("component".into(), component.into());
                if let Some(r) = roles {
                    t.insert("roles".into(), r.into());
                }
                t.insert("inputs".into(), Value::Object(inputs.into_iter().collect()));
                t.insert("depends_on".into(), deps.into());
                t.insert("params".into(), params);
                t.insert(
                    "role_params".into(),
                    Value::Object(role_params.into_iter().collect()),
                );
                t.insert(
                    "party_params".into(),
                    Value::Object(party_params.into_iter().collect()),
                );
                if let Some((id, version, rev)) = model {
                    t.insert(
                        "model".into(),
                        json!({"id": id, "version": version, "rev": rev}),
                    );
                }
                // Now and then a key the schema does not know.
                if junk.index(16) == 0 {
                    t.insert("retries".into(), json!(2));
                }
                Value::Object(t)
            },
        )
}

fn job_doc() -> impl Strategy<Value = Value> {
    let parties = prop::collection::btree_map(
        prop::sample::select(vec!["guest", "host", "arbiter", "boss"]).prop_map(str::to_owned),
        prop::collection::vec(pool_name(), 0..3),
        0..4,
    );
    let conf = prop::option::of((
        any::<u32>(),
        prop_oneof![Just(0u64), any::<u64>(), 1u64..10_000],
        prop::option::of(pool_name()),
    ));
    (
        pool_name(),
        parties,
        conf,
        prop::collection::btree_map(pool_name(), task_doc(), 0..6),
    )
        .prop_map(|(name, parties, conf, tasks)| {
            let mut doc = json!({
                "name": name,
                "parties": parties,
                "tasks": Value::Object(tasks.into_iter().collect()),
            });
            if let Some((retries, timeout, branch)) = conf {
                doc["conf"] = json!({
                    "auto_retries": retries,
                    "task_timeout_s": timeout,
                    "model": {"branch": branch, "message": "m"},
                });
            }
            doc
        })
}

// ---------------------------------------------------------------------------------------------
// Peer and control messages

fn party(s: &str) -> PartyName {
    PartyName::new(s).unwrap()
}

fn job_id() -> JobId {
    JobId::mint(1_700_000_000_000, 0xdead_beef)
}

fn sample_record() -> Record {
    Record {
        origin: party("bank-a"),
        key: jobs::task_key(&job_id(), "lr", 1, Role::Guest),
        version: 3,
        written_at_ms: 1_700_000_000_123,
        value: rmp_serde::to_vec_named(&TaskStateRecord {
            v: 1,
            state: RunState::Running,
            started_at_ms: Some(1),
            ended_at_ms: None,
            error: None,
        })
        .unwrap(),
        audience: vec![party("bank-a"), party("insurer-b")].into(),
        signature: vec![7; 64],
    }
}

fn sample_channel(part: bool) -> ChannelMessage {
    ChannelMessage {
        v: 1,
        job: job_id(),
        task: "lr".into(),
        attempt: 1,
        tag: "lr.grad".into(),
        from_role: Role::Guest,
        from: party("bank-a"),
        to_role: Role::Host,
        to: party("insurer-b"),
        seq: 9,
        payload: vec![1, 2, 3, 4],
        part: part.then_some(ChunkPart {
            index: 1,
            count: 3,
            total: 2 * CHUNK_BYTES as u64 + 4,
            offset: CHUNK_BYTES as u64,
        }),
    }
}

fn named<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

/// Valid encodings of every peer and job message, to mutate.
fn peer_samples() -> Vec<Vec<u8>> {
    let a = party("bank-a");
    let req = |body| PeerRequest {
        from: a.clone(),
        body,
    };
    vec![
        named(&req(PeerRequestBody::Ping {
            version: "0.1.0".into(),
        })),
        named(&req(PeerRequestBody::Digest {
            entries: vec![DigestEntry {
                origin: a.clone(),
                key: "job/x".into(),
                version: 2,
            }],
            after: Some(b"bank-a/job".to_vec()),
            until: None,
        })),
        named(&req(PeerRequestBody::Push {
            records: PackedRecords::of(&[sample_record()]),
        })),
        named(&req(PeerRequestBody::Echo { data: vec![0; 8] })),
        named(&req(PeerRequestBody::App {
            topic: jobs::CHANNEL_TOPIC.into(),
            body: named(&sample_channel(true)),
        })),
        named(&PeerResponse::Pong {
            party: a.clone(),
            version: "0.1.0".into(),
        }),
        named(&PeerResponse::Records {
            records: vec![sample_record(), sample_record()],
            truncated: true,
        }),
        named(&PeerResponse::Error {
            message: "no".into(),
        }),
        named(&sample_record()),
        named(&GossipEnvelope {
            v: 1,
            record: sample_record(),
        }),
        named(&sample_channel(false)),
        named(&sample_channel(true)),
        named(&JobRecord {
            v: 1,
            job_id: job_id(),
            initiator: a.clone(),
            spec: EXAMPLES[0].1.into(),
            submitted_at_ms: 5,
        }),
        named(&TaskStateRecord {
            v: 1,
            state: RunState::Failed,
            started_at_ms: Some(1),
            ended_at_ms: Some(2),
            error: Some("boom".into()),
        }),
        named(&DecisionRecord {
            v: 1,
            decision: Decision::Rejected {
                reason: "no".into(),
            },
        }),
        named(&DecisionRecord {
            v: 1,
            decision: Decision::AwaitingApproval,
        }),
        named(&StopRecord {
            v: 1,
            reason: "r".into(),
            epoch: 2,
        }),
        named(&RerunRecord {
            v: 1,
            epoch: 1,
            tasks: BTreeMap::from([("lr".to_owned(), 2)]),
        }),
    ]
}

fn control_samples() -> Vec<ClientMessage> {
    vec![
        ClientMessage::Hello {
            protocol: CONTROL_PROTOCOL.into(),
            version: CONTROL_PROTOCOL_VERSION,
            client: "consort 0.1.0".into(),
        },
        ClientMessage::Request {
            id: 1,
            request: Request::Status,
        },
        ClientMessage::Request {
            id: u64::MAX,
            request: Request::JobSubmit {
                spec: EXAMPLES[5].1.into(),
            },
        },
        ClientMessage::Request {
            id: 3,
            request: Request::RecordPut {
                key: "k".into(),
                value: vec![0xc1; 16],
            },
        },
    ]
}

/// Decodes `bytes` as `T`; when that works, the value must re-encode to something that decodes
/// to the same value.
fn decode_round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let v: T = rmp_serde::from_slice(bytes).ok()?;
    let again: T = rmp_serde::from_slice(&named(&v)).unwrap();
    assert_eq!(again, v, "re-encoding changed the value");
    Some(v)
}

fn check_record(r: &Record) {
    let _ = r.check_bounds();
    assert!(!r.signing_bytes().is_empty(), "signing bytes of {r:?}");
    assert!(r.visible_to(&r.origin) || r.check_bounds().is_err());
    let _ = RecordKey::parse(&r.key);
    let _ = jobs::is_job_key(&r.key);
}

fn check_channel(m: &ChannelMessage) {
    let _ = m.mailbox_key();
    let _ = jobs::valid_tag(&m.tag);
    if let Some(p) = &m.part {
        let _ = p.check(m.payload.len());
    }
}

/// Every peer and job message type `bytes` could be, decoded and looked at.
fn decode_everything(bytes: &[u8]) {
    if let Some(req) = decode_round_trip::<PeerRequest>(bytes) {
        match &req.body {
            PeerRequestBody::Push { records } => {
                if let Ok(records) = records.unpack() {
                    records.iter().for_each(check_record);
                }
            }
            PeerRequestBody::App { body, .. } => decode_everything(body),
            _ => {}
        }
    }
    if let Some(PeerResponse::Records { records, .. }) = decode_round_trip::<PeerResponse>(bytes) {
        records.iter().for_each(check_record);
    }
    if let Some(r) = decode_round_trip::<Record>(bytes) {
        check_record(&r);
        decode_everything_once(&r.value);
    }
    if let Some(g) = decode_round_trip::<GossipEnvelope>(bytes) {
        check_record(&g.record);
    }
    decode_everything_once(bytes);
}

/// The record values and channel messages (no recursion into nested bytes).
fn decode_everything_once(bytes: &[u8]) {
    if let Some(m) = decode_round_trip::<ChannelMessage>(bytes) {
        check_channel(&m);
    }
    if let Some(j) = decode_round_trip::<JobRecord>(bytes) {
        // A partner's job record carries a job file: it is parsed and validated here.
        let _ = JobId::parse(j.job_id.as_str());
        parse_and_validate(&j.spec);
    }
    if let Some(t) = decode_round_trip::<TaskStateRecord>(bytes) {
        let _ = (t.state.is_final(), t.state.as_str());
    }
    let _ = decode_round_trip::<DecisionRecord>(bytes);
    let _ = decode_round_trip::<StopRecord>(bytes);
    let _ = decode_round_trip::<RerunRecord>(bytes);
    let _ = decode_round_trip::<DigestEntry>(bytes);
}

/// A byte stream for the frame decoder: garbage, valid frames and frames with made-up lengths.
fn frame_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (0..4usize).prop_map(|i| encode_frame(&control_samples()[i], usize::MAX).unwrap()),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(len, body)| {
            let mut f = len.to_be_bytes().to_vec();
            f.extend(body);
            f
        }),
        ((0u32..300), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(len, body)| {
            let mut f = len.to_be_bytes().to_vec();
            f.extend(body.iter().take(len as usize));
            f
        }),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// Feeds `stream` to a control-socket decoder in pieces cut at `cuts`, like a socket would,
/// until the end or the first error (where the server closes the connection).
fn run_decoder(max: usize, stream: &[u8], cuts: &[Index]) -> Result<usize, ()> {
    let mut codec = FrameCodec::<ClientMessage, ServerMessage>::new(max);
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut frames = 0;
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&stream[from..to]);
        from = to;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(_) => return Err(()),
            }
        }
        // Waiting for more bytes never holds more than one frame's worth.
        assert!(
            buf.len() < 4 + max,
            "{} bytes buffered, max {max}",
            buf.len()
        );
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(_)) => frames += 1,
            Ok(None) => return Ok(frames),
            Err(_) => return Err(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

#[test]
fn the_examples_are_valid_with_the_test_registry() {
    for (name, text) in EXAMPLES {
        let spec = JobSpec::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(&spec, &registry).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    for i in 0..CSV_FILES.len() {
        parse_csv(csv_head(i).as_bytes(), &CsvOptions::default()).unwrap();
    }
    for bytes in peer_samples() {
        decode_everything(&bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Job DSL: any text parses to a spec or an error; a spec validates or reports errors.
    #[test]
    fn job_parse_any_text(s in text(400)) {
        parse_and_validate(&s);
    }

    /// Job DSL: byte edits of the example job files.
    #[test]
    fn job_parse_mutated_examples(i in 0..EXAMPLES.len(), edits in mutations()) {
        let bytes = mutate(EXAMPLES[i].1.as_bytes(), &edits);
        parse_and_validate(&String::from_utf8_lossy(&bytes));
    }

    /// Job DSL: generated YAML with anchors, aliases, tags, flow and block collections.
    #[test]
    fn job_parse_yaml_ish((y, doc) in yaml_doc()) {
        let r = JobSpec::parse(&doc);
        if has_anchor_alias_or_tag(&y) && plain(&y) {
            prop_assert!(r.is_err(), "anchor, alias or tag accepted:\n{doc}");
        }
        if let Ok(spec) = r {
            let _ = validate(&spec, &registry);
        }
    }

    /// Job DSL: nesting deeper than the limit is refused, shallower nesting comes back.
    #[test]
    fn job_parse_deep_nesting(style in any::<u8>(), depth in 0usize..4096) {
        let doc = deep(style, depth);
        let r = JobSpec::parse(&doc);
        if depth > MAX_DEPTH + 1 {
            prop_assert!(r.is_err(), "depth {depth} style {style} accepted");
        }
    }

    /// Job DSL: job-shaped documents (JSON or YAML) with hostile names, cycles, bad params.
    #[test]
    fn job_validate_generated(doc in job_doc(), as_yaml in any::<bool>()) {
        let text = if as_yaml {
            serde_yaml_ng::to_string(&doc).unwrap()
        } else {
            serde_json::to_string(&doc).unwrap()
        };
        parse_and_validate(&text);
    }

    /// CSV upload: arbitrary bytes with arbitrary options.
    #[test]
    fn csv_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        id in prop::sample::select(vec!["id", "", "y", "x0", "é"]),
        label in prop::option::of(prop::sample::select(vec!["y", "id", "", "x1"])),
        delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t'), any::<u8>()],
    ) {
        let opts = CsvOptions {
            id_column: id.into(),
            label_column: label.map(str::to_owned),
            delimiter,
        };
        if let Ok(d) = parse_csv(bytes.as_slice(), &opts) {
            prop_assert!(d.check().is_ok());
            prop_assert!(d.columns.iter().flatten().all(|v| v.is_finite()));
        }
    }

    /// CSV upload: byte edits of the heads of the example data files.
    #[test]
    fn csv_mutated_examples(
        i in 0..CSV_FILES.len(),
        edits in mutations(),
        no_label in any::<bool>(),
    ) {
        let head = csv_head(i);
        let bytes = mutate(head.as_bytes(), &edits);
        let opts = CsvOptions {
            label_column: (!no_label).then(|| "y".to_owned()),
            ..CsvOptions::default()
        };
        if let Ok(d) = parse_csv(bytes.as_slice(), &opts) {
            prop_assert!(d.check().is_ok());
            prop_assert!(d.columns.iter().flatten().all(|v| v.is_finite()));
            prop_assert!(d.labels.iter().flatten().all(|v| v.is_finite()));
        }
    }

    /// Control socket: a byte stream in arbitrary pieces with a small frame limit.
    #[test]
    fn control_frames_any_stream(
        max in 0usize..512,
        stream in frame_stream(),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let _ = run_decoder(max, &stream, &cuts);
    }

    /// Control socket: valid frames cut anywhere decode to the messages sent.
    #[test]
    fn control_frames_split_anywhere(
        which in prop::collection::vec(0..4usize, 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let samples = control_samples();
        let stream: Vec<u8> = which
            .iter()
            .flat_map(|&i| encode_frame(&samples[i], usize::MAX).unwrap())
            .collect();
        prop_assert_eq!(run_decoder(4096, &stream, &cuts), Ok(which.len()));
    }

    /// Control socket: a frame body of arbitrary bytes, and edits of valid bodies.
    #[test]
    fn control_message_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        i in 0..4usize,
        edits in mutations(),
    ) {
        let _ = rmp_serde::from_slice::<ClientMessage>(&bytes);
        let body = mutate(&named(&control_samples()[i]), &edits);
        let _ = rmp_serde::from_slice::<ClientMessage>(&body);
    }

    /// Peer messages and records: arbitrary bytes.
    #[test]
    fn peer_messages_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_everything(&bytes);
    }

    /// Peer messages and records: edits of valid encodings.
    #[test]
    fn peer_messages_mutated(i in 0..18usize, edits in mutations()) {
        let samples = peer_samples();
        let bytes = mutate(&samples[i % samples.len()], &edits);
        decode_everything(&bytes);
    }

    /// Records built from arbitrary fields: bounds and signing bytes never fail.
    #[test]
    fn record_fields_any(
        origin in "[a-z0-9][a-z0-9-]{0,62}",
        key in prop_oneof![text(40), ".{0,600}", Just(String::new())],
        version in any::<u64>(),
        written_at_ms in any::<u64>(),
        value_len in prop_oneof![0usize..64, Just(1024 * 1024), Just(1024 * 1024 + 1)],
        audience in prop::collection::vec("[a-z0-9][a-z0-9-]{0,8}", 0..4),
        big_audience in any::<bool>(),
    ) {
        let mut audience: Vec<PartyName> = audience.iter().map(|p| party(p)).collect();
        if big_audience {
            audience.extend((0..300).map(|i| party(&format!("p{i}"))));
        }
        let r = Record {
            origin: party(&origin),
            key,
            version,
            written_at_ms,
            value: vec![0xc1; value_len],
            audience: audience.into(),
            signature: vec![],
        };
        check_record(&r);
        decode_everything(&named(&r));
    }

    /// Chunk headers from a peer: any fields and length are checked without overflow, and an
    /// accepted chunk lies inside its message.
    #[test]
    fn chunk_part_any_fields(
        index in prop_oneof![any::<u32>(), 0u32..8, Just(u32::MAX)],
        count in prop_oneof![any::<u32>(), 0u32..8, Just(u32::MAX)],
        total in prop_oneof![
            any::<u64>(),
            0u64..(3 * CHUNK_BYTES as u64),
            Just(MAX_CHANNEL_MESSAGE_BYTES),
            Just(MAX_CHANNEL_MESSAGE_BYTES + 1),
            Just(u64::MAX),
        ],
        offset in prop_oneof![any::<u64>(), Just(0u64), Just(CHUNK_BYTES as u64), Just(u64::MAX)],
        len in prop_oneof![any::<usize>(), 0usize..16, Just(CHUNK_BYTES), Just(usize::MAX)],
    ) {
        let p = ChunkPart { index, count, total, offset };
        if p.check(len).is_ok() {
            prop_assert!(offset.checked_add(len as u64).is_some_and(|end| end <= total));
            prop_assert!(len <= CHUNK_BYTES && total <= MAX_CHANNEL_MESSAGE_BYTES);
        }
    }

    /// Chunk headers: every chunk an honest sender cuts is accepted.
    #[test]
    fn chunk_part_honest_chunks_pass(
        total in prop_oneof![1u64..(3 * CHUNK_BYTES as u64), 1u64..=MAX_CHANNEL_MESSAGE_BYTES],
        at in any::<Index>(),
    ) {
        let chunk = CHUNK_BYTES as u64;
        let count = total.div_ceil(chunk);
        let index = at.index(count as usize) as u64;
        let offset = index * chunk;
        let len = (total - offset).min(chunk) as usize;
        let p = ChunkPart {
            index: index as u32,
            count: count as u32,
            total,
            offset,
        };
        prop_assert_eq!(p.check(len), Ok(()));
    }

    /// Names, job ids and record keys from a peer: an accepted name is one plain path
    /// component; an accepted key renders back to a key that parses the same.
    #[test]
    fn names_ids_and_keys_any_text(
        s in prop_oneof![
            text(80),
            "[a-zA-Z0-9._/-]{0,140}",
            "j[0-9a-fA-F]{20}",
            "(job|decision|stop|rerun|task)/j[0-9a-f]{20}(/[a-z.]{0,4}(/[0-9+]{1,11}(/(guest|host|arbiter|x))?)?)?(/x)?",
        ],
    ) {
        if names::check("name", &s).is_ok() {
            prop_assert!(s.len() <= names::MAX_LEN);
            let mut parts = Path::new(&s).components();
            prop_assert!(matches!(parts.next(), Some(Component::Normal(c)) if c == s.as_str()));
            prop_assert!(parts.next().is_none());
            let dir = Path::new("/data/dir");
            prop_assert_eq!(names::join_inside(dir, &s).map(|p| p.parent().map(Path::to_owned)), Some(Some(dir.to_owned())));
        } else {
            prop_assert_eq!(names::join_inside(Path::new("/d"), &s), None);
        }
        let _ = names::check_len("model id", &s, names::MODEL_ID_MAX_LEN);
        if let Ok(p) = PartyName::new(&s) {
            prop_assert!(names::check("party", p.as_str()).is_ok(), "party {s:?}");
        }
        if let Some(j) = JobId::parse(&s) {
            prop_assert_eq!(j.as_str(), s.as_str());
            prop_assert_eq!(s.len(), 21);
        }
        if let Some(k) = RecordKey::parse(&s) {
            let again = match &k {
                RecordKey::Job(j) => jobs::job_key(j),
                RecordKey::Decision(j) => jobs::decision_key(j),
                RecordKey::Stop(j) => jobs::stop_key(j),
                RecordKey::Rerun(j) => jobs::rerun_key(j),
                RecordKey::Task { job, task, attempt, role } => {
                    jobs::task_key(job, task, *attempt, *role)
                }
            };
            prop_assert_eq!(RecordKey::parse(&again), Some(k.clone()));
            prop_assert!(jobs::is_job_key(&s));
            let _ = k.job();
        }
    }
}

proptest! {
    // Files near the size and node limits take longer to scan: fewer cases.
    #![proptest_config(slow_config(16))]

    /// Job DSL: large files, just under and over the size limit, are handled.
    #[test]
    fn job_parse_large_files(i in 0..EXAMPLES.len(), extra in 0usize..2048, over in any::<bool>()) {
        let base = EXAMPLES[i].1;
        let target = if over { MAX_JOB_BYTES + 1 + extra } else { MAX_JOB_BYTES - extra };
        let mut doc = String::from(base);
        let mut n = 0;
        while doc.len() + 40 < target {
            doc.push_str(&format!("# filler comment line number {n:>8}\n"));
            n += 1;
        }
        while doc.len() < target {
            doc.push('#');
        }
        let r = JobSpec::parse(&doc);
        if over {
            prop_assert!(r.is_err());
        }
    }

    /// Job DSL: files with about as many values as allowed, and more, are handled.
    #[test]
    fn job_parse_many_nodes(extra in 0usize..64, over in any::<bool>(), flow in any::<bool>()) {
        let n = if over { MAX_NODES + 1 + extra } else { MAX_NODES - 64 - extra };
        let doc = if flow {
            format!("name: j\nparties: {{guest: [a]}}\ntasks: [{}]\n", "1,".repeat(n))
        } else {
            format!("name: j\nparties: {{guest: [a]}}\ntasks:\n{}", "- 1\n".repeat(n))
        };
        let r = JobSpec::parse(&doc);
        if over {
            prop_assert!(r.is_err());
        }
    }
}
