//! A connection's bounded output queue: owned replies and shared pushes, written in order.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use super::Shared;

enum Chunk {
    Owned(Vec<u8>),
    Shared(Shared),
    /// Bytes of a memory-mapped file, written straight from the map (offline downloads).
    Mapped(Arc<Mmap>, Range<usize>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
            Chunk::Mapped(m, r) => m.get(r.clone()).unwrap_or_default(),
        }
    }
}

/// Output waiting for the socket. `len()` is what `OutBufCap` is checked against (B-FLOW-1).
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_off: usize,
    len: usize,
}

/// Result of a flush attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything was written.
    All,
    /// The socket would block with bytes still queued.
    Partial,
}

impl OutQueue {
    pub fn push_owned(&mut self, v: Vec<u8>) {
        if v.is_empty() {
            return;
        }
        self.len += v.len();
        self.chunks.push_back(Chunk::Owned(v));
    }

    pub fn push_shared(&mut self, s: Shared) {
        if s.is_empty() {
            return;
        }
        self.len += s.len();
        self.chunks.push_back(Chunk::Shared(s));
    }

    /// Queues `map[range]` without copying it (a range outside the map queues nothing).
    pub fn push_mapped(&mut self, map: Arc<Mmap>, range: Range<usize>) {
        let Some(n) = map.get(range.clone()).map(<[u8]>::len).filter(|&n| n > 0) else {
            return;
        };
        self.len += n;
        self.chunks.push_back(Chunk::Mapped(map, range));
    }

    /// Queued bytes not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes as much as the socket takes, up to 64 chunks per `writev`.
    pub fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        while !self.chunks.is_empty() {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.chunks.len().min(64));
            for (i, c) in self.chunks.iter().take(64).enumerate() {
                let b = c.bytes();
                let b = if i == 0 {
                    b.get(self.front_off..).unwrap_or_default()
                } else {
                    b
                };
                slices.push(IoSlice::new(b));
            }
            match w.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Partial),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// [`OutQueue::flush`] on a registered mio socket, keeping WRITABLE interest exactly while
    /// bytes are left (`want_write` tracks what is registered).
    pub fn flush_registered(
        &mut self,
        stream: &mut mio::net::TcpStream,
        registry: &mio::Registry,
        token: mio::Token,
        want_write: &mut bool,
    ) -> io::Result<Flushed> {
        let r = self.flush(stream)?;
        let want = r == Flushed::Partial;
        if want != *want_write {
            *want_write = want;
            let interest = if want {
                mio::Interest::READABLE | mio::Interest::WRITABLE
            } else {
                mio::Interest::READABLE
            };
            let _ = registry.reregister(stream, token, interest);
        }
        Ok(r)
    }

    fn consume(&mut self, mut n: usize) {
        self.len = self.len.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_off;
            if n >= left {
                n -= left;
                self.chunks.pop_front();
                self.front_off = 0;
            } else {
                self.front_off += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `budget` bytes.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.got.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_in_order_across_partial_writes() {
        let mut q = OutQueue::default();
        q.push_owned(b"hello ".to_vec());
        q.push_shared(Shared::from(&b"shared "[..]));
        let mut m = memmap2::MmapMut::map_anon(16).unwrap();
        m.copy_from_slice(b"0123world6789abc");
        q.push_mapped(Arc::new(m.make_read_only().unwrap()), 4..9);
        assert_eq!(q.len(), 18);
        let mut w = Trickle {
            got: vec![],
            cap: 4,
            budget: 10,
        };
        assert_eq!(q.flush(&mut w).unwrap(), Flushed::Partial);
        assert_eq!(q.len(), 8);
        w.budget = 100;
        assert_eq!(q.flush(&mut w).unwrap(), Flushed::All);
        assert_eq!(w.got, b"hello shared world");
        assert!(q.is_empty());
    }
}
