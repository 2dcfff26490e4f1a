//! The store at scale: 100,000 realistic run records in the SQLite store.
//!
//! `cargo bench --bench store` (add `-- --quick` for a short run; plots are off). Measures
//! the operations whose cost must not grow with the store:
//! - `progress_update`: one live run's progress write (a transaction that reads the record,
//!   changes it and writes it back with its rows), what every run does about once a second;
//! - `admission_read`: the active runs, what every admission decision reads;
//! - `list_50`: the rows of `list` (the newest 50), and `list_all`: every row;
//! - `get`: one record by id (`status <id>`).
//!
//! Whole-process figures (a run's start, memory, the lock's busy time, the export) are in
//! `benches/store.sh`.

#[path = "support/records.rs"]
mod records;

use std::hint::black_box;
use std::time::Duration;

use backprop::store::{ListQuery, Store, query};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

const RUNS: usize = 100_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("backprop-bench-store-")
        .tempdir()
        .expect("a temp dir");
    backprop::store::export::set_enabled(false);
    let store = Store::open(dir.path()).expect("a writable temp home");
    let ids = records::fill(&store, RUNS);
    let size = std::fs::metadata(store.db_path())
        .expect("the store exists")
        .len();
    eprintln!(
        "store: {RUNS} records, backprop.db {size} bytes ({} bytes per record)",
        size / RUNS as u64
    );
    // A live run in the middle of the store.
    let target = ids[RUNS / 2].clone();

    let mut group = c.benchmark_group("store_100k");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let mut db = store.connect().expect("a connection");
    let mut step = 1_000_000u64;
    group.bench_function("progress_update", |b| {
        b.iter(|| {
            step += 1;
            db.update(|tx| {
                let mut rec = tx.record(&target).expect("the record");
                rec.last_step = Some(step);
                rec.last_loss = Some(1.0 / step as f64);
                rec.metrics.insert("lr".into(), Some(0.01));
                rec.active_ms += 1000;
                tx.put(&rec);
            })
            .expect("the record is updated")
        })
    });
    let db = store.connect().expect("a connection");
    group.bench_function("admission_read", |b| {
        b.iter(|| black_box(query::active(db.conn()).expect("read").len()))
    });
    let newest = ListQuery {
        limit: Some(50),
        ..ListQuery::default()
    };
    group.bench_function("list_50", |b| {
        b.iter(|| black_box(query::list_rows(db.conn(), &newest).expect("read").len()))
    });
    group.bench_function("list_all", |b| {
        b.iter(|| {
            let rows = query::list_rows(db.conn(), &ListQuery::default()).expect("read");
            assert_eq!(rows.len(), RUNS);
        })
    });
    group.bench_function("get", |b| {
        b.iter(|| black_box(query::get(db.conn(), &target).expect("read").id))
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
