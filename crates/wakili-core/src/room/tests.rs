use chrono::Duration;

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn policy(admission: Admission) -> RoomPolicy {
    RoomPolicy {
        grace: Duration::seconds(30),
        admission,
        notice_version: "2026-11".into(),
        server_recording: false,
    }
}

fn join(user: &str, role: ParticipantRole, resume: Option<&str>) -> Input {
    Input::Join {
        user_id: user.into(),
        role,
        name: format!("{user} name"),
        resume_token: resume.map(Into::into),
        participant_id: format!("p-{user}-{}", resume.unwrap_or("new")),
        new_resume_token: format!("token-{user}"),
        connection: format!("conn-{user}"),
        media_mode: MediaMode::Auto,
    }
}

fn names(out: &Outcome) -> Vec<(&'static str, To)> {
    out.outbound
        .iter()
        .map(|o| (o.name, o.to.clone()))
        .collect()
}

/// Lawyer `p-l-new` and client `p-c-new`, both in the call.
fn call(p: &RoomPolicy) -> Room {
    let mut room = Room::default();
    room.join(join("l", ParticipantRole::Lawyer, None), p, t(0))
        .unwrap();
    room.join(join("c", ParticipantRole::Client, None), p, t(1))
        .unwrap();
    room
}

#[test]
fn a_client_waits_until_the_lawyer_arrives() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = Room::default();
    let (joined, _) = room
        .join(join("c", ParticipantRole::Client, None), &p, t(0))
        .unwrap();
    assert!(joined.waiting);
    assert_eq!(
        room.check_signal("p-c-new", "p-c-new"),
        Err(RoomError::Waiting)
    );

    let (joined, out) = room
        .join(join("l", ParticipantRole::Lawyer, None), &p, t(5))
        .unwrap();
    assert!(!joined.waiting);
    assert!(
        out.facts.contains(&Fact::LawyerArrived),
        "the consultation starts"
    );
    assert!(names(&out).contains(&("consultation:admitted", To::One("p-c-new".into()))));
    room.check_signal("p-c-new", "p-l-new").unwrap();
    room.check_signal("p-l-new", "p-c-new").unwrap();
    let audits: Vec<_> = out
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Audit { action, .. } => Some(*action),
            _ => None,
        })
        .collect();
    assert_eq!(audits, ["participant.joined", "participant.admitted"]);
}

#[test]
fn manual_admission_needs_the_lawyer() {
    let p = policy(Admission::Manual);
    let mut room = Room::default();
    room.join(join("l", ParticipantRole::Lawyer, None), &p, t(0))
        .unwrap();
    let (joined, _) = room
        .join(join("c", ParticipantRole::Client, None), &p, t(1))
        .unwrap();
    assert!(joined.waiting, "waits even with the lawyer there");
    let refuse = room.handle(
        Input::Admit {
            by: "p-c-new".into(),
            target: "p-c-new".into(),
        },
        &p,
        t(2),
    );
    assert_eq!(refuse.unwrap_err().code(), "forbidden");
    let out = room
        .handle(
            Input::Admit {
                by: "p-l-new".into(),
                target: "p-c-new".into(),
            },
            &p,
            t(3),
        )
        .unwrap();
    assert!(names(&out).contains(&("consultation:admitted", To::One("p-c-new".into()))));
    room.check_signal("p-c-new", "p-l-new").unwrap();
}

#[test]
fn a_resume_within_the_grace_period_keeps_the_participant() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let out = room
        .handle(
            Input::Disconnected {
                participant_id: "p-c-new".into(),
                connection: "conn-c".into(),
            },
            &p,
            t(10),
        )
        .unwrap();
    assert_eq!(
        names(&out),
        [("participant:reconnecting", To::AllBut("p-c-new".into()))]
    );
    assert_eq!(room.next_deadline(), Some(t(40)));

    let (joined, out) = room
        .join(
            join("c", ParticipantRole::Client, Some("token-c")),
            &p,
            t(39),
        )
        .unwrap();
    assert!(joined.resumed);
    assert_eq!(joined.participant_id, "p-c-new", "same participant id");
    assert!(!joined.waiting);
    assert_eq!(
        names(&out),
        [("participant:resumed", To::AllBut("p-c-new".into()))]
    );
    assert!(
        out.outbound.iter().all(|o| o.name != "participant:left"),
        "never a leave"
    );
    room.check_signal("p-l-new", "p-c-new").unwrap();
}

#[test]
fn after_the_grace_period_others_see_a_leave() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.handle(
        Input::Disconnected {
            participant_id: "p-c-new".into(),
            connection: "conn-c".into(),
        },
        &p,
        t(10),
    )
    .unwrap();
    let mut out = Outcome::default();
    room.expire(t(39), &mut out);
    assert!(out.outbound.is_empty(), "not yet");
    room.expire(t(40), &mut out);
    assert_eq!(out.outbound[0].name, "participant:left");
    assert_eq!(
        out.outbound[0].event,
        Event::Left(Left {
            participant_id: "p-c-new".into(),
            reason: "timeout"
        })
    );
    assert_eq!(room.next_deadline(), None);
    // A late resume is a fresh join.
    let (joined, _) = room
        .join(
            join("c", ParticipantRole::Client, Some("token-c")),
            &p,
            t(41),
        )
        .unwrap();
    assert!(!joined.resumed);
    assert_eq!(joined.participant_id, "p-c-token-c");
}

#[test]
fn a_second_connection_replaces_the_first() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    // Another tab without the token: the old participant leaves, its socket is closed.
    let (joined, out) = room
        .join(join("c", ParticipantRole::Client, Some("forged")), &p, t(5))
        .unwrap();
    assert!(!joined.resumed);
    assert!(out.facts.contains(&Fact::Disconnect {
        participant_id: "p-c-new".into()
    }));
    assert_eq!(room.members.len(), 2);
    // With the token, while the old connection is still open: take over the same participant.
    let (joined, out) = room
        .join(
            join("c", ParticipantRole::Client, Some("token-c")),
            &p,
            t(6),
        )
        .unwrap();
    assert!(joined.resumed);
    assert!(out.facts.contains(&Fact::Disconnect {
        participant_id: joined.participant_id.clone()
    }));
}

#[test]
fn consent_gates_recording() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let out = room
        .handle(
            Input::RecordingStart {
                by: "p-l-new".into(),
                recording_id: "r1".into(),
            },
            &p,
            t(10),
        )
        .unwrap();
    assert_eq!(
        names(&out),
        [("recording:consent-request", To::One("p-c-new".into()))]
    );
    assert_eq!(
        out.outbound[0].event,
        Event::ConsentRequest(ConsentRequest {
            notice_version: "2026-11".into(),
            recording_id: "r1".into()
        })
    );
    assert!(!room.recording_view().active, "not before consent");

    let out = room
        .handle(
            Input::Consent {
                participant_id: "p-c-new".into(),
                granted: true,
            },
            &p,
            t(12),
        )
        .unwrap();
    assert!(out.facts.contains(&Fact::Consent {
        recording_id: "r1".into(),
        user_id: "c".into(),
        notice_version: "2026-11".into(),
        granted: true,
        at: t(12),
    }));
    assert_eq!(names(&out), [("recording:state", To::All)]);
    assert!(room.recording_view().active);

    let out = room
        .handle(
            Input::RecordingStop {
                by: "p-l-new".into(),
            },
            &p,
            t(20),
        )
        .unwrap();
    assert_eq!(names(&out), [("recording:state", To::All)]);
    assert!(!room.recording_view().active);
}

#[test]
fn a_refusal_is_told_to_the_lawyer() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let start = Input::RecordingStart {
        by: "p-l-new".into(),
        recording_id: "r1".into(),
    };
    room.handle(start, &p, t(10)).unwrap();
    let out = room
        .handle(
            Input::Consent {
                participant_id: "p-c-new".into(),
                granted: false,
            },
            &p,
            t(11),
        )
        .unwrap();
    assert_eq!(
        names(&out),
        [
            ("recording:consent-refused", To::One("p-l-new".into())),
            ("recording:state", To::All)
        ]
    );
    assert_eq!(room.recording, Recording::Idle);
    assert!(
        out.facts
            .iter()
            .any(|f| matches!(f, Fact::Consent { granted: false, .. }))
    );
}

#[test]
fn a_newcomer_pauses_the_recording_until_they_consent() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.handle(
        Input::RecordingStart {
            by: "p-l-new".into(),
            recording_id: "r1".into(),
        },
        &p,
        t(10),
    )
    .unwrap();
    room.handle(
        Input::Consent {
            participant_id: "p-c-new".into(),
            granted: true,
        },
        &p,
        t(11),
    )
    .unwrap();
    let (_, out) = room
        .join(join("a", ParticipantRole::Admin, None), &p, t(20))
        .unwrap();
    let sent = names(&out);
    assert!(
        sent.contains(&("recording:state", To::All)),
        "paused for everyone"
    );
    assert!(sent.contains(&("recording:consent-needed", To::One("p-l-new".into()))));
    assert!(sent.contains(&("recording:consent-request", To::One("p-a-new".into()))));
    assert!(!room.recording_view().active);
    room.handle(
        Input::Consent {
            participant_id: "p-a-new".into(),
            granted: true,
        },
        &p,
        t(21),
    )
    .unwrap();
    assert!(
        room.recording_view().active,
        "everyone present has consented"
    );
}

#[test]
fn recording_is_the_lawyers_alone() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let err = room
        .handle(
            Input::RecordingStart {
                by: "p-c-new".into(),
                recording_id: "r1".into(),
            },
            &p,
            t(1),
        )
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    let err = room
        .handle(
            Input::RecordingStop {
                by: "p-l-new".into(),
            },
            &p,
            t(2),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state");
    let err = room
        .handle(
            Input::Consent {
                participant_id: "p-c-new".into(),
                granted: true,
            },
            &p,
            t(3),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state");
}

#[test]
fn the_lawyer_leaving_stops_a_browser_recording() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.handle(
        Input::RecordingStart {
            by: "p-l-new".into(),
            recording_id: "r1".into(),
        },
        &p,
        t(1),
    )
    .unwrap();
    let out = room
        .handle(
            Input::Leave {
                participant_id: "p-l-new".into(),
            },
            &p,
            t(2),
        )
        .unwrap();
    assert!(names(&out).contains(&("recording:state", To::All)));
    assert_eq!(room.recording, Recording::Idle);
}

#[test]
fn media_state_reaches_the_others() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let media = MediaState {
        audio: false,
        video: true,
        screen: true,
    };
    let out = room
        .handle(
            Input::Media {
                participant_id: "p-c-new".into(),
                media,
            },
            &p,
            t(1),
        )
        .unwrap();
    assert_eq!(
        names(&out),
        [("participant:media", To::AllBut("p-c-new".into()))]
    );
    assert_eq!(room.members["p-c-new"].media, media);
}

#[test]
fn only_the_lawyer_or_an_admin_ends_it() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let err = room
        .handle(
            Input::End {
                by: "p-c-new".into(),
            },
            &p,
            t(1),
        )
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    let out = room
        .handle(
            Input::End {
                by: "p-l-new".into(),
            },
            &p,
            t(2),
        )
        .unwrap();
    assert_eq!(names(&out), [("consultation:ended", To::All)]);
    assert!(out.facts.contains(&Fact::Ended));
    let err = room
        .join(join("c", ParticipantRole::Client, None), &p, t(3))
        .unwrap_err();
    assert_eq!(err.code(), "consultation_closed");
}

#[test]
fn events_serialize_as_the_protocol_says() {
    let json = |e: &Event| serde_json::to_value(e).unwrap();
    assert_eq!(
        json(&Event::Media(MediaChange {
            participant_id: "p1".into(),
            media: MediaState {
                audio: true,
                video: false,
                screen: false
            }
        })),
        serde_json::json!({"participantId": "p1", "audio": true, "video": false, "screen": false})
    );
    assert_eq!(
        json(&Event::RecordingState(RecordingState {
            active: true,
            recording_id: Some("r1".into()),
            by: Some("p-l".into()),
            reason: None,
            server: false,
        })),
        serde_json::json!({"active": true, "recordingId": "r1", "by": "p-l", "server": false})
    );
}

#[test]
fn room_state_round_trips_through_json() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.handle(
        Input::Disconnected {
            participant_id: "p-c-new".into(),
            connection: "conn-c".into(),
        },
        &p,
        t(5),
    )
    .unwrap();
    let text = serde_json::to_string(&room).unwrap();
    let back: Room = serde_json::from_str(&text).unwrap();
    assert_eq!(back, room);
}

#[test]
fn a_drop_of_a_replaced_connection_is_ignored() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    // The client reopens the app: the new connection resumes while the old one is still open.
    let mut again = join("c", ParticipantRole::Client, Some("token-c"));
    if let Input::Join { connection, .. } = &mut again {
        *connection = "conn-c-2".into();
    }
    let (joined, out) = room.join(again, &p, t(5)).unwrap();
    assert_eq!(joined.participant_id, "p-c-new");
    assert!(out.facts.contains(&Fact::Disconnect {
        participant_id: "p-c-new".into()
    }));
    // The old connection closing afterwards changes nothing.
    let out = room
        .handle(
            Input::Disconnected {
                participant_id: "p-c-new".into(),
                connection: "conn-c".into(),
            },
            &p,
            t(6),
        )
        .unwrap();
    assert!(out.outbound.is_empty(), "{out:?}");
    assert_eq!(room.next_deadline(), None);
    room.check_signal("p-l-new", "p-c-new").unwrap();
}

#[test]
fn closing_from_the_api_ends_the_call_for_everyone() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    let out = room.close("admin-1");
    assert_eq!(names(&out), [("consultation:ended", To::All)]);
    assert!(room.ended);
    assert_eq!(
        room.join(join("c", ParticipantRole::Client, None), &p, t(9))
            .unwrap_err(),
        RoomError::Ended
    );
    assert!(room.close("admin-1").outbound.is_empty(), "only once");
}

fn join_with(user: &str, role: ParticipantRole, mode: MediaMode) -> Input {
    let mut input = join(user, role, None);
    if let Input::Join { media_mode, .. } = &mut input {
        *media_mode = mode;
    }
    input
}

#[test]
fn auto_moves_to_the_sfu_when_a_third_participant_is_present_and_stays_there() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    assert_eq!(
        room.topology,
        Topology::P2p,
        "two participants: browser to browser"
    );
    let (joined, out) = room
        .join(join("a", ParticipantRole::Admin, None), &p, t(2))
        .unwrap();
    assert_eq!(joined.topology, Topology::Sfu);
    assert!(names(&out).contains(&("media:topology", To::All)));
    assert!(out.outbound.iter().any(|o| o.event
        == Event::Topology(TopologyChange {
            topology: Topology::Sfu
        })));
    // The third leaving does not send everyone back to peer to peer mid-call.
    let out = room
        .handle(
            Input::Leave {
                participant_id: "p-a-new".into(),
            },
            &p,
            t(3),
        )
        .unwrap();
    assert!(
        !names(&out)
            .iter()
            .any(|(name, _)| *name == "media:topology")
    );
    assert_eq!(room.topology, Topology::Sfu);
}

#[test]
fn a_participant_in_the_waiting_room_does_not_count_towards_the_sfu() {
    let p = policy(Admission::Manual);
    let mut room = Room::default();
    room.join(join("l", ParticipantRole::Lawyer, None), &p, t(0))
        .unwrap();
    let (c, _) = room
        .join(join("c", ParticipantRole::Client, None), &p, t(1))
        .unwrap();
    let (a, _) = room
        .join(join("a", ParticipantRole::Admin, None), &p, t(2))
        .unwrap();
    assert!(c.waiting);
    assert_eq!(
        a.topology,
        Topology::P2p,
        "only the lawyer and the admin are present"
    );
    let out = room
        .handle(
            Input::Admit {
                by: "p-l-new".into(),
                target: "p-c-new".into(),
            },
            &p,
            t(3),
        )
        .unwrap();
    assert!(names(&out).contains(&("media:topology", To::All)));
    assert_eq!(room.topology, Topology::Sfu);
}

#[test]
fn fixed_modes_keep_their_topology_whoever_is_present() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = Room::default();
    let (joined, _) = room
        .join(
            join_with("l", ParticipantRole::Lawyer, MediaMode::Sfu),
            &p,
            t(0),
        )
        .unwrap();
    assert_eq!(
        joined.topology,
        Topology::Sfu,
        "sfu from the first participant"
    );
    let mut room = Room::default();
    for (i, (user, role)) in [
        ("l", ParticipantRole::Lawyer),
        ("c", ParticipantRole::Client),
        ("a", ParticipantRole::Admin),
    ]
    .into_iter()
    .enumerate()
    {
        let (joined, out) = room
            .join(join_with(user, role, MediaMode::P2p), &p, t(i as i64))
            .unwrap();
        assert_eq!(joined.topology, Topology::P2p);
        assert!(
            !names(&out)
                .iter()
                .any(|(name, _)| *name == "media:topology")
        );
    }
}

#[test]
fn an_interpreter_waits_like_the_client_and_counsel_goes_straight_in() {
    let p = policy(Admission::Manual);
    let mut room = Room::default();
    room.join(join("l", ParticipantRole::Lawyer, None), &p, t(0))
        .unwrap();
    let (interpreter, _) = room
        .join(join("i", ParticipantRole::Interpreter, None), &p, t(1))
        .unwrap();
    let (counsel, _) = room
        .join(join("k", ParticipantRole::Counsel, None), &p, t(2))
        .unwrap();
    assert!(interpreter.waiting, "admitted by the lawyer, like a client");
    assert!(!counsel.waiting, "a second lawyer needs no admission");
    // Counsel does not run the call: admitting is the lawyer's (or an admin's).
    let admit = |by: &str| Input::Admit {
        by: by.into(),
        target: "p-i-new".into(),
    };
    assert!(matches!(
        room.handle(admit("p-k-new"), &p, t(3)),
        Err(RoomError::Forbidden(_))
    ));
    room.handle(admit("p-l-new"), &p, t(4)).unwrap();
    let view = |id: &str| room.views().into_iter().find(|v| v.participant_id == id);
    assert_eq!(
        view("p-i-new").map(|v| (v.role, v.waiting)),
        Some((ParticipantRole::Interpreter, false))
    );
    assert_eq!(room.topology, Topology::Sfu, "three present");
}

#[test]
fn counsel_can_neither_record_nor_end_the_call() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.join(join("k", ParticipantRole::Counsel, None), &p, t(2))
        .unwrap();
    let record = Input::RecordingStart {
        by: "p-k-new".into(),
        recording_id: "r1".into(),
    };
    assert!(matches!(
        room.handle(record, &p, t(3)),
        Err(RoomError::Forbidden(_))
    ));
    let end = Input::End {
        by: "p-k-new".into(),
    };
    assert!(matches!(
        room.handle(end, &p, t(4)),
        Err(RoomError::Forbidden(_))
    ));
    assert!(!room.ended);
}

#[test]
fn an_observer_moves_even_a_two_person_call_to_the_sfu() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = Room::default();
    room.join(join("l", ParticipantRole::Lawyer, None), &p, t(0))
        .unwrap();
    let (joined, out) = room
        .join(join("o", ParticipantRole::Observer, None), &p, t(1))
        .unwrap();
    assert!(!joined.waiting, "the lawyer is there");
    assert_eq!(
        joined.topology,
        Topology::Sfu,
        "only the SFU keeps them from sending"
    );
    assert!(names(&out).contains(&("media:topology", To::All)));
}

#[test]
fn an_observer_sends_no_signals_and_reports_no_media() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.join(join("o", ParticipantRole::Observer, None), &p, t(2))
        .unwrap();
    assert!(matches!(
        room.check_signal("p-o-new", "p-l-new"),
        Err(RoomError::Forbidden(_))
    ));
    assert!(room.check_signal("p-l-new", "p-o-new").is_ok());
    let media = |audio| Input::Media {
        participant_id: "p-o-new".into(),
        media: MediaState {
            audio,
            video: false,
            screen: false,
        },
    };
    assert!(matches!(
        room.handle(media(true), &p, t(3)),
        Err(RoomError::Forbidden(_))
    ));
    room.handle(media(false), &p, t(4)).unwrap();
}

#[test]
fn an_observer_cannot_join_a_call_booked_peer_to_peer() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = Room::default();
    room.join(
        join_with("l", ParticipantRole::Lawyer, MediaMode::P2p),
        &p,
        t(0),
    )
    .unwrap();
    assert!(matches!(
        room.join(
            join_with("o", ParticipantRole::Observer, MediaMode::P2p),
            &p,
            t(1)
        ),
        Err(RoomError::Forbidden(_))
    ));
    assert_eq!(room.members.len(), 1);
}

#[test]
fn a_dismissed_guest_leaves_the_call_and_their_connection_closes() {
    let p = policy(Admission::OnLawyerJoin);
    let mut room = call(&p);
    room.join(join("i", ParticipantRole::Interpreter, None), &p, t(2))
        .unwrap();
    let out = room.dismiss("i", "removed");
    assert!(out.facts.contains(&Fact::Disconnect {
        participant_id: "p-i-new".into()
    }));
    assert!(out.outbound.iter().any(|o| o.event
        == Event::Left(Left {
            participant_id: "p-i-new".into(),
            reason: "removed",
        })));
    assert!(!room.members.contains_key("p-i-new"));
    assert!(
        room.dismiss("i", "removed").outbound.is_empty(),
        "only once"
    );
}

fn server_policy() -> RoomPolicy {
    RoomPolicy {
        server_recording: true,
        ..policy(Admission::OnLawyerJoin)
    }
}

fn start_and_consent(room: &mut Room, p: &RoomPolicy) -> Outcome {
    let start = Input::RecordingStart {
        by: "p-l-new".into(),
        recording_id: "r1".into(),
    };
    let mut out = room.handle(start, p, t(10)).unwrap();
    let consent = Input::Consent {
        participant_id: "p-c-new".into(),
        granted: true,
    };
    out.outbound
        .extend(room.handle(consent, p, t(11)).unwrap().outbound);
    out
}

#[test]
fn a_server_recording_moves_a_two_person_auto_call_to_the_sfu_while_it_lasts() {
    let p = server_policy();
    let mut room = call(&p);
    assert_eq!(room.topology, Topology::P2p);
    let out = start_and_consent(&mut room, &p);
    assert!(
        names(&out).contains(&("media:topology", To::All)),
        "asking for consent already moves the call, so nothing is recorded peer to peer"
    );
    assert_eq!(room.topology, Topology::Sfu);
    assert!(room.recording_view().active && room.recording_view().server);
    let plan = room.server_recording().unwrap();
    assert_eq!(
        (
            plan.recording_id.as_str(),
            plan.started_by.as_str(),
            plan.active
        ),
        ("r1", "l", true)
    );
    assert_eq!(
        plan.seats.len(),
        2,
        "the recorder knows whose media it records"
    );
    let state = out
        .outbound
        .iter()
        .find(|o| matches!(&o.event, Event::RecordingState(s) if s.active))
        .unwrap();
    assert_eq!(
        serde_json::to_value(&state.event).unwrap()["server"],
        true,
        "browsers learn they must not record themselves"
    );
}

#[test]
fn a_call_booked_peer_to_peer_is_recorded_by_the_browser_even_when_the_server_could() {
    let p = server_policy();
    let mut room = Room::default();
    room.join(
        join_with("l", ParticipantRole::Lawyer, MediaMode::P2p),
        &p,
        t(0),
    )
    .unwrap();
    room.join(
        join_with("c", ParticipantRole::Client, MediaMode::P2p),
        &p,
        t(1),
    )
    .unwrap();
    start_and_consent(&mut room, &p);
    assert_eq!(room.topology, Topology::P2p);
    let view = room.recording_view();
    assert!(view.active && !view.server);
    assert_eq!(
        room.server_recording(),
        None,
        "nothing for the server's recorder"
    );
}

#[test]
fn the_lawyer_leaving_does_not_stop_a_server_recording_and_coming_back_needs_no_consent() {
    let p = server_policy();
    let mut room = call(&p);
    start_and_consent(&mut room, &p);
    let leave = Input::Leave {
        participant_id: "p-l-new".into(),
    };
    let out = room.handle(leave, &p, t(20)).unwrap();
    assert!(!names(&out).contains(&("recording:state", To::All)));
    assert!(room.recording_view().active, "still recording the client");

    let mut back = join("l", ParticipantRole::Lawyer, None);
    if let Input::Join { participant_id, .. } = &mut back {
        *participant_id = "p-l-again".into();
    }
    let (joined, out) = room.join(back, &p, t(30)).unwrap();
    assert!(joined.recording.active, "no pause for the lawyer's return");
    assert!(!names(&out).contains(&("recording:consent-request", To::One("p-l-again".into()))));

    let stop = Input::RecordingStop {
        by: "p-l-again".into(),
    };
    let out = room.handle(stop, &p, t(40)).unwrap();
    assert!(names(&out).contains(&("recording:state", To::All)));
    assert_eq!(room.recording, Recording::Idle);
}
