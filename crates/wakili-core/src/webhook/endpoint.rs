//! What a webhook endpoint must look like, for the settings and the API alike.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::CoreError;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Longest endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

/// Checks an endpoint URL's form: `http://` or `https://`, a host, no credentials, no
/// fragment, no spaces or control characters. Where it points is checked when it is resolved
/// (see `wakili_core::net`).
pub fn check_url(url: &str) -> Result<(), CoreError> {
    let bad = |why: &str| Err(CoreError::invalid("url", why.to_owned()));
    if url.len() > MAX_URL_LEN {
        return bad("at most 2048 characters");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("no spaces or control characters");
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return bad("an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return bad("a URL with a host");
    }
    if authority.contains('@') {
        return bad("no user name or password in the URL (sign with the secret instead)");
    }
    if url.contains('#') {
        return bad("no #fragment");
    }
    Ok(())
}

/// Checks a signing secret: `whsec_` and the base64 of 24 to 64 bytes.
pub fn check_secret(secret: &str) -> Result<(), CoreError> {
    let bad = || {
        Err(CoreError::invalid(
            "secret",
            "whsec_ followed by the base64 of 24 to 64 random bytes",
        ))
    };
    let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
        return bad();
    };
    match STANDARD.decode(encoded) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => Ok(()),
        _ => bad(),
    }
}

/// A secret for `random` bytes (give 32).
pub fn secret_from(random: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

/// Checks an endpoint id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_id(id: &str) -> Result<(), CoreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "id",
            "1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_scheme_and_host_and_carry_no_credentials() {
        for ok in [
            "https://hooks.example.com/wakili",
            "http://127.0.0.1:8080/hooks?x=1",
            "https://[2001:db8::1]/h",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "https://",
            "https://:443/x",
            "https://user:pw@example.com/",
            "https://example.com/a b",
            "https://example.com/#frag",
            "example.com/hook",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2100))).is_err());
    }

    #[test]
    fn secrets_are_whsec_and_enough_base64() {
        let good = secret_from(&[7u8; 32]);
        assert!(good.starts_with("whsec_"));
        assert!(check_secret(&good).is_ok());
        assert!(check_secret(&secret_from(&[1u8; 16])).is_err(), "too short");
        assert!(check_secret("whsec_not base64!").is_err());
        assert!(check_secret(&good[6..]).is_err(), "prefix needed");
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(check_id("crm-prod.v2").is_ok());
        assert!(check_id("").is_err() && check_id("a/b").is_err());
        assert!(check_id(&"a".repeat(65)).is_err());
    }
}
