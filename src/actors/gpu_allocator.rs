//! The GpuAllocator: this process's view of the GPU ledger. It asks for a start with the
//! latest resource snapshot (the decision and the lease are made by the policy inside the
//! Store's admitting transaction, so every process of the home sees them) and keeps the
//! placements of the runs this process holds until they end.

use super::governor::{Governor, Latest};
use super::store::{Admit, StoreActor};
use crate::admission::Answer;
use crate::policy::{self, Placement, WaitOn};
use crate::runid::RunId;
use actix::prelude::*;
use std::collections::HashMap;

pub struct GpuAllocator {
    store: Addr<StoreActor>,
    governor: Addr<Governor>,
    settings: policy::Settings,
    /// The placements this process holds.
    held: HashMap<RunId, Placement>,
}

impl GpuAllocator {
    pub fn new(
        store: Addr<StoreActor>,
        governor: Addr<Governor>,
        settings: policy::Settings,
    ) -> GpuAllocator {
        GpuAllocator {
            store,
            governor,
            settings,
            held: HashMap::new(),
        }
    }
}

impl Actor for GpuAllocator {
    type Context = Context<Self>;
}

/// Ask for a start of a run's next attempt.
#[derive(Message, Clone)]
#[rtype(result = "Answer")]
pub struct Reserve {
    pub run_id: RunId,
    pub attempt: u32,
    pub resumed_from: Option<String>,
}

/// The run ended: its placement is given back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub RunId);

impl Handler<Reserve> for GpuAllocator {
    type Result = ResponseActFuture<Self, Answer>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        let governor = self.governor.clone();
        let store = self.store.clone();
        let settings = self.settings.clone();
        let run_id = msg.run_id.clone();
        let ask = async move {
            let Some(snapshot) = governor.send(Latest).await.ok().flatten() else {
                return Answer::Waiting(WaitOn::Machine, "no resource sample yet".into());
            };
            let admit = Admit {
                run_id: msg.run_id,
                attempt: msg.attempt,
                resumed_from: msg.resumed_from,
                snapshot,
                settings,
            };
            store.send(admit).await.unwrap_or_else(|e| {
                Answer::Waiting(WaitOn::Machine, format!("store unavailable: {e}"))
            })
        };
        Box::pin(ask.into_actor(self).map(move |answer, act, _| {
            if let Answer::Started(placement) = &answer {
                act.held.insert(run_id, placement.clone());
            }
            answer
        }))
    }
}

impl Handler<Release> for GpuAllocator {
    type Result = ();
    fn handle(&mut self, Release(run_id): Release, _: &mut Context<Self>) {
        self.held.remove(&run_id);
    }
}
