//! `backprop serve` end to end, through its HTTP API: the token and Host checks, malformed
//! and unknown input (400/404, always JSON), the data each call serves, live events, the
//! actions on real runs, and a few thousand random requests that must all be answered.

mod common;
#[path = "serve_support/mod.rs"]
mod serve_support;

use backprop::record::lifecycle::{self, AttemptEnd, AttemptStart};
use backprop::record::{RunRecord, RunSpec, Status};
use backprop::runid::RunId;
use backprop::store::Store;
use common::{Env, script, wait_for};
use serde_json::{Value, json};
use serve_support::{Server, read_events_until};
use std::time::Duration;

/// A run that ran one attempt and ended `status`, in batch `batch`.
fn ended(id: &str, status: Status, batch: Option<&str>, created: u64) -> RunRecord {
    let mut rec = RunRecord::new(
        RunId::parse(id).unwrap(),
        id.into(),
        RunSpec::default(),
        created,
    );
    rec.batch_id = batch.map(|b| RunId::parse(b).unwrap());
    lifecycle::admit(
        &mut rec,
        AttemptStart {
            number: 1,
            ..Default::default()
        },
        created + 1,
    )
    .unwrap();
    rec.last_step = Some(2);
    rec.last_loss = Some(0.5);
    let end = AttemptEnd {
        status,
        reason: "exit".into(),
        exit_code: Some(0),
        signal: None,
    };
    lifecycle::finish(&mut rec, &end, created + 2).unwrap();
    rec
}

fn filled_env() -> Env {
    let env = Env::new();
    let store = Store::open(&env.home_path()).unwrap();
    store
        .update(|tx| {
            tx.put(&ended("old-a", Status::Completed, Some("b-1"), 1_000));
            tx.put(&ended("old-b", Status::Failed, Some("b-1"), 2_000));
            tx.put(&ended("new-c", Status::Timeboxed, None, 3_000));
        })
        .unwrap();
    let dir = store.ensure_run_dir("old-a").unwrap();
    std::fs::write(
        dir.join("metrics.jsonl"),
        concat!(
            "{\"step\": 1, \"loss\": 0.9, \"acc\": 0.1, \"time\": 10, \"attempt\": 1}\n",
            "{\"step\": 2, \"loss\": NaN, \"time\": 11, \"attempt\": 1}\n",
            "{\"step\": 2, \"loss\": Infinity, \"time\": 12, \"attempt\": 2}\n",
        ),
    )
    .unwrap();
    let lines: String = (1..=500).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.join("stdout.log"), lines).unwrap();
    std::fs::write(dir.join("stderr.log"), "warning\n").unwrap();
    env
}

#[test]
fn every_api_call_needs_the_token_and_actions_need_it_in_the_header() {
    let env = filled_env();
    let server = Server::start(env.cmd());
    assert_eq!(server.token.len(), 32);
    let none = server.send("GET", "/api/runs", &[], b"");
    assert_eq!(none.status, 403);
    assert!(none.error().contains("token"), "{}", none.error());
    let wrong = server.send(
        "GET",
        "/api/runs",
        &[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")],
        b"",
    );
    assert_eq!(wrong.status, 403);
    let also_wrong = server.send(
        "GET",
        &format!("/api/runs?token={}x", server.token),
        &[],
        b"",
    );
    assert_eq!(also_wrong.status, 403);
    for path in [
        "/api/runs",
        "/api/runs/old-a",
        "/api/status",
        "/api/machine",
        "/api/runs/old-a/logs",
    ] {
        assert_eq!(server.get(path).status, 200, "{path}");
        let with_query = server.send(
            "GET",
            &format!(
                "{path}{}token={}",
                if path.contains('?') { "&" } else { "?" },
                server.token
            ),
            &[],
            b"",
        );
        assert_eq!(with_query.status, 200, "{path} with ?token=");
        assert_eq!(
            server.send("GET", path, &[], b"").status,
            403,
            "{path} without token"
        );
    }
    // The page itself holds no data and loads without the token.
    let page = server.send("GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<script src=\"/app.js\""));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(server.send("GET", "/app.js", &[], b"").status, 200);
    // An action with the token only in the query, as a form on another site could send it, is refused.
    let by_query = server.send(
        "POST",
        &format!("/api/runs/old-a/resume?token={}", server.token),
        &[],
        b"",
    );
    assert_eq!(by_query.status, 403);
    let by_batch = server.send("POST", "/api/batches/b-1/stop", &[], b"");
    assert_eq!(by_batch.status, 403);
    // A GET never acts.
    assert_eq!(server.get("/api/runs/old-a/stop").status, 405);
    assert_eq!(server.get("/api/runs/old-a/resume").status, 405);
    assert_eq!(server.post("/api/runs").status, 405);
}

#[test]
fn requests_not_addressed_to_this_machine_are_refused() {
    let env = filled_env();
    let server = Server::start(env.cmd());
    let auth = format!("Bearer {}", server.token);
    let port = server.port;
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.0.0.2".to_string(),
        format!("[::1]:{port}"),
    ] {
        let request = format!(
            "GET /api/runs HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            server.raw(request.as_bytes()).unwrap().status,
            200,
            "{host}"
        );
    }
    for host in [
        format!("evil.example:{port}"),
        "attacker.test".to_string(),
        format!("192.0.2.1:{port}"),
        "".to_string(),
    ] {
        for path in ["/api/runs", "/"] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            );
            let answer = server.raw(request.as_bytes()).unwrap();
            assert_eq!(answer.status, 403, "{host} {path}");
            assert!(answer.error().contains("addressed to this machine"));
        }
    }
    // No Host at all (HTTP/1.0).
    let request = format!("GET /api/runs HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n");
    assert_eq!(server.raw(request.as_bytes()).unwrap().status, 403);
}

#[test]
fn unknown_and_malformed_requests_get_json_errors() {
    let env = filled_env();
    let server = Server::start(env.cmd());
    for (path, status, says) in [
        ("/api/runs/nope", 404, "no run \"nope\""),
        ("/api/runs/nope/metrics?name=loss", 404, "no run"),
        ("/api/runs/nope/logs", 404, "no run"),
        ("/api/runs/..%2Fetc", 400, "is not a run id"),
        ("/api/runs?limit=abc", 400, "limit=\"abc\" is not a count"),
        ("/api/runs?limit=0", 400, "from 1 to"),
        ("/api/runs?status=sleeping", 400, "is not a status"),
        ("/api/runs?colour=red", 400, "unknown query parameter"),
        ("/api/runs?limit=1&limit=2", 400, "twice"),
        (
            "/api/runs/old-a/logs?tail=-1",
            400,
            "tail=\"-1\" is not a count",
        ),
        ("/api/runs/old-a/logs?stream=stdin", 400, "stdout or stderr"),
        ("/api/runs/old-a/metrics?offset=x", 400, "byte offset"),
        ("/api/nothing", 404, "no such page or API call"),
        ("/nothing", 404, "no such page"),
    ] {
        let answer = server.get(path);
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert!(answer.error().contains(says), "{path}: {}", answer.error());
    }
    let answer = server.post("/api/runs/nope/stop");
    assert_eq!(
        (answer.status, answer.error().contains("no run")),
        (404, true)
    );
    let answer = server.post("/api/batches/nope/stop");
    assert_eq!(answer.status, 404);
    let answer = server.post("/api/runs/old-a/stop");
    assert_eq!(answer.status, 409, "an ended run has nothing to stop");
    assert!(answer.error().contains("not active"));
    let answer = server.post("/api/batches/b-1/stop");
    assert_eq!(answer.status, 409);
    let answer = server.post("/api/runs/old-a/resume");
    assert_eq!(
        answer.status, 409,
        "a completed run resumes only with force"
    );
    assert!(answer.error().contains("force=true"));
}

#[test]
fn the_api_serves_runs_metrics_logs_and_status() {
    let env = filled_env();
    let server = Server::start(env.cmd());
    let runs = server.get("/api/runs").json();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new-c", "old-b", "old-a"], "newest first");
    // The same records as `list --json`.
    let listed: Value = serde_json::from_slice(&env.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(runs, listed);
    let ids_of = |query: &str| -> Vec<String> {
        server
            .get(&format!("/api/runs?{query}"))
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids_of("limit=1"), ["new-c"]);
    assert_eq!(ids_of("batch=b-1"), ["old-b", "old-a"]);
    assert_eq!(ids_of("status=failed"), ["old-b"]);
    assert_eq!(ids_of("name=old-*"), ["old-b", "old-a"]);

    let run = server.get("/api/runs/old-a").json();
    assert_eq!(run["id"], "old-a");
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1);

    assert_eq!(
        server.get("/api/runs/old-a/metrics").json(),
        json!({"names": ["acc", "loss"]})
    );
    let loss = server.get("/api/runs/old-a/metrics?name=loss").json();
    assert_eq!(
        loss["points"],
        json!([
            {"step": 1, "value": 0.9, "attempt": 1, "time": 10},
            {"step": 2, "value": null, "attempt": 1, "time": 11},
            {"step": 2, "value": null, "attempt": 2, "time": 12},
        ])
    );
    let next = loss["nextOffset"].as_u64().unwrap();
    let rest = server
        .get(&format!("/api/runs/old-a/metrics?name=loss&offset={next}"))
        .json();
    assert_eq!(rest["points"], json!([]));
    assert_eq!(
        server.get("/api/runs/new-c/metrics?name=loss").json()["points"],
        json!([])
    );

    let tail = server.get("/api/runs/old-a/logs?tail=3").json();
    assert_eq!(tail["lines"], json!(["line 498", "line 499", "line 500"]));
    assert_eq!(tail["truncated"], true);
    assert_eq!(
        server.get("/api/runs/old-a/logs?stream=stderr").json()["lines"],
        json!(["warning"])
    );
    assert_eq!(
        server.get("/api/runs/new-c/logs").json()["lines"],
        json!([])
    );

    // /api/status is `status --json` (the machine sample differs from moment to moment).
    let status = server.get("/api/status").json();
    let cli: Value = serde_json::from_slice(&env.run(&["status", "--json"]).stdout).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&status), keys(&cli));
    assert_eq!(status["runs"], cli["runs"]);
    assert_eq!(status["store"]["runs"], 3);
    let machine = server.get("/api/machine").json();
    assert!(
        !machine["samples"].as_array().unwrap().is_empty(),
        "a first sample is taken at start"
    );
}

#[test]
fn a_change_in_the_store_reaches_the_event_stream_within_a_second() {
    let env = filled_env();
    let server = Server::start(env.cmd());
    let store = Store::open(&env.home_path()).unwrap();
    let mut latencies = Vec::new();
    for round in 0..3 {
        let name = format!("renamed-{round}");
        let (text, latency) = read_events_until(
            &server,
            &format!("\"name\":\"{name}\""),
            Duration::from_secs(20),
            || {
                store
                    .update_record("old-b", |r| r.name = name.clone())
                    .unwrap();
            },
        );
        let latency =
            latency.unwrap_or_else(|| panic!("no event for the change; the stream said {text:?}"));
        assert!(text.contains("event: runs"), "{text}");
        latencies.push(latency);
    }
    latencies.sort();
    // The median of three, so that one slow moment of a loaded machine does not decide.
    assert!(latencies[1] < Duration::from_secs(1), "{latencies:?}");
}

#[test]
fn stop_and_resume_act_on_real_runs_and_resume_outlives_the_server() {
    let env = Env::new();
    let mut run = env
        .cmd()
        .args([
            "run",
            "-q",
            "--gpus",
            "0",
            "-m",
            "2m",
            "--grace",
            "5s",
            "--run-id",
            "live-1",
            &script("sleeper.py"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || env
        .run_dir("live-1")
        .join("pid")
        .exists()));
    let mut server = Server::start(env.cmd());
    let refused = server.send("POST", "/api/runs/live-1/stop", &[], b"");
    assert_eq!(refused.status, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        env.record("live-1")["status"],
        "running",
        "a refused stop changes nothing"
    );
    let answer = server.post("/api/runs/live-1/stop");
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert_eq!(answer.json()["stopping"], json!(["live-1"]));
    assert!(wait_for(
        Duration::from_secs(30),
        || env.record("live-1")["status"] == "stopped"
    ));
    assert!(run.wait().unwrap().code() == Some(130));

    let answer = server.post("/api/runs/live-1/resume");
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(
        wait_for(Duration::from_secs(30), || {
            let rec = env.record("live-1");
            rec["status"] == "running" && rec["attempts"].as_array().unwrap().len() == 2
        }),
        "resumed: {}",
        env.record("live-1")
    );
    // Closing the dashboard stops nothing.
    assert!(server.stop());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.record("live-1")["status"], "running");
    let stopped = env.run(&["stop", "live-1"]);
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "{}",
        common::stderr_of(&stopped)
    );
    assert_eq!(env.record("live-1")["status"], "stopped");
    assert!(env.run_dir("live-1").join("serve-resume.log").exists());
}

/// A small deterministic generator, so a failing case can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn thousands_of_random_requests_are_all_answered_and_the_server_stays_up() {
    let env = filled_env();
    let mut server = Server::start(env.cmd());
    let token = server.token.clone();
    let mut rng = Lcg(0x5eed);
    let methods = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "get", "FOO",
    ];
    let pieces = [
        "api",
        "runs",
        "old-a",
        "nope",
        "metrics",
        "logs",
        "stop",
        "resume",
        "batches",
        "b-1",
        "status",
        "machine",
        "events",
        "..",
        ".",
        "%2e%2e",
        "%00",
        "%ff",
        "%",
        "é",
        "name=loss",
        "limit=5",
        "limit=-1",
        "tail=abc",
        "offset=99999999999999999999",
        "status=running",
        "stream=stderr",
        "token=x",
        "?",
        "&",
        "=",
        "//",
        "a b",
        "\u{1F600}",
        "*",
        "[",
        "app.js",
        "",
    ];
    let headers = [
        "Accept: */*",
        "Content-Type: application/json",
        "Authorization: Bearer",
        "Authorization: Basic x",
        "Authorization: Bearer 0",
        "X-Forwarded-Host: evil.example",
        "Origin: http://evil.example",
        "Cookie: a=b",
        "Range: bytes=0-1",
        "Expect: 100-continue",
        "Accept-Encoding: gzip",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    for i in 0..3000 {
        let method = rng.pick(&methods);
        let mut path = String::from("/");
        for _ in 0..rng.below(6) {
            path.push_str(rng.pick(&pieces));
            path.push(if rng.below(3) == 0 { '?' } else { '/' });
        }
        // Spaces would end the request target: escape them as a browser would.
        let path = path.replace(' ', "%20");
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        match rng.below(5) {
            0 => request.push_str("Host: evil.example\r\n"),
            1 => {}
            _ => request.push_str(&format!("Host: 127.0.0.1:{}\r\n", server.port)),
        }
        if rng.below(2) == 0 {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for _ in 0..rng.below(4) {
            request.push_str(rng.pick(&headers));
            request.push_str("\r\n");
        }
        let body: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&body);
        // Stopping or resuming real runs is not what this test is about.
        let acts = method == "POST" && (path.contains("stop") || path.contains("resume"));
        if acts {
            continue;
        }
        let answer = server.raw(&bytes).unwrap_or_else(|e| {
            panic!("request {i} ({method} {path}) got no well-formed answer: {e}")
        });
        assert!(
            answer.status < 500,
            "request {i} ({method} {path}): {} {}",
            answer.status,
            answer.text()
        );
        *statuses.entry(answer.status).or_insert(0) += 1;
    }
    // Request lines that are not HTTP at all are refused, not dropped.
    for garbage in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost\r\n\r\n",
    ] {
        let answer = server.raw(garbage).expect("an answer to garbage");
        assert_eq!(answer.status, 400, "{garbage:?}");
    }
    assert!(server.alive(), "the server is still up");
    assert_eq!(server.get("/api/runs").status, 200);
    eprintln!(
        "{} answers by status in {:?}: {statuses:?}",
        statuses.values().sum::<u32>(),
        started.elapsed()
    );
    assert!(
        statuses.len() >= 4,
        "the requests reached several kinds of answer: {statuses:?}"
    );
}

#[test]
fn a_bind_beyond_loopback_is_warned_about_and_loopback_is_not() {
    let env = filled_env();
    let first_line_and_warning = |bind: &str| {
        let mut child = env
            .cmd()
            .args(["serve", "--port", "0", "--bind", bind])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        // The warning comes before the address: once the address is out, it was said or not.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let out = child.wait_with_output().unwrap();
        (line, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (line, stderr) = first_line_and_warning("0.0.0.0");
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    assert!(stderr.contains("reachable from other machines"), "{stderr}");
    let (line, stderr) = first_line_and_warning("127.0.0.1");
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    assert!(
        !stderr.contains("reachable from other machines"),
        "{stderr}"
    );
}
