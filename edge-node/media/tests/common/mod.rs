//! Helpers shared by the integration tests: asset paths, generated upstream files, and a
//! recorder for ingest callbacks.
#![allow(dead_code)] // each test binary uses a different subset

use edge_media::{IngestConfig, UpstreamEvent};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub fn asset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets")
}

pub fn config(uri: &str) -> IngestConfig {
    let mut c = IngestConfig::new(uri);
    c.asset_dirs = vec![asset_dir()];
    c
}

/// A fresh directory under the system temp dir, unique to this call: tests of one binary run
/// on parallel threads of one process, so the process id alone would let two of them that
/// pass the same `name` remove and write each other's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("edge-media-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// Runs a gst-launch style pipeline to EOS (for generating test inputs).
pub fn run_to_eos(description: &str) {
    edge_media::init().unwrap();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("generator finished in time");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("generator failed: {} ({:?})", e.error(), e.debug());
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// An H.264 MPEG-TS segment; segments concatenate into one playable file.
pub fn h264_ts(path: &Path, width: u32, height: u32, frames: u32, offset_ns: u64, pattern: &str) {
    run_to_eos(&format!(
        "videotestsrc num-buffers={frames} timestamp-offset={offset_ns} pattern={pattern} \
         ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 \
         ! h264parse ! mpegtsmux ! filesink location={}",
        path.display()
    ));
}

/// Everything an ingest reported, with a way to wait for a condition.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<(Mutex<Recorded>, Condvar)>,
}

#[derive(Default, Debug)]
pub struct Recorded {
    /// (width, height, seq, pts_ns, received_unix_us)
    pub frames: Vec<(u32, u32, u64, u64, u64)>,
    pub events: Vec<UpstreamEvent>,
}

impl Recorder {
    pub fn sink(&self) -> impl FnMut(edge_core::I420Frame) + Send + 'static {
        let inner = self.inner.clone();
        move |f| {
            assert_eq!(f.data.len(), f.layout.total_len());
            let (m, cv) = &*inner;
            m.lock().unwrap().frames.push((
                f.layout.width,
                f.layout.height,
                f.meta.seq,
                f.meta.pts_ns,
                f.meta.received_unix_us,
            ));
            cv.notify_all();
        }
    }

    pub fn events(&self) -> impl FnMut(UpstreamEvent) + Send + 'static {
        let inner = self.inner.clone();
        move |e| {
            let (m, cv) = &*inner;
            m.lock().unwrap().events.push(e);
            cv.notify_all();
        }
    }

    /// Waits until `done` holds; panics with what was recorded after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Recorded) -> bool) {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.inner;
        let mut r = m.lock().unwrap();
        while !done(&r) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}: {} frames, events {:?}",
                r.frames.len(),
                r.events
            );
            r = cv.wait_timeout(r, deadline - now).unwrap().0;
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.inner.0.lock().unwrap())
    }
}

/// Checks that seq and pts strictly increase over the recorded frames.
pub fn assert_monotonic(frames: &[(u32, u32, u64, u64, u64)]) {
    for pair in frames.windows(2) {
        assert!(pair[1].2 > pair[0].2, "seq went back: {pair:?}");
        assert!(pair[1].3 > pair[0].3, "pts went back: {pair:?}");
    }
}
