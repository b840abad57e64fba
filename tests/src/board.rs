//! Helpers for the board's tests and benchmark: a plain blocking HTTP/1.1 client (one
//! connection per request, `Connection: close`), so a test sees exactly the status, headers and
//! body the daemon sends, cookies and all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `method path` to `addr` with `headers` and `body`, and reads the whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Reply, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = b.get(..size).ok_or("short chunk")?;
        out.extend_from_slice(chunk);
        b = b.get(size + 2..).ok_or("short chunk")?;
    }
}

/// The login cookie `Set-Cookie` gave (`NAME=VALUE`).
pub fn cookie_of(reply: &Reply) -> Option<String> {
    let set = reply.header("set-cookie")?;
    Some(set.split(';').next()?.to_owned())
}

/// The value of `<meta name="NAME" content="…">` in a page.
pub fn meta(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("<meta name=\"{name}\" content=\""))?;
    let rest = &page[at..];
    let start = rest.find("content=\"")? + "content=\"".len();
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_owned())
}

/// A logged-in session of a board: its address, the login cookie and the page's CSRF token.
pub struct Session {
    /// The board's address.
    pub addr: SocketAddr,
    /// `NAME=VALUE` of the login cookie.
    pub cookie: String,
    /// The CSRF token of the board's page.
    pub csrf: String,
}

impl Session {
    /// Logs in with the URL `consort board --json` gave (`http://ADDR/?token=…`).
    pub fn login(url: &str) -> Session {
        let rest = url.strip_prefix("http://").expect("an http URL");
        let (addr, path) = rest.split_once('/').expect("a path");
        let addr: SocketAddr = addr.parse().expect("an address");
        let login = request(addr, "GET", &format!("/{path}"), &[], "").expect("login");
        assert_eq!(login.status, 303, "{login:?}");
        let cookie = cookie_of(&login).expect("a cookie");
        let page = request(addr, "GET", "/", &[("Cookie", &cookie)], "").expect("page");
        assert_eq!(page.status, 200, "{page:?}");
        let csrf = meta(&page.body, "csrf").expect("a CSRF token");
        Session { addr, cookie, csrf }
    }

    /// `GET /api{path}` as JSON.
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = request(
            self.addr,
            "GET",
            &format!("/api{path}"),
            &[("Cookie", &self.cookie)],
            "",
        )
        .expect("GET");
        let v = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status, v)
    }

    /// `POST /api{path}` with the CSRF token, as the page's buttons send it.
    pub fn act(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = request(
            self.addr,
            "POST",
            &format!("/api{path}"),
            &[
                ("Cookie", &self.cookie),
                ("X-Consort-Csrf", &self.csrf),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
        .expect("POST");
        let v = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status, v)
    }
}
