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
}
