//! A device's root qdisc: what it is, replacing it with one of qsock's,
//! changing its options, deleting it.

use netlink_packet_core::{Nla, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption, TcStats2, TcXstats};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::Link;
use super::{handle_to_string, Context, Netlink, QSOCK_MAJOR};
use crate::error::Result;

/// The root qdisc of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootQdisc {
    /// Its kind as the kernel names it (`htb`, `noqueue`, `fq_codel`, ...).
    pub(crate) kind: String,
    /// Its handle; major 0 for the kernel's defaults, which nobody installed.
    pub(crate) handle: TcHandle,
    /// The value of its `TCA_OPTIONS` (nested attributes for most kinds),
    /// for kinds `netlink-packet-route` does not model; empty otherwise.
    pub(crate) options: Vec<u8>,
    /// Its kind's own statistics (`TCA_STATS_APP`, else `TCA_XSTATS`).
    pub(crate) xstats: Option<Vec<u8>>,
}

impl RootQdisc {
    /// Did the kernel put it there by itself (noqueue, pfifo_fast, mq, the
    /// default fq_codel ...)? Those have handle 0; anything installed on
    /// purpose has a non-zero one.
    pub(crate) fn is_kernel_default(&self) -> bool {
        self.handle.major == 0
    }

    /// Is it a qdisc of `kind` with qsock's handle `7173:`? Whether qsock
    /// installed it is for `backend::is_ours` to say.
    pub(crate) fn is_qsock(&self, kind: &str) -> bool {
        self.kind == kind && self.handle.major == QSOCK_MAJOR
    }

    /// `kind handle`, as `tc qdisc show` starts its line (`htb 7173:`).
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.kind, handle_to_string(self.handle))
    }
}

/// The device's root qdisc (`tc qdisc show dev DEV root`); `None` only for
/// devices without one at all, which the kernel does not create.
pub(crate) fn root(nl: &Netlink, link: &Link) -> Result<Option<RootQdisc>> {
    let ctx = Context {
        what: "tc qdisc show",
        device: &link.name,
    };
    let mut request = TcMessage::with_index(link_index(link));
    request.header.parent = TcHandle::ROOT;
    let replies = nl.request(
        RouteNetlinkMessage::GetQueueDiscipline(request),
        NLM_F_DUMP,
        ctx,
    )?;
    // Older kernels ignore the index in a dump: filter here as well.
    Ok(replies.into_iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewQueueDiscipline(msg)
            if msg.header.index == link_index(link) && msg.header.parent == TcHandle::ROOT =>
        {
            let kind = msg.attributes.iter().find_map(|a| match a {
                TcAttribute::Kind(kind) => Some(kind.clone()),
                _ => None,
            })?;
            Some(RootQdisc {
                kind,
                handle: msg.header.handle,
                options: opaque_options(&msg.attributes),
                xstats: xstats(&msg.attributes),
            })
        }
        _ => None,
    }))
}

/// The value of `TCA_OPTIONS` for a kind `netlink-packet-route` does not
/// model, which it keeps as one opaque attribute; empty when there is none.
pub(crate) fn opaque_options(attributes: &[TcAttribute]) -> Vec<u8> {
    attributes
        .iter()
        .find_map(|attribute| match attribute {
            TcAttribute::Options(options) => options.iter().find_map(|option| match option {
                TcOption::Other(nla) => {
                    let mut value = vec![0; nla.value_len()];
                    nla.emit_value(&mut value);
                    Some(value)
                }
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_default()
}

/// The kind's own statistics: `TCA_STATS_APP` inside `TCA_STATS2`, else the
/// legacy `TCA_XSTATS` copy of the same bytes.
pub(crate) fn xstats(attributes: &[TcAttribute]) -> Option<Vec<u8>> {
    let mut legacy = None;
    for attribute in attributes {
        match attribute {
            TcAttribute::Stats2(stats) => {
                for stat in stats {
                    if let TcStats2::App(TcXstats::Other(bytes)) = stat {
                        return Some(bytes.clone());
                    }
                }
            }
            TcAttribute::Xstats(TcXstats::Other(bytes)) => legacy = Some(bytes.clone()),
            _ => {}
        }
    }
    legacy
}

/// A qdisc or class message of `kind` with `options` (a `TCA_OPTIONS`
/// attribute) between `parent` and `handle`.
pub(crate) fn kind_message(
    link: &Link,
    parent: TcHandle,
    handle: TcHandle,
    kind: &str,
    options: TcAttribute,
) -> TcMessage {
    let mut msg = TcMessage::with_index(link_index(link));
    msg.header.parent = parent;
    msg.header.handle = handle;
    msg.attributes.push(TcAttribute::Kind(kind.to_owned()));
    msg.attributes.push(options);
    msg
}

/// Sends qsock's root qdisc of `kind` with `options` as `tc qdisc VERB root
/// handle 7173: KIND ...` would, with the request's `flags`.
fn send_root(
    nl: &Netlink,
    link: &Link,
    kind: &str,
    options: TcAttribute,
    verb: &str,
    flags: u16,
) -> Result<()> {
    let what = format!("tc qdisc {verb} root handle 7173: {kind}");
    let ctx = Context {
        what: &what,
        device: &link.name,
    };
    let handle = TcHandle {
        major: QSOCK_MAJOR,
        minor: 0,
    };
    let msg = kind_message(link, TcHandle::ROOT, handle, kind, options);
    nl.request(RouteNetlinkMessage::NewQueueDiscipline(msg), flags, ctx)?;
    Ok(())
}

/// Makes a qdisc of `kind` with `options` (a `TCA_OPTIONS` attribute) the
/// root qdisc under qsock's handle (`tc qdisc replace dev DEV root handle
/// 7173: KIND ...`). The caller checks that nothing installed on purpose is there.
pub(crate) fn replace_root(
    nl: &Netlink,
    link: &Link,
    kind: &str,
    options: TcAttribute,
) -> Result<()> {
    let flags = NLM_F_CREATE | NLM_F_REPLACE;
    send_root(nl, link, kind, options, "replace", flags)
}

/// Changes the options of qsock's root qdisc of `kind` in place, keeping its
/// classes (`tc qdisc change dev DEV root handle 7173: KIND ...`).
pub(crate) fn change_root(
    nl: &Netlink,
    link: &Link,
    kind: &str,
    options: TcAttribute,
) -> Result<()> {
    send_root(nl, link, kind, options, "change", 0)
}

/// Deletes the root qdisc and so every class under it (`tc qdisc del dev DEV
/// root`); the kernel puts its default back.
pub(crate) fn delete_root(nl: &Netlink, link: &Link) -> Result<()> {
    let ctx = Context {
        what: "tc qdisc del root",
        device: &link.name,
    };
    let mut msg = TcMessage::with_index(link_index(link));
    msg.header.parent = TcHandle::ROOT;
    nl.request(RouteNetlinkMessage::DelQueueDiscipline(msg), 0, ctx)?;
    Ok(())
}

/// tcmsg's ifindex is a signed int; interface indexes are positive and far
/// below `i32::MAX`.
pub(crate) fn link_index(link: &Link) -> i32 {
    i32::try_from(link.index).unwrap_or(i32::MAX)
}
