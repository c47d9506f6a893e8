//! One connected client: who it is (`SO_PEERCRED`), the streams it
//! attached on this connection, and the replies it has not read yet.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::AsFd;

use nix::sys::socket::MsgFlags;
use qsock::daemon::classes::{Reservation, StreamClass};
use qsock::daemon::protocol::{self, StreamId};
use qsock::StreamParams;

/// Replies a client may leave unread before it is dropped: it either reads
/// them or holds memory of the daemon's that other clients need.
pub const OUTBOX_LIMIT: usize = 16;

/// One stream a client attached.
#[derive(Debug)]
pub struct Stream {
    /// The index of its device.
    pub device: usize,
    /// Its class; `None` for a stream left in best effort.
    pub class: Option<StreamClass>,
    /// What it reserves.
    pub reservation: Reservation,
    /// Its attributes.
    pub params: StreamParams,
    /// Whether its class's record names the client yet (written after the
    /// attach's reply).
    pub recorded: bool,
}

/// A connection and what the daemon keeps for it.
#[derive(Debug)]
pub struct Client {
    /// The connection (non-blocking).
    pub socket: socket2::Socket,
    /// The peer's process id.
    pub pid: u32,
    /// The peer's user id.
    pub uid: u32,
    /// The peer's group id.
    pub gid: u32,
    /// The peer's user name and groups, looked up at its first attach.
    pub account: Option<(String, Vec<u32>)>,
    /// Whether `Hello` was exchanged.
    pub greeted: bool,
    /// The number the next stream gets.
    pub next_stream: StreamId,
    /// The streams attached on this connection.
    pub streams: BTreeMap<StreamId, Stream>,
    /// Replies waiting for the kernel worker; no request is read meanwhile.
    pub waiting: usize,
    outbox: VecDeque<Vec<u8>>,
}

/// The client left more than [`OUTBOX_LIMIT`] replies unread.
#[derive(Debug)]
pub struct OutboxFull;

impl Client {
    /// A client on `socket` with the peer's credentials.
    pub fn new(socket: socket2::Socket, pid: u32, uid: u32, gid: u32) -> Client {
        Client {
            socket,
            pid,
            uid,
            gid,
            account: None,
            greeted: false,
            next_stream: 1,
            streams: BTreeMap::new(),
            waiting: 0,
            outbox: VecDeque::new(),
        }
    }

    /// The peer's user name and supplementary groups (NSS lookups, made once).
    pub fn account(&mut self) -> &(String, Vec<u32>) {
        let (uid, gid) = (self.uid, self.gid);
        self.account.get_or_insert_with(|| {
            let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten();
            let name = user
                .as_ref()
                .map_or_else(|| format!("uid {uid}"), |user| user.name.clone());
            let mut groups = vec![gid];
            if let Some(user) = &user {
                if let Ok(cname) = std::ffi::CString::new(user.name.clone()) {
                    if let Ok(list) = nix::unistd::getgrouplist(&cname, user.gid) {
                        groups.extend(list.into_iter().map(|gid| gid.as_raw()));
                    }
                }
            }
            (name, groups)
        })
    }

    /// Sends `bytes` now if nothing waits before it and the socket takes it,
    /// else queues it; whether the outbox now needs the socket's writability.
    pub fn queue(&mut self, bytes: Vec<u8>) -> Result<bool, OutboxFull> {
        if self.outbox.is_empty() {
            match protocol::send_frame(self.socket.as_fd(), &bytes, None, MsgFlags::MSG_DONTWAIT) {
                Ok(()) => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // A peer that went away is found by its hangup; the reply is lost with it.
                Err(_) => return Ok(false),
            }
        }
        if self.outbox.len() >= OUTBOX_LIMIT {
            return Err(OutboxFull);
        }
        self.outbox.push_back(bytes);
        Ok(true)
    }

    /// Whether every reply was sent.
    pub fn outbox_is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// Sends what the outbox holds while the socket takes it; whether it is
    /// empty now.
    pub fn flush(&mut self) -> bool {
        while let Some(bytes) = self.outbox.front() {
            match protocol::send_frame(self.socket.as_fd(), bytes, None, MsgFlags::MSG_DONTWAIT) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    self.outbox.clear();
                    return true;
                }
            }
            self.outbox.pop_front();
        }
        true
    }
}
