//! The user directory 2/15 (B-USER-2): with `AllUsersSplit` (default) a directory longer than
//! one `MaxOutPduSize` frame arrives whole, as consecutive frames of whole users in id order
//! (the 2014 Android app merges every 2/15 into its contact map); without it, one cut frame.

mod common;

use common::*;
use ttserver::client::Client;
use ttserver::proto::Pdu;

/// Small frames, so that a few hundred users need several (the cross checks want the message
/// limits below MaxOutPduSize).
const SMALL_FRAMES: &str = "MaxOutPduSize=8192\nMaxTextLen=4000\nMaxAudioLen=4000\n";
const EXTRA_USERS: usize = 400;

/// A server with alice plus `EXTRA_USERS` users with long nicks (imported while it is stopped).
fn big_directory(extra_conf: &str) -> Server {
    let (mut srv, _) = Server::start_with(extra_conf, &[("alice", "a")]);
    assert!(srv.terminate());
    let csv: String = (0..EXTRA_USERS)
        .map(|i| format!("user{i:04},pw,Nick name number {i:04} with some length\n"))
        .collect();
    let path = srv.dir.join("users.csv");
    std::fs::write(&path, csv).unwrap();
    let n = srv.admin(&["user", "import", path.to_str().unwrap()]);
    assert_eq!(n, EXTRA_USERS.to_string());
    srv.spawn();
    srv
}

/// Sends 2/14 and reads 2/15 frames until `want` users arrived; returns (frame sizes, ids).
fn all_users(c: &mut Client, want: usize) -> (Vec<usize>, Vec<u32>) {
    c.send(&Pdu::AllUserRequest, 77).unwrap();
    let (mut sizes, mut ids) = (Vec::new(), Vec::new());
    while ids.len() < want {
        let f = recv(c);
        assert_eq!((f.module_command(), f.header.reserved), ((2, 15), 77));
        let Pdu::AllUserResponse(r) = f.pdu().unwrap() else {
            panic!()
        };
        assert!(!r.users.is_empty(), "an empty frame in a split directory");
        sizes.push(f.bytes.len());
        ids.extend(r.users.iter().map(|u| u.user_id.value().unwrap()));
    }
    (sizes, ids)
}

#[test]
fn a_long_directory_arrives_whole_in_frames_under_max_out_pdu_size() {
    let srv = big_directory(SMALL_FRAMES);
    let (mut alice, _) = srv.login("alice", "a", ANDROID);
    let (sizes, ids) = all_users(&mut alice, EXTRA_USERS + 1);
    // Nothing more follows: the next reply is the heartbeat's.
    sync(&mut alice);
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 8192), "{sizes:?}");
    assert_eq!(ids.len(), EXTRA_USERS + 1);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order, no repeats");
}

#[test]
fn split_off_sends_one_cut_frame() {
    let srv = big_directory(&format!("{SMALL_FRAMES}AllUsersSplit=false\n"));
    let (mut alice, _) = srv.login("alice", "a", PC);
    alice.send(&Pdu::AllUserRequest, 78).unwrap();
    let f = recv_mc(&mut alice, 2, 15);
    assert!(f.bytes.len() <= 8192);
    let Pdu::AllUserResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert!(r.users.len() < EXTRA_USERS / 2, "{}", r.users.len());
    let ids: Vec<u32> = r.users.iter().map(|u| u.user_id.value().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    sync(&mut alice);
}
