//! Printing helpers shared by the commands.

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) ends the command quietly with
/// the shell's SIGPIPE status.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), crate::failure::Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => Err(crate::failure::fail(
            "io",
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// "3.2s ago", "never".
pub(crate) fn ago(unix_ms: Option<u64>) -> String {
    let Some(ms) = unix_ms else {
        return "never".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(ms);
    format!(
        "{} ago",
        format_duration(now.saturating_sub(ms) as f64 / 1e3)
    )
}

/// Seconds as "1.5s", "2m 3s", "4h 5m" or "6d 7h".
pub(crate) fn format_duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `consort job submit --wait | head -1`: when the reader goes away, stop quietly with the
/// shell's SIGPIPE status instead of a panic message (println! panics on a closed stdout).
pub(crate) fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
