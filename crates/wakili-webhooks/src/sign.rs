//! Standard Webhooks signatures, through the `standardwebhooks` crate.

use standardwebhooks::Webhook;

/// The three headers of one signed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `webhook-id`: the event's stable id.
    pub id: String,
    /// `webhook-timestamp`: seconds since the epoch, of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>` per secret, space-separated (two during a rotation,
    /// so a receiver holding either secret verifies).
    pub signature: String,
}

/// Signs `body` for `id` at `timestamp` with every secret. A secret that does not decode
/// (which the settings and the API refuse to store) is skipped; `None` when none does.
pub fn sign(id: &str, timestamp: i64, body: &str, secrets: &[&str]) -> Option<Signed> {
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(|secret| Webhook::new(secret).ok())
        .filter_map(|hook| hook.sign(id, timestamp, body.as_bytes()).ok())
        .collect();
    if signatures.is_empty() {
        return None;
    }
    Some(Signed {
        id: id.to_owned(),
        timestamp,
        signature: signatures.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(s: &Signed) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("webhook-id", s.id.parse().unwrap());
        h.insert(
            "webhook-timestamp",
            s.timestamp.to_string().parse().unwrap(),
        );
        h.insert("webhook-signature", s.signature.parse().unwrap());
        h
    }

    #[test]
    fn both_secrets_of_a_rotation_verify_and_a_third_does_not() {
        let old = wakili_core::webhook::endpoint::secret_from(&[1; 32]);
        let new = wakili_core::webhook::endpoint::secret_from(&[2; 32]);
        let other = wakili_core::webhook::endpoint::secret_from(&[3; 32]);
        let body = r#"{"type":"consultation.started"}"#;
        let now = chrono::Utc::now().timestamp();
        let signed = sign("evt_1", now, body, &[&new, &old]).unwrap();
        assert_eq!(signed.signature.matches("v1,").count(), 2);
        for secret in [&new, &old] {
            Webhook::new(secret)
                .unwrap()
                .verify(body.as_bytes(), &headers(&signed))
                .unwrap();
        }
        assert!(
            Webhook::new(&other)
                .unwrap()
                .verify(body.as_bytes(), &headers(&signed))
                .is_err()
        );
        assert!(
            Webhook::new(&new)
                .unwrap()
                .verify(b"{}", &headers(&signed))
                .is_err(),
            "another body"
        );
    }
}
