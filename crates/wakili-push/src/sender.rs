//! The FCM HTTP v1 sender: one `messages:send` request per message over a shared HTTP/2
//! connection, with the access token from [`TokenSource`].

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use wakili_core::Clock;

use crate::{
    PushError,
    oauth::TokenSource,
    verdict::{Verdict, classify},
};

/// Sends FCM messages.
#[derive(Clone)]
pub struct FcmSender {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    tokens: Arc<TokenSource>,
    /// Reads "now" for `Retry-After` given in seconds.
    clock: Clock,
}

impl std::fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSender")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FcmSender {
    /// A sender for `project` at `base_url` (`https://fcm.googleapis.com`), reading "now" from
    /// `clock`. A plain `http://`
    /// base (test servers) is spoken to in HTTP/2 with prior knowledge; over TLS HTTP/2 is
    /// negotiated.
    pub fn new(
        base_url: &str,
        project: &str,
        tokens: Arc<TokenSource>,
        timeout: Duration,
        clock: Clock,
    ) -> Result<Self, PushError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true);
        if base_url.starts_with("http://") {
            builder = builder.http2_prior_knowledge();
        }
        let endpoint = format!(
            "{}/v1/projects/{project}/messages:send",
            base_url.trim_end_matches('/')
        );
        Ok(Self {
            http: builder.build()?,
            // Parsed once, not per request.
            endpoint: reqwest::Url::parse(&endpoint)
                .map_err(|e| PushError::Credentials(format!("push.fcm_base_url: {e}")))?,
            tokens,
            clock,
        })
    }

    /// The `messages:send` URL.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends one message body (`{"message": …}` JSON) and says what its answer means. Network
    /// and token-endpoint failures are retryable; a refused access token is renewed once.
    pub async fn send(&self, body: Bytes) -> Verdict {
        for _ in 0..2 {
            let token = match self.tokens.token().await {
                Ok(token) => token,
                Err(e) => {
                    return Verdict::Retry {
                        after: None,
                        reason: e.to_string(),
                    };
                }
            };
            match self.attempt(&token, body.clone()).await {
                Ok(Verdict::Reauthenticate) => self.tokens.invalidate(&token),
                Ok(verdict) => return verdict,
                Err(e) => {
                    return Verdict::Retry {
                        after: None,
                        reason: e.to_string(),
                    };
                }
            }
        }
        Verdict::Retry {
            after: None,
            reason: "FCM refused a fresh access token".into(),
        }
    }

    async fn attempt(&self, token: &str, body: Bytes) -> Result<Verdict, PushError> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        Ok(classify(
            status,
            retry_after.as_deref(),
            &bytes,
            self.clock.now(),
        ))
    }
}
