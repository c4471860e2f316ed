//! The audit log's hash chain. Each consultation's entries are numbered from 1 and each carries
//! the SHA-256 of its own fields and of the entry before it, so that an entry edited, removed or
//! reordered after the fact breaks the chain. The head (the last number and hash) goes into every
//! signed recording manifest; [`verify`] checks an exported log against it offline, with no access
//! to the database, whose append-only triggers anyone with enough rights could drop.
//!
//! What is hashed is a JSON array, `["wakili-audit/1", seq, prev, id, consultationId, actorId,
//! action, detail, createdAt]`, serialized by `serde_json` (compact; `detail` as the API shows it,
//! `createdAt` as RFC 3339 UTC with microseconds): exactly what `GET
//! /consultations/{id}/audit` returns, so an export re-hashes to the same values.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of one entry the chain covers.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// Position in the consultation's chain, from 1.
    pub seq: u64,
    /// The entry's id.
    pub id: &'a str,
    /// Its consultation.
    pub consultation_id: &'a str,
    /// Who did it.
    pub actor_id: Option<&'a str>,
    /// What happened.
    pub action: &'a str,
    /// Details.
    pub detail: &'a Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Link<'_> {
    /// The entry's hash (lowercase hex) after `prev` (the previous entry's hash, or [`GENESIS`]).
    pub fn hash(&self, prev: &str) -> String {
        // A tuple serializes as the JSON array the module documents, byte for byte what the
        // same array built as a `serde_json::Value` prints, streamed into the digest without
        // building that value or its text (a join storm hashes one entry per join).
        let fields = (
            "wakili-audit/1",
            self.seq,
            prev,
            self.id,
            self.consultation_id,
            self.actor_id,
            self.action,
            self.detail,
            self.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let mut digest = Digester(Sha256::new());
        serde_json::to_writer(&mut digest, &fields)
            .expect("serializing strings, numbers and a JSON value cannot fail");
        hex(&digest.0.finalize())
    }
}

/// Feeds what is written to it to a SHA-256.
struct Digester(Sha256);

impl std::io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One exported entry as [`verify`] reads it: its fields and what it claims about the chain.
#[derive(Debug, Clone, Copy)]
pub struct Claimed<'a> {
    /// The fields.
    pub link: Link<'a>,
    /// The previous hash it claims.
    pub prev_hash: &'a str,
    /// Its hash as stored.
    pub hash: &'a str,
}

/// The chain's last entry: what a manifest signs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// Its position.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// Where a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An entry's fields no longer give its hash: it was edited.
    #[error("audit entry {seq} ({id}) was altered: its fields do not give its hash")]
    Altered {
        /// Its position.
        seq: u64,
        /// Its id.
        id: String,
    },
    /// Positions jump or repeat: entries were removed, inserted or reordered.
    #[error("audit entry {found} follows entry {after}: entries were removed, added or reordered")]
    Sequence {
        /// The position before.
        after: u64,
        /// The position found.
        found: u64,
    },
    /// An entry does not name the hash of the entry before it.
    #[error("audit entry {seq} does not follow the entry before it")]
    Link {
        /// Its position.
        seq: u64,
    },
    /// The log ends before the signed head.
    #[error("the audit log ends at entry {last}, before the signed head {head}")]
    Short {
        /// Its last position.
        last: u64,
        /// The head's.
        head: u64,
    },
    /// The entry at the signed head's position has another hash.
    #[error("audit entry {seq} differs from the signed head")]
    HeadMismatch {
        /// The head's position.
        seq: u64,
    },
}

/// What [`verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked.
    pub entries: usize,
    /// The last one.
    pub last: Option<Head>,
}

/// Checks a consultation's chained entries, oldest first, and, if `head` is given, that they
/// reach it intact (entries after the head, written later, are checked as well).
pub fn verify(entries: &[Claimed<'_>], head: Option<&Head>) -> Result<ChainReport, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut last_seq = 0;
    let mut head_seen = false;
    for entry in entries {
        let seq = entry.link.seq;
        if seq != last_seq + 1 {
            return Err(ChainBreak::Sequence {
                after: last_seq,
                found: seq,
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak::Link { seq });
        }
        let hash = entry.link.hash(&prev);
        if hash != entry.hash {
            return Err(ChainBreak::Altered {
                seq,
                id: entry.link.id.to_owned(),
            });
        }
        if let Some(head) = head
            && head.seq == seq
        {
            if head.hash != hash {
                return Err(ChainBreak::HeadMismatch { seq });
            }
            head_seen = true;
        }
        prev = hash;
        last_seq = seq;
    }
    if let Some(head) = head
        && !head_seen
    {
        return Err(ChainBreak::Short {
            last: last_seq,
            head: head.seq,
        });
    }
    Ok(ChainReport {
        entries: entries.len(),
        last: (last_seq > 0).then_some(Head {
            seq: last_seq,
            hash: prev,
        }),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    struct Entry {
        seq: u64,
        id: String,
        action: String,
        detail: Value,
        at: DateTime<Utc>,
        prev: String,
        hash: String,
    }

    fn chain(n: u64) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = Entry {
                    seq,
                    id: format!("id-{seq}"),
                    action: "participant.joined".into(),
                    detail: json!({"participantId": format!("p{seq}"), "via": "signaling"}),
                    at: DateTime::from_timestamp(1_800_000_000 + seq as i64, 123_456_000).unwrap(),
                    prev: prev.clone(),
                    hash: String::new(),
                };
                e.hash = link(&e).hash(&prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn link(e: &Entry) -> Link<'_> {
        Link {
            seq: e.seq,
            id: &e.id,
            consultation_id: "c1",
            actor_id: Some("lawyer-1"),
            action: &e.action,
            detail: &e.detail,
            created_at: e.at,
        }
    }

    fn claimed(entries: &[Entry]) -> Vec<Claimed<'_>> {
        entries
            .iter()
            .map(|e| Claimed {
                link: link(e),
                prev_hash: &e.prev,
                hash: &e.hash,
            })
            .collect()
    }

    fn head(entries: &[Entry], seq: u64) -> Head {
        let e = &entries[seq as usize - 1];
        Head {
            seq,
            hash: e.hash.clone(),
        }
    }

    #[test]
    fn an_intact_log_verifies_up_to_its_signed_head_and_beyond() {
        let log = chain(5);
        let report = verify(&claimed(&log), Some(&head(&log, 3))).unwrap();
        assert_eq!(report.entries, 5);
        assert_eq!(report.last, Some(head(&log, 5)));
        assert_eq!(verify(&[], None).unwrap().last, None);
    }

    #[test]
    fn an_edited_entry_is_detected() {
        let mut log = chain(4);
        log[1].detail = json!({"participantId": "someone else", "via": "signaling"});
        assert_eq!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Altered {
                seq: 2,
                id: "id-2".into()
            })
        );
        let mut log = chain(4);
        log[2].at += chrono::Duration::microseconds(1);
        assert!(matches!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Altered { seq: 3, .. })
        ));
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link_or_the_signed_head() {
        let mut log = chain(4);
        log[3].action = "recording.consent_granted".into();
        log[3].hash = link(&log[3]).hash(&log[3].prev);
        // The last entry rewritten consistently: only the signed head shows it.
        let signed = head(&chain(4), 4);
        assert_eq!(
            verify(&claimed(&log), Some(&signed)),
            Err(ChainBreak::HeadMismatch { seq: 4 })
        );
        let mut log = chain(4);
        log[1].action = "recording.consent_granted".into();
        log[1].hash = link(&log[1]).hash(&log[1].prev);
        assert_eq!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Link { seq: 3 })
        );
    }

    #[test]
    fn a_removed_entry_is_detected() {
        let mut log = chain(4);
        log.remove(1);
        assert_eq!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Sequence { after: 1, found: 3 })
        );
        let mut log = chain(4);
        log.truncate(2);
        assert_eq!(
            verify(&claimed(&log), Some(&head(&chain(4), 4))),
            Err(ChainBreak::Short { last: 2, head: 4 })
        );
    }

    #[test]
    fn reordered_entries_are_detected() {
        let mut log = chain(4);
        log.swap(1, 2);
        assert_eq!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Sequence { after: 1, found: 3 })
        );
        // Renumbered to hide the swap: the links no longer follow.
        let mut log = chain(4);
        log.swap(1, 2);
        log[1].seq = 2;
        log[2].seq = 3;
        assert_eq!(
            verify(&claimed(&log), None),
            Err(ChainBreak::Link { seq: 2 })
        );
    }

    #[test]
    fn the_hash_covers_the_fields_as_the_api_shows_them() {
        let log = chain(1);
        // The same entry read back from JSON (as an export is) hashes the same.
        let detail: Value = serde_json::from_str(&log[0].detail.to_string()).unwrap();
        let at: DateTime<Utc> = serde_json::from_value(json!(log[0].at)).unwrap();
        let again = Link {
            detail: &detail,
            created_at: at,
            ..link(&log[0])
        };
        assert_eq!(again.hash(GENESIS), log[0].hash);
        assert_eq!(log[0].hash.len(), 64);
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_documented_array() {
        let log = chain(2);
        let link = link(&log[1]);
        // The array as the module documents it, printed by serde_json, as an auditor's own
        // tool would rebuild it (and as this module did before hashing it streamed).
        let array = json!([
            "wakili-audit/1",
            link.seq,
            log[0].hash,
            link.id,
            link.consultation_id,
            link.actor_id,
            link.action,
            link.detail,
            link.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ]);
        let expected = hex(&Sha256::digest(array.to_string().as_bytes()));
        assert_eq!(link.hash(&log[0].hash), expected);
        assert_eq!(log[1].hash, expected);
        // A null actor prints as `null` in both.
        let system = Link {
            actor_id: None,
            ..link
        };
        let array = json!([
            "wakili-audit/1",
            system.seq,
            GENESIS,
            system.id,
            system.consultation_id,
            null,
            system.action,
            system.detail,
            system
                .created_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        ]);
        assert_eq!(
            system.hash(GENESIS),
            hex(&Sha256::digest(array.to_string().as_bytes()))
        );
    }
}
