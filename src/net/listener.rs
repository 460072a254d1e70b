//! Listening sockets: one per worker and port, bound with SO_REUSEPORT so the kernel spreads
//! accepted connections over the workers without an acceptor thread.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a non-blocking listener with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Binds `workers` listeners on `addr`. With port 0 the first bind picks the port and the others
/// join it, so all workers share one ephemeral port.
pub fn bind_group(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(SocketAddr, Vec<mio::net::TcpListener>)> {
    let first = bind_reuseport(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind_reuseport(bound)?);
    }
    Ok((bound, all))
}
