use async_trait::async_trait;

use crate::{
    DbError,
    models::{
        AuditEvent, ConsentRecord, ConsultationFilter, ConsultationInsert, NewAuditEvent, Page,
        Participant, QualitySample, User, UserClaims, VideoConsultation,
    },
};

/// Everything Wakili stores, independent of the database behind it (recordings through
/// [`crate::RecordingStore`], push through [`crate::PushStore`]).
#[async_trait]
pub trait Repository: crate::RecordingStore + crate::PushStore + Send + Sync + 'static {
    /// Connections the pool holds open and how many of them are idle (for `/metrics`).
    fn pool_connections(&self) -> (u32, usize) {
        (0, 0)
    }

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), DbError>;

    /// Which backend this is, for logs and the start-up summary.
    fn backend(&self) -> crate::Backend;

    /// Creates or refreshes a user from token claims.
    async fn upsert_user(
        &self,
        claims: &UserClaims,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<User, DbError>;

    /// A user by id.
    async fn user(&self, id: &str) -> Result<Option<User>, DbError>;

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

    /// The people entitled to take part in a consultation.
    async fn participants(&self, consultation_id: &str) -> Result<Vec<Participant>, DbError>;

    /// Appends to the audit log.
    async fn append_audit(
        &self,
        event: NewAuditEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AuditEvent, DbError>;

    /// A consultation's audit log, oldest first.
    async fn audit_log(&self, consultation_id: &str) -> Result<Vec<AuditEvent>, DbError>;

    /// Appends several audit entries in one transaction (one disk sync), in order.
    async fn append_audits(
        &self,
        events: Vec<NewAuditEvent>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DbError>;

    /// Stores a recording consent decision.
    async fn record_consent(&self, consent: &ConsentRecord) -> Result<(), DbError>;

    /// A consultation's consent decisions, oldest first.
    async fn consents(&self, consultation_id: &str) -> Result<Vec<ConsentRecord>, DbError>;

    /// Stores a quality sample.
    async fn add_quality_sample(&self, sample: &QualitySample) -> Result<(), DbError>;

    /// A consultation's quality samples, oldest first.
    async fn quality_samples(&self, consultation_id: &str) -> Result<Vec<QualitySample>, DbError>;
}
