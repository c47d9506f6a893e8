//! Pipelines that live in a network namespace, and reading their buses.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use nix::sched::{setns, CloneFlags};
use parking_lot::Mutex;
use qsock_frame::rtp::FixedHeader;

use crate::{Error, Result};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A pipeline whose streaming threads all run in one network namespace,
/// set to NULL when dropped, so that a failing run stops its threads and
/// closes its sockets.
#[derive(Debug)]
pub struct NamespacePipeline {
    pipeline: gst::Pipeline,
    /// Streaming threads that could not enter the namespace.
    namespace_failures: Arc<Mutex<Vec<String>>>,
}

impl NamespacePipeline {
    /// Builds `description` (gst-launch syntax) and makes every streaming
    /// thread of it enter `namespace` (a name under `/run/netns`) as it
    /// starts. Elements that open sockets while going to PLAYING do so in the
    /// thread that sets the state: set it from inside the namespace.
    pub fn launch(description: &str, namespace: &str) -> Result<NamespacePipeline> {
        let pipeline = gst::parse::launch(description)
            .map_err(|err| Error::Pipeline(format!("cannot build `{description}`: {err}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| Error::Pipeline(format!("`{description}` is not a pipeline")))?;
        let namespace_failures = keep_streaming_threads_in(&pipeline, namespace)?;
        Ok(NamespacePipeline {
            pipeline,
            namespace_failures,
        })
    }

    /// The pipeline itself.
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// The element named `name`.
    pub fn element(&self, name: &str) -> Result<gst::Element> {
        self.pipeline
            .by_name(name)
            .ok_or_else(|| Error::Pipeline(format!("the pipeline has no element {name}")))
    }

    /// Calls `each` with every RTP packet that passes the static pad `pad` of
    /// the element named `element`, and its fixed header.
    pub(crate) fn on_rtp_packets(
        &self,
        element: &str,
        pad: &str,
        each: impl Fn(&gst::BufferRef, FixedHeader) + Send + Sync + 'static,
    ) -> Result<()> {
        self.element(element)?
            .static_pad(pad)
            .ok_or_else(|| Error::Pipeline(format!("the element {element} has no {pad} pad")))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    if let Some(header) = rtp_header(buffer) {
                        each(buffer, header);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        Ok(())
    }

    /// Why streaming threads could not enter the namespace, if any failed.
    pub fn namespace_failures(&self) -> Vec<String> {
        self.namespace_failures.lock().clone()
    }

    /// Fails on an error already on the bus or a streaming thread that could
    /// not enter its namespace; drops other messages.
    pub fn check(&self) -> Result<()> {
        if let Some(failure) = self.namespace_failures.lock().first() {
            return Err(Error::Setup(failure.clone()));
        }
        let bus = self.pipeline.bus().expect("a pipeline has a bus");
        while let Some(message) = bus.pop() {
            error_of(&message)?;
        }
        Ok(())
    }

    /// Waits for a message `wanted` accepts; fails on an error message or
    /// when `timeout` passes first.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&gst::Message) -> bool,
    ) -> Result<()> {
        let bus = self.pipeline.bus().expect("a pipeline has a bus");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) =
                bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            else {
                return Err(Error::Pipeline(format!("no {what} within {timeout:?}")));
            };
            error_of(&message)?;
            if wanted(&message) {
                return Ok(());
            }
        }
    }
}

impl Drop for NamespacePipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn error_of(message: &gst::Message) -> Result<()> {
    if let gst::MessageView::Error(err) = message.view() {
        return Err(Error::Pipeline(format!(
            "error from {}: {} ({:?})",
            err.src().map(|s| s.path_string()).unwrap_or_default(),
            err.error(),
            err.debug()
        )));
    }
    Ok(())
}

/// Is `message` an end of stream?
pub fn is_eos(message: &gst::Message) -> bool {
    matches!(message.view(), gst::MessageView::Eos(_))
}

/// Makes every streaming thread of `pipeline` enter `namespace` as it starts.
///
/// GStreamer runs streaming tasks on a thread pool shared by all pipelines of
/// the process, so a thread that served the receiver may next serve the
/// sender; a sink that opens a socket or talks netlink from its streaming
/// thread would then do so in the wrong namespace. Each task posts a
/// stream-status ENTER message from its own thread before it runs, and a
/// synchronous bus handler runs on the posting thread.
fn keep_streaming_threads_in(
    pipeline: &gst::Pipeline,
    namespace: &str,
) -> Result<Arc<Mutex<Vec<String>>>> {
    let path = Path::new(NETNS_DIR).join(namespace);
    let netns = File::open(&path)
        .map_err(|err| Error::Setup(format!("cannot open namespace {}: {err}", path.display())))?;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::clone(&failures);
    let bus = pipeline.bus().expect("a pipeline has a bus");
    bus.set_sync_handler(move |_, message| {
        if let gst::MessageView::StreamStatus(status) = message.view() {
            if status.get().0 == gst::StreamStatusType::Enter {
                if let Err(errno) = setns(&netns, CloneFlags::CLONE_NEWNET) {
                    failed.lock().push(format!(
                        "a streaming thread could not enter its namespace: {errno}"
                    ));
                }
            }
        }
        gst::BusSyncReply::Pass
    });
    Ok(failures)
}

/// The fixed header of the RTP packet in `buffer`, or None for anything
/// else.
pub fn rtp_header(buffer: &gst::BufferRef) -> Option<FixedHeader> {
    let map = buffer.map_readable().ok()?;
    FixedHeader::parse(map.as_slice())
}
