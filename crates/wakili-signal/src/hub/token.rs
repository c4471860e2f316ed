//! The connection's token on the worker: `auth:expiring` before it expires, `auth:refresh` to
//! replace it, and closing the connection once it has expired (the rules are `crate::expiry`).

use std::time::Duration;

use socketioxide::adapter::Adapter;

use super::{Reply, Worker};
use crate::{
    expiry::{self, Due},
    protocol::{CloseReason, RefreshAck, RefreshRequest, Refusal, ServerEvent, SessionClosed},
};

/// Longest single wait of the worker's token timer; it re-reads the clock when it fires.
const MAX_WAIT: Duration = Duration::from_secs(3600);

impl<A: Adapter> Worker<A> {
    /// How long until something is due on the token.
    pub(super) fn token_wait(&self) -> Duration {
        self.life.next(self.hub.clock.now()).1.min(MAX_WAIT)
    }

    /// The token timer fired: warn, or close an expired connection.
    pub(super) fn token_due(&mut self) {
        let now = self.hub.clock.now();
        let (due, wait) = self.life.next(now);
        if !wait.is_zero() {
            return;
        }
        match due {
            Due::Warn => {
                let warning = self.life.warn(now);
                if let Err(e) = self.socket.emit(warning.name(), &warning) {
                    tracing::debug!(error = %e, "auth:expiring not sent");
                }
            }
            Due::Expire => self.close_expired(),
        }
    }

    /// Refuses every event once the token has expired; the worker closes the connection after
    /// the refusal's ack.
    pub(super) fn check_token(&self) -> Result<(), Refusal> {
        if self.expired || self.life.expired(self.hub.clock.now()) {
            return Err(Refusal::new(
                expiry::TOKEN_EXPIRED,
                "the connection's token has expired; connect again with a new token",
            ));
        }
        Ok(())
    }

    /// `auth:refresh`: a new token for the same user and role takes over the connection.
    pub(super) fn refresh(&mut self, request: RefreshRequest) -> Result<Reply, Refusal> {
        let now = self.hub.clock.now();
        let expires_at =
            expiry::check_refresh(&self.hub.verifier, &request.token, now, &self.caller)?;
        self.life.renew(expires_at, now);
        self.token_renewed = true;
        tracing::debug!(user_id = %self.caller.user_id, %expires_at, "token refreshed");
        Reply::ack(&RefreshAck { expires_at })
    }

    /// Tells the client why, then closes the connection (once). The participant becomes
    /// "reconnecting" and may resume with a new token within the grace period.
    pub(super) fn close_expired(&mut self) {
        if std::mem::replace(&mut self.expired, true) {
            return;
        }
        tracing::info!(user_id = %self.caller.user_id, "closing a connection whose token expired");
        let notice = SessionClosed {
            reason: CloseReason::TokenExpired,
            message: "your sign-in expired; connect again with a new token",
        };
        if let Err(e) = self.socket.emit(notice.name(), &notice) {
            tracing::debug!(error = %e, "session:closed not sent");
        }
        if let Err(e) = self.socket.clone().disconnect() {
            tracing::warn!(error = %e, "could not close a connection whose token expired");
        }
    }
}
