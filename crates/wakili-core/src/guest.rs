//! Guests: the interpreter, second lawyer or observer a consultation's lawyer invites, and the
//! rules for inviting them. A guest's access to the consultation is [`Access::Guest`]; in the
//! call they are a participant with the matching [`crate::ParticipantRole`].
//!
//! [`Access::Guest`]: crate::consultation::Access::Guest

use serde::Deserialize;

use crate::{CoreError, GuestRole, UserId, consultation::ConsultationStatus, media::MediaMode};

/// Most guests one consultation may have: with its lawyer and client, eight people, the SFU's
/// default room size.
pub const MAX_GUESTS: usize = 6;

/// Body of `PUT /consultations/{id}/participants/{userId}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GuestRequest {
    /// What the guest takes part as.
    pub role: GuestRole,
}

/// The consultation as an invitation sees it.
#[derive(Debug, Clone, Copy)]
pub struct InviteContext<'a> {
    /// Its lawyer.
    pub lawyer_id: &'a str,
    /// Its client.
    pub client_id: &'a str,
    /// Where it is in its life.
    pub status: ConsultationStatus,
    /// How it carries media.
    pub media_mode: MediaMode,
    /// The guests it has now, the invitee excluded.
    pub other_guests: usize,
}

/// Why an invitation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteRefusal {
    /// The user id or the role is not valid.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The invitee is the consultation's lawyer or client already.
    #[error("{0} is already the consultation's {1}")]
    Party(String, &'static str),
    /// The consultation is over or called off.
    #[error("the consultation is {0}: guests can no longer be invited")]
    Closed(ConsultationStatus),
    /// [`MAX_GUESTS`] guests are invited already.
    #[error("the consultation has {MAX_GUESTS} guests already, the most allowed")]
    Full,
    /// An observer only receives, which only the SFU can enforce: a consultation booked
    /// peer to peer would let them send.
    #[error(
        "an observer needs the SFU, and this consultation is booked peer to peer (mediaMode p2p)"
    )]
    ObserverNeedsSfu,
}

/// Which of a consultation's two parties `user_id` is, if either: the parties are never guests.
pub fn party(lawyer_id: &str, client_id: &str, user_id: &str) -> Option<&'static str> {
    if user_id == lawyer_id {
        Some("lawyer")
    } else if user_id == client_id {
        Some("client")
    } else {
        None
    }
}

impl InviteContext<'_> {
    /// Checks inviting `user_id` as `role` (a new invitation, or a new role for a guest).
    pub fn check(&self, user_id: &str, role: GuestRole) -> Result<UserId, InviteRefusal> {
        let user = UserId::parse(user_id)
            .map_err(|_| CoreError::invalid("userId", "must be a valid user id"))?;
        if let Some(party) = party(self.lawyer_id, self.client_id, user.as_str()) {
            return Err(InviteRefusal::Party(user.to_string(), party));
        }
        if self.status.is_closed() {
            return Err(InviteRefusal::Closed(self.status));
        }
        if self.other_guests >= MAX_GUESTS {
            return Err(InviteRefusal::Full);
        }
        if role == GuestRole::Observer && self.media_mode == MediaMode::P2p {
            return Err(InviteRefusal::ObserverNeedsSfu);
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn context() -> InviteContext<'static> {
        InviteContext {
            lawyer_id: "l1",
            client_id: "c1",
            status: ConsultationStatus::Scheduled,
            media_mode: MediaMode::Auto,
            other_guests: 0,
        }
    }

    #[test]
    fn a_lawyer_invites_an_interpreter_counsel_or_observer() {
        for role in [
            GuestRole::Interpreter,
            GuestRole::Counsel,
            GuestRole::Observer,
        ] {
            assert_eq!(context().check("i1", role).unwrap().as_str(), "i1");
        }
    }

    #[test]
    fn the_parties_cannot_be_invited_as_guests() {
        assert_eq!(
            context().check("l1", GuestRole::Counsel),
            Err(InviteRefusal::Party("l1".into(), "lawyer"))
        );
        assert_eq!(
            context().check("c1", GuestRole::Observer),
            Err(InviteRefusal::Party("c1".into(), "client"))
        );
        assert!(matches!(
            context().check("", GuestRole::Observer),
            Err(InviteRefusal::Invalid(_))
        ));
    }

    #[test]
    fn a_closed_or_full_consultation_takes_no_more_guests() {
        let ended = InviteContext {
            status: ConsultationStatus::Ended,
            ..context()
        };
        assert!(matches!(
            ended.check("i1", GuestRole::Interpreter),
            Err(InviteRefusal::Closed(_))
        ));
        let full = InviteContext {
            other_guests: MAX_GUESTS,
            ..context()
        };
        assert_eq!(
            full.check("i1", GuestRole::Interpreter),
            Err(InviteRefusal::Full)
        );
        let running = InviteContext {
            status: ConsultationStatus::InProgress,
            other_guests: MAX_GUESTS - 1,
            ..context()
        };
        assert!(running.check("i1", GuestRole::Interpreter).is_ok());
    }

    #[test]
    fn an_observer_needs_a_consultation_the_sfu_can_carry() {
        let p2p = InviteContext {
            media_mode: MediaMode::P2p,
            ..context()
        };
        assert_eq!(
            p2p.check("o1", GuestRole::Observer),
            Err(InviteRefusal::ObserverNeedsSfu)
        );
        assert!(p2p.check("i1", GuestRole::Interpreter).is_ok());
    }
}
