//! The push service: turns consultation and call events into outbox rows, and runs the workers
//! that send them (outbox), queue reminders when due (reminders) and retire silent devices.
//!
//! **Exactly once.** Every notification is a row before anything is sent. A worker leases due
//! rows (`lease_owner`, `lease_until`), sends them and records each outcome only while it still
//! holds the lease, so two nodes never send the same row, and a node that stops gracefully
//! finishes its batch and releases the rest. Reminders move into the outbox in the same
//! transaction that marks them done, under a lease too. What remains is the window between FCM
//! accepting a message and the row being marked (a crash there sends it again after the lease
//! expires); every message carries its row id as `notificationId` and a collapse key, so the app
//! and FCM can fold such a repeat.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt, stream};
use rand::Rng;
use tokio::sync::Notify;
use wakili_core::{Clock, consultation::ConsultationStatus, new_id};
use wakili_db::{
    Db, Delivery, DueReminder, NewNotification, OutboxNotification, models::VideoConsultation,
};
use wakili_settings::PushSettings;

use crate::{
    FcmSender, PushError,
    message::{Kind, MessageOptions, Notification, Platform, clip, fcm_body},
    oauth::{ServiceAccount, TokenSource},
    retry::{Backoff, DeviceLimiter},
    schedule,
    verdict::Verdict,
};

/// FCM keeps a message at most this long.
const MAX_TTL_SECONDS: i64 = 28 * 24 * 3600;
/// Outcomes recorded per transaction.
const RECORD_CHUNK: usize = 256;
/// How often silent devices are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How the service behaves (from `[push]`).
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Reminder offsets before a consultation.
    pub reminders: Vec<Duration>,
    /// How long a call rings.
    pub call_ttl: Duration,
    /// Devices silent this long are deactivated.
    pub deactivate_after: Duration,
    /// Worker poll interval.
    pub poll_interval: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// Per-device rate limit.
    pub per_device_per_minute: u32,
    /// Requests in flight.
    pub concurrency: usize,
    /// How long a worker holds leased rows before another may take them.
    pub lease: Duration,
    /// Message options.
    pub options: MessageOptions,
}

impl PushConfig {
    /// From `[push]`.
    pub fn from_settings(s: &PushSettings) -> Self {
        Self {
            reminders: s.reminders.clone(),
            call_ttl: s.call_ttl,
            deactivate_after: s.deactivate_after,
            poll_interval: s.poll_interval,
            max_attempts: s.max_attempts,
            backoff: Backoff {
                initial: s.initial_backoff,
                max: s.max_backoff,
            },
            per_device_per_minute: s.per_device_per_minute,
            concurrency: s.concurrency,
            // Well beyond one request's timeout, so a lease never runs out mid-send.
            lease: s.request_timeout * 3 + Duration::from_secs(30),
            options: MessageOptions {
                android_channel: s.android_channel.clone(),
            },
        }
    }
}

/// The FCM sender configured by `[push]`, or `None` when push is off.
pub fn sender_from_settings(s: &PushSettings) -> Result<Option<FcmSender>, PushError> {
    let account = match (&s.credentials_file, &s.credentials_json) {
        (Some(path), _) => ServiceAccount::from_file(path)?,
        (None, Some(json)) => ServiceAccount::from_json(json.expose())?,
        (None, None) => return Ok(None),
    };
    let project = s
        .project_id
        .clone()
        .or_else(|| account.project_id.clone())
        .ok_or_else(|| {
            PushError::Credentials(
                "no project: set push.project_id (the key has no project_id)".into(),
            )
        })?;
    let tokens = Arc::new(TokenSource::new(
        account,
        s.token_url.clone(),
        s.request_timeout,
    )?);
    Ok(Some(FcmSender::new(
        &s.fcm_base_url,
        &project,
        tokens,
        s.request_timeout,
    )?))
}

/// The running push service; cheap to clone.
#[derive(Clone)]
pub struct PushService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    sender: Option<FcmSender>,
    config: PushConfig,
    clock: Clock,
    owner: String,
    wake: Notify,
    limiter: Mutex<DeviceLimiter>,
    outcomes: Arc<Outcomes>,
}

/// A row's id, what became of it, and the token to deactivate (with why) if FCM dropped it.
type Outcome = (String, Delivery, Option<(String, &'static str)>);

/// Outcomes since the service started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Outcomes {
    sent: AtomicU64,
    failed: AtomicU64,
    expired: AtomicU64,
}

impl Outcomes {
    /// (accepted by FCM, given up, dropped as too late).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }

    fn add(&self, pass: &Pass) {
        self.sent.fetch_add(pass.sent as u64, Ordering::Relaxed);
        self.failed.fetch_add(pass.failed as u64, Ordering::Relaxed);
        self.expired
            .fetch_add(pass.expired as u64, Ordering::Relaxed);
    }
}

/// Counts of one outbox pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rows leased.
    pub claimed: usize,
    /// Accepted by FCM.
    pub sent: usize,
    /// Given up.
    pub failed: usize,
    /// Dropped as too late.
    pub expired: usize,
    /// Put back for later.
    pub retried: usize,
}

impl PushService {
    /// A service over `db`. Without a sender push is off: devices can still register, nothing
    /// is queued or sent.
    pub fn new(db: Db, sender: Option<FcmSender>, config: PushConfig, clock: Clock) -> Self {
        let limiter = Mutex::new(DeviceLimiter::new(config.per_device_per_minute));
        Self {
            inner: Arc::new(Inner {
                db,
                sender,
                config,
                clock,
                owner: format!("node-{}", new_id()),
                wake: Notify::new(),
                limiter,
                outcomes: Arc::default(),
            }),
        }
    }

    /// Counts of what the outbox sent, failed and dropped since start.
    pub fn outcomes(&self) -> Arc<Outcomes> {
        Arc::clone(&self.inner.outcomes)
    }

    /// Notifications waiting to be sent.
    pub async fn pending(&self) -> Result<u64, PushError> {
        Ok(self.inner.db.pending_notifications().await?)
    }

    /// Whether FCM is configured.
    pub fn enabled(&self) -> bool {
        self.inner.sender.is_some()
    }

    /// The sender, when push is on.
    pub fn sender(&self) -> Option<&FcmSender> {
        self.inner.sender.as_ref()
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Queues `notification` for the active devices of `users`, due at `due`, dropped after
    /// `expires`. Does nothing when push is off.
    async fn notify(
        &self,
        users: &[String],
        notification: &Notification,
        consultation: Option<&str>,
        due: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<usize, PushError> {
        let rows = self
            .rows_for(users, notification, consultation, due, expires)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.inner.db.enqueue(&rows, self.now()).await?;
        self.inner.wake.notify_one();
        Ok(rows.len())
    }

    async fn rows_for(
        &self,
        users: &[String],
        notification: &Notification,
        consultation: Option<&str>,
        due: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<Vec<NewNotification>, PushError> {
        if !self.enabled() || users.is_empty() {
            return Ok(Vec::new());
        }
        notification.check()?;
        let payload =
            serde_json::to_string(notification).map_err(|e| PushError::Invalid(e.to_string()))?;
        let devices = self.inner.db.active_devices(users).await?;
        Ok(devices
            .into_iter()
            .map(|d| NewNotification {
                id: new_id(),
                user_id: d.user_id,
                device_token: d.token,
                platform: d.platform,
                kind: notification.kind.as_str().into(),
                consultation_id: consultation.map(str::to_owned),
                payload: payload.clone(),
                due_at: due,
                expires_at: expires,
            })
            .collect())
    }

    /// A consultation was booked: its reminders are stored.
    pub async fn consultation_booked(&self, c: &VideoConsultation) -> Result<(), PushError> {
        let now = self.now();
        let due = schedule::reminders(c.scheduled_at, &self.inner.config.reminders, now);
        self.inner.db.replace_reminders(&c.id, &due, now).await?;
        Ok(())
    }

    /// A consultation moved: its reminders move, and the client hears about it.
    pub async fn consultation_rescheduled(
        &self,
        c: &VideoConsultation,
        by: &str,
    ) -> Result<(), PushError> {
        self.consultation_booked(c).await?;
        let body = format!(
            "{} is now on {}",
            subject(c),
            c.scheduled_at.format("%a %e %b %Y, %H:%M UTC")
        );
        let n = update_notification(
            Kind::ConsultationRescheduled,
            "Consultation moved",
            &body,
            c,
        );
        self.notify(&others(c, by), &n, Some(&c.id), self.now(), None)
            .await?;
        Ok(())
    }

    /// A consultation was cancelled: its reminders go, and the other party hears about it.
    pub async fn consultation_cancelled(
        &self,
        c: &VideoConsultation,
        by: &str,
    ) -> Result<(), PushError> {
        self.inner.db.delete_reminders(&c.id).await?;
        let body = format!(
            "{} on {} was cancelled",
            subject(c),
            c.scheduled_at.format("%a %e %b %Y, %H:%M UTC")
        );
        let n = update_notification(
            Kind::ConsultationCancelled,
            "Consultation cancelled",
            &body,
            c,
        );
        let now = self.now();
        let expires = c.scheduled_at + chrono::Duration::minutes(i64::from(c.duration_minutes));
        self.notify(
            &others(c, by),
            &n,
            Some(&c.id),
            now,
            Some(expires.max(now + chrono::Duration::hours(1))),
        )
        .await?;
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
        let Some(c) = self.inner.db.consultation(consultation_id).await? else {
            return Ok(());
        };
        if c.status.is_closed() {
            return Ok(());
        }
        self.stop_ringing(
            &c.id,
            |callee| callee == user_id || connected.iter().any(|u| u == callee),
            "answered",
        )
        .await?;
        let other = if user_id == c.lawyer_id {
            &c.client_id
        } else if user_id == c.client_id {
            &c.lawyer_id
        } else {
            // Admins do not ring anyone.
            return Ok(());
        };
        if connected.iter().any(|u| u == other) {
            return Ok(());
        }
        let now = self.now();
        let ttl = self.inner.config.call_ttl;
        let caller = clip(name, 60);
        let n = Notification {
            kind: Kind::IncomingCall,
            title: Some("Incoming video consultation".into()),
            body: Some(format!("{caller} is calling you")),
            data: BTreeMap::from([
                ("action".into(), "join_call".into()),
                ("consultationId".into(), c.id.clone()),
                ("callerName".into(), caller),
                ("callType".into(), "video".into()),
            ]),
            ttl_seconds: u32::try_from(ttl.as_secs()).unwrap_or(30),
            collapse_key: Some(format!("call-{}", c.id)),
        };
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let queued = self
            .notify(
                std::slice::from_ref(other),
                &n,
                Some(&c.id),
                now,
                Some(expires),
            )
            .await?;
        tracing::info!(consultation_id = %c.id, callee = %other, devices = queued, "ringing");
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
        // The caller left: the callee's phone stops ringing, unless someone is still there
        // calling (the callee's own ring is stopped when they join).
        if connected.iter().any(|u| u != user_id) {
            return Ok(());
        }
        self.stop_ringing(consultation_id, |callee| callee != user_id, "caller_left")
            .await
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
        self.stop_ringing(consultation_id, |callee| callee == user_id, action)
            .await
    }

    /// Sends `call_cancelled` to the callee of the consultation's ringing call, if there is
    /// one and `whom(callee)` says so.
    async fn stop_ringing(
        &self,
        consultation_id: &str,
        whom: impl Fn(&str) -> bool,
        reason: &str,
    ) -> Result<(), PushError> {
        let now = self.now();
        let Some(call) = self.inner.db.latest_call(consultation_id).await? else {
            return Ok(());
        };
        let ringing =
            call.kind == Kind::IncomingCall.as_str() && call.expires_at.is_some_and(|e| e > now);
        if !ringing || !whom(&call.user_id) {
            return Ok(());
        }
        let ttl = self.inner.config.call_ttl;
        let n = Notification {
            kind: Kind::CallCancelled,
            title: None,
            body: None,
            data: BTreeMap::from([
                ("action".into(), "call_cancelled".into()),
                ("consultationId".into(), consultation_id.to_owned()),
                ("reason".into(), reason.to_owned()),
            ]),
            ttl_seconds: u32::try_from(ttl.as_secs()).unwrap_or(30),
            collapse_key: Some(format!("call-{consultation_id}")),
        };
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let queued = self
            .notify(
                std::slice::from_ref(&call.user_id),
                &n,
                Some(consultation_id),
                now,
                Some(expires),
            )
            .await?;
        tracing::info!(consultation_id, callee = %call.user_id, devices = queued, reason, "ringing stopped");
        Ok(())
    }

    /// One outbox pass: leases due rows, sends them (up to `concurrency` at once) and records
    /// the outcomes.
    pub async fn deliver_due(&self) -> Result<Pass, PushError> {
        let Some(sender) = self.inner.sender.clone() else {
            return Ok(Pass::default());
        };
        let config = &self.inner.config;
        let now = self.now();
        let until = now + chrono::Duration::from_std(config.lease).unwrap_or_default();
        let limit = u32::try_from((config.concurrency * 4).clamp(16, 2000)).unwrap_or(2000);
        let rows = self
            .inner
            .db
            .claim_notifications(&self.inner.owner, now, until, limit)
            .await?;
        let mut pass = Pass {
            claimed: rows.len(),
            ..Pass::default()
        };
        if rows.is_empty() {
            return Ok(pass);
        }
        // Outcomes are recorded in chunks while later rows are still being sent, so the database
        // and FCM work overlap; every write is awaited before the pass ends.
        let mut results = stream::iter(rows)
            .map(|row| self.deliver_one(&sender, row))
            .buffer_unordered(config.concurrency.max(1))
            .chunks(RECORD_CHUNK);
        let mut writes = Vec::new();
        while let Some(chunk) = results.next().await {
            for (_, delivery, _) in &chunk {
                match delivery {
                    Delivery::Sent { .. } => pass.sent += 1,
                    Delivery::Failed { .. } => pass.failed += 1,
                    Delivery::Expired => pass.expired += 1,
                    Delivery::Retry { .. } => pass.retried += 1,
                }
            }
            let this = self.clone();
            writes.push(tokio::spawn(async move { this.record(chunk).await }));
        }
        let mut failure = None;
        for write in writes {
            match write.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(e) => tracing::error!(error = %e, "recording outcomes panicked"),
            }
        }
        self.inner.outcomes.add(&pass);
        match failure {
            // The rows keep their lease until it expires, then are sent again.
            Some(e) => Err(e),
            None => Ok(pass),
        }
    }

    /// Records the outcomes of some leased rows and deactivates the devices FCM dropped.
    async fn record(&self, chunk: Vec<Outcome>) -> Result<(), PushError> {
        let now = self.now();
        let mut outcomes = Vec::with_capacity(chunk.len());
        for (id, delivery, drop) in chunk {
            if let Some((token, reason)) = drop
                && self.inner.db.deactivate_device(&token, reason, now).await?
            {
                tracing::info!(reason, "device deactivated: FCM no longer knows its token");
            }
            outcomes.push((id, delivery));
        }
        self.inner
            .db
            .finish_notifications(&self.inner.owner, &outcomes, now)
            .await?;
        Ok(())
    }

    async fn deliver_one(&self, sender: &FcmSender, row: OutboxNotification) -> Outcome {
        let config = &self.inner.config;
        let now = self.now();
        if row.expires_at.is_some_and(|e| e <= now) {
            return (row.id, Delivery::Expired, None);
        }
        let limited = self
            .inner
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&row.device_token, now);
        if let Err(wait) = limited {
            let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            return (
                row.id,
                Delivery::Retry {
                    at,
                    error: Some("per-device rate limit".into()),
                    attempted: false,
                },
                None,
            );
        }
        let failed = |error: String| Delivery::Failed { error };
        let Ok(notification) = serde_json::from_str::<Notification>(&row.payload) else {
            return (
                row.id,
                failed("stored payload does not decode".into()),
                None,
            );
        };
        let Some(platform) = Platform::parse(&row.platform) else {
            return (
                row.id,
                failed(format!("unknown platform {:?}", row.platform)),
                None,
            );
        };
        let body = match fcm_body(
            &notification,
            &row.id,
            &row.device_token,
            platform,
            &config.options,
            now,
        ) {
            Ok(body) => body,
            Err(e) => return (row.id, failed(e.to_string()), None),
        };
        match sender.send(body.into()).await {
            Verdict::Delivered(message_name) => (row.id, Delivery::Sent { message_name }, None),
            Verdict::DropToken(reason) => {
                let why = if reason.contains("INVALID_ARGUMENT") {
                    "invalid_token"
                } else {
                    "unregistered"
                };
                (row.id, failed(reason), Some((row.device_token, why)))
            }
            Verdict::Rejected(reason) => (row.id, failed(reason), None),
            Verdict::Reauthenticate => {
                let delivery = self.retry(&row, None, "access token refused".into());
                (row.id, delivery, None)
            }
            Verdict::Retry { after, reason } => {
                let delivery = self.retry(&row, after, reason);
                (row.id, delivery, None)
            }
        }
    }

    fn retry(&self, row: &OutboxNotification, after: Option<Duration>, reason: String) -> Delivery {
        let config = &self.inner.config;
        let failures = row.attempts + 1;
        if failures >= config.max_attempts {
            return Delivery::Failed {
                error: format!("{reason} (gave up after {failures} attempts)"),
            };
        }
        let unit: f64 = rand::rng().random();
        let delay = config.backoff.delay(failures, after, unit);
        let now = self.now();
        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        if row.expires_at.is_some_and(|e| at >= e) {
            // It would arrive too late (a call that stopped ringing): drop it now.
            return Delivery::Expired;
        }
        tracing::debug!(notification_id = %row.id, delay_ms = delay.as_millis() as u64, %reason, "FCM send will be retried");
        Delivery::Retry {
            at,
            error: Some(reason),
            attempted: true,
        }
    }

    /// One reminders pass: leases due reminders and moves each into the outbox with its
    /// notifications, atomically. Returns how many were queued.
    pub async fn remind_due(&self) -> Result<usize, PushError> {
        if !self.enabled() {
            return Ok(0);
        }
        let now = self.now();
        let until = now + chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
        let due = self
            .inner
            .db
            .claim_reminders(&self.inner.owner, now, until, 200)
            .await?;
        let mut done = 0;
        for reminder in &due {
            let rows = self.reminder_rows(reminder, now).await?;
            if self
                .inner
                .db
                .complete_reminder(reminder, &self.inner.owner, &rows, now)
                .await?
            {
                done += 1;
                tracing::info!(consultation_id = %reminder.consultation_id, offset_s = reminder.offset_seconds, devices = rows.len(), "reminder queued");
            }
        }
        if done > 0 {
            self.inner.wake.notify_one();
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
            .db
            .consultation(&reminder.consultation_id)
            .await?
        else {
            return Ok(Vec::new());
        };
        if c.status != ConsultationStatus::Scheduled {
            return Ok(Vec::new());
        }
        let ends = c.scheduled_at + chrono::Duration::minutes(i64::from(c.duration_minutes));
        let ttl = (ends - now).num_seconds().clamp(60, MAX_TTL_SECONDS);
        let n = Notification {
            kind: Kind::Reminder,
            title: Some(format!(
                "Consultation {}",
                schedule::lead_time(reminder.offset_seconds)
            )),
            body: Some(format!(
                "{} starts at {}",
                subject(&c),
                c.scheduled_at.format("%H:%M UTC on %a %e %b")
            )),
            data: BTreeMap::from([
                ("action".into(), "open_consultation".into()),
                ("consultationId".into(), c.id.clone()),
                ("scheduledAt".into(), c.scheduled_at.to_rfc3339()),
                ("offsetSeconds".into(), reminder.offset_seconds.to_string()),
            ]),
            ttl_seconds: u32::try_from(ttl).unwrap_or(60),
            collapse_key: Some(format!("reminder-{}", c.id)),
        };
        self.rows_for(
            &[c.lawyer_id.clone(), c.client_id.clone()],
            &n,
            Some(&c.id),
            now,
            Some(ends),
        )
        .await
    }

    /// Deactivates devices silent for longer than `deactivate_after`.
    pub async fn deactivate_silent(&self) -> Result<u64, PushError> {
        let now = self.now();
        let before = now
            - chrono::Duration::from_std(self.inner.config.deactivate_after).unwrap_or_default();
        let n = self.inner.db.deactivate_silent(before, now).await?;
        if n > 0 {
            tracing::info!(devices = n, "silent devices deactivated");
        }
        Ok(n)
    }

    /// Runs the workers until `shutdown` completes. A pass under way finishes (its outcomes
    /// recorded) before the service stops; leases it did not use are released.
    pub async fn run_background(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_sweep: Option<Instant> = None;
        loop {
            if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                if let Err(e) = self.deactivate_silent().await {
                    tracing::warn!(error = %e, "silent-device sweep failed");
                }
            }
            let mut busy = false;
            match self.remind_due().await {
                Ok(n) => busy |= n > 0,
                Err(e) => tracing::warn!(error = %e, "reminders pass failed"),
            }
            match self.deliver_due().await {
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
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
            }
        }
        if let Err(e) = self.inner.db.release_notifications(&self.inner.owner).await {
            tracing::warn!(error = %e, "could not release outbox leases");
        }
    }
}

/// The lawyer and the client, except `by`.
fn others(c: &VideoConsultation, by: &str) -> Vec<String> {
    [&c.lawyer_id, &c.client_id]
        .into_iter()
        .filter(|u| u.as_str() != by)
        .cloned()
        .collect()
}

fn subject(c: &VideoConsultation) -> String {
    match &c.title {
        Some(title) if !title.is_empty() => format!("\u{201c}{}\u{201d}", clip(title, 80)),
        _ => "Your video consultation".into(),
    }
}

fn update_notification(kind: Kind, title: &str, body: &str, c: &VideoConsultation) -> Notification {
    Notification {
        kind,
        title: Some(title.into()),
        body: Some(body.into()),
        data: BTreeMap::from([
            ("action".into(), kind.as_str().into()),
            ("consultationId".into(), c.id.clone()),
            ("scheduledAt".into(), c.scheduled_at.to_rfc3339()),
        ]),
        ttl_seconds: 24 * 3600,
        collapse_key: Some(format!("consultation-{}", c.id)),
    }
}
