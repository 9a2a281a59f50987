//! Start-up calibration: what one frame of the default rendition costs on this machine,
//! measured with the node's own compositor and encoder before it serves, so admission's first
//! decisions rest on this machine's costs rather than fixed priors.
//!
//! Runs once, before the frame path starts and before any viewer can connect, on a blocking
//! thread: a few composes (one group, then two, so the source upload and the per-group cost
//! separate) and a few encodes of a moving test card. The first frames of each are left out:
//! they compile shaders and start x264's threads, a cost paid once at start-up, not per frame.
//!
//! Each stage is timed both by the wall clock and by the CPU this process spent (every thread,
//! from `/proc/self/task/*/schedstat`; nothing else in the node runs yet), and the smaller is
//! kept: on an idle machine the wall time is the latency, on a machine busy with other
//! programs the CPU time is the node's own cost. Contention from other programs is not a cost
//! of the node's work; once it has measured itself, the node's latency tail carries it.

use anyhow::{Context, Result};
use edge_compose::{Compositor, OverlayPlacement, RenderJob};
use edge_core::admission::{Calibration, Rendition};
use edge_core::{FrameMeta, I420Frame, PlaneLayout};
use edge_media::{Encoder, EncoderConfig};
use edge_telemetry::cpu_usage::{thread_cpu_ns, threads_cpu_ns};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Frames measured per stage, after the warm-up ones.
const MEASURED_FRAMES: usize = 12;
/// Frames run first and not measured.
const WARM_UP_FRAMES: usize = 4;
/// Longest wait for one encoded frame: a stuck encoder ends calibration, not the node.
const ENCODE_WAIT: Duration = Duration::from_secs(2);

/// What the encoders are configured with, as far as their cost goes.
#[derive(Clone, Debug)]
pub struct EncodeCost {
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_frames: u32,
    /// A GStreamer element name; `None` picks the best present.
    pub encoder: Option<String>,
}

/// Composes and encodes a few frames of `rendition` and returns their costs.
pub fn measure(
    compositor: &mut Compositor,
    rendition: Rendition,
    encode: &EncodeCost,
) -> Result<Calibration> {
    let layout = PlaneLayout::new(rendition.width & !1, rendition.height & !1)
        .context("calibration rendition")?;
    let (source_ms, compose_ns_per_px) = compose_costs(compositor, layout)?;
    let encode_ns_per_px = encode_costs(layout, encode)?;
    Ok(Calibration {
        source_ms,
        compose_ns_per_px,
        encode_ns_per_px,
    })
}

/// Per frame: the source upload (milliseconds) and the compose per output pixel
/// (nanoseconds), from composing one group and then two of the same frame.
fn compose_costs(compositor: &mut Compositor, layout: PlaneLayout) -> Result<(Vec<f64>, Vec<f64>)> {
    // The common rendering: the picture at its own size with an ad-sized overlay, drawn as
    // the engine draws it (on a CPU adapter one copy plus the overlay's rectangle; on a GPU
    // the device's copy, blend and readback). The whole frame alone would be passed through.
    let (overlay_w, overlay_h) = ((layout.width / 3).max(2), (layout.height / 6).max(2));
    let rgba: Vec<u8> = [240, 60, 40, 200].repeat((overlay_w * overlay_h) as usize);
    let overlay = compositor.load_overlay_rgba(overlay_w, overlay_h, &rgba)?;
    let job = RenderJob::identity(
        layout,
        vec![OverlayPlacement {
            overlay,
            x: 24,
            y: 24,
            opacity: 1.0,
        }],
    );
    let pixels = f64::from(layout.width) * f64::from(layout.height);
    let (mut source_ms, mut compose_ns_per_px) = (Vec::new(), Vec::new());
    for i in 0..WARM_UP_FRAMES + MEASURED_FRAMES {
        let frame = test_picture(layout, i as u64)?;
        let started = Stopwatch::start();
        compositor.compose(&frame, std::slice::from_ref(&job))?;
        let one = started.ms();
        let started = Stopwatch::start();
        compositor.compose(&frame, &[job.clone(), job.clone()])?;
        let two = started.ms();
        if i >= WARM_UP_FRAMES {
            // One group costs upload + compose, two cost upload + 2 x compose. Timer noise
            // must not make the per-group share vanish: at least half of one group's time.
            let per_group = (two - one).clamp(one / 2.0, one);
            source_ms.push(one - per_group);
            compose_ns_per_px.push(per_group * 1e6 / pixels);
        }
    }
    compositor.remove_overlay(overlay)?;
    Ok((source_ms, compose_ns_per_px))
}

/// Encode CPU time per output pixel (nanoseconds) on one thread, one frame at a time: what
/// each encoder costs once several groups share the cores (each then encodes on one thread).
/// Measured as the CPU time of the encoder's own streaming thread between consecutive
/// outputs (x264 with one thread encodes on it), so the node's start-up work running beside
/// (ingest, model loading, the first viewers' handshakes) does not count; where Linux does not
/// report it, the wall time or the process's CPU time, whichever is smaller.
fn encode_costs(layout: PlaneLayout, encode: &EncodeCost) -> Result<Vec<f64>> {
    let config = EncoderConfig {
        bitrate_kbps: encode.bitrate_kbps,
        gop_frames: encode.gop_frames,
        encoder: encode.encoder.clone(),
        threads: 1,
        ..EncoderConfig::for_format(layout.width, layout.height, encode.fps)
    };
    let (tx, encoded) = mpsc::channel();
    let encoder = Encoder::new(config, move |frame| {
        let _ = tx.send((frame.meta.seq, thread_cpu_ns()));
    })
    .context("starting the calibration encoder")?;
    let pixels = f64::from(layout.width) * f64::from(layout.height);
    let frame_ns = 1_000_000_000 / u64::from(encode.fps.max(1));
    let mut samples = Vec::new();
    let mut previous_cpu = None;
    for i in 0..(WARM_UP_FRAMES + MEASURED_FRAMES) as u64 {
        let frame = test_picture(layout, i)?;
        let meta = FrameMeta {
            pts_ns: i * frame_ns,
            ..frame.meta
        };
        let started = Stopwatch::start();
        encoder
            .push(frame.data, meta, i == 0)
            .context("calibration encode")?;
        // Frames come out in order; one in, one out with a zero-latency encoder.
        let cpu = loop {
            let (seq, cpu) = encoded
                .recv_timeout(ENCODE_WAIT)
                .context("the calibration encoder produced nothing")?;
            if seq >= i {
                break cpu;
            }
        };
        if i >= WARM_UP_FRAMES as u64 {
            let ms = match (previous_cpu, cpu) {
                (Some(before), Some(after)) if after > before => (after - before) as f64 / 1e6,
                _ => started.ms(),
            };
            samples.push(ms * 1e6 / pixels);
        }
        previous_cpu = cpu;
    }
    Ok(samples)
}

/// Times one stage by the wall clock and by this process's CPU.
struct Stopwatch {
    wall: Instant,
    cpu_ns: Option<u64>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            cpu_ns: process_cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// Milliseconds since the start: the wall time, or the process's CPU time when that is
    /// smaller (the machine is busy with other programs).
    fn ms(&self) -> f64 {
        let wall = self.wall.elapsed().as_secs_f64() * 1e3;
        match (self.cpu_ns, process_cpu_ns()) {
            (Some(before), Some(after)) => {
                let cpu = after.saturating_sub(before) as f64 / 1e6;
                wall.min(cpu)
            }
            _ => wall,
        }
    }
}

/// CPU time of every live thread of this process, in nanoseconds; `None` where Linux's
/// scheduler statistics are not readable.
fn process_cpu_ns() -> Option<u64> {
    threads_cpu_ns(|_| true)
}

/// A picture like a test card that moves from frame to frame: colour bars, a gradient and a
/// moving box, so the encoder has a camera picture's kind of work (a flat frame encodes far
/// faster, noise far slower).
fn test_picture(layout: PlaneLayout, index: u64) -> Result<I420Frame> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let shift = index as usize * 6;
    let bar = (w / 8).max(1);
    let (box_x, box_y, side) = ((shift * 3) % w, (shift * 2) % h, h / 4);
    let mut data = vec![0u8; layout.total_len()];
    let (luma, chroma) = data.split_at_mut(layout.luma_len());
    for (y, row) in luma.chunks_exact_mut(w).enumerate() {
        for (x, px) in row.iter_mut().enumerate() {
            let in_box = x.wrapping_sub(box_x) < side && y.wrapping_sub(box_y) < side;
            *px = if in_box {
                235
            } else if y < h / 2 {
                (40 + (x / bar) * 24) as u8
            } else {
                (16 + (x + y + shift) % 220) as u8
            };
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let (u, v) = chroma.split_at_mut(layout.chroma_len());
    for (plane, phase) in [(u, 0usize), (v, 3)] {
        for (y, row) in plane.chunks_exact_mut(cw).enumerate() {
            for (x, px) in row.iter_mut().enumerate() {
                *px = if y < ch / 2 {
                    (64 + ((x * 2 / bar + phase) % 8) * 16) as u8
                } else {
                    128
                };
            }
        }
    }
    let meta = FrameMeta {
        seq: index,
        pts_ns: 0,
        received_unix_us: 0,
    };
    I420Frame::new(layout, data.into(), meta).context("calibration picture")
}

/// Calibrates `admission` with `compositor` on a blocking thread, and hands the compositor
/// back. A failure (no encoder, a GPU error) is logged and leaves the fallback priors.
pub async fn on_start(
    mut compositor: Compositor,
    rendition: Rendition,
    encode: EncodeCost,
    admission: &edge_control::admission_gate::AdmissionGate,
) -> Result<Compositor> {
    let started = Instant::now();
    let (compositor, measured) = tokio::task::spawn_blocking(move || {
        let measured = measure(&mut compositor, rendition, &encode);
        (compositor, measured)
    })
    .await
    .context("admission calibration")?;
    match measured {
        Ok(costs) => {
            admission.calibrate(&costs);
            let median = |v: &[f64]| {
                edge_core::admission::CostEstimate::from_samples(v).map_or(0.0, |e| e.mean())
            };
            let pixels = rendition.pixels() as f64;
            tracing::info!(
                %rendition,
                upload_ms = format!("{:.2}", median(&costs.source_ms)),
                compose_ms = format!("{:.2}", median(&costs.compose_ns_per_px) * pixels / 1e6),
                encode_ms = format!("{:.2}", median(&costs.encode_ns_per_px) * pixels / 1e6),
                took_ms = started.elapsed().as_millis() as u64,
                "admission calibrated on this machine"
            );
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "admission calibration failed; starting from fixed cost priors")
        }
    }
    Ok(compositor)
}
