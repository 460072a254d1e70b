//! File transfers from the client side (protocol.md §9.6): 6/10 on the msg connection, then
//! 6/1 .. 6/5 on a file-port connection. Used by the integration tests and the benchmarks.

use std::io::Write;
use std::net::SocketAddr;

use super::{Client, ClientError};
use crate::proto::file::{FileLogin, FileRequest, FileState, PullDataRequest, PullDataResponse};
use crate::proto::{Id, Pdu};

/// The 6/11 answer (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTask {
    pub result: u32,
    pub task_id: String,
    /// (ip, port) of each file address.
    pub addrs: Vec<(String, u16)>,
    /// The mode actually used: 1 online, 2 offline, 0 on failure.
    pub trans_mode: u32,
}

impl FileTask {
    /// The first file address as a socket address.
    pub fn addr(&self) -> Option<SocketAddr> {
        let (ip, port) = self.addrs.first()?;
        format!("{ip}:{port}").parse().ok()
    }
}

/// An offline download's outcome.
#[derive(Debug)]
pub struct Downloaded {
    pub bytes: u64,
    /// The `user_id` the 6/5s carried (the sender).
    pub sender: u32,
}

impl Client {
    /// 6/10 → 6/11 on a logged-in msg connection.
    pub fn request_file(
        &mut self,
        from: u32,
        to: u32,
        name: &[u8],
        size: u32,
        trans_mode: u32,
    ) -> Result<FileTask, ClientError> {
        let req = Pdu::FileRequest(FileRequest {
            from_id: Id::Num(from),
            to_id: Id::Num(to),
            file_name: name,
            file_size: size,
            trans_mode,
        });
        let reserved = self.next_reserved();
        self.send(&req, reserved)?;
        let f = self.recv_until(6, 11)?;
        match f.pdu()? {
            Pdu::FileResponse(r) => Ok(FileTask {
                result: r.result,
                task_id: String::from_utf8_lossy(r.task_id).into_owned(),
                addrs: r
                    .addrs
                    .iter()
                    .map(|a| (String::from_utf8_lossy(a.ip).into_owned(), a.port))
                    .collect(),
                trans_mode: r.trans_mode,
            }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// 6/1 → 6/2 on a file-port connection; returns the result.
    pub fn file_login(
        &mut self,
        user: u32,
        token: &str,
        task_id: &str,
        client_mode: u32,
    ) -> Result<u32, ClientError> {
        let req = Pdu::FileLogin(FileLogin {
            user_id: Id::Num(user),
            token: token.as_bytes(),
            task_id: task_id.as_bytes(),
            client_mode,
        });
        let reserved = self.next_reserved();
        self.send(&req, reserved)?;
        let f = self.recv_until(6, 2)?;
        match f.pdu()? {
            Pdu::FileLoginResponse(r) => Ok(r.result),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Offline upload after a successful 6/1 mode 3: answers the server's 6/4 pulls from
    /// `data` until the server says done (6/3 state 3).
    pub fn serve_upload(
        &mut self,
        task_id: &str,
        sender: u32,
        data: &[u8],
    ) -> Result<(), ClientError> {
        loop {
            let f = self.recv()?;
            match f.pdu()? {
                Pdu::PullDataRequest(r) => {
                    let start = r.offset as usize;
                    let end = start.saturating_add(r.size as usize).min(data.len());
                    let chunk = data.get(start..end).unwrap_or_default();
                    let rsp = Pdu::PullDataResponse(PullDataResponse {
                        result: 0,
                        task_id: task_id.as_bytes(),
                        user_id: Id::Num(sender),
                        offset: r.offset,
                        data: chunk,
                    });
                    self.send(&rsp, f.header.reserved)?;
                }
                Pdu::FileState(s) if s.state == 3 => return Ok(()),
                Pdu::FileState(s) => {
                    return Err(ClientError::Unexpected(format!("6/3 state {}", s.state)))
                }
                Pdu::Heartbeat => {}
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Offline download after a successful 6/1 mode 4: pulls `chunk` bytes at a time into
    /// `out` until the empty 6/5 and the 6/3 done.
    pub fn download(
        &mut self,
        task_id: &str,
        receiver: u32,
        chunk: u32,
        out: &mut dyn Write,
    ) -> Result<Downloaded, ClientError> {
        let mut offset: u32 = 0;
        loop {
            let req = Pdu::PullDataRequest(PullDataRequest {
                task_id: task_id.as_bytes(),
                user_id: Id::Num(receiver),
                mode: 2,
                offset,
                size: chunk,
            });
            let reserved = self.next_reserved();
            self.send(&req, reserved)?;
            let f = self.recv_until(6, 5)?;
            let Pdu::PullDataResponse(r) = f.pdu()? else {
                return Err(ClientError::Unexpected("not a 6/5".into()));
            };
            if r.result != 0 {
                return Err(ClientError::Unexpected(format!("6/5 result {}", r.result)));
            }
            let sender = r.user_id.value().unwrap_or(0);
            if r.data.is_empty() {
                let done = self.recv_until(6, 3)?;
                return match done.pdu()? {
                    Pdu::FileState(FileState { state: 3, .. }) => Ok(Downloaded {
                        bytes: u64::from(offset),
                        sender,
                    }),
                    other => Err(ClientError::Unexpected(format!("{other:?}"))),
                };
            }
            out.write_all(r.data)?;
            let n = u32::try_from(r.data.len()).unwrap_or(u32::MAX);
            offset = offset.saturating_add(n);
        }
    }
}
