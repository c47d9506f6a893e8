//! The `htb` backend: the kernel's stock HTB qdisc as the device's root, one
//! class per periodic stream with the stream's rate, and best-effort traffic
//! in a default class. Rate isolation only: HTB knows nothing of deadlines or
//! loss windows.
//!
//! Layout (`tc class show`):
//!
//! ```text
//! qdisc htb 7173: root default fffe
//! class htb 7173:1    rate LINK ceil LINK              (the link)
//! class htb 7173:fffe rate LINK/100 ceil LINK|CAP prio 1   (best effort)
//! class htb 7173:N    rate STREAM ceil STREAM|LINK prio 0   (one per stream, N >= 2)
//! ```
//!
//! A cap on best effort (`InitParams::best_effort_rate`) is best effort's
//! ceiling: the streams keep theirs, the link's.
//!
//! A socket is put in its class through `SO_PRIORITY` = `7173:N`, which HTB
//! matches before any filter. Filters on `7173:` send ARP and IPv6 neighbour
//! discovery to HTB's direct queue, ahead of every class (see `tc::filter`).

use netlink_packet_route::tc::{TcAttribute, TcHandle};
use parking_lot::Mutex;
use socket2::Socket;

use super::kernel::{KernelScheduler, OurRoot};
use super::owner::{ClassClaim, DeviceRecords};
use super::{
    add_owned_class, classify_into_new_class, generic_class_stats, is_ours, kernel_stream_report,
    prune_unheld, set_priority, Attachment, DeviceReport, Frame, PrunedStream,
};
use crate::error::{Error, ErrorKind, Result};
use crate::info::SchedulerStats;
use crate::link::{best_effort_guarantee, full_packet_bytes, packet_bytes, stream_rate};
use crate::params::{InitParams, QosParams, Rate, SchedulerName, StreamKind, StreamParams};
use crate::tc::class::{self, ClassInfo, ClassVerb};
use crate::tc::filter;
use crate::tc::link::{self, Link};
use crate::tc::qdisc;
use crate::tc::{handle_to_u32, Netlink, QSOCK_MAJOR};
use tc::{HtbClassInfo, HtbClassSpec, HtbGlob, KIND as HTB_KIND, MAX_QUANTUM};

/// HTB's netlink options and its classes and root qdisc.
pub(crate) mod tc;

/// The class that stands for the whole link.
pub(crate) const ROOT_MINOR: u16 = 1;
/// The default class: traffic of no stream.
pub(crate) const BEST_EFFORT_MINOR: u16 = 0xfffe;
/// The first minor a stream may get.
pub(crate) const FIRST_STREAM_MINOR: u16 = 2;
/// Streams are served before best effort when both have tokens.
pub(crate) const STREAM_PRIO: u32 = 0;
/// Best effort's priority, below every stream.
const BEST_EFFORT_PRIO: u32 = 1;
/// A stream's bucket holds this many packets, so that the packets of one
/// frame, sent back to back, leave back to back.
pub(crate) const BURST_PACKETS: u32 = 4;
/// Slowest class rate: HTB's ratespec counts whole bytes per second.
pub(crate) const MIN_RATE: Rate = Rate::from_bits_per_second(1_000);

/// `n` Mbit/s, for the tests of HTB's rates.
#[cfg(test)]
fn mbit(n: u64) -> Rate {
    Rate::from_bits_per_second(n * 1_000_000)
}

/// `n` kbit/s, for the tests of HTB's rates.
#[cfg(test)]
fn kbit(n: u64) -> Rate {
    Rate::from_bits_per_second(n * 1_000)
}

/// The `htb` backend.
#[derive(Debug)]
pub(crate) struct Htb;

/// The SO_PRIORITY that HTB sends from its direct queue, ahead of every
/// class: the qdisc's own handle.
pub(crate) fn direct_priority() -> u32 {
    handle_to_u32(class_handle(0))
}

pub(crate) fn class_handle(minor: u16) -> TcHandle {
    TcHandle {
        major: QSOCK_MAJOR,
        minor,
    }
}

/// What `tc` prints for qsock's root class, to word errors.
pub(crate) fn root_class() -> TcHandle {
    class_handle(ROOT_MINOR)
}

/// Classes sized for a link of `rate`.
fn link_class(rate: Rate, mtu: u32) -> HtbClassSpec {
    // One millisecond of traffic, at least two full packets: enough that the
    // link class never limits below its rate between timer ticks.
    let burst = burst_for(rate, mtu);
    HtbClassSpec {
        rate,
        ceil: rate,
        burst,
        cburst: burst,
        prio: 0,
        quantum: quantum_for(rate, mtu),
    }
}

fn best_effort_class(link: Rate, cap: Option<Rate>, mtu: u32) -> HtbClassSpec {
    // A small guarantee keeps best effort from starving entirely; the rest it
    // borrows up to the link rate (or its cap) whenever streams leave room.
    let ceil = cap.map_or(link, |cap| cap.min(link));
    let rate = best_effort_guarantee(link).min(ceil);
    HtbClassSpec {
        rate,
        ceil,
        burst: burst_for(rate, mtu),
        cburst: burst_for(ceil, mtu),
        prio: BEST_EFFORT_PRIO,
        quantum: quantum_for(link, mtu),
    }
}

fn burst_for(rate: Rate, mtu: u32) -> u32 {
    let millisecond = rate.bytes_per_second() / 1000;
    u32::try_from(millisecond).unwrap_or(u32::MAX).max(2 * mtu)
}

fn quantum_for(rate: Rate, mtu: u32) -> u32 {
    // The kernel's r2q rule (rate / 10) clamped to where it does not warn,
    // and never below one packet, or a class could not send a full one per round.
    let by_rate = u32::try_from(rate.bytes_per_second() / 10).unwrap_or(u32::MAX);
    by_rate.clamp(mtu.min(MAX_QUANTUM), MAX_QUANTUM)
}

/// The r2q for a link: large enough that rate / r2q stays within the
/// kernel's quantum range for every class we do not give a quantum.
fn r2q_for(link: Rate) -> u32 {
    let r2q = link.bytes_per_second() / u64::from(MAX_QUANTUM);
    u32::try_from(r2q).unwrap_or(u32::MAX).max(10)
}

/// Sends a class of qsock's HTB (`tc class VERB ... htb ...`): the link's
/// class hangs off the qdisc, every other class off the link's.
pub(crate) fn send_class(
    nl: &Netlink,
    link: &Link,
    verb: ClassVerb,
    handle: TcHandle,
    spec: &HtbClassSpec,
) -> Result<()> {
    let parent = if handle == root_class() {
        TcHandle::ROOT
    } else {
        root_class()
    };
    class::send(nl, link, verb, parent, handle, HTB_KIND, spec.attribute())
}

/// Sends the classes a link of `rate` sizes: the link's and best effort's,
/// best effort capped at `best_effort_cap` where one is given below it.
fn send_link_classes(
    nl: &Netlink,
    link: &Link,
    verb: ClassVerb,
    rate: Rate,
    best_effort_cap: Option<Rate>,
) -> Result<()> {
    send_class(nl, link, verb, root_class(), &link_class(rate, link.mtu))?;
    send_best_effort_class(nl, link, verb, rate, best_effort_cap)
}

fn send_best_effort_class(
    nl: &Netlink,
    link: &Link,
    verb: ClassVerb,
    rate: Rate,
    cap: Option<Rate>,
) -> Result<()> {
    send_class(
        nl,
        link,
        verb,
        class_handle(BEST_EFFORT_MINOR),
        &best_effort_class(rate, cap, link.mtu),
    )
}

/// Best effort's cap on a device: its ceiling, where below the link's.
fn best_effort_cap(nl: &Netlink, link: &Link, link_rate: Option<Rate>) -> Result<Option<Rate>> {
    let ceil = class::get(nl, link, class_handle(BEST_EFFORT_MINOR))?
        .and_then(|info| info.htb())
        .map(|htb| htb.ceil);
    Ok(ceil.filter(|&ceil| link_rate.is_some_and(|link| ceil < link)))
}

/// After the link rate changed from `old_link` to `link`: an HTB class may
/// always send at its own rate, whatever its parent's, so a lower link rate
/// would not bind the streams. Each stream class gets a rate and ceiling of
/// at most the new link rate (a work-conserving stream's ceiling follows the
/// link). Returns how many classes changed.
fn refit_streams(
    nl: &Netlink,
    link: &Link,
    old_link: Option<Rate>,
    new_link: Rate,
) -> Result<usize> {
    let mut refitted = 0;
    for info in class::list(nl, link)? {
        let Some(htb) = info.htb().filter(|_| is_stream_class(&info)) else {
            continue;
        };
        let followed_link = Some(htb.ceil) == old_link;
        let spec = fitted_stream_class(
            htb.rate,
            htb.ceil,
            followed_link,
            new_link,
            link.mtu,
            htb.opt.quantum,
        );
        if spec.rate == htb.rate && spec.ceil == htb.ceil {
            continue;
        }
        send_class(nl, link, ClassVerb::Change, info.handle, &spec)?;
        refitted += 1;
    }
    Ok(refitted)
}

/// A stream class's parameters under a link of `link`.
fn fitted_stream_class(
    rate: Rate,
    ceil: Rate,
    followed_link: bool,
    link: Rate,
    mtu: u32,
    quantum: u32,
) -> HtbClassSpec {
    let rate = rate.min(link);
    let ceil = if followed_link { link } else { ceil.min(link) }.max(rate);
    // The packet size the class was sized for is not in the kernel's dump:
    // a full-size packet's burst is never too small.
    let burst = full_packet_bytes(mtu).saturating_mul(BURST_PACKETS);
    HtbClassSpec {
        rate,
        ceil,
        burst,
        cburst: burst,
        prio: STREAM_PRIO,
        quantum,
    }
}

/// The class a stream needs, or `None` for streams that stay best effort.
pub(crate) fn stream_class(
    stream: &StreamParams,
    link_rate: Rate,
    mtu: u32,
) -> Result<Option<HtbClassSpec>> {
    if stream.kind != StreamKind::Periodic {
        return Ok(None);
    }
    // HTB charges each packet's length as the device sees it, headers
    // included.
    let packet = packet_bytes(stream.packet_size, mtu);
    let rate = stream_rate(packet, stream.ipg).max(MIN_RATE);
    if rate > link_rate {
        return Err(Error::invalid(format!(
            "the stream needs {rate} ({packet} bytes every {:?}) but the link rate given to \
             qsockinit is {link_rate}: lengthen ipg, shrink the packets, or raise the link rate",
            stream.ipg
        )));
    }
    let ceil = if stream.work_conserving {
        link_rate
    } else {
        rate
    };
    let burst = packet.saturating_mul(BURST_PACKETS);
    Ok(Some(HtbClassSpec {
        rate,
        ceil,
        burst,
        cburst: burst,
        prio: STREAM_PRIO,
        quantum: packet.max(mtu).min(MAX_QUANTUM),
    }))
}

/// The device, its root qdisc and the link rate qsock gave it.
pub(crate) struct Installed {
    pub(crate) link: Link,
    pub(crate) link_rate: Rate,
}

/// Checks that qsock's HTB is the device's root and reads its link rate.
pub(crate) fn installed(nl: &Netlink, device: &str) -> Result<Installed> {
    let link = link::lookup(nl, device)?;
    let records = DeviceRecords::of(&link)?;
    match qdisc::root(nl, &link)? {
        Some(root) if root.kind == HTB_KIND && is_ours(&records, &root)? => {}
        _ => {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!(
                    "the htb scheduler is not installed on {device}: call qsockinit first \
                     (`qsockctl init --dev {device} --scheduler htb --rate RATE`)"
                ),
            ))
        }
    }
    let root = class::get(nl, &link, root_class())?.and_then(|c| c.rate());
    let link_rate = root.ok_or_else(|| {
        Error::new(
            ErrorKind::NotSupported,
            format!(
                "{device} has qsock's HTB qdisc but not its root class 7173:1 (did someone delete \
                 it?): run `qsockctl reset --dev {device}` and qsockinit again"
            ),
        )
    })?;
    Ok(Installed { link, link_rate })
}

/// HTB measures neither queueing delay nor windows: its generic counters.
pub(crate) fn stats_of(info: &ClassInfo) -> SchedulerStats {
    generic_class_stats(info)
}

/// Is `info` one of qsock's stream classes (not the link's, not best effort's)?
pub(crate) fn is_stream_class(info: &ClassInfo) -> bool {
    info.handle.major == QSOCK_MAJOR
        && info.handle.minor != ROOT_MINOR
        && info.handle.minor != BEST_EFFORT_MINOR
}

/// Refuses a stream of `rate` when the link cannot also hold the live
/// streams' guarantees (`live`, less the class `replacing`) and best
/// effort's: HTB would accept the class and then fall short on all of them.
fn admit(
    device: &str,
    link_rate: Rate,
    live: &[ClassInfo],
    replacing: Option<TcHandle>,
    rate: Rate,
) -> Result<()> {
    let others: Vec<&ClassInfo> = live
        .iter()
        .filter(|info| is_stream_class(info) && Some(info.handle) != replacing)
        .collect();
    let held: u64 = others
        .iter()
        .filter_map(|info| info.rate())
        .map(Rate::bits_per_second)
        .fold(0, u64::saturating_add);
    let best_effort = best_effort_guarantee(link_rate).bits_per_second();
    let left = link_rate
        .bits_per_second()
        .saturating_sub(held)
        .saturating_sub(best_effort);
    if rate.bits_per_second() <= left {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Busy,
        format!(
            "cannot admit a stream of {rate} on {device}: its link rate is {link_rate}, {} live \
             stream(s) hold {} and best effort keeps {}, so {} is left. Lengthen ipg or shrink \
             the packets, close other streams (`qsockctl show --dev {device}` lists them), or \
             raise the link rate (`qsockctl init --dev {device} --scheduler htb --rate RATE`)",
            others.len(),
            Rate::from_bits_per_second(held),
            Rate::from_bits_per_second(best_effort),
            Rate::from_bits_per_second(left),
        ),
    ))
}

/// Creates a class for `spec` under the root class at a free minor, held by
/// this process, once the streams whose owners are gone are removed and the
/// link is found to hold it; returns its handle and the hold.
fn create_stream_class(
    nl: &Netlink,
    link: &Link,
    records: &DeviceRecords,
    link_rate: Rate,
    spec: &HtbClassSpec,
) -> Result<(TcHandle, ClassClaim)> {
    add_owned_class(
        nl,
        link,
        records,
        root_class(),
        FIRST_STREAM_MINOR..=BEST_EFFORT_MINOR - 1,
        HTB_KIND,
        &spec.attribute(),
        is_stream_class,
        |live| admit(&link.name, link_rate, live, None, spec.rate),
    )
}

impl KernelScheduler for Htb {
    const NAME: SchedulerName = SchedulerName::Htb;
    const KIND: &'static str = HTB_KIND;
    const LABEL: &'static str = "HTB";
    const CAPS_BEST_EFFORT: bool = true;

    /// A new link rate: the link's and best effort's classes follow it, and
    /// the stream classes are fitted under it. A new cap on best effort:
    /// its class's ceiling.
    fn update(&self, root: OurRoot<'_>, init: &InitParams) -> Result<Option<String>> {
        let OurRoot { nl, link, .. } = root;
        filter::bypass_link_control(nl, link, class_handle(0))?;
        let current = class::get(nl, link, root_class())?.and_then(|c| c.rate());
        let Some(rate) = init.link_rate.or(current) else {
            return Ok(None);
        };
        let cap_before = best_effort_cap(nl, link, current)?;
        let cap = init
            .best_effort_rate
            .or(cap_before)
            .filter(|&cap| cap < rate);
        let mut changes = Vec::new();
        if current != Some(rate) {
            send_link_classes(nl, link, ClassVerb::Change, rate, cap)?;
            let refitted = refit_streams(nl, link, current, rate)?;
            changes.push(format!("its link rate is now {rate}"));
            if refitted > 0 {
                changes.push(format!("{refitted} stream class(es) were fitted under it"));
            }
        } else if cap != cap_before {
            send_best_effort_class(nl, link, ClassVerb::Change, rate, cap)?;
        }
        if cap != cap_before {
            changes.push(match cap {
                Some(cap) => format!("best effort is capped at {cap}"),
                None => "best effort may use the whole link".into(),
            });
        }
        Ok((!changes.is_empty()).then(|| changes.join(" and ")))
    }

    fn root_options(&self, _init: &InitParams, rate: Rate) -> (TcAttribute, String) {
        let glob = HtbGlob::new(r2q_for(rate), BEST_EFFORT_MINOR);
        (TcAttribute::Options(glob.options()), format!("at {rate}"))
    }

    /// The link's class and best effort's, the qdisc's default: without it
    /// the qdisc would hold back all traffic of no stream. Neighbour
    /// resolution skips the classes, or it would wait behind bulk traffic.
    fn populate(&self, nl: &Netlink, link: &Link, init: &InitParams, rate: Rate) -> Result<()> {
        send_link_classes(nl, link, ClassVerb::Add, rate, init.best_effort_rate)?;
        filter::bypass_link_control(nl, link, class_handle(0))
    }

    /// `tc class add dev DEV parent 7173:1 classid 7173:N htb rate R ceil C
    /// burst B prio 0`, then `SO_PRIORITY` = 7173:N.
    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>> {
        params.validate()?;
        let nl = Netlink::open()?;
        let Installed { link, link_rate } = installed(&nl, &params.device)?;
        let records = DeviceRecords::of(&link)?;
        let class = match stream_class(&params.stream, link_rate, link.mtu)? {
            Some(spec) => {
                let created = create_stream_class(&nl, &link, &records, link_rate, &spec)?;
                let (handle, claim, ()) = classify_into_new_class(&nl, &link, created, |handle| {
                    set_priority(socket, handle_to_u32(handle), &link.name)
                })?;
                Some((handle, claim))
            }
            None => None,
        };
        Ok(Box::new(HtbStream {
            netlink: Mutex::new(nl),
            link,
            records,
            link_rate,
            class,
            stream: params.stream,
        }))
    }

    /// `tc -s -d class show dev DEV`.
    fn fill_report(&self, root: OurRoot<'_>, report: &mut DeviceReport) -> Result<()> {
        let records = DeviceRecords::of(root.link)?;
        for info in class::list(root.nl, root.link)? {
            if info.handle.major != QSOCK_MAJOR {
                continue;
            }
            match info.handle.minor {
                ROOT_MINOR => report.link_rate = info.rate(),
                BEST_EFFORT_MINOR => {
                    report.best_effort = Some(stats_of(&info));
                    report.best_effort_rate = info.htb().map(|htb| htb.ceil);
                }
                _ => report
                    .streams
                    .push(kernel_stream_report(&records, &info, stats_of(&info))),
            }
        }
        Ok(())
    }

    /// `tc class del` of every stream class no live process holds.
    fn prune(&self, device: &str) -> Result<Vec<PrunedStream>> {
        let nl = Netlink::open()?;
        let Installed { link, .. } = installed(&nl, device)?;
        prune_unheld(&nl, &link, is_stream_class)
    }
}

/// One socket's stream: its class, or none for best-effort streams.
#[derive(Debug)]
struct HtbStream {
    /// The stream's own rtnetlink connection, opened at attach: a netlink
    /// socket stays in the network namespace it was opened in, so later calls
    /// reach the right device from any thread, and none pays for a new one.
    netlink: Mutex<Netlink>,
    link: Link,
    /// The device's records, in the namespace of the attach.
    records: DeviceRecords,
    link_rate: Rate,
    /// The stream's class and this process's hold on it.
    class: Option<(TcHandle, ClassClaim)>,
    stream: StreamParams,
}

impl HtbStream {
    /// The class the stream's packets are counted in.
    fn counted_in(&self) -> TcHandle {
        self.class
            .as_ref()
            .map_or(class_handle(BEST_EFFORT_MINOR), |(handle, _)| *handle)
    }
}

impl Attachment for HtbStream {
    /// `tc class change` with the new rate; a class is created or deleted when
    /// the stream turns periodic or best effort.
    fn change(&mut self, socket: &Socket, stream: &StreamParams) -> Result<()> {
        stream.validate()?;
        // qsockinit may have changed the link rate since the attach.
        if let Some(rate) =
            class::get(&self.netlink.lock(), &self.link, root_class())?.and_then(|root| root.rate())
        {
            self.link_rate = rate;
        }
        let wanted = stream_class(stream, self.link_rate, self.link.mtu)?;
        let link = &self.link;
        let link_rate = self.link_rate;
        let nl = self.netlink.lock();
        let new_class = match (self.class.take(), wanted) {
            (Some((handle, claim)), Some(spec)) => {
                let changed = self.records.lock().and_then(|_lock| {
                    let live = class::list(&nl, link)?;
                    admit(&link.name, link_rate, &live, Some(handle), spec.rate)?;
                    send_class(&nl, link, ClassVerb::Change, handle, &spec)
                });
                if let Err(err) = changed {
                    self.class = Some((handle, claim));
                    return Err(err);
                }
                Some((handle, claim))
            }
            (None, Some(spec)) => {
                let created = create_stream_class(&nl, link, &self.records, link_rate, &spec)?;
                let (handle, claim, ()) = classify_into_new_class(&nl, link, created, |handle| {
                    set_priority(socket, handle_to_u32(handle), &link.name)
                })?;
                Some((handle, claim))
            }
            (Some((handle, claim)), None) => {
                let removed = set_priority(socket, 0, &link.name)
                    .and_then(|()| class::delete(&nl, link, handle));
                if let Err(err) = removed {
                    self.class = Some((handle, claim));
                    return Err(err);
                }
                claim.release();
                None
            }
            (None, None) => None,
        };
        drop(nl);
        self.class = new_class;
        self.stream = *stream;
        Ok(())
    }

    /// `sendmmsg(2)`: HTB needs nothing but the socket's priority.
    fn send_frame(&self, socket: &Socket, frame: &Frame<'_>) -> Result<usize> {
        frame
            .send_without_values(
                socket,
                "htb-deadline",
                "the htb scheduler cannot honour per-packet deadlines or drop flags (nor loss \
                 windows): it only isolates each stream's rate; use the dwcs or user scheduler \
                 for deadlines",
            )
            .map_err(|err| Error::os("sendmmsg failed", err))
    }

    /// The class's counters (`tc -s class show`); a best-effort stream has no
    /// class of its own, and reports the shared default class.
    fn stats(&self) -> Result<SchedulerStats> {
        let handle = self.counted_in();
        let link = &self.link;
        let nl = self.netlink.lock();
        let info = class::get_attached(&nl, link, handle)?;
        Ok(stats_of(&info))
    }

    /// The root class's rate, as `tc class show` prints it now.
    fn link_rate(&self) -> Result<Option<Rate>> {
        let nl = self.netlink.lock();
        Ok(class::get(&nl, &self.link, root_class())?.and_then(|root| root.rate()))
    }

    /// Moves the socket back to best effort, lets the class's queue drain
    /// (HTB drops what a deleted class still holds), then `tc class del`.
    fn detach(self: Box<Self>, socket: &Socket) -> Result<()> {
        let Some((handle, claim)) = self.class else {
            return Ok(());
        };
        set_priority(socket, 0, &self.link.name)?;
        let nl = self.netlink.lock();
        class::drain_and_delete(&nl, &self.link, handle, |info| info.stats.qlen)?;
        // A class that could not be deleted keeps its record, unheld once
        // this process ends, so that it is found and removed later.
        claim.release();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stream_rate_follows_packet_size_and_ipg() {
        // 938 bytes of payload + 62 of headers every 4 ms: 2 Mbit/s on the wire.
        let stream = StreamParams::periodic(Duration::from_millis(4), 0, 0).with_packet_size(938);
        let spec = stream_class(&stream, mbit(10), 1500).unwrap().unwrap();
        assert_eq!(spec.rate, mbit(2));
        assert_eq!(spec.ceil, mbit(2));
        assert_eq!(spec.burst, 4000);
        assert_eq!(spec.prio, STREAM_PRIO);
        let spec = stream_class(&stream.work_conserving(), mbit(10), 1500)
            .unwrap()
            .unwrap();
        assert_eq!(spec.ceil, mbit(10));
        // Without a packet size, the MTU and an Ethernet header.
        let stream = StreamParams::periodic(Duration::from_millis(12), 0, 0);
        assert_eq!(
            stream_class(&stream, mbit(10), 1486).unwrap().unwrap().rate,
            mbit(1)
        );
    }

    #[test]
    fn a_cap_on_best_effort_is_its_ceiling_within_the_link() {
        let open = best_effort_class(mbit(10), None, 1500);
        assert_eq!((open.rate, open.ceil), (kbit(100), mbit(10)));
        let capped = best_effort_class(mbit(10), Some(mbit(2)), 1500);
        assert_eq!((capped.rate, capped.ceil), (kbit(100), mbit(2)));
        let above = best_effort_class(mbit(10), Some(mbit(20)), 1500);
        assert_eq!(above.ceil, mbit(10));
        // A cap below best effort's guarantee is the guarantee too: HTB
        // refuses a ceiling below the rate.
        let tight = best_effort_class(mbit(10), Some(kbit(50)), 1500);
        assert_eq!((tight.rate, tight.ceil), (kbit(50), kbit(50)));
    }

    #[test]
    fn best_effort_and_aperiodic_streams_get_no_class() {
        assert_eq!(
            stream_class(&StreamParams::best_effort(), mbit(10), 1500).unwrap(),
            None
        );
        assert_eq!(
            stream_class(&StreamParams::aperiodic(), mbit(10), 1500).unwrap(),
            None
        );
    }

    #[test]
    fn a_stream_faster_than_the_link_is_refused() {
        let stream = StreamParams::periodic(Duration::from_micros(100), 0, 0);
        let err = stream_class(&stream, mbit(10), 1500).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("raise the link rate"), "{err}");
    }

    #[test]
    fn quanta_stay_in_the_kernels_range() {
        assert_eq!(quantum_for(mbit(10_000), 1500), MAX_QUANTUM);
        assert_eq!(quantum_for(Rate::from_bits_per_second(100_000), 1500), 1500);
        assert!(r2q_for(mbit(10_000)) >= 10);
        assert_eq!(r2q_for(mbit(10)), 10);
    }
}
