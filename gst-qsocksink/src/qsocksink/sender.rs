//! The streaming thread: packets into frames, frames to deadlines, and one
//! `send_frame` per frame, waiting while the scheduler pushes back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use parking_lot::{Condvar, Mutex};
use qsock::{Deadline, DropFlag, ErrorKind, PacketFlags};

use super::frames::{fallback_info, Frame, FrameDropFlag};
use super::imp::{QSockSink, Started, State, CAT};
use super::receiver_feedback::{FrameRtp, RtpSource};
use super::run::Run;
use super::settings::SendSettings;
use super::transport_wide;
use qsock_frame::FrameType;

/// First wait after the scheduler pushes a packet back; doubled up to
/// [`MAX_PUSH_BACK_WAIT`]. Neither the kernel's queue nor the user scheduler
/// signals room, so the sink polls, and stays interruptible while it does.
const MIN_PUSH_BACK_WAIT: Duration = Duration::from_micros(500);
const MAX_PUSH_BACK_WAIT: Duration = Duration::from_millis(10);

/// Wakes a render thread that waits for the scheduler to take a packet.
#[derive(Debug, Default)]
pub(super) struct Flushing {
    flushing: Mutex<bool>,
    wake: Condvar,
}

impl Flushing {
    /// Starts or ends flushing; a wait in progress ends at once.
    pub fn set(&self, flushing: bool) {
        *self.flushing.lock() = flushing;
        self.wake.notify_all();
    }

    /// Waits up to `wait`; false when the sink is flushing.
    fn wait(&self, wait: Duration) -> bool {
        let mut flushing = self.flushing.lock();
        if *flushing {
            return false;
        }
        self.wake.wait_for(&mut flushing, wait);
        !*flushing
    }
}

/// What the frames of one render are sent with, copied out under the one
/// state lock it takes.
#[derive(Debug)]
struct Sending {
    run: Arc<Run>,
    settings: SendSettings,
    /// The pipeline clock, and whether it runs on CLOCK_MONOTONIC.
    clock: Option<(gst::Clock, bool)>,
}

impl Started {
    fn sending(&mut self, clock: Option<gst::Clock>) -> Sending {
        let clock = clock.map(|clock| {
            let monotonic = self.clock_is_monotonic(&clock);
            (clock, monotonic)
        });
        Sending {
            run: Arc::clone(&self.run),
            settings: self.send_settings,
            clock,
        }
    }

    /// GStreamer's system clock reads CLOCK_MONOTONIC unless told otherwise.
    fn clock_is_monotonic(&mut self, clock: &gst::Clock) -> bool {
        if let Some((known, monotonic)) = &self.monotonic_clock {
            if known == clock {
                return *monotonic;
            }
        }
        let monotonic = clock
            .downcast_ref::<gst::SystemClock>()
            .is_some_and(|system| {
                system.property::<gst::ClockType>("clock-type") == gst::ClockType::Monotonic
            });
        self.monotonic_clock = Some((clock.clone(), monotonic));
        monotonic
    }
}

fn unreadable(sink: &QSockSink) -> gst::FlowError {
    gst::element_imp_error!(
        sink,
        gst::ResourceError::Read,
        ("cannot read a buffer's memory")
    );
    gst::FlowError::Error
}

impl QSockSink {
    /// Classifies `buffers` into frames and sends each frame they complete.
    pub(super) fn render_buffers(
        &self,
        buffers: &[gst::Buffer],
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut complete = Vec::new();
        let mut first_failure = None;
        let clock = self.obj().clock();
        let sending = {
            let mut state = self.state.lock();
            let State::Started(started) = &mut *state else {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("not started"));
                return Err(gst::FlowError::Error);
            };
            let Some(classifier) = started.classifier.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("a buffer arrived before caps: the payloader must send caps first")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let format = classifier.format();
            for buffer in buffers {
                let map = buffer.map_readable().map_err(|_| unreadable(self))?;
                let (info, classified) = match classifier.inspect(&map) {
                    Ok(info) => (info, true),
                    Err(err) => {
                        first_failure.get_or_insert(err);
                        let timestamp = buffer.dts_or_pts().map(gst::ClockTime::nseconds);
                        (fallback_info(format, &map, timestamp), false)
                    }
                };
                drop(map);
                gst::trace!(CAT, imp = self, "packet {info:?}");
                started
                    .assembler
                    .push(buffer.clone(), &info, classified, &mut complete);
            }
            if let Some(err) = first_failure.take() {
                if !started.warned_unclassified {
                    started.warned_unclassified = true;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("cannot tell frame types ({err}): such packets are sent \
                             non-droppable, grouped by RTP timestamp and marker (MPEG-TS: by \
                             buffer timestamp)")
                    );
                }
            }
            started.sending(clock)
        };
        for frame in complete {
            self.send(&sending, frame)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Sends the frame still being collected (at EOS).
    pub(super) fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let clock = self.obj().clock();
        let (sending, frame) = {
            let mut state = self.state.lock();
            let State::Started(started) = &mut *state else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let frame = started.assembler.drain();
            (started.sending(clock), frame)
        };
        match frame {
            Some(frame) => self.send(&sending, frame),
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    /// One `send_frame` for the frame, then `continue_frame` for whatever the
    /// scheduler pushed back, waiting in between until it takes the rest.
    /// A droppable frame is given up once its deadline has passed; a
    /// non-droppable one is waited for until the sink is flushed.
    fn send(
        &self,
        sending: &Sending,
        frame: Frame<gst::Buffer>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(first) = frame.packets.first() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let (run, send_settings) = (&*sending.run, sending.settings);
        let running_time = self.running_time(first);
        let deadline = self.deadline(running_time, sending, send_settings.latency_budget);
        if send_settings.derives_ipg {
            self.make_room(run, frame.packets.len(), deadline);
        }
        let drop_flag = frame.drop_flag(send_settings.droppable);
        let flags = PacketFlags {
            drop: drop_flag,
            deadline: Some(deadline),
            frame_start: true,
        };
        let frame_type = frame.counted_type();
        let maps = frame
            .packets
            .iter()
            .map(|buffer| buffer.map_readable())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| unreadable(self))?;
        let packets: Vec<&[u8]> = maps.iter().map(|map| map.as_slice()).collect();
        let mut sent = 0;
        let mut wait = MIN_PUSH_BACK_WAIT;
        let mut waited = false;
        let outcome = loop {
            let result = {
                let socket = run.period.socket();
                if sent == 0 {
                    socket.send_frame(&packets, Some(&run.destination), &flags)
                } else {
                    socket.continue_frame(&packets[sent..], Some(&run.destination), &flags)
                }
            };
            match result {
                Ok(accepted) => {
                    sent += accepted;
                    if accepted > 0 {
                        wait = MIN_PUSH_BACK_WAIT;
                    }
                }
                Err(err) if err.kind() == ErrorKind::QueueFull => {}
                Err(err) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("sending to {}: {err}", run.destination)
                    );
                    break Err(gst::FlowError::Error);
                }
            }
            if sent >= packets.len() {
                break Ok(gst::FlowSuccess::Ok);
            }
            if drop_flag == DropFlag::Droppable
                && qsock::monotonic_now() > deadline.as_monotonic_nanos()
            {
                let given_up = (packets.len() - sent) as u64;
                run.counters.lock().sink_dropped[frame_type.index()] += given_up;
                gst::debug!(
                    CAT,
                    imp = self,
                    "gave up {given_up} packets of a late droppable frame"
                );
                break Ok(gst::FlowSuccess::Ok);
            }
            if !waited {
                waited = true;
                self.push_back_started(run, frame_type, packets.len() - sent);
            }
            run.counters.lock().push_back_waits += 1;
            if !self.flushing.wait(wait) {
                gst::debug!(CAT, imp = self, "flushing while waiting for the scheduler");
                break Err(gst::FlowError::Flushing);
            }
            wait = (wait * 2).min(MAX_PUSH_BACK_WAIT);
        };
        run.pushing_back.store(waited, Ordering::Relaxed);
        let sent_packets = &packets[..sent.min(packets.len())];
        let sent_rtp = FrameRtp::of(sent_packets);
        let transport_wide_id = run.transport_wide_id.load(Ordering::Relaxed);
        if transport_wide_id != 0 {
            let numbered = transport_wide::numbered(sent_packets, transport_wide_id);
            let now = Instant::now();
            let mut transport_wide = run.transport_wide.lock();
            for (sequence, size) in numbered {
                transport_wide.sent(sequence, size, now);
            }
        }
        {
            let mut counters = run.counters.lock();
            let bytes = packets.iter().map(|packet| packet.len()).sum();
            counters.count_frame(frame_type, packets.len(), bytes, first.pts(), running_time);
            counters.rtp = RtpSource::after(counters.rtp, sent_rtp);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame of {} packets, {frame_type:?}, {drop_flag:?}, deadline {}",
            packets.len(),
            deadline.as_monotonic_nanos()
        );
        outcome
    }

    /// Has the period owner shorten the stream's period, before the
    /// frame's first packet is sent, when a frame of `packets` packets, one
    /// period apart, could not all leave by `deadline`: the first I-frame,
    /// before the feedback thread has measured any, or a frame far larger
    /// than the recent ones.
    fn make_room(&self, run: &Run, packets: usize, deadline: Deadline) {
        match run.period.make_room(packets, deadline) {
            Some(Ok((from, to))) => gst::debug!(
                CAT,
                imp = self,
                "period {from:?} -> {to:?} for a frame of {packets} packets"
            ),
            Some(Err(err)) => gst::debug!(CAT, imp = self, "cannot shorten the period: {err}"),
            None => {}
        }
    }

    /// Says once per episode, on the bus, that the scheduler pushes back.
    fn push_back_started(&self, run: &Run, frame_type: FrameType, waiting: usize) {
        if run.pushing_back.load(Ordering::Relaxed) {
            return;
        }
        gst::debug!(
            CAT,
            imp = self,
            "push-back: {waiting} packets wait for room"
        );
        let structure = gst::Structure::builder("qsocksink-push-back")
            .field("frame-type", FrameType::name(frame_type))
            .field("packets-waiting", waiting as u64)
            .field("device", run.device.as_str())
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    fn running_time(&self, buffer: &gst::Buffer) -> Option<gst::ClockTime> {
        let timestamp = buffer.dts_or_pts()?;
        let segment = self.obj().segment();
        let segment = segment.downcast_ref::<gst::format::Time>()?;
        segment.to_running_time(timestamp)
    }

    /// The frame's clock time (base time plus the running time of its DTS,
    /// else PTS, plus the pipeline's latency) plus the budget, on
    /// CLOCK_MONOTONIC. A buffer without timestamps, or a sink without a
    /// clock, gets now plus the budget.
    fn deadline(
        &self,
        running_time: Option<gst::ClockTime>,
        sending: &Sending,
        budget: Duration,
    ) -> Deadline {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let now = qsock::monotonic_now();
        let obj = self.obj();
        // A live pipeline renders a frame at its running time plus the
        // latency upstream elements declared (mpeg2enc declares over a
        // second): the budget starts there, or every frame would be late.
        let latency = obj.latency();
        let clock_time = running_time
            .zip(obj.base_time())
            .map(|(running_time, base_time)| running_time + base_time + latency);
        let monotonic = match (clock_time, &sending.clock) {
            (Some(clock_time), Some((clock, monotonic))) => {
                if *monotonic {
                    clock_time.nseconds()
                } else {
                    // Another clock: map through the offset between the two now.
                    let offset = i128::from(now) - i128::from(clock.time().nseconds());
                    u64::try_from(i128::from(clock_time.nseconds()) + offset).unwrap_or(0)
                }
            }
            _ => now,
        };
        gst::log!(
            CAT,
            imp = self,
            "frame at the sink {:.1} ms after its clock time (latency {latency})",
            (i128::from(now) - i128::from(monotonic)) as f64 / 1e6
        );
        Deadline::from_monotonic_nanos(monotonic.saturating_add(budget))
    }
}
