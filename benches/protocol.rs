//! Throughput of stdout protocol parsing on a realistic mix of 10,000 lines.
//!
//! `cargo bench --bench protocol` (add `-- --quick` for a short run). Besides `parse_line`, it
//! measures a `serde_json::Value` baseline on the same lines (which rejects the NaN lines) and the
//! whole `pump_stdout` loop writing to memory.

use std::hint::black_box;
use std::io;

use backprop::protocol::{Parsed, parse_line};
use backprop::pump::{PumpOptions, pump_stdout};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LINES: usize = 10_000;

/// A deterministic mix: mostly short progress lines, some plain text (including tqdm-like and
/// JSON-looking non-objects), some checkpoint, event and NaN lines.
fn mix() -> Vec<String> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..LINES)
        .map(|i| {
            let r = rand();
            let loss = (r % 100_000) as f64 / 100_000.0 + 0.01;
            match r % 100 {
                0..=69 => format!(
                    "{{\"step\": {i}, \"loss\": {loss:.4}, \"lr\": 0.01, \"epoch\": {}}}",
                    i / 1000
                ),
                70..=77 => format!(
                    "{{\"step\": {i}, \"loss\": {loss}, \"lr\": 3e-4, \"epoch\": {:.3}, \
                     \"grad_norm\": {:.5}, \"tokens_per_s\": {}, \"phase\": \"train\"}}",
                    i as f64 / 1000.0,
                    loss * 3.0,
                    r % 90_000
                ),
                78..=79 => format!("{{\"step\": {i}, \"loss\": NaN, \"grad_norm\": Infinity}}"),
                80..=81 => format!(
                    "{{\"event\": \"checkpoint_saved\", \"path\": \"checkpoints/step_{i}.pt\", \
                     \"step\": {i}}}"
                ),
                82 => format!("{{\"event\": \"eval_done\", \"val_loss\": {loss}, \"acc\": 0.91}}"),
                83..=91 => format!(
                    "Epoch {}/10: loss={loss:.4} lr=0.01 - {} samples/s",
                    i / 1000,
                    r % 5000
                ),
                92..=94 => format!("[{i}, {loss}]"),
                95..=97 => String::new(),
                _ => format!(
                    "WARNING: something about {i} that is fairly long and not json at all, \
                     just a log line from a library {{not json}}"
                ),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = mix();
    let messages = lines
        .iter()
        .filter(|l| matches!(parse_line(l.as_bytes()), Parsed::Message(_)))
        .count();
    eprintln!(
        "mix: {LINES} lines, {messages} protocol lines, {} bytes",
        lines.iter().map(|l| l.len() + 1).sum::<usize>()
    );

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("parse_line", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(parse_line(black_box(line.as_bytes())));
            }
        })
    });
    group.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    line.as_bytes(),
                )))
                .ok();
            }
        })
    });

    let stream: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\n"].concat())
        .collect();
    let opts = PumpOptions {
        echo_protocol: false,
        attempt: 1,
    };
    group.bench_function("pump_stdout", |b| {
        b.iter(|| {
            let mut batches = 0u32;
            pump_stdout(
                &stream[..],
                io::sink(),
                io::sink(),
                io::sink(),
                &opts,
                || 0,
                |batch| {
                    batches += 1;
                    black_box(batch);
                },
            )
            .unwrap();
            batches
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
