//! JSON number rules shared by request bodies.
//!
//! JSON Schema (and so the OpenAPI document) calls `30.0` an integer, and some JSON encoders
//! write whole numbers that way. serde's `u32` refuses it, which made schema-valid requests fail.
//! Fields documented as integers deserialize through [`whole_u32`] / [`opt_whole_u32`] instead:
//! an integer, or a number with no fractional part, within `u32`'s range.

use serde::{Deserialize, Deserializer, de::Error};

fn to_u32<E: Error>(n: &serde_json::Number) -> Result<u32, E> {
    let out_of_range = || {
        E::custom(format!(
            "{n} is not a whole number between 0 and {}",
            u32::MAX
        ))
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map_err(|_| out_of_range());
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // Exact: a whole f64 within u32's range converts without loss.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(f as u32)
        }
        _ => Err(out_of_range()),
    }
}

/// Deserializes a whole number (`30` or `30.0`) into a `u32`.
pub fn whole_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    to_u32(&serde_json::Number::deserialize(deserializer)?)
}

/// Like [`whole_u32`], for an optional field (`null` or absent is `None`).
pub fn opt_whole_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .as_ref()
        .map(to_u32)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "whole_u32")]
        n: u32,
        #[serde(default, deserialize_with = "opt_whole_u32")]
        m: Option<u32>,
    }

    fn parse(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn whole_numbers_in_either_spelling_are_accepted() {
        assert_eq!(parse(r#"{"n": 30}"#).unwrap().n, 30);
        assert_eq!(parse(r#"{"n": 30.0, "m": 2e2}"#).unwrap().m, Some(200));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        assert_eq!(parse(r#"{"n": 4294967295}"#).unwrap().n, u32::MAX);
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for bad in [
            r#"{"n": 30.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "30"}"#,
            r#"{"n": 1, "m": 0.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
