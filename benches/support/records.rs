//! Realistic run records for the store benchmarks: mostly sweep runs of a training script,
//! some plain `run`s, with a spec (args, env), one or two attempts made through the real
//! lifecycle, checkpoints with absolute paths, several metrics and sweep params. The same
//! seed gives the same records.
#![allow(dead_code)]

use std::collections::BTreeMap;

use backprop::record::lifecycle::{self, AttemptEnd, AttemptStart};
use backprop::record::{RunRecord, RunSpec, Status};
use backprop::runid::RunId;
use backprop::store::Store;
use serde_json::{Map, Value};

/// 2026-01-01T00:00:00Z in epoch ms: the runs are spread over the following weeks.
const T0: u64 = 1_767_225_600_000;

/// A deterministic xorshift, so every bench run sees the same store.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// Run `i` of the store: mostly sweep runs of a training script, some plain `run`s.
pub fn record(i: usize, rng: &mut Rng) -> RunRecord {
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

/// Fills `store` with `runs` records (in transactions of 5,000) and returns their ids.
pub fn fill(store: &Store, runs: usize) -> Vec<RunId> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::with_capacity(runs);
    for chunk in (0..runs).collect::<Vec<_>>().chunks(5_000) {
        let records: Vec<RunRecord> = chunk.iter().map(|i| record(*i, &mut rng)).collect();
        ids.extend(records.iter().map(|r| r.id.clone()));
        store
            .update(|tx| {
                for rec in &records {
                    tx.put(rec);
                }
            })
            .expect("the store is written");
    }
    ids
}
