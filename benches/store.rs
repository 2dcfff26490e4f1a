//! The store at scale: 10,000 realistic run records in `experiments.json`.
//!
//! `cargo bench --bench store` (add `-- --quick` for a short run; plots are off). Measures:
//! - `update_record`: `Store::update_record` of one run (lock, read, parse the raw index,
//!   change one record, re-serialise the file, write a temp file, fsync, rename, fsync the
//!   directory), i.e. one progress or status write of a live run;
//! - `read_parse_all`: `Store::read()` plus parsing every record, what `list` (and the reaper
//!   every command runs first) does;
//! - for the analysis, the parts of those: `read_index` (read + the raw-value index only),
//!   `to_bytes` (re-serialising the file) and `write_fsync_rename` (writing the same bytes the
//!   way the store does: temp file, fsync, rename, directory fsync).
//!
//! The records are built with the real `RunRecord` type and look like what `backprop run` and
//! `backprop queue` leave behind (spec with args and env, 1–2 attempts, checkpoints with
//! absolute paths, several metrics, sweep params on most); the average size is printed and is
//! about the size of a real record written by `backprop run tests/scripts/progress.py`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use backprop::record::lifecycle::{self, AttemptEnd, AttemptStart};
use backprop::record::{RunRecord, RunSpec, Status};
use backprop::runid::RunId;
use backprop::store::Store;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use serde_json::{Map, Value};

const RUNS: usize = 10_000;
/// 2026-01-01T00:00:00Z in epoch ms: the runs are spread over the following weeks.
const T0: u64 = 1_767_225_600_000;

/// A deterministic xorshift, so every bench run sees the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// Run `i` of the store: mostly sweep runs of a training script, some plain `run`s.
fn record(i: usize, rng: &mut Rng) -> RunRecord {
    let lrs = ["0.1", "0.03", "0.01", "0.003", "0.001", "0.0003"];
    let bss = ["32", "64", "128", "256"];
    let lr = lrs[rng.below(lrs.len() as u64) as usize];
    let bs = bss[rng.below(bss.len() as u64) as usize];
    let in_batch = rng.below(10) < 7;
    let name = if in_batch {
        format!("lr{lr}-bs{bs}")
    } else {
        "train".to_string()
    };
    let created = T0 + i as u64 * 240_000 + rng.below(60_000);
    let id = format!(
        "{name}-20260{}{:02}-{:02}{:02}{:02}-{:04x}",
        1 + (i / 3000).min(8),
        1 + (i / 100) % 28,
        (i / 60) % 24,
        i % 60,
        rng.below(60),
        rng.below(0x10000)
    );
    let run_dir = format!("/home/ml/.backprop/runs/{id}");
    let program = "/home/ml/projects/cifar/train.py".to_string();
    let mut env = BTreeMap::new();
    if rng.below(3) == 0 {
        env.insert("WANDB_MODE".to_string(), "offline".to_string());
    }
    let spec = RunSpec {
        program: program.clone(),
        args: vec![
            "--lr".into(),
            lr.into(),
            "--batch-size".into(),
            bs.into(),
            "--epochs".into(),
            "20".into(),
        ],
        interpreter: Some("python3".into()),
        cwd: "/home/ml/projects/cifar".into(),
        env,
        options: Default::default(),
    };
    let mut rec = RunRecord::new(RunId::parse(&id).expect("a valid id"), name, spec, created);
    rec.queue_seq = created * 1_000_000 + rng.below(1_000_000);
    rec.script_path = program;
    let final_status = match rng.below(20) {
        0..=11 => Status::Completed,
        12..=16 => Status::Timeboxed,
        17..=18 => Status::Failed,
        _ => Status::Stopped,
    };
    let attempts = if rng.below(5) == 0 { 2 } else { 1 };
    let mut start = created + 50 + rng.below(2000);
    let mut step = 0u64;
    let mut loss = 2.3;
    for n in 1..=attempts {
        let active = 60_000 + rng.below(540_000);
        step += active / 50;
        loss *= 0.3 + 0.5 * rng.unit();
        let began = AttemptStart {
            number: n,
            gpus: vec![rng.below(2) as u32],
            reserved_mb: Some(2500),
            resumed_from: rec.last_checkpoint.clone(),
            host: "gpu-box-01".into(),
            lease: None,
        };
        lifecycle::admit(&mut rec, began, start).expect("a queued run starts");
        for k in 1..=1 + rng.below(3) {
            rec.add_checkpoint(&format!("{run_dir}/checkpoints/ckpt-{}.pt", step * k / 3));
        }
        let attempt = rec.current_attempt_mut().expect("just started");
        attempt.active_ms = active;
        attempt.pid = Some(10_000 + rng.below(50_000) as u32);
        attempt.last_step = Some(step);
        attempt.last_loss = Some(loss);
        let last = n == attempts;
        let status = if last {
            final_status
        } else {
            Status::Timeboxed
        };
        let end = AttemptEnd {
            status,
            reason: match status {
                Status::Completed | Status::Failed => "exit",
                Status::Timeboxed => "timebox",
                _ => "user",
            }
            .into(),
            exit_code: Some(match status {
                Status::Completed => 0,
                Status::Failed => 1,
                _ => 130,
            }),
            signal: None,
        };
        let ended = start + active + rng.below(3000);
        if last {
            lifecycle::finish(&mut rec, &end, ended).expect("a running run ends");
        } else {
            lifecycle::requeue(&mut rec, &end, "next round", false, ended).expect("requeued");
        }
        rec.active_ms += active;
        start += active + 5_000 + rng.below(60_000);
    }
    rec.last_step = Some(step);
    rec.last_loss = Some(loss);
    rec.metrics
        .insert("lr".into(), Some(lr.parse().expect("a number")));
    rec.metrics
        .insert("epoch".into(), Some((step / 1000) as f64 + rng.unit()));
    rec.metrics
        .insert("grad_norm".into(), Some(rng.unit() * 4.0));
    rec.metrics
        .insert("val_loss".into(), Some(loss * (1.0 + 0.2 * rng.unit())));
    rec.metrics
        .insert("samples_per_s".into(), Some((800 + rng.below(400)) as f64));
    if in_batch {
        let mut params = Map::new();
        params.insert(
            "lr".into(),
            Value::from(lr.parse::<f64>().expect("a number")),
        );
        params.insert(
            "bs".into(),
            Value::from(bs.parse::<u64>().expect("a number")),
        );
        rec.params = Some(params);
        let batch = format!("batch-20260{}-{:04x}", 1 + i / 2000, i / 24);
        rec.batch_id = Some(RunId::parse(&batch).expect("a valid id"));
    }
    rec
}

/// A home holding `RUNS` records, written through the store itself.
fn populated_home(dir: &Path) -> (Store, Vec<RunId>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let records: Vec<RunRecord> = (0..RUNS).map(|i| record(i, &mut rng)).collect();
    let ids = records.iter().map(|r| r.id.clone()).collect();
    let store = Store::open(dir).expect("a writable temp home");
    store
        .update(|ex| {
            for rec in &records {
                ex.put(rec);
            }
        })
        .expect("the store is written");
    (store, ids)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("backprop-bench-store-")
        .tempdir()
        .expect("a temp dir");
    let (store, ids) = populated_home(dir.path());
    let size = fs::metadata(store.experiments_path())
        .expect("the store exists")
        .len();
    let ex = store.read().expect("the store reads");
    assert_eq!(ex.len(), RUNS, "distinct run ids");
    eprintln!(
        "store: {RUNS} records, experiments.json {size} bytes ({} bytes per record) in {}",
        size / RUNS as u64,
        dir.path().display()
    );

    let mut group = c.benchmark_group("store_10k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // One run in the middle of the file reports progress: the write every live run makes
    // about once a second.
    let target = ids[RUNS / 2].clone();
    let mut step = 1_000_000u64;
    group.bench_function("update_record", |b| {
        b.iter(|| {
            step += 1;
            store
                .update_record(&target, |rec| {
                    rec.last_step = Some(step);
                    rec.last_loss = Some(1.0 / step as f64);
                    rec.metrics.insert("lr".into(), Some(0.01));
                    rec.active_ms += 1000;
                })
                .expect("the record is updated")
        })
    });

    group.bench_function("read_parse_all", |b| {
        b.iter(|| {
            let ex = store.read().expect("the store reads");
            let records = ex.records();
            assert_eq!(records.len(), RUNS);
            records.into_iter().filter(Result::is_ok).count()
        })
    });

    group.bench_function("read_index", |b| {
        b.iter(|| black_box(store.read().expect("the store reads").len()))
    });

    group.bench_function("to_bytes", |b| b.iter(|| black_box(ex.to_bytes().len())));

    // The store's write path without the read/parse/serialise: how much of `update_record`
    // is the disk. Same directory, same size, same syscalls as `Store::write_locked`.
    let bytes = ex.to_bytes();
    let scratch = dir.path().join("scratch");
    fs::create_dir(&scratch).expect("a scratch dir");
    group.bench_function("write_fsync_rename", |b| {
        b.iter(|| {
            let temp = scratch.join("experiments.json.tmp");
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)
                .expect("the temp file opens");
            file.write_all(&bytes).expect("written");
            file.sync_all().expect("fsynced");
            fs::rename(&temp, scratch.join("experiments.json")).expect("renamed");
            File::open(&scratch)
                .and_then(|d| d.sync_all())
                .expect("directory fsynced");
        })
    });
    group.finish();
}

// No plots: criterion's plotters backend needs system fonts, which a bare machine may lack.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
