//! The nearest upstream encoder whose bitrate property and unit are known:
//! found once, read to seed the estimate, written to follow it (asked for
//! what makes it send the estimate, see [`super::encoder_target`]).

use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::bitrate::{encoder_bitrate, frame_buffer, EncoderBitrate};
use super::encoder_target::EncoderTarget;
use super::imp::{QSockSink, CAT};

/// How far upstream the sink looks for an encoder or a framerate.
const MAX_UPSTREAM_ELEMENTS: usize = 32;

/// The encoder the estimate steers, as it was found upstream.
#[derive(Debug, Default)]
pub(super) struct UpstreamEncoder {
    found: Option<(glib::WeakRef<gst::Element>, EncoderBitrate)>,
    searched: bool,
    /// The bitrate last written, in bits per second.
    applied: Option<u64>,
    /// How much of what it is asked for the encoder makes.
    target: EncoderTarget,
    /// The encoder's rate-control buffer as it was set before the sink
    /// bounded it, and the bound last written, in milliseconds.
    frame_buffer: Option<(u64, u64)>,
}

impl UpstreamEncoder {
    /// The encoder's bitrate in bits per second; `adapting` says whether
    /// the lack of an encoder is worth a warning.
    pub fn bitrate(&mut self, sink: &QSockSink, adapting: bool) -> Option<u64> {
        let (encoder, unit) = self.encoder(sink, adapting)?;
        let units = read_unsigned(&encoder, unit.property)?;
        Some(unit.to_bps(units))
    }

    /// The encoder found upstream; `adapting` says whether its absence is
    /// worth a warning.
    fn encoder(
        &mut self,
        sink: &QSockSink,
        adapting: bool,
    ) -> Option<(gst::Element, EncoderBitrate)> {
        if let Some((weak, unit)) = &self.found {
            if let Some(encoder) = weak.upgrade() {
                return Some((encoder, *unit));
            }
        }
        if self.searched && self.found.is_none() {
            return None;
        }
        self.searched = true;
        let found = upstream_elements(sink.obj().sink_pad())
            .into_iter()
            .find_map(|element| {
                let factory = element.factory()?;
                if !factory
                    .metadata(gst::ELEMENT_METADATA_KLASS)?
                    .contains("Encoder")
                {
                    return None;
                }
                let unit = encoder_bitrate(factory.name().as_str())?;
                element.find_property(unit.property)?;
                Some((element, unit))
            });
        match &found {
            Some((encoder, _)) => {
                gst::info!(
                    CAT,
                    imp = sink,
                    "adapting the bitrate of {}",
                    encoder.name()
                )
            }
            None if !adapting => {
                gst::debug!(
                    CAT,
                    imp = sink,
                    "no upstream encoder with a known bitrate unit"
                )
            }
            None => gst::element_imp_warning!(
                sink,
                gst::CoreError::Negotiation,
                ("adapt-bitrate: no upstream encoder whose bitrate unit is known (x264enc, \
                     x265enc, openh264enc, vp8enc, vp9enc, avenc_*, mpeg2enc); estimated-bitrate \
                     is still reported")
            ),
        }
        self.found = found
            .as_ref()
            .map(|(encoder, unit)| (encoder.downgrade(), *unit));
        found
    }

    /// Sets the encoder's bitrate to what makes it send `estimate_bps`,
    /// `output` being what it made (bits per second, over the length of
    /// the interval now ending), unless it was set to it already, and keeps
    /// its rate-control buffer, where it has one, small enough for any
    /// frame to leave within `latency_budget` at the estimate (see
    /// [`super::bitrate::frame_buffer`]): a buffer of the budget at a
    /// bitrate asked for above the estimate would let a frame take longer.
    pub fn follow(
        &mut self,
        sink: &QSockSink,
        estimate_bps: u64,
        output: (u64, Duration),
        latency_budget: Duration,
        frame_interval: Option<Duration>,
    ) {
        let Some((encoder, unit)) = self.encoder(sink, true) else {
            return;
        };
        let (output_bps, length) = output;
        self.target.observe(output_bps, length);
        let bps = self.target.for_estimate(estimate_bps);
        if let Some(property) = unit.frame_buffer_ms {
            let at_estimate = latency_budget.mul_f64(estimate_bps as f64 / bps.max(1) as f64);
            let bound = frame_buffer(at_estimate, frame_interval);
            self.bound_frame_buffer(sink, &encoder, property, bound);
        }
        if self.applied == Some(bps) {
            return;
        }
        let units = unit.to_units(bps);
        if write_unsigned(&encoder, unit.property, units) {
            gst::debug!(
                CAT,
                imp = sink,
                "{}::{} = {units} ({bps} bit/s)",
                encoder.name(),
                unit.property
            );
            self.applied = Some(bps);
        }
    }

    /// The bitrate last written, in bits per second, and the share of it
    /// the encoder makes, once learnt.
    pub fn applied(&self) -> Option<(u64, Option<f64>)> {
        self.applied.map(|bps| (bps, self.target.output_share()))
    }

    /// Lowers the encoder's rate-control buffer to `bound`, never above
    /// what it was set to before; says once what it did.
    fn bound_frame_buffer(
        &mut self,
        sink: &QSockSink,
        encoder: &gst::Element,
        property: &'static str,
        bound: Duration,
    ) {
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        let own = match self.frame_buffer {
            Some((_, written)) if written == bound_ms => return,
            Some((own, _)) => own,
            None => {
                let Some(own) = read_unsigned(encoder, property) else {
                    return;
                };
                own
            }
        };
        let ms = own.min(bound_ms);
        if !write_unsigned(encoder, property, ms) {
            return;
        }
        if self.frame_buffer.is_none() && ms < own {
            gst::info!(
                CAT,
                imp = sink,
                "adapt-bitrate: {}::{property} = {ms} ms (was {own}): no frame takes longer than \
                 {ms} ms to leave at the bitrate (latency-budget)",
                encoder.name()
            );
        }
        self.frame_buffer = Some((own, bound_ms));
    }
}

/// Elements upstream of `pad`, nearest first.
pub(super) fn upstream_elements(pad: &gst::Pad) -> Vec<gst::Element> {
    let mut found: Vec<gst::Element> = Vec::new();
    let mut pads = std::collections::VecDeque::from([pad.clone()]);
    while let Some(pad) = pads.pop_front() {
        if found.len() >= MAX_UPSTREAM_ELEMENTS {
            break;
        }
        let Some(element) = pad.peer().and_then(|peer| peer.parent_element()) else {
            continue;
        };
        if found.contains(&element) {
            continue;
        }
        pads.extend(element.sink_pads());
        found.push(element);
    }
    found
}

/// An integer property as u64, whatever its integer type.
fn read_unsigned(element: &gst::Element, property: &str) -> Option<u64> {
    let value = element.property_value(property);
    value
        .get::<u32>()
        .map(u64::from)
        .ok()
        .or_else(|| value.get::<i32>().ok().and_then(|v| u64::try_from(v).ok()))
        .or_else(|| value.get::<u64>().ok())
        .or_else(|| value.get::<i64>().ok().and_then(|v| u64::try_from(v).ok()))
}

/// Sets an integer property from a u64, clamped to what the property allows.
fn write_unsigned(element: &gst::Element, property: &str, units: u64) -> bool {
    let Some(pspec) = element.find_property(property) else {
        return false;
    };
    let value = if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        let clamped = units.clamp(u64::from(spec.minimum()), u64::from(spec.maximum()));
        u32::try_from(clamped).unwrap_or(u32::MAX).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        let clamped = i64::try_from(units)
            .unwrap_or(i64::MAX)
            .clamp(i64::from(spec.minimum()), i64::from(spec.maximum()));
        i32::try_from(clamped).unwrap_or(i32::MAX).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        units.clamp(spec.minimum(), spec.maximum()).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        i64::try_from(units)
            .unwrap_or(i64::MAX)
            .clamp(spec.minimum(), spec.maximum())
            .to_value()
    } else {
        return false;
    };
    element.set_property_from_value(property, &value);
    true
}
