//! The loop that drains an [`Outbox`].

use std::{future::Future, sync::Arc, time::Duration};

use futures_util::{FutureExt, StreamExt, stream};
use tokio::sync::Notify;
use wakili_core::Clock;

use crate::{Delivered, Outbox, Outcomes, Pass};

/// Outcomes recorded per transaction.
pub const RECORD_CHUNK: usize = 256;

/// How a [`Worker`] paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long the worker holds the items it claims before another may take them. Make it
    /// well beyond one delivery's own timeout, so a lease never runs out mid-delivery.
    pub lease: Duration,
    /// Longest one delivery may take. One that runs over is abandoned without an outcome: its
    /// item stays leased and is delivered again once the lease runs out.
    pub deadline: Duration,
    /// How long an idle worker waits before looking again (unless woken).
    pub poll_interval: Duration,
}

impl WorkerConfig {
    /// Items claimed per pass: four per delivery in flight, between 16 and 2,000.
    pub fn batch(&self) -> u32 {
        u32::try_from((self.concurrency * 4).clamp(16, 2000)).unwrap_or(2000)
    }
}

/// Work done before each outbox pass by the loop that runs it (queueing due reminders,
/// sweeping); says whether there was any, so the loop goes on without waiting.
pub trait Upkeep: Send {
    /// Does the work; `true` when it found some.
    fn tick(&mut self) -> impl Future<Output = bool> + Send;
}

/// No upkeep.
impl Upkeep for () {
    fn tick(&mut self) -> impl Future<Output = bool> + Send {
        std::future::ready(false)
    }
}

/// Drains an [`Outbox`]: one [`Worker::pass`] at a time, or a loop of them ([`Worker::run`]).
/// Cheap to clone; clones share the lease owner, the wake-up and the counters.
pub struct Worker<O> {
    shared: Arc<Shared<O>>,
}

impl<O> Clone for Worker<O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<O> {
    outbox: O,
    owner: String,
    config: WorkerConfig,
    clock: Clock,
    wake: Notify,
    outcomes: Arc<Outcomes>,
}

impl<O: Outbox> Worker<O> {
    /// A worker leasing as `owner` (unique per node), reading the time from `clock`.
    pub fn new(outbox: O, owner: String, config: WorkerConfig, clock: Clock) -> Self {
        Self {
            shared: Arc::new(Shared {
                outbox,
                owner,
                config,
                clock,
                wake: Notify::new(),
                outcomes: Arc::default(),
            }),
        }
    }

    /// What it delivers.
    pub fn outbox(&self) -> &O {
        &self.shared.outbox
    }

    /// The lease owner it claims as.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Counts of what it delivered, gave up and dropped since start.
    pub fn outcomes(&self) -> Arc<Outcomes> {
        Arc::clone(&self.shared.outcomes)
    }

    /// Ends the wait of [`Worker::run`] now: there is something to deliver.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// One pass: leases due items, delivers them (up to `concurrency` at once, each within the
    /// deadline) and records the outcomes. Outcomes are recorded as they come, in chunks of
    /// whatever has finished meanwhile (at most [`RECORD_CHUNK`]), while later items are still
    /// being delivered: the store and the receiver work overlap, and a node that dies mid-pass
    /// leaves unrecorded (to be delivered again) only what it had in flight or was recording,
    /// not the whole batch. Every write is awaited before the pass ends. When a write fails its items keep
    /// their lease until it expires, then are delivered again; the pass reports the error.
    #[tracing::instrument(name = "outbox_pass", skip_all)]
    pub async fn pass(&self) -> Result<Pass, O::Error> {
        let s = &*self.shared;
        let now = s.clock.now();
        let until = now + chrono::Duration::from_std(s.config.lease).unwrap_or_default();
        let items = s
            .outbox
            .claim(&s.owner, now, until, s.config.batch())
            .await?;
        let mut pass = Pass {
            claimed: items.len(),
            ..Pass::default()
        };
        if items.is_empty() {
            return Ok(pass);
        }
        let deadline = s.config.deadline;
        let mut results = stream::iter(items)
            .map(|item| tokio::time::timeout(deadline, s.outbox.deliver(item)))
            .buffer_unordered(s.config.concurrency.max(1))
            .ready_chunks(RECORD_CHUNK);
        let mut writes = Vec::new();
        while let Some(chunk) = results.next().await {
            let mut done: Vec<Delivered<O::Prune>> = Vec::with_capacity(chunk.len());
            for result in chunk {
                match result {
                    Ok(delivered) => {
                        pass.count(&delivered.outcome);
                        done.push(delivered);
                    }
                    Err(_) => pass.abandoned += 1,
                }
            }
            if done.is_empty() {
                continue;
            }
            let this = self.clone();
            writes.push(tokio::spawn(async move {
                let s = &*this.shared;
                s.outbox.record(&s.owner, done, s.clock.now()).await
            }));
        }
        if pass.abandoned > 0 {
            tracing::warn!(
                abandoned = pass.abandoned,
                deadline_ms = deadline.as_millis() as u64,
                "deliveries ran past their deadline; they stay leased and go again when the lease runs out"
            );
        }
        let mut failure = None;
        for write in writes {
            match write.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(e) => tracing::error!(error = %e, "recording outcomes panicked"),
            }
        }
        s.outcomes.add(&pass);
        match failure {
            Some(e) => Err(e),
            None => Ok(pass),
        }
    }

    /// Runs `upkeep` and a pass, again and again until `shutdown` completes: straight on while
    /// either found work, else after [`Worker::wake`] or the poll interval. A pass under way
    /// finishes (its outcomes recorded) before the loop stops; then the leases it did not use
    /// are released.
    pub async fn run(&self, mut upkeep: impl Upkeep, shutdown: impl Future<Output = ()> + Send) {
        let s = &*self.shared;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut busy = upkeep.tick().await;
            match self.pass().await {
                Ok(pass) => busy |= pass.claimed > 0,
                Err(e) => tracing::warn!(error = %e, "outbox pass failed"),
            }
            if busy {
                if (&mut shutdown).now_or_never().is_some() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = s.wake.notified() => {}
                () = tokio::time::sleep(s.config.poll_interval) => {}
            }
        }
        if let Err(e) = s.outbox.release(&s.owner).await {
            tracing::warn!(error = %e, "could not release outbox leases");
        }
    }
}

#[cfg(test)]
mod tests;
