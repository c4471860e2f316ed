//! The worker against an outbox in memory: no database, no network.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, Utc};

use super::*;
use crate::Outcome;

/// Items are numbers; what becomes of one depends on it modulo 4. Item 13 hangs.
#[derive(Default)]
struct Memory {
    due: Mutex<Vec<u32>>,
    leases: Mutex<Vec<(String, DateTime<Utc>)>>,
    chunks: Mutex<Vec<usize>>,
    recorded: Mutex<Vec<(String, Outcome, Option<u32>)>>,
    released: AtomicBool,
}

impl Memory {
    fn with(items: impl IntoIterator<Item = u32>) -> Self {
        let memory = Self::default();
        memory.due.lock().map(|mut d| d.extend(items)).ok();
        memory
    }
}

impl Outbox for Memory {
    type Item = u32;
    type Prune = u32;
    type Error = String;

    async fn claim(
        &self,
        owner: &str,
        _now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<u32>, String> {
        self.leases
            .lock()
            .map_err(|e| e.to_string())?
            .push((owner.to_owned(), until));
        let mut due = self.due.lock().map_err(|e| e.to_string())?;
        let n = due.len().min(limit as usize);
        Ok(due.drain(..n).collect())
    }

    async fn deliver(&self, item: u32) -> Delivered<u32> {
        if item == 13 {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let (outcome, prune) = match item % 4 {
            0 => (
                Outcome::Done {
                    receipt: format!("r{item}"),
                },
                None,
            ),
            1 => (
                Outcome::Failed {
                    error: "gone".into(),
                },
                Some(item),
            ),
            2 => (Outcome::Expired, None),
            _ => (
                Outcome::Retry {
                    at,
                    error: None,
                    attempted: true,
                },
                None,
            ),
        };
        Delivered {
            id: item.to_string(),
            outcome,
            prune,
        }
    }

    async fn record(
        &self,
        owner: &str,
        chunk: Vec<Delivered<u32>>,
        _now: DateTime<Utc>,
    ) -> Result<(), String> {
        assert_eq!(owner, "node-1");
        self.chunks
            .lock()
            .map_err(|e| e.to_string())?
            .push(chunk.len());
        let mut recorded = self.recorded.lock().map_err(|e| e.to_string())?;
        recorded.extend(chunk.into_iter().map(|d| (d.id, d.outcome, d.prune)));
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<(), String> {
        assert_eq!(owner, "node-1");
        self.released.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        lease: Duration::from_secs(60),
        deadline: Duration::from_millis(200),
        poll_interval: Duration::from_secs(3600),
    }
}

fn clock() -> Clock {
    Clock::from_fn(|| DateTime::<Utc>::UNIX_EPOCH)
}

#[test]
fn batches_follow_the_concurrency() {
    assert_eq!(config(1).batch(), 16);
    assert_eq!(config(8).batch(), 32);
    assert_eq!(config(10_000).batch(), 2000);
}

#[tokio::test]
async fn a_pass_delivers_the_batch_and_records_it_in_chunks() {
    let worker = Worker::new(
        Memory::with((0..600).filter(|i| *i != 13)),
        "node-1".into(),
        config(200),
        clock(),
    );
    let pass = worker.pass().await.unwrap_or_default();
    assert_eq!(
        pass,
        Pass {
            claimed: 599,
            sent: 150,
            failed: 149,
            expired: 150,
            retried: 150,
            abandoned: 0,
        }
    );
    let memory = worker.outbox();
    let leases = memory.leases.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        leases,
        vec![(
            "node-1".to_owned(),
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(60)
        )]
    );
    let mut chunks = memory.chunks.lock().map(|c| c.clone()).unwrap_or_default();
    chunks.sort_unstable();
    assert_eq!(chunks, vec![87, RECORD_CHUNK, RECORD_CHUNK]);
    let recorded = memory
        .recorded
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert_eq!(recorded.len(), 599);
    assert!(
        recorded
            .iter()
            .all(|(id, _, prune)| prune.is_some() == id.parse::<u32>().is_ok_and(|i| i % 4 == 1)),
        "only failed items prune"
    );
    assert_eq!(worker.outcomes().get(), (150, 149, 150));
}

#[tokio::test]
async fn a_delivery_past_its_deadline_is_left_leased_unrecorded() {
    let worker = Worker::new(Memory::with(12..16), "node-1".into(), config(4), clock());
    let pass = worker.pass().await.unwrap_or_default();
    assert_eq!((pass.claimed, pass.abandoned, pass.sent), (4, 1, 1));
    let recorded = worker
        .outbox()
        .recorded
        .lock()
        .map(|r| r.iter().map(|(id, _, _)| id.clone()).collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(recorded.len(), 3);
    assert!(!recorded.contains(&"13".to_owned()));
}

#[tokio::test]
async fn run_drains_until_shutdown_then_releases_its_leases() {
    let worker = Worker::new(Memory::with(40..80), "node-1".into(), config(2), clock());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .run((), async move {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    // Two batches of 16 and one of 8, without waiting for the (hour-long) poll interval.
    for _ in 0..100 {
        if worker.outcomes().get().0 == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(worker.outcomes().get(), (10, 10, 10));
    // Woken, an idle worker looks again at once.
    worker.outbox().due.lock().map(|mut d| d.push(80)).ok();
    worker.wake();
    for _ in 0..100 {
        if worker.outcomes().get().0 == 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(worker.outcomes().get().0, 11);
    assert!(!worker.outbox().released.load(Ordering::SeqCst));
    let _ = stop.send(());
    assert!(task.await.is_ok());
    assert!(worker.outbox().released.load(Ordering::SeqCst));
}
