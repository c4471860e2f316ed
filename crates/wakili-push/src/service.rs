//! The push service: turns consultation and call events into outbox rows, as the rules of
//! [`wakili_core::notify`] decide, and runs the workers that send them (the outbox, through
//! [`wakili_outbox::Worker`]), queue reminders when due and retire silent devices.
//!
//! **Exactly once.** Every notification is a row before anything is sent. The outbox worker
//! leases due rows (`lease_owner`, `lease_until`), sends them and records each outcome only
//! while it still holds the lease, so two nodes never send the same row, and a node that stops
//! gracefully finishes its batch and releases the rest. Reminders move into the outbox in the
//! same transaction that marks them done, under a lease too. What remains is the window between
//! FCM accepting a message and the row being marked (a crash there sends it again after the
//! lease expires); every message carries its row id as `notificationId` and a collapse key, so
//! the app and FCM can fold such a repeat.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use wakili_core::{
    Clock, new_id,
    notification::Kind,
    notify::{self, LastCall, Outgoing, Rules, StopRinging},
};
use wakili_db::{
    ConsultationStore, Db, DueReminder, NewNotification, PushStore, models::VideoConsultation,
};
use wakili_outbox::{Outcomes, Pass, Upkeep, Worker};

use crate::{
    FcmSender, PushConfig, PushError, fcm_outbox::FcmOutbox, message::check, retry::DeviceLimiter,
};

/// How often silent devices are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The running push service; cheap to clone.
#[derive(Clone)]
pub struct PushService {
    inner: Arc<Inner>,
}

/// The stores push uses, and nothing more.
#[derive(Clone)]
pub struct Stores {
    /// Devices, the notification outbox and reminders.
    pub push: Arc<dyn PushStore>,
    /// Consultations, read to word reminders and ring the right people.
    pub consultations: Arc<dyn ConsultationStore>,
}

impl Stores {
    /// Push's part of the whole repository.
    pub fn of(db: &Db) -> Self {
        Self {
            push: db.clone(),
            consultations: db.clone(),
        }
    }
}

struct Inner {
    stores: Stores,
    config: PushConfig,
    rules: Rules,
    clock: Clock,
    outbox: Worker<FcmOutbox>,
}

impl PushService {
    /// A service over `stores`. Without a sender push is off: devices can still register,
    /// nothing is queued or sent.
    pub fn new(
        stores: Stores,
        sender: Option<FcmSender>,
        config: PushConfig,
        clock: Clock,
    ) -> Self {
        let outbox = FcmOutbox {
            store: Arc::clone(&stores.push),
            sender,
            clock: clock.clone(),
            limiter: Mutex::new(DeviceLimiter::new(config.per_device_per_minute)),
            retry: config.retry_policy(),
            options: config.options.clone(),
        };
        let outbox = Worker::new(
            outbox,
            format!("node-{}", new_id()),
            config.worker(),
            clock.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                stores,
                rules: config.rules(),
                config,
                clock,
                outbox,
            }),
        }
    }

    /// Counts of what the outbox sent, failed and dropped since start.
    pub fn outcomes(&self) -> Arc<Outcomes> {
        self.inner.outbox.outcomes()
    }

    /// Notifications waiting to be sent.
    pub async fn pending(&self) -> Result<u64, PushError> {
        Ok(self.inner.stores.push.pending_notifications().await?)
    }

    /// Whether FCM is configured.
    pub fn enabled(&self) -> bool {
        self.sender().is_some()
    }

    /// The sender, when push is on.
    pub fn sender(&self) -> Option<&FcmSender> {
        self.inner.outbox.outbox().sender.as_ref()
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Queues `out` for the active devices of its users. Does nothing when push is off.
    async fn notify(&self, out: &Outgoing) -> Result<usize, PushError> {
        let rows = self.rows_for(out).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.inner.stores.push.enqueue(&rows, self.now()).await?;
        self.inner.outbox.wake();
        Ok(rows.len())
    }

    /// One outbox row per active device of `out`'s users.
    async fn rows_for(&self, out: &Outgoing) -> Result<Vec<NewNotification>, PushError> {
        if !self.enabled() || out.users.is_empty() {
            return Ok(Vec::new());
        }
        let notification = &out.notification;
        check(notification)?;
        let payload =
            serde_json::to_string(notification).map_err(|e| PushError::Invalid(e.to_string()))?;
        let devices = self.inner.stores.push.active_devices(&out.users).await?;
        Ok(devices
            .into_iter()
            .map(|d| NewNotification {
                id: new_id(),
                user_id: d.user_id,
                device_token: d.token,
                platform: d.platform,
                kind: notification.kind.as_str().into(),
                consultation_id: Some(out.consultation_id.clone()),
                payload: payload.clone(),
                due_at: out.due,
                expires_at: out.expires,
            })
            .collect())
    }

    /// A consultation was booked: its reminders are stored.
    pub async fn consultation_booked(&self, c: &VideoConsultation) -> Result<(), PushError> {
        let now = self.now();
        let due = self.inner.rules.reminders(c.scheduled_at, now);
        self.inner
            .stores
            .push
            .replace_reminders(&c.id, &due, now)
            .await?;
        Ok(())
    }

    /// A consultation moved: its reminders move, and the client hears about it.
    pub async fn consultation_rescheduled(
        &self,
        c: &VideoConsultation,
        by: &str,
    ) -> Result<(), PushError> {
        self.consultation_booked(c).await?;
        let out = self.inner.rules.rescheduled(&facts(c), by, self.now());
        self.notify(&out).await?;
        Ok(())
    }

    /// A consultation was cancelled: its reminders go, and the other party hears about it.
    pub async fn consultation_cancelled(
        &self,
        c: &VideoConsultation,
        by: &str,
    ) -> Result<(), PushError> {
        self.inner.stores.push.delete_reminders(&c.id).await?;
        let out = self.inner.rules.cancelled(&facts(c), by, self.now());
        self.notify(&out).await?;
        Ok(())
    }

    /// Someone joined a consultation's call; `connected` are the users connected to it now.
    /// Rings the other party when they are not connected, and stops the ringing of whoever just
    /// answered by joining.
    pub async fn participant_joined(
        &self,
        consultation_id: &str,
        user_id: &str,
        name: &str,
        connected: &[String],
    ) -> Result<(), PushError> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(c) = self
            .inner
            .stores
            .consultations
            .consultation(consultation_id)
            .await?
        else {
            return Ok(());
        };
        let joined = self
            .inner
            .rules
            .joined(&facts(&c), user_id, name, connected, self.now());
        if let Some(stop) = joined.stop {
            self.stop_ringing(&stop).await?;
        }
        if let Some(ring) = joined.ring {
            let queued = self.notify(&ring).await?;
            let callee = ring.users.join(",");
            tracing::info!(consultation_id = %c.id, %callee, devices = queued, "ringing");
        }
        Ok(())
    }

    /// Someone left a consultation's call (or lost their connection): a ringing call they
    /// placed stops.
    pub async fn participant_left(
        &self,
        consultation_id: &str,
        user_id: &str,
        connected: &[String],
    ) -> Result<(), PushError> {
        if !self.enabled() {
            return Ok(());
        }
        match self.inner.rules.left(consultation_id, user_id, connected) {
            Some(stop) => self.stop_ringing(&stop).await,
            None => Ok(()),
        }
    }

    /// `user_id` answered (accepted or declined) a call: their other devices stop ringing.
    pub async fn call_answered(
        &self,
        consultation_id: &str,
        user_id: &str,
        action: &str,
    ) -> Result<(), PushError> {
        if !self.enabled() {
            return Ok(());
        }
        let stop = self.inner.rules.answered(consultation_id, user_id, action);
        self.stop_ringing(&stop).await
    }

    /// Sends `call_cancelled` to the callee of the consultation's ringing call, if there is
    /// one and `stop` applies to them.
    async fn stop_ringing(&self, stop: &StopRinging) -> Result<(), PushError> {
        let now = self.now();
        let consultation_id = stop.consultation_id();
        let last = self
            .inner
            .stores
            .push
            .latest_call(consultation_id)
            .await?
            .and_then(|call| {
                Some(LastCall {
                    kind: Kind::parse(&call.kind)?,
                    callee: call.user_id,
                    expires_at: call.expires_at,
                })
            });
        let Some(out) = stop.decide(last.as_ref(), now) else {
            return Ok(());
        };
        let queued = self.notify(&out).await?;
        let callee = out.users.join(",");
        let reason = stop.reason();
        tracing::info!(consultation_id, %callee, devices = queued, reason, "ringing stopped");
        Ok(())
    }

    /// One outbox pass: leases due rows, sends them (up to `concurrency` at once) and records
    /// the outcomes.
    pub async fn deliver_due(&self) -> Result<Pass, PushError> {
        self.inner.outbox.pass().await
    }

    /// One reminders pass: leases due reminders and moves each into the outbox with its
    /// notifications, atomically. Returns how many were queued.
    #[tracing::instrument(name = "push_reminders", skip_all)]
    pub async fn remind_due(&self) -> Result<usize, PushError> {
        if !self.enabled() {
            return Ok(0);
        }
        let now = self.now();
        let until = now + chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
        let owner = self.inner.outbox.owner();
        let due = self
            .inner
            .stores
            .push
            .claim_reminders(owner, now, until, 200)
            .await?;
        let mut done = 0;
        for reminder in &due {
            let rows = self.reminder_rows(reminder, now).await?;
            if self
                .inner
                .stores
                .push
                .complete_reminder(reminder, owner, &rows, now)
                .await?
            {
                done += 1;
                tracing::info!(consultation_id = %reminder.consultation_id, offset_s = reminder.offset_seconds, devices = rows.len(), "reminder queued");
            }
        }
        if done > 0 {
            self.inner.outbox.wake();
        }
        Ok(done)
    }

    async fn reminder_rows(
        &self,
        reminder: &DueReminder,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewNotification>, PushError> {
        let Some(c) = self
            .inner
            .stores
            .consultations
            .consultation(&reminder.consultation_id)
            .await?
        else {
            return Ok(Vec::new());
        };
        match self
            .inner
            .rules
            .reminder(&facts(&c), reminder.offset_seconds, now)
        {
            Some(out) => self.rows_for(&out).await,
            None => Ok(Vec::new()),
        }
    }

    /// Deactivates devices silent for longer than `deactivate_after`.
    pub async fn deactivate_silent(&self) -> Result<u64, PushError> {
        let now = self.now();
        let before = now
            - chrono::Duration::from_std(self.inner.config.deactivate_after).unwrap_or_default();
        let n = self
            .inner
            .stores
            .push
            .deactivate_silent(before, now)
            .await?;
        if n > 0 {
            tracing::info!(devices = n, "silent devices deactivated");
        }
        Ok(n)
    }

    /// Runs the workers until `shutdown` completes. A pass under way finishes (its outcomes
    /// recorded) before the service stops; leases it did not use are released.
    pub async fn run_background(self, shutdown: impl Future<Output = ()> + Send) {
        let outbox = self.inner.outbox.clone();
        let upkeep = Chores {
            service: self,
            last_sweep: None,
        };
        outbox.run(upkeep, shutdown).await;
    }
}

/// What the push loop does before each outbox pass: the hourly silent-device sweep and the
/// reminders pass.
struct Chores {
    service: PushService,
    last_sweep: Option<Instant>,
}

impl Upkeep for Chores {
    async fn tick(&mut self) -> bool {
        if self.last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            self.last_sweep = Some(Instant::now());
            if let Err(e) = self.service.deactivate_silent().await {
                tracing::warn!(error = %e, "silent-device sweep failed");
            }
        }
        match self.service.remind_due().await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "reminders pass failed");
                false
            }
        }
    }
}

/// What the notification rules read of a consultation.
fn facts(c: &VideoConsultation) -> notify::Consultation {
    notify::Consultation {
        id: c.id.clone(),
        lawyer_id: c.lawyer_id.clone(),
        client_id: c.client_id.clone(),
        title: c.title.clone(),
        scheduled_at: c.scheduled_at,
        duration_minutes: c.duration_minutes,
        status: c.status,
    }
}
