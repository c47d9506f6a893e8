//! rtnetlink traffic-control messages as bytes. The fuzzer needs messages
//! no typed builder would produce (bad lengths, unknown attribute types,
//! options without NLA_F_NESTED), so every request here is laid out by hand:
//! nlmsghdr, tcmsg, then attributes.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use libc::TCA_STATS2;
pub use libc::{RTM_DELTCLASS, RTM_GETQDISC, RTM_GETTCLASS, RTM_NEWQDISC, RTM_NEWTCLASS};
pub use libc::{TCA_KIND, TCA_OPTIONS};
use netlink_packet_core::NLM_F_DUMP;
pub use netlink_packet_core::{NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR};
/// `NLMSGERR_ATTR_MSG`: the extack text in an error's attributes.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `TCA_STATS_BASIC` and `TCA_STATS_QUEUE`, nested in `TCA_STATS2`.
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;

/// The qdisc's and a class's DWCS options (uapi sch_dwcs.h).
pub use qsock::sch_dwcs::{
    TCA_DWCS_CLASS_FLAGS, TCA_DWCS_CLASS_OLD, TCA_DWCS_CLASS_OLN, TCA_DWCS_CLASS_PERIOD,
    TCA_DWCS_LIMIT, TCA_DWCS_RATE, TCA_DWCS_RESOLUTION, TC_DWCS_CLASS_F_APERIODIC,
    TC_DWCS_CLASS_F_WORK_CONSERVING,
};

/// Appends one attribute (header, payload, padding to 4 bytes).
pub fn put_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = (4 + payload.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// A traffic-control request: `kind` with `flags`, on `ifindex`, for
/// `handle` under `parent`, with `attrs` (already-encoded attributes).
pub fn tc_message(
    kind: u16,
    flags: u16,
    ifindex: i32,
    handle: u32,
    parent: u32,
    attrs: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(36 + attrs.len());
    let len = (16 + 20 + attrs.len()) as u32;
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by send
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.push(libc::AF_UNSPEC as u8);
    m.extend_from_slice(&[0, 0, 0]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(attrs);
    m
}

/// TCA_KIND "dwcs" followed by TCA_OPTIONS (nested) holding `opts`.
pub fn dwcs_attrs(opts: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    put_attr(&mut a, TCA_KIND, b"dwcs\0");
    put_attr(&mut a, TCA_OPTIONS | NLA_F_NESTED, opts);
    a
}

/// Iterates the attributes in `buf` as (type without flags, payload).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, payload))
    })
}

/// The netlink messages in one received datagram: kind, sequence number and
/// the whole message (header included); stops at a malformed length.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let message = &buf[..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, seq, message))
    })
}

/// One NETLINK_ROUTE socket in the caller's network namespace.
#[derive(Debug)]
pub struct Nl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Counters of a qdisc: its TCA_STATS2 basic and queue parts.
#[derive(Debug, Default, Clone, Copy)]
pub struct QdiscStats {
    pub packets: u64,
    pub qlen: u32,
    pub drops: u32,
}

impl Nl {
    /// socket(AF_NETLINK, NETLINK_ROUTE), bound, with a receive timeout so
    /// that an unanswered request is an error rather than a hang.
    pub fn open() -> io::Result<Nl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_rx_buf_sz(1 << 20)?;
        // The kernel's explanation of a refusal (extack), after a capped echo.
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        crate::sys::set_recv_timeout(&sock, Duration::from_secs(10))?;
        Ok(Nl {
            sock,
            seq: 0,
            buf: vec![0; 1 << 16],
        })
    }

    fn send(&mut self, msg: &mut [u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        msg[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        self.sock.send(msg, 0)?;
        Ok(self.seq)
    }

    /// Sends `msg` (with NLM_F_ACK) and returns the kernel's answer: 0 or
    /// a positive errno. An unanswered request is an `Err`.
    pub fn request(&mut self, msg: &mut [u8]) -> io::Result<i32> {
        self.request_explained(msg).map(|(errno, _)| errno)
    }

    /// Like `request`, with the kernel's extack message when it gave one.
    pub fn request_explained(&mut self, msg: &mut [u8]) -> io::Result<(i32, Option<String>)> {
        let seq = self.send(msg)?;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            for (kind, mseq, b) in messages(&self.buf[..n]) {
                let len = b.len();
                if kind == NLMSG_ERROR && mseq == seq && len >= 20 {
                    let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                    // With capped acks the echoed request is its header only
                    // (16 bytes); the extack attributes follow it.
                    let message = b
                        .get(36..len)
                        .and_then(|tlvs| attrs(tlvs).find(|(t, _)| *t == NLMSGERR_ATTR_MSG))
                        .map(|(_, text)| {
                            String::from_utf8_lossy(text)
                                .trim_end_matches('\0')
                                .to_owned()
                        });
                    return Ok((-err, message));
                }
            }
        }
    }

    /// Like `request`, but an errno is an `Err` naming `what`.
    pub fn must(&mut self, what: &str, msg: &mut [u8]) -> io::Result<()> {
        match self.request(msg)? {
            0 => Ok(()),
            e => Err(io::Error::new(
                io::Error::from_raw_os_error(e).kind(),
                format!("{what}: {}", io::Error::from_raw_os_error(e)),
            )),
        }
    }

    /// Dumps with `msg` (NLM_F_DUMP is added) and calls `f` on the body
    /// (tcmsg and attributes) of each answer.
    pub fn dump(&mut self, msg: &mut [u8], mut f: impl FnMut(&[u8])) -> io::Result<()> {
        msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        let seq = self.send(msg)?;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            for (kind, mseq, b) in messages(&self.buf[..n]) {
                let len = b.len();
                if mseq == seq {
                    match kind {
                        NLMSG_DONE => return Ok(()),
                        NLMSG_ERROR => {
                            let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                            return Err(io::Error::from_raw_os_error(-err));
                        }
                        _ => f(&b[16..len]),
                    }
                }
            }
        }
    }

    /// Number of classes of qdisc `major:` on `ifindex` (`tc class show`).
    pub fn count_classes(&mut self, ifindex: i32, major: u16) -> io::Result<usize> {
        let mut msg = tc_message(RTM_GETTCLASS, 0, ifindex, 0, 0, &[]);
        let mut count = 0;
        self.dump(&mut msg, |body| {
            if body.len() >= 20 {
                let handle = u32::from_ne_bytes([body[8], body[9], body[10], body[11]]);
                if (handle >> 16) as u16 == major && handle & 0xffff != 0 {
                    count += 1;
                }
            }
        })?;
        Ok(count)
    }

    /// The root qdisc's counters (`tc -s qdisc show dev X`, root only).
    pub fn root_stats(&mut self, ifindex: i32) -> io::Result<QdiscStats> {
        let mut msg = tc_message(RTM_GETQDISC, 0, ifindex, 0, 0, &[]);
        let mut st = None;
        self.dump(&mut msg, |body| {
            if body.len() < 20 || st.is_some() {
                return;
            }
            let ifi = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
            let parent = u32::from_ne_bytes([body[12], body[13], body[14], body[15]]);
            if ifi != ifindex || parent != TC_H_ROOT {
                return;
            }
            let mut s = QdiscStats::default();
            for (k, p) in attrs(&body[20..]) {
                if k != TCA_STATS2 {
                    continue;
                }
                for (k2, p2) in attrs(p) {
                    if k2 == TCA_STATS_BASIC && p2.len() >= 12 {
                        s.packets = u32::from_ne_bytes([p2[8], p2[9], p2[10], p2[11]]).into();
                    } else if k2 == TCA_STATS_QUEUE && p2.len() >= 20 {
                        s.qlen = u32::from_ne_bytes([p2[0], p2[1], p2[2], p2[3]]);
                        s.drops = u32::from_ne_bytes([p2[8], p2[9], p2[10], p2[11]]);
                    }
                }
            }
            st = Some(s);
        })?;
        st.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no root qdisc"))
    }
}

/// Qdisc change options: rate (bytes/s), limit (packets), resolution (ns).
pub fn qdisc_opts(rate: Option<u64>, limit: Option<u32>, resolution: Option<u64>) -> Vec<u8> {
    let mut o = Vec::new();
    if let Some(r) = rate {
        put_attr(&mut o, TCA_DWCS_RATE, &r.to_ne_bytes());
    }
    if let Some(l) = limit {
        put_attr(&mut o, TCA_DWCS_LIMIT, &l.to_ne_bytes());
    }
    if let Some(r) = resolution {
        put_attr(&mut o, TCA_DWCS_RESOLUTION, &r.to_ne_bytes());
    }
    o
}

/// Options of an aperiodic, work-conserving class (pure EDF, no pacing).
pub fn aperiodic_class_opts() -> Vec<u8> {
    let mut o = Vec::new();
    put_attr(
        &mut o,
        TCA_DWCS_CLASS_FLAGS,
        &(TC_DWCS_CLASS_F_APERIODIC | TC_DWCS_CLASS_F_WORK_CONSERVING).to_ne_bytes(),
    );
    o
}

/// Options of a work-conserving class with period `period_ns`: its
/// deadlines advance by one period per packet, so a flood keeps them ahead.
pub fn work_conserving_class_opts(period_ns: u64) -> Vec<u8> {
    let mut o = Vec::new();
    put_attr(&mut o, TCA_DWCS_CLASS_PERIOD, &period_ns.to_ne_bytes());
    put_attr(
        &mut o,
        TCA_DWCS_CLASS_FLAGS,
        &TC_DWCS_CLASS_F_WORK_CONSERVING.to_ne_bytes(),
    );
    o
}

/// `tc qdisc change dev X root handle MAJOR: dwcs OPTS`.
pub fn qdisc_change(ifindex: i32, major: u16, opts: &[u8]) -> Vec<u8> {
    tc_message(
        RTM_NEWQDISC,
        NLM_F_REQUEST | NLM_F_ACK,
        ifindex,
        u32::from(major) << 16,
        TC_H_ROOT,
        &dwcs_attrs(opts),
    )
}

/// `tc class add dev X parent MAJOR: classid CLASSID dwcs OPTS`.
pub fn class_add(ifindex: i32, classid: u32, opts: &[u8]) -> Vec<u8> {
    class_add_under(ifindex, classid, classid & 0xffff_0000, opts)
}

/// `tc class add dev X parent PARENT classid CLASSID dwcs OPTS`.
pub fn class_add_under(ifindex: i32, classid: u32, parent: u32, opts: &[u8]) -> Vec<u8> {
    tc_message(
        RTM_NEWTCLASS,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ifindex,
        classid,
        parent,
        &dwcs_attrs(opts),
    )
}

/// `tc class del dev X classid CLASSID`.
pub fn class_del(ifindex: i32, classid: u32) -> Vec<u8> {
    tc_message(
        RTM_DELTCLASS,
        NLM_F_REQUEST | NLM_F_ACK,
        ifindex,
        classid,
        classid & 0xffff_0000,
        &[],
    )
}
