//! Stream classes kept by `qsockd` on behalf of its clients.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use netlink_packet_route::tc::TcHandle;
use socket2::SockRef;

use crate::backend::dwcs::{self, tc::DwcsClassOptions};
use crate::backend::htb::{
    self,
    tc::{HtbClassInfo, HtbClassSpec, MAX_QUANTUM},
};
use crate::backend::owner::{ClassClaim, DeviceRecords};
use crate::backend::{is_ours, set_priority, StreamOwner};
use crate::error::{Error, ErrorKind, Result};
use crate::info::SchedulerStats;
use crate::link::{full_packet_bytes, packet_bytes, stream_rate};
use crate::params::{Rate, SchedulerName, StreamKind, StreamParams};
use crate::sch_dwcs::{TC_DWCS_CLASS_F_APERIODIC, TC_DWCS_CLASS_F_DROPPABLE};
use crate::tc::class::{self, ClassVerb};
use crate::tc::link::{self, Link};
use crate::tc::qdisc;
use crate::tc::{handle_to_string, handle_to_u32, Netlink, QSOCK_MAJOR};

/// The transport of a socket a client passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP socket (IPv4 or IPv6).
    Udp,
    /// A TCP socket (IPv4 or IPv6).
    Tcp,
}

/// The cookie of the calling thread's network namespace: a daemon reads it
/// once, for [`check_client_socket`].
pub fn namespace_cookie() -> Result<u64> {
    let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)
        .map_err(|err| Error::os("cannot open a socket to find the network namespace", err))?;
    crate::sys::netns_cookie(probe.as_fd())
        .map_err(|err| Error::os("cannot read this network namespace's cookie", err))
}

/// Checks that `socket` is a UDP or TCP socket of the network namespace
/// whose cookie is `namespace` (the daemon's own, whose devices it
/// manages, from [`namespace_cookie`]); the error says what it is instead.
pub fn check_client_socket(socket: BorrowedFd<'_>, namespace: u64) -> Result<Transport> {
    let (domain, kind, protocol) = crate::sys::socket_identity(socket).map_err(|err| {
        let what = if err.raw_os_error() == Some(libc::ENOTSOCK) {
            "the descriptor passed is not a socket".to_owned()
        } else {
            format!("the descriptor passed cannot be inspected ({err})")
        };
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what}: pass the UDP or TCP socket whose traffic is to be scheduled"),
        )
    })?;
    let transport = match (domain, kind, protocol) {
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP) => Transport::Udp,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP) => Transport::Tcp,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the socket passed is of family {domain}, type {kind}, protocol {protocol}, \
                     not an IPv4/IPv6 UDP or TCP socket: only those are scheduled"
                ),
            ))
        }
    };
    let theirs = crate::sys::netns_cookie(socket)
        .map_err(|err| Error::os("cannot read the socket's network namespace cookie", err))?;
    if namespace != theirs {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the socket passed belongs to another network namespace than qsockd's: its traffic \
             cannot reach the devices qsockd schedules; run a qsockd in that namespace",
        ));
    }
    Ok(transport)
}

/// What a stream reserves of its device, in the terms admission compares:
/// a rate. For HTB it is the class's guaranteed rate; for DWCS it is the
/// link time its window requires, `(1 − x/y)·C/T` of the link (C the time
/// one packet takes on the link, T the period), expressed as that share of
/// the link rate so that quotas in bits per second apply to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The rate reserved.
    pub rate: Rate,
}

impl Reservation {
    /// Nothing reserved: best-effort and aperiodic streams.
    pub const NONE: Reservation = Reservation {
        rate: Rate::from_bits_per_second(0),
    };

    /// The share of a link of `link_rate` this reservation takes (the
    /// utilisation for DWCS).
    pub fn share_of(self, link_rate: Rate) -> f64 {
        if link_rate.bits_per_second() == 0 {
            return 0.0;
        }
        self.rate.bits_per_second() as f64 / link_rate.bits_per_second() as f64
    }
}

/// A stream class held by the daemon: its handle and the daemon's hold on
/// its record.
#[derive(Debug)]
pub struct StreamClass {
    handle: TcHandle,
    claim: ClassClaim,
}

impl StreamClass {
    /// The class as `tc` prints it (`7173:N`).
    pub fn id(&self) -> String {
        handle_to_string(self.handle)
    }

    /// The `SO_PRIORITY` that puts a socket's packets in the class.
    pub fn priority(&self) -> u32 {
        handle_to_u32(self.handle)
    }

    /// The class's handle alone, for work on its options or figures done
    /// apart from the class's holder.
    pub fn key(&self) -> ClassKey {
        ClassKey(self.handle)
    }

    /// Records `owner` as the process the class is held for.
    pub fn record_owner(&mut self, owner: &StreamOwner) -> Result<()> {
        self.claim
            .record_owner(owner)
            .map_err(|err| Error::os("cannot record the stream's owner", err))
    }
}

/// Names a [`StreamClass`] without holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassKey(TcHandle);

/// A class found on the device at start that its holder (a previous daemon)
/// let go of, now held again, with what its record says.
#[derive(Debug)]
pub struct AdoptedClass {
    /// The class.
    pub class: StreamClass,
    /// Whom the record names; `None` without a record.
    pub owner: Option<StreamOwner>,
    /// What the class reserves, read from its options.
    pub reservation: Reservation,
}

/// The classes of one device that runs qsock's htb or dwcs, kept by the
/// daemon on its clients' behalf: prepared ahead with a placeholder rate,
/// handed to a socket by `SO_PRIORITY`, then configured for the stream.
/// Shared between a daemon's threads: one hands prepared classes out while
/// another talks to the kernel.
#[derive(Debug)]
pub struct DeviceClasses {
    /// One request at a time: the kernel refuses a second dump on a socket
    /// while one runs (EBUSY), and the daemon's threads share it.
    nl: Mutex<Netlink>,
    link: Link,
    records: DeviceRecords,
    scheduler: SchedulerName,
    placeholder_rate: Rate,
    prepared: Mutex<Vec<StreamClass>>,
}

/// The htb placeholder: rate and ceil at the link's rate, and a burst of a
/// few full packets. A client may send before its class is configured; HTB
/// charges those packets to the class's tokens, and keeps that debt, in
/// time, across a change of rate. At the link's rate a packet's debt is
/// microseconds, where at a token rate it would hold the configured stream
/// back for seconds.
fn htb_placeholder(mtu: u32, rate: Rate) -> HtbClassSpec {
    let burst = full_packet_bytes(mtu).saturating_mul(htb::BURST_PACKETS);
    let rate = rate.max(htb::MIN_RATE);
    HtbClassSpec {
        rate,
        ceil: rate,
        burst,
        cburst: burst,
        prio: htb::STREAM_PRIO,
        quantum: mtu.min(MAX_QUANTUM),
    }
}

/// The dwcs placeholder: an aperiodic droppable class, which reserves nothing.
fn dwcs_placeholder() -> DwcsClassOptions {
    DwcsClassOptions {
        period_ns: None,
        oln: Some(0),
        old: Some(0),
        flags: Some(TC_DWCS_CLASS_F_APERIODIC | TC_DWCS_CLASS_F_DROPPABLE),
    }
}

impl DeviceClasses {
    /// The classes of `device`, which must run qsock's htb or dwcs now.
    pub fn open(device: &str) -> Result<DeviceClasses> {
        crate::backend::require_device(device)?;
        let nl = Netlink::open()?;
        let link = link::lookup(&nl, device)?;
        let records = DeviceRecords::of(&link)?;
        let scheduler = match qdisc::root(&nl, &link)? {
            Some(root) if root.kind == htb::tc::KIND && is_ours(&records, &root)? => {
                SchedulerName::Htb
            }
            Some(root) if root.kind == dwcs::tc::KIND && is_ours(&records, &root)? => {
                SchedulerName::Dwcs
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::NotSupported,
                    format!("no qsock kernel scheduler (htb or dwcs) is installed on {device}"),
                ))
            }
        };
        Ok(DeviceClasses {
            nl: Mutex::new(nl),
            link,
            records,
            scheduler,
            placeholder_rate: htb::MIN_RATE,
            prepared: Mutex::new(Vec::new()),
        })
    }

    /// Prepares classes for a link of `rate` (the placeholder's rate).
    pub fn with_link_rate(mut self, rate: Rate) -> DeviceClasses {
        self.placeholder_rate = rate;
        self
    }

    fn netlink(&self) -> MutexGuard<'_, Netlink> {
        self.nl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool(&self) -> MutexGuard<'_, Vec<StreamClass>> {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        &self.link.name
    }

    /// The scheduler the device ran when opened.
    pub fn scheduler(&self) -> SchedulerName {
        self.scheduler
    }

    /// Whether qsock's root qdisc of that scheduler still is the device's
    /// root (nobody replaced or removed it).
    pub fn still_installed(&self) -> Result<bool> {
        let kind = self.kind();
        Ok(
            qdisc::root(&self.netlink(), &self.link)?.is_some_and(|root| {
                root.kind == kind && matches!(is_ours(&self.records, &root), Ok(true))
            }),
        )
    }

    /// The link rate the device's scheduler was given.
    pub fn link_rate(&self) -> Result<Option<Rate>> {
        match self.scheduler {
            SchedulerName::Htb => Ok(Some(
                htb::installed(&self.netlink(), &self.link.name)?.link_rate,
            )),
            _ => Ok(dwcs::installed(&self.netlink(), &self.link.name)
                .map(|(_, root)| dwcs::qdisc_link_rate(&root))?),
        }
    }

    fn kind(&self) -> &'static str {
        match self.scheduler {
            SchedulerName::Htb => htb::tc::KIND,
            _ => dwcs::tc::KIND,
        }
    }

    /// What `stream` would reserve on a link of `link_rate`; refuses a
    /// stream the link could not carry at all.
    pub fn reservation(&self, stream: &StreamParams, link_rate: Rate) -> Result<Reservation> {
        stream.validate()?;
        match self.scheduler {
            SchedulerName::Htb => Ok(htb::stream_class(stream, link_rate, self.link.mtu)?
                .map_or(Reservation::NONE, |spec| Reservation { rate: spec.rate })),
            _ => Ok(dwcs_reservation(stream, self.link.mtu)),
        }
    }

    /// Creates placeholder classes until `count` are prepared; returns how
    /// many were created.
    pub fn prepare(&self, count: usize) -> Result<usize> {
        let mut created = 0;
        while self.prepared() < count {
            let class = self.create_placeholder()?;
            self.pool().push(class);
            created += 1;
        }
        Ok(created)
    }

    /// Whether `stream` gets a class of its own here: best-effort streams,
    /// and on htb aperiodic ones too, stay in the device's best effort.
    pub fn needs_class(&self, stream: &StreamParams) -> bool {
        match self.scheduler {
            SchedulerName::Htb => stream.kind == StreamKind::Periodic,
            _ => stream.kind != StreamKind::BestEffort,
        }
    }

    /// Returns a class taken but not used (its socket was refused) to the
    /// prepared ones; its placeholder options are unchanged.
    pub fn give_back(&self, class: StreamClass) {
        self.pool().push(class);
    }

    /// Lets go of the prepared classes without deleting them: for a device
    /// whose root qdisc was removed, which took every class with it.
    pub fn forget_prepared(&self) {
        for class in std::mem::take(&mut *self.pool()) {
            class.claim.release();
        }
    }

    /// How many classes are prepared.
    pub fn prepared(&self) -> usize {
        self.pool().len()
    }

    /// A prepared class, or a placeholder created now when none is left.
    pub fn take(&self) -> Result<StreamClass> {
        let prepared = self.pool().pop();
        match prepared {
            Some(class) => Ok(class),
            None => self.create_placeholder(),
        }
    }

    fn create_placeholder(&self) -> Result<StreamClass> {
        let _lock = self.records.lock()?;
        let (parent, minors, options) = match self.scheduler {
            SchedulerName::Htb => (
                htb::root_class(),
                htb::FIRST_STREAM_MINOR..=htb::BEST_EFFORT_MINOR - 1,
                htb_placeholder(self.link.mtu, self.placeholder_rate).attribute(),
            ),
            _ => (
                dwcs::qdisc_handle(),
                dwcs::FIRST_STREAM_MINOR..=dwcs::LAST_STREAM_MINOR,
                dwcs_placeholder().attribute(),
            ),
        };
        let (handle, claim) = class::add_at_free_minor(
            &self.netlink(),
            &self.link,
            parent,
            minors,
            self.kind(),
            &options,
            |minor| self.records.claim(minor),
            ClassClaim::release,
        )?;
        Ok(StreamClass { handle, claim })
    }

    /// Puts the socket's packets in `class` (`SO_PRIORITY`); on dwcs, a UDP
    /// socket also gets `SO_TXTIME` on CLOCK_MONOTONIC, which its packets'
    /// deadlines travel in.
    pub fn classify(&self, class: &StreamClass, socket: BorrowedFd<'_>) -> Result<()> {
        let socket = SockRef::from(&socket);
        set_priority(&socket, class.priority(), &self.link.name)?;
        if self.scheduler == SchedulerName::Dwcs
            && socket
                .r#type()
                .is_ok_and(|kind| kind == socket2::Type::DGRAM)
        {
            crate::sys::enable_txtime_monotonic(socket.as_fd())
                .map_err(|err| Error::os("setsockopt(SO_TXTIME, CLOCK_MONOTONIC) failed", err))?;
        }
        Ok(())
    }

    /// The class of this device a socket is in, by its `SO_PRIORITY`; `None`
    /// when that is not one of qsock's classes.
    pub fn priority_minor(socket: BorrowedFd<'_>) -> Option<u16> {
        let priority = SockRef::from(&socket).priority().ok()?;
        (priority >> 16 == u32::from(QSOCK_MAJOR))
            .then(|| u16::try_from(priority & 0xffff).ok())
            .flatten()
    }

    /// The minor of `class`.
    pub fn minor(class: &StreamClass) -> u16 {
        class.handle.minor
    }

    /// Gives the class `class` names the stream's parameters (`tc class
    /// change`).
    pub fn configure(&self, class: ClassKey, stream: &StreamParams, link_rate: Rate) -> Result<()> {
        let ClassKey(handle) = class;
        match self.scheduler {
            SchedulerName::Htb => {
                let spec = htb::stream_class(stream, link_rate, self.link.mtu)?
                    .unwrap_or_else(|| htb_placeholder(self.link.mtu, self.placeholder_rate));
                htb::send_class(
                    &self.netlink(),
                    &self.link,
                    ClassVerb::Change,
                    handle,
                    &spec,
                )?;
            }
            _ => {
                let options = dwcs::class_options(stream).unwrap_or_else(dwcs_placeholder);
                class::send(
                    &self.netlink(),
                    &self.link,
                    ClassVerb::Change,
                    dwcs::qdisc_handle(),
                    handle,
                    dwcs::tc::KIND,
                    options.attribute(),
                )?;
            }
        }
        Ok(())
    }

    /// The scheduler's figures for the class `class` names.
    pub fn stats(&self, class: ClassKey) -> Result<SchedulerStats> {
        let ClassKey(handle) = class;
        let info = class::get_attached(&self.netlink(), &self.link, handle)?;
        Ok(match self.scheduler {
            SchedulerName::Htb => htb::stats_of(&info),
            _ => dwcs::stats_of(&info),
        })
    }

    /// Deletes `class` (`tc class del`) at once: what it still queues is
    /// dropped, as its owner is gone or closed it.
    pub fn remove(&self, class: StreamClass) -> Result<()> {
        match class::delete(&self.netlink(), &self.link, class.handle) {
            Ok(()) => {}
            Err(err) if err.errno() == libc::ENOENT => {}
            // A class that could not be deleted keeps its record, unheld
            // once the daemon ends, for `qsockctl prune` to find.
            Err(err) => return Err(err),
        }
        class.claim.release();
        Ok(())
    }

    /// Takes hold of the device's stream classes that nobody holds (left by
    /// a daemon that ended), with what their records say, for the caller to
    /// keep or remove.
    pub fn adopt_unheld(&self) -> Result<Vec<AdoptedClass>> {
        let _lock = self.records.lock()?;
        let mut adopted = Vec::new();
        for info in class::list(&self.netlink(), &self.link)? {
            let ours = match self.scheduler {
                SchedulerName::Htb => htb::is_stream_class(&info),
                _ => dwcs::is_stream_class(&info),
            };
            if !ours {
                continue;
            }
            let Some((orphan, owner)) = self.records.orphan(info.handle.minor) else {
                continue;
            };
            // Let go of the probe's lock, then claim the record as a holder.
            drop(orphan);
            let Some(mut claim) = self.records.claim(info.handle.minor)? else {
                continue;
            };
            if let Some(owner) = &owner {
                let _ = claim.record_owner(owner);
            }
            let reservation = match self.scheduler {
                SchedulerName::Htb => info
                    .rate()
                    // A placeholder, prepared or not yet configured,
                    // reserves nothing.
                    .filter(|&rate| rate > htb::MIN_RATE && rate != self.placeholder_rate)
                    .map_or(Reservation::NONE, |rate| Reservation { rate }),
                _ => dwcs_class_reservation(&DwcsClassOptions::parse(&info.options), self.link.mtu),
            };
            adopted.push(AdoptedClass {
                class: StreamClass {
                    handle: info.handle,
                    claim,
                },
                owner,
                reservation,
            });
        }
        Ok(adopted)
    }
}

/// `(1 − x/y)` of a stream's rate: the share of its packets DWCS must send
/// on time (all of them for `0/0`).
fn window_share(rate: Rate, oln: u32, old: u32) -> Reservation {
    let must = if old == 0 {
        1.0
    } else {
        1.0 - f64::from(oln) / f64::from(old)
    };
    Reservation {
        rate: Rate::from_bits_per_second((rate.bits_per_second() as f64 * must).ceil() as u64),
    }
}

/// What a stream reserves on dwcs: periodic streams their windows' share of
/// their rate; aperiodic and best-effort streams nothing.
fn dwcs_reservation(stream: &StreamParams, mtu: u32) -> Reservation {
    if stream.kind != StreamKind::Periodic {
        return Reservation::NONE;
    }
    let rate = stream_rate(packet_bytes(stream.packet_size, mtu), stream.ipg);
    window_share(rate, stream.window.oln, stream.window.old)
}

/// What an existing dwcs class reserves, from its options; the packet size
/// is not among them, so a full packet is assumed.
fn dwcs_class_reservation(options: &DwcsClassOptions, mtu: u32) -> Reservation {
    let aperiodic = options
        .flags
        .is_some_and(|flags| flags & TC_DWCS_CLASS_F_APERIODIC != 0);
    match options.period_ns.filter(|&period| period > 0 && !aperiodic) {
        Some(period) => window_share(
            stream_rate(full_packet_bytes(mtu), Duration::from_nanos(period)),
            options.oln.unwrap_or(0),
            options.old.unwrap_or(0),
        ),
        None => Reservation::NONE,
    }
}

/// The record of a stream held for the client process `pid` of user `uid`.
pub fn client_owner(pid: u32, uid: u32) -> StreamOwner {
    crate::backend::owner::process(pid, uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dwcs_stream_reserves_the_share_of_its_packets_its_window_must_send() {
        // 1062 bytes on the wire every 2 ms: 4.248 Mbit/s; with 1 of every 4
        // allowed to miss, three quarters of that.
        let stream = StreamParams::periodic(Duration::from_millis(2), 1, 4).with_packet_size(1000);
        assert_eq!(
            dwcs_reservation(&stream, 1500).rate.bits_per_second(),
            3_186_000
        );
        let strict = StreamParams::periodic(Duration::from_millis(2), 0, 0).with_packet_size(1000);
        assert_eq!(
            dwcs_reservation(&strict, 1500).rate.bits_per_second(),
            4_248_000
        );
        assert_eq!(
            dwcs_reservation(&StreamParams::aperiodic(), 1500),
            Reservation::NONE
        );
        let share =
            dwcs_reservation(&stream, 1500).share_of(Rate::from_bits_per_second(10_000_000));
        assert!((share - 0.3186).abs() < 1e-9, "{share}");
    }

    #[test]
    fn an_existing_dwcs_class_reserves_by_its_options_at_full_packets() {
        let options = DwcsClassOptions {
            period_ns: Some(2_000_000),
            oln: Some(1),
            old: Some(2),
            flags: Some(TC_DWCS_CLASS_F_DROPPABLE),
        };
        // 1514 bytes every 2 ms is 6.056 Mbit/s; half must be sent.
        assert_eq!(
            dwcs_class_reservation(&options, 1500)
                .rate
                .bits_per_second(),
            3_028_000
        );
        assert_eq!(
            dwcs_class_reservation(&dwcs_placeholder(), 1500),
            Reservation::NONE
        );
    }
}
