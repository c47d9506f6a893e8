//! What an application asks of the scheduler: which device and scheduler
//! (`struct qos_params`), and the stream's period and loss tolerance
//! (`struct q_dwcs_attr`). Everything is validated before any state changes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Longest interface name the kernel accepts, without the terminating NUL.
pub const MAX_DEVICE_NAME: usize = libc::IFNAMSIZ - 1;

/// A scheduler backend, named as in `qsockctl --scheduler`, `qos_params.name`
/// and the GStreamer sink's `scheduler` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SchedulerName {
    /// sch_dwcs, the DWCS qdisc of kmod-dwcs, as the device's root qdisc.
    Dwcs,
    /// The kernel's HTB qdisc: one class per stream, rate isolation only.
    Htb,
    /// The DWCS model on a thread of this process: no privilege needed.
    User,
    /// The first of `dwcs`, `htb`, `user` that works here.
    Auto,
}

impl SchedulerName {
    /// Every name, in the order `auto` tries them (auto itself last).
    pub const ALL: [SchedulerName; 4] = [
        SchedulerName::Dwcs,
        SchedulerName::Htb,
        SchedulerName::User,
        SchedulerName::Auto,
    ];

    /// The name as written on the command line and in `qos_params.name`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerName::Dwcs => "dwcs",
            SchedulerName::Htb => "htb",
            SchedulerName::User => "user",
            SchedulerName::Auto => "auto",
        }
    }
}

impl fmt::Display for SchedulerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SchedulerName::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotSupported,
                    format!("unknown scheduler {s:?}: choose one of dwcs, htb, user or auto"),
                )
            })
    }
}

/// A link rate in bits per second, written the way `tc` writes rates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Rate {
    bits_per_second: u64,
}

impl Rate {
    /// A rate of `bits_per_second`.
    pub const fn from_bits_per_second(bits_per_second: u64) -> Self {
        Rate { bits_per_second }
    }

    /// The rate in bits per second.
    pub const fn bits_per_second(self) -> u64 {
        self.bits_per_second
    }

    /// The rate in bytes per second, rounded down.
    pub const fn bytes_per_second(self) -> u64 {
        self.bits_per_second / 8
    }

    /// The slowest rate a scheduler can be given: the kernel counts rates in
    /// whole bytes per second (HTB refuses anything less with EINVAL).
    pub const MIN: Rate = Rate::from_bits_per_second(8);
    /// The fastest rate: the kernel's 64-bit rates.
    pub const MAX: Rate = Rate::from_bits_per_second(u64::MAX);

    /// This rate, if a scheduler can take it; else an error that says which
    /// rates it can take. `text` is the rate as the caller wrote it.
    pub(crate) fn validate(self, text: &str) -> Result<Rate> {
        if self < Rate::MIN {
            return Err(Rate::out_of_range(text));
        }
        Ok(self)
    }

    fn out_of_range(text: &str) -> Error {
        Error::invalid(format!(
            "the rate {text:?} is out of range: give at least 8bit (1 byte per second, the least \
             the kernel can pace) and at most 18446744073709551615bit (2^64-1 bit/s, about 18 \
             exabit)"
        ))
    }

    /// The rate at which `bytes` left over `elapsed`; None over no time.
    pub fn of(bytes: u64, elapsed: Duration) -> Option<Rate> {
        let nanos = elapsed.as_nanos();
        (nanos > 0).then(|| {
            let bits = u128::from(bytes) * 8 * 1_000_000_000 / nanos;
            Rate::from_bits_per_second(u64::try_from(bits).unwrap_or(u64::MAX))
        })
    }

    /// How long `bytes` take to leave at this rate.
    pub fn transmit_time(self, bytes: u64) -> Duration {
        if self.bits_per_second == 0 {
            return Duration::ZERO;
        }
        let nanos = u128::from(bytes) * 8 * 1_000_000_000 / u128::from(self.bits_per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bps = self.bits_per_second;
        for (unit, scale) in [
            ("gbit", 1_000_000_000),
            ("mbit", 1_000_000),
            ("kbit", 1_000),
        ] {
            if bps >= scale && bps % scale == 0 {
                return write!(f, "{}{unit}", bps / scale);
            }
        }
        write!(f, "{bps}bit")
    }
}

impl FromStr for Rate {
    type Err = Error;

    /// Parses `tc`'s rate syntax: a number followed by `bit`, `kbit`, `mbit`,
    /// `gbit` (bits per second, SI), `bps`, `kbps`, `mbps`, `gbps` (bytes per
    /// second) or their binary `kibit`/`kibps`/... forms. A bare number is bits
    /// per second.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "cannot read the rate {text:?}: write a number and a unit as tc does, e.g. 10mbit, \
                 500kbit or 2mbps (bytes per second)"
            ))
        };
        let s = text.trim().to_ascii_lowercase();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let multiplier: u128 = match unit {
            "" | "bit" => 1,
            "kbit" => 1_000,
            "mbit" => 1_000_000,
            "gbit" => 1_000_000_000,
            "tbit" => 1_000_000_000_000,
            "kibit" => 1 << 10,
            "mibit" => 1 << 20,
            "gibit" => 1 << 30,
            "bps" => 8,
            "kbps" => 8_000,
            "mbps" => 8_000_000,
            "gbps" => 8_000_000_000,
            "kibps" => 8 << 10,
            "mibps" => 8 << 20,
            "gibps" => 8 << 30,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(bad());
        }
        // Exact decimal arithmetic: through f64, 2^64 bit/s would round to
        // u64::MAX and pass. Digits past the ninth after the point cannot
        // move a rate by a whole bit per second at any unit but tbit.
        let fraction = &fraction[..fraction.len().min(9)];
        let scale = 10u128.pow(fraction.len() as u32);
        let digits = |part: &str| -> Option<u128> {
            if part.is_empty() {
                Some(0)
            } else {
                part.parse().ok()
            }
        };
        let bits = digits(whole)
            .and_then(|whole| whole.checked_mul(scale))
            .zip(digits(fraction))
            .and_then(|(whole, fraction)| whole.checked_add(fraction))
            .and_then(|scaled| scaled.checked_mul(multiplier))
            .map(|scaled| (scaled + scale / 2) / scale)
            .and_then(|bits| u64::try_from(bits).ok());
        match bits {
            Some(bits) => Rate::from_bits_per_second(bits).validate(text),
            None => Err(Rate::out_of_range(text)),
        }
    }
}

/// A stream's window-constraint: of every `old` consecutive packets at most
/// `oln` may miss their deadlines. `0/0` means no loss is tolerated (pure EDF).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct WindowConstraint {
    /// Packets that may miss in a window (the paper's numerator, x).
    pub oln: u32,
    /// Window length in packets (the paper's denominator, y).
    pub old: u32,
}

impl WindowConstraint {
    /// `oln` misses allowed in every `old` packets.
    pub const fn new(oln: u32, old: u32) -> Self {
        WindowConstraint { oln, old }
    }

    /// Checks the two rules of DWCS: `oln <= old`, and `old > 0` whenever `oln > 0`.
    pub fn validate(self) -> Result<Self> {
        if self.old == 0 && self.oln > 0 {
            return Err(Error::invalid(format!(
                "loss window {}/{} is invalid: old (the window length) is 0 but oln is {}; use \
                 oln=0 old=0 for no loss tolerance, or a window with old >= oln",
                self.oln, self.old, self.oln
            )));
        }
        if self.oln > self.old {
            return Err(Error::invalid(format!(
                "loss window {}/{} is invalid: oln (packets that may miss) must not exceed old \
                 (the window length)",
                self.oln, self.old
            )));
        }
        Ok(self)
    }
}

/// How a stream's traffic is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// One packet every `ipg`; deadlines follow from the period unless a packet
    /// carries its own.
    Periodic,
    /// No period: every packet's deadline is its own (EDF for aperiodic data).
    Aperiodic,
    /// No deadlines at all: the scheduler's best-effort FIFO.
    BestEffort,
}

/// The scheduling attributes of one stream (the paper's `struct q_dwcs_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StreamParams {
    /// How the stream is timed.
    pub kind: StreamKind,
    /// Request period: the spacing between consecutive packets' deadlines.
    pub ipg: Duration,
    /// Loss tolerance.
    pub window: WindowConstraint,
    /// Lossy (late packets are dropped at the source) or lossless (sent late).
    pub droppable: bool,
    /// Send ahead of the period when the link is idle, instead of pacing.
    pub work_conserving: bool,
    /// Largest datagram the stream sends, used to size rate-based classes;
    /// `None` takes the device's MTU.
    pub packet_size: Option<u32>,
}

impl StreamParams {
    /// A lossy periodic stream: one packet every `ipg`, `oln` of every `old` may miss.
    pub fn periodic(ipg: Duration, oln: u32, old: u32) -> Self {
        StreamParams {
            kind: StreamKind::Periodic,
            ipg,
            window: WindowConstraint::new(oln, old),
            droppable: true,
            work_conserving: false,
            packet_size: None,
        }
    }

    /// An aperiodic stream whose packets carry their own deadlines.
    pub fn aperiodic() -> Self {
        StreamParams {
            kind: StreamKind::Aperiodic,
            ipg: Duration::ZERO,
            window: WindowConstraint::default(),
            droppable: true,
            work_conserving: true,
            packet_size: None,
        }
    }

    /// Best-effort traffic: no period, no deadlines.
    pub fn best_effort() -> Self {
        StreamParams {
            kind: StreamKind::BestEffort,
            ..StreamParams::aperiodic()
        }
    }

    /// The same stream, lossless: late packets are sent late instead of dropped.
    pub fn lossless(mut self) -> Self {
        self.droppable = false;
        self
    }

    /// The same stream, allowed to send ahead of its period when the link is idle.
    pub fn work_conserving(mut self) -> Self {
        self.work_conserving = true;
        self
    }

    /// The same stream, with its largest datagram size given.
    pub fn with_packet_size(mut self, bytes: u32) -> Self {
        self.packet_size = Some(bytes);
        self
    }

    /// Checks every rule; the error says which was broken and how to mend it.
    pub fn validate(self) -> Result<Self> {
        self.window.validate()?;
        if self.kind == StreamKind::Periodic && self.ipg.is_zero() {
            return Err(Error::invalid(
                "ipg is 0 for a periodic stream: give the spacing between packets (e.g. 50 ms for \
                 one packet per frame at 20 fps), or mark the stream aperiodic or best-effort",
            ));
        }
        if self.kind == StreamKind::Periodic && self.ipg > Duration::from_secs(3600) {
            return Err(Error::invalid(format!(
                "ipg {:?} is longer than an hour: give the spacing between packets",
                self.ipg
            )));
        }
        if let Some(size) = self.packet_size {
            if !(1..=65_535).contains(&size) {
                return Err(Error::invalid(format!(
                    "packet size {size} is out of range: a datagram has 1 to 65535 bytes"
                )));
            }
        }
        Ok(self)
    }
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams::best_effort()
    }
}

/// Checks an interface name the way the kernel will, before any call is made.
pub fn validate_device(device: &str) -> Result<()> {
    if device.is_empty() {
        return Err(Error::new(
            ErrorKind::NoDevice,
            "no device given: name the network interface the traffic leaves by (e.g. eth0)",
        ));
    }
    if device.len() > MAX_DEVICE_NAME
        || device
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(Error::new(
            ErrorKind::NoDevice,
            format!(
                "{device:?} is not a valid interface name: at most {MAX_DEVICE_NAME} characters, \
                 without '/', ':' or spaces"
            ),
        ));
    }
    Ok(())
}

/// Which device and scheduler a socket is attached to, and its stream's
/// attributes (the paper's `struct qos_params`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QosParams {
    /// The network interface the traffic leaves by.
    pub device: String,
    /// The scheduler backend.
    pub scheduler: SchedulerName,
    /// The stream's attributes.
    pub stream: StreamParams,
}

impl QosParams {
    /// Parameters for a stream on `device` under `scheduler`.
    pub fn new(device: impl Into<String>, scheduler: SchedulerName, stream: StreamParams) -> Self {
        QosParams {
            device: device.into(),
            scheduler,
            stream,
        }
    }

    /// Checks the device name and the stream's attributes.
    pub fn validate(&self) -> Result<()> {
        validate_device(&self.device)?;
        self.stream.validate()?;
        Ok(())
    }
}

/// What `qsockinit` installs on a device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitParams {
    /// The network interface.
    pub device: String,
    /// The scheduler backend.
    pub scheduler: SchedulerName,
    /// The rate the scheduler may send at in all: it becomes the bottleneck
    /// where queues form and are ordered. `None` uses the device's speed.
    pub link_rate: Option<Rate>,
    /// The most the device's traffic of no stream (best effort) may send:
    /// where this host's traffic crosses a bottleneck narrower than the
    /// link further on, its bulk traffic waits here, behind the streams,
    /// while the streams keep their own rates and send at the link's.
    /// `None` keeps the cap the scheduler has (none, when installed); a
    /// rate at or above the link rate lifts it. Only `htb` classes best
    /// effort apart from the streams.
    pub best_effort_rate: Option<Rate>,
    /// Most packets queued in the scheduler at once; `None` takes the default.
    pub limit: Option<u32>,
    /// How finely the scheduler tells deadlines apart; `None` takes
    /// [`InitParams::DEFAULT_DEADLINE_RESOLUTION`]. Streams whose deadlines fall
    /// in the same slot are ordered by their loss windows, which is what lets
    /// DWCS share losses among streams that one application started together.
    pub deadline_resolution: Option<Duration>,
}

impl InitParams {
    /// Install `scheduler` on `device` with default limits.
    pub fn new(device: impl Into<String>, scheduler: SchedulerName) -> Self {
        InitParams {
            device: device.into(),
            scheduler,
            link_rate: None,
            best_effort_rate: None,
            limit: None,
            deadline_resolution: None,
        }
    }

    /// The deadline resolution when none is given: a millisecond, finer than
    /// any frame interval and coarser than a busy host's scheduling jitter.
    pub const DEFAULT_DEADLINE_RESOLUTION: Duration = Duration::from_millis(1);

    /// The deadline resolution in force.
    pub fn deadline_resolution(&self) -> Duration {
        self.deadline_resolution
            .unwrap_or(InitParams::DEFAULT_DEADLINE_RESOLUTION)
    }

    /// The same, with a link rate.
    pub fn with_link_rate(mut self, rate: Rate) -> Self {
        self.link_rate = Some(rate);
        self
    }

    /// The same, with best effort capped at `rate` (see
    /// [`InitParams::best_effort_rate`]).
    pub fn with_best_effort_rate(mut self, rate: Rate) -> Self {
        self.best_effort_rate = Some(rate);
        self
    }

    /// The same, with a deadline resolution.
    pub fn with_deadline_resolution(mut self, resolution: Duration) -> Self {
        self.deadline_resolution = Some(resolution);
        self
    }

    /// Checks the device name and the limit.
    pub fn validate(&self) -> Result<()> {
        validate_device(&self.device)?;
        if self.deadline_resolution() > Duration::from_secs(1) {
            return Err(Error::invalid(format!(
                "a deadline resolution of {:?} would make every deadline within it equal: give \
                 at most one second (the default is one millisecond)",
                self.deadline_resolution()
            )));
        }
        if let Some(rate) = self.link_rate {
            rate.validate(&format!("{}bit", rate.bits_per_second()))?;
        }
        if let Some(rate) = self.best_effort_rate {
            rate.validate(&format!("{}bit", rate.bits_per_second()))?;
        }
        if self.limit == Some(0) {
            return Err(Error::invalid(
                "a packet limit of 0 would refuse every packet: give at least 1, or leave it unset",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_like_tc() {
        assert_eq!(
            "10mbit".parse::<Rate>().unwrap().bits_per_second(),
            10_000_000
        );
        assert_eq!(
            "2mbps".parse::<Rate>().unwrap().bits_per_second(),
            16_000_000
        );
        assert_eq!("1.5kbit".parse::<Rate>().unwrap().bits_per_second(), 1_500);
        assert_eq!("64000".parse::<Rate>().unwrap().bits_per_second(), 64_000);
        assert_eq!(Rate::from_bits_per_second(10_000_000).to_string(), "10mbit");
        for bad in ["", "mbit", "10 furlongs", "-5mbit", "0bit"] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn rates_the_kernel_cannot_take_are_refused_with_the_range() {
        for bad in [
            "1bit",
            "7bit",
            "7.4bit",
            "0.5bps",
            "18446744073709551616",
            "18446744073709551616bit",
            "18446744073709551615.5bit",
            "20000000tbit",
            "99999999999999999999999999999999999999999bit",
        ] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(
                err.message().contains("at least 8bit")
                    && err.message().contains("at most 18446744073709551615bit"),
                "{bad:?}: {err}"
            );
        }
        assert_eq!("8bit".parse::<Rate>().unwrap(), Rate::MIN);
        assert_eq!("1bps".parse::<Rate>().unwrap(), Rate::MIN);
        assert_eq!(
            "18446744073709551615bit".parse::<Rate>().unwrap(),
            Rate::MAX
        );
        assert_eq!(
            "0.000000001gbit".parse::<Rate>().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!("2.5kibit".parse::<Rate>().unwrap().bits_per_second(), 2_560);
        for bad in ["1.2.3mbit", ".mbit"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn init_refuses_a_link_rate_below_a_byte_per_second() {
        let init = InitParams::new("eth0", SchedulerName::Htb)
            .with_link_rate(Rate::from_bits_per_second(7));
        let err = init.validate().unwrap_err();
        assert!(err.message().contains("at least 8bit"), "{err}");
    }

    #[test]
    fn transmit_time_at_ten_megabit() {
        let rate: Rate = "10mbit".parse().unwrap();
        assert_eq!(rate.transmit_time(1500), Duration::from_micros(1200));
    }

    #[test]
    fn window_rules() {
        assert!(WindowConstraint::new(0, 0).validate().is_ok());
        assert!(WindowConstraint::new(2, 10).validate().is_ok());
        assert!(WindowConstraint::new(10, 10).validate().is_ok());
        let e = WindowConstraint::new(3, 2).validate().unwrap_err();
        assert!(e.message().contains("must not exceed"), "{e}");
        let e = WindowConstraint::new(1, 0).validate().unwrap_err();
        assert!(e.message().contains("old (the window length) is 0"), "{e}");
    }

    #[test]
    fn periodic_needs_a_period() {
        let e = StreamParams::periodic(Duration::ZERO, 0, 0)
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("ipg is 0"));
        assert!(StreamParams::aperiodic().validate().is_ok());
    }

    #[test]
    fn scheduler_names() {
        for name in SchedulerName::ALL {
            assert_eq!(name.as_str().parse::<SchedulerName>().unwrap(), name);
        }
        let e = "cbq".parse::<SchedulerName>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert!(e.message().contains("dwcs, htb, user or auto"));
    }

    #[test]
    fn device_names() {
        assert!(validate_device("eth0").is_ok());
        assert_eq!(validate_device("").unwrap_err().kind(), ErrorKind::NoDevice);
        assert_eq!(
            validate_device("a-very-long-interface-name")
                .unwrap_err()
                .kind(),
            ErrorKind::NoDevice
        );
    }
}
