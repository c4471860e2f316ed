//! Who is told what, and when: the rules behind Wakili's mobile notifications (sans-IO).
//!
//! Given a consultation, what someone did (booked, rescheduled, cancelled, joined or left its
//! call, answered a ringing phone), who is connected and `now`, [`Rules`] decides which
//! [`Notification`]s go to which users, when they are due and when they are dropped as too
//! late. Nothing here reads a clock or a database: the push service reads them, asks the rules
//! and queues what they answer.
//!
//! Ringing is a notification too: an [`Kind::IncomingCall`] to the party not yet connected,
//! expiring after the call TTL, and a data-only [`Kind::CallCancelled`] that stops it when the
//! callee answers (by joining, or on another device) or the caller gives up.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    consultation::ConsultationStatus,
    notification::{Kind, Notification, clip},
};

/// The longest a push service keeps a message (FCM: 28 days); reminders never ask for more.
pub const MAX_TTL_SECONDS: i64 = 28 * 24 * 3600;

/// What the rules read of a consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consultation {
    /// Its id.
    pub id: String,
    /// The lawyer running it.
    pub lawyer_id: String,
    /// The client attending.
    pub client_id: String,
    /// Optional title, quoted in the notifications' text.
    pub title: Option<String>,
    /// When the call is due.
    pub scheduled_at: DateTime<Utc>,
    /// Planned length.
    pub duration_minutes: u32,
    /// Where it is in its life.
    pub status: ConsultationStatus,
}

impl Consultation {
    /// When the call is planned to end.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.scheduled_at + chrono::Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The lawyer and the client, except `by` (whoever acted is not told about it).
    pub fn others(&self, by: &str) -> Vec<String> {
        [&self.lawyer_id, &self.client_id]
            .into_iter()
            .filter(|u| u.as_str() != by)
            .cloned()
            .collect()
    }

    /// The other party of `user`; `None` for someone who is neither (an admin).
    pub fn other_party(&self, user: &str) -> Option<&str> {
        if user == self.lawyer_id {
            Some(&self.client_id)
        } else if user == self.client_id {
            Some(&self.lawyer_id)
        } else {
            None
        }
    }

    /// How the text names it: its title in quotes, or "Your video consultation".
    pub fn subject(&self) -> String {
        match &self.title {
            Some(title) if !title.is_empty() => format!("\u{201c}{}\u{201d}", clip(title, 80)),
            _ => "Your video consultation".into(),
        }
    }
}

/// The newest call notification of a consultation (its ringing, or the cancellation of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCall {
    /// [`Kind::IncomingCall`] or [`Kind::CallCancelled`].
    pub kind: Kind,
    /// Whose devices it went to.
    pub callee: String,
    /// When it stops by itself.
    pub expires_at: Option<DateTime<Utc>>,
}

impl LastCall {
    /// Whether the callee's phone is still ringing at `now`.
    pub fn is_ringing(&self, now: DateTime<Utc>) -> bool {
        self.kind == Kind::IncomingCall && self.expires_at.is_some_and(|e| e > now)
    }
}

/// A notification to queue for the active devices of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Who it is for.
    pub users: Vec<String>,
    /// What it says.
    pub notification: Notification,
    /// The consultation it is about.
    pub consultation_id: String,
    /// When it may be sent.
    pub due: DateTime<Utc>,
    /// When it is dropped unsent as too late; `None`: never.
    pub expires: Option<DateTime<Utc>>,
}

/// What happens when someone joins a consultation's call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Joined {
    /// A ringing phone to stop (whoever joined answered it), once the last call is known.
    pub stop: Option<StopRinging>,
    /// The other party to ring, as they are not connected.
    pub ring: Option<Outgoing>,
}

/// A decision to stop the ringing of a consultation's call, pending what its last call
/// notification was ([`StopRinging::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRinging {
    consultation_id: String,
    whom: Whom,
    reason: String,
    ttl: Duration,
}

/// Whose ringing a [`StopRinging`] stops.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Whom {
    /// This user's (they answered).
    Callee(String),
    /// This user's or a connected user's (they joined).
    CalleeOrConnected(String, Vec<String>),
    /// Anyone's but this user's (the caller left).
    NotCallee(String),
}

impl StopRinging {
    /// The consultation whose call it is about.
    pub fn consultation_id(&self) -> &str {
        &self.consultation_id
    }

    /// Why the ringing stops (`answered`, `caller_left`, or the callee's action).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The `call_cancelled` to send, given the consultation's last call notification: only when
    /// a phone is still ringing at `now` and it is one this decision stops.
    pub fn decide(&self, last: Option<&LastCall>, now: DateTime<Utc>) -> Option<Outgoing> {
        let call = last?;
        let callee = call.callee.as_str();
        let applies = match &self.whom {
            Whom::Callee(user) => callee == user,
            Whom::CalleeOrConnected(user, connected) => {
                callee == user || connected.iter().any(|u| u == callee)
            }
            Whom::NotCallee(user) => callee != user,
        };
        if !call.is_ringing(now) || !applies {
            return None;
        }
        let id = &self.consultation_id;
        Some(Outgoing {
            users: vec![call.callee.clone()],
            notification: Notification {
                kind: Kind::CallCancelled,
                title: None,
                body: None,
                data: BTreeMap::from([
                    ("action".into(), "call_cancelled".into()),
                    ("consultationId".into(), id.clone()),
                    ("reason".into(), self.reason.clone()),
                ]),
                ttl_seconds: ttl_seconds(self.ttl),
                collapse_key: Some(format!("call-{id}")),
            },
            consultation_id: id.clone(),
            due: now,
            expires: Some(now + chrono::Duration::from_std(self.ttl).unwrap_or_default()),
        })
    }
}

/// The notification rules, with their settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How long before a consultation its reminders fire.
    pub reminders: Vec<Duration>,
    /// How long a call rings.
    pub call_ttl: Duration,
}

impl Rules {
    /// The reminders of a consultation at `scheduled_at` still ahead of `now` (see
    /// [`reminders`]).
    pub fn reminders(
        &self,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<(i64, DateTime<Utc>)> {
        reminders(scheduled_at, &self.reminders, now)
    }

    /// `by` moved consultation `c` (its reminders move too): the other party hears of it now.
    pub fn rescheduled(&self, c: &Consultation, by: &str, now: DateTime<Utc>) -> Outgoing {
        let body = format!(
            "{} is now on {}",
            c.subject(),
            c.scheduled_at.format("%a %e %b %Y, %H:%M UTC")
        );
        Outgoing {
            users: c.others(by),
            notification: update(
                Kind::ConsultationRescheduled,
                "Consultation moved",
                &body,
                c,
            ),
            consultation_id: c.id.clone(),
            due: now,
            expires: None,
        }
    }

    /// `by` cancelled consultation `c` (its reminders go): the other party hears of it now, or
    /// not at all once the consultation would have ended (but never sooner than in an hour).
    pub fn cancelled(&self, c: &Consultation, by: &str, now: DateTime<Utc>) -> Outgoing {
        let body = format!(
            "{} on {} was cancelled",
            c.subject(),
            c.scheduled_at.format("%a %e %b %Y, %H:%M UTC")
        );
        Outgoing {
            users: c.others(by),
            notification: update(
                Kind::ConsultationCancelled,
                "Consultation cancelled",
                &body,
                c,
            ),
            consultation_id: c.id.clone(),
            due: now,
            expires: Some(c.ends_at().max(now + chrono::Duration::hours(1))),
        }
    }

    /// The reminder `offset_seconds` before consultation `c`, due `now`, to both parties; none
    /// when the consultation is no longer scheduled. It lives until the consultation ends.
    pub fn reminder(
        &self,
        c: &Consultation,
        offset_seconds: i64,
        now: DateTime<Utc>,
    ) -> Option<Outgoing> {
        if c.status != ConsultationStatus::Scheduled {
            return None;
        }
        let ends = c.ends_at();
        let ttl = (ends - now).num_seconds().clamp(60, MAX_TTL_SECONDS);
        let notification = Notification {
            kind: Kind::Reminder,
            title: Some(format!("Consultation {}", lead_time(offset_seconds))),
            body: Some(format!(
                "{} starts at {}",
                c.subject(),
                c.scheduled_at.format("%H:%M UTC on %a %e %b")
            )),
            data: BTreeMap::from([
                ("action".into(), "open_consultation".into()),
                ("consultationId".into(), c.id.clone()),
                ("scheduledAt".into(), c.scheduled_at.to_rfc3339()),
                ("offsetSeconds".into(), offset_seconds.to_string()),
            ]),
            ttl_seconds: u32::try_from(ttl).unwrap_or(60),
            collapse_key: Some(format!("reminder-{}", c.id)),
        };
        Some(Outgoing {
            users: vec![c.lawyer_id.clone(), c.client_id.clone()],
            notification,
            consultation_id: c.id.clone(),
            due: now,
            expires: Some(ends),
        })
    }

    /// `user` (shown as `name`) joined consultation `c`'s call; `connected` are the users
    /// connected to it now. Whoever joined answered a phone ringing for them (as did anyone
    /// connected); the other party is rung when not connected. Admins ring nobody, and nothing
    /// happens in a closed consultation.
    pub fn joined(
        &self,
        c: &Consultation,
        user: &str,
        name: &str,
        connected: &[String],
        now: DateTime<Utc>,
    ) -> Joined {
        if c.status.is_closed() {
            return Joined::default();
        }
        let stop = Some(StopRinging {
            consultation_id: c.id.clone(),
            whom: Whom::CalleeOrConnected(user.to_owned(), connected.to_vec()),
            reason: "answered".into(),
            ttl: self.call_ttl,
        });
        let ring = c
            .other_party(user)
            .filter(|other| !connected.iter().any(|u| u == other))
            .map(|other| self.ring(c, other, name, now));
        Joined { stop, ring }
    }

    fn ring(&self, c: &Consultation, callee: &str, caller: &str, now: DateTime<Utc>) -> Outgoing {
        let caller = clip(caller, 60);
        Outgoing {
            users: vec![callee.to_owned()],
            notification: Notification {
                kind: Kind::IncomingCall,
                title: Some("Incoming video consultation".into()),
                body: Some(format!("{caller} is calling you")),
                data: BTreeMap::from([
                    ("action".into(), "join_call".into()),
                    ("consultationId".into(), c.id.clone()),
                    ("callerName".into(), caller),
                    ("callType".into(), "video".into()),
                ]),
                ttl_seconds: ttl_seconds(self.call_ttl),
                collapse_key: Some(format!("call-{}", c.id)),
            },
            consultation_id: c.id.clone(),
            due: now,
            expires: Some(now + chrono::Duration::from_std(self.call_ttl).unwrap_or_default()),
        }
    }

    /// `user` left consultation `consultation_id`'s call (or lost their connection);
    /// `connected` are those still connected. When nobody else is there, a phone they were
    /// ringing stops (the callee's own ring is stopped when they join).
    pub fn left(
        &self,
        consultation_id: &str,
        user: &str,
        connected: &[String],
    ) -> Option<StopRinging> {
        if connected.iter().any(|u| u != user) {
            return None;
        }
        Some(StopRinging {
            consultation_id: consultation_id.to_owned(),
            whom: Whom::NotCallee(user.to_owned()),
            reason: "caller_left".into(),
            ttl: self.call_ttl,
        })
    }

    /// `user` answered (`action`: accepted or declined) a call on one device: their other
    /// devices stop ringing.
    pub fn answered(&self, consultation_id: &str, user: &str, action: &str) -> StopRinging {
        StopRinging {
            consultation_id: consultation_id.to_owned(),
            whom: Whom::Callee(user.to_owned()),
            reason: action.to_owned(),
            ttl: self.call_ttl,
        }
    }
}

fn ttl_seconds(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs()).unwrap_or(30)
}

/// A consultation-changed notification (moved, cancelled).
fn update(kind: Kind, title: &str, body: &str, c: &Consultation) -> Notification {
    Notification {
        kind,
        title: Some(title.into()),
        body: Some(body.into()),
        data: BTreeMap::from([
            ("action".into(), kind.as_str().into()),
            ("consultationId".into(), c.id.clone()),
            ("scheduledAt".into(), c.scheduled_at.to_rfc3339()),
        ]),
        ttl_seconds: 24 * 3600,
        collapse_key: Some(format!("consultation-{}", c.id)),
    }
}

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
mod tests;
