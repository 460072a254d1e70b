//! The msg role's end of a link to a file role running alone (`FileServer` in the conf).
//!
//! Thread "file-link" connects to `FileServer`, says hello with `ClusterSecret`, waits for the
//! welcome, sends every user's token state, then forwards what the msg role queues (tasks,
//! token changes, deletions) in order. Thread "file-link-rx" reads the file role's "upload
//! complete" notices and hands them to the msg role (6/12, B-FILE-9). While the link is down,
//! 6/10 answers result 8 (B-FILE-3) and the thread reconnects every second.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::hub::{OnDone, ReadyNotice};
use super::link::{task_of, tokens_frame};
use crate::auth::token_registry::TokenRegistry;
use crate::proto::frame::{self, HEADER_LEN};
use crate::proto::internal::{self, LinkDelete, LinkDeleted, LinkHello, LinkTask, LINK_MODULE};

/// Link frames waiting for the socket; beyond this 6/10 answers result 2.
const LINK_QUEUE: usize = 65_536;
const RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest link PDU accepted from the file role.
const MAX_LINK_PDU: u32 = 64 * 1024;

/// The shared view of the link.
pub struct Remote {
    /// `FileServer`, `ClusterSecret`.
    addr: SocketAddr,
    secret: String,
    /// The msg role's registry (every user's state is sent when a link opens).
    tokens: Arc<Mutex<TokenRegistry>>,
    /// Where "upload complete" notices go (6/12).
    notice: Arc<dyn ReadyNotice>,
    pub(super) tx: Sender<Vec<u8>>,
    /// 6/19s sent and not yet confirmed, by sequence number; dropped (run) on confirmation or
    /// when the link goes down.
    deletes: Mutex<HashMap<u32, OnDone>>,
    next_delete: AtomicU32,
    up: AtomicBool,
    /// A token state could not be queued: resynchronise by reconnecting.
    overflowed: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Remote {
    /// Whether tasks can be handed over now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Starts thread "file-link". Every later change of `tokens` is forwarded over the link.
    pub fn spawn(
        addr: SocketAddr,
        secret: String,
        tokens: Arc<Mutex<TokenRegistry>>,
        notice: Arc<dyn ReadyNotice>,
    ) -> io::Result<Arc<Remote>> {
        let (tx, rx) = crossbeam_channel::bounded(LINK_QUEUE);
        let remote = Arc::new(Remote {
            addr,
            secret,
            tokens: Arc::clone(&tokens),
            notice,
            tx,
            deletes: Mutex::new(HashMap::new()),
            next_delete: AtomicU32::new(1),
            up: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&remote);
        tokens.lock().set_observer(Box::new(move |s| {
            let Some(r) = weak.upgrade() else {
                return;
            };
            // A token state must not be lost: if the queue is full the link starts over
            // (reconnect, then every state again).
            if r.is_up() && r.tx.try_send(tokens_frame(&s)).is_err() {
                r.overflowed.store(true, Ordering::Release);
            }
        }));
        let r = Arc::clone(&remote);
        let t = std::thread::Builder::new()
            .name("file-link".into())
            .spawn(move || r.run(&rx))?;
        *remote.thread.lock() = Some(t);
        Ok(remote)
    }

    /// B-FILE-14 over the link; `done` runs when the file role confirms (or the link drops).
    pub fn delete(&self, task_id: &[u8], from: u32, to: u32, done: OnDone) -> bool {
        if !self.is_up() {
            return false;
        }
        let seq = self.next_delete.fetch_add(1, Ordering::Relaxed);
        let d = LinkDelete {
            task_id,
            from,
            to,
            seq,
        };
        self.deletes.lock().insert(seq, done);
        if self
            .tx
            .try_send(internal::frame(internal::DELETE, Some(&d)))
            .is_err()
        {
            self.deletes.lock().remove(&seq);
            return false;
        }
        true
    }

    /// Stops the link threads.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.tx.try_send(Vec::new()); // wakes the forwarding loop
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    fn run(self: &Arc<Self>, rx: &Receiver<Vec<u8>>) {
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.session(rx) {
                log::warn!(target: "file", "link to file server {}: {e}", self.addr);
            }
            self.up.store(false, Ordering::Release);
            let until = Instant::now() + RETRY;
            while Instant::now() < until && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// One connection, from connect to the first error (or stop).
    fn session(self: &Arc<Self>, rx: &Receiver<Vec<u8>>) -> io::Result<()> {
        let addr = self.addr;
        let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let hello = LinkHello {
            secret: self.secret.as_bytes(),
        };
        s.write_all(&internal::frame(internal::HELLO, Some(&hello)))?;
        let welcome = read_frame(&mut s)?;
        if frame::header(&welcome).map(|h| (h.module, h.command))
            != Some((LINK_MODULE, internal::WELCOME))
        {
            return Err(io::Error::other("no welcome (wrong ClusterSecret?)"));
        }
        // A consistent cut: under the registry lock, drop queued (older) states, go up, and
        // take every current state; later changes queue behind these.
        let snapshot: Vec<Vec<u8>> = {
            let reg = self.tokens.lock();
            while rx.try_recv().is_ok() {}
            self.overflowed.store(false, Ordering::Release);
            self.up.store(true, Ordering::Release);
            reg.states(Instant::now())
                .iter()
                .map(tokens_frame)
                .collect()
        };
        log::info!(target: "file", "linked to file server {addr}");
        for f in &snapshot {
            s.write_all(f)?;
        }
        s.set_read_timeout(None)?;
        let reader = s.try_clone()?;
        let me = Arc::clone(self);
        let rx_thread = std::thread::Builder::new()
            .name("file-link-rx".into())
            .spawn(move || me.read_notices(reader))?;
        let result = self.forward(&mut s, rx, &rx_thread);
        self.up.store(false, Ordering::Release);
        // Unconfirmed deletions will not be confirmed on this link: release their waiters.
        self.deletes.lock().clear();
        let _ = s.shutdown(Shutdown::Both);
        let _ = rx_thread.join();
        result
    }

    fn forward(
        &self,
        s: &mut TcpStream,
        rx: &Receiver<Vec<u8>>,
        reader: &JoinHandle<()>,
    ) -> io::Result<()> {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if reader.is_finished() {
                return Err(io::Error::other("file server closed the link"));
            }
            if self.overflowed.swap(false, Ordering::AcqRel) {
                return Err(io::Error::other(
                    "link queue full: reconnecting to resend tokens",
                ));
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(f) if f.is_empty() => {}
                Ok(f) => s.write_all(&f)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head)?;
    let h = frame::header(&head).ok_or_else(|| io::Error::other("short link header"))?;
    if (h.length as usize) < HEADER_LEN || h.length > MAX_LINK_PDU {
        return Err(io::Error::other(format!(
            "bad link frame length {}",
            h.length
        )));
    }
    let mut f = head.to_vec();
    f.resize(h.length as usize, 0);
    s.read_exact(f.get_mut(HEADER_LEN..).unwrap_or_default())?;
    Ok(f)
}

impl Remote {
    /// Reads 6 Ready and 7 Deleted until the link closes.
    fn read_notices(&self, mut s: TcpStream) {
        while let Ok(f) = read_frame(&mut s) {
            let Some(h) = frame::header(&f) else {
                return;
            };
            match (h.module, h.command) {
                (LINK_MODULE, internal::READY) => {
                    let task = internal::decode::<LinkTask>(&f).ok();
                    match task.as_ref().and_then(task_of) {
                        Some(t) => self.notice.upload_complete(&t),
                        None => {
                            log::warn!(target: "file", "malformed notice from the file server");
                            return;
                        }
                    }
                }
                (LINK_MODULE, internal::DELETED) => {
                    if let Ok(d) = internal::decode::<LinkDeleted>(&f) {
                        let done = self.deletes.lock().remove(&d.seq);
                        drop(done); // runs the waiter
                    }
                }
                _ => {}
            }
        }
    }
}
