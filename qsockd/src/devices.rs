//! The devices qsockd keeps: their scheduler installed at start, their
//! classes, their ledger, who may use them, and the classes a previous
//! qsockd left for their clients to take back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qsock::daemon::classes::{AdoptedClass, DeviceClasses, Reservation, StreamClass};
use qsock::{InitParams, Rate, SchedulerName, StreamParams};

use crate::admission::{Ledger, Settings};
use crate::config::{Config, DeviceConfig};

/// Classes kept prepared per device, so that an attach only sets
/// `SO_PRIORITY`: enough for a burst of sockets opened together (an
/// application opening a hundred streams at once, as Table 1 does), as
/// making one takes longer than an attach. An idle class holds no share.
pub const PREPARED_CLASSES: usize = 128;

/// How long a class left by a previous qsockd waits for its client to
/// attach the same socket again before it is removed.
pub const RESTART_GRACE: Duration = Duration::from_secs(30);

/// A class a previous qsockd held for a client that may reconnect.
#[derive(Debug)]
pub struct Waiting {
    /// The class and its record.
    pub adopted: AdoptedClass,
    /// When it is removed unless taken back.
    pub until: Instant,
}

/// One device qsockd keeps.
#[derive(Debug)]
pub struct Device {
    /// Its configuration.
    pub config: DeviceConfig,
    /// Its classes, shared with the worker that talks to the kernel.
    pub classes: Arc<DeviceClasses>,
    /// The link rate its scheduler runs at.
    pub link_rate: Rate,
    /// Its reservations.
    pub ledger: Ledger,
    /// How refusals name its settings.
    pub settings: Settings,
    /// Classes waiting to be taken back after a restart.
    pub waiting: Vec<Waiting>,
    /// What replaced qsock's root qdisc, once noticed (logged once).
    pub replaced: bool,
}

/// Whether process `pid` is alive (its `/proc` entry exists).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Device {
    /// Installs the configured scheduler (idempotent: an installed one is
    /// kept, its rate updated), takes hold of the classes a previous qsockd
    /// left and prepares classes ahead.
    pub fn start(config: &DeviceConfig, whole: &Config) -> Result<Device, String> {
        let mut init = InitParams::new(&config.name, config.scheduler).with_link_rate(config.rate);
        if let Some(resolution) = config.resolution {
            init = init.with_deadline_resolution(resolution);
        }
        let report = qsock::qsockinit(&init).map_err(|err| {
            format!(
                "{}: cannot install {}: {err}",
                config.name, config.scheduler
            )
        })?;
        log::info!("{}: {}", config.name, report.reason);
        let classes =
            DeviceClasses::open(&config.name).map_err(|err| format!("{}: {err}", config.name))?;
        let link_rate = classes.link_rate().ok().flatten().unwrap_or(config.rate);
        let classes = Arc::new(classes.with_link_rate(link_rate));
        let ledger = Ledger::new(
            &config.name,
            link_rate,
            config.reservable,
            config.default_quota,
            config.quotas.clone(),
        );
        let settings = Settings {
            reservable: whole.setting(&config.name, "reservable"),
            quota: match &whole.source {
                crate::config::Source::File(path) => format!(
                    "USER's entry under [device.quota] of the device {:?} in {}",
                    config.name,
                    path.display()
                ),
                crate::config::Source::Arguments => {
                    "qsockd's --default-quota (or a config file's [device.quota])".to_owned()
                }
            },
            default_quota: whole.setting(&config.name, "default_quota"),
        };
        let mut device = Device {
            config: config.clone(),
            classes,
            link_rate,
            ledger,
            settings,
            waiting: Vec::new(),
            replaced: false,
        };
        device.adopt_left_classes();
        device.replenish();
        Ok(device)
    }

    /// Classes a previous qsockd held: kept for [`RESTART_GRACE`] when
    /// their client still runs, removed at once when it does not.
    fn adopt_left_classes(&mut self) {
        let adopted = match self.classes.adopt_unheld() {
            Ok(adopted) => adopted,
            Err(err) => {
                log::warn!(
                    "{}: cannot look for classes left by a previous qsockd: {err}",
                    self.config.name
                );
                return;
            }
        };
        let until = Instant::now() + RESTART_GRACE;
        for found in adopted {
            let id = found.class.id();
            match &found.owner {
                Some(owner) if owner.pid != std::process::id() && alive(owner.pid) => {
                    log::info!(
                        "{}: kept class {id} of pid {} (uid {}, {}) for {}s for its client to \
                         attach again",
                        self.config.name,
                        owner.pid,
                        owner.uid,
                        found.reservation.rate,
                        RESTART_GRACE.as_secs()
                    );
                    self.ledger.hold(owner.uid, found.reservation);
                    self.waiting.push(Waiting {
                        adopted: found,
                        until,
                    });
                }
                _ => {
                    self.remove(found.class, "its client is gone");
                }
            }
        }
    }

    /// Deletes a class, saying why in the log.
    pub fn remove(&self, class: StreamClass, why: &str) {
        let id = class.id();
        match self.classes.remove(class) {
            Ok(()) => log::info!("{}: removed class {id}: {why}", self.config.name),
            Err(err) => log::warn!(
                "{}: cannot remove class {id} ({why}): {err}",
                self.config.name
            ),
        }
    }

    /// Prepares classes up to [`PREPARED_CLASSES`].
    pub fn replenish(&mut self) {
        if self.replaced {
            return;
        }
        if let Err(err) = self.classes.prepare(PREPARED_CLASSES) {
            log::warn!("{}: cannot prepare classes ahead: {err}", self.config.name);
        }
    }

    /// Takes back the class a previous qsockd held for the socket whose
    /// `SO_PRIORITY` names class `minor`, when user `uid` owned it.
    pub fn take_waiting(&mut self, minor: u16, uid: u32) -> Option<AdoptedClass> {
        let at = self.waiting.iter().position(|waiting| {
            DeviceClasses::minor(&waiting.adopted.class) == minor
                && waiting
                    .adopted
                    .owner
                    .as_ref()
                    .is_some_and(|owner| owner.uid == uid)
        })?;
        let waiting = self.waiting.swap_remove(at);
        self.ledger.release(uid, waiting.adopted.reservation);
        Some(waiting.adopted)
    }

    /// Once a second: says once when qsock's root qdisc was replaced or
    /// removed behind qsockd's back (and when it is back), and removes the
    /// classes whose grace ran out or whose client ended.
    pub fn tick(&mut self, now: Instant) {
        match self.classes.still_installed() {
            Ok(true) if self.replaced => {
                log::info!(
                    "{}: qsock's {} root qdisc is back; serving again",
                    self.config.name,
                    self.config.scheduler
                );
                self.replaced = false;
                self.replenish();
            }
            Ok(false) if !self.replaced => {
                log::warn!(
                    "{}: qsock's {} root qdisc was replaced or removed behind qsockd's back: its \
                     streams lost their classes and new ones are refused until it is back; remove \
                     what replaced it (`tc qdisc del dev {} root`) and restart qsockd, or install \
                     it as root (`qsockctl init --dev {} --scheduler {} --rate {}`)",
                    self.config.name,
                    self.config.scheduler,
                    self.config.name,
                    self.config.name,
                    self.config.scheduler,
                    self.config.rate
                );
                self.replaced = true;
                self.classes.forget_prepared();
            }
            Err(err) if !self.replaced => {
                log::warn!("{}: cannot read the root qdisc: {err}", self.config.name);
                self.replaced = true;
            }
            _ => {}
        }
        let mut index = 0;
        while index < self.waiting.len() {
            let waiting = &self.waiting[index];
            let owner_gone = waiting
                .adopted
                .owner
                .as_ref()
                .is_none_or(|owner| !alive(owner.pid));
            if now < waiting.until && !owner_gone {
                index += 1;
                continue;
            }
            let waiting = self.waiting.swap_remove(index);
            let uid = waiting.adopted.owner.as_ref().map_or(0, |owner| owner.uid);
            self.ledger.release(uid, waiting.adopted.reservation);
            let why = if owner_gone {
                "its client ended before attaching again"
            } else {
                "its client did not attach again within the grace period after qsockd restarted"
            };
            self.remove(waiting.adopted.class, why);
        }
    }

    /// Whether user `uid` (in groups `groups`) may use the device.
    pub fn allows(&self, uid: u32, groups: &[u32]) -> bool {
        if uid == 0 {
            return true;
        }
        let (users, allowed_groups) = (&self.config.allow_users, &self.config.allow_groups);
        if users.is_none() && allowed_groups.is_none() {
            return true;
        }
        users.as_ref().is_some_and(|users| users.contains(&uid))
            || allowed_groups
                .as_ref()
                .is_some_and(|allowed| groups.iter().any(|gid| allowed.contains(gid)))
    }

    /// What `stream` would reserve here.
    pub fn reservation(&self, stream: &StreamParams) -> qsock::Result<Reservation> {
        self.classes.reservation(stream, self.link_rate)
    }

    /// The scheduler the device runs.
    pub fn scheduler(&self) -> SchedulerName {
        self.config.scheduler
    }
}
