//! Login hand-off, login, heartbeat, time, status, kick, throttling and timeouts over real sockets
//! (B-LS, B-LOGIN, B-TOK, B-KICK, B-HB, B-PRES-4).

mod common;

use std::time::Duration;

use common::*;
use ttserver::client::Client;
use ttserver::proto::login::LoginRequest;
use ttserver::proto::other::ServiceSetting;
use ttserver::proto::Pdu;

#[test]
fn login_port_hands_out_the_msg_server_then_closes() {
    // B-LS-1, B-LS-2
    let (srv, _) = Server::start(&[]);
    let ms = Client::request_msg_server(srv.login).unwrap();
    assert_eq!(ms.result, 0);
    assert_eq!(ms.ip1, "127.0.0.1");
    assert_eq!(ms.ip2, "127.0.0.1");
    assert_eq!(ms.port, srv.msg.port());

    // The reply echoes reserved and the server closes afterwards.
    let mut c = Client::connect(srv.login).unwrap();
    c.send(&Pdu::MsgServRequest, 77).unwrap();
    let f = recv_mc(&mut c, 1, 2);
    assert_eq!(f.header.reserved, 77);
    c.expect_closed().unwrap();
}

#[test]
fn login_succeeds_and_answers_heartbeat_and_time() {
    // B-LOGIN-4, B-TOK-1, B-HB-1, 3/5 -> 3/6 with reserved echoed (P-15)
    let (srv, ids) = Server::start(&[("alice", "secret")]);
    let mut c = srv.connect();
    let info = c.login("alice", "secret", 1, PC).unwrap();
    assert_eq!(info.result, 0);
    assert_eq!(info.user_id, ids[0]);
    assert_eq!(info.online_status, 1);
    assert_eq!(info.token.len(), 36);
    assert_eq!(info.token.matches('-').count(), 4);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((i64::from(info.server_time) - now).abs() < 5);

    c.send(&Pdu::Heartbeat, 9).unwrap();
    let f = recv(&mut c);
    assert_eq!(f.module_command(), (7, 1));
    assert_eq!(f.header.reserved, 9);
    assert!(f.body().is_empty());

    c.send(&Pdu::TimeRequest, 10).unwrap();
    let f = recv(&mut c);
    assert_eq!(f.module_command(), (3, 6));
    assert_eq!(f.header.reserved, 10);
    let Pdu::TimeResponse(t) = f.pdu().unwrap() else {
        panic!()
    };
    assert!((i64::from(t.server_time) - now).abs() < 5);

    // A second 1/3 on a logged-in connection is ignored (B-LOGIN-9).
    c.send(
        &Pdu::LoginRequest(LoginRequest {
            user_name: b"alice",
            password: ttserver::client::md5_hex("secret").as_bytes(),
            online_status: 1,
            client_type: PC,
            client_version: b"t",
        }),
        11,
    )
    .unwrap();
    sync(&mut c);
    assert_silent(&mut c, Duration::from_millis(200));
}

#[test]
fn leave_status_at_login_is_kept() {
    // B-LOGIN-5
    let (srv, _) = Server::start(&[("bob", "pw")]);
    let mut c = srv.connect();
    let info = c.login("bob", "pw", 3, PC).unwrap();
    assert_eq!(info.online_status, 3);
    let mut d = srv.connect();
    let info = d.login("bob", "pw", 2, IOS).unwrap();
    assert_eq!(info.online_status, 1, "any value other than 3 means online");
}

#[test]
fn wrong_password_and_unknown_user_are_refused_and_closed() {
    // B-LOGIN-3, B-LOGIN-6
    let (srv, _) = Server::start(&[("alice", "secret")]);
    for (name, pw) in [("alice", "wrong"), ("nobody", "secret"), ("", "")] {
        let mut c = srv.connect();
        let info = c.login(name, pw, 1, PC).unwrap();
        assert_eq!(info.result, 6, "{name}/{pw}");
        c.expect_closed().unwrap();
    }
    // Nothing changed for alice: she still logs in.
    let (_c, _) = srv.login("alice", "secret", PC);
}

#[test]
fn login_is_throttled_after_five_failures() {
    // B-LOGIN-7: five wrong passwords, then the right one fails too.
    let (srv, _) = Server::start(&[("alice", "secret"), ("carol", "pw")]);
    for _ in 0..5 {
        let mut c = srv.connect();
        assert_eq!(c.login("alice", "bad", 1, PC).unwrap().result, 6);
        c.expect_closed().unwrap();
    }
    let mut c = srv.connect();
    assert_eq!(c.login("alice", "secret", 1, PC).unwrap().result, 6);
    c.expect_closed().unwrap();
    // The IP reached the limit as well (5 failures from 127.0.0.1), so others are locked too.
    let mut c = srv.connect();
    assert_eq!(c.login("carol", "pw", 1, PC).unwrap().result, 6);
}

#[test]
fn throttle_lifts_after_the_lockout() {
    // B-LOGIN-7 with a 1 s window and lockout (conf values).
    let (srv, _) = Server::start_with(
        "LoginFailLimit=2\nLoginFailWindow=1\nLoginLockout=1",
        &[("alice", "secret")],
    );
    for _ in 0..2 {
        let mut c = srv.connect();
        assert_eq!(c.login("alice", "bad", 1, PC).unwrap().result, 6);
    }
    let mut c = srv.connect();
    assert_eq!(c.login("alice", "secret", 1, PC).unwrap().result, 6);
    let mut ok = false;
    wait_until("lockout to lift", Duration::from_secs(5), || {
        let mut c = srv.connect();
        ok = c.login("alice", "secret", 1, PC).unwrap().result == 0;
        ok
    });
    assert!(ok);
}

#[test]
fn second_pc_login_kicks_the_first_mobile_does_not() {
    // B-KICK-1, B-KICK-2
    let (srv, ids) = Server::start(&[("alice", "secret")]);
    let (mut pc1, _) = srv.login("alice", "secret", PC);
    let (mut phone, _) = srv.login("alice", "secret", IOS);
    sync(&mut pc1);
    assert_silent(&mut pc1, Duration::from_millis(200));

    let (mut mac, _) = srv.login("alice", "secret", MAC);
    let f = recv(&mut pc1);
    assert_eq!(f.module_command(), (1, 7));
    assert_eq!(f.header.reserved, 0);
    let Pdu::KickUser(k) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(k.user_id, ids[0]);
    assert_eq!(k.reason, 1);
    pc1.expect_closed().unwrap();

    // The mobile session and the new PC session both live.
    sync(&mut phone);
    sync(&mut mac);
}

#[test]
fn nothing_but_login_and_heartbeat_before_login() {
    // P-13, B-LOGIN-1: a 3/5 before login gets no answer; a 7/1 neither.
    let (srv, _) = Server::start(&[("alice", "secret")]);
    let mut c = srv.connect();
    c.send(&Pdu::TimeRequest, 1).unwrap();
    c.send(&Pdu::Heartbeat, 2).unwrap();
    let info = c.login("alice", "secret", 1, PC).unwrap();
    assert_eq!(info.result, 0, "the first frame after 1/3 is the 1/4");
}

#[test]
fn login_timeout_closes_a_silent_connection() {
    // B-LOGIN-2 with LoginTimeout=1
    let (srv, _) = Server::start_with("LoginTimeout=1", &[]);
    let mut c = srv.connect();
    c.set_timeout(Some(Duration::from_secs(5)));
    c.expect_closed().unwrap();
}

#[test]
fn idle_session_is_closed() {
    // B-HB-2 with PcIdleTimeout=1
    let (srv, _) = Server::start_with("PcIdleTimeout=1", &[("alice", "secret")]);
    let (mut c, _) = srv.login("alice", "secret", PC);
    c.set_timeout(Some(Duration::from_secs(5)));
    c.expect_closed().unwrap();
}

#[test]
fn status_change_is_echoed_to_all_sessions() {
    // B-PRES-4: requester gets the echo with its reserved, the other session with 0.
    let (srv, ids) = Server::start(&[("alice", "secret")]);
    let (mut pc, _) = srv.login("alice", "secret", PC);
    let (mut phone, _) = srv.login("alice", "secret", ANDROID);
    pc.send(
        &Pdu::ServiceSetting(ServiceSetting { key: 2, value: 3 }),
        44,
    )
    .unwrap();
    let f = recv_mc(&mut pc, 2, 5);
    assert_eq!(f.header.reserved, 44);
    let Pdu::UserStatusNotify(n) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(n.user_id.value(), Some(ids[0]));
    assert_eq!(n.status, 3);
    let f = recv_mc(&mut phone, 2, 5);
    assert_eq!(f.header.reserved, 0);

    // Values other than 1 and 3, or other keys, are ignored without echo.
    pc.send(
        &Pdu::ServiceSetting(ServiceSetting { key: 2, value: 2 }),
        45,
    )
    .unwrap();
    pc.send(
        &Pdu::ServiceSetting(ServiceSetting { key: 1, value: 1 }),
        46,
    )
    .unwrap();
    sync(&mut pc);
    assert_silent(&mut pc, Duration::from_millis(200));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (mut srv, _) = Server::start(&[("alice", "secret")]);
    let (_c, _) = srv.login("alice", "secret", PC);
    assert!(srv.terminate());
}
