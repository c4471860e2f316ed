use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured secret: readable only through [`Secret::expose`]; printed and serialized masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What a secret looks like in any output.
pub const MASK: &str = "********";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Environment values are parsed loosely (`WAKILI_AUTH__SECRET=123…` arrives as a number):
        // a secret is whatever text was written.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_u64<E>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u128<E>(self, v: u128) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i128<E>(self, v: i128) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        deserializer.deserialize_any(Text).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s} {s:?}"), "******** ********");
        assert_eq!(toml::Value::try_from(&s).unwrap().as_str(), Some(MASK));
        assert_eq!(s.expose(), "hunter2-hunter2");
    }
}
