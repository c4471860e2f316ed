//! Mobile push bookkeeping: devices, the notification outbox and scheduled reminders (the types
//! are `wakili_core::model::push`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use wakili_core::model::push::{
    CallState, DeliveryFilter, DeliveryStatus, DeviceRegistration, DueReminder, NewDevice,
    NewNotification, OutboxNotification,
};

pub use wakili_core::delivery::Outcome;

use crate::DbError;

/// Devices, the outbox and reminders.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Registers a device, or refreshes the registration of its token (moving it to
    /// `new.user_id`), reactivating it.
    async fn upsert_device(
        &self,
        new: &NewDevice,
        now: DateTime<Utc>,
    ) -> Result<DeviceRegistration, DbError>;

    /// A user's devices, oldest first.
    async fn devices_of(&self, user_id: &str) -> Result<Vec<DeviceRegistration>, DbError>;

    /// The active devices of these users.
    async fn active_devices(&self, user_ids: &[String])
    -> Result<Vec<DeviceRegistration>, DbError>;

    /// Removes a user's device; `false` when the user has no such device.
    async fn delete_device(&self, user_id: &str, token: &str) -> Result<bool, DbError>;

    /// Marks a user's device as seen now (reactivating it when it was deactivated for silence).
    async fn touch_device(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRegistration>, DbError>;

    /// Stops sending to a token (FCM said it is gone or invalid).
    async fn deactivate_device(
        &self,
        token: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;

    /// Deactivates devices not seen since `before`; returns how many.
    async fn deactivate_silent(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError>;

    /// Queues notifications, atomically.
    async fn enqueue(
        &self,
        notifications: &[NewNotification],
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    /// Leases up to `limit` pending rows due by `now` whose lease is free or expired, for
    /// `owner` until `until`. Each row is leased by one caller at a time, across nodes.
    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxNotification>, DbError>;

    /// Records outcomes of rows `owner` leased, in one transaction, releasing the leases. A row
    /// whose lease `owner` lost is left alone. Returns how many rows were updated.
    async fn finish_notifications(
        &self,
        owner: &str,
        outcomes: &[(String, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<u64, DbError>;

    /// Releases `owner`'s leases without an outcome (shutdown).
    async fn release_notifications(&self, owner: &str) -> Result<(), DbError>;

    /// Notifications waiting to be sent (status `pending`), for `/metrics`.
    async fn pending_notifications(&self) -> Result<u64, DbError>;

    /// One page of deliveries, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter)
    -> Result<Vec<OutboxNotification>, DbError>;

    /// The newest `incoming_call` or `call_cancelled` row of a consultation.
    async fn latest_call(&self, consultation_id: &str) -> Result<Option<CallState>, DbError>;

    /// Replaces a consultation's pending reminders by `reminders` (offset in seconds, due
    /// instant). A reminder already sent for an offset is scheduled again at its new instant.
    async fn replace_reminders(
        &self,
        consultation_id: &str,
        reminders: &[(i64, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    /// Removes a consultation's pending reminders.
    async fn delete_reminders(&self, consultation_id: &str) -> Result<(), DbError>;

    /// A consultation's pending reminders, by due time.
    async fn pending_reminders(&self, consultation_id: &str) -> Result<Vec<DueReminder>, DbError>;

    /// Leases up to `limit` pending reminders due by `now`, for `owner` until `until`.
    async fn claim_reminders(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueReminder>, DbError>;

    /// Marks a leased reminder done and queues its notifications, atomically; `false` (and
    /// nothing queued) when `owner` no longer holds it (moved, removed or taken over).
    async fn complete_reminder(
        &self,
        reminder: &DueReminder,
        owner: &str,
        notifications: &[NewNotification],
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;
}
