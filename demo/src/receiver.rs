//! The receiving side: reassembles frames and measures, per second of
//! arrival time, frames per second and inter-frame jitter.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::video::{FrameType, Header};

/// What one second of arrivals showed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Second {
    /// Frames that arrived whole.
    pub frames: u32,
    /// I-frames among them.
    pub i_frames: u32,
    /// Sum of |interval − expected interval| between consecutive whole frames.
    jitter_sum: Duration,
    jitter_count: u32,
    /// Largest such deviation.
    pub jitter_max: Duration,
    /// Sum of the frames' delays, from being made to arriving whole.
    delay_sum: Duration,
}

impl Second {
    /// Mean time from a frame being made to its last packet arriving.
    pub fn delay_mean(&self) -> Duration {
        if self.frames == 0 {
            Duration::ZERO
        } else {
            self.delay_sum / self.frames
        }
    }

    /// Mean deviation of the interval between consecutive whole frames from
    /// the source's own spacing.
    pub fn jitter_mean(&self) -> Duration {
        if self.jitter_count == 0 {
            Duration::ZERO
        } else {
            self.jitter_sum / self.jitter_count
        }
    }
}

/// Per-second figures of one stream, shared between its receiver thread and
/// the printer.
#[derive(Debug)]
pub struct StreamFigures {
    start: Instant,
    frame_interval: Duration,
    inner: Mutex<Figures>,
}

#[derive(Debug, Default)]
struct Figures {
    seconds: Vec<Second>,
    partial: HashMap<u32, u16>,
    last_whole: Option<(u32, Instant)>,
    i_frames_sent_seen: u32,
}

impl StreamFigures {
    /// Figures counted from `start`, for a source that sends a frame every `frame_interval`.
    pub fn new(start: Instant, frame_interval: Duration) -> Arc<Self> {
        Arc::new(StreamFigures {
            start,
            frame_interval,
            inner: Mutex::new(Figures::default()),
        })
    }

    /// The figures of second `index` (0 = the first second).
    pub fn second(&self, index: usize) -> Second {
        let figures = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        figures.seconds.get(index).copied().unwrap_or_default()
    }

    /// I-frames of which at least one packet arrived.
    pub fn i_frames_seen(&self) -> u32 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .i_frames_sent_seen
    }

    fn packet(&self, header: Header, at: Instant) {
        let mut figures = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let received = figures.partial.entry(header.frame).or_insert(0);
        *received += 1;
        let first = *received == 1;
        let whole = *received == header.count;
        if first && header.kind == FrameType::I {
            figures.i_frames_sent_seen += 1;
        }
        if !whole {
            return;
        }
        figures.partial.remove(&header.frame);
        // Frames long overtaken are lost: forget them so memory stays bounded.
        let horizon = header.frame.saturating_sub(200);
        figures.partial.retain(|frame, _| *frame >= horizon);
        let index = at.duration_since(self.start).as_secs() as usize;
        if figures.seconds.len() <= index {
            figures.seconds.resize(index + 1, Second::default());
        }
        let jitter = figures.last_whole.and_then(|(frame, when)| {
            let gap = header.frame.checked_sub(frame)?;
            let expected = self.frame_interval * gap;
            let actual = at.duration_since(when);
            Some(actual.abs_diff(expected))
        });
        let delay = Duration::from_nanos(qsock::monotonic_now().saturating_sub(header.made_at));
        let second = &mut figures.seconds[index];
        second.frames += 1;
        second.delay_sum += delay;
        if header.kind == FrameType::I {
            second.i_frames += 1;
        }
        if let Some(jitter) = jitter {
            second.jitter_sum += jitter;
            second.jitter_count += 1;
            second.jitter_max = second.jitter_max.max(jitter);
        }
        if figures
            .last_whole
            .is_none_or(|(frame, _)| header.frame > frame)
        {
            figures.last_whole = Some((header.frame, at));
        }
    }
}

/// Receives datagrams until `stop`, feeding `figures`.
pub fn receive(socket: UdpSocket, figures: Arc<StreamFigures>, stop: Arc<AtomicBool>) {
    // A short timeout only so that `stop` is noticed; arrivals are timed on receipt.
    if socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        return;
    }
    let mut buffer = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buffer) {
            Ok(length) => {
                let at = Instant::now();
                if let Some(header) = Header::decode(&buffer[..length]) {
                    figures.packet(header, at);
                }
            }
            Err(err) if crate::timed_out(&err) => {}
            Err(_) => return,
        }
    }
}
