//! A structural check of a job file that runs before it is deserialized.
//!
//! Job files can come from partners we do not trust. `serde_yaml_ng` expands aliases (a 40 KB
//! "billion laughs" file becomes gigabytes) and lets a repeated mapping key silently replace the
//! first one. [`check`] walks the YAML event stream (with `saphyr-parser`, which never builds the
//! document) and refuses, naming the line:
//!
//! - files larger than [`MAX_JOB_BYTES`] (checked before anything is parsed);
//! - anchors (`&a`) and aliases (`*a`), so nothing can be expanded;
//! - explicit tags (`!!str`, `!name`);
//! - more than [`MAX_NODES`] nodes or nesting deeper than [`MAX_DEPTH`];
//! - a key repeated in one mapping (keys are compared by their text: `lr` and `"lr"` are the
//!   same key) and keys that are not scalars;
//! - more than one document;
//! - anything the parser cannot read.
//!
//! Plain YAML and JSON job files pass untouched; `serde_yaml_ng` still does the real parsing.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScanError};

/// The largest job file accepted, in bytes (256 KiB).
pub const MAX_JOB_BYTES: usize = 256 * 1024;
/// The most nodes (scalars, sequences and mappings together) a job file may hold.
pub const MAX_NODES: usize = 100_000;
/// The deepest nesting of sequences and mappings a job file may have.
pub const MAX_DEPTH: usize = 64;

/// Longest key quoted in an error message, in characters.
const MAX_KEY_SHOWN: usize = 60;

/// An open collection.
enum Frame<'a> {
    Sequence,
    Mapping {
        /// Keys seen so far, with the line of each.
        keys: HashMap<Cow<'a, str>, usize>,
        /// Whether the next node is a key (else a value).
        at_key: bool,
    },
}

/// Refuses job files that are too large, too deep, use anchors, aliases or tags, repeat a key,
/// hold several documents or are not valid YAML. The error is for the user and names the line.
pub(crate) fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_JOB_BYTES {
        return Err(format!(
            "the job file is {} bytes; the limit is {MAX_JOB_BYTES} bytes ({} KiB)",
            text.len(),
            MAX_JOB_BYTES / 1024
        ));
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut nodes: usize = 0;
    let mut seen_document = false;
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| syntax_error(&e))?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                if seen_document {
                    return Err(format!(
                        "line {line}: a job file holds one YAML document; this is a second one"
                    ));
                }
                seen_document = true;
            }
            Event::Alias(_) => return Err(no_anchors(line)),
            Event::Scalar(value, _, anchor, tag) => {
                node(&mut nodes, line, anchor, tag.is_some())?;
                enter(&mut stack, line, Some(value))?;
            }
            Event::SequenceStart(anchor, tag) => {
                node(&mut nodes, line, anchor, tag.is_some())?;
                enter(&mut stack, line, None)?;
                open(&mut stack, line, Frame::Sequence)?;
            }
            Event::MappingStart(anchor, tag) => {
                node(&mut nodes, line, anchor, tag.is_some())?;
                enter(&mut stack, line, None)?;
                let frame = Frame::Mapping {
                    keys: HashMap::new(),
                    at_key: true,
                };
                open(&mut stack, line, frame)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
    Ok(())
}

/// Counts a node and refuses anchors and tags on it.
fn node(nodes: &mut usize, line: usize, anchor: usize, tagged: bool) -> Result<(), String> {
    // The parser numbers anchors from 1; 0 means "no anchor".
    if anchor != 0 {
        return Err(no_anchors(line));
    }
    if tagged {
        return Err(format!(
            "line {line}: tags (such as !!str or !name) are not accepted in job files"
        ));
    }
    *nodes = nodes.saturating_add(1);
    if *nodes > MAX_NODES {
        return Err(format!(
            "line {line}: the job file has more than {MAX_NODES} values, the limit"
        ));
    }
    Ok(())
}

/// Places a node in its parent: if it is a mapping key (`scalar` is its text, `None` for a
/// collection), checks that it is a scalar and not a repeat.
fn enter<'a>(
    stack: &mut [Frame<'a>],
    line: usize,
    scalar: Option<Cow<'a, str>>,
) -> Result<(), String> {
    let Some(Frame::Mapping { keys, at_key }) = stack.last_mut() else {
        return Ok(());
    };
    if *at_key {
        let Some(key) = scalar else {
            return Err(format!(
                "line {line}: only plain keys are accepted in job files, not lists or mappings"
            ));
        };
        if let Some(first) = keys.get(&key) {
            return Err(format!(
                "line {line}: duplicate key '{}' (first at line {first})",
                shown(&key)
            ));
        }
        keys.insert(key, line);
    }
    *at_key = !*at_key;
    Ok(())
}

/// Pushes a collection, refusing it past [`MAX_DEPTH`].
fn open<'a>(stack: &mut Vec<Frame<'a>>, line: usize, frame: Frame<'a>) -> Result<(), String> {
    if stack.len() >= MAX_DEPTH {
        return Err(format!(
            "line {line}: lists and mappings are nested deeper than {MAX_DEPTH} levels, the limit"
        ));
    }
    stack.push(frame);
    Ok(())
}

fn no_anchors(line: usize) -> String {
    format!("line {line}: anchors and aliases (&x / *x) are not accepted in job files")
}

fn syntax_error(e: &ScanError) -> String {
    let mark = e.marker();
    format!(
        "line {}, column {}: invalid YAML: {}",
        mark.line(),
        mark.col().saturating_add(1),
        e.info()
    )
}

/// A key as quoted in an error: control characters escaped, long keys cut.
fn shown(key: &str) -> String {
    let mut out: String = key
        .chars()
        .take(MAX_KEY_SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if key.chars().nth(MAX_KEY_SHOWN).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    const EXAMPLES: [&str; 6] = [
        include_str!("../../../examples/breast_hetero_lr.yaml"),
        include_str!("../../../examples/breast_hetero_predict.yaml"),
        include_str!("../../../examples/breast_homo_lr.yaml"),
        include_str!("../../../examples/default_credit_hetero_lr.yaml"),
        include_str!("../../../examples/default_credit_homo_lr.yaml"),
        include_str!("../../../examples/smoke.yaml"),
    ];

    fn refused(text: &str) -> String {
        match check(text) {
            Ok(()) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn example_job_files_pass() {
        for text in EXAMPLES {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn json_job_files_pass() {
        let json = r#"{"name": "j", "parties": {"guest": ["a"], "host": ["b"]},
            "tasks": {"r": {"component": "reader", "params": {"table": "t", "n": [1, 2.5, null, true]}},
                      "lr": {"component": "hetero_lr", "inputs": {"data": "r.data"}, "params": {}}}}"#;
        assert_eq!(check(json), Ok(()));
        // JSON without spaces after the colons (valid YAML 1.2 flow style).
        assert_eq!(
            check(r#"{"name":"j","tasks":{"x":{"component":"noop"}}}"#),
            Ok(())
        );
    }

    #[test]
    fn ordinary_yaml_features_pass() {
        let text = "# comment\n---\nname: 'j'\nnote: |\n  two\n  lines\nfolded: >\n  a\n  b\n\
                    list:\n- 1\n- \"two\"\nempty:\nnested: {a: [1, {b: c}]}\n...\n";
        assert_eq!(check(text), Ok(()));
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("# only a comment\n"), Ok(()));
    }

    #[test]
    fn alias_bomb_is_refused_fast() {
        let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let start = Instant::now();
        let err = refused(&text);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            err,
            "line 1: anchors and aliases (&x / *x) are not accepted in job files"
        );
    }

    #[test]
    fn anchors_and_aliases_are_refused_with_their_line() {
        let err = refused("name: j\nparams: &p {lr: 0.1}\n");
        assert!(err.starts_with("line 2: anchors and aliases"), "{err}");
        let err = refused("name: j\nlist:\n  - &x a\n");
        assert!(err.starts_with("line 3: anchors and aliases"), "{err}");
        // An alias of an unknown anchor is a parser error; still refused.
        let err = refused("name: j\nx: *nowhere\n");
        assert!(err.starts_with("line 2"), "{err}");
        // The merge key needs an alias.
        let err = refused("base: &b {a: 1}\nlr:\n  <<: *b\n");
        assert!(err.starts_with("line 1: anchors"), "{err}");
        let err = refused("x: &empty\ny: 1\n");
        assert!(err.starts_with("line 1: anchors"), "{err}");
    }

    #[test]
    fn tags_are_refused() {
        for (text, line) in [
            ("name: !!str j\n", 1),
            ("name: j\nx: !foo {a: 1}\n", 2),
            ("name: j\nx: !!seq\n- 1\n", 2),
            ("--- !!map\nname: j\n", 1),
            ("name: j\nx: ! 1\n", 2),
            ("%TAG !e! tag:example.com,2000:\n---\nx: !e!thing 1\n", 3),
        ] {
            let err = refused(text);
            assert!(
                err.starts_with(&format!("line {line}: tags")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn duplicate_top_level_keys_are_refused_with_both_lines() {
        let text = "name: j\nparties: {guest: [a]}\ntasks: {}\nname: k\n";
        assert_eq!(
            refused(text),
            "line 4: duplicate key 'name' (first at line 1)"
        );
        // Quoting does not make a different key.
        let text = "name: j\n\"name\": k\n";
        assert_eq!(
            refused(text),
            "line 2: duplicate key 'name' (first at line 1)"
        );
        let text = "{\"name\": \"j\",\n \"name\": \"k\"}";
        assert_eq!(
            refused(text),
            "line 2: duplicate key 'name' (first at line 1)"
        );
    }

    #[test]
    fn duplicate_keys_in_params_are_refused_with_both_lines() {
        let text = "name: j\nparties: {guest: [a]}\ntasks:\n  lr:\n    component: homo_lr\n    \
                    params:\n      lr: 0.1\n      max_iter: 10\n      lr: 100\n";
        assert_eq!(
            refused(text),
            "line 9: duplicate key 'lr' (first at line 7)"
        );
        let text = "tasks:\n  lr:\n    params: {lr: 0.1,\n      lr: 5}\n";
        assert_eq!(
            refused(text),
            "line 4: duplicate key 'lr' (first at line 3)"
        );
    }

    #[test]
    fn the_same_key_in_different_mappings_passes() {
        let text = "a: {x: 1, y: {x: 2}}\nb: {x: 3}\nc: [{x: 1}, {x: 2}]\nx: 4\n";
        assert_eq!(check(text), Ok(()));
        // A value equal to a key is no repeat.
        assert_eq!(check("lr: lr\nx: lr\n"), Ok(()));
    }

    #[test]
    fn non_scalar_keys_are_refused() {
        for (text, line) in [
            ("? [a, b]\n: 1\n", 1),
            ("name: j\n? {a: 1}\n: 2\n", 2),
            ("{[a]: 1}\n", 1),
        ] {
            let err = refused(text);
            assert!(
                err.starts_with(&format!("line {line}: only plain keys")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn several_documents_are_refused() {
        let err = refused("name: j\n---\nname: k\n");
        assert_eq!(
            err,
            "line 2: a job file holds one YAML document; this is a second one"
        );
        assert!(refused("---\na: 1\n...\n---\n").starts_with("line 4: a job file holds one"));
        assert_eq!(check("---\nname: j\n...\n"), Ok(()));
    }

    #[test]
    fn syntax_errors_are_refused_with_their_line() {
        let err = refused("name: j\ntasks:\n  x: {component: noop\n");
        assert!(err.starts_with("line 4, column 1: invalid YAML: "), "{err}");
        let err = refused("name: j\n  bad: indentation\n");
        assert!(err.starts_with("line 2,"), "{err}");
        let err = refused("a: \"unterminated\n");
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn size_cap() {
        let body = "name: j\n";
        let pad = "#".repeat(MAX_JOB_BYTES - body.len() - 1);
        let text = format!("{body}{pad}\n");
        assert_eq!(text.len(), MAX_JOB_BYTES);
        assert_eq!(check(&text), Ok(()));
        let text = format!("{text} ");
        assert_eq!(
            refused(&text),
            "the job file is 262145 bytes; the limit is 262144 bytes (256 KiB)"
        );
        // Refused before parsing: broken YAML gets the size error.
        let text = format!("{{{}", "[".repeat(MAX_JOB_BYTES));
        assert!(refused(&text).starts_with("the job file is"));
    }

    #[test]
    fn depth_cap() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(
            refused(&nested(MAX_DEPTH + 1)),
            "line 1: lists and mappings are nested deeper than 64 levels, the limit"
        );
        // Block style counts too: a mapping per line.
        let mut text = String::new();
        for level in 0..=MAX_DEPTH {
            text.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        text.push_str(&format!("{}v: 1\n", " ".repeat(MAX_DEPTH + 1)));
        let err = refused(&text);
        assert!(err.contains("nested deeper than 64"), "{err}");
        // Refused at the limit, without reading the rest.
        let text = "[".repeat(200);
        assert!(refused(&text).contains("nested deeper"));
        // Past 255 open flow collections the parser's scanner, which reads ahead, stops first.
        let err = refused(&"[".repeat(MAX_JOB_BYTES));
        assert!(
            err.contains("nested deeper") || err.contains("recursion limit"),
            "{err}"
        );
    }

    #[test]
    fn node_cap() {
        // One sequence and MAX_NODES - 1 scalars: exactly the limit.
        let list = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        assert_eq!(check(&list(MAX_NODES - 1)), Ok(()));
        let err = refused(&list(MAX_NODES));
        assert_eq!(
            err,
            "line 1: the job file has more than 100000 values, the limit"
        );
    }

    #[test]
    fn long_keys_are_shortened_in_errors() {
        let key = "k".repeat(500);
        let err = refused(&format!("{key}: 1\n{key}: 2\n"));
        assert!(err.len() < 150, "{err}");
        let err = refused("\"a\\nb\": 1\n\"a\\nb\": 2\n");
        assert_eq!(err, "line 2: duplicate key 'a\\nb' (first at line 1)");
    }

    #[test]
    fn job_spec_parse_runs_the_guard_first() {
        use crate::job::JobSpec;
        let text = "name: j\nparties: {guest: [a]}\ntasks: {x: {component: noop}}\nname: k\n";
        let err = JobSpec::parse(text).expect_err("duplicate key");
        assert_eq!(err.0, "line 4: duplicate key 'name' (first at line 1)");
        let err =
            JobSpec::parse("name: &n j\nparties: {guest: [a]}\ntasks: {}\n").expect_err("anchor");
        assert!(err.0.starts_with("line 1: anchors and aliases"), "{err}");
        let spec = JobSpec::parse(EXAMPLES[0]).expect("example parses");
        assert_eq!(spec.name, "breast-hetero-lr");
    }

    /// A deterministic xorshift64 generator, to avoid a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_prefixes_of_job_files() {
        for text in EXAMPLES {
            for (end, _) in text.char_indices() {
                let _ = check(&text[..end]);
            }
        }
    }

    #[test]
    fn never_panics_on_mutated_job_files() {
        const SPECIAL: &[u8] = b"&*!{}[]:,-?#|>'\"%@`\\\t\n\r ~0";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let mut bytes = EXAMPLES[round % EXAMPLES.len()].as_bytes().to_vec();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = SPECIAL[rng.below(SPECIAL.len())],
                    1 => bytes[at] = rng.next() as u8,
                    2 => bytes.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = check(&text);
        }
    }
}
