//! Graceful stop (B-MSG-2, B-MSG-3, B-MSG-5): SIGTERM while a client has a window of 3/1s in
//! flight. The server stops reading, lets the writer commit what it was given, sends those acks
//! and deliveries, then closes. So after a restart the stored messages are exactly the
//! acknowledged ones (nothing committed without its 3/2, which the client would resend as a
//! duplicate), and the online recipient got each of them once.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use ttserver::client::{Client, ClientError};
use ttserver::proto::msg::UnreadMsgRequest;
use ttserver::proto::{Id, Pdu};

/// Unacknowledged 3/1s the sender keeps in flight.
const WINDOW: u32 = 16;
/// SIGTERM rounds (one server restart each).
const ROUNDS: u32 = 6;

fn body(seq: u32) -> String {
    format!("stop message {seq}")
}

fn encode(from: &str, to: &str, seq: u32, out: &mut Vec<u8>) {
    let id = |s: &str| s.parse::<u32>().unwrap();
    out.extend(msg_frame(id(from), id(to), 1, seq, body(seq).as_bytes()));
}

/// Whether a receive error is the end of the connection (EOF, or a reset after the data).
fn ended(e: &ClientError) -> bool {
    match e {
        ClientError::Closed => true,
        ClientError::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

/// Every 3/1 delivery (its seq_no) until the server closes the connection.
fn deliveries_until_closed(c: &mut Client) -> Vec<u32> {
    let mut seqs = Vec::new();
    loop {
        match c.recv() {
            Ok(f) if f.module_command() == (3, 1) => {
                let Pdu::MsgData(m) = f.pdu().unwrap() else {
                    panic!("3/1 that does not decode")
                };
                seqs.push(m.seq_no);
            }
            Ok(_) => {}
            Err(e) if ended(&e) => return seqs,
            Err(e) => panic!("receiver: {e}"),
        }
    }
}

/// The sender's window: WINDOW 3/1s in flight, one more per ack; SIGTERM to the server when
/// `kill_at` acks have come back (so the signal lands mid-window); then reads until the server
/// closes. Returns the acknowledged seq_nos and the first seq_no not sent. Sends after the
/// signal may fail: ignored.
fn windowed_send(
    srv: &Server,
    sender: &mut Client,
    ids: (&str, &str),
    first: u32,
    kill_at: u32,
) -> (Vec<u32>, u32) {
    let mut next = first;
    let mut buf = Vec::new();
    for _ in 0..WINDOW {
        encode(ids.0, ids.1, next, &mut buf);
        next += 1;
    }
    sender.send_raw(&buf).unwrap();
    let mut acked = Vec::new();
    let mut killed = false;
    loop {
        match sender.recv() {
            Ok(f) if f.module_command() == (3, 2) => {
                let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
                    panic!("3/2 that does not decode")
                };
                acked.push(k.seq_no);
                if !killed && acked.len() as u32 == kill_at {
                    let pid = srv.pid().expect("server running") as i32;
                    // SAFETY: plain kill(2) on the server child's pid.
                    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
                    killed = true;
                }
                buf.clear();
                encode(ids.0, ids.1, next, &mut buf);
                next += 1;
                let _ = sender.send_raw(&buf);
            }
            Ok(_) => {}
            Err(e) if ended(&e) => break,
            Err(e) => panic!("sender: {e}"),
        }
    }
    assert!(killed, "the server closed before {kill_at} acks");
    (acked, next)
}

/// The stored messages from the sender, by body: the receiver's unread list (3/9 -> 3/14).
fn stored(srv: &Server, sender_id: &str) -> HashMap<u32, u32> {
    let (mut r, _) = srv.login("receiver", "r", ANDROID);
    r.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Raw(sender_id.as_bytes()),
        }),
        2,
    )
    .unwrap();
    let f = recv_mc(&mut r, 3, 14);
    let Pdu::UnreadMsgResponse(rsp) = f.pdu().unwrap() else {
        panic!("3/14 that does not decode")
    };
    let mut seen: HashMap<u32, u32> = HashMap::new();
    for m in &rsp.msgs {
        let text = std::str::from_utf8(m.msg_data).unwrap();
        let seq = text
            .strip_prefix("stop message ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected stored message {text:?}"));
        *seen.entry(seq).or_default() += 1;
    }
    seen
}

#[test]
fn sigterm_mid_window_acknowledges_every_committed_message() {
    let (mut srv, ids) = Server::start_with(
        "MaxUnreadMsgs=100000\nMsgRateLimit=1000000\nDbSync=full",
        &[("sender", "s"), ("receiver", "r")],
    );
    let (sa, sb) = (ids[0].to_string(), ids[1].to_string());
    let mut all_acked = BTreeSet::new();
    let mut first = 0;
    let mut bad_rounds = Vec::new();
    for round in 0..ROUNDS {
        let (mut receiver, _) = srv.login("receiver", "r", PC);
        let (mut sender, _) = srv.login("sender", "s", PC);
        sync(&mut receiver);
        let kill_at = 40 + 13 * round;
        let (acked, end) = windowed_send(&srv, &mut sender, (&sa, &sb), first, kill_at);
        let delivered = deliveries_until_closed(&mut receiver);
        assert!(
            srv.wait_exit(),
            "round {round}: the server did not exit cleanly"
        );
        let sent = first..end;
        first = end;

        let acked_set: BTreeSet<u32> = acked.iter().copied().collect();
        assert_eq!(
            acked_set.len(),
            acked.len(),
            "round {round}: an ack came twice"
        );
        all_acked.extend(acked_set.iter().copied());

        srv.spawn();
        let seen = stored(&srv, &sa);
        let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dup.is_empty(), "round {round}: stored twice: {dup:?}");
        let stored_set: BTreeSet<u32> = seen.keys().copied().collect();
        let unacked: Vec<u32> = stored_set.difference(&all_acked).copied().collect();
        let lost: Vec<_> = all_acked.difference(&stored_set).collect();
        // B-MSG-3: an acknowledged message is stored.
        assert!(
            lost.is_empty(),
            "round {round}: acked but not stored: {lost:?}"
        );
        let delivered_set: BTreeSet<u32> = delivered.iter().copied().collect();
        let this_round: BTreeSet<u32> = stored_set
            .iter()
            .copied()
            .filter(|s| sent.contains(s))
            .collect();
        let undelivered: Vec<_> = this_round.difference(&delivered_set).collect();
        eprintln!(
            "round {round}: SIGTERM after {kill_at} acks; sent {}, acked {}, stored {}, delivered {}",
            sent.len(),
            acked.len(),
            this_round.len(),
            delivered.len()
        );
        if !unacked.is_empty() || !undelivered.is_empty() || delivered.len() != delivered_set.len()
        {
            eprintln!(
                "round {round}: committed but never acked: {unacked:?}; committed but not \
                 delivered: {undelivered:?}; deliveries {} (distinct {})",
                delivered.len(),
                delivered_set.len()
            );
            bad_rounds.push(round);
            // Count the unacked ones as acked from here on, so later rounds are judged alone.
            all_acked.extend(unacked.iter().copied());
        }
    }
    assert!(
        bad_rounds.is_empty(),
        "{} of {ROUNDS} SIGTERM rounds left committed messages unacknowledged or undelivered \
         (rounds {bad_rounds:?})",
        bad_rounds.len()
    );
}

/// A recipient that never reads keeps its deliveries queued in the server; the stop still ends
/// by `StopTimeout` (the worker closes what it could not flush).
#[test]
fn stop_timeout_bounds_the_stop_when_a_client_does_not_read() {
    const N: u32 = 6000;
    let (mut srv, ids) = Server::start_with(
        "StopTimeout=1\nMsgRateLimit=1000000\nOutBufCap=268435456\nDbSync=normal",
        &[("sender", "s"), ("receiver", "r")],
    );
    let (_stuck, _) = srv.login("receiver", "r", PC);
    let (mut sender, _) = srv.login("sender", "s", PC);
    let payload = "x".repeat(4000);
    let mut acked = 0;
    for chunk in 0..N / 100 {
        let mut buf = Vec::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            buf.extend(msg_frame(ids[0], ids[1], 1, i, payload.as_bytes()));
        }
        sender.send_raw(&buf).unwrap();
        for _ in 0..100 {
            recv_mc(&mut sender, 3, 2);
            acked += 1;
        }
    }
    assert_eq!(acked, N);
    // 24 MB of deliveries to a socket nobody reads: more than the kernel buffers hold.
    let started = std::time::Instant::now();
    let pid = srv.pid().expect("server running") as i32;
    // SAFETY: plain kill(2) on the server child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(srv.wait_exit(), "the server did not exit cleanly");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(6),
        "stop took {took:?} with StopTimeout=1"
    );
}
