//! The stores, one per capability. Each service is handed only the ones it uses (signaling:
//! consultations, guests, audit, consents, quality; storage: recordings, audit, consents; push: push and
//! consultations); [`crate::Repository`] is all of them, for the API that serves everything.
//! [`crate::SqlStore`] implements each once, for SQLite and PostgreSQL alike.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use wakili_core::{GuestRole, audit_chain::Head};

use crate::{
    DbError,
    models::{
        AuditEvent, ConsentRecord, ConsultationFilter, ConsultationInsert, GuestChange,
        NewAuditEvent, Page, Participant, QualitySample, User, UserClaims, VideoConsultation,
    },
};

/// Users, as tokens describe them.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates or refreshes a user from token claims.
    async fn upsert_user(&self, claims: &UserClaims, now: DateTime<Utc>) -> Result<User, DbError>;

    /// A user by id.
    async fn user(&self, id: &str) -> Result<Option<User>, DbError>;
}

/// Consultations: booking, reading, listing, saving with optimistic concurrency.
#[async_trait]
pub trait ConsultationStore: Send + Sync {
    /// Books a consultation: the row, its two participants and the `consultation.created` audit
    /// entry, atomically.
    async fn create_consultation(
        &self,
        insert: ConsultationInsert,
    ) -> Result<VideoConsultation, DbError>;

    /// A consultation by id.
    async fn consultation(&self, id: &str) -> Result<Option<VideoConsultation>, DbError>;

    /// One page of consultations matching `filter`.
    async fn list_consultations(
        &self,
        filter: &ConsultationFilter,
    ) -> Result<Page<VideoConsultation>, DbError>;

    /// Saves a changed consultation and its audit entry atomically, if nobody saved it since it was
    /// read (`consultation.version` is the version that was read). Returns the saved row, or `None`
    /// when the version moved on.
    async fn save_consultation(
        &self,
        consultation: &VideoConsultation,
        audit: NewAuditEvent,
    ) -> Result<Option<VideoConsultation>, DbError>;

    /// The people entitled to take part in a consultation: its two parties, then its guests in
    /// the order they were invited (or last given a role).
    async fn participants(&self, consultation_id: &str) -> Result<Vec<Participant>, DbError>;
}

/// Guests: who the lawyer invited to a consultation, and as what.
#[async_trait]
pub trait GuestStore: Send + Sync {
    /// The role `user_id` was invited to `consultation_id` as, if they are a guest of it.
    async fn invitation(
        &self,
        consultation_id: &str,
        user_id: &str,
    ) -> Result<Option<GuestRole>, DbError>;

    /// Invites `user_id` as `role`, or gives a guest a new role, with its audit entry
    /// (`participant.invited` or `participant.role_changed`), atomically. Refuses with
    /// [`DbError::NotAGuest`] when the user is one of the consultation's parties.
    async fn put_guest(
        &self,
        consultation_id: &str,
        user_id: &str,
        role: GuestRole,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<GuestChange, DbError>;

    /// Withdraws a guest's invitation with its audit entry (`participant.uninvited`); `false`
    /// when the user was no guest of the consultation.
    async fn remove_guest(
        &self,
        consultation_id: &str,
        user_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends to the audit log.
    async fn append_audit(
        &self,
        event: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, DbError>;

    /// A consultation's audit log, oldest first (entries older than the hash chain first, then
    /// the chain in order).
    async fn audit_log(&self, consultation_id: &str) -> Result<Vec<AuditEvent>, DbError>;

    /// The last entry of a consultation's hash chain, if it has one: what a signed manifest
    /// vouches for.
    async fn audit_head(&self, consultation_id: &str) -> Result<Option<Head>, DbError>;

    /// Appends several audit entries in one transaction (one disk sync), in order.
    async fn append_audits(
        &self,
        events: Vec<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    /// [`append_audits`](Self::append_audits) after saving a changed consultation and its
    /// audit entry, all in one transaction, if nobody saved the consultation since it was read
    /// (`consultation.version` is the version that was read). `false`: the version moved on,
    /// and nothing was written.
    async fn append_audits_after(
        &self,
        change: (VideoConsultation, NewAuditEvent),
        events: Vec<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;
}

/// Recording consent decisions, kept as evidence.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores a recording consent decision.
    async fn record_consent(&self, consent: &ConsentRecord) -> Result<(), DbError>;

    /// A consultation's consent decisions, oldest first.
    async fn consents(&self, consultation_id: &str) -> Result<Vec<ConsentRecord>, DbError>;
}

/// Connection-quality samples, for the quality timeline.
#[async_trait]
pub trait QualityStore: Send + Sync {
    /// Stores a quality sample.
    async fn add_quality_sample(&self, sample: &QualitySample) -> Result<(), DbError>;

    /// A consultation's quality samples, oldest first.
    async fn quality_samples(&self, consultation_id: &str) -> Result<Vec<QualitySample>, DbError>;
}
