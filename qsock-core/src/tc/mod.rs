//! Traffic control over rtnetlink: links, root qdiscs and classes of any
//! kind; each backend builds its own kind's options.
//!
//! The `rtnetlink` crate models qdisc add/replace/delete and class dumps but
//! not class add/change/delete, so requests here are whole [`TcMessage`]s
//! sent through [`rtnetlink::Handle::request`]. Every call opens its own netlink socket in
//! the calling thread's network namespace, on a current-thread tokio runtime,
//! so that it works from any thread (also one that `setns`-ed into a test
//! namespace) and holds no state between calls.

pub(crate) mod class;
pub(crate) mod filter;
pub(crate) mod link;
pub(crate) mod qdisc;

use std::io;

use futures::StreamExt;
use netlink_packet_core::{
    ErrorMessage, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::tc::TcHandle;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::AsyncSocket;

use crate::error::{Error, ErrorKind, Result};

/// qsock's own qdisc major number, `7173:` ("qs" in ASCII): a root qdisc with
/// this handle was installed by qsock.
pub(crate) const QSOCK_MAJOR: u16 = 0x7173;

/// Formats a handle the way `tc` prints it: `7173:` for a qdisc (minor 0),
/// `7173:2` for a class; both parts in hexadecimal.
pub(crate) fn handle_to_string(handle: TcHandle) -> String {
    if handle.minor == 0 {
        format!("{:x}:", handle.major)
    } else {
        format!("{:x}:{:x}", handle.major, handle.minor)
    }
}

/// The 32-bit form of a handle (major << 16 | minor), as `SO_PRIORITY` takes it.
pub(crate) fn handle_to_u32(handle: TcHandle) -> u32 {
    (u32::from(handle.major) << 16) | u32::from(handle.minor)
}

/// What a netlink request is for, to word its errors: the `tc` operation and
/// the device it acts on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The operation, as a person would write it (`tc class add 7173:2`).
    pub(crate) what: &'a str,
    /// The device name.
    pub(crate) device: &'a str,
}

/// One rtnetlink connection and the runtime that drives it.
pub(crate) struct Netlink {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

impl Netlink {
    /// Opens a `NETLINK_ROUTE` socket with extended acks, so that the kernel's
    /// own explanation of a refusal reaches the error message.
    pub(crate) fn open() -> Result<Netlink> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::os("cannot start the runtime for netlink", e))?;
        // The socket registers with the runtime's reactor, so it must be made
        // inside the runtime's context.
        let handle = {
            let _entered = runtime.enter();
            let (mut connection, handle, _) = rtnetlink::new_connection()
                .map_err(|e| Error::os("cannot open a NETLINK_ROUTE socket", e))?;
            let socket = connection.socket_mut().socket_mut();
            // Extended acks carry the kernel's extack text; capped acks keep
            // the echoed request short so the text is found right after it.
            socket
                .set_ext_ack(true)
                .and_then(|()| socket.set_cap_ack(true))
                .map_err(|e| Error::os("cannot enable netlink extended acks", e))?;
            runtime.spawn(connection);
            handle
        };
        Ok(Netlink { runtime, handle })
    }

    /// Sends `message` with `flags` (plus NLM_F_REQUEST and NLM_F_ACK) and
    /// waits for the kernel's answer; returns every non-error reply (the dump
    /// of a dump request).
    pub(crate) fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        ctx: Context<'_>,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | flags;
        if flags & NLM_F_DUMP != NLM_F_DUMP {
            request.header.flags |= NLM_F_ACK;
        }
        let mut handle = self.handle.clone();
        self.runtime.block_on(async move {
            let mut replies = handle
                .request(request)
                .map_err(|e| Error::new(ErrorKind::Os, format!("{}: {e}", ctx.what)))?;
            let mut out = Vec::new();
            while let Some(reply) = replies.next().await {
                match reply.payload {
                    NetlinkPayload::Error(err) if err.code.is_some() => {
                        return Err(netlink_error(&err, ctx));
                    }
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    /// The rtnetlink handle, for the requests the crate models itself.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A clone of the rtnetlink handle.
    pub(crate) fn handle(&self) -> rtnetlink::Handle {
        self.handle.clone()
    }
}

/// Turns a kernel refusal into the crate's error: EPERM into the standard
/// CAP_NET_ADMIN message, ENODEV into one naming the device, anything else
/// into an OS error; the kernel's extack text, when it sent one, is appended.
pub(crate) fn netlink_error(err: &ErrorMessage, ctx: Context<'_>) -> Error {
    let errno = err.raw_code().abs();
    let extack = extack_message(&err.header);
    let with_extack = |text: String| match &extack {
        Some(msg) => format!("{text} (kernel: {msg})"),
        None => text,
    };
    match errno {
        libc::EPERM | libc::EACCES => Error::needs_net_admin(ctx.what, ctx.device),
        libc::ENODEV => Error::new(
            ErrorKind::NoDevice,
            with_extack(format!(
                "{}: there is no network device {:?} (check `ip link`)",
                ctx.what, ctx.device
            )),
        ),
        _ => Error::os(
            with_extack(format!("{} on {}", ctx.what, ctx.device)),
            io::Error::from_raw_os_error(errno),
        ),
    }
}

/// The `rtnetlink` crate's error, worded with the request's context.
pub(crate) fn rtnetlink_error(err: rtnetlink::Error, ctx: Context<'_>) -> Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => netlink_error(&msg, ctx),
        other => Error::new(
            ErrorKind::Os,
            format!("{} on {}: {other}", ctx.what, ctx.device),
        ),
    }
}

/// `NLMSGERR_ATTR_MSG`: the extack text in an error's trailing attributes.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// Finds the extack text in the payload of an `NLMSG_ERROR` after its errno:
/// the echoed request (only its header when the socket has NETLINK_CAP_ACK,
/// the whole request otherwise) followed by `NLMSGERR_ATTR_*` attributes.
pub(crate) fn extack_message(payload: &[u8]) -> Option<String> {
    let echoed_len = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(|b| u32::from_ne_bytes(b) as usize)?;
    // Capped first (what Netlink::open asks for), then the full echo.
    for offset in [NLMSG_HDRLEN, (echoed_len + 3) & !3] {
        let Some(tail) = payload.get(offset..) else {
            continue;
        };
        for nla in NlasIterator::new(tail) {
            let Ok(nla) = nla else { break };
            if nla.kind() == NLMSGERR_ATTR_MSG {
                let text = nla.value();
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let text = String::from_utf8_lossy(&text[..end]).trim().to_owned();
                if !text.is_empty() {
                    return Some(text);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_print_like_tc() {
        let class = TcHandle {
            major: QSOCK_MAJOR,
            minor: 0xfffe,
        };
        assert_eq!(handle_to_string(class), "7173:fffe");
        assert_eq!(handle_to_u32(class), 0x7173_fffe);
        let qdisc = TcHandle {
            major: QSOCK_MAJOR,
            minor: 0,
        };
        assert_eq!(handle_to_string(qdisc), "7173:");
    }

    #[test]
    fn extack_text_after_capped_header() {
        // nlmsghdr of the echoed request (len 36), then NLMSGERR_ATTR_MSG.
        let mut payload = Vec::new();
        payload.extend_from_slice(&36u32.to_ne_bytes());
        payload.extend_from_slice(&[0u8; 12]);
        let text = b"Specified class not found\0";
        let len = 4 + text.len();
        payload.extend_from_slice(&(len as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        while payload.len() % 4 != 0 {
            payload.push(0);
        }
        assert_eq!(
            extack_message(&payload).as_deref(),
            Some("Specified class not found")
        );
        assert_eq!(extack_message(&payload[..16]), None);
        assert_eq!(extack_message(&[]), None);
    }
}
