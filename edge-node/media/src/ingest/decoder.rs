//! The video decoder `decodebin` picks, set for latency: a live node wants each frame out of
//! the decoder as soon as its last byte is in.
//!
//! libav's default threading for a non-live input (a file) is frame threads: N frames decode
//! at once and each leaves N-1 frame times late (about 38 ms at 4K30 on 2 cores). Slice
//! threads split one frame over the threads instead, so the latency stays one frame's decode
//! time. Hardware decoders (nvh264dec, vah264dec, ...) keep their own settings.

use crate::gst_util::set_prop;
use gst::prelude::*;

/// Threads beyond the slices in a frame only sleep; encoders rarely write more than 8.
const MAX_SLICE_THREADS: usize = 8;

/// Whether `element` is a video decoder (the kind `decodebin` plugs for the upstream).
pub(crate) fn is_video_decoder(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| {
        let klass = f.klass();
        klass.contains("Decoder") && klass.contains("Video")
    })
}

/// Sets a libav software decoder to slice threads, one per core up to [`MAX_SLICE_THREADS`];
/// leaves every other decoder as it is. Runs before the element leaves NULL state (from
/// `deep-element-added`), when libav still accepts threading settings.
pub(crate) fn configure_for_latency(decoder: &gst::Element) {
    let Some(factory) = decoder.factory() else {
        return;
    };
    if !factory.name().starts_with("avdec_") {
        return;
    }
    let threads = slice_threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let set = set_prop(decoder, "thread-type", "slice")
        && set_prop(decoder, "max-threads", &threads.to_string());
    tracing::debug!(
        decoder = %factory.name(),
        threads,
        set,
        "video decoder set to slice threads"
    );
}

fn slice_threads(cores: usize) -> usize {
    cores.clamp(1, MAX_SLICE_THREADS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avdec_h264_gets_slice_threads_and_other_elements_are_left_alone() {
        crate::gst_util::init().unwrap();
        let avdec = gst::ElementFactory::make("avdec_h264").build().unwrap();
        assert!(is_video_decoder(&avdec));
        configure_for_latency(&avdec);
        let thread_type = avdec.property_value("thread-type");
        let serialized = thread_type.serialize().unwrap();
        assert!(
            serialized.eq_ignore_ascii_case("slice"),
            "thread-type {serialized}"
        );
        let threads: i32 = avdec.property("max-threads");
        assert_eq!(
            threads as usize,
            slice_threads(std::thread::available_parallelism().unwrap().get())
        );
        // Not a decoder at all: untouched, and no property is looked up on it.
        let parser = gst::ElementFactory::make("h264parse").build().unwrap();
        assert!(!is_video_decoder(&parser));
        configure_for_latency(&parser);
    }

    #[test]
    fn slice_threads_follow_the_cores_within_bounds() {
        assert_eq!(slice_threads(0), 1);
        assert_eq!(slice_threads(2), 2);
        assert_eq!(slice_threads(16), MAX_SLICE_THREADS);
    }
}
