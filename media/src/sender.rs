//! A live sender: one source and encoder, its RTP stream out through each
//! stream's sink at once.

use std::time::Duration;

use gst::prelude::*;
use qsock_testbed::TestBed;

use crate::pipeline::{is_eos, NamespacePipeline};
use crate::sink::RTP_MTU;
use crate::{Error, Result, StreamSpec, VideoSettings};

/// A running sender in the test bed's sender namespace.
#[derive(Debug)]
pub struct Sender {
    running: NamespacePipeline,
}

impl Sender {
    /// Encodes `video` once and sends it through every stream's sink, each
    /// from a queue of its own: a sink that holds frames back (qsocksink's
    /// push-back, srtsink's connection) drops its own oldest frames after a
    /// second instead of stalling the others. Start the receivers first.
    pub fn start(bed: &TestBed, video: &VideoSettings, streams: &[StreamSpec]) -> Result<Sender> {
        if streams.is_empty() {
            return Err(Error::Setup("a sender needs at least one stream".into()));
        }
        let mut description = video.encoder();
        for (i, stream) in streams.iter().enumerate() {
            description += &format!(
                " encoded. ! queue leaky=downstream max-size-buffers=0 max-size-bytes=0 \
                   max-size-time=1000000000 \
                 ! rtph264pay name=payloader{i} config-interval=-1 mtu={RTP_MTU} ! {}",
                stream.sink_description(bed)
            );
        }
        let running = NamespacePipeline::launch(&description, bed.sender_ns())?;
        // The sinks open their sockets on the way to PLAYING: in this namespace.
        bed.run_in_sender(|| running.pipeline().set_state(gst::State::Playing))?
            .map_err(|err| {
                let detail = running.check().err().map(|e| format!(": {e}"));
                Error::Pipeline(format!(
                    "the sender does not start ({err}){}",
                    detail.unwrap_or_default()
                ))
            })?;
        Ok(Sender { running })
    }

    /// Fails if the sender has failed since it started.
    pub fn check(&self) -> Result<()> {
        self.running.check()
    }

    /// Ends the stream (the receivers see no more frames) and waits for the
    /// end to reach every sink, so that what was queued has been sent.
    pub fn finish(self) -> Result<()> {
        self.running.check()?;
        self.running.pipeline().send_event(gst::event::Eos::new());
        self.running.wait_for(
            "end of stream from the sender",
            Duration::from_secs(10),
            is_eos,
        )
    }
}
