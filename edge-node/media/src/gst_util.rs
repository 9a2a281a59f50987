//! Small helpers shared by every pipeline in this crate: init, element creation with operator
//! hints, property setting that never panics, and a bus watcher for pipelines without a loop.

use crate::MediaError;
use gst::glib;
use gst::prelude::*;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(MediaError::Init)
}

/// Which Debian package provides a factory, so a missing element names its fix.
pub(crate) fn package_hint(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "install gstreamer1.0-plugins-ugly",
        "avdec_h264" => "install gstreamer1.0-libav",
        "h264parse" | "srtsrc" | "hlsdemux" | "rtmp2src" => "install gstreamer1.0-plugins-bad",
        "gdkpixbufoverlay" | "rtspsrc" | "pngdec" => "install gstreamer1.0-plugins-good",
        "nvh264enc" | "vah264enc" | "qsvh264enc" => "hardware encoder not available here",
        _ => "install gstreamer1.0-plugins-base",
    }
}

/// The first of `factories` that is installed, in the order given.
pub(crate) fn first_installed(factories: &[&'static str]) -> Option<&'static str> {
    factories
        .iter()
        .copied()
        .find(|name| gst::ElementFactory::find(name).is_some())
}

pub(crate) fn require(factory: &str) -> Result<(), MediaError> {
    if gst::ElementFactory::find(factory).is_some() {
        Ok(())
    } else {
        Err(MediaError::MissingElement {
            element: factory.to_owned(),
            hint: package_hint(factory),
        })
    }
}

/// Adds `chain` to `pipeline` and links it in order, as one stage of the data path.
pub(crate) fn add_linked_chain(
    pipeline: &gst::Pipeline,
    chain: &[&gst::Element],
    stage: &'static str,
) -> Result<(), MediaError> {
    pipeline
        .add_many(chain)
        .map_err(|e| pipeline_error(stage, e))?;
    gst::Element::link_many(chain).map_err(|e| pipeline_error(stage, e))
}

pub(crate) fn make(factory: &str, name: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: factory.to_owned(),
            hint: package_hint(factory),
        })
}

/// Sets a property from its string form when the element has it. Returns false (and sets
/// nothing) for an unknown property or an unparsable value: encoders differ in what they
/// offer, and a configurable element must never panic the node.
pub(crate) fn set_prop(element: &gst::Element, name: &str, value: &str) -> bool {
    let Some(pspec) = element.find_property(name) else {
        tracing::debug!(element = %element.name(), property = name, "property not offered");
        return false;
    };
    match glib::Value::deserialize_with_pspec(value, &pspec) {
        Ok(v) => {
            element.set_property_from_value(name, &v);
            true
        }
        Err(_) => {
            tracing::warn!(element = %element.name(), property = name, value, "cannot parse property value");
            false
        }
    }
}

pub(crate) fn pipeline_error(stage: &'static str, reason: impl ToString) -> MediaError {
    MediaError::Pipeline {
        stage,
        reason: reason.to_string(),
    }
}

/// One line for an operator: the element that failed and GStreamer's message, plus the debug
/// detail's last line when it adds something (it often names the host or file).
pub(crate) fn describe_error(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    let mut line = format!("{source}: {}", err.error());
    if let Some(debug) = err.debug() {
        if let Some(last) = debug.lines().last().map(str::trim) {
            if !last.is_empty() && !line.contains(last) {
                line.push_str(&format!(" ({last})"));
            }
        }
    }
    line
}

/// Watches the bus of a pipeline that has no main loop (encoder, viewer decoder): records the
/// first error and end-of-stream from GStreamer's own threads, so the bus never fills up.
#[derive(Default)]
pub(crate) struct BusWatch {
    state: Mutex<BusState>,
    changed: Condvar,
}

#[derive(Default)]
struct BusState {
    error: Option<String>,
    eos: bool,
}

impl BusWatch {
    /// Watches `pipeline`'s bus and sets it playing; a refusal reports the bus's own error,
    /// or `refused` when the bus said nothing.
    pub(crate) fn start(
        pipeline: &gst::Pipeline,
        stage: &'static str,
        refused: impl FnOnce() -> String,
    ) -> Result<std::sync::Arc<Self>, MediaError> {
        let bus = std::sync::Arc::new(Self::default());
        bus.attach(pipeline);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| pipeline_error(stage, bus.error().unwrap_or_else(refused)))?;
        Ok(bus)
    }

    pub(crate) fn attach(self: &std::sync::Arc<Self>, pipeline: &gst::Pipeline) {
        let Some(bus) = pipeline.bus() else { return };
        let watch = self.clone();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let line = describe_error(err);
                    let mut state = watch.lock();
                    if state.error.is_none() {
                        state.error = Some(line);
                    }
                    watch.changed.notify_all();
                }
                gst::MessageView::Eos(_) => {
                    watch.lock().eos = true;
                    watch.changed.notify_all();
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusState> {
        // A poisoned lock only means a callback panicked mid-update; the flags stay meaningful.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Waits for end-of-stream (or an error, returned as `Err`).
    pub(crate) fn wait_eos(&self, timeout: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(e) = &state.error {
                return Err(e.clone());
            }
            if state.eos {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
