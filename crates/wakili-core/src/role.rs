//! Who is calling: the platform's roles.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{CoreError, UserId};

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

impl Role {
    /// The role as the API and database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Lawyer => "lawyer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Role::Client),
            "lawyer" => Ok(Role::Lawyer),
            "admin" => Ok(Role::Admin),
            _ => Err(CoreError::invalid(
                "role",
                format!("unknown role {s:?}; expected client, lawyer or admin"),
            )),
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
}
