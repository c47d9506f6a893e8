//! What the kernel schedulers share: one `qsockinit` flow (an installed
//! root is updated, someone else's is refused, a fresh one is recorded and
//! made), each supplying its qdisc's options and what it adds around them,
//! and the [`Backend`] made of each.

use netlink_packet_route::tc::TcAttribute;
use socket2::Socket;

use super::owner::DeviceRecords;
use super::{
    begin_kernel_report, busy, installed_scheduler, is_ours, reset_kernel_root, Attachment,
    Backend, DeviceReport, InitReport, PrunedStream,
};
use crate::error::{Error, ErrorKind, Result};
use crate::params::{InitParams, QosParams, Rate, SchedulerName};
use crate::tc::link::{self, Link};
use crate::tc::qdisc::{self, RootQdisc};
use crate::tc::Netlink;

/// qsock's root qdisc of a scheduler's kind on a device, and the connection
/// to reach it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OurRoot<'a> {
    /// The rtnetlink connection.
    pub(crate) nl: &'a Netlink,
    /// The device.
    pub(crate) link: &'a Link,
    /// The root qdisc as the kernel dumps it.
    pub(crate) qdisc: &'a RootQdisc,
}

/// What a kernel scheduler does of its own.
pub(crate) trait KernelScheduler: Send + Sync {
    /// The scheduler's name.
    const NAME: SchedulerName;
    /// The kind of its root qdisc.
    const KIND: &'static str;
    /// How reasons name the qdisc (`HTB`, `dwcs`).
    const LABEL: &'static str;
    /// Whether it classes best effort apart from the streams, so that
    /// `InitParams::best_effort_rate` can cap it alone.
    const CAPS_BEST_EFFORT: bool;

    /// On a device whose root is qsock's qdisc of this kind already: applies
    /// what `init` changes, and says what changed (`None` when nothing did).
    fn update(&self, root: OurRoot<'_>, init: &InitParams) -> Result<Option<String>>;

    /// The error when the install gives no link rate and the device reports
    /// no speed.
    fn no_link_rate(&self, device: &str) -> Error {
        speed_unknown(device)
    }

    /// The root qdisc's options for a link of `rate`, and how the reason
    /// describes them.
    fn root_options(&self, init: &InitParams, rate: Rate) -> (TcAttribute, String);

    /// The kernel's refusal of the root qdisc, worded for this scheduler.
    fn root_refused(&self, err: Error) -> Error {
        err
    }

    /// What the fresh root needs under it, as `init` asks, before it may
    /// carry traffic.
    fn populate(&self, _nl: &Netlink, _link: &Link, _init: &InitParams, _rate: Rate) -> Result<()> {
        Ok(())
    }

    /// [`Backend::attach`].
    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>>;

    /// Completes the report of a device this scheduler runs (`root`): its
    /// link rate, streams and best effort.
    fn fill_report(&self, root: OurRoot<'_>, report: &mut DeviceReport) -> Result<()>;

    /// [`Backend::prune`].
    fn prune(&self, device: &str) -> Result<Vec<PrunedStream>>;
}

impl<K: KernelScheduler> Backend for K {
    fn name(&self) -> SchedulerName {
        K::NAME
    }

    fn install(&self, init: &InitParams) -> Result<InitReport> {
        install(self, init)
    }

    fn kernel_kind(&self) -> Option<&'static str> {
        Some(K::KIND)
    }

    fn is_installed(&self, device: &str) -> Result<bool> {
        is_installed(device, K::KIND)
    }

    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>> {
        KernelScheduler::attach(self, socket, params)
    }

    fn report(&self, device: &str) -> Result<DeviceReport> {
        let nl = Netlink::open()?;
        let link = link::lookup(&nl, device)?;
        let (mut report, root) = begin_kernel_report(&nl, &link, K::KIND, K::NAME)?;
        if let Some(qdisc) = root {
            let root = OurRoot {
                nl: &nl,
                link: &link,
                qdisc: &qdisc,
            };
            self.fill_report(root, &mut report)?;
        }
        Ok(report)
    }

    /// `tc qdisc del dev DEV root`, when the root is qsock's qdisc of this kind.
    fn reset(&self, device: &str) -> Result<()> {
        reset_kernel_root(device, K::KIND)
    }

    fn prune(&self, device: &str) -> Result<Vec<PrunedStream>> {
        KernelScheduler::prune(self, device)
    }
}

/// The refusal of an install that has no link rate to go by.
pub(crate) fn speed_unknown(device: &str) -> Error {
    Error::invalid(format!(
        "{device} does not report its speed (virtual devices such as veth often do not): give \
         the link rate, e.g. `--rate 100mbit` (InitParams::link_rate)"
    ))
}

/// `qsockinit` for `backend`: idempotent for its own root qdisc (updated
/// where `init` changes it), `Busy` for a root someone installed on purpose.
fn install<B: KernelScheduler>(backend: &B, init: &InitParams) -> Result<InitReport> {
    init.validate()?;
    if init.best_effort_rate.is_some() && !B::CAPS_BEST_EFFORT {
        return Err(Error::new(
            ErrorKind::NotSupported,
            format!(
                "{} queues the traffic of no stream in one queue under the link rate and \
                 cannot cap it apart from the streams: use scheduler htb, narrow the whole \
                 link (its rate), or ask for no cap on best effort",
                B::LABEL
            ),
        ));
    }
    let nl = Netlink::open()?;
    let link = link::lookup(&nl, &init.device)?;
    let device = &init.device;
    let records = DeviceRecords::of(&link)?;
    match qdisc::root(&nl, &link)? {
        Some(root) if root.kind == B::KIND && is_ours(&records, &root)? => {
            let mut reason = format!(
                "qsock's {} was already the root qdisc of {device}",
                B::LABEL
            );
            if let Some(changed) = backend.update(
                OurRoot {
                    nl: &nl,
                    link: &link,
                    qdisc: &root,
                },
                init,
            )? {
                reason.push_str(&format!("; {changed}"));
            }
            return Ok(InitReport {
                scheduler: B::NAME,
                device: device.clone(),
                installed_now: false,
                reason,
            });
        }
        Some(root) if !root.is_kernel_default() => {
            let ours = installed_scheduler(&records, &root);
            return Err(busy(device, &root, ours, B::NAME));
        }
        _ => {}
    }
    let (rate, source) = match init.link_rate {
        Some(rate) => (rate, "as given"),
        None => match link::speed(&link) {
            Some(rate) => (rate, "the device's speed"),
            None => return Err(backend.no_link_rate(device)),
        },
    };
    let (options, described) = backend.root_options(init, rate);
    records.record_root(B::KIND)?;
    if let Err(err) = qdisc::replace_root(&nl, &link, B::KIND, options) {
        records.forget_root();
        return Err(backend.root_refused(err));
    }
    if let Err(err) = backend.populate(&nl, &link, init, rate) {
        // A root without what it needs could hold every packet back: put
        // the kernel's default back.
        let _ = qdisc::delete_root(&nl, &link);
        records.forget_all();
        return Err(err);
    }
    Ok(InitReport {
        scheduler: B::NAME,
        device: device.clone(),
        installed_now: true,
        reason: format!(
            "installed {} 7173: on {device} {described} ({source})",
            B::LABEL
        ),
    })
}

/// Is qsock's root qdisc of `kind` installed on the device right now?
fn is_installed(device: &str, kind: &str) -> Result<bool> {
    let nl = Netlink::open()?;
    let link = link::lookup(&nl, device)?;
    let records = DeviceRecords::of(&link)?;
    Ok(qdisc::root(&nl, &link)?
        .is_some_and(|root| root.kind == kind && matches!(is_ours(&records, &root), Ok(true))))
}
