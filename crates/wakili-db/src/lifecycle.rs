//! The consultation lifecycle as the API and signaling apply it: one status change with its
//! timestamps and audit entry, saved with optimistic concurrency, and judged again on the fresh
//! row when another writer got there first.

use serde_json::Value;
use wakili_core::{Clock, CoreError, consultation::Action};

use crate::{
    ConsultationStore, DbError,
    models::{NewAuditEvent, VideoConsultation},
};

/// Why a transition was not applied.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError<E> {
    /// No such consultation.
    #[error("no such consultation")]
    NotFound,
    /// The caller's check refused it (e.g. not the consultation's lawyer).
    #[error("refused")]
    Refused(E),
    /// The consultation's status does not allow the action.
    #[error(transparent)]
    Invalid(CoreError),
    /// Other writers changed the consultation on every attempt.
    #[error("the consultation is being changed by someone else")]
    Busy,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A status change to apply.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// What happens.
    pub action: Action,
    /// The user doing it (audit actor; `cancelled_by` on a cancel).
    pub actor: &'a str,
    /// The audit entry's detail; `from` and `to` (the statuses) are added to an object.
    pub detail: Value,
    /// Attempts before giving up with [`TransitionError::Busy`].
    pub attempts: usize,
}

impl Transition<'_> {
    /// `current` after this transition at `now`, and the audit entry that records it (its
    /// detail with the statuses `from` and `to`); refused when the status does not allow it.
    pub fn applied_to(
        &self,
        current: &VideoConsultation,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(VideoConsultation, NewAuditEvent), CoreError> {
        let next = current.transitioned(self.action, self.actor, now)?;
        let mut detail = self.detail.clone();
        if let Some(map) = detail.as_object_mut() {
            map.insert("from".into(), current.status.as_str().into());
            map.insert("to".into(), next.status.as_str().into());
        }
        let audit = NewAuditEvent {
            consultation_id: Some(current.id.clone()),
            actor_id: Some(self.actor.to_owned()),
            action: self.action.audit_name(),
            detail,
        };
        Ok((next, audit))
    }
}

/// Applies `transition` to consultation `id`: reads it, lets `guard` check the caller against it
/// (its answer is returned with the saved row), applies the action and `change`, and saves both
/// the row and the audit entry. A concurrent save makes it start again from the fresh row, so the
/// state machine always judges the current state.
#[tracing::instrument(name = "consultation_transition", skip_all, fields(consultation_id = id, action = transition.action.as_str()))]
pub async fn transition<G, E>(
    db: &dyn ConsultationStore,
    id: &str,
    transition: Transition<'_>,
    clock: &Clock,
    guard: impl Fn(&VideoConsultation) -> Result<G, E>,
    change: impl Fn(&mut VideoConsultation),
) -> Result<(VideoConsultation, G), TransitionError<E>> {
    for _ in 0..transition.attempts {
        let current = db
            .consultation(id)
            .await?
            .ok_or(TransitionError::NotFound)?;
        let granted = guard(&current).map_err(TransitionError::Refused)?;
        let (mut next, audit) = transition
            .applied_to(&current, clock.now())
            .map_err(TransitionError::Invalid)?;
        change(&mut next);
        if let Some(saved) = db.save_consultation(&next, audit).await? {
            return Ok((saved, granted));
        }
    }
    Err(TransitionError::Busy)
}
