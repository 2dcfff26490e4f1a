//! The GpuAllocator: decides which GPUs a run gets and the environment that pins it there.
//! Without a GPU probe (the case until GPU support lands) every run is CPU-only and gets
//! an empty lease.

use actix::prelude::*;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lease {
    pub gpus: Vec<u32>,
    /// CUDA_VISIBLE_DEVICES and memory hints for the script.
    pub env: Vec<(String, String)>,
}

#[derive(Default)]
pub struct GpuAllocator;

impl Actor for GpuAllocator {
    type Context = Context<Self>;
}

/// Reserve GPUs for a run.
#[derive(Message)]
#[rtype(result = "Result<Lease, String>")]
pub struct Reserve {
    pub run_id: String,
    pub gpus: Option<u32>,
}

impl Handler<Reserve> for GpuAllocator {
    type Result = Result<Lease, String>;
    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        match msg.gpus {
            Some(n) if n > 0 => Err(format!(
                "run {} asks for {n} GPU(s) but no GPU is available on this machine; use --gpus 0",
                msg.run_id
            )),
            _ => Ok(Lease::default()),
        }
    }
}

/// The run ended: its reservation is freed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub run_id: String,
}

impl Handler<Release> for GpuAllocator {
    type Result = ();
    fn handle(&mut self, _: Release, _: &mut Context<Self>) {}
}
