//! `backprop serve` in a real headless Chromium (driven through chromedriver): the run table
//! follows live runs without a reload, stop works with the page's token and is refused
//! without it, a run with progress gets its metric chart, and each view is saved as a
//! screenshot under `target/serve-screenshots/` for a person to look at.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/browser-up.sh` installs them). Without them
//! the test says so and passes, except under `CI=true`, where it fails.

mod common;
#[path = "serve_support/mod.rs"]
mod serve_support;

use backprop::record::lifecycle::{self, AttemptEnd, AttemptStart};
use backprop::record::{RunRecord, RunSpec, Status};
use backprop::runid::RunId;
use backprop::store::Store;
use common::fake_gpu::{GpuEnv, gpu};
use common::{prerequisite, script, wait_for};
use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt;
use serde_json::{Value, json};
use serve_support::Server;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every wait for the page is this generous: a loaded 2-core machine is slow, never wrong.
const PATIENCE: Duration = Duration::from_secs(30);

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's programs, or None (after saying why) when the test may be skipped.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let found = (which::which("chromium"), which::which("chromedriver"));
    let ready = prerequisite(
        found.0.is_ok() && found.1.is_ok(),
        "chromium and chromedriver (the browser tests)",
        "run .ci/browser-up.sh, or apt-get install chromium chromium-driver",
    );
    match found {
        (Ok(browser), Ok(driver)) if ready => Some((browser, driver)),
        _ => None,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver(program: &PathBuf) -> Driver {
    let port = free_port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    assert!(
        wait_for(PATIENCE, || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "chromedriver listens"
    );
    driver
}

async fn open_browser(driver: &Driver, browser: &PathBuf) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session starts")
}

/// Runs `script` in the page until it returns true (it is a function body: `return ...`).
async fn wait_in_page(client: &Client, what: &str, script: &str) {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < PATIENCE {
        match client.execute(script, vec![]).await {
            Ok(Value::Bool(true)) => return,
            Ok(other) => last = other,
            Err(e) => last = Value::String(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = client
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap_or_default();
    panic!("the page never showed {what} (last answer {last}); the page said:\n{body}");
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// A finished run of batch `batch` whose loss fell from `start` over 40 steps.
fn finished(store: &Store, id: &str, batch: &str, start: f64, created: u64) {
    let mut rec = RunRecord::new(
        RunId::parse(id).unwrap(),
        id.into(),
        RunSpec::default(),
        created,
    );
    rec.batch_id = Some(RunId::parse(batch).unwrap());
    let first = AttemptStart {
        number: 1,
        ..Default::default()
    };
    lifecycle::admit(&mut rec, first, created + 1).unwrap();
    let end = AttemptEnd {
        status: Status::Completed,
        reason: "exit".into(),
        exit_code: Some(0),
        signal: None,
    };
    let metrics: String = (1..=40)
        .map(|step| {
            let loss = start / (1.0 + step as f64 / 4.0);
            format!("{{\"step\": {step}, \"loss\": {loss}, \"attempt\": 1}}\n")
        })
        .collect();
    rec.last_step = Some(40);
    rec.last_loss = Some(start / 11.0);
    // As an adaptive search stores it: both runs went through rung 0, the better one on.
    let better = start < 1.5;
    rec.extra.insert(
        "search".into(),
        json!({
            "spec": {"method": "asha", "metric": "loss", "mode": "min",
                     "minBudget": {"steps": 20}, "maxBudget": {"steps": 40}, "reductionFactor": 2},
            "maxParallel": 2,
            "run": {"position": if better { 1 } else { 0 }, "started": true,
                    "rungs": [{"rung": 0, "metric": start / 6.0, "step": 20, "activeMs": 20_000}],
                    "promotedTo": if better { json!(1) } else { Value::Null },
                    "end": if better { "completed" } else { "pruned" }},
        }),
    );
    lifecycle::finish(&mut rec, &end, created + 50_000).unwrap();
    store.update(|tx| tx.put(&rec)).unwrap();
    let dir = store.ensure_run_dir(id).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
}

/// The `backprop run` processes a test started: asked to stop (SIGTERM) and waited for when
/// dropped, so a failing test leaves no run behind.
#[derive(Default)]
struct Runs(Vec<Child>);

impl Drop for Runs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if child.try_wait().ok().flatten().is_none() {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

/// A run of `sleeper.py` (progress every 0.1 s) on one GPU, started in the background.
fn start_run(env: &GpuEnv, id: &str) -> Child {
    env.cmd()
        .args([
            "run",
            "-q",
            "--gpus",
            "1",
            "-m",
            "3m",
            "--grace",
            "5s",
            "--run-id",
            id,
            &script("sleeper.py"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn status_of(env: &GpuEnv, id: &str) -> Value {
    env.env.record(id)["status"].clone()
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let Some((browser, driver_program)) = browser_programs() else {
        return;
    };
    let env = GpuEnv::new(
        json!({"mode": "ok", "gpus": [gpu(30_000, json!(41)), gpu(40_000, json!(38))]}),
    );
    let store = Store::open(&env.env.home_path()).unwrap();
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    finished(&store, "sweep-a", "b-1", 2.0, hour_ago);
    finished(&store, "sweep-b", "b-1", 1.2, hour_ago + 60_000);
    let mut runs = Runs::default();
    runs.0.push(start_run(&env, "live-1"));
    assert!(
        wait_for(PATIENCE, || env.env.run_dir("live-1").join("pid").exists()),
        "live-1 starts"
    );
    let server = Server::start(env.cmd());
    let driver = start_driver(&driver_program);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = open_browser(&driver, &browser).await;
        // The browser is closed whatever happens below, then a failure is passed on.
        let checks = AssertUnwindSafe(async {
        client.goto(&server.url).await.unwrap();
        wait_in_page(
            &client,
            "live-1 running in the run table",
            r#"return document.querySelector('#runs tr[data-id="live-1"]')?.dataset.status === "running""#,
        )
        .await;
        // A mark that a reload would wipe: everything below must happen without one.
        client.execute("window.loadedOnce = true; return true", vec![]).await.unwrap();

        // A run started after the page loaded appears, running, by itself.
        runs.0.push(start_run(&env, "live-2"));
        wait_in_page(
            &client,
            "live-2 running in the run table",
            r#"return document.querySelector('#runs tr[data-id="live-2"]')?.dataset.status === "running""#,
        )
        .await;
        screenshot(&client, "runs").await;

        // Without the token the server refuses a stop, and the run goes on.
        let refused = client
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch('/api/runs/live-2/stop', {method: 'POST'}).then((r) => done(r.status), (e) => done(String(e)));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(refused, json!(403));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(status_of(&env, "live-2"), "running", "a refused stop changes nothing");

        // The page's own Stop button carries the token: the run stops, and its row says so
        // without a reload.
        client
            .execute(
                r#"document.querySelector('#runs tr[data-id="live-2"] button[data-action="stop"]').click(); return true"#,
                vec![],
            )
            .await
            .unwrap();
        wait_in_page(
            &client,
            "live-2 stopped in the run table",
            r#"return document.querySelector('#runs tr[data-id="live-2"]')?.dataset.status === "stopped" && window.loadedOnce === true"#,
        )
        .await;
        assert_eq!(status_of(&env, "live-2"), "stopped");

        // The run view: a loss chart with a line, the attempts, the log following.
        client.goto(&format!("{}/#/run/live-1", server.base())).await.unwrap();
        wait_in_page(
            &client,
            "the loss chart of live-1",
            r#"const line = document.querySelector('svg[data-metric="loss"] path.series');
               return !!line && line.getAttribute('d').split('L').length > 5"#,
        )
        .await;
        wait_in_page(
            &client,
            "the attempts table and the log",
            r#"return document.querySelectorAll('#attempts tbody tr').length === 1
                   && document.querySelector('#log').textContent.includes('"step"')"#,
        )
        .await;
        screenshot(&client, "run").await;

        // The batch view: both runs, best (lowest loss) first, overlaid in one chart, and the
        // search's rung table in start order.
        client.goto(&format!("{}/#/batch/b-1", server.base())).await.unwrap();
        wait_in_page(
            &client,
            "batch b-1, best first, with its chart and rungs",
            r#"const rows = [...document.querySelectorAll('#batch-runs tbody tr')].map((r) => r.dataset.id);
               const rungs = [...document.querySelectorAll('#rungs tbody tr')].map((r) => r.dataset.id);
               return rows.join() === 'sweep-b,sweep-a' && rungs.join() === 'sweep-a,sweep-b'
                   && document.querySelectorAll('svg[data-metric="loss"] path.series').length === 2"#,
        )
        .await;
        screenshot(&client, "batch").await;

        // The GPU panel: both GPUs, with the run that holds one.
        client.goto(&format!("{}/#/gpus", server.base())).await.unwrap();
        wait_in_page(
            &client,
            "two GPUs, one held by live-1",
            r#"const cards = document.querySelectorAll('#gpus [data-gpu]');
               return cards.length === 2 && document.querySelector('#gpus').textContent.includes('live-1')
                   && !!document.querySelector('#gpus svg path.series')"#,
        )
        .await;
        screenshot(&client, "gpus").await;
        })
        .catch_unwind()
        .await;
        let _ = client.close().await;
        if let Err(failure) = checks {
            std::panic::resume_unwind(failure);
        }
    });

    let stopped = env.run(&["stop", "live-1"]);
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "{}",
        common::stderr_of(&stopped)
    );
    drop(runs);
    drop(server);
}
