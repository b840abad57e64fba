//! Shell completions and the man page, generated from the CLI's own definitions.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use consort_tests::consort;

#[test]
fn completions_are_valid_scripts_that_know_every_command() {
    let bash = consort(&["completions", "bash"]);
    assert_eq!(bash.code, Some(0), "{bash:?}");
    for word in [
        "serve", "deploy", "promote", "rollback", "model", "job", "--json",
    ] {
        assert!(bash.stdout.contains(word), "{word} not completed");
    }
    // bash itself parses it.
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(bash.stdout.as_bytes())
        .unwrap();
    assert!(
        check.wait().unwrap().success(),
        "bash -n refused the script"
    );
    for (shell, marker) in [("zsh", "#compdef consort"), ("fish", "complete -c consort")] {
        let out = consort(&["completions", shell]);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(
            out.stdout.contains(marker),
            "{shell}: {}",
            &out.stdout[..200]
        );
        assert!(out.stdout.contains("serve"), "{shell}");
    }
    let bad = consort(&["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
}

#[test]
fn the_man_page_is_roff_with_every_command() {
    let man = consort(&["man"]);
    assert_eq!(man.code, Some(0), "{man:?}");
    assert!(
        man.stdout.contains(".TH consort 1"),
        "{}",
        &man.stdout[..200]
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(man.stdout.contains(section), "{section}");
    }
    for cmd in [
        "consort\\-serve(1)",
        "consort\\-job(1)",
        "consort\\-completions(1)",
    ] {
        assert!(man.stdout.contains(cmd), "{cmd} not listed");
    }
}
