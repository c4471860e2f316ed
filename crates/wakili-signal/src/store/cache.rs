//! What a node knows of the rooms it serves, between Redis round trips (sans-IO).
//!
//! Every room change in Redis is a compare-and-set that also takes the next number of a global
//! sequence and publishes the new state with it, in one script, so changes reach every node in
//! commit order and each state carries a number that orders it against any other read. A node
//! keeps the rooms it touched, replaces them with what the change feed announces, and answers
//! reads from memory while the feed is up. A read that comes back from Redis older than what the
//! node holds (it raced a change) never replaces it; when the feed drops, everything is
//! forgotten, because changes may have been missed.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use wakili_core::room::Room;

/// A room state as stored in Redis: `"<seq>|<room JSON>"`, `"<seq>|"` once the room emptied
/// (a tombstone, so that no older state can come back), nothing when it never existed.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// Its place in the global sequence of room changes (0: absent, or written before
    /// sequencing).
    pub seq: u64,
    /// Exactly what Redis holds (the compare-and-set compares it); empty when absent.
    pub stored: Arc<str>,
    /// The room; `None` when absent or emptied.
    pub room: Option<Arc<Room>>,
}

impl Versioned {
    /// No state.
    pub fn absent() -> Self {
        Self {
            seq: 0,
            stored: Arc::from(""),
            room: None,
        }
    }

    /// Reads what Redis holds at a room's key. Plain JSON (a version before sequencing wrote
    /// it) reads as sequence 0.
    pub fn parse(stored: &str) -> Result<Self, serde_json::Error> {
        if stored.is_empty() {
            return Ok(Self::absent());
        }
        let sequenced = stored
            .split_once('|')
            .and_then(|(seq, json)| seq.parse::<u64>().ok().map(|seq| (seq, json)));
        let (seq, json) = sequenced.unwrap_or((0, stored));
        let room = if json.is_empty() {
            None
        } else {
            Some(Arc::new(serde_json::from_str(json)?))
        };
        Ok(Self {
            seq,
            stored: Arc::from(stored),
            room,
        })
    }

    /// The state a compare-and-set just wrote: `json` empty for a tombstone.
    pub fn written(seq: u64, json: &str, room: Option<Room>) -> Self {
        Self {
            seq,
            stored: Arc::from(format!("{seq}|{json}")),
            room: room.map(Arc::new),
        }
    }
}

/// Splits a change-feed message, `"<consultation>|<seq>|<room JSON or nothing>"`.
pub fn parse_announcement(message: &str) -> Option<(&str, Result<Versioned, serde_json::Error>)> {
    let (consultation, stored) = message.split_once('|')?;
    Some((consultation, Versioned::parse(stored)))
}

struct Entry {
    state: Arc<Versioned>,
    /// When it was last confirmed (read, written or announced).
    at: Instant,
    /// A read of it is under way and nothing is known yet: announcements are kept meanwhile,
    /// so that a read answered before a change and arriving after it cannot hide it.
    pending: bool,
}

/// The rooms one node holds.
pub struct RoomCache {
    entries: HashMap<String, Entry>,
    /// The feed is up: announcements arrive, so held rooms are current.
    live: bool,
    /// Counts feed losses and recoveries; a read that started in another epoch is not kept.
    epoch: u64,
    /// How long an entry is trusted without news: past it, it is read again from Redis, and
    /// that read replaces it whatever its sequence (a key that expired in Redis reads as
    /// absent, sequence 0).
    max_age: Duration,
}

impl RoomCache {
    /// An empty cache whose feed is not up yet.
    pub fn new(max_age: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            live: false,
            epoch: 0,
            max_age,
        }
    }

    /// The epoch a read starts in (pass it back to [`RoomCache::learn`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The state held for `consultation` when the feed is up and it is recent; otherwise a
    /// read is about to start, and announcements for the room are kept from now on.
    pub fn get_or_begin(&mut self, consultation: &str, now: Instant) -> Option<Arc<Versioned>> {
        if !self.live {
            return None;
        }
        let max_age = self.max_age;
        if let Some(entry) = self.entries.get(consultation) {
            let fresh = now.duration_since(entry.at) < max_age;
            if entry.pending || !fresh {
                // Under way already (keep what it collected), or too old to order anything.
                if !entry.pending {
                    self.entries.insert(consultation.to_owned(), pending(now));
                }
                return None;
            }
            return Some(Arc::clone(&entry.state));
        }
        self.entries.insert(consultation.to_owned(), pending(now));
        None
    }

    /// A read or write (started in `epoch`) returned `state`: kept unless something newer is
    /// held or the feed dropped meanwhile.
    pub fn learn(&mut self, consultation: &str, state: Versioned, epoch: u64, now: Instant) {
        if !self.live || epoch != self.epoch {
            return;
        }
        match self.entries.get_mut(consultation) {
            Some(entry) if entry.pending || state.seq > entry.state.seq => {
                *entry = held(state, now);
            }
            Some(entry) => {
                if state.seq == entry.state.seq {
                    entry.at = now;
                }
            }
            None => {
                self.entries
                    .insert(consultation.to_owned(), held(state, now));
            }
        }
    }

    /// The feed announced `state`: it replaces what is held (rooms this node never touched are
    /// not kept).
    pub fn announced(&mut self, consultation: &str, state: Versioned, now: Instant) {
        if !self.live {
            return;
        }
        if let Some(entry) = self.entries.get_mut(consultation)
            && (entry.pending || state.seq > entry.state.seq)
        {
            *entry = held(state, now);
        }
    }

    /// The feed is subscribed: from now on announcements keep held rooms current.
    pub fn resumed(&mut self) {
        self.entries.clear();
        self.live = true;
        self.epoch += 1;
    }

    /// The feed dropped: announcements may be missed, so nothing held can be trusted.
    pub fn lost(&mut self) {
        self.entries.clear();
        self.live = false;
        self.epoch += 1;
    }

    /// Forgets entries without news for `max_age` (rooms this node stopped serving).
    pub fn sweep(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.entries
            .retain(|_, entry| now.duration_since(entry.at) < max_age);
    }

    /// How many rooms are held (or being read).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn pending(now: Instant) -> Entry {
    Entry {
        state: Arc::new(Versioned::absent()),
        at: now,
        pending: true,
    }
}

fn held(state: Versioned, now: Instant) -> Entry {
    Entry {
        state: Arc::new(state),
        at: now,
        pending: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use wakili_core::{
        ParticipantRole,
        room::{MediaState, Member, Presence},
    };

    use super::*;

    const AGE: Duration = Duration::from_secs(600);

    fn state(seq: u64, members: usize) -> Versioned {
        let mut room = Room::default();
        for i in 0..members {
            let member = Member {
                participant_id: format!("p{i}"),
                user_id: format!("u{i}"),
                role: ParticipantRole::Client,
                name: "n".into(),
                media: MediaState::default(),
                presence: Presence::Present,
                resume_token: "t".into(),
                connection: "s".into(),
            };
            room.members.insert(format!("p{i}"), member);
        }
        let json = serde_json::to_string(&room).unwrap();
        Versioned::written(seq, &json, Some(room))
    }

    fn live() -> (RoomCache, Instant) {
        let mut cache = RoomCache::new(AGE);
        cache.resumed();
        (cache, Instant::now())
    }

    #[test]
    fn stored_text_round_trips_with_its_sequence() {
        let written = state(7, 2);
        let read = Versioned::parse(&written.stored).unwrap();
        assert_eq!(read.seq, 7);
        assert_eq!(read.room.unwrap().members.len(), 2);
        let tombstone = Versioned::parse("9|").unwrap();
        assert_eq!((tombstone.seq, tombstone.room.is_none()), (9, true));
        assert_eq!(Versioned::parse("").unwrap(), Versioned::absent());
        // Written before sequencing: plain JSON.
        let legacy = serde_json::to_string(&Room::default()).unwrap();
        assert_eq!(Versioned::parse(&legacy).unwrap().seq, 0);
        let (id, parsed) = parse_announcement("c-1|12|").unwrap();
        assert_eq!((id, parsed.unwrap().seq), ("c-1", 12));
        assert!(Versioned::parse("3|{not json").is_err());
    }

    #[test]
    fn a_read_that_raced_a_change_does_not_replace_it() {
        let (mut cache, now) = live();
        let epoch = cache.epoch();
        assert!(cache.get_or_begin("c", now).is_none());
        // Change 8 is announced while the read is under way; the read answers with 6.
        cache.announced("c", state(8, 2), now);
        cache.learn("c", state(6, 1), epoch, now);
        assert_eq!(cache.get_or_begin("c", now).unwrap().seq, 8);
        // Nor does an absence read before the room existed.
        cache.learn("c", Versioned::absent(), epoch, now);
        assert_eq!(cache.get_or_begin("c", now).unwrap().seq, 8);
        // A tombstone after it does replace it, and stays.
        cache.announced("c", Versioned::written(9, "", None), now);
        assert!(cache.get_or_begin("c", now).unwrap().room.is_none());
        cache.learn("c", state(8, 2), epoch, now);
        assert_eq!(
            cache.get_or_begin("c", now).unwrap().seq,
            9,
            "an emptied room stays empty"
        );
    }

    #[test]
    fn announcements_only_touch_rooms_this_node_holds() {
        let (mut cache, now) = live();
        cache.announced("elsewhere", state(3, 1), now);
        assert_eq!(cache.len(), 0);
        assert!(cache.get_or_begin("elsewhere", now).is_none());
        assert!(
            cache.get_or_begin("elsewhere", now).is_none(),
            "pending until read"
        );
        cache.learn("elsewhere", state(3, 1), cache.epoch(), now);
        assert_eq!(cache.get_or_begin("elsewhere", now).unwrap().seq, 3);
    }

    #[test]
    fn nothing_is_trusted_while_the_feed_is_down_or_across_a_drop() {
        let mut cache = RoomCache::new(AGE);
        let now = Instant::now();
        assert!(cache.get_or_begin("c", now).is_none());
        cache.learn("c", state(1, 1), cache.epoch(), now);
        assert!(
            cache.get_or_begin("c", now).is_none(),
            "no feed yet: not kept"
        );
        cache.resumed();
        let before_drop = cache.epoch();
        cache.learn("c", state(2, 1), before_drop, now);
        assert!(cache.get_or_begin("c", now).is_some());
        cache.lost();
        assert!(
            cache.get_or_begin("c", now).is_none(),
            "forgotten when the feed drops"
        );
        cache.resumed();
        // A read that started before the drop answers after the feed is back: not kept, since
        // changes made while the feed was down may be newer than it and were never announced.
        cache.learn("c", state(2, 1), before_drop, now);
        assert!(cache.get_or_begin("c", now).is_none());
    }

    #[test]
    fn entries_without_news_age_out_and_are_replaced_by_a_fresh_read() {
        let (mut cache, now) = live();
        let epoch = cache.epoch();
        cache.learn("c", state(4, 1), epoch, now);
        let later = now + AGE;
        assert!(cache.get_or_begin("c", later).is_none(), "too old to trust");
        // The key expired in Redis meanwhile: the fresh read (absent) replaces it.
        cache.learn("c", Versioned::absent(), epoch, later);
        assert_eq!(cache.get_or_begin("c", later).unwrap().seq, 0);
        cache.sweep(later + AGE);
        assert_eq!(cache.len(), 0);
    }
}
