//! The real `backprop serve` for end-to-end tests: started on a free port (`--port 0`, the
//! address read from its first line), talked to over plain TCP so that every byte of a
//! request is the test's choice, and stopped (SIGTERM) when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub port: u16,
    pub token: String,
    /// `http://127.0.0.1:<port>/?token=<token>`, as printed.
    pub url: String,
}

impl Server {
    /// Starts `cmd` (a backprop command without arguments) as `serve --port 0` and waits
    /// (at most 60 s) for the address it prints.
    pub fn start(mut cmd: Command) -> Server {
        cmd.args(["serve", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("backprop serve starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("backprop serve prints its address within 60 s");
        let url = line.trim().to_string();
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {url:?}"));
        let (port, token) = rest
            .split_once("/?token=")
            .expect("the address has a token");
        Server {
            port: port.parse().unwrap(),
            token: token.to_string(),
            url: url.clone(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A GET with the token in the Authorization header.
    pub fn get(&self, path: &str) -> Response {
        self.send(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {}", self.token))],
            b"",
        )
    }

    /// A POST with the token in the Authorization header.
    pub fn post(&self, path: &str) -> Response {
        self.send(
            "POST",
            path,
            &[("Authorization", &format!("Bearer {}", self.token))],
            b"",
        )
    }

    /// A request with `Host: 127.0.0.1:<port>` and these headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let host = format!("127.0.0.1:{}", self.port);
        let mut all = vec![("Host", host.as_str())];
        all.extend_from_slice(headers);
        let mut request = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        for (name, value) in all {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        self.raw(&request).expect("the server answers")
    }

    /// Sends `request` as it is and reads the whole answer (the server closes the
    /// connection after it, or within 10 s).
    pub fn raw(&self, request: &[u8]) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request)?;
        let mut bytes = Vec::new();
        match stream.read_to_end(&mut bytes) {
            Ok(_) => {}
            // An answer followed by a reset (the server closed with unread input) counts.
            Err(_) if !bytes.is_empty() => {}
            Err(e) => return Err(e),
        }
        // An answer to HEAD names the length of a body it does not send.
        Response::parse(&bytes, request.starts_with(b"HEAD ")).ok_or_else(|| {
            std::io::Error::other(format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&bytes)
            ))
        })
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// SIGTERM, then waits up to 10 s for it to end; returns whether it ended.
    pub fn stop(&mut self) -> bool {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stop() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An HTTP/1.x answer: a status line, headers, and a body as its length or chunked
    /// framing says, or none after a HEAD (None when it is not well formed).
    pub fn parse(bytes: &[u8], answers_head: bool) -> Option<Response> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next()?;
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return None;
        }
        let status: u16 = parts.next()?.parse().ok()?;
        if !(100..600).contains(&status) {
            return None;
        }
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let rest = &bytes[end + 4..];
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if answers_head {
            Vec::new()
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            dechunk(rest)?
        } else if let Some(length) = header("content-length") {
            let length: usize = length.parse().ok()?;
            if rest.len() < length {
                return None;
            }
            rest[..length].to_vec()
        } else {
            rest.to_vec()
        };
        Some(Response {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `error` of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {:?}", self.text()))
            .to_string()
    }
}

fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).ok()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if bytes.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// Reads the event stream until `wanted` appears in it or `timeout` passes. `ready` is called
/// once the stream is open (to make the change awaited); returns what was read and how long
/// after `ready` the text appeared.
pub fn read_events_until(
    server: &Server,
    wanted: &str,
    timeout: Duration,
    ready: impl FnOnce(),
) -> (String, Option<Duration>) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let request = format!(
        "GET /api/events?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        server.token, server.port
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut ready = Some(ready);
    let mut since: Option<Instant> = None;
    while started.elapsed() < timeout {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&seen);
        if since.is_none() && text.contains(": connected") {
            (ready.take().unwrap())();
            since = Some(Instant::now());
        }
        if let Some(since) = since
            && text.contains(wanted)
        {
            return (text.into_owned(), Some(since.elapsed()));
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), None)
}
