//! Fills a home with realistic run records, for the whole-process store benchmarks
//! (`benches/store.sh`): `BACKPROP_BENCH_HOME=/tmp/h BACKPROP_BENCH_RUNS=100000 cargo bench
//! --bench store_fill`.

#[path = "support/records.rs"]
mod records;

use backprop::store::Store;

fn main() {
    let home = std::env::var("BACKPROP_BENCH_HOME").expect("BACKPROP_BENCH_HOME names the home");
    let runs: usize = std::env::var("BACKPROP_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let started = std::time::Instant::now();
    let store = Store::open(std::path::Path::new(&home)).expect("a writable home");
    backprop::store::export::set_enabled(false);
    let ids = records::fill(&store, runs);
    eprintln!(
        "filled {home} with {} runs in {:.1}s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
}
