//! A small, blocking Chrome DevTools Protocol (CDP) client, for end-to-end tests that drive a
//! real headless Chromium: open a page, evaluate JavaScript in it, wait for a condition with a
//! deadline, navigate, take a screenshot.
//!
//! What it needs: a Chromium or Chrome binary, found as `$CONSORT_CHROMIUM`, else `chromium`,
//! `chromium-browser` or `google-chrome` on `PATH` (`bash .ci/run` installs chromium). Nothing
//! else: no display (`--headless=new`), no driver; it speaks CDP over the browser's plain
//! loopback `ws://` websocket (tungstenite, a std `TcpStream`, no async runtime).
//!
//! Each [`Browser`] is one Chromium process in its own process group with a fresh profile
//! directory; dropping it kills the whole group and removes the directory, so a failing test
//! leaves nothing behind. Every command has a deadline ([`Browser::set_command_timeout`]), so a
//! silent or dead browser fails the test with an error instead of hanging it.
//!
//! ```no_run
//! # fn main() -> Result<(), String> {
//! use std::time::Duration;
//! let mut browser = consort_tests::browser::Browser::launch()?;
//! let mut page = browser.open("http://127.0.0.1:8080/")?;
//! page.wait_for("document.querySelectorAll('tr.job').length >= 2", Duration::from_secs(10))?;
//! let title = page.eval("document.title")?;
//! page.screenshot(std::path::Path::new("target/board.png"))?;
//! # let _ = title; Ok(()) }
//! ```
//!
//! Errors are `String`s (like the rest of this crate's helpers) that say what was being done
//! and, when the browser went away, how it exited and the end of its stderr.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long [`Browser::launch`] waits for Chromium to print its DevTools address.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Default deadline of one CDP command (see [`Browser::set_command_timeout`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Viewport of every page opened by [`Browser::open`] (CSS pixels, scale factor 1).
pub const VIEWPORT: (u32, u32) = (1400, 1000);

/// The flags Chromium is started with (plus `--user-data-dir=<fresh dir>` and `about:blank`).
/// `--no-sandbox` because tests often run as root (in CI containers), where Chromium refuses
/// to start with its sandbox.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
];

/// Binaries looked up on `PATH` when `$CONSORT_CHROMIUM` is not set.
const CANDIDATES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// How often [`Page::wait_for`] evaluates its condition.
const POLL: Duration = Duration::from_millis(50);

/// Lines of Chromium's stderr kept for error messages.
const STDERR_LINES: usize = 200;

/// Console lines kept per browser (oldest dropped first).
const CONSOLE_LINES: usize = 1000;

/// Largest websocket message accepted (full-page screenshots are big base64 strings).
const MAX_MESSAGE: usize = 256 << 20;

/// A headless Chromium process and the CDP connection to it; the process (with its whole
/// process group) is killed and its profile directory removed on drop.
pub struct Browser {
    // Declared before `process` so the socket closes before the process is killed.
    ws: WebSocket<TcpStream>,
    process: Process,
    next_id: u64,
    command_timeout: Duration,
    version: String,
    /// `(session id, line)` of the pages' console messages and uncaught exceptions.
    console: VecDeque<(String, String)>,
}

/// One page (tab) of a [`Browser`], attached through its own CDP session. It borrows the
/// browser mutably: one page is driven at a time. Dropping it closes the tab.
pub struct Page<'b> {
    browser: &'b mut Browser,
    session: String,
    target: String,
}

/// Why a command failed, so that [`Page::wait_for`] can tell "not yet" from "give up".
enum Fail {
    /// The browser answered: a CDP error, or an exception thrown in the page.
    Page(String),
    /// No answer before the command's deadline.
    Timeout(String),
    /// The connection or the browser is gone.
    Transport(String),
}

impl From<Fail> for String {
    fn from(f: Fail) -> String {
        match f {
            Fail::Page(s) | Fail::Timeout(s) | Fail::Transport(s) => s,
        }
    }
}

impl Browser {
    /// Starts a headless Chromium (see [`FLAGS`]) with a fresh profile and connects to it.
    pub fn launch() -> Result<Browser, String> {
        let exe = find_chromium()?;
        let profile = tempfile::Builder::new()
            .prefix("consort-chromium")
            .tempdir()
            .map_err(|e| format!("creating a Chromium profile directory: {e}"))?;
        let mut cmd = Command::new(&exe);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that drop can kill the renderers and helpers too.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        let mut process = Process {
            child,
            profile: Some(profile),
            stderr: Arc::new(Mutex::new(VecDeque::new())),
        };

        // Chromium prints `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/UUID` on
        // stderr. A thread reads stderr to its end (keeping the last lines for error messages,
        // and so that Chromium never blocks on a full pipe) and hands that address over.
        let pipe = process
            .child
            .stderr
            .take()
            .ok_or("Chromium's stderr was not captured")?;
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&process.stderr);
        std::thread::Builder::new()
            .name("chromium-stderr".into())
            .spawn(move || read_stderr(pipe, &lines, &tx))
            .map_err(|e| format!("starting the Chromium stderr reader: {e}"))?;
        let url = match rx.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(url) => url,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{} did not print its DevTools address within {LAUNCH_TIMEOUT:?}; \
                     stderr so far:\n{}",
                    exe.display(),
                    process.stderr_tail(STDERR_LINES)
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "{} ended its stderr before printing its DevTools address ({}); stderr:\n{}",
                    exe.display(),
                    process.exit_status(),
                    process.stderr_tail(STDERR_LINES)
                ));
            }
        };
        let ws = connect(&url, COMMAND_TIMEOUT).map_err(|e| {
            format!(
                "{e}; Chromium stderr:\n{}",
                process.stderr_tail(STDERR_LINES)
            )
        })?;
        let mut browser = Browser {
            ws,
            process,
            next_id: 0,
            command_timeout: COMMAND_TIMEOUT,
            version: String::new(),
            console: VecDeque::new(),
        };
        let v = browser.command(None, "Browser.getVersion", json!({}))?;
        browser.version = v["product"].as_str().unwrap_or("unknown").to_owned();
        Ok(browser)
    }

    /// The browser's product string, e.g. `Chrome/156.0.8078.114` (`HeadlessChrome/...` in old headless mode).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Sets the deadline of each CDP command (default [`COMMAND_TIMEOUT`]); it also bounds how
    /// long [`Page::navigate`] waits for the new document to load.
    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.command_timeout = timeout;
    }

    /// The process id of the main Chromium process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The last `n` lines Chromium wrote to stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        self.process.stderr_tail(n)
    }

    /// Opens a new tab with a [`VIEWPORT`]-sized viewport, loads `url` in it and waits until
    /// that document has loaded (see [`Page::navigate`]).
    pub fn open(&mut self, url: &str) -> Result<Page<'_>, String> {
        // The tab starts blank so that the viewport applies before the page lays out.
        let created = self.command(None, "Target.createTarget", json!({"url": "about:blank"}))?;
        let target = created["targetId"]
            .as_str()
            .ok_or_else(|| format!("Target.createTarget: no targetId in {created}"))?
            .to_owned();
        let attached = match self.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        ) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.send(None, "Target.closeTarget", json!({"targetId": target}));
                return Err(e.into());
            }
        };
        let Some(session) = attached["sessionId"].as_str() else {
            let _ = self.send(None, "Target.closeTarget", json!({"targetId": target}));
            return Err(format!("Target.attachToTarget: no sessionId in {attached}"));
        };
        // From here on, dropping `page` (also on an error) closes the tab.
        let mut page = Page {
            session: session.to_owned(),
            browser: self,
            target,
        };
        // Runtime: console messages and uncaught exceptions (kept for error messages);
        // Inspector: a crash of the page is reported at once instead of at a deadline.
        page.call("Runtime.enable", json!({}))?;
        page.call("Inspector.enable", json!({}))?;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": VIEWPORT.0,
                "height": VIEWPORT.1,
                "deviceScaleFactor": 1,
                "mobile": false,
            }),
        )?;
        // Screenshots then show the page's full width without a scrollbar strip (best effort:
        // the method is marked experimental).
        let _ = page.call("Emulation.setScrollbarsHidden", json!({"hidden": true}));
        page.navigate(url)?;
        Ok(page)
    }

    /// Sends a command and waits (at most the command timeout) for the answer with its id,
    /// skipping events and stale answers meanwhile; returns the answer's `result`.
    fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Fail> {
        let timeout = self.command_timeout;
        self.command_within(session, method, params, timeout)
    }

    fn command_within(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, Fail> {
        let deadline = Instant::now() + timeout;
        let id = self.send(session, method, params)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Fail::Timeout(format!(
                    "no answer to {method} within {timeout:?}"
                )));
            }
            // A read timeout ends a blocked read at the deadline; tungstenite keeps any
            // partially read frame and carries on at the next read.
            if let Err(e) = self.ws.get_ref().set_read_timeout(Some(left)) {
                return Err(self.gone(&format!("setting the socket read timeout: {e}")));
            }
            let text = match self.ws.read() {
                Ok(Message::Text(t)) => t.as_str().to_owned(),
                Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                Ok(Message::Close(frame)) => {
                    return Err(self.gone(&format!(
                        "the browser closed the connection ({frame:?}) while waiting for {method}"
                    )));
                }
                Ok(_) => continue, // ping/pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(self.gone(&format!("reading the answer to {method}: {e}")));
                }
            };
            let Ok(msg) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if msg["id"].as_u64() == Some(id) {
                if let Some(err) = msg.get("error") {
                    let data = err["data"].as_str().map(|d| format!(" ({d})"));
                    return Err(Fail::Page(format!(
                        "{method}: {}{}",
                        err["message"].as_str().unwrap_or("error"),
                        data.unwrap_or_default()
                    )));
                }
                return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
            }
            if msg.get("id").is_none() {
                self.event(&msg, session)?;
            }
        }
    }

    /// Writes one command; its id.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<u64, Fail> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let timeout = self.command_timeout.max(Duration::from_millis(1));
        if let Err(e) = self.ws.get_ref().set_write_timeout(Some(timeout)) {
            return Err(self.gone(&format!("setting the socket write timeout: {e}")));
        }
        if let Err(e) = self.ws.send(Message::text(msg.to_string())) {
            return Err(self.gone(&format!("sending {method}: {e}")));
        }
        Ok(id)
    }

    /// Looks at an event met while waiting for an answer: keeps console lines, and fails when
    /// the page `session` being waited on crashed or went away.
    fn event(&mut self, msg: &Value, session: Option<&str>) -> Result<(), Fail> {
        let from = msg["sessionId"].as_str().unwrap_or("");
        let params = &msg["params"];
        match msg["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|a| a.iter().map(remote_object_text).collect())
                    .unwrap_or_default();
                let kind = params["type"].as_str().unwrap_or("log");
                self.note_console(from, format!("console.{kind}: {}", args.join(" ")));
            }
            "Runtime.exceptionThrown" => {
                let text = exception_text(&params["exceptionDetails"]);
                self.note_console(from, format!("uncaught {text}"));
            }
            "Inspector.targetCrashed" if Some(from) == session => {
                return Err(self.gone("the page crashed"));
            }
            "Target.detachedFromTarget" if params["sessionId"].as_str() == session => {
                return Err(self.gone("the page was closed (detached from its target)"));
            }
            _ => {}
        }
        Ok(())
    }

    fn note_console(&mut self, session: &str, line: String) {
        if self.console.len() == CONSOLE_LINES {
            self.console.pop_front();
        }
        self.console.push_back((session.to_owned(), line));
    }

    /// A transport failure, with how the browser exited (if it did) and its last stderr.
    fn gone(&mut self, what: &str) -> Fail {
        Fail::Transport(format!(
            "{what} ({}); Chromium stderr ends:\n{}",
            self.process.exit_status(),
            self.process.stderr_tail(20)
        ))
    }
}

impl Page<'_> {
    /// Evaluates `js` (an expression, or statements whose completion value is the result) in
    /// the page, awaiting it if it is a promise; returns its value as JSON (`null` for
    /// `undefined`; `NaN`, `Infinity`, `-0` and BigInts as strings such as `"NaN"`, `"12n"`;
    /// DOM nodes and other non-JSON objects as `{}`). An exception thrown in the page is an
    /// error carrying its message.
    pub fn eval(&mut self, js: &str) -> Result<Value, String> {
        let timeout = self.browser.command_timeout;
        let object = self.evaluate(js, timeout)?;
        Ok(remote_object_value(&object))
    }

    /// Evaluates `js_condition` every ~50 ms until it is truthy (not `null`, `undefined`,
    /// `false`, `0`, `NaN`, `""`), and returns that value (as [`Page::eval`] would). An
    /// exception or a CDP error (e.g. while a new document replaces the old one) counts as
    /// "not yet"; after `timeout` the error names the condition and its last value or error,
    /// and the page's last console lines.
    pub fn wait_for(&mut self, js_condition: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A slow (awaited) condition may use the time left, but at least a second.
            let left = deadline.saturating_duration_since(Instant::now());
            let budget = left
                .max(Duration::from_secs(1))
                .min(self.browser.command_timeout);
            let last = match self.evaluate(js_condition, budget) {
                Ok(object) if truthy(&object) => return Ok(remote_object_value(&object)),
                Ok(object) => format!("last value {}", remote_object_value(&object)),
                Err(Fail::Page(e)) => format!("last error: {e}"),
                Err(Fail::Timeout(e)) => format!("the last evaluation did not answer: {e}"),
                Err(Fail::Transport(e)) => {
                    return Err(format!("while waiting for `{js_condition}`: {e}"));
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out after {timeout:?} waiting for `{js_condition}`; {last}{}",
                    self.console_suffix()
                ));
            }
            std::thread::sleep(POLL.min(left));
        }
    }

    /// Loads `url` in this tab (`Page.navigate`) and, unless only the fragment changed, waits
    /// (at most the command timeout) until the new document has replaced the old one and
    /// finished loading (`document.readyState == "complete"`). A failed load (e.g.
    /// `net::ERR_CONNECTION_REFUSED`) is an error.
    pub fn navigate(&mut self, url: &str) -> Result<(), String> {
        // Mark the current document, so the wait below cannot mistake it for the new one.
        let short = Duration::from_secs(5).min(self.browser.command_timeout);
        match self.evaluate("window.__consortOldDocument = true", short) {
            Ok(_) | Err(Fail::Page(_)) => {}
            Err(e) => return Err(format!("navigating to {url}: {}", String::from(e))),
        }
        let r = self
            .call("Page.navigate", json!({"url": url}))
            .map_err(|e| format!("navigating to {url}: {e}"))?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(format!("navigating to {url}: {e}"));
        }
        if r.get("loaderId").is_some() {
            let timeout = self.browser.command_timeout;
            self.wait_for(
                "window.__consortOldDocument === undefined && document.readyState === 'complete'",
                timeout,
            )
            .map_err(|e| format!("loading {url}: {e}"))?;
        }
        Ok(())
    }

    /// Saves a PNG screenshot of the whole page (beyond the viewport) to `path`, creating its
    /// directory if needed.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = r["data"]
            .as_str()
            .ok_or("Page.captureScreenshot: no data in the answer")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("Page.captureScreenshot: bad base64: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Sends any CDP command to this page's session; its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        Ok(self.browser.command(Some(&self.session), method, params)?)
    }

    /// This page's console messages and uncaught exceptions so far, oldest first (as
    /// `console.log: ...`, `console.error: ...`, `uncaught ...`; only those that arrived
    /// while a command was waiting for its answer, which is nearly all of them in a test that
    /// polls with [`Page::wait_for`]).
    pub fn console(&self) -> Vec<String> {
        self.browser
            .console
            .iter()
            .filter(|(s, _)| *s == self.session)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The CDP target id of this tab.
    pub fn target_id(&self) -> &str {
        &self.target
    }

    /// `Runtime.evaluate`; the result's remote object, or the exception as a [`Fail::Page`].
    fn evaluate(&mut self, js: &str, timeout: Duration) -> Result<Value, Fail> {
        let r = self.browser.command_within(
            Some(&self.session),
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
            timeout,
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(Fail::Page(format!(
                "evaluating `{}`: {}",
                shorten(js, 200),
                exception_text(ex)
            )));
        }
        Ok(r.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The last few console lines, for timeout messages.
    fn console_suffix(&self) -> String {
        let lines = self.console();
        if lines.is_empty() {
            return String::new();
        }
        let from = lines.len().saturating_sub(10);
        format!(
            "; the page's last console lines:\n{}",
            lines[from..].join("\n")
        )
    }
}

impl Drop for Page<'_> {
    /// Closes the tab (without waiting for the answer, which later commands skip).
    fn drop(&mut self) {
        let _ = self
            .browser
            .send(None, "Target.closeTarget", json!({"targetId": self.target}));
    }
}

/// The Chromium process: killed with its process group, and its profile removed, on drop.
struct Process {
    child: Child,
    profile: Option<tempfile::TempDir>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Process {
    fn stderr_tail(&self, n: usize) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let from = lines.len().saturating_sub(n);
        lines.range(from..).cloned().collect::<Vec<_>>().join("\n")
    }

    /// "exited with ..." or "still running".
    fn exit_status(&mut self) -> String {
        // Give a dying process a moment to be reapable, so the message says how it ended.
        for _ in 0..10 {
            match self.child.try_wait() {
                Ok(Some(status)) => return format!("Chromium {status}"),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return format!("Chromium status unknown: {e}"),
            }
        }
        "Chromium still running".into()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) takes no pointers; a negative pid signals the process group that
            // `process_group(0)` created for this child (group id = its pid), which exists as
            // long as the child (not yet reaped) or any of its descendants does.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(profile) = self.profile.take() {
            // SIGKILL cannot be ignored, but the renderers and helpers die asynchronously (and
            // are reaped by init, which can take a second in containers): if one is still
            // finishing a write, retry for a moment.
            let dir = profile.path().to_owned();
            for _ in 0..40 {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => break,
                }
            }
            drop(profile);
        }
    }
}

/// `$CONSORT_CHROMIUM`, else the first of [`CANDIDATES`] on `PATH`.
fn find_chromium() -> Result<PathBuf, String> {
    if let Some(var) = std::env::var_os("CONSORT_CHROMIUM").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(&var);
        let found = if p.components().count() > 1 {
            is_executable(&p).then_some(p)
        } else {
            which(&var.to_string_lossy())
        };
        return found.ok_or_else(|| {
            format!(
                "CONSORT_CHROMIUM={} is not an executable file (nor a name on PATH)",
                var.to_string_lossy()
            )
        });
    }
    CANDIDATES
        .iter()
        .find_map(|name| which(name))
        .ok_or_else(|| {
            format!(
                "no Chromium found: tried $CONSORT_CHROMIUM (unset), then {} on PATH; \
             `bash .ci/run` installs chromium",
                CANDIDATES.join(", ")
            )
        })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Reads Chromium's stderr to its end: keeps the last lines, sends the DevTools address once.
fn read_stderr(
    pipe: std::process::ChildStderr,
    lines: &Mutex<VecDeque<String>>,
    tx: &mpsc::Sender<String>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    let mut sent = false;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        if !sent && let Some(url) = line.strip_prefix("DevTools listening on ") {
            sent = tx.send(url.trim().to_owned()).is_ok();
        }
        // Without a session bus (containers, CI) Chromium logs D-Bus failures all along:
        // noise that would crowd out the lines that matter.
        if line.contains(":ERROR:dbus/") {
            continue;
        }
        let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// Connects the websocket at `url` (`ws://HOST:PORT/PATH`), with `timeout` on the connect,
/// the handshake and (until commands set their own) each read and write.
fn connect(url: &str, timeout: Duration) -> Result<WebSocket<TcpStream>, String> {
    let host_port = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("unexpected DevTools address {url:?}"))?;
    let addrs = host_port
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host_port}: {e}"))?;
    let mut error = format!("{host_port} resolved to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => error = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(error)?;
    let setup = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true));
    setup.map_err(|e| format!("configuring the DevTools socket: {e}"))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (ws, _response) = tungstenite::client::client_with_config(url, stream, Some(config))
        .map_err(|e| format!("websocket handshake with {url}: {e}"))?;
    Ok(ws)
}

/// JavaScript truthiness of a CDP `RemoteObject`.
fn truthy(object: &Value) -> bool {
    match object["type"].as_str().unwrap_or("undefined") {
        "undefined" => false,
        "object" => object["subtype"] != "null",
        "boolean" => object["value"] == true,
        "string" => object["value"] != "",
        "number" => match object.get("unserializableValue").and_then(Value::as_str) {
            Some(u) => u != "NaN" && u != "-0",
            None => object["value"].as_f64().is_some_and(|n| n != 0.0),
        },
        "bigint" => object["unserializableValue"] != "0n",
        _ => true, // function, symbol
    }
}

/// The JSON value of a `RemoteObject` fetched with `returnByValue`.
fn remote_object_value(object: &Value) -> Value {
    if let Some(v) = object.get("value") {
        return v.clone();
    }
    match object.get("unserializableValue") {
        Some(u) => u.clone(),
        None => Value::Null,
    }
}

/// A console argument as text.
fn remote_object_text(object: &Value) -> String {
    match object.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => object["unserializableValue"]
            .as_str()
            .or(object["description"].as_str())
            .unwrap_or(object["type"].as_str().unwrap_or("?"))
            .to_owned(),
    }
}

/// The message of a CDP `ExceptionDetails`: the exception's description (message and stack)
/// when there is one, else the bare text (e.g. "Uncaught").
fn exception_text(details: &Value) -> String {
    let text = details["text"].as_str().unwrap_or("exception");
    let exception = &details["exception"];
    let description = exception["description"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| exception.get("value").map(|v| v.to_string()));
    match description {
        // A rejected promise's text already holds the first line ("Uncaught (in promise)
        // TypeError: nope"): add only the stack.
        Some(d) => match d.split_once('\n') {
            Some((first, stack)) if text.contains(first) => format!("{text}\n{stack}"),
            None if text.contains(d.as_str()) => text.to_owned(),
            _ => format!("{text}: {d}"),
        },
        None => text.to_owned(),
    }
}

/// `s` cut to about `max` characters.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
