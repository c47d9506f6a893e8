//! The sink's properties as the element keeps them, with their defaults,
//! and what each thread derives from them.

use std::time::Duration;

use qsock::{StreamParams, WindowConstraint};

use super::frames::DropPolicy;
use super::SchedulerChoice;

pub(super) const DEFAULT_HOST: &str = "127.0.0.1";
pub(super) const DEFAULT_PORT: u32 = 5004;
pub(super) const DEFAULT_BIND_ADDRESS: &str = "";
pub(super) const DEFAULT_DEVICE: &str = "";
pub(super) const DEFAULT_SCHEDULER: SchedulerChoice = SchedulerChoice::Auto;
pub(super) const DEFAULT_LINK_RATE: &str = "";
pub(super) const DEFAULT_DROPPABLE: DropPolicy = DropPolicy::NonReferenceAndPredicted;
pub(super) const DEFAULT_LATENCY_BUDGET_MS: u32 = 100;
pub(super) const DEFAULT_IPG_US: u64 = 0;
pub(super) const DEFAULT_LOSS_NUMERATOR: u32 = 2;
pub(super) const DEFAULT_LOSS_DENOMINATOR: u32 = 10;
pub(super) const DEFAULT_LOSSLESS: bool = false;
pub(super) const DEFAULT_QOS_INTERVAL_MS: u32 = 1000;
pub(super) const DEFAULT_ADAPT_BITRATE: bool = false;
pub(super) const DEFAULT_MIN_BITRATE: u64 = 250_000;
pub(super) const DEFAULT_MAX_BITRATE: u64 = 8_000_000;
pub(super) const DEFAULT_BIND_PORT: u32 = 0;
pub(super) const DEFAULT_RECEIVER_FEEDBACK: bool = true;
pub(super) const DEFAULT_RTCP_PORT: u32 = 0;
pub(super) const DEFAULT_KEY_UNIT_INTERVAL_MS: u32 = 500;
pub(super) const DEFAULT_SHAPE_LINK: bool = false;

/// The properties.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub host: String,
    pub port: u32,
    pub bind_address: String,
    pub device: String,
    pub scheduler: SchedulerChoice,
    pub link_rate: String,
    pub droppable: DropPolicy,
    pub latency_budget_ms: u32,
    pub ipg_us: u64,
    pub loss_numerator: u32,
    pub loss_denominator: u32,
    pub lossless: bool,
    pub qos_interval_ms: u32,
    pub adapt_bitrate: bool,
    pub min_bitrate: u64,
    pub max_bitrate: u64,
    pub bind_port: u32,
    pub receiver_feedback: bool,
    pub rtcp_port: u32,
    pub key_unit_interval_ms: u32,
    pub shape_link: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            device: DEFAULT_DEVICE.into(),
            scheduler: DEFAULT_SCHEDULER,
            link_rate: DEFAULT_LINK_RATE.into(),
            droppable: DEFAULT_DROPPABLE,
            latency_budget_ms: DEFAULT_LATENCY_BUDGET_MS,
            ipg_us: DEFAULT_IPG_US,
            loss_numerator: DEFAULT_LOSS_NUMERATOR,
            loss_denominator: DEFAULT_LOSS_DENOMINATOR,
            lossless: DEFAULT_LOSSLESS,
            qos_interval_ms: DEFAULT_QOS_INTERVAL_MS,
            adapt_bitrate: DEFAULT_ADAPT_BITRATE,
            min_bitrate: DEFAULT_MIN_BITRATE,
            max_bitrate: DEFAULT_MAX_BITRATE,
            bind_port: DEFAULT_BIND_PORT,
            receiver_feedback: DEFAULT_RECEIVER_FEEDBACK,
            rtcp_port: DEFAULT_RTCP_PORT,
            key_unit_interval_ms: DEFAULT_KEY_UNIT_INTERVAL_MS,
            shape_link: DEFAULT_SHAPE_LINK,
        }
    }
}

impl Settings {
    pub fn latency_budget(&self) -> Duration {
        Duration::from_millis(u64::from(self.latency_budget_ms))
    }

    /// What the streaming thread copies out for each render.
    pub fn send_settings(&self) -> SendSettings {
        SendSettings {
            droppable: self.droppable,
            latency_budget: self.latency_budget(),
            derives_ipg: self.ipg_us == 0,
        }
    }

    /// The stream's attributes; `derived_ipg` stands in when `ipg` is 0.
    pub fn stream_params(&self, derived_ipg: Option<Duration>) -> StreamParams {
        let ipg = match self.ipg_us {
            0 => derived_ipg,
            us => Some(Duration::from_micros(us)),
        };
        // Every packet carries its frame's deadline; the period only sizes
        // the stream's share of the link. Live video should leave as soon as
        // the link is free, so the stream is work-conserving.
        let stream = match ipg {
            Some(ipg) => StreamParams::periodic(ipg, self.loss_numerator, self.loss_denominator)
                .work_conserving(),
            None => StreamParams {
                window: WindowConstraint::new(self.loss_numerator, self.loss_denominator),
                ..StreamParams::aperiodic()
            },
        };
        if self.lossless {
            stream.lossless()
        } else {
            stream
        }
    }
}

/// What the streaming thread needs of the settings for each buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendSettings {
    pub droppable: DropPolicy,
    pub latency_budget: Duration,
    /// `ipg=0`: the sink sizes the stream's period, and may shorten it for
    /// a frame that would not leave in time.
    pub derives_ipg: bool,
}
