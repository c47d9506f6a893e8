//! One frame's packets on their way to a backend.

use std::os::fd::AsFd;

use socket2::{SockAddr, Socket};

use crate::flags::{DropFlag, PacketFlags};
use crate::notice;
use crate::sys;

/// The packets of one frame, sent with the same flags (the first packet may
/// start the frame), to `destination` or the connected peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    /// The datagrams, in order.
    pub(crate) packets: &'a [&'a [u8]],
    /// Where they go; `None` for the connected peer.
    pub(crate) destination: Option<&'a SockAddr>,
    /// The flags of every packet.
    pub(crate) flags: &'a PacketFlags,
}

impl Frame<'_> {
    /// Do the flags ask for anything per packet: a deadline or a drop flag
    /// other than the stream's?
    pub(crate) fn has_packet_values(&self) -> bool {
        self.flags.deadline.is_some() || self.flags.drop != DropFlag::StreamDefault
    }

    /// `sendmmsg(2)` of the packets as they are: the socket's class alone
    /// decides how they are scheduled, so a deadline or drop flag is noted
    /// once (under `notice_key`, worded `notice_text`) as ignored.
    pub(crate) fn send_without_values(
        &self,
        socket: &Socket,
        notice_key: &'static str,
        notice_text: &'static str,
    ) -> std::io::Result<usize> {
        if self.has_packet_values() {
            notice::once(notice_key, notice_text);
        }
        sys::send_datagrams(socket.as_fd(), self.packets, self.destination, 0)
    }
}
