//! The NVML probe's logic, driven by the scripted stand-in.

use super::scripted::{Fail, GIB, Gate, ScriptedGpu, ScriptedNvml};
use super::*;
use crate::gpu::bounded::GpuReader;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn probe(nvml: ScriptedNvml) -> (NvmlProbe, Arc<Mutex<Vec<String>>>) {
    let log = nvml.log.clone();
    (NvmlProbe::with_api(Box::new(nvml)), log)
}

fn read(gpus: Vec<ScriptedGpu>) -> GpuReading {
    probe(ScriptedNvml::new(gpus)).0.read().unwrap()
}

fn calls(log: &Arc<Mutex<Vec<String>>>, name: &str) -> usize {
    log.lock().unwrap().iter().filter(|c| *c == name).count()
}

fn failure(g: &GpuInfo) -> (FailureKind, String) {
    let f = g.failure.as_ref().expect("a failure");
    (f.kind, f.message.clone())
}

#[test]
fn healthy_gpus_are_read_whole() {
    let mut second = ScriptedGpu::healthy(1);
    second.compute_mode = Ok(ComputeMode::ExclusiveProcess);
    second.mig_enabled = Ok(false);
    second.processes_v3 = Ok(vec![ProcessUse {
        pid: 42,
        used_bytes: Some(3 * GIB),
    }]);
    let r = read(vec![ScriptedGpu::healthy(0), second]);
    assert_eq!(r.gpus.len(), 2);
    let g = &r.gpus[0];
    assert_eq!(
        (g.index, g.uuid.as_str(), g.device_id.as_str()),
        (0, "GPU-0000", "0")
    );
    assert_eq!(g.name, "NVIDIA Scripted GPU");
    assert_eq!(g.memory_total_mb, Some(16 * 1024));
    assert_eq!(g.memory_used_mb, Some(1024));
    assert_eq!(g.memory_free_mb, Some(15 * 1024));
    assert_eq!(g.temperature_c, Some(40.0));
    assert_eq!(g.utilization_pct, Some(5.0));
    assert_eq!(g.slowdown_temp_c, Some(90.0));
    assert_eq!(g.compute_mode, ComputeMode::Default);
    assert_eq!(g.mig_mode, None);
    assert_eq!(g.failure, None);
    assert!(g.unreadable.is_empty(), "{:?}", g.unreadable);
    assert_eq!(r.gpus[1].compute_mode, ComputeMode::ExclusiveProcess);
    assert_eq!(r.gpus[1].mig_mode, Some(false));
    assert_eq!(r.gpus[1].device_id, "1");
    assert_eq!(
        r.processes,
        vec![GpuProcess {
            pid: 42,
            gpu_uuid: "GPU-0001".into(),
            used_mb: Some(3 * 1024)
        }]
    );
    assert!(r.notes.is_empty());
}

fn mig_gpu(slots: Vec<super::scripted::Answer<ScriptedGpu>>) -> ScriptedGpu {
    ScriptedGpu {
        uuid: Ok("GPU-a100".into()),
        name: Ok("NVIDIA A100-SXM4-40GB".into()),
        mig_enabled: Ok(true),
        max_mig: Ok(7),
        utilization: Err(Fail::NotSupported),
        temperature: Ok(51),
        mig_slots: slots,
        ..ScriptedGpu::healthy(0)
    }
}

#[test]
fn a_gpu_in_mig_mode_is_replaced_by_its_instances() {
    let mut first =
        ScriptedGpu::mig_instance("MIG-aaaa", "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 20, 2);
    first.processes_v3 = Ok(vec![ProcessUse {
        pid: 7,
        used_bytes: None,
    }]);
    let second = ScriptedGpu::mig_instance("MIG-bbbb", "NVIDIA A100-SXM4-40GB MIG 2g.10gb", 10, 0);
    let parent = mig_gpu(vec![Ok(first), Err(Fail::NotFound), Ok(second)]);
    let (mut p, log) = probe(ScriptedNvml::new(vec![parent, ScriptedGpu::healthy(1)]));
    let r = p.read().unwrap();
    let indices: Vec<_> = r.gpus.iter().map(|g| g.index).collect();
    assert_eq!(indices, [1000, 1002, 1]);
    let a = &r.gpus[0];
    assert_eq!(a.uuid, "MIG-aaaa");
    assert_eq!(a.device_id, "MIG-aaaa");
    assert_eq!(a.name, "NVIDIA A100-SXM4-40GB MIG 3g.20gb");
    assert_eq!(a.parent_index, Some(0));
    assert_eq!(a.parent_uuid.as_deref(), Some("GPU-a100"));
    assert_eq!(a.mig_index, Some(0));
    assert_eq!(a.mig_mode, Some(true));
    assert_eq!(a.memory_total_mb, Some(20 * 1024));
    assert_eq!(a.memory_free_mb, Some(18 * 1024));
    // Temperature from the parent; utilisation unreadable under MIG.
    assert_eq!(a.temperature_c, Some(51.0));
    assert_eq!(a.slowdown_temp_c, Some(90.0));
    assert_eq!(a.utilization_pct, None);
    assert_eq!(a.unreadable, vec![field::UTILIZATION]);
    assert_eq!(a.failure, None);
    assert!(a.is_mig_instance());
    let b = &r.gpus[1];
    assert_eq!((b.mig_index, b.device_id.as_str()), (Some(2), "MIG-bbbb"));
    assert_eq!(b.memory_free_mb, Some(10 * 1024));
    assert_eq!(
        r.processes,
        vec![GpuProcess {
            pid: 7,
            gpu_uuid: "MIG-aaaa".into(),
            used_mb: None
        }]
    );
    assert_eq!(r.gpus[2].device_id, "1");
    // The parent's own processes are not read: its instances hold them.
    assert_eq!(calls(&log, "processes_v3"), 3);
}

#[test]
fn mig_instances_that_cannot_be_listed_fail_the_gpu_for_good() {
    // Not root: every slot answers NoPermission.
    let parent = mig_gpu(vec![Err(Fail::NoPermission); 7]);
    let r = read(vec![parent]);
    assert_eq!(r.gpus.len(), 1);
    let g = &r.gpus[0];
    assert_eq!(g.index, 0);
    assert_eq!(g.device_id, "0");
    assert_eq!(g.mig_mode, Some(true));
    let (kind, message) = failure(g);
    assert_eq!(kind, FailureKind::MigNotEnumerable);
    assert!(kind.is_permanent());
    assert!(
        message.contains("MIG instances cannot be listed"),
        "{message}"
    );
    assert!(message.contains("root"), "{message}");
    // What could be read of the parent is still shown.
    assert_eq!(g.temperature_c, Some(51.0));

    // The slot count itself refused.
    let mut parent = mig_gpu(vec![]);
    parent.max_mig = Err(Fail::NoPermission);
    let r = read(vec![parent]);
    assert_eq!(failure(&r.gpus[0]).0, FailureKind::MigNotEnumerable);

    // MIG on, no instance created.
    let r = read(vec![mig_gpu(vec![Err(Fail::NotFound); 7])]);
    let (kind, message) = failure(&r.gpus[0]);
    assert_eq!(kind, FailureKind::MigNotEnumerable);
    assert!(message.contains("no MIG instances"), "{message}");

    // Some listed, some not: the listed ones are used.
    let ok = ScriptedGpu::mig_instance("MIG-cccc", "A100 MIG 1g.5gb", 5, 0);
    let r = read(vec![mig_gpu(vec![Err(Fail::NoPermission), Ok(ok)])]);
    assert_eq!(r.gpus.len(), 1);
    assert_eq!(r.gpus[0].uuid, "MIG-cccc");
    assert_eq!(r.gpus[0].index, 1001);
}

#[test]
fn a_mig_instance_without_a_uuid_cannot_be_addressed() {
    let mut inst = ScriptedGpu::mig_instance("MIG-x", "A100 MIG 1g.5gb", 5, 0);
    inst.uuid = Err(Fail::Unknown);
    let r = read(vec![mig_gpu(vec![Ok(inst)])]);
    let g = &r.gpus[0];
    assert_eq!(g.device_id, "");
    assert!(g.unreadable.contains(&field::UUID.to_string()));
    assert_eq!(failure(g).0, FailureKind::Other);
}

#[test]
fn failures_say_what_kind_they_are() {
    let r = read(vec![
        ScriptedGpu::failing(Fail::GpuLost),
        ScriptedGpu::failing(Fail::NoPermission),
        ScriptedGpu::all_calls_fail(Fail::NotSupported),
        ScriptedGpu::failing(Fail::Unknown),
        ScriptedGpu::healthy(4),
        ScriptedGpu::failing(Fail::Timeout),
    ]);
    let kinds: Vec<_> = r
        .gpus
        .iter()
        .map(|g| g.failure.as_ref().map(|f| f.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            Some(FailureKind::Lost),
            Some(FailureKind::NoPermission),
            Some(FailureKind::NotSupported),
            Some(FailureKind::Other),
            None,
            Some(FailureKind::Timeout)
        ]
    );
    let lost = &r.gpus[0];
    assert!(
        failure(lost).1.contains("fallen off the bus"),
        "{}",
        failure(lost).1
    );
    assert_eq!(lost.index, 0);
    assert_eq!(lost.device_id, "0");
    for name in [
        field::UUID,
        field::MEMORY_FREE,
        field::TEMPERATURE,
        field::PROCESSES,
    ] {
        assert!(lost.unreadable.contains(&name.to_string()), "{name}");
    }
    assert!(failure(&r.gpus[1]).1.contains("no permission"));
    let unsupported = &r.gpus[2];
    assert_eq!(unsupported.compute_mode, ComputeMode::Unknown);
    assert_eq!(unsupported.slowdown_temp_c, None);
    assert!(failure(unsupported).1.contains("reads nothing"));
    assert!(!read_nothing(&r), "GPU 4 works");
    assert!(read_nothing(&read(vec![ScriptedGpu::failing(
        Fail::GpuLost
    )])));
    assert!(!read_nothing(&GpuReading::default()));
}

#[test]
fn a_gpu_lost_mid_read_is_lost_without_stale_numbers() {
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.temperature = Err(Fail::GpuLost);
    let r = read(vec![gpu]);
    let g = &r.gpus[0];
    assert_eq!(failure(g).0, FailureKind::Lost);
    assert_eq!(g.uuid, "GPU-0000");
    assert_eq!(g.memory_free_mb, None, "no numbers from a lost GPU");
    assert!(r.processes.is_empty());
    assert!(g.unreadable.contains(&field::PROCESSES.to_string()));
    assert!(g.unreadable.contains(&field::TEMPERATURE.to_string()));
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.uuid = Err(Fail::GpuLost);
    let g = &read(vec![gpu]).gpus[0];
    assert_eq!(failure(g).0, FailureKind::Lost);
    assert!(g.unreadable.contains(&field::UUID.to_string()));
}

#[test]
fn unified_memory_is_not_a_failure() {
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.memory_v2 = Err(Fail::NotSupported);
    gpu.memory_v1 = Err(Fail::NotSupported);
    gpu.name = Ok("NVIDIA GB10".into());
    let r = read(vec![gpu]);
    let g = &r.gpus[0];
    assert_eq!(g.failure, None);
    assert!(!g.memory_reported());
    assert_eq!(g.memory_free_mb, None);
    assert_eq!(
        g.unreadable,
        vec![field::MEMORY_TOTAL, field::MEMORY_USED, field::MEMORY_FREE]
    );
    assert_eq!(g.temperature_c, Some(40.0));
}

#[test]
fn a_missing_v2_memory_call_falls_back_to_v1_once_and_for_all() {
    for missing in [
        Fail::MissingSymbol,
        Fail::FunctionNotFound,
        Fail::VersionMismatch,
    ] {
        let mut a = ScriptedGpu::healthy(0);
        a.memory_v2 = Err(missing.clone());
        a.memory_v1 = Ok(Memory {
            total: 8 * GIB,
            used: 2 * GIB,
            free: 6 * GIB,
        });
        let b = ScriptedGpu {
            memory_v2: Err(missing.clone()),
            ..a.clone()
        };
        let (mut p, log) = probe(ScriptedNvml::new(vec![a, b]));
        for _ in 0..2 {
            let r = p.read().unwrap();
            assert!(r.gpus.iter().all(|g| g.memory_free_mb == Some(6 * 1024)));
            assert!(r.gpus.iter().all(|g| g.unreadable.is_empty()));
        }
        assert_eq!(calls(&log, "memory_v2"), 1, "{missing:?}");
        assert_eq!(calls(&log, "memory_v1"), 4);
    }
}

#[test]
fn missing_process_calls_fall_back_to_older_ones() {
    let used = vec![ProcessUse {
        pid: 9,
        used_bytes: Some(GIB),
    }];
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.processes_v3 = Err(Fail::MissingSymbol);
    gpu.processes_v2 = Ok(used.clone());
    let (mut p, log) = probe(ScriptedNvml::new(vec![gpu.clone()]));
    assert_eq!(p.read().unwrap().processes[0].pid, 9);
    p.read().unwrap();
    assert_eq!(calls(&log, "processes_v3"), 1);
    assert_eq!(calls(&log, "processes_v2"), 2);

    gpu.processes_v2 = Err(Fail::MissingSymbol);
    gpu.processes_v1 = Ok(used);
    let (mut p, _) = probe(ScriptedNvml::new(vec![gpu.clone()]));
    assert_eq!(p.read().unwrap().processes[0].used_mb, Some(1024));

    gpu.processes_v1 = Err(Fail::MissingSymbol);
    let (mut p, log) = probe(ScriptedNvml::new(vec![gpu]));
    let r = p.read().unwrap();
    assert!(r.processes.is_empty());
    assert_eq!(r.gpus[0].unreadable, vec![field::PROCESSES]);
    p.read().unwrap();
    assert_eq!(calls(&log, "processes_v1"), 1, "not asked again");
}

#[test]
fn drivers_with_corrupt_process_records_skip_process_lists() {
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.processes_v3 = Ok(vec![ProcessUse {
        pid: 1,
        used_bytes: Some(u64::MAX / 2),
    }]);
    let mut nvml = ScriptedNvml::new(vec![gpu.clone()]);
    nvml.driver = Ok("535.54.03".into());
    let (mut p, log) = probe(nvml);
    for _ in 0..2 {
        let r = p.read().unwrap();
        assert!(r.processes.is_empty());
        assert_eq!(r.gpus[0].unreadable, vec![field::PROCESSES]);
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].contains("535.54.03"), "{}", r.notes[0]);
    }
    assert_eq!(calls(&log, "processes_v3"), 0);
    assert_eq!(calls(&log, "driver_version"), 1, "read once");

    let mut nvml = ScriptedNvml::new(vec![gpu.clone()]);
    nvml.driver = Ok("535.104.05".into());
    assert_eq!(probe(nvml).0.read().unwrap().processes.len(), 1);
    let mut nvml = ScriptedNvml::new(vec![gpu]);
    nvml.driver = Err(Fail::Unknown);
    assert_eq!(probe(nvml).0.read().unwrap().processes.len(), 1);

    for (v, bad) in [
        ("535.43.02", true),
        ("535.86.10", true),
        ("535.54", true),
        ("535.42.01", false),
        ("535.98", false),
        ("530.30.02", false),
        ("550.54.14", false),
        ("garbage", false),
        ("", false),
    ] {
        assert_eq!(process_records_are_corrupt(v), bad, "{v}");
    }
}

#[test]
fn no_gpu_count_is_an_error_and_zero_gpus_is_not() {
    let mut nvml = ScriptedNvml::new(vec![]);
    nvml.count = Some(Err(Fail::Unknown));
    let e = probe(nvml).0.read().unwrap_err();
    assert!(
        matches!(e, ProbeError::Nvml(ref m) if m.starts_with("counting GPUs")),
        "{e:?}"
    );
    assert_eq!(read(vec![]), GpuReading::default());
}

#[test]
fn a_call_that_blocks_times_out_and_leaves_one_hung_thread() {
    let gate = Gate::default();
    let mut gpu = ScriptedGpu::healthy(0);
    gpu.block = Some(("temperature", gate.clone()));
    let (p, _) = probe(ScriptedNvml::new(vec![gpu]));
    let mut reader = GpuReader::new(Box::new(p), Duration::from_millis(200));
    let t0 = Instant::now();
    let e = reader.read().unwrap_err();
    assert!(
        matches!(
            e,
            ProbeError::ReadTimeout {
                probe: ProbeKind::Nvml,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_timeout());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Reads while it hangs answer at once, and start no other thread.
    for _ in 0..3 {
        let t = Instant::now();
        let e = reader.read().unwrap_err();
        assert!(matches!(e, ProbeError::StillHung { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_millis(50));
    }
    assert_eq!(gate.waiting(), 1);
    assert_eq!(gate.most_waiting(), 1);
    // It returns: the next read works, on a fresh thread.
    gate.open();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reading = loop {
        match reader.read() {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, ProbeError::StillHung { .. }), "{e:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(reading.gpus[0].temperature_c, Some(40.0));
    assert_eq!(gate.most_waiting(), 1);
}
