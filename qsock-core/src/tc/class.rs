//! Classes of a classful qdisc: list with statistics, add, change, delete.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use netlink_packet_core::{Nla, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcStats2};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::Link;
use super::qdisc::link_index;
use super::{handle_to_string, Context, Netlink, QSOCK_MAJOR};
use crate::error::{Error, ErrorKind, Result};

/// How long a stream's class may take to drain before it is deleted anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// How many free minors `add_at_free_minor` tries when other processes race
/// for them.
const CLASS_ATTEMPTS: usize = 16;

/// `TCA_STATS_RATE_EST`: `struct gnet_stats_rate_est` (u32 bps, u32 pps).
const TCA_STATS_RATE_EST: u16 = 2;
/// `TCA_STATS_RATE_EST64`: `struct gnet_stats_rate_est64` (u64 bps, u64 pps).
const TCA_STATS_RATE_EST64: u16 = 5;
/// `TCA_STATS_PKT64`: the packet count in 64 bits.
const TCA_STATS_PKT64: u16 = 8;

/// A class's counters (`tc -s class show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClassStats {
    /// Bytes sent.
    pub(crate) bytes: u64,
    /// Packets sent.
    pub(crate) packets: u64,
    /// Packets dropped.
    pub(crate) drops: u64,
    /// Times the class was over its limit.
    pub(crate) overlimits: u64,
    /// Bytes queued.
    pub(crate) backlog: u64,
    /// Packets queued.
    pub(crate) qlen: u64,
    /// The rate estimator's bytes/s and packets/s, where the class has one.
    pub(crate) rate_estimate: Option<(u64, u64)>,
}

/// One class as the kernel dumps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassInfo {
    /// Its handle.
    pub(crate) handle: TcHandle,
    /// Its parent's handle.
    pub(crate) parent: TcHandle,
    /// The qdisc kind it belongs to.
    pub(crate) kind: String,
    /// The value of `TCA_OPTIONS` for kinds `netlink-packet-route` does not
    /// model (nested attributes), to be read by the kind's own parser.
    pub(crate) options: Vec<u8>,
    /// The kind's own statistics (`TCA_STATS_APP`, else `TCA_XSTATS`).
    pub(crate) xstats: Option<Vec<u8>>,
    /// Its counters.
    pub(crate) stats: ClassStats,
}

/// Every class of the device (`tc -s -d class show dev DEV`).
pub(crate) fn list(nl: &Netlink, link: &Link) -> Result<Vec<ClassInfo>> {
    let ctx = Context {
        what: "tc class show",
        device: &link.name,
    };
    let request = TcMessage::with_index(link_index(link));
    let replies = nl.request(
        RouteNetlinkMessage::GetTrafficClass(request),
        NLM_F_DUMP,
        ctx,
    )?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewTrafficClass(msg) if msg.header.index == link_index(link) => {
                Some(class_info(&msg))
            }
            _ => None,
        })
        .collect())
}

/// One class, or `None` when it does not exist.
pub(crate) fn get(nl: &Netlink, link: &Link, handle: TcHandle) -> Result<Option<ClassInfo>> {
    Ok(list(nl, link)?.into_iter().find(|c| c.handle == handle))
}

/// The class a stream is attached to; its absence means someone removed the
/// scheduler under the stream.
pub(crate) fn get_attached(nl: &Netlink, link: &Link, handle: TcHandle) -> Result<ClassInfo> {
    get(nl, link, handle)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotAttached,
            format!(
                "class {} is gone from {} (was the scheduler reset?)",
                handle_to_string(handle),
                link.name
            ),
        )
    })
}

fn class_info(msg: &TcMessage) -> ClassInfo {
    let mut info = ClassInfo {
        handle: msg.header.handle,
        parent: msg.header.parent,
        kind: String::new(),
        options: super::qdisc::opaque_options(&msg.attributes),
        xstats: super::qdisc::xstats(&msg.attributes),
        stats: ClassStats::default(),
    };
    let mut pkt64 = None;
    for attribute in &msg.attributes {
        match attribute {
            TcAttribute::Kind(kind) => info.kind = kind.clone(),
            // The legacy struct, used only if TCA_STATS2 is missing (the
            // kernel puts it after TCA_STATS2).
            TcAttribute::Stats(old) if info.stats == ClassStats::default() => {
                info.stats.bytes = old.bytes;
                info.stats.packets = u64::from(old.packets);
                info.stats.drops = u64::from(old.drops);
                info.stats.overlimits = u64::from(old.overlimits);
                info.stats.backlog = u64::from(old.backlog);
                info.stats.qlen = u64::from(old.qlen);
            }
            TcAttribute::Stats2(stats) => {
                for stat in stats {
                    match stat {
                        TcStats2::Basic(basic) => {
                            info.stats.bytes = basic.bytes;
                            info.stats.packets = u64::from(basic.packets);
                        }
                        TcStats2::Queue(queue) => {
                            info.stats.drops = u64::from(queue.drops);
                            info.stats.overlimits = u64::from(queue.overlimits);
                            info.stats.backlog = u64::from(queue.backlog);
                            info.stats.qlen = u64::from(queue.qlen);
                        }
                        TcStats2::Other(nla) => {
                            let mut value = vec![0; nla.value_len()];
                            nla.emit_value(&mut value);
                            match nla.kind() {
                                TCA_STATS_PKT64 => pkt64 = read_u64(&value, 0),
                                TCA_STATS_RATE_EST64 => {
                                    if let (Some(bps), Some(pps)) =
                                        (read_u64(&value, 0), read_u64(&value, 8))
                                    {
                                        info.stats.rate_estimate = Some((bps, pps));
                                    }
                                }
                                TCA_STATS_RATE_EST if info.stats.rate_estimate.is_none() => {
                                    if let (Some(bps), Some(pps)) =
                                        (read_u32(&value, 0), read_u32(&value, 4))
                                    {
                                        info.stats.rate_estimate =
                                            Some((u64::from(bps), u64::from(pps)));
                                    }
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // The basic struct's packet count is 32 bits; newer kernels add 64.
    if let Some(packets) = pkt64 {
        info.stats.packets = packets;
    }
    info
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// What a class request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClassVerb {
    /// `tc class add`: fails with EEXIST if the handle is taken (NLM_F_EXCL).
    Add,
    /// `tc class change` of an existing class.
    Change,
}

impl ClassVerb {
    /// The word `tc` takes for it.
    fn word(self) -> &'static str {
        match self {
            ClassVerb::Add => "add",
            ClassVerb::Change => "change",
        }
    }

    /// The request's netlink flags.
    fn flags(self) -> u16 {
        match self {
            ClassVerb::Add => NLM_F_CREATE | NLM_F_EXCL,
            ClassVerb::Change => 0,
        }
    }
}

/// Sends a class of a `kind` qdisc with `options` (its `TCA_OPTIONS`
/// attribute) as `tc class VERB dev DEV parent P classid H KIND ...` would.
pub(crate) fn send(
    nl: &Netlink,
    link: &Link,
    verb: ClassVerb,
    parent: TcHandle,
    handle: TcHandle,
    kind: &str,
    options: TcAttribute,
) -> Result<()> {
    let what = format!(
        "tc class {} classid {} {kind}",
        verb.word(),
        handle_to_string(handle)
    );
    let ctx = Context {
        what: &what,
        device: &link.name,
    };
    let msg = super::qdisc::kind_message(link, parent, handle, kind, options);
    nl.request(RouteNetlinkMessage::NewTrafficClass(msg), verb.flags(), ctx)?;
    Ok(())
}

/// Deletes a class (`tc class del dev DEV classid H`); what it still queues
/// is dropped by the kernel.
pub(crate) fn delete(nl: &Netlink, link: &Link, handle: TcHandle) -> Result<()> {
    let what = format!("tc class del classid {}", handle_to_string(handle));
    let ctx = Context {
        what: &what,
        device: &link.name,
    };
    let mut msg = TcMessage::with_index(link_index(link));
    msg.header.handle = handle;
    nl.request(RouteNetlinkMessage::DelTrafficClass(msg), 0, ctx)?;
    Ok(())
}

/// Creates a class of qsock's `kind` qdisc under `parent` at the first free
/// minor of `minors` and returns its handle with what `reserve` gave for
/// that minor. `reserve` is asked first and may pass a minor over (`None`);
/// `abandon` gets back a reservation whose class could not be made. Other
/// processes may pick the same minor at the same time: NLM_F_EXCL makes the
/// kernel refuse the loser with EEXIST, who tries the next.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_at_free_minor<R>(
    nl: &Netlink,
    link: &Link,
    parent: TcHandle,
    minors: RangeInclusive<u16>,
    kind: &str,
    options: &TcAttribute,
    mut reserve: impl FnMut(u16) -> Result<Option<R>>,
    mut abandon: impl FnMut(R),
) -> Result<(TcHandle, R)> {
    let mut taken: HashSet<u16> = list(nl, link)?
        .into_iter()
        .filter(|c| c.handle.major == QSOCK_MAJOR)
        .map(|c| c.handle.minor)
        .collect();
    for _ in 0..CLASS_ATTEMPTS {
        let minor = minors.clone().find(|m| !taken.contains(m)).ok_or_else(|| {
            Error::new(
                ErrorKind::QueueFull,
                format!(
                    "{}: every class number of qsock's {kind} is in use",
                    link.name
                ),
            )
        })?;
        taken.insert(minor);
        let Some(reservation) = reserve(minor)? else {
            continue;
        };
        let handle = TcHandle {
            major: QSOCK_MAJOR,
            minor,
        };
        match send(
            nl,
            link,
            ClassVerb::Add,
            parent,
            handle,
            kind,
            options.clone(),
        ) {
            Ok(()) => return Ok((handle, reservation)),
            Err(err) if err.errno() == libc::EEXIST => abandon(reservation),
            Err(err) => {
                abandon(reservation);
                return Err(err);
            }
        }
    }
    Err(Error::new(
        ErrorKind::Busy,
        format!(
            "{}: could not claim a free class after {CLASS_ATTEMPTS} tries; other processes keep \
             taking them",
            link.name
        ),
    ))
}

/// Deletes a stream's class once it holds no packets, waiting a bounded
/// time: deleting a class drops what it queues. `queued` reads the packets a
/// class holds, which some kinds count in their own statistics. A class
/// already gone (the scheduler was reset under the stream) is no error.
pub(crate) fn drain_and_delete(
    nl: &Netlink,
    link: &Link,
    handle: TcHandle,
    queued: impl Fn(&ClassInfo) -> u64,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < DRAIN_TIMEOUT {
        match get(nl, link, handle)? {
            // No event says that a class ran empty: poll its counters.
            Some(info) if queued(&info) > 0 => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
    match delete(nl, link, handle) {
        Err(err) if err.errno() == libc::ENOENT => Ok(()),
        other => other,
    }
}
