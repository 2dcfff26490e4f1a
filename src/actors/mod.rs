//! The actors of one backprop process (see the README's architecture section). Each is a
//! thin shell over pure functions elsewhere in the crate.

pub mod governor;
pub mod gpu_allocator;
pub mod store;
pub mod supervisor;
pub mod worker;

use crate::config::GpuProbeKind;
use crate::executor::{Job, Results};
use crate::policy;
use crate::store::Store;
use actix::prelude::*;
use std::time::Duration;
use supervisor::{RunSearch, SearchRun, Settings, Submit, Supervisor};

/// What the actor system needs besides the jobs.
pub struct SystemConfig {
    pub settings: Settings,
    /// `gpu.probe` and `gpu.probeTimeout`.
    pub gpu_probe: GpuProbeKind,
    pub probe_timeout: Duration,
    pub policy: policy::Settings,
    /// Inside a Slurm job: the run's record goes to its node file, not the store.
    pub node: Option<NodeRun>,
}

/// The one run of a Slurm job, and the file its state goes to.
pub struct NodeRun {
    pub file: crate::slurm::NodeFile,
    pub record: crate::record::RunRecord,
}

/// What a process runs: jobs as they come, or an adaptive search over a batch's runs.
pub enum Work {
    Jobs(Vec<Job>),
    Search(SearchRun),
}

impl Work {
    fn run_ids(&self) -> Vec<crate::runid::RunId> {
        match self {
            Work::Jobs(jobs) => jobs.iter().map(|j| j.run_id.clone()).collect(),
            Work::Search(search) => search.members.iter().map(|m| m.id.clone()).collect(),
        }
    }
}

/// Runs `jobs` to the end in a fresh actor system and returns how each ended. Everything
/// recorded is in the store when this returns.
pub fn run_jobs(store: Store, config: SystemConfig, jobs: Vec<Job>) -> Results {
    run_work(store, config, Work::Jobs(jobs))
}

/// Runs `work` to the end in a fresh actor system (see [`run_jobs`]).
pub fn run_work(store: Store, config: SystemConfig, work: Work) -> Results {
    let system = actix::System::new();
    system.block_on(async move {
        let poll = config.settings.poll_interval;
        let (store_actor, records) = match config.node {
            Some(node) => (
                store::StoreActor::on_node(store.clone(), node.file),
                vec![node.record],
            ),
            None => (
                store::StoreActor::new(store.clone()),
                work.run_ids()
                    .iter()
                    .filter_map(|id| store.get(id).ok())
                    .collect(),
            ),
        };
        let store_actor = store_actor.start();
        let governor = governor::Governor::new(
            poll.max(Duration::from_millis(100)),
            config.gpu_probe,
            config.probe_timeout,
        )
        .start();
        let allocator =
            gpu_allocator::GpuAllocator::new(store_actor.clone(), governor.clone(), config.policy)
                .start();
        store_actor.do_send(store::Remember(records));
        let (done, finished) = tokio::sync::oneshot::channel();
        let supervisor = Supervisor::new(
            config.settings,
            store,
            store_actor.clone(),
            governor,
            allocator,
            done,
        )
        .start();
        match work {
            Work::Jobs(jobs) => {
                for job in jobs {
                    supervisor.do_send(Submit(job));
                }
            }
            Work::Search(search) => supervisor.do_send(RunSearch(search)),
        }
        let results = finished.await.unwrap_or_default();
        let _ = store_actor.send(store::FinalFlush).await;
        results
    })
}
