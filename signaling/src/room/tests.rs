use super::*;

const MAX: usize = 50;

fn join(rooms: &mut Rooms, conn: ConnId, name: &str, password: Option<&str>) -> (JoinOutcome, Effects) {
    let mut effects = Effects::default();
    let request =
        JoinRequest { conn, name: Some(name.into()), email: None, password: password.map(str::to_owned) };
    let outcome = rooms.join("quiet-otters", request, MAX, &mut effects);
    (outcome, effects)
}

fn to(effects: &Effects, conn: ConnId) -> Vec<&ServerMessage> {
    effects.out.iter().filter(|o| o.to == conn).map(|o| &o.message).collect()
}

fn joined_id(effects: &Effects, conn: ConnId) -> String {
    match to(effects, conn).iter().find(|m| matches!(m, ServerMessage::Joined { .. })) {
        Some(ServerMessage::Joined { id, .. }) => id.clone(),
        other => panic!("not joined: {other:?}"),
    }
}

fn room(rooms: &mut Rooms) -> &mut Room {
    rooms.get_mut("quiet-otters").unwrap()
}

#[test]
fn the_first_participant_is_moderator_and_rights_pass_on() {
    let mut rooms = Rooms::default();
    let (_, e1) = join(&mut rooms, 1, "Ada", None);
    let ada = joined_id(&e1, 1);
    let Some(ServerMessage::Joined { moderator, .. }) = to(&e1, 1).first().copied().cloned() else {
        panic!()
    };
    assert_eq!(moderator, Some(ada));
    let (_, e2) = join(&mut rooms, 2, "Bob", None);
    let bob = joined_id(&e2, 2);
    let mut effects = Effects::default();
    rooms.leave(1, &mut effects);
    assert!(to(&effects, 2).contains(&&ServerMessage::Moderator { id: bob }));
    assert!(room(&mut rooms).is_moderator(2));
}

#[test]
fn a_password_gates_everyone_joining_after_it_is_set() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let mut effects = Effects::default();
    room(&mut rooms).set_password(1, Some("tea".into()), &mut effects);
    assert_eq!(to(&effects, 1), vec![&ServerMessage::Settings { password: true, lobby: false }]);

    for attempt in [None, Some("coffee"), Some("Tea")] {
        let (outcome, e) = join(&mut rooms, 2, "Bob", attempt);
        assert_eq!(outcome, JoinOutcome::WrongPassword);
        assert!(matches!(to(&e, 2)[0], ServerMessage::Error { code: ErrorCode::Password, .. }));
    }
    let (outcome, _) = join(&mut rooms, 2, "Bob", Some("tea"));
    assert_eq!(outcome, JoinOutcome::Joined);

    // Only the moderator sets it.
    let mut effects = Effects::default();
    room(&mut rooms).set_password(2, None, &mut effects);
    assert!(matches!(to(&effects, 2)[0], ServerMessage::Error { code: ErrorCode::BadState, .. }));
}

#[test]
fn the_lobby_holds_newcomers_until_admitted_or_denied() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let mut effects = Effects::default();
    room(&mut rooms).set_lobby(1, true, &mut effects);

    let (outcome, e) = join(&mut rooms, 2, "Bob", None);
    assert_eq!(outcome, JoinOutcome::Lobby);
    assert_eq!(to(&e, 2), vec![&ServerMessage::Lobby]);
    let Some(ServerMessage::Knock { id: bob, name }) = to(&e, 1).first().copied().cloned() else { panic!() };
    assert_eq!(name.as_deref(), Some("Bob"));
    let (_, e) = join(&mut rooms, 3, "Eve", None);
    let Some(ServerMessage::Knock { id: eve, .. }) = to(&e, 1).first().copied().cloned() else { panic!() };

    let mut effects = Effects::default();
    room(&mut rooms).admit_or_deny(1, &bob, true, &mut effects);
    assert_eq!(joined_id(&effects, 2), bob);
    let mut effects = Effects::default();
    room(&mut rooms).admit_or_deny(1, &eve, false, &mut effects);
    assert!(matches!(to(&effects, 3)[0], ServerMessage::Error { code: ErrorCode::Denied, .. }));
    assert_eq!(effects.close, vec![3]);
    assert_eq!(room(&mut rooms).member_count(), 2);
}

#[test]
fn a_password_set_while_waiting_applies_and_the_right_one_passes_the_lobby() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let mut effects = Effects::default();
    room(&mut rooms).set_lobby(1, true, &mut effects);
    let (_, e) = join(&mut rooms, 2, "Bob", None);
    let Some(ServerMessage::Knock { id: bob, .. }) = to(&e, 1).first().copied().cloned() else { panic!() };
    let mut effects = Effects::default();
    room(&mut rooms).set_password(1, Some("tea".into()), &mut effects);
    let mut effects = Effects::default();
    room(&mut rooms).admit_or_deny(1, &bob, true, &mut effects);
    assert!(matches!(to(&effects, 2)[0], ServerMessage::Error { code: ErrorCode::Password, .. }));
    assert_eq!(room(&mut rooms).member_count(), 1);

    // With the lobby on, the right password walks straight in.
    let (outcome, _) = join(&mut rooms, 4, "Cy", Some("tea"));
    assert_eq!(outcome, JoinOutcome::Joined);
}

#[test]
fn chat_history_reaches_late_joiners_and_private_messages_only_two() {
    let mut rooms = Rooms::default();
    let (_, e) = join(&mut rooms, 1, "Ada", None);
    let ada = joined_id(&e, 1);
    let (_, e) = join(&mut rooms, 2, "Bob", None);
    let bob = joined_id(&e, 2);
    join(&mut rooms, 3, "Cy", None);
    let mut effects = Effects::default();
    room(&mut rooms).chat(1, "hello all".into(), None, 1000, &mut effects);
    assert_eq!(effects.out.len(), 3);
    let mut effects = Effects::default();
    room(&mut rooms).chat(1, "psst".into(), Some(bob.clone()), 1001, &mut effects);
    let recipients: Vec<ConnId> = effects.out.iter().map(|o| o.to).collect();
    assert_eq!(recipients, vec![2, 1], "private: recipient and sender only");

    let (_, e) = join(&mut rooms, 4, "Late", None);
    let Some(ServerMessage::Joined { chat, .. }) =
        to(&e, 4).into_iter().find(|m| matches!(m, ServerMessage::Joined { .. })).cloned()
    else {
        panic!()
    };
    assert_eq!(
        chat,
        vec![ChatView { from: ada, name: Some("Ada".into()), text: "hello all".into(), at: 1000 }]
    );
}

#[test]
fn an_emptied_room_is_gone_and_its_name_makes_a_new_one() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let mut effects = Effects::default();
    room(&mut rooms).set_password(1, Some("tea".into()), &mut effects);
    room(&mut rooms).chat(1, "secret plans".into(), None, 5, &mut effects);
    rooms.leave(1, &mut Effects::default());
    assert!(rooms.is_empty());

    let (outcome, e) = join(&mut rooms, 2, "Bob", None);
    assert_eq!(outcome, JoinOutcome::Joined, "no password any more");
    let bob = joined_id(&e, 2);
    let Some(ServerMessage::Joined { chat, moderator, password, .. }) =
        to(&e, 2).into_iter().find(|m| matches!(m, ServerMessage::Joined { .. })).cloned()
    else {
        panic!()
    };
    assert!(chat.is_empty() && !password);
    assert_eq!(moderator, Some(bob), "a new moderator");
}

#[test]
fn two_members_go_peer_to_peer_three_go_through_the_bridge() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let (_, e) = join(&mut rooms, 2, "Bob", None);
    assert!(e.topology_changed);
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, true, &mut effects);
    let modes: Vec<_> = effects.out.iter().map(|o| (o.to, o.message.clone())).collect();
    assert!(matches!(&modes[0], (1, ServerMessage::Mode { mode: "p2p", polite: Some(false), .. })));
    assert!(matches!(&modes[1], (2, ServerMessage::Mode { mode: "p2p", polite: Some(true), .. })));

    join(&mut rooms, 3, "Cy", None);
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, true, &mut effects);
    assert_eq!(effects.out.len(), 3);
    assert!(
        effects.out.iter().all(|o| matches!(o.message, ServerMessage::Mode { mode: "bridge", epoch: 2, .. }))
    );

    // A fourth: the others offer again, the newcomer learns the room is on the bridge (a
    // `renegotiate` would mean nothing to a page that never had a bridge session).
    join(&mut rooms, 4, "Di", None);
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, true, &mut effects);
    assert_eq!(effects.out.len(), 4);
    for o in &effects.out {
        if o.to == 4 {
            assert!(matches!(o.message, ServerMessage::Mode { mode: "bridge", epoch: 3, .. }), "{o:?}");
        } else {
            assert_eq!(o.message, ServerMessage::Renegotiate { epoch: 3 });
        }
    }

    rooms.leave(4, &mut Effects::default());
    rooms.leave(3, &mut Effects::default());
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, false, &mut effects);
    assert!(
        effects.out.iter().all(|o| o.message == ServerMessage::Renegotiate { epoch: 4 }),
        "back to two: still on the bridge until the delay passes, without the one who left"
    );
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, true, &mut effects);
    assert_eq!(effects.out.len(), 2);
    assert!(
        effects.out.iter().all(|o| matches!(o.message, ServerMessage::Mode { mode: "p2p", epoch: 5, .. }))
    );
}

#[test]
fn signals_go_only_to_the_peer_and_only_in_p2p() {
    let mut rooms = Rooms::default();
    let (_, e) = join(&mut rooms, 1, "Ada", None);
    let ada = joined_id(&e, 1);
    let (_, e) = join(&mut rooms, 2, "Bob", None);
    let bob = joined_id(&e, 2);
    let data = serde_json::json!({"candidate": {"candidate": "x"}});
    let mut effects = Effects::default();
    room(&mut rooms).signal(1, &bob, data.clone(), 0, &mut effects);
    assert!(
        matches!(to(&effects, 1)[0], ServerMessage::Error { code: ErrorCode::BadState, .. }),
        "not P2P yet"
    );
    let mut effects = Effects::default();
    room(&mut rooms).update_topology(true, true, &mut effects);
    let ServerMessage::Mode { epoch, .. } = to(&effects, 1)[0] else { panic!("no mode: {effects:?}") };
    let epoch = *epoch;
    let mut effects = Effects::default();
    room(&mut rooms).signal(1, &bob, data.clone(), epoch, &mut effects);
    assert_eq!(
        to(&effects, 2),
        vec![&ServerMessage::Signal { from: ada.clone(), data: data.clone(), epoch }]
    );
    let mut effects = Effects::default();
    room(&mut rooms).signal(1, &ada, data.clone(), epoch, &mut effects);
    assert!(matches!(to(&effects, 1)[0], ServerMessage::Error { .. }), "not to oneself");
    let mut effects = Effects::default();
    room(&mut rooms).signal(1, &bob, data, epoch - 1, &mut effects);
    assert!(effects.out.is_empty(), "a signal of an earlier epoch is dropped quietly: {effects:?}");
}

#[test]
fn everyone_learns_who_encrypts_end_to_end_and_only_the_fact() {
    let mut rooms = Rooms::default();
    join(&mut rooms, 1, "Ada", None);
    let (_, e2) = join(&mut rooms, 2, "Bob", None);
    let bob = joined_id(&e2, 2);
    let mut effects = Effects::default();
    room(&mut rooms).e2ee(2, true, &mut effects);
    for conn in [1, 2] {
        let updates: Vec<_> = to(&effects, conn)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::ParticipantUpdated { participant } => Some(participant),
                _ => None,
            })
            .collect();
        assert_eq!(updates.len(), 1, "conn {conn}: {:?}", effects.out);
        assert_eq!((updates[0].id.as_str(), updates[0].e2ee), (bob.as_str(), true));
    }

    // Saying it again changes nothing and sends nothing: a page may repeat itself.
    let mut effects = Effects::default();
    room(&mut rooms).e2ee(2, true, &mut effects);
    assert!(effects.out.is_empty(), "{:?}", effects.out);

    // A newcomer sees the state in `joined`.
    let (_, e3) = join(&mut rooms, 3, "Cy", None);
    let Some(ServerMessage::Joined { participants, .. }) = to(&e3, 3).first().copied().cloned() else {
        panic!()
    };
    let flags: Vec<_> = participants.iter().map(|p| (p.name.as_deref(), p.e2ee)).collect();
    assert!(flags.contains(&(Some("Bob"), true)) && flags.contains(&(Some("Ada"), false)), "{flags:?}");

    // Off again, and someone who is not a member cannot say anything.
    let mut effects = Effects::default();
    room(&mut rooms).e2ee(2, false, &mut effects);
    assert!(
        matches!(to(&effects, 1)[0], ServerMessage::ParticipantUpdated { participant } if !participant.e2ee)
    );
    let mut effects = Effects::default();
    room(&mut rooms).e2ee(99, true, &mut effects);
    assert!(matches!(to(&effects, 99)[0], ServerMessage::Error { code: ErrorCode::BadState, .. }));
}
