//! Opaque cursors for keyset pagination over `(scheduled_at, id)`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use crate::CoreError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size a caller may ask for.
pub const MAX_LIMIT: u32 = 200;

/// Position after the last item of a page: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Sort key of the last item.
    pub scheduled_at: DateTime<Utc>,
    /// Tie-breaker: id of the last item.
    pub id: String,
}

impl Cursor {
    /// Encodes the cursor for a URL.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.scheduled_at.timestamp_micros(),
            self.id
        ))
    }

    /// Decodes a cursor received from a client.
    pub fn decode(text: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::Invalid {
            field: "cursor",
            message: "is not a cursor this server issued".into(),
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (micros, id) = text.split_once('|').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let scheduled_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            scheduled_at,
            id: id.to_owned(),
        })
    }
}

/// Clamps a requested page size.
pub fn limit(requested: Option<u32>) -> Result<u32, CoreError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(CoreError::Invalid {
            field: "limit",
            message: format!("must be between 1 and {MAX_LIMIT}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            scheduled_at: "2026-12-01T10:00:00.123456Z".parse().unwrap(),
            id: "0193-abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("not base64!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x|y")).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("12|")).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some(10)), Ok(10));
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
