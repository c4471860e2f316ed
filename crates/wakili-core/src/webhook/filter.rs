//! Which events an endpoint subscribes to.

use std::collections::BTreeSet;

use super::EventType;
use crate::CoreError;

/// The events an endpoint receives: written as names (`recording.ready`), groups
/// (`recording.*`) or `*` for all; kept as the set they name, so an unknown name is refused
/// when the endpoint is configured, not silently never matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter(BTreeSet<EventType>);

impl Filter {
    /// Every event.
    pub fn all() -> Self {
        Self(EventType::ALL.into_iter().collect())
    }

    /// The events `patterns` name; an empty list means all of them.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, CoreError> {
        if patterns.is_empty() {
            return Ok(Self::all());
        }
        let mut set = BTreeSet::new();
        for pattern in patterns {
            let pattern = pattern.as_ref().trim();
            if pattern == "*" {
                set.extend(EventType::ALL);
            } else if let Some(group) = pattern.strip_suffix(".*") {
                let before = set.len();
                set.extend(EventType::ALL.into_iter().filter(|e| e.group() == group));
                if set.len() == before && !EventType::ALL.iter().any(|e| e.group() == group) {
                    return Err(CoreError::invalid(
                        "events",
                        format!("no webhook events are called {pattern:?}"),
                    ));
                }
            } else {
                set.insert(pattern.parse::<EventType>()?);
            }
        }
        Ok(Self(set))
    }

    /// Whether `event` is among them.
    pub fn matches(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }

    /// The events, in declaration order.
    pub fn events(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }

    /// The names, for the API.
    pub fn names(&self) -> Vec<String> {
        self.events().map(|e| e.as_str().to_owned()).collect()
    }

    /// The stored form: `,name,name,` so that a store matches one event with
    /// `LIKE '%,name,%'`.
    pub fn stored(&self) -> String {
        let mut out = String::from(",");
        for e in self.events() {
            out.push_str(e.as_str());
            out.push(',');
        }
        out
    }

    /// Reads [`Filter::stored`] back; unknown names (an event since retired) are skipped.
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split(',')
                .filter_map(|name| name.parse().ok())
                .collect(),
        )
    }

    /// Whether it names nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
