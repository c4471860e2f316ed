//! App versions (`MAJOR.MINOR.PATCH`), for "minimum supported version" checks.

use std::fmt;

/// A `MAJOR.MINOR.PATCH` version; pre-release and build suffixes (`-beta.1`, `+42`) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// Parses `1`, `1.2` or `1.2.3` (missing parts are 0), with an optional suffix.
    pub fn parse(text: &str) -> Option<Self> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut next = || -> Option<u32> {
            match parts.next() {
                None => Some(0),
                Some(p)
                    if !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    p.parse().ok()
                }
                Some(_) => None,
            }
        };
        let version = Self {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(v("1.2.3").to_string(), "1.2.3");
        assert_eq!(v("2"), v("2.0.0"));
        assert_eq!(v("1.4.0-beta.2+77"), v("1.4.0"));
        assert!(v("1.10.0") > v("1.9.9"));
        for bad in ["", "a.b", "1..2", "1.2.3.4", "-1", "1.x"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }
}
