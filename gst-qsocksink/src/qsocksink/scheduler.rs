//! Which scheduler the sink's socket is attached to: the installed one, or
//! the one the sink installs, and what to tell the user when `auto` falls
//! back to the user scheduler.

use gst::subclass::prelude::*;
use qsock::{ErrorKind, InitParams, QSocket, QosParams, Rate, SchedulerName};
use socket2::{Domain, Protocol, Type};

use super::imp::{QSockSink, CAT};
use super::settings::Settings;

/// Whether `err` is a device that does not report its speed, which only a
/// link rate fixes.
fn lacks_speed(err: &qsock::Error) -> bool {
    err.kind() == ErrorKind::InvalidInput && err.message().contains("speed")
}

/// What a user can do when a kernel scheduler cannot be installed.
fn install_fix(err: &qsock::Error, settings: &Settings, device: &str) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => "run as root (or with CAP_NET_ADMIN) to install it, or set \
                                        scheduler=user, which needs no privilege"
            .to_string(),
        ErrorKind::Busy => format!(
            "remove the other root qdisc first (`tc qdisc del dev {device} root`), or set \
             scheduler=user"
        ),
        _ if lacks_speed(err) => {
            "set the link-rate property (e.g. link-rate=100mbit) so that it can be installed"
                .to_string()
        }
        _ if !settings.link_rate.is_empty() => format!(
            "check link-rate={}: the scheduler is installed at that rate, and the kernel refuses \
             rates it cannot shape (give the link's real rate, e.g. link-rate=100mbit)",
            settings.link_rate
        ),
        _ => "check the device and the scheduler's module (`qsockctl init` says the same)"
            .to_string(),
    }
}

fn passed_over_reasons(passed_over: &[(SchedulerName, qsock::Error)]) -> String {
    passed_over
        .iter()
        .map(|(scheduler, err)| format!("{scheduler}: {err}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one warning `scheduler=auto` posts when it falls back to the user
/// scheduler: what it wanted, why each kernel scheduler was passed over, and
/// what would give it one.
fn fallback_warning(
    device: &str,
    passed_over: &[(SchedulerName, qsock::Error)],
    settings: &Settings,
) -> String {
    let privileged = qsock::has_net_admin();
    let mut fixes = Vec::new();
    let mut add = |fix: String| {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    };
    if !privileged
        || passed_over
            .iter()
            .any(|(_, err)| err.kind() == ErrorKind::PermissionDenied)
    {
        add("run the pipeline as root or with CAP_NET_ADMIN".to_string());
        add(format!(
            "or start qsockd with {device} in its configuration, which schedules streams for \
             pipelines without that privilege"
        ));
    }
    for (scheduler, err) in passed_over {
        match err.kind() {
            ErrorKind::PermissionDenied => {}
            ErrorKind::Busy => add(format!(
                "remove the root qdisc an administrator put on {device} (`tc qdisc del dev \
                 {device} root`) if qsock may replace it"
            )),
            _ if lacks_speed(err) => add(format!(
                "set link-rate (e.g. link-rate=100mbit), as {device} does not report its speed"
            )),
            _ if *scheduler == SchedulerName::Dwcs => {
                add("load sch_dwcs (`modprobe sch_dwcs`) for dwcs".to_string())
            }
            _ => add(install_fix(err, settings, device)),
        }
    }
    let privilege = if privileged {
        ""
    } else {
        "this process lacks CAP_NET_ADMIN, which installing a kernel scheduler needs; "
    };
    format!(
        "scheduler=auto wanted a kernel scheduler (dwcs, else htb) on {device} but uses the user \
         scheduler, which cannot hold back other processes' traffic: {privilege}{}. To have a \
         kernel scheduler: {}; or set scheduler=user to choose the user scheduler without this \
         warning",
        passed_over_reasons(passed_over),
        fixes.join("; ")
    )
}

impl QSockSink {
    /// `qsocket` with `params`. When qsockd refuses to admit the stream
    /// and `scheduler=auto`, the user scheduler instead, saying once why,
    /// in qsockd's words; any other scheduler setting fails with them.
    pub(super) fn open_socket(
        &self,
        settings: &Settings,
        domain: Domain,
        params: &QosParams,
    ) -> Result<QSocket, qsock::Error> {
        let refused = match QSocket::new(domain, Type::DGRAM, Some(Protocol::UDP), params) {
            Err(err)
                if err.kind() == ErrorKind::AdmissionRefused
                    && settings.scheduler.name() == SchedulerName::Auto =>
            {
                err
            }
            other => return other,
        };
        let mut user = InitParams::new(&params.device, SchedulerName::User);
        user.link_rate = settings.link_rate.parse::<Rate>().ok();
        qsock::qsockinit(&user)?;
        let socket = QSocket::new(
            domain,
            Type::DGRAM,
            Some(Protocol::UDP),
            &QosParams {
                scheduler: SchedulerName::User,
                ..params.clone()
            },
        )?;
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Settings,
            (
                "scheduler=auto wanted the {} scheduler on {} but uses the user scheduler, which \
                 cannot hold back other processes' traffic: {refused}. To have the kernel \
                 scheduler, close other streams or raise this user's quota in qsockd's \
                 configuration; or set scheduler=user to choose the user scheduler without this \
                 warning",
                params.scheduler,
                params.device
            )
        );
        Ok(socket)
    }

    /// The scheduler to attach to: the installed one when it is what was
    /// asked for (or `auto` was), else what `qsockinit` installs now. `auto`
    /// installs the first kernel scheduler that works, else the user
    /// scheduler, and then says once why and how to have a kernel one.
    pub(super) fn prepare_scheduler(
        &self,
        settings: &Settings,
        device: &str,
    ) -> Result<SchedulerName, gst::ErrorMessage> {
        let wanted = settings.scheduler.name();
        // Read even when the device has a scheduler already: a rate no
        // scheduler can take is refused, not ignored until it matters.
        let link_rate = (!settings.link_rate.is_empty())
            .then(|| settings.link_rate.parse::<Rate>())
            .transpose()
            .map_err(|err| gst::error_msg!(gst::ResourceError::Settings, ("link-rate: {err}")))?;
        let installed = qsock::report(device)
            .ok()
            .and_then(|report| report.scheduler);
        match installed {
            Some(installed) if wanted == SchedulerName::Auto || wanted == installed => {
                gst::info!(
                    CAT,
                    imp = self,
                    "{device} already has the {installed} scheduler"
                );
                return Ok(installed);
            }
            _ => {}
        }
        let mut init = InitParams::new(device, wanted);
        if let Some(rate) = link_rate {
            init = init.with_link_rate(rate);
        }
        init.validate().map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("cannot install a scheduler on {device}: {err}")
            )
        })?;
        if wanted != SchedulerName::Auto {
            return match qsock::qsockinit(&init) {
                Ok(report) => Ok(self.installed(&report)),
                Err(err) => Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    (
                        "cannot use the {wanted} scheduler on {device}: {err}; {}; or set \
                         scheduler=auto, which falls back to the user scheduler",
                        install_fix(&err, settings, device)
                    )
                )),
            };
        }
        let mut passed_over = Vec::new();
        for kernel in [SchedulerName::Dwcs, SchedulerName::Htb] {
            let attempt = InitParams {
                scheduler: kernel,
                ..init.clone()
            };
            match qsock::qsockinit(&attempt) {
                Ok(report) => return Ok(self.installed(&report)),
                Err(err) => passed_over.push((kernel, err)),
            }
        }
        let user = InitParams {
            scheduler: SchedulerName::User,
            ..init
        };
        let report = qsock::qsockinit(&user).map_err(|user_err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "no scheduler works on {device}: {}; and the user scheduler: {user_err}",
                    passed_over_reasons(&passed_over)
                )
            )
        })?;
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Settings,
            ("{}", fallback_warning(device, &passed_over, settings))
        );
        Ok(report.scheduler)
    }

    /// Says what `qsockinit` did; a kernel scheduler installed now outlives
    /// the pipeline, so the bus hears how to remove it.
    fn installed(&self, report: &qsock::InitReport) -> SchedulerName {
        let device = &report.device;
        let message = format!(
            "installed the {} scheduler on {device}: {}",
            report.scheduler, report.reason
        );
        gst::info!(CAT, imp = self, "{message}");
        if report.installed_now && report.scheduler != SchedulerName::User {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("{message}. It stays after the pipeline ends; `qsockctl reset --dev {device}` \
                  removes it")
            );
        }
        report.scheduler
    }
}
