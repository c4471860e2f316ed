//! Opaque string identifiers.
//!
//! Ids Wakili creates are UUIDv7 strings (time-ordered, so indexes stay compact). User ids come from
//! the platform's JWT `sub` claim and are only checked for shape.

use std::fmt;

use crate::CoreError;

/// Longest id accepted from outside (user ids from tokens, ids in URLs).
pub const MAX_ID_LEN: usize = 128;

/// A fresh, time-ordered, globally unique id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn check_id(field: &'static str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} bytes"),
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '|');
    if !value.chars().all(ok) {
        return Err(CoreError::invalid(
            field,
            "may contain only ASCII letters, digits and - _ . @ : |",
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates an id received from outside.
            pub fn parse(value: impl Into<String>) -> Result<Self, CoreError> {
                let value = value.into();
                check_id($field, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the id, returning the string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A user's id: the platform's `sub` claim.
    UserId,
    "userId"
);
string_id!(
    /// A video consultation's id.
    ConsultationId,
    "consultationId"
);

impl ConsultationId {
    /// A new consultation id.
    pub fn generate() -> Self {
        Self(new_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_time_ordered() {
        let a = ConsultationId::generate();
        let b = ConsultationId::generate();
        assert!(ConsultationId::parse(a.as_str()).is_ok());
        assert!(a < b, "uuid v7 ids sort by creation time");
    }

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("../etc").is_err());
        assert!(UserId::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
        assert!(UserId::parse("u1").is_ok());
    }
}
