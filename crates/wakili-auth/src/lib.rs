//! The platform's bearer tokens.
//!
//! [`Verifier`] accepts exactly one algorithm, chosen by configuration (never by the token's
//! header), so `alg` confusion and `alg: none` are impossible. Time claims are checked against a
//! `now` the caller passes in, with a configurable leeway, so the rules are tested without a clock.
//! [`Minter`] signs development and load-test tokens.

mod claims;
mod error;
mod keys;

pub use claims::{Claims, TokenRequest};
pub use error::AuthError;
pub use keys::{Algorithm, Minter, Verifier, VerifierConfig, VerifyKey};

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests;
