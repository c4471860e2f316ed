use async_trait::async_trait;

use crate::DbError;

/// Everything Wakili stores, independent of the database behind it: every store in
/// [`crate::stores`], [`crate::RecordingStore`], [`crate::PushStore`] and [`crate::WebhookStore`], and the pool itself.
#[async_trait]
pub trait Repository:
    crate::UserStore
    + crate::ConsultationStore
    + crate::GuestStore
    + crate::AuditStore
    + crate::ConsentStore
    + crate::QualityStore
    + crate::RecordingStore
    + crate::PushStore
    + crate::WebhookStore
    + Send
    + Sync
    + 'static
{
    /// Connections the pools hold open (SQLite's readers and writers together) and how many of
    /// them are idle (for `/metrics`).
    fn pool_connections(&self) -> (u32, usize) {
        (0, 0)
    }

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), DbError>;

    /// Which backend this is, for logs and the start-up summary.
    fn backend(&self) -> crate::Backend;
}
