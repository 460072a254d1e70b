//! Presence pushes to recent contacts (B-PRES-1..3, B-PRES-8).

mod common;

use std::time::Duration;

use common::*;
use ttserver::proto::msg::MsgData;
use ttserver::proto::other::ServiceSetting;
use ttserver::proto::{Id, Pdu};

fn status_push(c: &mut ttserver::client::Client) -> (u32, u32) {
    let f = recv_mc(c, 2, 5);
    assert_eq!(f.header.reserved, 0);
    let Pdu::UserStatusNotify(n) = f.pdu().unwrap() else {
        panic!()
    };
    (n.user_id.value().unwrap(), n.status)
}

#[test]
fn recent_contacts_see_login_status_change_and_logout() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("stranger", "s")]);
    let (a, b) = (ids[0], ids[1]);
    // Make alice and bob recent contacts, then restart the server: the presence work of that
    // first session (its login and logout notices) cannot reach the sessions below.
    {
        let (mut alice, _) = srv.login("alice", "a", PC);
        let (sa, sb) = (a.to_string(), b.to_string());
        alice
            .send(
                &Pdu::MsgData(MsgData {
                    seq_no: 1,
                    from_id: Id::Raw(sa.as_bytes()),
                    to_id: Id::Raw(sb.as_bytes()),
                    create_time: 0,
                    msg_type: 1,
                    msg_data: b"hello",
                    attach: b"",
                }),
                1,
            )
            .unwrap();
        recv_mc(&mut alice, 3, 2);
    }
    let mut srv = srv;
    srv.kill9();
    srv.spawn();

    let (mut bob, _) = srv.login("bob", "b", PC);
    let (mut bob_phone, _) = srv.login("bob", "b", IOS);
    let (mut stranger, _) = srv.login("stranger", "s", PC);

    let (mut alice, _) = srv.login("alice", "a", PC);
    assert_eq!(status_push(&mut bob), (a, 1), "login");

    alice
        .send(&Pdu::ServiceSetting(ServiceSetting { key: 2, value: 3 }), 5)
        .unwrap();
    assert_eq!(status_push(&mut bob), (a, 3), "leave");

    // A second device with another status changes the aggregate (B-PRES-1): online wins.
    let (phone, _) = srv.login("alice", "a", ANDROID);
    assert_eq!(status_push(&mut bob), (a, 1), "a phone logged in online");
    drop(phone);
    assert_eq!(status_push(&mut bob), (a, 3), "back to leave");

    drop(alice);
    assert_eq!(status_push(&mut bob), (a, 2), "logout");

    // Mobile sessions and non-contacts get nothing (B-PRES-8, B-PRES-2).
    sync(&mut bob_phone);
    assert_silent(&mut bob_phone, Duration::from_millis(200));
    sync(&mut stranger);
    assert_silent(&mut stranger, Duration::from_millis(200));
}

#[test]
fn same_status_relogin_sends_nothing() {
    // B-PRES-3, B-KICK-3: a kick + relogin with the same status is no change.
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (sa, sb) = (a.to_string(), b.to_string());
    bob.send(
        &Pdu::MsgData(MsgData {
            seq_no: 1,
            from_id: Id::Raw(sb.as_bytes()),
            to_id: Id::Raw(sa.as_bytes()),
            create_time: 0,
            msg_type: 1,
            msg_data: b"hi",
            attach: b"",
        }),
        1,
    )
    .unwrap();
    recv_mc(&mut bob, 3, 2);
    let (_alice1, _) = srv.login("alice", "a", PC);
    assert_eq!(status_push(&mut bob), (a, 1));
    let (mut alice2, _) = srv.login("alice", "a", MAC);
    sync(&mut alice2);
    sync(&mut bob);
    assert_silent(&mut bob, Duration::from_millis(300));
}
