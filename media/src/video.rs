//! The live video every sender encodes.

use std::time::Duration;

/// The live source and its H.264 encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSettings {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames the source makes each second: the nominal rate receivers are
    /// measured against.
    pub frames_per_second: u32,
    /// The encoder's target bitrate.
    pub bitrate_kbit: u32,
    /// Frames from one I-frame to the next.
    pub keyframe_interval: u32,
    /// videotestsrc's pattern: `ball` (a moving ball, little to encode) or
    /// `snow` (noise that keeps the encoder at its target bitrate).
    pub pattern: &'static str,
}

impl Default for VideoSettings {
    /// 20 fps (the paper's rate), 320x180 at 800 kbit/s with an I-frame a
    /// second: small enough that x264 keeps 20 fps in an emulated VM.
    fn default() -> VideoSettings {
        VideoSettings {
            width: 320,
            height: 180,
            frames_per_second: 20,
            bitrate_kbit: 800,
            keyframe_interval: 20,
            pattern: "ball",
        }
    }
}

impl VideoSettings {
    /// The time from one frame to the next.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.frames_per_second.max(1)
    }

    /// The live source and encoder (named `encoder`), ending in a tee named
    /// `encoded` that carries H.264 access units.
    pub(crate) fn encoder(&self) -> String {
        let VideoSettings {
            width,
            height,
            frames_per_second,
            bitrate_kbit,
            keyframe_interval,
            pattern,
        } = self;
        // threads=1: two cores are shared by the encoder, the receivers, the
        // bulk transfer and, in a VM, the emulator; x264's frame threads
        // would also add a frame of delay each.
        format!(
            "videotestsrc is-live=true pattern={pattern} \
             ! video/x-raw,width={width},height={height},framerate={frames_per_second}/1 \
             ! x264enc name=encoder tune=zerolatency speed-preset=ultrafast threads=1 \
               bitrate={bitrate_kbit} key-int-max={keyframe_interval} \
             ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! tee name=encoded"
        )
    }
}
