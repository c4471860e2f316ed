//! Signed, expiring download links.
//!
//! A link is the recording's download path plus a query string `exp=…[&u=…&r=…]&sig=…`: an
//! expiry (Unix seconds), optionally the user and role it was issued to, and an HMAC-SHA256
//! over a canonical message, so the download endpoint can serve it without a session.

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use crate::error::{LinkError, Result, StorageError};

/// First line of every signed message: names the purpose and version of the signature.
const CONTEXT: &str = "wakili-download-v1";

/// Everything but RFC 3986 unreserved characters is percent-encoded, in the query and in the
/// signed message alike; `%`, `&`, `=` and newlines are therefore never literal.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a download link allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadGrant {
    /// The recording it downloads (part of the path, not the query, but signed).
    pub recording_id: String,
    /// Unix seconds from which the link no longer works.
    pub expires_at_unix: i64,
    /// `(user_id, role)` the link was issued to, so downloads are attributable in the audit
    /// log; `None` for a link usable by whoever holds it.
    pub user: Option<(String, String)>,
}

impl DownloadGrant {
    /// The canonical message the HMAC covers:
    /// `"wakili-download-v1\n{rid}\n{exp}"`, plus `"\n{uid}\n{role}"` when bound to a user,
    /// with every value percent-encoded. Encoding keeps newlines out of the values, so the
    /// message is unambiguous, and an unbound grant (three lines) can never collide with a
    /// bound one (five lines), even for empty ids.
    fn message(&self) -> String {
        let mut message = format!(
            "{CONTEXT}\n{}\n{}",
            encode(&self.recording_id),
            self.expires_at_unix
        );
        if let Some((user_id, role)) = &self.user {
            let _ = write!(message, "\n{}\n{}", encode(user_id), encode(role));
        }
        message
    }
}

fn encode(value: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(value, COMPONENT)
}

fn mac(secret: &[u8], message: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(message.as_bytes());
    mac
}

/// The query string (without `?`) that authorizes `grant`: `exp=…&u=…&r=…&sig=…`, with `u`
/// and `r` only for a grant bound to a user, and `sig` the unpadded base64url HMAC-SHA256 of
/// the grant's canonical message under `secret`.
pub fn sign(secret: &[u8], grant: &DownloadGrant) -> String {
    let sig = mac(secret, &grant.message()).finalize().into_bytes();
    let mut query = format!("exp={}", grant.expires_at_unix);
    if let Some((user_id, role)) = &grant.user {
        let _ = write!(query, "&u={}&r={}", encode(user_id), encode(role));
    }
    query.push_str("&sig=");
    URL_SAFE_NO_PAD.encode_string(sig, &mut query);
    query
}

/// Checks the query string of a download link for `recording_id` (from the path) at
/// `now_unix` and returns what it grants.
///
/// The signature is checked (in constant time) before the expiry, so an expired link only
/// reports [`StorageError::Link(LinkError::UrlExpired)`] if it was genuine. A link is valid while
/// `now_unix < exp`. Parameters other than `exp`, `u`, `r` and `sig` are ignored (they grant
/// nothing); a repeated one, or `u` without `r`, is malformed.
pub fn verify(
    secret: &[u8],
    recording_id: &str,
    query: &str,
    now_unix: i64,
) -> Result<DownloadGrant> {
    let malformed = |msg: &str| StorageError::Link(LinkError::UrlMalformed(msg.to_owned()));
    let (mut exp, mut user, mut role, mut sig) = (None, None, None, None);
    for pair in query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "exp" => &mut exp,
            "u" => &mut user,
            "r" => &mut role,
            "sig" => &mut sig,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(malformed(&format!("repeated parameter {name:?}")));
        }
    }
    let exp = exp.ok_or_else(|| malformed("missing exp"))?;
    if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(malformed("exp is not a number"));
    }
    let expires_at_unix: i64 = exp.parse().map_err(|_| malformed("exp is not a number"))?;
    let sig = sig.ok_or_else(|| malformed("missing sig"))?;
    let decode = |value: &str, what: &str| {
        percent_decode_str(value)
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|_| malformed(&format!("{what} is not UTF-8")))
    };
    let user = match (user, role) {
        (None, None) => None,
        (Some(user), Some(role)) => Some((decode(user, "u")?, decode(role, "r")?)),
        _ => return Err(malformed("u and r go together")),
    };
    let grant = DownloadGrant {
        recording_id: recording_id.to_owned(),
        expires_at_unix,
        user,
    };
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::UrlSignature)?;
    mac(secret, &grant.message())
        .verify_slice(&sig)
        .map_err(|_| LinkError::UrlSignature)?;
    if now_unix >= grant.expires_at_unix {
        return Err(LinkError::UrlExpired.into());
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &[u8] = b"download secret";

    fn bound() -> DownloadGrant {
        DownloadGrant {
            recording_id: "rec-1".into(),
            expires_at_unix: 1_800_000_000,
            user: Some(("user 1/ä&x=y".into(), "advocate".into())),
        }
    }

    #[test]
    fn bound_and_unbound_grants_round_trip() {
        let query = sign(SECRET, &bound());
        assert!(query.starts_with("exp=1800000000&u=user%201%2F%C3%A4%26x%3Dy&r=advocate&sig="));
        assert_eq!(
            verify(SECRET, "rec-1", &query, 1_700_000_000).unwrap(),
            bound()
        );
        assert_eq!(
            verify(SECRET, "rec-1", &format!("?{query}"), 0).unwrap(),
            bound()
        );

        let unbound = DownloadGrant {
            user: None,
            ..bound()
        };
        let query = sign(SECRET, &unbound);
        assert!(query.starts_with("exp=1800000000&sig="));
        assert_eq!(
            verify(SECRET, "rec-1", &query, 1_700_000_000).unwrap(),
            unbound
        );
        // Unknown parameters grant nothing and are ignored.
        assert_eq!(
            verify(SECRET, "rec-1", &format!("{query}&download=1"), 0).unwrap(),
            unbound
        );
    }

    #[test]
    fn expiry_is_exclusive() {
        let query = sign(SECRET, &bound());
        assert!(verify(SECRET, "rec-1", &query, 1_799_999_999).is_ok());
        assert!(matches!(
            verify(SECRET, "rec-1", &query, 1_800_000_000),
            Err(StorageError::Link(LinkError::UrlExpired))
        ));
        assert!(matches!(
            verify(SECRET, "rec-1", &query, 1_800_000_001),
            Err(StorageError::Link(LinkError::UrlExpired))
        ));
    }

    #[test]
    fn every_field_is_covered_by_the_signature() {
        let query = sign(SECRET, &bound());
        let tampered = [
            query.replace("exp=1800000000", "exp=1900000000"),
            query.replace("u=user%201", "u=user%202"),
            query.replace("r=advocate", "r=admin"),
            query.replacen("&sig=", "&sig=A", 1),
        ];
        for bad in &tampered {
            assert!(
                matches!(
                    verify(SECRET, "rec-1", bad, 0),
                    Err(StorageError::Link(LinkError::UrlSignature))
                ),
                "{bad}"
            );
        }
        // Dropping the binding turns it into a different (unsigned) grant.
        let sig = query.split("&sig=").nth(1).unwrap();
        let unbound = format!("exp=1800000000&sig={sig}");
        assert!(matches!(
            verify(SECRET, "rec-1", &unbound, 0),
            Err(StorageError::Link(LinkError::UrlSignature))
        ));
        // Flipping any signature character.
        for i in query.find("sig=").unwrap() + 4..query.len() {
            let mut bad = query.clone().into_bytes();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(matches!(
                verify(SECRET, "rec-1", &bad, 0),
                Err(StorageError::Link(LinkError::UrlSignature))
            ));
        }
        assert!(matches!(
            verify(b"other secret", "rec-1", &query, 0),
            Err(StorageError::Link(LinkError::UrlSignature))
        ));
    }

    #[test]
    fn a_link_works_only_for_its_recording() {
        let query = sign(SECRET, &bound());
        assert!(matches!(
            verify(SECRET, "rec-2", &query, 0),
            Err(StorageError::Link(LinkError::UrlSignature))
        ));
        // Ids that would collide if the message were not encoded.
        let a = DownloadGrant {
            recording_id: "rec\n1".into(),
            expires_at_unix: 5,
            user: None,
        };
        assert!(verify(SECRET, "rec\n1", &sign(SECRET, &a), 0).is_ok());
        assert!(matches!(
            verify(SECRET, "rec%0A1", &sign(SECRET, &a), 0),
            Err(StorageError::Link(LinkError::UrlSignature))
        ));
    }

    #[test]
    fn empty_user_binding_is_not_an_unbound_grant() {
        let empty = DownloadGrant {
            user: Some((String::new(), String::new())),
            ..bound()
        };
        let unbound = DownloadGrant {
            user: None,
            ..bound()
        };
        assert_ne!(empty.message(), unbound.message());
        let query = sign(SECRET, &empty);
        assert_eq!(verify(SECRET, "rec-1", &query, 0).unwrap(), empty);
        let stripped = query.replace("&u=&r=", "");
        assert!(matches!(
            verify(SECRET, "rec-1", &stripped, 0),
            Err(StorageError::Link(LinkError::UrlSignature))
        ));
    }

    #[test]
    fn malformed_links_are_refused() {
        let query = sign(SECRET, &bound());
        let sig = query.split("&sig=").nth(1).unwrap().to_owned();
        for bad in [
            String::new(),
            format!("sig={sig}"),
            "exp=1800000000".to_owned(),
            format!("exp=soon&sig={sig}"),
            format!("exp=+5&sig={sig}"),
            format!("exp=1&exp=2&sig={sig}"),
            format!("exp=1800000000&u=x&sig={sig}"),
            format!("exp=1800000000&u=%FF&r=x&sig={sig}"),
        ] {
            assert!(
                matches!(
                    verify(SECRET, "rec-1", &bad, 0),
                    Err(StorageError::Link(LinkError::UrlMalformed(_)))
                ),
                "{bad}"
            );
        }
    }
}
