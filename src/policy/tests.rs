//! Scenarios for the policy, in memory: a machine, live runs, a queue, and what starts.

use super::*;
use crate::gpu::GpuInfo;
use crate::resources::GpuState;

pub(crate) fn gpu(index: u32, free_mb: u64, temp: f64) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        name: "Fake".into(),
        memory_total_mb: Some(40_000),
        memory_used_mb: Some(40_000u64.saturating_sub(free_mb)),
        memory_free_mb: Some(free_mb),
        temperature_c: Some(temp),
        utilization_pct: Some(0.0),
        unreadable: vec![],
        ..Default::default()
    }
}

/// A GPU of `total_mb` with nothing on it.
fn empty_gpu(index: u32, total_mb: u64) -> GpuInfo {
    let mut g = gpu(index, total_mb, 40.0);
    g.memory_total_mb = Some(total_mb);
    g.memory_used_mb = Some(0);
    g
}

pub(crate) fn settings() -> Settings {
    Settings {
        gates: Thresholds {
            min_free_ram_gb: 4.0,
            max_cpu_load: 2.0,
        },
        min_free_vram_mb: 2500,
        thermal: crate::thermal::Limits::default(),
        require_readings: true,
        visible: None,
        inside_allocation: false,
    }
}

fn machine(gpus: Vec<GpuInfo>) -> Snapshot {
    Snapshot {
        cpus: 2,
        load_per_core: 0.1,
        free_ram_gb: 16.0,
        total_ram_gb: 32.0,
        gpu: GpuState {
            probe: ProbeKind::NvidiaSmi,
            gpus,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn id(text: &str) -> RunId {
    RunId::parse(text).unwrap()
}

fn waiter(name: &str, seq: u64, gpus: Option<u32>, limit_gb: Option<f64>, max: u32) -> Waiter {
    Waiter {
        id: id(name),
        seq,
        request: Request {
            gpus,
            memory_limit: limit_gb.map(MemoryLimit::Gigabytes),
            max_parallel: max,
        },
    }
}

fn cpu(name: &str, seq: u64, max: u32) -> Waiter {
    waiter(name, seq, Some(0), None, max)
}

fn holder(name: &str, lease: Option<(&[u32], u64)>) -> Holder {
    Holder {
        id: id(name),
        lease: lease.map(|(gpus, reserved_mb)| GpuLease {
            gpus: gpus.to_vec(),
            uuids: gpus.iter().map(|g| format!("GPU-{g}")).collect(),
            reserved_mb,
        }),
    }
}

/// Every GPU's processes are visible and none belongs to a run (nothing allocated yet).
fn nothing_allocated(snapshot: &Snapshot) -> HashMap<String, GpuUse> {
    snapshot
        .gpu
        .gpus
        .iter()
        .map(|g| {
            (
                g.uuid.clone(),
                GpuUse {
                    attributable: true,
                    ..Default::default()
                },
            )
        })
        .collect()
}

struct Case {
    snapshot: Snapshot,
    holders: Vec<Holder>,
    waiters: Vec<Waiter>,
    settings: Settings,
}

impl Case {
    fn new(gpus: Vec<GpuInfo>) -> Case {
        Case {
            snapshot: machine(gpus),
            holders: Vec::new(),
            waiters: Vec::new(),
            settings: settings(),
        }
    }

    fn decide(&self, name: &str) -> Decision {
        let usage = nothing_allocated(&self.snapshot);
        let world = World {
            snapshot: &self.snapshot,
            holders: &self.holders,
            waiters: &self.waiters,
            usage: &usage,
        };
        decide(&id(name), &world, &self.settings)
    }

    /// Decides for `name`; a start turns it into a holder, as the admitting write does.
    fn admit(&mut self, name: &str) -> Decision {
        let decision = self.decide(name);
        if let Decision::Start(placement) = &decision {
            self.waiters.retain(|w| w.id != *name);
            self.holders.push(Holder {
                id: id(name),
                lease: placement.lease(),
            });
        }
        decision
    }
}

fn started(decision: &Decision) -> Placement {
    match decision {
        Decision::Start(p) => p.clone(),
        other => panic!("expected a start, got {other:?}"),
    }
}

fn waits(decision: &Decision) -> &str {
    match decision {
        Decision::Wait(_, why) => why,
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn first_come_first_served_within_max_parallel() {
    let mut case = Case::new(vec![]);
    case.holders.push(holder("a", None));
    case.waiters = vec![cpu("b", 2, 2), cpu("c", 3, 2)];
    // b comes first and a slot is free: b starts, and c counts b as started.
    assert!(waits(&case.decide("c")).contains("2 runs active, maxParallel 2"));
    started(&case.admit("b"));
    assert!(waits(&case.decide("c")).contains("maxParallel 2"));
    // With room for both, the later one does not wait for the earlier one's process.
    let mut roomy = Case::new(vec![]);
    roomy.waiters = vec![cpu("b", 2, 4), cpu("c", 3, 4)];
    started(&roomy.decide("c"));
}

#[test]
fn simultaneous_no_wait_runs_all_start_when_they_all_fit() {
    let mut case = Case::new(vec![]);
    case.waiters = (0..5).map(|i| cpu(&format!("r{i}"), 10 + i, 5)).collect();
    // Whatever order the five processes decide in, each one fits.
    for name in ["r3", "r0", "r4", "r1", "r2"] {
        started(&case.admit(name));
    }
    assert_eq!(case.holders.len(), 5);
}

#[test]
fn ties_in_arrival_order_are_broken_by_run_id() {
    let mut case = Case::new(vec![]);
    case.holders.push(holder("busy", None));
    case.waiters = vec![cpu("b", 7, 2), cpu("a", 7, 2)];
    started(&case.decide("a"));
    assert!(waits(&case.decide("b")).contains("maxParallel 2"));
}

#[test]
fn cpu_only_runs_see_no_gpu() {
    let case = {
        let mut c = Case::new(vec![gpu(0, 20_000, 40.0)]);
        c.waiters.push(cpu("a", 1, 4));
        c
    };
    let placement = started(&case.decide("a"));
    assert_eq!(
        placement.env(Framework::Pytorch),
        vec![("CUDA_VISIBLE_DEVICES".to_string(), "-1".to_string())]
    );
    assert!(placement.lease().is_none());
}

#[test]
fn a_reservation_never_lands_on_a_gpu_that_cannot_hold_it() {
    // One 10 GB GPU; the first -g 6 run holds 6 GB it has not allocated yet.
    let mut case = Case::new(vec![empty_gpu(0, 10_240)]);
    case.waiters = vec![
        waiter("a", 1, Some(1), Some(6.0), 4),
        waiter("b", 2, Some(1), Some(6.0), 4),
    ];
    let first = started(&case.admit("a"));
    assert_eq!(first.gpus, vec![0]);
    assert_eq!(first.reserved_mb, Some(6144));
    let why = waits(&case.decide("b")).to_string();
    assert!(
        why.contains("GPU 0: 4096 MB free for new runs, needs 6144 MB"),
        "{why}"
    );
    // -g 20 on a 24 GB GPU with 5 GB free waits; it could fit one day.
    let mut busy = Case::new(vec![gpu(0, 5_120, 40.0)]);
    busy.snapshot.gpu.gpus[0].memory_total_mb = Some(24_576);
    busy.waiters.push(waiter("big", 1, Some(1), Some(20.0), 4));
    assert!(waits(&busy.decide("big")).contains("needs 20480 MB"));
}

#[test]
fn ten_simultaneous_six_gb_runs_on_four_ten_gb_gpus_get_one_gpu_each() {
    let gpus: Vec<GpuInfo> = (0..4).map(|i| empty_gpu(i, 10_240)).collect();
    let mut case = Case::new(gpus);
    case.waiters = (0..10)
        .map(|i| waiter(&format!("r{i}"), 100 + i, Some(1), Some(6.0), 20))
        .collect();
    // The processes decide in an arbitrary order; each decision sees the others' leases.
    let mut order: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    order.reverse();
    order.swap(2, 7);
    let mut placed = Vec::new();
    for name in &order {
        if let Decision::Start(p) = case.admit(name) {
            placed.extend(p.gpus.clone());
        }
    }
    placed.sort();
    assert_eq!(placed, vec![0, 1, 2, 3], "one 6 GB run per 10 GB GPU");
    for h in &case.holders {
        assert!(
            ["r0", "r1", "r2", "r3"].contains(&h.id.as_str()),
            "the first four in arrival order start: {:?}",
            case.holders
        );
    }
}

#[test]
fn reservations_are_checked_against_the_gpu_each_run_gets() {
    // 30 GB free on GPU 0 and 8 GB on GPU 1: a 6 GB and a 20 GB run both fit, on GPU 0 first.
    let mut case = Case::new(vec![gpu(0, 30_720, 40.0), gpu(1, 8_192, 40.0)]);
    case.waiters = vec![
        waiter("small", 1, Some(1), Some(6.0), 4),
        waiter("large", 2, Some(1), Some(20.0), 4),
    ];
    assert_eq!(started(&case.admit("small")).gpus, vec![0]);
    assert_eq!(started(&case.admit("large")).gpus, vec![0]);
    case.waiters.push(waiter("third", 3, Some(1), Some(6.0), 4));
    assert_eq!(started(&case.admit("third")).gpus, vec![1]);
    case.waiters
        .push(waiter("fourth", 4, Some(1), Some(6.0), 4));
    waits(&case.decide("fourth"));
}

#[test]
fn a_cpu_run_is_not_held_behind_a_gpu_run_waiting_for_a_cool_gpu() {
    let mut case = Case::new(vec![gpu(0, 30_000, 90.0)]);
    case.waiters = vec![waiter("gpu-run", 1, Some(1), None, 2), cpu("cpu-run", 2, 2)];
    assert!(waits(&case.decide("gpu-run")).contains("90°C"));
    started(&case.decide("cpu-run"));
}

#[test]
fn a_later_run_takes_no_slot_that_an_earlier_run_could_use_now() {
    // One slot left. The GPU run ahead waits for a cool GPU: the CPU run may take the slot.
    let mut case = Case::new(vec![gpu(0, 30_000, 90.0)]);
    case.holders.push(holder("old", None));
    case.waiters = vec![waiter("gpu-run", 1, Some(1), None, 2), cpu("cpu-run", 2, 2)];
    started(&case.decide("cpu-run"));
    // Once the GPU is cool the earlier run takes the last slot first.
    case.snapshot.gpu.gpus[0].temperature_c = Some(50.0);
    let why = waits(&case.decide("cpu-run")).to_string();
    assert!(why.contains("2 runs active, maxParallel 2"), "{why}");
    started(&case.decide("gpu-run"));
}

#[test]
fn a_slot_an_earlier_run_waits_for_is_not_taken_by_a_later_run_with_a_higher_limit() {
    let mut case = Case::new(vec![]);
    case.holders.push(holder("old", None));
    case.waiters = vec![cpu("strict", 1, 1), cpu("loose", 2, 4)];
    assert!(waits(&case.decide("strict")).contains("1 run active, maxParallel 1"));
    let why = waits(&case.decide("loose")).to_string();
    assert!(why.contains("run strict came first"), "{why}");
}

#[test]
fn a_later_gpu_run_may_use_a_gpu_the_earlier_run_cannot_use() {
    // The earlier run needs both GPUs; GPU 1 is hot. The later one-GPU run fits on GPU 0
    // while leaving the earlier run room there.
    let mut case = Case::new(vec![gpu(0, 30_720, 40.0), gpu(1, 30_720, 90.0)]);
    case.waiters = vec![
        waiter("both", 1, Some(2), Some(10.0), 4),
        waiter("one", 2, Some(1), Some(6.0), 4),
    ];
    waits(&case.decide("both"));
    assert_eq!(started(&case.decide("one")).gpus, vec![0]);
    // A later run that would leave the earlier one too little waits, naming it.
    case.waiters
        .push(waiter("greedy", 3, Some(1), Some(22.0), 4));
    let why = waits(&case.decide("greedy")).to_string();
    assert!(why.contains("10240 MB kept for run both"), "{why}");
}

#[test]
fn a_later_run_takes_no_memory_on_a_gpu_an_earlier_run_waits_to_fill() {
    // 10 GB free; the earlier run needs 20 GB there and waits for memory to free up.
    let mut case = Case::new(vec![gpu(0, 10_240, 40.0)]);
    case.waiters = vec![
        waiter("big", 1, Some(1), Some(20.0), 4),
        waiter("small", 2, Some(1), Some(4.0), 4),
    ];
    waits(&case.decide("big"));
    let why = waits(&case.decide("small")).to_string();
    assert!(
        why.contains("run big came first and waits for memory"),
        "{why}"
    );
    // A CPU run is not affected.
    case.waiters.push(cpu("cpu", 3, 4));
    started(&case.decide("cpu"));
}

#[test]
fn requests_no_machine_state_could_satisfy_are_impossible() {
    let gpus: Vec<GpuInfo> = (0..8).map(|i| empty_gpu(i, 10_240)).collect();
    let mut case = Case::new(gpus);
    case.waiters = vec![waiter("nine", 1, Some(9), None, 4)];
    match case.decide("nine") {
        Decision::Impossible(why) => assert!(
            why.contains("asks for 9 GPUs but this machine has 8"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    case.settings.visible = Some(Visible::parse("2,3"));
    case.waiters = vec![waiter("three", 1, Some(3), None, 4)];
    match case.decide("three") {
        Decision::Impossible(why) => assert!(
            why.contains("CUDA_VISIBLE_DEVICES allows 2 of this machine's 8 GPUs (2, 3)"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    case.settings.visible = None;
    case.waiters = vec![waiter("huge", 1, Some(1), Some(20.0), 4)];
    match case.decide("huge") {
        Decision::Impossible(why) => {
            assert!(why.contains("largest GPU here has 10240 MB"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn impossible_is_judged_only_against_a_working_probe() {
    let mut case = Case::new(vec![]);
    case.snapshot.gpu.error = Some("nvidia-smi did not answer".into());
    case.waiters = vec![
        waiter("nine", 1, Some(9), None, 4),
        waiter("auto", 2, None, None, 4),
    ];
    assert!(waits(&case.decide("nine")).contains("GPU probe failed"));
    assert!(waits(&case.decide("auto")).contains("pass --gpus 0"));
    case.waiters.push(cpu("cpu", 3, 4));
    assert_eq!(started(&case.decide("cpu")).env(Framework::None)[0].1, "-1");
}

#[test]
fn without_a_probe_handed_gpus_pass_through_and_otherwise_a_gpu_run_is_impossible() {
    let mut case = Case::new(vec![]);
    case.snapshot.gpu.probe = ProbeKind::None;
    case.waiters = vec![waiter("a", 1, Some(1), None, 4)];
    assert!(matches!(case.decide("a"), Decision::Impossible(_)));
    case.settings.visible = Some(Visible::parse("GPU-abc,GPU-def"));
    assert_eq!(started(&case.decide("a")).devices, vec!["GPU-abc"]);
}

#[test]
fn inside_a_slurm_allocation_the_allocation_is_the_admission() {
    let mut case = Case::new(vec![gpu(0, 100, 99.0), gpu(1, 30_000, 40.0)]);
    case.snapshot.load_per_core = 50.0;
    case.holders = (0..8).map(|i| holder(&format!("h{i}"), None)).collect();
    case.waiters = vec![cpu("earlier", 1, 1), waiter("mine", 2, Some(1), None, 1)];
    case.settings.inside_allocation = true;
    case.settings.visible = Some(Visible::parse("0"));
    let placement = started(&case.decide("mine"));
    assert_eq!(
        placement.devices,
        vec!["0"],
        "exactly what Slurm gave, hot or not"
    );
    case.settings.visible = None;
    assert_eq!(
        started(&case.decide("mine")).env(Framework::None)[0].1,
        "-1"
    );
}

#[test]
fn the_gates_say_which_setting_to_change() {
    let mut case = Case::new(vec![]);
    case.waiters.push(cpu("a", 1, 4));
    case.snapshot.load_per_core = 6.5;
    assert!(waits(&case.decide("a")).contains("maxCpuLoad"));
    case.snapshot.load_per_core = 0.1;
    case.snapshot.free_ram_gb = 1.0;
    assert!(waits(&case.decide("a")).contains("minFreeRamGB"));
}

#[test]
fn placement_prefers_the_most_effective_free_memory_and_keeps_the_inherited_form() {
    let mut case = Case::new(vec![gpu(0, 10_000, 40.0), gpu(1, 20_000, 40.0)]);
    case.waiters = vec![waiter("a", 1, Some(2), None, 4)];
    assert_eq!(started(&case.decide("a")).gpus, vec![1, 0]);
    case.holders.push(holder("h", Some((&[1], 15_000))));
    case.waiters = vec![waiter("b", 1, Some(1), None, 4)];
    assert_eq!(started(&case.decide("b")).gpus, vec![0]);
    case.settings.visible = Some(Visible::parse("GPU-0"));
    assert_eq!(started(&case.decide("b")).devices, vec!["GPU-0"]);
}

#[test]
fn a_gpu_with_unknown_usage_is_not_counted_twice() {
    // 24 GB GPU, a run holds 6 GB and has allocated it, but its process is invisible here.
    let mut g = empty_gpu(0, 24_576);
    g.memory_used_mb = Some(6_144);
    g.memory_free_mb = Some(18_432);
    let mut case = Case::new(vec![g]);
    case.holders.push(holder("hidden", Some((&[0], 6_144))));
    case.waiters = vec![waiter("next", 1, Some(1), Some(16.0), 4)];
    let usage: HashMap<String, GpuUse> = HashMap::new(); // nothing attributable
    let world = World {
        snapshot: &case.snapshot,
        holders: &case.holders,
        waiters: &case.waiters,
        usage: &usage,
    };
    started(&decide(&id("next"), &world, &case.settings));
}

#[test]
fn failed_prohibited_and_busy_exclusive_gpus_are_skipped_with_their_reasons() {
    use crate::gpu::{ComputeMode, FailureKind, GpuFailure};
    let mut lost = gpu(0, 30_000, 40.0);
    lost.failure = Some(GpuFailure::new(FailureKind::Lost, "fell off the bus"));
    let mut prohibited = gpu(1, 30_000, 40.0);
    prohibited.compute_mode = ComputeMode::Prohibited;
    let mut exclusive = gpu(2, 30_000, 40.0);
    exclusive.compute_mode = ComputeMode::ExclusiveProcess;
    let mut case = Case::new(vec![lost, prohibited, exclusive]);
    case.waiters = vec![
        waiter("a", 1, Some(1), None, 4),
        waiter("b", 2, Some(1), None, 4),
    ];
    assert_eq!(started(&case.admit("a")).gpus, vec![2]);
    let why = waits(&case.decide("b")).to_string();
    for needle in [
        "GPU 0: lost: fell off the bus",
        "GPU 1: compute mode is prohibited",
        "GPU 2: exclusive-process mode and already in use",
    ] {
        assert!(why.contains(needle), "{needle} in {why}");
    }
    // Two GPUs can never take a run: asking for three is impossible.
    case.waiters = vec![waiter("c", 3, Some(2), None, 4)];
    match case.decide("c") {
        Decision::Impossible(why) => assert!(why.contains("only 1 of the GPUs"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mig_instance_is_handed_out_by_its_uuid() {
    let mut slice = gpu(1000, 9_000, 40.0);
    slice.uuid = "MIG-abc".into();
    slice.device_id = "MIG-abc".into();
    slice.parent_index = Some(0);
    let mut case = Case::new(vec![slice]);
    case.waiters = vec![waiter("a", 1, Some(1), None, 4)];
    let placement = started(&case.decide("a"));
    assert_eq!(placement.devices, vec!["MIG-abc"]);
    assert_eq!(placement.env(Framework::Pytorch)[0].1, "MIG-abc");
}

#[test]
fn a_gpu_that_reports_no_memory_is_used_only_when_readings_are_not_required() {
    let mut unified = gpu(0, 0, 40.0);
    unified.memory_total_mb = None;
    unified.memory_used_mb = None;
    unified.memory_free_mb = None;
    let mut case = Case::new(vec![unified]);
    case.waiters = vec![waiter("a", 1, Some(1), None, 4)];
    assert!(waits(&case.decide("a")).contains("reports no memory"));
    case.settings.require_readings = false;
    started(&case.decide("a"));
}

#[test]
fn handed_devices_that_no_probed_gpu_matches_are_passed_on_as_given() {
    let mut case = Case::new(vec![gpu(0, 30_000, 40.0)]);
    case.settings.visible = Some(Visible::parse("MIG-unseen"));
    case.waiters = vec![waiter("a", 1, Some(1), None, 4)];
    assert_eq!(started(&case.decide("a")).devices, vec!["MIG-unseen"]);
}

#[test]
fn a_laptop_gpu_is_judged_by_its_own_slowdown_threshold() {
    let mut laptop = gpu(0, 8_000, 88.0);
    laptop.slowdown_temp_c = Some(99.0);
    let mut case = Case::new(vec![laptop]);
    case.waiters = vec![waiter("a", 1, Some(1), None, 4)];
    started(&case.decide("a"));
    case.settings.thermal.max_c = Some(85.0);
    assert!(waits(&case.decide("a")).contains("88°C ≥ gpu.maxTempC 85"));
}
