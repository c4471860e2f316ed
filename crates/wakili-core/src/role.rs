//! Who is calling: the platform's roles.

use serde::{Deserialize, Serialize};

use crate::UserId;

/// A platform role, from the JWT `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A lawyer's client.
    Client,
    /// A lawyer: schedules and runs consultations.
    Lawyer,
    /// Platform staff: sees and manages everything.
    Admin,
}

named!(Role, field "role", "role" {
    Client => "client",
    Lawyer => "lawyer",
    Admin => "admin",
});

/// Someone's part in one consultation: the two it was booked for, a guest the lawyer invited, or
/// platform staff. Participants carry it in the room (`role` in the join answer and in
/// `participant:joined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    /// The lawyer the consultation was booked for: admits, records and ends the call.
    Lawyer,
    /// The client it was booked for.
    Client,
    /// An invited interpreter: takes part like the client.
    Interpreter,
    /// An invited second lawyer (co-counsel): enters without waiting, but does not run the call.
    Counsel,
    /// An invited observer (a paralegal, a trainee): receives the call's audio and video and may
    /// send none.
    Observer,
    /// Platform staff (support, a supervisor): may run the call.
    Admin,
}

named!(ParticipantRole, field "role", "participant role" {
    Lawyer => "lawyer",
    Client => "client",
    Interpreter => "interpreter",
    Counsel => "counsel",
    Observer => "observer",
    Admin => "admin",
});

impl ParticipantRole {
    /// Whether this participant may send media (an observer only listens and watches).
    pub fn may_publish(self) -> bool {
        self != Self::Observer
    }

    /// Whether this participant enters through the waiting room (the lawyers and staff go
    /// straight in).
    pub fn waits(self) -> bool {
        matches!(self, Self::Client | Self::Interpreter | Self::Observer)
    }

    /// Whether this participant runs the call: admits from the waiting room and ends it.
    pub fn runs_call(self) -> bool {
        matches!(self, Self::Lawyer | Self::Admin)
    }
}

/// What a lawyer may invite someone to a consultation as (`POST
/// /consultations/{id}/participants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GuestRole {
    /// An interpreter.
    Interpreter,
    /// A second lawyer.
    Counsel,
    /// A listener who sends no media.
    Observer,
}

named!(GuestRole, field "role", "guest role" {
    Interpreter => "interpreter",
    Counsel => "counsel",
    Observer => "observer",
});

impl From<GuestRole> for ParticipantRole {
    fn from(role: GuestRole) -> Self {
        match role {
            GuestRole::Interpreter => Self::Interpreter,
            GuestRole::Counsel => Self::Counsel,
            GuestRole::Observer => Self::Observer,
        }
    }
}

impl ParticipantRole {
    /// The guest role, if this is one.
    pub fn guest(self) -> Option<GuestRole> {
        match self {
            Self::Interpreter => Some(GuestRole::Interpreter),
            Self::Counsel => Some(GuestRole::Counsel),
            Self::Observer => Some(GuestRole::Observer),
            Self::Lawyer | Self::Client | Self::Admin => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's user id.
    pub user_id: UserId,
    /// The caller's role.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is platform staff.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_text() {
        for role in [Role::Client, Role::Lawyer, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Lawyer".parse::<Role>().is_err());
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn guests_are_the_participant_roles_that_are_neither_party_nor_staff() {
        use ParticipantRole as P;
        for guest in [
            GuestRole::Interpreter,
            GuestRole::Counsel,
            GuestRole::Observer,
        ] {
            let part = P::from(guest);
            assert_eq!(part.guest(), Some(guest));
            assert_eq!(part.as_str(), guest.as_str());
        }
        for party in [P::Lawyer, P::Client, P::Admin] {
            assert_eq!(party.guest(), None);
            assert!(party.as_str().parse::<GuestRole>().is_err());
        }
    }

    #[test]
    fn only_observers_are_listen_only_and_only_the_lawyer_and_staff_run_the_call() {
        use ParticipantRole as P;
        let all = [
            P::Lawyer,
            P::Client,
            P::Interpreter,
            P::Counsel,
            P::Observer,
            P::Admin,
        ];
        for part in all {
            assert_eq!(part.may_publish(), part != P::Observer, "{part}");
            assert_eq!(
                part.runs_call(),
                matches!(part, P::Lawyer | P::Admin),
                "{part}"
            );
            assert_eq!(
                part.waits(),
                matches!(part, P::Client | P::Interpreter | P::Observer),
                "{part}"
            );
        }
    }
}
