//! What a load test does, and the bounds a server puts on the ones it runs itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shape of a load test. Durations are written like `"30s"`, `"2m"` or `"1m 30s"`. The
/// schema's ranges are those of a load test a server runs against itself (`Limits::SERVER`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = LoadTestParams))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// Simulated participants in all (rounded up to whole rooms).
    #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 2000))]
    pub participants: u32,
    /// Participants per room: a lawyer, a client, and admins beyond two.
    #[serde(default = "two")]
    #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 8, default = 2))]
    pub room_size: u32,
    /// Rooms start evenly over this time (at most 5 minutes).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "30s"))]
    pub ramp_up: Duration,
    /// Messaging goes on this long after the ramp-up (more than 0, at most 10 minutes).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "5m"))]
    pub duration: Duration,
    /// Each participant sends a candidate to every other member and a quality report this often
    /// (at least 100 ms).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "1s"))]
    pub message_interval: Duration,
    /// Pause between two members of a room joining (the client waits in the waiting room for
    /// the lawyer meanwhile; at most 10 s).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "1s"))]
    pub join_interval: Duration,
}

fn two() -> u32 {
    2
}

impl Default for Params {
    fn default() -> Self {
        Self {
            participants: 100,
            room_size: 2,
            ramp_up: Duration::from_secs(30),
            duration: Duration::from_secs(300),
            message_interval: Duration::from_secs(1),
            join_interval: Duration::from_secs(1),
        }
    }
}

/// Bounds on accepted parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most participants.
    pub max_participants: u32,
    /// Largest room.
    pub max_room_size: u32,
    /// Longest ramp-up.
    pub max_ramp_up: Duration,
    /// Longest messaging time.
    pub max_duration: Duration,
    /// Shortest message interval.
    pub min_message_interval: Duration,
    /// Longest join interval.
    pub max_join_interval: Duration,
}

impl Limits {
    /// What `wakili loadtest` accepts: anything a machine can try.
    pub const CLI: Self = Self {
        max_participants: 100_000,
        max_room_size: 16,
        max_ramp_up: Duration::from_secs(3600),
        max_duration: Duration::from_secs(24 * 3600),
        min_message_interval: Duration::from_millis(10),
        max_join_interval: Duration::from_secs(60),
    };

    /// What a server runs against itself from the dashboard: small enough not to take it down.
    pub const SERVER: Self = Self {
        max_participants: 2_000,
        max_room_size: 8,
        max_ramp_up: Duration::from_secs(300),
        max_duration: Duration::from_secs(600),
        min_message_interval: Duration::from_millis(100),
        max_join_interval: Duration::from_secs(10),
    };
}

impl Params {
    /// Rooms needed for every participant.
    pub fn rooms(&self) -> u32 {
        self.participants.div_ceil(self.room_size.max(1))
    }

    /// Problems with these parameters under `limits`, each naming the field; empty when fine.
    pub fn problems(&self, limits: &Limits) -> Vec<String> {
        let mut bad = Vec::new();
        if self.participants < 2 || self.participants > limits.max_participants {
            bad.push(format!(
                "participants: between 2 and {}",
                limits.max_participants
            ));
        }
        if self.room_size < 2 || self.room_size > limits.max_room_size {
            bad.push(format!("roomSize: between 2 and {}", limits.max_room_size));
        }
        if self.ramp_up > limits.max_ramp_up {
            bad.push(format!("rampUp: at most {:?}", limits.max_ramp_up));
        }
        if self.duration.is_zero() || self.duration > limits.max_duration {
            bad.push(format!(
                "duration: more than 0 and at most {:?}",
                limits.max_duration
            ));
        }
        if self.message_interval < limits.min_message_interval {
            bad.push(format!(
                "messageInterval: at least {:?}",
                limits.min_message_interval
            ));
        }
        if self.join_interval > limits.max_join_interval {
            bad.push(format!(
                "joinInterval: at most {:?}",
                limits.max_join_interval
            ));
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rooms_round_up() {
        let p = Params {
            participants: 5,
            room_size: 2,
            ..Params::default()
        };
        assert_eq!(p.rooms(), 3);
    }

    #[test]
    fn the_server_bounds_are_enforced_field_by_field() {
        assert!(Params::default().problems(&Limits::SERVER).is_empty());
        let p = Params {
            participants: 5_000,
            room_size: 1,
            duration: Duration::ZERO,
            message_interval: Duration::from_millis(1),
            ..Params::default()
        };
        let problems = p.problems(&Limits::SERVER);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("participants"));
        assert!(p.problems(&Limits::CLI).len() == 3);
    }

    #[test]
    fn parameters_read_human_durations() {
        let p: Params = serde_json::from_str(
            r#"{"participants":10,"rampUp":"5s","duration":"1m","messageInterval":"500ms","joinInterval":"1s"}"#,
        )
        .unwrap();
        assert_eq!(p.room_size, 2);
        assert_eq!(p.duration, Duration::from_secs(60));
        assert_eq!(p.message_interval, Duration::from_millis(500));
        assert!(serde_json::from_str::<Params>(r#"{"participants":10,"bogus":1}"#).is_err());
    }
}
