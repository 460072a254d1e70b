//! The msfs service fed events by hand, its outbox read back (no sockets, no io thread).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use parking_lot::Mutex;

use super::conn::{Conn, Phase};
use super::io::{Done, Job, ReadResult};
use super::requests::{Ctx, Pace};
use super::service::Msg;
use super::IDLE_TIMEOUT;
use crate::auth::token_registry::TokenRegistry;
use crate::net::service::{Action, Bytes, Close, Conns, Framing, Outbox, Service, Verdict};
use crate::net::ConnId;
use crate::stats::Counters;

const ID: ConnId = ConnId {
    worker: 0,
    slot: 3,
    generation: 7,
};

fn ctx(queue: usize) -> (Ctx, Receiver<Job>) {
    let (tx, rx) = crossbeam_channel::bounded(queue);
    let ctx = Ctx {
        counters: Arc::new(Counters::default()),
        tokens: Arc::new(Mutex::new(TokenRegistry::new(Duration::from_secs(1)))),
        base_url: "http://img".into(),
        require_token: false,
        max_file: 1000,
        body_limit: 2000,
        pace: Pace {
            head: Duration::from_secs(10),
            min_body_rate: 1000,
        },
        jobs: tx,
        waiting: VecDeque::new(),
    };
    (ctx, rx)
}

fn accept(s: &mut Ctx) -> Conn {
    let mut out = Outbox::default();
    let c = s.accept(&mut out, ID, 0, "127.0.0.1:1".parse().unwrap());
    assert!(matches!(out.actions(), [Action::Deadline(ID, Some(_))]));
    c.unwrap()
}

/// Everything answered, concatenated.
fn answered(out: &Outbox<Msg>) -> String {
    let mut s = Vec::new();
    for a in out.actions() {
        if let Action::Answer(_, Bytes::Owned(b)) = a {
            s.extend_from_slice(b);
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn has(out: &Outbox<Msg>, f: impl Fn(&Action<Msg>) -> bool) -> bool {
    out.actions().iter().any(f)
}

struct One<'a>(ConnId, &'a mut Conn);

impl Conns<Conn> for One<'_> {
    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        (id == self.0).then_some(&mut *self.1)
    }
}

/// Frames `input` and hands the frame over, as the loop does.
fn request(s: &mut Ctx, c: &mut Conn, input: &[u8]) -> (Outbox<Msg>, Verdict) {
    let mut out = Outbox::default();
    let Framing::Complete(n) = s.frame(&mut out, ID, c, input) else {
        panic!("not complete");
    };
    assert_eq!(n, input.len());
    let v = s.on_frame(&mut out, ID, c, input);
    (out, v)
}

#[test]
fn a_download_holds_input_until_answered_and_written() {
    let (mut s, jobs) = ctx(4);
    let mut c = accept(&mut s);
    let path = "g0/001/002/0123456789abcdef0123456789abcdef.png";
    let req = format!("GET /{path} HTTP/1.1\r\n\r\n");
    let (out, v) = request(&mut s, &mut c, req.as_bytes());
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(c.phase, Phase::Busy);
    assert!(has(&out, |a| matches!(a, Action::Hold(ID))));
    assert!(matches!(
        out.actions().last(),
        Some(Action::Deadline(ID, None))
    ));
    let Ok(Job::Read { key, head_only, .. }) = jobs.try_recv() else {
        panic!("no job");
    };
    assert_eq!((key, head_only), (ID, false));

    // No deadline while the job runs.
    let mut out = Outbox::default();
    s.on_timeout(&mut out, ID, &mut c);
    assert!(out.is_empty());

    let mut out = Outbox::default();
    let done = Done::Read {
        key: ID,
        path: path.into(),
        result: ReadResult::Found {
            len: 3,
            bytes: b"png".to_vec(),
        },
    };
    s.on_message(&mut out, &mut One(ID, &mut c), Msg::Done(done));
    let text = answered(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("Content-Length: 3\r\n\r\npng"), "{text}");
    assert!(has(
        &out,
        |a| matches!(a, Action::IdleTimeoutRw(ID, Some(d)) if *d == IDLE_TIMEOUT)
    ));
    assert!(has(&out, |a| matches!(a, Action::NotifyFlushed(ID))));
    assert_eq!(c.phase, Phase::Writing);

    // Written: the next request may come.
    let mut out = Outbox::default();
    s.on_flushed(&mut out, ID, &mut c);
    assert!(matches!(out.actions(), [Action::Resume(ID)]));
    assert_eq!(c.phase, Phase::Reading);
    // Its first byte starts its head time and turns the loop's idle timeout off.
    let mut out = Outbox::default();
    assert_eq!(s.frame(&mut out, ID, &mut c, b"GE"), Framing::Partial);
    assert!(has(&out, |a| matches!(a, Action::IdleTimeout(ID, None))));
    assert!(has(&out, |a| matches!(a, Action::Deadline(ID, Some(_)))));
}

#[test]
fn stale_answers_are_counted() {
    let (mut s, _jobs) = ctx(4);
    let mut c = accept(&mut s);
    let other = ConnId {
        generation: 8,
        ..ID
    };
    let mut out = Outbox::default();
    let done = Done::Stored {
        key: other,
        path: "p".into(),
        result: Ok(()),
    };
    s.on_message(&mut out, &mut One(ID, &mut c), Msg::Done(done));
    // Not waiting for one either.
    let done = Done::Stored {
        key: ID,
        path: "p".into(),
        result: Ok(()),
    };
    s.on_message(&mut out, &mut One(ID, &mut c), Msg::Done(done));
    assert!(out.is_empty());
    assert_eq!(s.counters.stale_replies.load(Ordering::Relaxed), 2);
}

fn upload(name: &str) -> Vec<u8> {
    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n\
         data\r\n--b--\r\n"
    );
    format!(
        "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn a_full_io_queue_holds_requests_in_order() {
    let (mut s, jobs) = ctx(1);
    let mut a = accept(&mut s);
    let (_, v) = request(&mut s, &mut a, &upload("a.jpg"));
    assert_eq!(v, Verdict::Consumed);
    let Ok(Job::Store { data, .. }) = jobs.try_recv() else {
        panic!("no job");
    };
    assert_eq!(data, b"data");
    // Fill the queue; the next upload waits, the request left in the input.
    let mut a2 = accept(&mut s);
    let (_, v) = request(&mut s, &mut a2, &upload("b.jpg"));
    assert_eq!(v, Verdict::Consumed);
    let mut b = accept(&mut s);
    let (out, v) = request(&mut s, &mut b, &upload("c.jpg"));
    assert_eq!(v, Verdict::Hold);
    assert_eq!(b.phase, Phase::Queued);
    assert!(matches!(
        out.actions().last(),
        Some(Action::Deadline(ID, None))
    ));
    assert_eq!(s.waiting.len(), 1);
    // A download behind it waits too, even if room came meanwhile; an answer from the head
    // does not.
    let _ = jobs.try_recv();
    let mut c = accept(&mut s);
    let (_, v) = request(
        &mut s,
        &mut c,
        b"GET /g0/001/002/0123456789abcdef0123456789abcdef.png HTTP/1.1\r\n\r\n",
    );
    assert_eq!(v, Verdict::Hold);
    let mut d = accept(&mut s);
    let (out, v) = request(&mut s, &mut d, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(v, Verdict::Consumed);
    assert!(answered(&out).starts_with("HTTP/1.1 404"));

    // One place: the first waiting one is resumed and gets it.
    let mut out = Outbox::default();
    s.on_tick(&mut out, std::time::Instant::now());
    assert!(matches!(out.actions(), [Action::Resume(ID)]));
    assert_eq!(s.waiting.len(), 1);
    let (_, v) = request(&mut s, &mut b, &upload("c.jpg"));
    assert_eq!((v, b.phase), (Verdict::Consumed, Phase::Busy));
    let mut out = Outbox::default();
    s.on_tick(&mut out, std::time::Instant::now());
    assert!(out.is_empty());
    // A waiting connection that closes leaves the list.
    let mut out = Outbox::default();
    s.on_closed(&mut out, ID, c, "gone");
    assert!(s.waiting.is_empty());
}

#[test]
fn heads_and_bodies_are_checked_before_buffering() {
    let (mut s, _jobs) = ctx(4);
    // Partial head: read on, with its deadline.
    let mut c = accept(&mut s);
    let mut out = Outbox::default();
    assert_eq!(
        s.frame(&mut out, ID, &mut c, b"POST / HT"),
        Framing::Partial
    );
    assert!(matches!(out.actions(), [Action::Deadline(ID, Some(_))]));
    // Expect: 100-continue with the body not sent yet.
    let head = b"POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\n\
                 Content-Length: 100\r\nExpect: 100-continue\r\n\r\n";
    let mut out = Outbox::default();
    assert_eq!(s.frame(&mut out, ID, &mut c, head), Framing::Partial);
    assert_eq!(answered(&out), "HTTP/1.1 100 Continue\r\n\r\n");

    // Over the upload limit: answered from the head, then a lingering close.
    let mut c = accept(&mut s);
    let mut out = Outbox::default();
    let head = b"POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\n\
                 Content-Length: 2001\r\n\r\n";
    assert!(matches!(
        s.frame(&mut out, ID, &mut c, head),
        Framing::Invalid(_)
    ));
    s.on_bad_input(&mut out, ID, &mut c, "rejected");
    let text = answered(&out);
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.contains("\"error_code\":1"), "{text}");
    assert!(has(&out, |a| matches!(a, Action::StopInput(ID))));
    let mut out = Outbox::default();
    s.on_flushed(&mut out, ID, &mut c);
    assert!(matches!(
        out.actions(),
        [Action::Close(ID, Close::Linger(_))]
    ));

    // Malformed: 400, then a lingering close.
    let mut c = accept(&mut s);
    let mut out = Outbox::default();
    let Framing::Invalid(why) = s.frame(&mut out, ID, &mut c, b"\x01 / HTTP/1.1\r\n\r\n") else {
        panic!("framed");
    };
    s.on_bad_input(&mut out, ID, &mut c, &why);
    assert!(answered(&out).starts_with("HTTP/1.1 400 Bad Request\r\n"));
    let mut out = Outbox::default();
    s.on_flushed(&mut out, ID, &mut c);
    assert!(matches!(
        out.actions(),
        [Action::Close(ID, Close::Linger(_))]
    ));
}

#[test]
fn peer_half_close() {
    let (mut s, _jobs) = ctx(4);
    // Between requests, or with a partial one: close once output is written.
    let mut c = accept(&mut s);
    let mut out = Outbox::default();
    s.on_eof(&mut out, ID, &mut c);
    assert!(matches!(
        out.actions(),
        [Action::Close(ID, Close::AfterFlush(_))]
    ));
    // While its request is served: answered, then closed.
    let mut c = accept(&mut s);
    let req = b"GET /g0/001/002/0123456789abcdef0123456789abcdef.png HTTP/1.1\r\n\r\n";
    let _ = request(&mut s, &mut c, req);
    let mut out = Outbox::default();
    s.on_eof(&mut out, ID, &mut c);
    assert!(out.is_empty());
    let done = Done::Read {
        key: ID,
        path: "x.png".into(),
        result: ReadResult::NotFound,
    };
    s.on_message(&mut out, &mut One(ID, &mut c), Msg::Done(done));
    assert!(answered(&out).starts_with("HTTP/1.1 404"));
    let mut out = Outbox::default();
    s.on_flushed(&mut out, ID, &mut c);
    assert!(matches!(out.actions(), [Action::Close(ID, Close::Now(_))]));
}

#[test]
fn head_requests_and_connection_close() {
    let (mut s, _jobs) = ctx(4);
    let mut c = accept(&mut s);
    let (out, _) = request(
        &mut s,
        &mut c,
        b"HEAD /nope HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let text = answered(&out);
    assert!(
        text.ends_with("Content-Length: 10\r\nConnection: close\r\n\r\n"),
        "{text}"
    );
    assert!(has(&out, |a| matches!(a, Action::StopInput(ID))));
    let mut out = Outbox::default();
    s.on_flushed(&mut out, ID, &mut c);
    assert!(matches!(
        out.actions(),
        [Action::Close(ID, Close::Linger(_))]
    ));
}
