//! The file role alone (`ttserver file -c conf`), linked to by `ttserver run` with `FileServer`
//! and `ClusterSecret`: transfers work as with the built-in role (B-FILE), the receiver hears
//! about finished uploads over the link (B-FILE-9), and tokens come over the link (B-TOK-2).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use ttserver::client::Client;
use ttserver::proto::internal::{self, LinkHello};
use ttserver::proto::Pdu;

const SECRET: &str = "a-test-cluster-secret-0123456789";

/// `ttserver file` on a DataDir; killed on drop.
struct FileAlone {
    child: Child,
    addr: SocketAddr,
}

impl Drop for FileAlone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_file_role(dir: &std::path::Path) -> FileAlone {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("file.conf");
    std::fs::write(
        &conf,
        format!(
            "FileListen=127.0.0.1:0\nClusterSecret={SECRET}\nDataDir={}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["file", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    loop {
        let line = lines
            .next()
            .expect("file role exited before ready")
            .unwrap();
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["listening", "file", a] => addr = Some(a.parse().unwrap()),
            ["ready"] => break,
            _ => {}
        }
    }
    std::thread::spawn(move || for _ in lines {});
    FileAlone {
        child,
        addr: addr.expect("no listening file line"),
    }
}

#[test]
fn run_links_to_a_file_role_alone() {
    let dir = std::env::temp_dir().join(format!("ttserver-file-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fr = start_file_role(&dir);
    let extra = format!(
        "FileServer={}\nClusterSecret={SECRET}\nDataDir={}",
        fr.addr,
        dir.join("data").display()
    );
    let (srv, _) = Server::start_with(&extra, &[("alice", "pa"), ("bob", "pb")]);
    let (mut a, a_id, a_tok) = srv.login_token("alice", "pa", PC);
    let (mut b, b_id, b_tok) = srv.login_token("bob", "pb", PC);

    // The link comes up in the background; until then 6/10 answers result 8 (B-FILE-3).
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut task = None;
    wait_until("link up", Duration::from_secs(10), || {
        let t = a
            .request_file(a_id, b_id, b"report.pdf", data.len() as u32, 2)
            .unwrap();
        let up = t.result == 0;
        task = Some(t);
        up
    });
    let task = task.unwrap();
    assert_eq!(
        task.addr().unwrap().port(),
        fr.addr.port(),
        "clients go to the file role"
    );

    let mut up = Client::connect(task.addr().unwrap()).unwrap();
    // Tokens arrive over the link: another user's token is refused (B-TOK-2).
    let mut wrong = Client::connect(fr.addr).unwrap();
    assert_eq!(wrong.file_login(a_id, &b_tok, &task.task_id, 3).unwrap(), 1);
    wrong.expect_closed().unwrap();
    assert_eq!(up.file_login(a_id, &a_tok, &task.task_id, 3).unwrap(), 0);
    up.serve_upload(&task.task_id, a_id, &data).unwrap();

    // B-FILE-9 over the link: the receiver's session hears "offline ready".
    let ready = loop {
        let f = recv_mc(&mut b, 6, 12);
        if let Pdu::FileNotify(n) = f.pdu().unwrap() {
            if n.offline_ready == 1 {
                break n.task_id.to_vec();
            }
        }
    };
    assert_eq!(ready, task.task_id.as_bytes());

    let mut down = Client::connect(fr.addr).unwrap();
    assert_eq!(down.file_login(b_id, &b_tok, &task.task_id, 4).unwrap(), 0);
    let mut got = Vec::new();
    down.download(&task.task_id, b_id, 100_000, &mut got)
        .unwrap();
    assert!(got == data, "bytes differ");

    // The shared database: the msg server lists the file the file role stored (B-FILE-12).
    b.send(&Pdu::OfflineFileListRequest, 9).unwrap();
    let list = recv_mc(&mut b, 6, 17);
    match list.pdu().unwrap() {
        Pdu::OfflineFileListResponse(l) => {
            assert_eq!(l.files.len(), 1);
            assert_eq!(l.files[0].task_id, task.task_id.as_bytes());
        }
        other => panic!("{other:?}"),
    }
    // 6/19 goes over the link; a 6/16 right behind it already sees it applied (B-FILE-14,
    // B-GEN-1), and the bytes are gone.
    let del = ttserver::proto::file::DeleteOfflineFile {
        from_id: ttserver::proto::Id::Num(a_id),
        to_id: ttserver::proto::Id::Num(b_id),
        task_id: task.task_id.as_bytes(),
    };
    b.send(&Pdu::DeleteOfflineFile(del), 10).unwrap();
    b.send(&Pdu::OfflineFileListRequest, 11).unwrap();
    let list = recv_mc(&mut b, 6, 17);
    match list.pdu().unwrap() {
        Pdu::OfflineFileListResponse(l) => assert!(l.files.is_empty()),
        other => panic!("{other:?}"),
    }
    let stored = dir
        .join("data/offline")
        .join(b_id.to_string())
        .join(&task.task_id);
    assert!(!stored.exists(), "the file went with its record");

    // Online through the file role alone: the receiver's pull reaches the sender and the data
    // comes back unchanged (B-FILE-5, B-FILE-6).
    use ttserver::proto::file::{PullDataRequest, PullDataResponse};
    use ttserver::proto::Id;
    let t = a.request_file(a_id, b_id, b"live.txt", 5, 1).unwrap();
    assert_eq!((t.result, t.trans_mode), (0, 1));
    let mut snd = Client::connect(fr.addr).unwrap();
    assert_eq!(snd.file_login(a_id, &a_tok, &t.task_id, 1).unwrap(), 0);
    let mut rcv = Client::connect(fr.addr).unwrap();
    assert_eq!(rcv.file_login(b_id, &b_tok, &t.task_id, 2).unwrap(), 0);
    recv_mc(&mut rcv, 6, 3);
    let pull = PullDataRequest {
        task_id: t.task_id.as_bytes(),
        user_id: Id::Num(b_id),
        mode: 1,
        offset: 0,
        size: 5,
    };
    rcv.send(&Pdu::PullDataRequest(pull), 3).unwrap();
    recv_mc(&mut snd, 6, 4);
    let data = PullDataResponse {
        result: 0,
        task_id: t.task_id.as_bytes(),
        user_id: Id::Num(a_id),
        offset: 0,
        data: b"hello",
    };
    snd.send(&Pdu::PullDataResponse(data), 4).unwrap();
    match recv_mc(&mut rcv, 6, 5).pdu().unwrap() {
        Pdu::PullDataResponse(r) => assert_eq!(r.data, b"hello"),
        other => panic!("{other:?}"),
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_link_with_the_wrong_secret_is_closed() {
    let dir = std::env::temp_dir().join(format!("ttserver-file-alone-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fr = start_file_role(&dir);
    let mut c = Client::connect(fr.addr).unwrap();
    let hello = LinkHello {
        secret: b"not-the-secret-at-all-0123456789",
    };
    c.send_raw(&internal::frame(internal::HELLO, Some(&hello)))
        .unwrap();
    c.expect_closed().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
