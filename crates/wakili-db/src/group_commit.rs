//! Group commit: callers that write (or read) at the same time share one database round trip.
//!
//! Audit appends: in a join storm every join appends its audit entries; batched, they share one
//! transaction and one disk sync, instead of queueing for the database's write lock one
//! transaction each. A caller may put a consultation's status change in front of its entries
//! (the lawyer's first join starts the consultation): it is saved in the same transaction if
//! nobody saved the consultation since it was read, and otherwise nothing of that caller's is
//! written and it hears `false`. Consultation reads: every join reads its consultation; batched,
//! they are one `WHERE id IN (…)` statement.
//!
//! No task runs in the background. Each caller queues its item and waits for the batch lock;
//! whoever holds it runs everything queued so far and tells each caller its result, so a caller
//! that gets the lock often finds its item already done by the one before. A caller hears back
//! only after the batch that holds its item: acknowledged means durable, as before.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::{
    DbError,
    models::{NewAuditEvent, VideoConsultation},
};

/// One caller's part of a batch.
pub(crate) trait Item: Clone + Send + 'static {
    /// What the caller hears back.
    type Out: Send + 'static;
    /// The consultation it is about (batches are ordered by it).
    fn consultation(&self) -> Option<&str>;
}

/// A consultation changed from the version that was read, and the audit entry of the change.
pub type Change = (VideoConsultation, NewAuditEvent);

/// What one appending caller writes: an optional status change, then audit entries, at `now`.
/// It hears whether its change was saved (`true` for one without a change).
#[derive(Clone)]
pub(crate) struct Entry {
    pub change: Option<Change>,
    pub events: Vec<NewAuditEvent>,
    pub now: DateTime<Utc>,
}

impl Item for Entry {
    type Out = bool;

    fn consultation(&self) -> Option<&str> {
        match &self.change {
            Some((consultation, _)) => Some(&consultation.id),
            None => self.events.first()?.consultation_id.as_deref(),
        }
    }
}

/// A consultation to read by id; the caller hears it, or `None`.
#[derive(Clone)]
pub(crate) struct Read(pub String);

impl Item for Read {
    type Out = Option<VideoConsultation>;

    fn consultation(&self) -> Option<&str> {
        Some(&self.0)
    }
}

/// One caller's item, and where its result goes.
pub(crate) struct Pending<I: Item> {
    item: I,
    done: oneshot::Sender<Result<I::Out, DbError>>,
}

impl<I: Item> Pending<I> {
    /// Tells the caller.
    fn finish(self, result: Result<I::Out, DbError>) {
        let _ = self.done.send(result);
    }
}

/// The queue and the batch lock of one kind of item of one store.
pub(crate) struct GroupCommit<I: Item> {
    queue: Mutex<Vec<Pending<I>>>,
    lock: tokio::sync::Mutex<()>,
}

impl<I: Item> Default for GroupCommit<I> {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            lock: tokio::sync::Mutex::default(),
        }
    }
}

/// Most callers' entries in one transaction.
const MAX_BATCH: usize = 256;

impl<I: Item> GroupCommit<I> {
    /// Runs `item` through `commit`, which runs a batch in one round trip (a transaction) and
    /// answers for each item in order. A batch that fails is retried one caller at a time, so
    /// one caller's bad item fails only that caller. The commit runs in a task of its own: a
    /// caller that goes away (its connection closed) cannot cut it short and leave the others
    /// without an answer.
    pub(crate) async fn run<F, Fut>(self: &Arc<Self>, item: I, commit: F) -> Result<I::Out, DbError>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<I::Out>, DbError>> + Send + 'static,
    {
        let commit = Arc::new(commit);
        let (done, mut result) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending { item, done });
        let leader = self.lock.lock().await;
        // Commit batches until ours has been: with more than MAX_BATCH waiting, ours may not be
        // in the first one, and nobody else may be left to commit it.
        loop {
            if let Ok(result) = result.try_recv() {
                return result; // committed by this caller's batch or the one before
            }
            let batch = self.take();
            if batch.is_empty() {
                break; // ours is in a batch still being written by a caller that went away
            }
            let commit = Arc::clone(&commit);
            let writer = tokio::spawn(async move {
                let entries = batch.iter().map(|p| p.item.clone()).collect();
                match commit(entries).await {
                    Ok(saved) if saved.len() == batch.len() => {
                        for (p, saved) in batch.into_iter().zip(saved) {
                            p.finish(Ok(saved));
                        }
                    }
                    _ => {
                        for p in batch {
                            let outcome = commit(vec![p.item.clone()]).await;
                            p.finish(outcome.and_then(|out| {
                                out.into_iter().next().ok_or_else(|| {
                                    DbError::Corrupt("a batch of one answered nothing".into())
                                })
                            }));
                        }
                    }
                }
            });
            let _ = writer.await;
        }
        drop(leader);
        result.await.unwrap_or_else(|_| {
            Err(DbError::Corrupt(
                "the batch holding this caller's item was lost".into(),
            ))
        })
    }

    /// The oldest queued callers (at most [`MAX_BATCH`]), in queue order within each
    /// consultation and ordered by consultation, so that concurrent batches of several nodes
    /// lock consultations in the same order.
    fn take(&self) -> Vec<Pending<I>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(MAX_BATCH);
        let mut batch: Vec<Pending<I>> = queue.drain(..n).collect();
        batch.sort_by(|a, b| a.item.consultation().cmp(&b.item.consultation()));
        batch
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use tokio::task::JoinHandle;

    use super::*;

    /// A group over commits that take 20 ms each, counted, which fail any batch holding a `bad`
    /// entry and otherwise write `consultation:action` per entry.
    #[derive(Default)]
    struct Harness {
        group: Arc<GroupCommit<Entry>>,
        commits: Arc<AtomicUsize>,
        written: Arc<Mutex<Vec<String>>>,
    }

    impl Harness {
        /// Caller `i` appends one entry of consultation `consultation(i)` with `action(i)`.
        fn spawn(
            &self,
            n: usize,
            consultation: impl Fn(usize) -> String,
            action: impl Fn(usize) -> &'static str,
        ) -> Vec<JoinHandle<Result<(), DbError>>> {
            (0..n)
                .map(|i| {
                    let group = Arc::clone(&self.group);
                    let (commits, written) = (Arc::clone(&self.commits), Arc::clone(&self.written));
                    let entry = Entry {
                        change: None,
                        events: vec![NewAuditEvent {
                            consultation_id: Some(consultation(i)),
                            actor_id: None,
                            action: action(i),
                            detail: serde_json::Value::Null,
                        }],
                        now: Utc::now(),
                    };
                    tokio::spawn(async move {
                        group
                            .run(entry, move |batch| {
                                slow_commit(Arc::clone(&commits), Arc::clone(&written), batch)
                            })
                            .await
                            .map(|_| ())
                    })
                })
                .collect()
        }

        fn commits(&self) -> usize {
            self.commits.load(Ordering::SeqCst)
        }

        fn written(&self) -> Vec<String> {
            self.written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    async fn slow_commit(
        commits: Arc<AtomicUsize>,
        written: Arc<Mutex<Vec<String>>>,
        batch: Vec<Entry>,
    ) -> Result<Vec<bool>, DbError> {
        commits.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let callers = batch.len();
        let events: Vec<_> = batch.into_iter().flat_map(|e| e.events).collect();
        if events.iter().any(|e| e.action == "bad") {
            return Err(DbError::Corrupt("bad entry".into()));
        }
        let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
        written.extend(events.iter().map(|e| {
            format!(
                "{}:{}",
                e.consultation_id.as_deref().unwrap_or(""),
                e.action
            )
        }));
        Ok(vec![true; callers])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_commits_and_a_bad_entry_fails_only_its_caller() {
        let h = Harness::default();
        let callers = h.spawn(
            60,
            |i| format!("c{}", i % 7),
            |i| if i == 17 { "bad" } else { "participant.joined" },
        );
        let mut failed = Vec::new();
        for (i, caller) in callers.into_iter().enumerate() {
            if caller.await.unwrap().is_err() {
                failed.push(i);
            }
        }
        assert_eq!(failed, [17], "only the caller with the bad entry fails");
        assert_eq!(h.written().len(), 59, "every other entry is written once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_callers_at_once_take_a_handful_of_commits() {
        let h = Harness::default();
        for caller in h.spawn(60, |i| format!("c{i}"), |_| "participant.joined") {
            caller.await.unwrap().unwrap();
        }
        assert_eq!(h.written().len(), 60);
        // The first commits alone; the others queue during its 20 ms and go together.
        let n = h.commits();
        assert!(n <= 6, "{n} commits for 60 callers");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_callers_than_a_batch_holds_all_get_committed() {
        let h = Harness::default();
        let callers = h.spawn(3 * MAX_BATCH, |i| format!("c{i}"), |_| "participant.joined");
        let all = async {
            for caller in callers {
                caller.await.unwrap().unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("every caller is answered");
        assert_eq!(h.written().len(), 3 * MAX_BATCH);
    }

    #[tokio::test]
    async fn a_lone_append_commits_at_once() {
        let h = Harness::default();
        for caller in h.spawn(1, |_| "c1".into(), |_| "consultation.created") {
            caller.await.unwrap().unwrap();
        }
        assert_eq!(h.commits(), 1);
        assert_eq!(h.written(), ["c1:consultation.created"]);
    }
}
