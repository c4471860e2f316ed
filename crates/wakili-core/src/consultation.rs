//! Video consultations: the state machine, what a valid consultation looks like, and who may see or
//! change one.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{Caller, CoreError, GuestRole, ParticipantRole, Role, UserId, media::MediaMode};

/// Shortest bookable consultation.
pub const MIN_DURATION_MINUTES: u32 = 5;
/// Longest bookable consultation (a full working day).
pub const MAX_DURATION_MINUTES: u32 = 8 * 60;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest notes, in characters.
pub const MAX_NOTES_CHARS: usize = 10_000;
/// Longest cancellation reason, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;
/// How far in the past a consultation may still be scheduled (ad-hoc calls start "now", and clocks
/// drift).
pub const MAX_PAST_SCHEDULE: Duration = Duration::hours(1);
/// How far ahead a consultation may be scheduled.
pub const MAX_FUTURE_SCHEDULE: Duration = Duration::days(2 * 365);

/// Where a consultation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsultationStatus {
    /// Booked, not started.
    Scheduled,
    /// The call is running.
    InProgress,
    /// The call took place and is over.
    Ended,
    /// Called off before it started.
    Cancelled,
}

named!(ConsultationStatus, field "status", "status" {
    Scheduled => "scheduled",
    InProgress => "in_progress",
    Ended => "ended",
    Cancelled => "cancelled",
});

impl ConsultationStatus {
    /// Whether nothing more can happen to the consultation.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Ended | Self::Cancelled)
    }

    /// The state after `action`, or why `action` is not allowed now.
    pub fn apply(self, action: Action) -> Result<Self, CoreError> {
        use Action as A;
        use ConsultationStatus as S;
        let next = match (self, action) {
            (S::Scheduled, A::Start) => S::InProgress,
            (S::InProgress, A::End) => S::Ended,
            (S::Scheduled, A::Cancel) => S::Cancelled,
            (S::Scheduled, A::Reschedule) => S::Scheduled,
            (S::Scheduled | S::InProgress, A::Edit) => self,
            (from, action) => return Err(CoreError::Transition { from, action }),
        };
        Ok(next)
    }
}

/// Something done to a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The call begins.
    Start,
    /// The call is over.
    End,
    /// Called off before it started.
    Cancel,
    /// Title or notes changed.
    Edit,
    /// Time or duration changed.
    Reschedule,
}

impl Action {
    /// The verb, for messages and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Cancel => "cancel",
            Self::Edit => "edit",
            Self::Reschedule => "reschedule",
        }
    }

    /// The audit-log action recording it.
    pub fn audit_name(self) -> &'static str {
        match self {
            Self::Start => "consultation.started",
            Self::End => "consultation.ended",
            Self::Cancel => "consultation.cancelled",
            Self::Edit => "consultation.updated",
            Self::Reschedule => "consultation.rescheduled",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller may do with one consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not theirs: the consultation must look as if it did not exist.
    None,
    /// The consultation's client.
    Client,
    /// The consultation's lawyer.
    Lawyer,
    /// Platform staff.
    Admin,
    /// Someone the lawyer invited: sees the consultation and joins its call, changes nothing.
    Guest(GuestRole),
}

impl Access {
    /// Decides a caller's access from the consultation's two parties. A guest's access comes
    /// from their invitation: see [`Access::or_guest`].
    pub fn of(caller: &Caller, lawyer_id: &str, client_id: &str) -> Self {
        if caller.role == Role::Admin {
            Self::Admin
        } else if caller.user_id.as_str() == lawyer_id {
            Self::Lawyer
        } else if caller.user_id.as_str() == client_id {
            Self::Client
        } else {
            Self::None
        }
    }

    /// This access, or a guest's when the caller is none of the parties and was invited as
    /// `invited`.
    pub fn or_guest(self, invited: Option<GuestRole>) -> Self {
        match (self, invited) {
            (Self::None, Some(role)) => Self::Guest(role),
            (access, _) => access,
        }
    }

    /// Whether the caller may see the consultation at all.
    pub fn can_view(self) -> bool {
        self != Self::None
    }

    /// Whether the caller may perform `action`.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Self::None | Self::Guest(_) => false,
            Self::Admin | Self::Lawyer => true,
            Self::Client => action == Action::Cancel,
        }
    }

    /// Whether the caller may invite guests, change their roles and remove them.
    pub fn may_invite(self) -> bool {
        matches!(self, Self::Lawyer | Self::Admin)
    }

    /// The part the caller takes in the consultation's call, if any.
    pub fn participant_role(self) -> Option<ParticipantRole> {
        match self {
            Self::None => None,
            Self::Client => Some(ParticipantRole::Client),
            Self::Lawyer => Some(ParticipantRole::Lawyer),
            Self::Admin => Some(ParticipantRole::Admin),
            Self::Guest(role) => Some(role.into()),
        }
    }
}

fn check_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, CoreError> {
    let Some(value) = value else { return Ok(None) };
    // Judged as sent (the OpenAPI schema states the same rules), then stored trimmed.
    if value.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

fn check_duration(minutes: u32) -> Result<u32, CoreError> {
    if (MIN_DURATION_MINUTES..=MAX_DURATION_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(CoreError::invalid(
            "durationMinutes",
            format!("must be between {MIN_DURATION_MINUTES} and {MAX_DURATION_MINUTES}"),
        ))
    }
}

fn check_schedule(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, CoreError> {
    if at < now - MAX_PAST_SCHEDULE {
        return Err(CoreError::invalid(
            "scheduledAt",
            "must not be more than one hour in the past",
        ));
    }
    if at > now + MAX_FUTURE_SCHEDULE {
        return Err(CoreError::invalid(
            "scheduledAt",
            "must be within two years from now",
        ));
    }
    Ok(at)
}

/// A request to book a consultation, as received (the body of `POST /api/v1/consultations`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CreateConsultation))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsultationRequest {
    /// The lawyer: required when an admin books; lawyers book for themselves and may omit it.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._@:|-]{1,128}$"))]
    pub lawyer_id: Option<String>,
    /// The client's user id on the platform.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._@:|-]{1,128}$"))]
    pub client_id: String,
    /// When the call is due (RFC 3339).
    pub scheduled_at: DateTime<Utc>,
    /// Planned length, 5–480 minutes.
    #[serde(deserialize_with = "crate::json::whole_u32")]
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 480))]
    pub duration_minutes: u32,
    /// Optional title shown to both parties, up to 200 characters (no control characters but
    /// tab and newline).
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 200,
            pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
        )
    )]
    pub title: Option<String>,
    /// Optional notes, up to 10,000 characters; never shown to the client.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 10000,
            pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
        )
    )]
    pub notes: Option<String>,
    /// How media travels: `p2p`, `sfu` or `auto` (peer to peer for two, the SFU from the third
    /// participant on or while the server records). Default: the server's `media.mode`.
    pub media_mode: Option<MediaMode>,
}

/// A consultation that passed every rule and may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsultation {
    /// The lawyer running it.
    pub lawyer_id: UserId,
    /// The client attending.
    pub client_id: UserId,
    /// When the call is due.
    pub scheduled_at: DateTime<Utc>,
    /// Planned length in minutes.
    pub duration_minutes: u32,
    /// Title, trimmed; `None` when blank.
    pub title: Option<String>,
    /// Notes, trimmed; `None` when blank.
    pub notes: Option<String>,
    /// The media mode asked for; `None`: the server's default.
    pub media_mode: Option<MediaMode>,
}

impl ConsultationRequest {
    /// Applies the booking rules for `caller` at time `now`.
    ///
    /// A lawyer books for themselves; an admin names the lawyer. Whether the caller may book at all
    /// is [`may_book`]'s decision, checked before this.
    pub fn validate(
        self,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<NewConsultation, CoreError> {
        let lawyer_id = match (caller.role, self.lawyer_id) {
            (Role::Admin, Some(id)) => UserId::parse(id)
                .map_err(|_| CoreError::invalid("lawyerId", "must be a valid user id"))?,
            (Role::Admin, None) => {
                return Err(CoreError::invalid(
                    "lawyerId",
                    "is required when an admin books a consultation",
                ));
            }
            (_, Some(id)) if id != caller.user_id.as_str() => {
                return Err(CoreError::invalid(
                    "lawyerId",
                    "a lawyer can only book consultations for themselves; omit lawyerId",
                ));
            }
            _ => caller.user_id.clone(),
        };
        let client_id = UserId::parse(self.client_id)
            .map_err(|_| CoreError::invalid("clientId", "must be a valid user id"))?;
        if client_id == lawyer_id {
            return Err(CoreError::invalid(
                "clientId",
                "must differ from the lawyer",
            ));
        }
        Ok(NewConsultation {
            lawyer_id,
            client_id,
            scheduled_at: check_schedule(self.scheduled_at, now)?,
            duration_minutes: check_duration(self.duration_minutes)?,
            title: check_text("title", self.title, MAX_TITLE_CHARS)?,
            notes: check_text("notes", self.notes, MAX_NOTES_CHARS)?,
            media_mode: self.media_mode,
        })
    }
}

/// Whether a caller with `role` may book consultations at all.
pub fn may_book(role: Role) -> bool {
    matches!(role, Role::Lawyer | Role::Admin)
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A partial update, as received (the body of `PATCH /api/v1/consultations/{id}`): absent fields
/// stay as they are; `null` clears `title` or `notes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UpdateConsultation, min_properties = 1))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsultationPatch {
    /// New due time (only while scheduled).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// New planned length, 5–480 minutes (only while scheduled).
    #[serde(default, deserialize_with = "crate::json::opt_whole_u32")]
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 480))]
    pub duration_minutes: Option<u32>,
    /// New title, or `null` to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"))]
    pub title: Option<Option<String>>,
    /// New notes, or `null` to clear them.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 10000, pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"))]
    pub notes: Option<Option<String>>,
}

/// A patch that passed every rule (texts trimmed, blanks cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPatch(ConsultationPatch);

impl ValidPatch {
    /// The validated changes.
    pub fn changes(&self) -> &ConsultationPatch {
        &self.0
    }

    /// The state-machine action this patch amounts to.
    pub fn action(&self) -> Action {
        if self.0.scheduled_at.is_some() || self.0.duration_minutes.is_some() {
            Action::Reschedule
        } else {
            Action::Edit
        }
    }
}

impl ConsultationPatch {
    /// Validates the patch at time `now`.
    pub fn validate(self, now: DateTime<Utc>) -> Result<ValidPatch, CoreError> {
        if self.scheduled_at.is_none()
            && self.duration_minutes.is_none()
            && self.title.is_none()
            && self.notes.is_none()
        {
            return Err(CoreError::invalid(
                "body",
                "nothing to change: give at least one of scheduledAt, durationMinutes, title, notes",
            ));
        }
        Ok(ValidPatch(ConsultationPatch {
            scheduled_at: self
                .scheduled_at
                .map(|at| check_schedule(at, now))
                .transpose()?,
            duration_minutes: self.duration_minutes.map(check_duration).transpose()?,
            title: self
                .title
                .map(|t| check_text("title", t, MAX_TITLE_CHARS))
                .transpose()?,
            notes: self
                .notes
                .map(|t| check_text("notes", t, MAX_NOTES_CHARS))
                .transpose()?,
        }))
    }
}

/// Validates a cancellation reason.
pub fn check_reason(reason: Option<String>) -> Result<Option<String>, CoreError> {
    check_text("reason", reason, MAX_REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsultationStatus as S;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            user_id: UserId::parse(id).unwrap(),
            role,
        }
    }

    fn request() -> ConsultationRequest {
        ConsultationRequest {
            lawyer_id: None,
            client_id: "c1".into(),
            scheduled_at: t("2026-12-01T10:00:00Z"),
            duration_minutes: 45,
            title: Some("  Lease dispute ".into()),
            notes: Some("   ".into()),
            media_mode: None,
        }
    }

    const NOW: &str = "2026-11-25T12:00:00Z";

    #[test]
    fn lifecycle_follows_the_state_machine() {
        assert_eq!(S::Scheduled.apply(Action::Start), Ok(S::InProgress));
        assert_eq!(S::InProgress.apply(Action::End), Ok(S::Ended));
        assert_eq!(S::Scheduled.apply(Action::Cancel), Ok(S::Cancelled));
        assert_eq!(S::Scheduled.apply(Action::Reschedule), Ok(S::Scheduled));
        assert_eq!(S::InProgress.apply(Action::Edit), Ok(S::InProgress));
    }

    #[test]
    fn invalid_transitions_name_the_current_state() {
        let err = S::Ended.apply(Action::Start).unwrap_err();
        assert_eq!(err.to_string(), "cannot start a consultation that is ended");
        assert!(S::Scheduled.apply(Action::End).is_err());
        assert!(S::InProgress.apply(Action::Cancel).is_err());
        assert!(S::InProgress.apply(Action::Reschedule).is_err());
        assert!(S::Cancelled.apply(Action::Edit).is_err());
        assert!(S::Cancelled.apply(Action::Start).is_err());
    }

    #[test]
    fn status_text_round_trips() {
        for s in [S::Scheduled, S::InProgress, S::Ended, S::Cancelled] {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
        assert!("done".parse::<S>().is_err());
    }

    #[test]
    fn a_lawyer_books_for_themselves_with_trimmed_text() {
        let new = request()
            .validate(&caller("l1", Role::Lawyer), t(NOW))
            .unwrap();
        assert_eq!(new.lawyer_id.as_str(), "l1");
        assert_eq!(new.title.as_deref(), Some("Lease dispute"));
        assert_eq!(new.notes, None, "blank notes are dropped");
    }

    #[test]
    fn booking_rules_reject_bad_input_naming_the_field() {
        let lawyer = caller("l1", Role::Lawyer);
        let field = |r: ConsultationRequest, who: &Caller| match r.validate(who, t(NOW)) {
            Err(CoreError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        };
        let mut r = request();
        r.duration_minutes = 2;
        assert_eq!(field(r, &lawyer), "durationMinutes");
        let mut r = request();
        r.scheduled_at = t("2026-11-25T10:00:00Z");
        assert_eq!(field(r, &lawyer), "scheduledAt");
        let mut r = request();
        r.scheduled_at = t("2029-01-01T00:00:00Z");
        assert_eq!(field(r, &lawyer), "scheduledAt");
        let mut r = request();
        r.client_id = "l1".into();
        assert_eq!(field(r, &lawyer), "clientId");
        let mut r = request();
        r.title = Some("x".repeat(MAX_TITLE_CHARS + 1));
        assert_eq!(field(r, &lawyer), "title");
        let mut r = request();
        r.lawyer_id = Some("someone-else".into());
        assert_eq!(field(r, &lawyer), "lawyerId");
        assert_eq!(field(request(), &caller("a1", Role::Admin)), "lawyerId");
    }

    #[test]
    fn an_admin_books_for_a_named_lawyer() {
        let mut r = request();
        r.lawyer_id = Some("l9".into());
        let new = r.validate(&caller("a1", Role::Admin), t(NOW)).unwrap();
        assert_eq!(new.lawyer_id.as_str(), "l9");
        assert!(may_book(Role::Admin) && may_book(Role::Lawyer) && !may_book(Role::Client));
    }

    #[test]
    fn access_depends_on_party_and_role() {
        let of = |c: Caller| Access::of(&c, "l1", "c1");
        assert_eq!(of(caller("l1", Role::Lawyer)), Access::Lawyer);
        assert_eq!(of(caller("c1", Role::Client)), Access::Client);
        assert_eq!(of(caller("a1", Role::Admin)), Access::Admin);
        assert_eq!(of(caller("l2", Role::Lawyer)), Access::None);
        assert!(!Access::None.can_view());
        assert!(Access::Client.allows(Action::Cancel));
        assert!(!Access::Client.allows(Action::Start));
        assert!(!Access::Client.allows(Action::Reschedule));
        assert!(Access::Lawyer.allows(Action::End));
    }

    #[test]
    fn an_invited_guest_sees_the_consultation_and_changes_nothing() {
        let stranger = Access::of(&caller("i1", Role::Client), "l1", "c1");
        let guest = stranger.or_guest(Some(GuestRole::Interpreter));
        assert_eq!(guest, Access::Guest(GuestRole::Interpreter));
        assert!(guest.can_view() && !guest.may_invite());
        for action in [Action::Start, Action::End, Action::Cancel, Action::Edit] {
            assert!(!guest.allows(action), "{action}");
        }
        assert_eq!(guest.participant_role(), Some(ParticipantRole::Interpreter));
        assert_eq!(stranger.or_guest(None), Access::None);
        // A party's own access wins over a stale invitation.
        let lawyer = Access::of(&caller("l1", Role::Lawyer), "l1", "c1");
        assert_eq!(lawyer.or_guest(Some(GuestRole::Observer)), Access::Lawyer);
        assert!(lawyer.may_invite() && Access::Admin.may_invite());
        assert!(!Access::Client.may_invite());
    }

    #[test]
    fn patches_are_validated_and_classified() {
        assert!(ConsultationPatch::default().validate(t(NOW)).is_err());
        let p = ConsultationPatch {
            title: Some(None),
            ..Default::default()
        }
        .validate(t(NOW))
        .unwrap();
        assert_eq!(p.action(), Action::Edit);
        let p = ConsultationPatch {
            duration_minutes: Some(30),
            ..Default::default()
        }
        .validate(t(NOW))
        .unwrap();
        assert_eq!(p.action(), Action::Reschedule);
        assert!(
            ConsultationPatch {
                duration_minutes: Some(10_000),
                ..Default::default()
            }
            .validate(t(NOW))
            .is_err()
        );
    }
}
