//! When a consultation's reminders are due (sans-IO).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The reminders of a consultation at `scheduled_at`: `(offset in seconds, due instant)` for
/// each offset whose instant is still ahead of `now`, earliest first. One whose moment passed
/// (a consultation booked 10 minutes ahead has no 24-hour reminder) is left out.
pub fn reminders(
    scheduled_at: DateTime<Utc>,
    offsets: &[Duration],
    now: DateTime<Utc>,
) -> Vec<(i64, DateTime<Utc>)> {
    let mut out: Vec<(i64, DateTime<Utc>)> = offsets
        .iter()
        .filter_map(|offset| {
            let seconds = i64::try_from(offset.as_secs()).ok()?;
            let due = scheduled_at - chrono::Duration::seconds(seconds);
            (due > now).then_some((seconds, due))
        })
        .collect();
    out.sort_by_key(|(_, due)| *due);
    out.dedup_by_key(|(seconds, _)| *seconds);
    out
}

/// How a reminder reads: "in 24 hours", "in 15 minutes".
pub fn lead_time(offset_seconds: i64) -> String {
    let (n, unit) = if offset_seconds >= 86_400 && offset_seconds % 86_400 == 0 {
        (offset_seconds / 86_400, "day")
    } else if offset_seconds >= 3_600 && offset_seconds % 3_600 == 0 {
        (offset_seconds / 3_600, "hour")
    } else {
        ((offset_seconds + 59) / 60, "minute")
    };
    format!("in {n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn both_default_reminders_when_booked_early() {
        let offsets = [Duration::from_secs(86_400), Duration::from_secs(900)];
        let r = reminders(
            t("2026-12-02T10:00:00Z"),
            &offsets,
            t("2026-11-25T10:00:00Z"),
        );
        assert_eq!(
            r,
            vec![
                (86_400, t("2026-12-01T10:00:00Z")),
                (900, t("2026-12-02T09:45:00Z"))
            ]
        );
    }

    #[test]
    fn passed_reminders_are_left_out() {
        let offsets = [Duration::from_secs(86_400), Duration::from_secs(900)];
        let r = reminders(
            t("2026-11-25T11:00:00Z"),
            &offsets,
            t("2026-11-25T10:00:00Z"),
        );
        assert_eq!(r, vec![(900, t("2026-11-25T10:45:00Z"))]);
        assert!(
            reminders(
                t("2026-11-25T10:10:00Z"),
                &offsets,
                t("2026-11-25T10:00:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn lead_times_read_naturally() {
        assert_eq!(lead_time(86_400), "in 1 day");
        assert_eq!(lead_time(7_200), "in 2 hours");
        assert_eq!(lead_time(900), "in 15 minutes");
    }
}
